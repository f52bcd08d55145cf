"""The face rig as arrays: mesh(u, x) = neutral + Σ_k u_k I_k + Σ_j x_j B_j (centimetres, model frame).

Model frame: with R = I the face looks at an OpenCV camera — x right (towards the subject's left), y down,
z away from the camera. The rig file is ``rigs/fw46.npz``; see ``rigs/README.md`` for its contents.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

RIG_FORMAT = "facecap-rig"
RIG_VERSION = 1
N_VERTICES = 478
N_IDENTITY = 50

EXPRESSION_NAMES = (
    "EyeBlink_L EyeBlink_R EyeSquint_L EyeSquint_R EyeDown_L EyeDown_R EyeIn_L EyeIn_R EyeOpen_L EyeOpen_R "
    "EyeOut_L EyeOut_R EyeUp_L EyeUp_R BrowsD_L BrowsD_R BrowsU_C BrowsU_L BrowsU_R JawOpen JawFwd JawLeft "
    "JawRight MouthLeft MouthRight MouthSmile_L MouthSmile_R MouthFrown_L MouthFrown_R MouthDimple_L "
    "MouthDimple_R LipsStretch_L LipsStretch_R LipsUpperClose LipsLowerClose LipsUpperUp LipsLowerDown "
    "LipsFunnel LipsPucker ChinLowerRaise ChinUpperRaise Sneer Puff CheekSquint_L CheekSquint_R LipsTogether"
).split()
N_EXPRESSIONS = len(EXPRESSION_NAMES)
assert N_EXPRESSIONS == 46

# Triangle materials: what a triangle of the canonical topology shows when rendered.
MATERIAL_SKIN, MATERIAL_MOUTH, MATERIAL_EYE, MATERIAL_IRIS = 0, 1, 2, 3

DEFAULT_RIG_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "rigs", "fw46.npz")


class RigFileError(RuntimeError):
    """A rig file is missing, corrupt, or not the expected format/version."""


@dataclass
class FaceRig:
    neutral: np.ndarray  # (478, 3) float64 cm
    identity_basis: np.ndarray  # (50, 478, 3) cm per unit of u (u ~ N(0, 1) over real faces)
    expression_deltas: np.ndarray  # (46, 478, 3) cm at weight 1
    triangles: np.ndarray  # (T, 3) int32
    triangle_material: np.ndarray  # (T,) int8, MATERIAL_*
    uv: np.ndarray  # (478, 2) texture coordinates, v up
    landmark_vertices: np.ndarray  # (73,) int32 vertex of each tracking landmark (frontal definition)
    jaw_contour_candidates: np.ndarray  # (17, C) int32 vertices a jaw landmark may slide to, -1 padded
    face_oval: np.ndarray  # (36,) int32
    mirror: np.ndarray  # (478,) int32 mirror vertex across x = 0
    eyeball_centres: np.ndarray  # (2, 3) cm, subject's right then left
    identity_variance: np.ndarray  # (50,) fraction of identity variance each mode explains
    expression_names: tuple = tuple(EXPRESSION_NAMES)
    provenance: dict = field(default_factory=dict)
    name: str = "fw46"

    # -- evaluation -------------------------------------------------------------------------------------
    def identity_mesh(self, u: np.ndarray | None = None) -> np.ndarray:
        """b0(u): (478, 3) neutral mesh of identity u (50,) in cm."""
        if u is None:
            return self.neutral.copy()
        return self.neutral + np.tensordot(np.asarray(u, np.float64), self.identity_basis, axes=1)

    def mesh(self, u: np.ndarray | None = None, x: np.ndarray | None = None) -> np.ndarray:
        """mesh(u, x): (478, 3) vertices in cm; u (50,), x (46,) in [0, 1]. Batched x (B, 46) → (B, 478, 3)."""
        base = self.identity_mesh(u)
        if x is None:
            return base
        return base + np.tensordot(np.asarray(x, np.float64), self.expression_deltas, axes=1)

    def landmarks3d(self, u=None, x=None, vertices: np.ndarray | None = None) -> np.ndarray:
        """(73, 3) landmark positions in cm (frontal definition, jaw not slid) for u, x."""
        idx = self.landmark_vertices if vertices is None else vertices
        base = self.neutral[idx]
        if u is not None:
            base = base + np.tensordot(np.asarray(u, np.float64), self.identity_basis[:, idx], axes=1)
        if x is not None:
            base = base + np.tensordot(np.asarray(x, np.float64), self.expression_deltas[:, idx], axes=1)
        return base

    def expression_index(self, name: str) -> int:
        return self.expression_names.index(name)

    # -- file I/O ---------------------------------------------------------------------------------------
    def save(self, path: str) -> None:
        arrays = {k: getattr(self, k) for k in _ARRAY_FIELDS}
        meta = {"format": RIG_FORMAT, "version": RIG_VERSION, "name": self.name,
                "expression_names": list(self.expression_names), "provenance": self.provenance}
        tmp = path + ".tmp.npz"
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)),
                            **{k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in arrays.items()})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | None = None) -> "FaceRig":
        path = path or DEFAULT_RIG_PATH
        if not os.path.exists(path):
            raise RigFileError(f"rig file not found: {path} (rebuild it with `python rigs/build_rig.py`)")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in _ARRAY_FIELDS}
        except Exception as exc:  # zip/npz/json errors all mean the same thing to the user
            raise RigFileError(f"rig file {path} is corrupt or unreadable ({exc.__class__.__name__}); "
                               "restore it from the repository or rebuild it with `python rigs/build_rig.py`") from exc
        if meta.get("format") != RIG_FORMAT or meta.get("version") != RIG_VERSION:
            raise RigFileError(f"{path} is not a {RIG_FORMAT} v{RIG_VERSION} file "
                               f"(found {meta.get('format')} v{meta.get('version')})")
        for k, v in arrays.items():
            if v.dtype.kind == "f":
                arrays[k] = v.astype(np.float64)
        rig = cls(**arrays, expression_names=tuple(meta["expression_names"]),
                  provenance=meta.get("provenance", {}), name=meta.get("name", "fw46"))
        rig.validate(path)
        return rig

    def validate(self, where: str = "rig") -> None:
        shapes = {"neutral": (N_VERTICES, 3), "identity_basis": (N_IDENTITY, N_VERTICES, 3),
                  "expression_deltas": (N_EXPRESSIONS, N_VERTICES, 3), "uv": (N_VERTICES, 2),
                  "landmark_vertices": (73,), "face_oval": (36,), "mirror": (N_VERTICES,),
                  "eyeball_centres": (2, 3), "identity_variance": (N_IDENTITY,)}
        for k, shape in shapes.items():
            if getattr(self, k).shape != shape:
                raise RigFileError(f"{where}: {k} has shape {getattr(self, k).shape}, expected {shape}")
        if tuple(self.expression_names) != tuple(EXPRESSION_NAMES):
            raise RigFileError(f"{where}: expression names differ from the fw46 list of design §4")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or self.triangles.max() >= N_VERTICES:
            raise RigFileError(f"{where}: bad triangle array {self.triangles.shape}")
        for k in ("neutral", "identity_basis", "expression_deltas"):
            if not np.all(np.isfinite(getattr(self, k))):
                raise RigFileError(f"{where}: {k} contains NaN/inf")


_ARRAY_FIELDS = ("neutral", "identity_basis", "expression_deltas", "triangles", "triangle_material", "uv",
                 "landmark_vertices", "jaw_contour_candidates", "face_oval", "mirror", "eyeball_centres",
                 "identity_variance")


_CACHE: dict[str, FaceRig] = {}


def load_rig(path: str | None = None) -> FaceRig:
    """Load (and cache) the rig; raises RigFileError with a one-line message on a bad file."""
    key = os.path.abspath(path or DEFAULT_RIG_PATH)
    if key not in _CACHE:
        _CACHE[key] = FaceRig.load(key)
    return _CACHE[key]
