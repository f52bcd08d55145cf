"""Build the installable Blender extension: one zip per platform with the wheels the engine needs, into dist/.

    python build_addon.py [--platform linux-x64|windows-x64|macos-arm64|macos-x64|all] [--no-wheels]
                          [--wheel-cache DIR] [--out dist] [--no-rig]

Zip layout (the extension's root): blender_addon/* (with blender_manifest.toml, its version set from
pyproject.toml), facecap_core/ (the library, Python sources only), models/ and rigs/fw46.npz (+ the rig's
licence notes); platform zips add wheels/<file>.whl.

* default (`--platform all`): dist/facecap-<version>-<platform>.zip for each of linux-x64, windows-x64,
  macos-arm64 and macos-x64 (what `blender --command extension build --split-platforms` makes): the zip carries
  the platform's wheels under wheels/ and its manifest says `platforms = ["<platform>"]` and lists exactly those
  wheels under `wheels = [...]`.
* `--no-wheels`: the one platform-independent dist/facecap-<version>.zip, without wheels (no network; the
  in-Blender engine then needs an external Python or a remote engine).

The wheels (WHEELS below, the one list of pins, with PLATFORM_PINS for the platforms where a pin has no wheel)
are the run-time imports of the in-Blender engine for Blender 4.2-5.0 (CPython 3.11, numpy 1.26 shipped by
Blender, so numpy is never bundled): cv2, scipy, numba + llvmlite, maxflow, onnxruntime (CPU) and zmq. They are
fetched with `pip download --only-binary=:all: --no-deps --python-version 3.11 --implementation cp --platform ...`
into a git-ignored cache (cache/wheels/<platform>/), reused when present, so a second build needs no network.
Standard library only (plus pip for the downloads); entries are written with a fixed timestamp in sorted order,
so the same inputs give the same zip.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".tmp.npz", ".blend1")
RIG_FILES = ("fw46.npz", "README.md", "NOTICE", "LICENSE")
WHEEL_CACHE = os.path.join(ROOT, "cache", "wheels")

# The wheels bundled in every platform zip: the in-Blender engine's run-time imports, for CPython 3.11 against
# Blender's numpy 1.26 (every pin declares numpy 1.26 support). Never numpy (Blender ships it), never torch (the
# segmentation net runs on onnxruntime's CPU provider inside Blender).
# - opencv-python-headless 4.11.0.86: the newest declaring numpy 1.x support (4.12+ and 5.0 require numpy>=2),
#   and 5.0's main wheel no longer has cv2.CascadeClassifier (Viola-Jones moved to contrib).
# - onnxruntime: only numpy at run time (`import onnxruntime` + InferenceSession import nothing else); its declared
#   flatbuffers, protobuf, packaging (and, up to 1.23, coloredlogs, sympy) serve its quantization/tools/
#   transformers sub-packages only, so they are not bundled.
WHEELS = (
    "opencv-python-headless==4.11.0.86",
    "scipy==1.17.1",
    "numba==0.68.1",
    "llvmlite==0.50.0",
    "PyMaxflow==1.3.2",
    "onnxruntime==1.31.1",
    "pyzmq==27.3.0",
)
# Per-platform replacements where the pin above has no suitable cp311 wheel.
PLATFORM_PINS = {
    # onnxruntime 1.24+ macOS wheels need macOS 14; 1.23.2 runs on macOS 13, as opencv 4.11 does.
    "macos-arm64": ("onnxruntime==1.23.2",),
    # the last releases with macOS x86_64 wheels.
    "macos-x64": ("onnxruntime==1.23.2", "numba==0.62.1", "llvmlite==0.45.1"),
}
NEVER_BUNDLED = {"numpy", "torch"}

# Blender platform -> pip --platform tags, in pip's order of preference. Linux: Blender 4.2+ needs glibc 2.28
# (pip does not expand manylinux tags downwards, so they are all listed). macOS: ascending, so the wheel for the
# oldest macOS wins (pip expands each macOS tag downwards, universal2 included).
PLATFORM_TAGS = {
    "linux-x64": tuple(f"manylinux_2_{v}_x86_64" for v in range(28, 16, -1)) + ("manylinux2014_x86_64",),
    "windows-x64": ("win_amd64",),
    "macos-arm64": tuple(f"macosx_{v}_0_arm64" for v in range(11, 16)),
    "macos-x64": ("macosx_10_15_x86_64",) + tuple(f"macosx_{v}_0_x86_64" for v in range(11, 16)),
}
PLATFORMS = tuple(PLATFORM_TAGS)


def project_version() -> str:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["version"]


def _walk(folder: str):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith(SKIP_SUFFIXES):
                yield os.path.join(dirpath, name)


def collect(include_rig: bool = True) -> list[tuple[str, str]]:
    """(source path, name in the zip) of every file of the extension (wheels apart)."""
    files = []
    addon = os.path.join(ROOT, "blender_addon")
    for path in _walk(addon):
        files.append((path, os.path.relpath(path, addon)))
    for path in _walk(os.path.join(ROOT, "facecap_core")):
        if path.endswith(".py"):
            files.append((path, os.path.relpath(path, ROOT)))
    models = os.path.join(ROOT, "models")
    if os.path.isdir(models):
        # training checkpoints (*.ckpt: optimiser state to resume a run) and the lab notebooks behind the cards
        # (*_history.md) are for retraining, not for running
        files += [(p, os.path.relpath(p, ROOT)) for p in _walk(models)
                  if not p.endswith((".ckpt", "_history.md"))]
    if include_rig:
        rig = os.path.join(ROOT, "rigs", "fw46.npz")
        if not os.path.exists(rig):
            raise SystemExit("build_addon: rigs/fw46.npz not found: build it with `.venv-teacher/bin/python "
                             "rigs/build_rig.py` (the teacher's own environment, README \"The face rig\"), or "
                             "pass --no-rig")
        for name in RIG_FILES:
            path = os.path.join(ROOT, "rigs", name)
            if os.path.exists(path):
                files.append((path, f"rigs/{name}"))
    return files


# ---------------------------------------------------------------------------------------------------------------
# Wheels

def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_for(platform: str) -> list[tuple[str, str]]:
    """(distribution name, version) of the wheels bundled for a Blender platform."""
    if platform not in PLATFORM_TAGS:
        raise SystemExit(f"build_addon: unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
    pins = {}
    for spec in WHEELS + PLATFORM_PINS.get(platform, ()):
        name, sep, version = spec.partition("==")
        if not sep or not version:
            raise SystemExit(f"build_addon: wheel pin {spec!r} is not `package==version`")
        pins[_canonical(name)] = (name, version)
    bad = NEVER_BUNDLED & set(pins)
    if bad:
        raise SystemExit(f"build_addon: {', '.join(sorted(bad))} must never be bundled (Blender ships numpy; "
                         "the engine uses onnxruntime, not torch)")
    return list(pins.values())


def wheel_tags(filename: str) -> tuple[str, str, str, str, str]:
    """(distribution, version, python tag, abi tag, platform tag) of a wheel file name (PEP 427)."""
    parts = filename[:-len(".whl")].split("-") if filename.endswith(".whl") else []
    if len(parts) not in (5, 6):
        raise ValueError(f"not a wheel file name: {filename}")
    return parts[0], parts[1], parts[-3], parts[-2], parts[-1]


def blender_platforms(wheel_platform: str) -> set[str]:
    """Blender platforms a wheel's platform tag (possibly compressed, a.b) runs on, as Blender maps them when it
    splits an extension per platform: manylinux*/musllinux*/linux_x86_64 -> linux-x64, win_amd64 -> windows-x64,
    macosx_*_arm64 -> macos-arm64, macosx_*_x86_64 -> macos-x64, universal2 -> both macOS; `any` -> all."""
    out = set()
    for tag in wheel_platform.split("."):
        if tag == "any":
            return set(PLATFORMS)
        system = ("linux" if tag.startswith(("manylinux", "musllinux", "linux")) else
                  "windows" if tag.startswith("win") else "macos" if tag.startswith("macosx") else tag)
        if tag.endswith(("x86_64", "amd64")):
            out.add(f"{system}-x64")
        elif tag.endswith(("arm64", "aarch64")):
            out.add(f"{system}-arm64")
        elif tag.endswith("universal2") and system == "macos":
            out |= {"macos-x64", "macos-arm64"}
        elif tag.endswith(("intel", "x86_64")) and system == "macos":
            out.add("macos-x64")
    return out


def _runs_on_cp311(python_tag: str, abi_tag: str) -> bool:
    for py in python_tag.split("."):
        if py in ("py3", "cp311") and abi_tag in ("none", "cp311", "abi3"):
            return True
        m = re.fullmatch(r"cp3(\d+)", py)
        if m and abi_tag == "abi3" and int(m.group(1)) <= 11:
            return True
    return False


def min_os(wheels: list[str]) -> str:
    """The oldest glibc / macOS that all the wheels run on ('' when no tag says, e.g. Windows)."""
    need: dict[str, tuple[int, int]] = {}
    for w in wheels:
        oldest: dict[str, tuple[int, int]] = {}
        for tag in wheel_tags(os.path.basename(w))[4].split("."):  # a compressed tag set runs on its oldest member
            m = re.fullmatch(r"(manylinux|macosx)_(\d+)_(\d+)_\w+", tag)
            if tag.startswith("manylinux2014"):
                kind, v = "glibc", (2, 17)
            elif m:
                kind, v = ("glibc" if m.group(1) == "manylinux" else "macOS"), (int(m.group(2)), int(m.group(3)))
            else:
                continue
            oldest[kind] = min(oldest.get(kind, v), v)
        for kind, v in oldest.items():
            need[kind] = max(need.get(kind, v), v)
    return ", ".join(f"{kind} >= {v[0]}.{v[1]}" for kind, v in sorted(need.items()))


def _cached(folder: str, name: str, version: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    found = []
    for fn in sorted(os.listdir(folder)):
        if not fn.endswith(".whl"):
            continue
        try:
            dist, ver = wheel_tags(fn)[:2]
        except ValueError:
            continue
        if _canonical(dist) == _canonical(name) and ver == version:
            found.append(os.path.join(folder, fn))
    return found


def download_wheel(name: str, version: str, platform: str, folder: str) -> None:
    """pip download one wheel (no dependencies) for CPython 3.11 on `platform` into `folder`."""
    os.makedirs(folder, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--disable-pip-version-check",
           "--python-version", "3.11", "--implementation", "cp"]
    for tag in PLATFORM_TAGS[platform]:
        cmd += ["--platform", tag]
    cmd += ["-d", folder, f"{name}=={version}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        reason = "" if proc.returncode == 0 else next(
            (ln.strip() for ln in reversed(proc.stderr.splitlines()) if ln.strip().startswith("ERROR")),
            (proc.stderr.strip().splitlines() or [f"pip exit status {proc.returncode}"])[-1].strip())
    except OSError as exc:
        reason = f"cannot run pip ({exc})"
    if reason or not _cached(folder, name, version):
        raise SystemExit(f"build_addon: cannot download the {name}=={version} wheel for {platform} "
                         f"(no network, or no CPython 3.11 wheel for {platform}: {reason or 'pip got no wheel'}); "
                         f"build the platform-independent zip without wheels with --no-wheels")


def fetch_wheels(platform: str, cache_dir: str | None = None, log=print) -> list[str]:
    """Paths of the platform's wheels in `cache_dir`/<platform>/, downloading the missing ones (sorted by name)."""
    folder = os.path.join(cache_dir or WHEEL_CACHE, platform)
    paths = []
    for name, version in pins_for(platform):
        found = _cached(folder, name, version)
        if not found:
            log(f"build_addon: downloading {name}=={version} for {platform} into {folder}")
            download_wheel(name, version, platform, folder)
            found = _cached(folder, name, version)
        if len(found) > 1:
            raise SystemExit(f"build_addon: several cached {name}=={version} wheels for {platform} in {folder} "
                             f"({', '.join(os.path.basename(p) for p in found)}): delete all but one")
        fn = os.path.basename(found[0])
        _, _, py_tag, abi_tag, plat_tag = wheel_tags(fn)
        if platform not in blender_platforms(plat_tag) or not _runs_on_cp311(py_tag, abi_tag):
            raise SystemExit(f"build_addon: cached wheel {found[0]} does not run on CPython 3.11 / {platform}: "
                             "delete it and build again")
        paths.append(found[0])
    return sorted(paths, key=os.path.basename)


