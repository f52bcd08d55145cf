"""Shared pieces of the tracker benchmarks: held-out test textures/backgrounds for synthetic sequences, running a
tracker over a sequence, and the metrics of design §8."""
from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from facecap_core.data.paths import CACHE, SHARED  # noqa: E402
from facecap_core.rig import landmarks as L  # noqa: E402
from facecap_core.track.cascade import landmark_error  # noqa: E402


def sequence_generator(rig, size: int = 320, seed: int = 0):
    """A SyntheticFaces renderer with the *test* identities' real textures and real backgrounds when the cache and
    ../shared have them (else procedural ones), frames of size×size."""
    from facecap_core.data.synth import SyntheticFaces, load_backgrounds  # noqa: PLC0415
    from facecap_core.data.texture import TextureLibrary, procedural_library  # noqa: PLC0415

    lib, kind = None, "procedural"
    path = os.path.join(CACHE, "textures", "real_256.npz")
    if os.path.exists(path):
        lib = TextureLibrary.load(path).for_split("test")
        kind = f"{len(lib)} real test-identity textures"
    if lib is None or not len(lib):
        lib = procedural_library(rig, 8, seed=seed)
    bg_dir = os.path.join(SHARED, "backgrounds")
    bgs = load_backgrounds(bg_dir) if os.path.isdir(bg_dir) else None
    return SyntheticFaces(rig, lib, bgs, size=size), kind


def track_sequence(tracker, frames, masks=None, start=None):
    """Run a tracker over frames; start = (R, t, x, u) to begin from the known first frame, else detect.
    Returns (landmarks (N, 73, 2) with NaN where untracked, expression (N, 46), regression ms list)."""
    n = len(frames)
    lms, xs, ms = np.full((n, 73, 2), np.nan), np.full((n, 46), np.nan), []
    tracker.reset()
    if start is not None:
        tracker.start(*start[:3], identity=start[3])
    for i in range(n):
        r = tracker.track(frames[i], None if masks is None else masks[i])
        if r.tracked:
            lms[i], xs[i] = r.landmarks, r.expression
            ms.append(r.ms.get("regress", np.nan))
    return lms, xs, ms


def nme(pred, gt):
    """Per-frame NME % (NaN where untracked)."""
    ok = np.all(np.isfinite(pred.reshape(len(pred), -1)), axis=1)
    out = np.full(len(pred), np.nan)
    if ok.any():
        out[ok] = landmark_error(pred[ok], gt[ok])
    return out


def jitter(lms, gt_lm) -> float:
    """Design §8 stability: mean over landmarks of the std over time (px) / inter-ocular distance, in %."""
    a, b = L.IBUG_OUTER_EYE_CORNERS
    iod = float(np.median(np.linalg.norm(gt_lm[:, a] - gt_lm[:, b], axis=1)))
    ok = np.all(np.isfinite(lms.reshape(len(lms), -1)), axis=1)
    sd = np.sqrt(np.var(lms[ok], axis=0).sum(-1))  # (73,) px
    return float(100 * sd[:68].mean() / iod)


def occlude_box(frames, masks, landmarks, fraction: float, rng, colour=None):
    """Fig. 8: one box per sequence, `fraction` of the face box's side, centred at a random point near the face
    centre (fixed relative to the face), drawn on every frame; masks lose the box. Returns new frames, masks."""
    frames, masks = frames.copy(), masks.copy()
    if fraction <= 0:
        return frames, masks
    rel = rng.normal(0, 0.15, 2)
    col = rng.integers(0, 255, 3) if colour is None else colour
    for i in range(len(frames)):
        lm = landmarks[i, :68]
        lo, hi = lm.min(0), lm.max(0)
        side = fraction * float(np.max(hi - lo))
        c = (lo + hi) / 2 + rel * (hi - lo)
        x0, y0 = np.round(c - side / 2).astype(int)
        x1, y1 = x0 + int(round(side)), y0 + int(round(side))
        H, W = frames.shape[1:3]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        frames[i, y0:y1, x0:x1] = col
        masks[i, y0:y1, x0:x1] = 0
    return frames, masks


def segmenter_spec(spec: str) -> tuple[str, int | None]:
    """A segmenter on a benchmark's command line: 'PATH' or 'PATH+views=N' → (PATH, its views; None = default)."""
    path, _, views = spec.partition("+views=")
    return path, int(views) if views else None


def mean_interval(d: np.ndarray, reps: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of `d` (its entries resampled with replacement)."""
    d = np.asarray(d)
    pick = np.random.default_rng(0).integers(0, len(d), (reps, len(d)))
    lo, hi = np.percentile(d[pick].mean(1), [2.5, 97.5])
    return float(lo), float(hi)


def table(headers, rows) -> str:
    w = [max([len(str(h))] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(str(v).ljust(w[i]) for i, v in enumerate(r)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in rows])
