"""The take file (design §6): one JSON object per capture, written atomically (temp file + os.replace).

`make_frame` builds one frame dict from arrays, `write_take` writes a take, `read_take` reads and checks one
(raising `TakeFileError` with a one-line message). `arkit_scores` maps the 46 fw46 coefficients to Apple's 52
ARKit blendshapes with the default preset of design §4.
"""
from __future__ import annotations

import math

import numpy as np

from .fileformat import read_versioned_json, write_json_atomic
from .rig.model import EXPRESSION_NAMES, N_EXPRESSIONS

TAKE_FORMAT = "facecap-take"
TAKE_VERSION = 1

ARKIT_NAMES = (
    "eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft "
    "eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight eyeWideRight "
    "jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel mouthPucker mouthLeft mouthRight "
    "mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight mouthDimpleLeft mouthDimpleRight "
    "mouthStretchLeft mouthStretchRight mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper "
    "mouthPressLeft mouthPressRight mouthLowerDownLeft mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight "
    "browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff cheekSquintLeft "
    "cheekSquintRight noseSneerLeft noseSneerRight tongueOut"
).split()
assert len(ARKIT_NAMES) == 52


def _default_arkit_preset() -> dict[str, list[tuple[str, float]]]:
    """fw46 name → [(ARKit name, weight)], design §4 (all weights 1.0)."""
    sided = {"EyeBlink": "eyeBlink", "EyeSquint": "eyeSquint", "EyeDown": "eyeLookDown", "EyeIn": "eyeLookIn",
             "EyeOut": "eyeLookOut", "EyeUp": "eyeLookUp", "EyeOpen": "eyeWide", "BrowsD": "browDown",
             "BrowsU": "browOuterUp", "MouthSmile": "mouthSmile", "MouthFrown": "mouthFrown",
             "MouthDimple": "mouthDimple", "LipsStretch": "mouthStretch", "CheekSquint": "cheekSquint"}
    single = {"BrowsU_C": ["browInnerUp"], "JawOpen": ["jawOpen"], "JawFwd": ["jawForward"], "JawLeft": ["jawLeft"],
              "JawRight": ["jawRight"], "MouthLeft": ["mouthLeft"], "MouthRight": ["mouthRight"],
              "LipsUpperClose": ["mouthRollUpper"], "LipsLowerClose": ["mouthRollLower"],
              "LipsUpperUp": ["mouthUpperUpLeft", "mouthUpperUpRight"],
              "LipsLowerDown": ["mouthLowerDownLeft", "mouthLowerDownRight"], "LipsFunnel": ["mouthFunnel"],
              "LipsPucker": ["mouthPucker"], "ChinLowerRaise": ["mouthShrugLower"],
              "ChinUpperRaise": ["mouthShrugUpper"], "Sneer": ["noseSneerLeft", "noseSneerRight"],
              "Puff": ["cheekPuff"], "LipsTogether": ["mouthClose"]}
    preset = {}
    for name in EXPRESSION_NAMES:
        if name in single:
            preset[name] = [(a, 1.0) for a in single[name]]
        else:
            stem, side = name.rsplit("_", 1)
            preset[name] = [(sided[stem] + ("Left" if side == "L" else "Right"), 1.0)]
    return preset


ARKIT_PRESET = _default_arkit_preset()
_ARKIT_MATRIX = np.zeros((len(ARKIT_NAMES), N_EXPRESSIONS))
for _j, _name in enumerate(EXPRESSION_NAMES):
    for _a, _w in ARKIT_PRESET[_name]:
        _ARKIT_MATRIX[ARKIT_NAMES.index(_a), _j] = _w


class TakeFileError(RuntimeError):
    """A take file is missing, unreadable, or not a facecap-take v1."""


def arkit_scores(expression: np.ndarray) -> np.ndarray:
    """(..., 46) fw46 coefficients → (..., 52) ARKit scores in Apple's order, clipped to [0, 1]."""
    return np.clip(np.asarray(expression, np.float64) @ _ARKIT_MATRIX.T, 0.0, 1.0)


def _floats(a) -> list:
    return [float(v) for v in np.asarray(a, np.float64).ravel()]


def make_frame(index: int, time: float, expression=None, rotation=None, translation=None, landmarks=None,
               bbox=None, face_visible: float | None = None, raw: dict | None = None) -> dict:
    """One take frame. expression (46,), rotation unit quaternion (w, x, y, z), translation (3,) cm in the
    camera frame, landmarks (73, 2) pixels, bbox (x, y, w, h) pixels. expression None → an untracked frame.
    raw: the unfiltered values when the frame's are smoothed ({"rotation": quaternion, "translation",
    "expression"}), kept under the frame's optional "raw" key (an addition to design §6 readers may ignore)."""
    if expression is None:
        return {"index": int(index), "time": float(time), "tracked": False, "bbox": None, "rotation": None,
                "translation": None, "expression": None, "arkit": None, "landmarks": None, "face_visible": None}
    expression = np.asarray(expression, np.float64)
    lm = np.asarray(landmarks, np.float64)
    if bbox is None:
        lo, hi = lm.min(0), lm.max(0)
        bbox = (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
    frame = {"index": int(index), "time": float(time), "tracked": True, "bbox": _floats(bbox),
             "rotation": _floats(rotation), "translation": _floats(translation), "expression": _floats(expression),
             "arkit": dict(zip(ARKIT_NAMES, _floats(arkit_scores(expression)))),
             "landmarks": np.round(lm, 3).tolist(),
             "face_visible": float(1.0 if face_visible is None else face_visible)}
    if raw is not None:
        frame["raw"] = {k: _floats(raw[k]) for k in ("rotation", "translation", "expression")}
    return frame


def make_take(source: str, fps: float, width: int, height: int, focal: float, frames: list[dict],
              identity=None, rig: str = "fw46") -> dict:
    return {"format": TAKE_FORMAT, "version": TAKE_VERSION, "source": source, "fps": float(fps),
            "width": int(width), "height": int(height), "rig": rig, "expression_names": list(EXPRESSION_NAMES),
            "identity": _floats(np.zeros(50) if identity is None else identity), "focal": float(focal),
            "frames": frames}


def write_take(path: str, take: dict) -> None:
    """Write atomically: a crash leaves either the old file or the new one, never half of one."""
    write_json_atomic(path, take, separators=(",", ":"))


def read_take(path: str) -> dict:
    """Read and check a take; raises TakeFileError with a one-line message."""
    take = read_versioned_json(path, TAKE_FORMAT, TAKE_VERSION, TakeFileError, "take file",
                               "re-record or re-export it")
    for key in ("fps", "width", "height", "expression_names", "frames"):
        if key not in take:
            raise TakeFileError(f"{path}: take has no '{key}' field")
    if not (isinstance(take["fps"], (int, float)) and math.isfinite(take["fps"]) and take["fps"] > 0):
        raise TakeFileError(f"{path}: fps must be a positive number, found {take['fps']!r}")
    n = len(take["expression_names"])
    for frame in take["frames"]:
        if frame.get("tracked") and len(frame.get("expression") or ()) != n:
            raise TakeFileError(f"{path}: frame {frame.get('index')} has no {n} expression values")
    return take
