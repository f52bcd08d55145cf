"""Tracking training sets from the data engine's `tracking` shards (facecap data build --kinds tracking).

Each shard row is a 160×160 face crop with its ground truth S = {R, t, x, u, f} (source-frame camera + the
frame→crop affine), its 73 landmarks, mask and visibility, and P perturbed initial estimates S* (paper §5). One
estimate per (crop, S*) pair:

* camera: the crop camera of the estimate's (possibly perturbed) focal; identity: its (possibly perturbed) u;
* initial shape: (R*, t*, x*) seen through the crop camera of the *true* focal (so a focal or identity perturbation
  changes the perspective and the face's proportions, not where the face is), with D* = 0 for half of the
  estimates and the target D (plus 0.5 px noise) for the other half — at run time D starts at the previous frame's;
* target shape: the ground truth (R, position, scale, x) and D = ground-truth landmarks − the rig's landmarks under
  the estimate's own u and f (what a wrong identity or focal leaves for the displacements).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..rig.geometry import default_focal, quat_to_matrix
from .cascade import TrackingSet, mean_rotation
from .shape import CROP_SIZE, CropCamera, ShapeBatch, ShapeModel, rodrigues


def grey(images: np.ndarray) -> np.ndarray:
    """(M, H, W, 3) RGB uint8 → (M, H, W) uint8 grey, lightly smoothed (σ = 0.8 px) so single-pixel noise does not
    flip fern bits."""
    out = np.empty(images.shape[:3], np.uint8)
    for i, im in enumerate(images):
        out[i] = cv2.GaussianBlur(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (0, 0), 0.8)
    return out


def load_rows(view, limit: int | None = None, rng: np.random.Generator | None = None) -> dict:
    """All rows of a dataset view (or `limit` random ones) as stacked arrays."""
    n = len(view)
    idx = np.arange(n) if limit is None or limit >= n else np.sort(rng.choice(n, limit, replace=False))
    parts = {}
    for batch in view.batches(4096, rng=None):
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    rows = {k: np.concatenate(v) for k, v in parts.items() if k != "init_perturbed"}  # per shard, not per row
    return {k: v[idx] for k, v in rows.items()}


@dataclass
class InitPolicy:
    """How initial estimates are made from the data engine's perturbed S*.

    On top of the paper's one-kind-at-a-time perturbations, every estimate gets a little of everything (at run time
    the previous frame is off in all parameters at once), and `detection_fraction` of them start from the mean face
    placed in the crop (what a fresh Viola–Jones detection gives: mean pose and expression, box-level jitter)."""
    keep_d_fraction: float = 0.5  # estimates whose D starts at the target's (else 0)
    jitter_rotation_deg: float = 2.0
    jitter_position_px: float = 2.0
    jitter_scale: float = 0.02
    detection_fraction: float = 0.2
    detection_rotation_deg: float = 8.0
    detection_position_px: float = 8.0
    detection_scale: float = 0.08
    detection_max_yaw: float = 35.0  # degrees
    # estimates whose identity is the mean face's (u = 0): what the tracker has until the first Eq. 3 solve. With
    # only the data engine's near-true identities, the masked regressor tracked a held-out clip at 8.5 % NME
    # until u was solved, against 4 % after (benchmarks/track_real_clip.py)
    unknown_identity_fraction: float = 0.3
    # estimates seen through the 60° guess (rig.geometry.default_focal) instead of near the label's focal, so that D
    # learns the perspective difference the guess leaves on footage of unknown focal. An ablation, off by default:
    # tracking through a longer lens at run time (tracker.GUESS_LENS_SCALE) did more (models/segmenter_lite_history.md)
    runtime_focal_fraction: float = 0.0


def _jitter(shape: ShapeBatch, rng, rot_deg: float, pos_px: float, scale: float) -> None:
    n = len(shape)
    shape.R = rodrigues(rng.normal(0, np.radians(rot_deg), (n, 3))) @ shape.R
    shape.position += rng.normal(0, pos_px, (n, 2))
    shape.log_scale += rng.normal(0, scale, n)


def tracking_set(rows: dict, model: ShapeModel, rng: np.random.Generator, inits_per_sample: int | None = None,
                 policy: InitPolicy | None = None) -> TrackingSet:
    """Estimates for every crop of `rows` × its perturbed initial estimates (or a random `inits_per_sample`)."""
    policy = policy or InitPolicy()
    if int(rows["image"].shape[1]) != CROP_SIZE:
        raise ValueError(f"tracking crops must be {CROP_SIZE} px (got {rows['image'].shape[1]}): rebuild the "
                         f"dataset with --track-size {CROP_SIZE}")
    m, p = rows["init_rotation"].shape[:2]
    k = p if inits_per_sample is None else min(p, inits_per_sample)
    choice = np.stack([rng.choice(p, k, replace=False) for _ in range(m)]) if k < p else np.tile(np.arange(p), (m, 1))
    img = np.repeat(np.arange(m), k)
    sel = (img, choice.ravel())

    true_cam = CropCamera.from_affine(rows["crop_affine"][img], rows["focal"][img], rows["image_size"][img])
    focal = rows["init_focal"][sel].astype(np.float64)
    if policy.runtime_focal_fraction > 0:  # no draw otherwise: earlier recipes keep their random streams
        run = rng.random(len(img)) < policy.runtime_focal_fraction
        focal[run] = [default_focal(size) for size in rows["image_size"][img][run]]
    cam = CropCamera.from_affine(rows["crop_affine"][img], focal, rows["image_size"][img])
    identity = rows["init_identity"][sel].astype(np.float64)
    identity[rng.random(len(img)) < policy.unknown_identity_fraction] = 0.0  # D then carries the identity's part

    target = model.from_params(quat_to_matrix(rows["rotation"][img]), rows["translation"][img],
                               rows["expression"][img], true_cam)
    gt_lm = rows["landmarks"][img].astype(np.float64)
    rig_lm = model.rig_landmarks(target, identity, cam)
    d = gt_lm - rig_lm
    target.displacement = np.where(np.isfinite(d), d, 0.0)

    init = model.from_params(quat_to_matrix(rows["init_rotation"][sel]), rows["init_translation"][sel],
                             rows["init_expression"][sel], true_cam)
    keep = rng.random(len(img)) < policy.keep_d_fraction
    init.displacement[keep] = target.displacement[keep] + rng.normal(0, 0.5, target.displacement[keep].shape)
    _jitter(init, rng, policy.jitter_rotation_deg, policy.jitter_position_px, policy.jitter_scale)
    # the Viola-Jones detector is frontal: only near-frontal faces start from the mean face
    yaw = np.degrees(np.arctan2(target.R[:, 0, 2], target.R[:, 2, 2]))
    det = np.flatnonzero((rng.random(len(img)) < policy.detection_fraction) & (np.abs(yaw) < policy.detection_max_yaw))
    if len(det):
        mean = ShapeBatch(R=np.repeat(mean_rotation(target.R)[None], len(det), 0),
                          position=np.repeat(target.position.mean(0)[None], len(det), 0),
                          log_scale=np.full(len(det), target.log_scale.mean()),
                          expression=np.repeat(target.expression.mean(0)[None], len(det), 0),
                          displacement=np.zeros((len(det),) + target.displacement.shape[1:]))
        _jitter(mean, rng, policy.detection_rotation_deg, policy.detection_position_px, policy.detection_scale)
        for k in ("R", "position", "log_scale", "expression", "displacement"):
            getattr(init, k)[det] = getattr(mean, k)

    masks = rows["mask"].astype(np.uint8)
    return TrackingSet(images=grey(rows["image"]), masks=masks, image_index=img, identity=identity, camera=cam,
                       shape=init, target=target, landmarks=rows["landmarks"].astype(np.float64),
                       visible=rows["visible"])


def subset(data: TrackingSet, estimates: np.ndarray) -> TrackingSet:
    """The estimates `estimates` of a set (crops shared)."""
    c = data.camera
    return TrackingSet(images=data.images, masks=data.masks, image_index=data.image_index[estimates],
                       identity=data.identity[estimates],
                       camera=CropCamera(c.focal[estimates], c.centre[estimates], c.roll[estimates]),
                       shape=data.shape.take(estimates),
                       target=None if data.target is None else data.target.take(estimates),
                       landmarks=data.landmarks, visible=data.visible)