# ---------------------------------------------------------------------------------------------------------------
# Manifest and zip

def manifest_text(version: str, platform: str | None = None, wheels: list[str] = ()) -> str:
    """blender_manifest.toml with `version` set, and for a platform zip `platforms = [platform]` and
    `wheels = ["./wheels/<file>", ...]` (top-level keys, so written before the first table)."""
    with open(os.path.join(ROOT, "blender_addon", "blender_manifest.toml")) as f:
        text = f.read()
    text, n = re.subn(r'(?m)^version = "[^"]*"', f'version = "{version}"', text)
    if n != 1:
        raise SystemExit("build_addon: blender_manifest.toml has no single `version = \"...\"` line")
    manifest = tomllib.loads(text)
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min",
                "license"):
        if key not in manifest:
            raise SystemExit(f"build_addon: blender_manifest.toml lacks `{key}`")
    if platform is not None:
        for key in ("platforms", "wheels"):
            if key in manifest:
                raise SystemExit(f"build_addon: blender_manifest.toml sets `{key}`: leave it to build_addon.py")
        entries = [f"./wheels/{os.path.basename(w)}" for w in wheels]
        block = f'platforms = ["{platform}"]\n' + "wheels = [\n" + "".join(f'    "{e}",\n' for e in entries) + "]\n"
        m = re.search(r"(?m)^\[", text)
        text = (text[:m.start()] + block + "\n" + text[m.start():]) if m else text.rstrip("\n") + "\n\n" + block
        check = tomllib.loads(text)
        assert check["platforms"] == [platform] and check["wheels"] == entries, "manifest rewrite failed"
    return text


