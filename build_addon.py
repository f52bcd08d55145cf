"""Build the installable Blender extension: dist/facecap-<version>.zip.

    python build_addon.py [--out dist] [--no-rig]

Zip layout (the extension's root): blender_addon/* (with blender_manifest.toml, its version set from
pyproject.toml), facecap_core/ (the library, Python sources only), models/ and rigs/fw46.npz (+ the rig's
licence notes). Not yet bundled: the platform wheels facecap_core needs inside Blender (scipy, opencv, numba,
PyMaxflow, torch; never numpy, which Blender ships). Standard library only; entries are written with a fixed
timestamp in sorted order, so the same inputs give the same zip.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".tmp.npz", ".blend1")
RIG_FILES = ("fw46.npz", "README.md", "NOTICE", "LICENSE")


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
    """(source path, name in the zip) of every file of the extension."""
    files = []
    addon = os.path.join(ROOT, "blender_addon")
    for path in _walk(addon):
        files.append((path, os.path.relpath(path, addon)))
    for path in _walk(os.path.join(ROOT, "facecap_core")):
        if path.endswith(".py"):
            files.append((path, os.path.relpath(path, ROOT)))
    models = os.path.join(ROOT, "models")
    if os.path.isdir(models):
        files += [(p, os.path.relpath(p, ROOT)) for p in _walk(models)]
    if include_rig:
        rig = os.path.join(ROOT, "rigs", "fw46.npz")
        if not os.path.exists(rig):
            raise SystemExit("build_addon: rigs/fw46.npz not found: build it with `python rigs/build_rig.py` "
                             "(needs `pip install -e .[teacher]`), or pass --no-rig")
        for name in RIG_FILES:
            path = os.path.join(ROOT, "rigs", name)
            if os.path.exists(path):
                files.append((path, f"rigs/{name}"))
    return files


def manifest_text(version: str) -> str:
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
    return text


def build(out_dir: str, include_rig: bool = True) -> str:
    version = project_version()
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"facecap-{version}.zip")
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, name in collect(include_rig):
            info = zipfile.ZipInfo(name.replace(os.sep, "/"), FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            if name == "blender_manifest.toml":
                zf.writestr(info, manifest_text(version))
            else:
                with open(path, "rb") as f:
                    zf.writestr(info, f.read())
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "dist"))
    ap.add_argument("--no-rig", action="store_true", help="build without rigs/fw46.npz (for testing the packaging)")
    args = ap.parse_args(argv)
    out = build(args.out, include_rig=not args.no_rig)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    print(f"wrote {out} ({len(names)} files, {os.path.getsize(out) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
