"""Packaging and set-up scripts: the extension zip and bootstrap's reinstall stamp (no network, no bpy)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import tomllib
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_addon_zip_layout(tmp_path):
    build_addon = load_script("build_addon")
    out = build_addon.build(str(tmp_path), include_rig=os.path.exists(os.path.join(ROOT, "rigs", "fw46.npz")))
    version = build_addon.project_version()
    assert os.path.basename(out) == f"facecap-{version}.zip"
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
    assert {"__init__.py", "rig_import.py", "keyframes.py", "facecap_core/__init__.py",
            "facecap_core/rig/model.py", "models/README.md"} <= names
    assert not any("__pycache__" in n or n.endswith((".pyc", ".ckpt", "_history.md")) for n in names)  # no training state, no lab notebook
    assert manifest["id"] == "facecap" and manifest["version"] == version
    assert manifest["schema_version"] == "1.0.0" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"files", "camera", "network"}
    again = build_addon.build(str(tmp_path / "again"), include_rig="rigs/fw46.npz" in names)
    assert open(out, "rb").read() == open(again, "rb").read()  # reproducible


def fake_wheel(folder, name: str, version: str, tag: str) -> str:
    """A tiny, well-formed wheel file (a zip with a METADATA) named as PyPI would name it."""
    os.makedirs(folder, exist_ok=True)
    dist = name.replace("-", "_")
    path = os.path.join(folder, f"{dist}-{version}-{tag}.whl")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return path


def no_network(*args, **kwargs):
    raise AssertionError(f"the build ran a command (pip download?) although every wheel is cached: {args}")


def test_wheel_pins_never_bundle_numpy_or_torch():
    build_addon = load_script("build_addon")
    assert set(build_addon.PLATFORMS) == {"linux-x64", "windows-x64", "macos-arm64", "macos-x64"}
    assert set(build_addon.PLATFORM_PINS) <= set(build_addon.PLATFORMS)
    for platform in build_addon.PLATFORMS:
        names = {build_addon._canonical(n) for n, _ in build_addon.pins_for(platform)}
        assert names == {"opencv-python-headless", "scipy", "numba", "llvmlite", "pymaxflow", "onnxruntime", "pyzmq"}
        assert not names & {"numpy", "torch", "opencv-python", "protobuf", "flatbuffers", "sympy", "coloredlogs"}


def test_platform_zip_from_local_wheel_cache(tmp_path, monkeypatch):
    """A platform zip from a local wheel cache (no network): its wheels/ and the manifest's wheels/platforms."""
    build_addon = load_script("build_addon")
    monkeypatch.setattr(build_addon.subprocess, "run", no_network)
    cache = tmp_path / "cache"
    folder = str(cache / "linux-x64")
    wanted = sorted(os.path.basename(fake_wheel(folder, name, version, "cp311-cp311-manylinux_2_28_x86_64"))
                    for name, version in build_addon.pins_for("linux-x64"))
    fake_wheel(folder, "numpy", "1.26.4", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")  # never taken
    fake_wheel(folder, "scipy", "1.11.4", "cp311-cp311-manylinux_2_17_x86_64")  # another version: not the pin
    rig = os.path.exists(os.path.join(ROOT, "rigs", "fw46.npz"))
    out = build_addon.build(str(tmp_path / "out"), include_rig=rig, platform="linux-x64", cache_dir=str(cache))
    version = build_addon.project_version()
    assert os.path.basename(out) == f"facecap-{version}-linux-x64.zip"
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        infos = {i.filename: i for i in zf.infolist()}
        zipped = {n: zf.read(n) for n in names if n.startswith("wheels/")}
    assert names == sorted(names)
    assert sorted(n[len("wheels/"):] for n in zipped) == wanted
    assert manifest["platforms"] == ["linux-x64"]
    assert manifest["wheels"] == [f"./wheels/{w}" for w in wanted]
    assert not any(os.path.basename(w).lower().startswith(("numpy-", "torch-")) for w in manifest["wheels"])
    for name, data in zipped.items():  # bundled unmodified (Blender's rule), stored
        assert data == open(os.path.join(folder, name[len("wheels/"):]), "rb").read()
        assert infos[name].compress_type == zipfile.ZIP_STORED
    assert {"__init__.py", "facecap_core/__init__.py", "models/README.md"} <= set(names)
    assert manifest["id"] == "facecap" and manifest["version"] == version and set(manifest["permissions"]) == {
        "files", "camera", "network"}
    again = build_addon.build(str(tmp_path / "again"), include_rig=rig, platform="linux-x64", cache_dir=str(cache))
    assert open(out, "rb").read() == open(again, "rb").read()  # reproducible


def test_missing_wheel_is_one_clear_error(tmp_path, monkeypatch):
    build_addon = load_script("build_addon")
    calls = []

    def failing_pip(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement "
            "opencv-python-headless==4.11.0.86 (from versions: none)\n"
            "ERROR: No matching distribution found for opencv-python-headless==4.11.0.86\n")

    monkeypatch.setattr(build_addon.subprocess, "run", failing_pip)
    with pytest.raises(SystemExit) as exc:
        build_addon.build(str(tmp_path / "out"), include_rig=False, platform="windows-x64",
                          cache_dir=str(tmp_path / "cache"), log=lambda *a: None)
    message = str(exc.value.code)
    assert "\n" not in message and "opencv-python-headless==4.11.0.86" in message and "windows-x64" in message
    assert "--no-wheels" in message
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.11" and cmd[cmd.index("--platform") + 1] == "win_amd64"
    assert not os.path.exists(tmp_path / "out" / f"facecap-{build_addon.project_version()}-windows-x64.zip")


def test_bootstrap_stamp_tracks_pyproject():
    bootstrap = load_script("bootstrap")
    h = bootstrap.install_hash()
    assert h == bootstrap.install_hash() and len(h) == 64
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    assert bootstrap.TORCH_PIN in deps  # bootstrap's explicit torch pin is the project's
