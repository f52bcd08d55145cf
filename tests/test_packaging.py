"""Packaging and set-up scripts: the extension zip and bootstrap's reinstall stamp (no network, no bpy)."""
from __future__ import annotations

import importlib.util
import os
import tomllib
import zipfile

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
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert manifest["id"] == "facecap" and manifest["version"] == version
    assert manifest["schema_version"] == "1.0.0" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"files", "camera", "network"}
    again = build_addon.build(str(tmp_path / "again"), include_rig="rigs/fw46.npz" in names)
    assert open(out, "rb").read() == open(again, "rb").read()  # reproducible


def test_bootstrap_stamp_tracks_pyproject():
    bootstrap = load_script("bootstrap")
    h = bootstrap.install_hash()
    assert h == bootstrap.install_hash() and len(h) == 64
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    assert bootstrap.TORCH_PIN in deps  # bootstrap's explicit torch pin is the project's
