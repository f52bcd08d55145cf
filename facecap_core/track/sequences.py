"""Synthetic video sequences with ground truth, for tracker tests and benchmarks (Fig. 8, jitter, expression error).

A sequence is one synthetic person (texture, lighting, hair, background fixed) seen by a fixed camera while the head
turns, moves and changes expression smoothly: pose follows slow sinusoids, expressions blend between random key
expressions every `key_every` frames (smoothstep). Frames are full square images of `size` px whose camera has its
principal point at the image centre (focal in `focal`), so the tracker sees them exactly as it sees a webcam.
``still=True`` holds pose and expression (a still face, for the jitter metric).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.synth import SyntheticFaces, sample_expression
from ..rig.geometry import euler_to_matrix


@dataclass
class Sequence:
    frames: np.ndarray  # (N, S, S, 3) uint8 RGB
    masks: np.ndarray  # (N, S, S) uint8, 1 = face
    landmarks: np.ndarray  # (N, 73, 2) px
    visible: np.ndarray  # (N, 73) bool
    rotation: np.ndarray  # (N, 3, 3) camera frame
    translation: np.ndarray  # (N, 3) cm
    expression: np.ndarray  # (N, 46)
    identity: np.ndarray  # (50,)
    focal: float  # px, in these frames

    @property
    def image_size(self) -> tuple[int, int]:
        return self.frames.shape[2], self.frames.shape[1]


def _smoothstep(a):
    return a * a * (3 - 2 * a)


def synthetic_sequence(gen: SyntheticFaces, rng: np.random.Generator, n_frames: int = 180, size: int | None = None,
                       key_every: int = 30, yaw_amplitude: float = 25.0, still: bool = False,
                       face_fraction: float = 0.42) -> Sequence:
    """Render one random sequence with `gen` (its output size is the frame size; `size` must match it if given)."""
    if size is not None and size != gen.size:
        raise ValueError(f"the generator renders {gen.size} px frames, not {size}")
    p = gen.sample_params(rng)
    z0 = float(p["translation"][2])
    keys = [sample_expression(rng, gen.rig.expression_names) for _ in range(n_frames // key_every + 2)]
    keys[0] = keys[0] * 0.3
    phase = rng.uniform(0, 2 * np.pi, 5)
    rotations, translations, expressions = [], [], []
    for i in range(n_frames):
        a = 0.0 if still else i / max(n_frames - 1, 1)
        yaw = yaw_amplitude * np.sin(2 * np.pi * 1.3 * a + phase[0])
        pitch = 10 * np.sin(2 * np.pi * 0.9 * a + phase[1])
        roll = 8 * np.sin(2 * np.pi * 0.7 * a + phase[2])
        rotations.append(euler_to_matrix(*np.radians([yaw, pitch, roll])))
        translations.append([2.5 * np.sin(2 * np.pi * 0.8 * a + phase[3]), 1.5 * np.sin(2 * np.pi * 0.6 * a + phase[4]),
                             z0 * (1 + 0.08 * np.sin(2 * np.pi * 0.5 * a))])
        k, w = divmod(0 if still else i, key_every)
        expressions.append(keys[k] + (keys[k + 1] - keys[k]) * _smoothstep(w / key_every))
    return render_sequence(gen, p, np.array(rotations), np.array(translations), np.array(expressions),
                           face_fraction)


def render_sequence(gen: SyntheticFaces, p: dict, rotations, translations, expressions,
                    face_fraction: float = 0.42) -> Sequence:
    """Render a given performance — rotations (N, 3, 3), translations (N, 3) cm, expressions (N, 46) — of the
    person, lighting and background of the renderer parameters `p` (``gen.sample_params``), through a fixed camera
    whose frame is centred on the source camera's axis and sized so that a 16 cm face at the first frame's depth
    covers `face_fraction` of it."""
    S = gen.size
    W, H = gen.cfg.image_size
    f = p["focal"]
    side = 16.0 * f / float(translations[0][2]) / face_fraction
    out = {k: [] for k in ("frames", "masks", "landmarks", "visible", "rotation", "translation", "expression")}
    for R, t, x in zip(rotations, translations, expressions):
        q = dict(p, R=np.asarray(R, np.float64), translation=np.asarray(t, np.float64), expression=np.clip(x, 0, 1),
                 proxies=True)
        # make the renderer's face-centred crop equal to the fixed window
        mesh = gen.rig.mesh(p["identity"], q["expression"]) @ q["R"].T + q["translation"]
        src = f * mesh[:, :2] / mesh[:, 2:3] + np.array([W / 2, H / 2])
        lo, hi = src.min(0), src.max(0)
        q["margin"] = side / max(hi - lo)
        q["offset"] = (np.array([W / 2, H / 2]) - (lo + hi) / 2) / side
        s = gen.render(q)
        out["frames"].append(s.image)
        out["masks"].append(s.mask)
        out["landmarks"].append(s.landmarks)
        out["visible"].append(s.visible)
        out["rotation"].append(q["R"])
        out["translation"].append(q["translation"])
        out["expression"].append(q["expression"])
    arr = {k: np.stack(v) for k, v in out.items()}
    return Sequence(identity=np.asarray(p["identity"], np.float64), focal=float(f * S / side), **arr)
