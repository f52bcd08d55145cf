"""The DDE regressor: a two-level boosted cascade of random ferns on shape-indexed, mask-aware features.

Training (:func:`train_cascade`) follows paper §5 / Cao et al. 2014: every training crop carries its ground truth
S and P perturbed initial estimates S* (expression 15×, rotation, translation, identity, focal 5× each — made by the
data engine); the regressor learns to move Q = [R, t, x, D] from S* to S while u and f stay at the perturbed
values (D absorbs what a wrong identity or focal cannot explain, until the key-frame thread fixes u and f).

Per stage t: draw the stage's feature points (features.py), sample them for every estimate under the estimate's
current landmarks and the crop's mask, express the residual in normalised units (``unit``: per-dimension spread of
the initial residual, with equal total weight for pose, expression and displacements) and in its top-r principal
directions, fit K ferns of depth F (ferns.py), and apply the stage's update to every estimate.

Model file (``.npz``): ``format`` = "facecap-dde", ``version``, ``config`` (JSON), ``unit``, ``mean_*`` (the
initial shape for a fresh detection) and per stage ``s{t}_tri``, ``_bary``, ``_neighbours``, ``_pairs``,
``_thresholds``, ``_outputs`` (float16), ``_basis``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..rig import landmarks as L
from .features import FeaturePoints, make_feature_points, sample_features
from .ferns import Ferns, fern_sum, fit_ferns
from .shape import DIM, GROUPS, N_LANDMARKS, SLICES, CropCamera, ShapeBatch, ShapeModel

FORMAT, VERSION = "facecap-dde", 1


class ModelFileError(RuntimeError):
    """A tracker model file is missing, corrupt or of the wrong format: one line saying what to do."""


@dataclass
class CascadeConfig:
    stages: int = 10  # T
    ferns: int = 300  # K per stage
    depth: int = 5  # F
    points: int = 400  # P feature points per stage
    beta: float = 1000.0  # bin-output shrinkage
    max_rank: int = 64  # r: principal directions of the residual kept per stage
    energy: float = 0.995  # … or fewer, when they already hold this fraction of the residual energy
    use_masks: bool = True
    seed: int = 0


@dataclass
class Stage:
    points: FeaturePoints
    ferns: Ferns
    basis: np.ndarray  # (DIM, r) orthonormal, normalised units


@dataclass
class TrackingSet:
    """Estimates to regress: grey crops (M, S, S) with masks, and per estimate (N) the crop it looks at, its
    identity (fixed), its crop camera, its current shape and (in training) its target shape."""
    images: np.ndarray
    masks: np.ndarray | None
    image_index: np.ndarray
    identity: np.ndarray
    camera: CropCamera
    shape: ShapeBatch
    target: ShapeBatch | None = None
    landmarks: np.ndarray | None = None  # (M, 73, 2) ground-truth crop landmarks, for error reports
    visible: np.ndarray | None = None  # (M, 73)

    def __len__(self):
        return len(self.image_index)


@dataclass
class Regressor:
    config: CascadeConfig
    unit: np.ndarray  # (DIM,) normalised unit of each dimension
    mean_shape: dict  # rotation (3, 3), position (2,), log_scale, expression (46,) of an average face in a crop
    mean_landmarks: np.ndarray  # (73, 2) crop px
    stages: list = field(default_factory=list)
    info: dict = field(default_factory=dict)  # training provenance and metrics (model card)

    # ---------------------------------------------------------------------------------------------- inference
    def regress(self, model: ShapeModel, images, masks, image_index, identity, camera: CropCamera,
                shape: ShapeBatch, stages: int | None = None) -> ShapeBatch:
        """Run the cascade (or its first `stages` stages) from `shape`; returns the regressed shapes."""
        masks = masks if self.config.use_masks else None
        for st in self.stages[:stages]:
            lm = model.landmarks(shape, identity, camera)
            f = sample_features(images, masks, image_index, lm, st.points)
            acc = np.zeros((len(f), st.basis.shape[1]), np.float32)
            fern_sum(f, st.ferns.pairs, st.ferns.thresholds, st.ferns.outputs, acc)
            shape = shape.apply((acc.astype(np.float64) @ st.basis.T) * self.unit)
        return shape

    def initial_shape(self, n: int = 1) -> ShapeBatch:
        m = self.mean_shape
        return ShapeBatch(R=np.repeat(m["rotation"][None], n, 0), position=np.repeat(m["position"][None], n, 0),
                          log_scale=np.full(n, float(m["log_scale"])),
                          expression=np.repeat(m["expression"][None], n, 0),
                          displacement=np.zeros((n, N_LANDMARKS, 2)))

    # ---------------------------------------------------------------------------------------------- files
    def save(self, path: str) -> None:
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION),
                  "config": np.array(json.dumps(self.config.__dict__)), "n_stages": np.array(len(self.stages)),
                  "info": np.array(json.dumps(self.info)),
                  "unit": self.unit.astype(np.float32), "mean_landmarks": self.mean_landmarks.astype(np.float32),
                  "mean_rotation": self.mean_shape["rotation"], "mean_position": self.mean_shape["position"],
                  "mean_log_scale": np.array(self.mean_shape["log_scale"]),
                  "mean_expression": self.mean_shape["expression"]}
        for t, st in enumerate(self.stages):
            arrays.update({f"s{t}_tri": st.points.tri.astype(np.int16), f"s{t}_bary": st.points.bary,
                           f"s{t}_neighbours": st.points.neighbours.astype(np.int16),
                           f"s{t}_pairs": st.ferns.pairs.astype(np.int16),
                           f"s{t}_thresholds": st.ferns.thresholds.astype(np.float32),
                           f"s{t}_outputs": st.ferns.outputs.astype(np.float16),
                           f"s{t}_basis": st.basis.astype(np.float32)})
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)

    @staticmethod
    def load(path: str) -> "Regressor":
        if not os.path.isfile(path):
            raise ModelFileError(f"tracker model {path} not found: reinstall facecap or pass --tracker-model "
                                 f"with a file made by `python -m facecap_core.track.train`")
        try:
            with np.load(path, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
            if str(a["format"]) != FORMAT:
                raise ValueError(f"format {str(a['format'])!r}")
            if int(a["version"]) != VERSION:
                raise ValueError(f"version {int(a['version'])} (this facecap reads {VERSION})")
            config = CascadeConfig(**json.loads(str(a["config"])))
            stages = []
            for t in range(int(a["n_stages"])):
                pts = FeaturePoints(tri=a[f"s{t}_tri"].astype(np.int32), bary=a[f"s{t}_bary"].astype(np.float32),
                                    neighbours=a[f"s{t}_neighbours"].astype(np.int32))
                ferns = Ferns(pairs=a[f"s{t}_pairs"].astype(np.int32),
                              thresholds=a[f"s{t}_thresholds"].astype(np.float32),
                              outputs=a[f"s{t}_outputs"].astype(np.float32))
                basis = a[f"s{t}_basis"].astype(np.float64)
                if (pts.tri.max() >= N_LANDMARKS or ferns.pairs.max() >= len(pts.bary)
                        or basis.shape[0] != DIM or ferns.outputs.shape[2] != basis.shape[1]):
                    raise ValueError(f"stage {t} has inconsistent shapes")
                stages.append(Stage(points=pts, ferns=ferns, basis=basis))
            mean = {"rotation": a["mean_rotation"].astype(np.float64), "position": a["mean_position"].astype(
                np.float64), "log_scale": float(a["mean_log_scale"]),
                "expression": a["mean_expression"].astype(np.float64)}
            return Regressor(config=config, unit=a["unit"].astype(np.float64), mean_shape=mean,
                             mean_landmarks=a["mean_landmarks"].astype(np.float64), stages=stages,
                             info=json.loads(str(a["info"])))
        except ModelFileError:
            raise
        except Exception as exc:  # zip errors, missing keys, bad JSON …
            raise ModelFileError(f"tracker model {path} is corrupt or not a facecap tracker ({exc}): re-download "
                                 f"or retrain it (python -m facecap_core.track.train)") from None

    load_partial = load  # a model saved after some of its stages (training checkpoint) loads the same way

    def size_bytes(self) -> int:
        return sum(st.ferns.outputs.size * 2 + st.basis.nbytes // 2 + st.ferns.pairs.size * 2 for st in self.stages)


# --------------------------------------------------------------------------------------------------------- training
def normalising_unit(residual: np.ndarray) -> np.ndarray:
    """(DIM,) unit per dimension: its spread in the initial residual, then scaled so that pose (rotation, position,
    scale), expression and displacements carry equal total weight."""
    spread = np.sqrt(np.mean(residual ** 2, axis=0))
    unit = np.empty(DIM)
    pose = [SLICES[g] for g in ("rotation", "position", "log_scale")]
    blocks = [(pose, 6), ([SLICES["expression"]], GROUPS[3][1]), ([SLICES["displacement"]], GROUPS[4][1])]
    for slices, n in blocks:
        for s in slices:
            floor = max(np.median(spread[s]) * 0.1, 1e-6)
            unit[s] = np.maximum(spread[s], floor) * np.sqrt(3.0 * n)
    return unit


def landmark_error(lm: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """(N,) NME in % (design §8): mean error over the 68 iBUG points / outer-eye-corner distance."""
    a, b = L.IBUG_OUTER_EYE_CORNERS
    iod = np.linalg.norm(gt[:, a] - gt[:, b], axis=1)
    err = np.linalg.norm(lm[:, :68] - gt[:, :68], axis=2)
    if visible is not None:
        w = visible[:, :68].astype(np.float64)
        return 100 * (err * w).sum(1) / np.maximum(w.sum(1), 1) / np.maximum(iod, 1e-6)
    return 100 * err.mean(1) / np.maximum(iod, 1e-6)


def evaluate(reg: Regressor, model: ShapeModel, data: TrackingSet, stages: int | None = None) -> dict:
    """Median / mean NME of the regressed estimates against the crops' ground-truth landmarks (all 68 points)."""
    shape = reg.regress(model, data.images, data.masks, data.image_index, data.identity, data.camera,
                        data.shape.copy(), stages)
    lm = model.landmarks(shape, data.identity, data.camera)
    e = landmark_error(lm, data.landmarks[data.image_index])
    e0 = landmark_error(model.landmarks(data.shape, data.identity, data.camera), data.landmarks[data.image_index])
    out = {"nme_median": float(np.median(e)), "nme_mean": float(np.mean(e)), "init_nme_median": float(np.median(e0))}
    if data.target is not None:
        out["expression_mae"] = float(np.mean(np.abs(shape.expression - data.target.expression)))
    return out