def build(out_dir: str, include_rig: bool = True, platform: str | None = None, cache_dir: str | None = None,
          log=print) -> str:
    """Write one extension zip and return its path: the platform-independent facecap-<version>.zip without
    wheels when `platform` is None, else facecap-<version>-<platform>.zip with that platform's wheels (from
    `cache_dir`, default cache/wheels/, downloading the missing ones)."""
    version = project_version()
    files = collect(include_rig)
    wheels = fetch_wheels(platform, cache_dir, log) if platform is not None else []
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"facecap-{version}{'-' + platform if platform else ''}.zip")
    tmp = out + ".tmp"
    entries = sorted([(name.replace(os.sep, "/"), path) for path, name in files]
                     + [(f"wheels/{os.path.basename(w)}", w) for w in wheels])
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, path in entries:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            # wheels are zips already: stored as they are (Blender wants them unmodified, and deflating gains ~0)
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".whl") else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            if name == "blender_manifest.toml":
                zf.writestr(info, manifest_text(version, platform, wheels))
            else:
                with open(path, "rb") as f:
                    zf.writestr(info, f.read())
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--platform", choices=(*PLATFORMS, "all"), default=None,
                    help="build the zip of one platform, or of all of them (default: all)")
    ap.add_argument("--no-wheels", action="store_true",
                    help="build the one platform-independent zip without wheels (no network)")
    ap.add_argument("--wheel-cache", default=WHEEL_CACHE,
                    help="where downloaded wheels are kept and reused, one folder per platform (default: cache/wheels)")
    ap.add_argument("--out", default=os.path.join(ROOT, "dist"))
    ap.add_argument("--no-rig", action="store_true", help="build without rigs/fw46.npz (for testing the packaging)")
    args = ap.parse_args(argv)
    if args.no_wheels and args.platform is not None:
        ap.error("--no-wheels builds the one platform-independent zip: leave out --platform")
    platforms = ([None] if args.no_wheels else
                 list(PLATFORMS) if args.platform in (None, "all") else [args.platform])
    for platform in platforms:
        out = build(args.out, include_rig=not args.no_rig, platform=platform, cache_dir=args.wheel_cache)
        with zipfile.ZipFile(out) as zf:
            names = zf.namelist()
        wheels = [n for n in names if n.startswith("wheels/")]
        extra = (f", {len(wheels)} wheels" + (f", needs {min_os(wheels)}" if min_os(wheels) else "")
                 if platform else ", no wheels")
        print(f"wrote {out} ({len(names)} files, {os.path.getsize(out) / 1e6:.1f} MB{extra})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