def train_cascade(model: ShapeModel, train: TrackingSet, config: CascadeConfig, val: TrackingSet | None = None,
                  log=print, stage_done=None, start: Regressor | None = None) -> Regressor:
    """Fit the cascade on `train` (its `shape` are the initial estimates, `target` the ground truth). `start`: a
    regressor with the first stages already trained on the same set (resume); stage t draws its randomness from
    (seed, t) only, so a resumed run trains the same stages as an uninterrupted one."""
    masks = train.masks if config.use_masks else None
    tgt = train.target
    gt_lm = train.landmarks[train.image_index]
    if start is None:
        unit = normalising_unit(tgt.difference(train.shape))
        mean_shape = {"rotation": mean_rotation(tgt.R), "position": tgt.position.mean(0),
                      "log_scale": float(tgt.log_scale.mean()), "expression": tgt.expression.mean(0)}
        reg = Regressor(config=config, unit=unit, mean_shape=mean_shape,
                        mean_landmarks=np.nanmean(train.landmarks, axis=0))
        shape = train.shape.copy()
    else:
        reg = start
        shape = reg.regress(model, train.images, train.masks, train.image_index, train.identity, train.camera,
                            train.shape.copy())
    e = landmark_error(model.landmarks(shape, train.identity, train.camera), gt_lm)
    log(f"stage {len(reg.stages)}: train NME median {np.median(e):.2f}% mean {np.mean(e):.2f}% on {len(train)} "
        f"estimates of {len(train.images)} crops")
    for t in range(len(reg.stages), config.stages):
        t0 = time.time()
        rng = np.random.default_rng([config.seed, t])
        lm = model.landmarks(shape, train.identity, train.camera)
        points = make_feature_points(reg.mean_landmarks, config.points, rng)
        feats = sample_features(train.images, masks, train.image_index, lm, points)
        Y = tgt.difference(shape) / reg.unit
        evals, evecs = np.linalg.eigh(Y.T @ Y)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        cum = np.cumsum(evals) / max(evals.sum(), 1e-12)
        r = int(min(config.max_rank, np.searchsorted(cum, config.energy) + 1))
        basis = np.ascontiguousarray(evecs[:, :r])
        Yr = Y @ basis
        Yr0 = Yr.copy()
        ferns = fit_ferns(feats, Yr, config.ferns, config.depth, config.beta, rng)
        ferns.outputs = ferns.outputs.astype(np.float16).astype(np.float32)  # what the shipped file holds
        shape = shape.apply((Yr0 - Yr) @ basis.T * reg.unit)
        reg.stages.append(Stage(points=points, ferns=ferns, basis=basis))
        e = landmark_error(model.landmarks(shape, train.identity, train.camera), gt_lm)
        entry = {"stage": t + 1, "rank": r, "energy": float(cum[r - 1]), "train_nme_median": float(np.median(e)),
                 "train_nme_mean": float(np.mean(e)), "seconds": round(time.time() - t0, 1)}
        msg = (f"stage {t + 1}/{config.stages}: rank {r} ({cum[r - 1] * 100:.1f}% of the residual), train NME "
               f"median {np.median(e):.2f}% mean {np.mean(e):.2f}%, {time.time() - t0:.0f} s")
        if val is not None:
            m = evaluate(reg, model, val)
            entry.update({f"val_{k}": v for k, v in m.items()})
            msg += f"; val NME median {m['nme_median']:.2f}% mean {m['nme_mean']:.2f}%"
        reg.info.setdefault("curve", []).append(entry)
        log(msg)
        if stage_done is not None:
            stage_done(reg, t)
    return reg


def mean_rotation(R: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(R.mean(0))
    M = U @ Vt
    if np.linalg.det(M) < 0:
        U[:, -1] *= -1
        M = U @ Vt
    return M

