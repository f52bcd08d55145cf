"""Run-time DDE tracking (paper §5, Fig. 1 right half): one frame at a time, from the previous frame's Q.

    tracker = FaceTracker.load_default(image_size=(640, 480))
    result = tracker.track(frame_rgb, mask)        # mask: the segmenter's full-frame mask (255 = face) or None

Per frame:

1. **Crop.** A CROP_SIZE square around the previous frame's landmarks (margin CROP_MARGIN, as in training), or —
   with no previous frame — around a Viola-Jones detection, placed with the calibration measured in training.
2. **Regress.** Q of the previous frame (or the mean face, from several jittered starts whose median wins, after a
   detection) is carried into the new crop's camera and run through the cascade on the grey crop and the mask.
3. **Check.** Tracking is declared lost — and the next frame re-detects instead of drifting — when the landmarks
   collapse or explode (landmark box < 12 px or bigger than the frame), leave the frame, when the head turns past
   ±100° yaw, or when the segmentation sees (almost) no face inside the tracked face oval for `lost_after` frames.
   Every `verify_every` frames a detection confirms that the face is still where the tracker thinks it is.
   A frame whose face is hidden (under HIDDEN_FRACTION of the oval is face in the mask: a hand over all of it, or
   the face gone) is reported untracked and the last good estimate is held, so the regression does not drift on
   pixels that say nothing; tracking resumes from it when the face shows again, or starts over after
   `lost_after` hidden frames.
4. **Identity and focal** (Eq. 3) are solved on key-frames by :class:`KeyframeSolver` on its own thread; new values
   are picked up at the start of a frame, never waited for.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..rig import landmarks as L
from ..rig.fit import FitRig, FitWeights, solve_identity_focal
from ..rig.geometry import default_focal, matrix_to_quat
from ..rig.model import N_IDENTITY, load_rig
from .cascade import Regressor, mean_rotation
from .smoothing import PoseSmoother
from .shape import CROP_MARGIN, CROP_SIZE, CropCamera, ShapeBatch, ShapeModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.join(ROOT, "models", "tracker_dde.npz")
# With no focal given, the regressor works through a lens this many times longer than the 60° guess, and the pose
# it reports is brought back to the guess. The teacher's landmarks, which the regressor learnt from, are fit best by
# long lenses (label focal 2-175× the guess on the real clips, 9.6× on the photos; 1.5× even on true-perspective
# renders), and through the guess the tracker put the jaw 1-6 % IOD too high: tracking through 8× lowered the
# median NME on 22 of the 24 labelled clips, 2.64 → 2.11 % on average (benchmarks/track_clip_survey.py).
GUESS_LENS_SCALE = 8.0
HIDDEN_FRACTION = 0.1  # below this fraction of the tracked face oval seen as face, the face counts as hidden
DRIFT_IOD = 0.2  # periodic check: a fresh estimate this far (mean landmark distance / IOD) replaces the track


@dataclass
class TrackResult:
    """One frame. tracked False → every other field but `reason` is None. Pose in the frame's camera (OpenCV)."""
    tracked: bool
    landmarks: np.ndarray | None = None  # (73, 2) frame px
    rotation: np.ndarray | None = None  # (3, 3)
    translation: np.ndarray | None = None  # (3,) cm
    expression: np.ndarray | None = None  # (46,)
    bbox: tuple | None = None  # landmark box (x, y, w, h)
    face_visible: float | None = None  # fraction of the tracked face oval the segmentation calls face
    reinitialised: bool = False
    reason: str = ""
    ms: dict = field(default_factory=dict)
    raw: dict | None = None  # with smoothing on: the unfiltered rotation, translation, expression and landmarks

    @property
    def quaternion(self) -> np.ndarray:
        return matrix_to_quat(self.rotation)


def landmark_crop_affine(landmarks: np.ndarray, size: int = CROP_SIZE, margin: float = CROP_MARGIN) -> np.ndarray:
    """Frame px → crop px, square around the landmark box (the data engine's face_crop_affine rule)."""
    lo, hi = landmarks.min(0), landmarks.max(0)
    centre, side = (lo + hi) / 2, max(float(np.max(hi - lo)) * margin, 8.0)
    s = size / side
    return np.array([[s, 0, (size - 1) / 2 - s * centre[0]], [0, s, (size - 1) / 2 - s * centre[1]]])


def grey_crop(frame: np.ndarray, affine: np.ndarray) -> np.ndarray:
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    crop = cv2.warpAffine(g, affine, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.GaussianBlur(crop, (0, 0), 0.8)  # as data.grey() in training


class KeyframeSolver:
    """Eq. 3 on a concurrent thread. `offer()` (tracking thread, cheap) keeps a frame when its expression or pose
    is new (far from every key-frame so far); once `min_frames` are kept and new ones arrived, the worker re-solves
    u and f over them and publishes the result, which `latest()` hands to the tracker."""

    def __init__(self, rig, image_size, u0=None, f0=None, max_frames: int = 12, min_frames: int = 3,
                 expression_novelty: float = 0.35, pose_novelty_deg: float = 12.0, threaded: bool = True,
                 focal_prior: float = 1000.0, identity_prior: float = 10.0):
        self.fr = rig if isinstance(rig, FitRig) else FitRig(rig)
        self.image_size = tuple(image_size)
        self.identity = np.zeros(N_IDENTITY) if u0 is None else np.asarray(u0, np.float64)
        self.focal = float(default_focal(self.image_size) if f0 is None else f0)
        self.focal0, self.focal_range = self.focal, (0.5, 2.0)
        # measured on synthetic sequences (benchmarks/bench_track.py): on tracked landmarks (≈3 % NME of noise) the
        # default identity prior lets u run off (|Δu| 40-60 for |u| ≈ 7) and f drift to 0.5-1.9×; a 100× stronger
        # identity prior and a firm focal prior keep the solve helpful instead of harmful. With the longer lens
        # (GUESS_LENS_SCALE) 1000× was better still: over the 24 labelled clips (benchmarks/track_clip_survey.py)
        # 2.11 → 2.03 % NME on average, lower on 16 and higher on 6; on one clip a 100× prior had let u break the
        # mouth (2.60 → 1.80 %); on the synthetic sequences equal or better
        self.focal_prior = focal_prior  # cm² per key-frame: see solve_identity_focal
        self.weights = FitWeights(identity=identity_prior)
        self.rejected = 0
        self.max_frames, self.min_frames = max_frames, min_frames
        self.expression_novelty, self.pose_novelty = expression_novelty, np.radians(pose_novelty_deg)
        self.frames: list = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._version, self._taken = 0, 0
        self.solves, self.last_ms = 0, 0.0
        self.min_gap_s = 1.0
        # without the thread (footage): a solve every `min_gap_frames` tracked frames at most, counted in frames so
        # that the same clip gives the same take
        self.min_gap_frames, self._since_solve = 30, 30
        self._dirty = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="facecap-eq3") if threaded else None
        if self._thread:
            self._thread.start()

    def offer(self, landmarks, R, t, x) -> bool:
        """A tracked frame; kept as a key-frame when novel. Returns whether it was kept."""
        self._since_solve += 1
        kept = self._keep(landmarks, R, t, x)
        if kept:
            self._wake.set()
        if self._thread is None and self._dirty and self._since_solve >= self.min_gap_frames:
            self._since_solve = 0
            self.solve_now()
        return kept

    def _keep(self, landmarks, R, t, x) -> bool:
        with self._lock:
            for (_, R2, _, x2) in self.frames:
                angle = np.arccos(np.clip((np.trace(R @ R2.T) - 1) / 2, -1, 1))
                if np.abs(x - x2).sum() < self.expression_novelty and angle < self.pose_novelty:
                    return False
            self.frames.append((np.asarray(landmarks, np.float64).copy(), R.copy(), t.copy(), x.copy()))
            if len(self.frames) > self.max_frames:
                self.frames.pop(1)  # keep the first (usually frontal neutral) frame, drop the oldest other
            self._dirty = True
        return True

    def solve_now(self) -> None:
        with self._lock:
            if len(self.frames) < self.min_frames or not self._dirty:
                return
            frames, u0, f0 = list(self.frames), self.identity.copy(), self.focal
            self._dirty = False
        t0 = time.perf_counter()
        try:
            res = solve_identity_focal(frames, self.image_size, self.fr, u0=u0, f0=f0, iterations=3, rounds=2,
                                       focal_prior=self.focal_prior, reg=self.weights)
        except ValueError:
            return
        ms = (time.perf_counter() - t0) * 1000
        # accept only a solve that explains the key-frames (bad landmarks must not drag u and f away)
        size = float(np.median([np.ptp(p, axis=0).max() for p, *_ in frames]))
        plausible = (res.rms < 0.03 * size and self.focal_range[0] <= res.focal / self.focal0 <= self.focal_range[1]
                     and np.all(np.isfinite(res.identity)))
        self.rejected += not plausible
        if plausible:
            with self._lock:
                self.identity, self.focal = res.identity, res.focal
                self._version += 1
                self.solves += 1
                self.last_ms = ms

    def latest(self):
        """(u, f) when a newer solve than the last one taken exists, else None."""
        with self._lock:
            if self._version == self._taken:
                return None
            self._taken = self._version
            return self.identity.copy(), self.focal

    def _run(self):
        while not self._stop:
            self._wake.wait(0.5)
            self._wake.clear()
            if not self._stop:
                t0 = time.monotonic()
                self.solve_now()
                # at most one solve per `min_gap_s`: on a 2-core machine every solve takes CPU from the pipeline
                time.sleep(max(0.0, self.min_gap_s - (time.monotonic() - t0)))

    def close(self):
        self._stop = True
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)


class FaceTracker:
    def __init__(self, regressor: Regressor, rig=None, image_size=(640, 480), focal: float | None = None,
                 detector=None, keyframes: bool = True, threaded_keyframes: bool = True, restarts: int = 5,
                 verify_every: int = 15, lost_after: int = 8, smoothing: bool | float = False, fps: float = 30.0,
                 ensemble: int = 1, d_shrink: float = 0.7, lens_scale: float | None = None):
        rig = rig or load_rig()
        self.reg = regressor
        self.model = ShapeModel(rig)
        self.image_size = tuple(int(v) for v in image_size)
        # the regression's camera is `lens_scale` times longer than the reported one (see GUESS_LENS_SCALE); poses
        # go out with their depth divided by it, so the face lands at the same place and size in the image
        self.lens_scale = float(lens_scale or (1.0 if focal else GUESS_LENS_SCALE))
        self.track_focal = float(focal or default_focal(self.image_size)) * self.lens_scale
        self.identity = np.zeros(N_IDENTITY)
        self.detector = detector
        self.restarts, self.verify_every, self.lost_after = restarts, verify_every, lost_after
        # smoothing: False/0 off, True the default One Euro settings, a number their strength (PoseSmoother)
        self.smoother = PoseSmoother(strength=float(smoothing)) if smoothing else None
        # fraction of the previous frame's displacements D the next frame starts from. Carried in full, D soaks up
        # the regression's errors frame after frame and wanders (synthetic sequences, benchmarks/bench_track.py:
        # jitter 2.3 → 0.8 % of IOD and moving-face NME 3.7 → 1.7 % going from 1.0 to 0.7; 0.4 is no better)
        self.d_shrink = d_shrink
        self.ensemble = ensemble
        self.fps = fps
        self.keyframes = KeyframeSolver(self.model.fr, self.image_size, f0=self.track_focal,
                                        threaded=threaded_keyframes) if keyframes else None
        if self.keyframes is not None:
            self.keyframes.min_gap_frames = max(1, int(round(fps)))  # about once a second of footage
        self.reset()

    @property
    def focal(self) -> float:
        """The reported focal length (px): the guess or the given one, as refined by the key-frame solves."""
        return self.track_focal / self.lens_scale

    @focal.setter
    def focal(self, value: float) -> None:
        self.track_focal = float(value) * self.lens_scale

    def _lens_change(self, R: np.ndarray, t: np.ndarray, depth_factor: float) -> np.ndarray:
        """t for a camera whose focal is 1/depth_factor times this one's: the face's reference point (what the
        regression's position and scale describe) moves along its ray to depth × depth_factor, so it stays at the
        same pixel and image size."""
        ref = R @ self.model.reference
        return (ref + t) * np.array([1.0, 1.0, depth_factor]) - ref

    def _reported(self, R: np.ndarray, t: np.ndarray) -> np.ndarray:
        """A translation of the regression's camera in the reported camera's frame."""
        return self._lens_change(R, np.asarray(t, np.float64), 1.0 / self.lens_scale)

    @classmethod
    def load_default(cls, path: str | None = None, **kw) -> "FaceTracker":
        return cls(Regressor.load(path or DEFAULT_MODEL), **kw)

    def reset(self):
        self.prev = None  # (landmarks frame px, R, t, x, D frame px)
        self.frame_index = 0
        self.unseen = 0
        if getattr(self, "smoother", None) is not None:
            self.smoother.reset()

    def close(self):
        if self.keyframes:
            self.keyframes.close()

    def start(self, R, t, x, identity=None) -> None:
        """Track on from a known state (frame-camera R (3, 3), t (3,) cm, x (46,)) instead of detecting: a resumed
        session, or a test that knows the first frame."""
        if identity is not None:
            self.identity = np.asarray(identity, np.float64)
        cam = self._camera(np.array([[1.0, 0, 0], [0, 1.0, 0]]))
        R = np.asarray(R, np.float64)
        t = self._lens_change(R, np.asarray(t, np.float64), self.lens_scale)  # into the regression's camera
        shape = self.model.from_params(R[None], t[None], np.asarray(x)[None], cam)
        lm = self.model.landmarks(shape, self.identity[None], cam)[0]
        self.prev = (lm, R, t, np.asarray(x, np.float64), np.zeros_like(lm))

    # ------------------------------------------------------------------------------------------------ helpers
    def _camera(self, affine: np.ndarray, n: int = 1) -> CropCamera:
        cam = CropCamera.from_affine(affine[None], np.array([self.track_focal]), np.array([self.image_size]))
        return CropCamera(np.repeat(cam.focal, n), np.repeat(cam.centre, n, 0), np.repeat(cam.roll, n, 0))

    def _detect(self, frame):
        if self.detector is None:
            from ..detect.viola_jones import FaceDetector  # noqa: PLC0415

            self.detector = FaceDetector()
        boxes = self.detector.detect(frame)
        return boxes[0] if len(boxes) else None

    def _detect_near(self, frame, box):
        """A detection near the tracked face (a cheap scan around it when the detector offers one)."""
        if self.detector is None:
            return self._detect(frame)
        near = getattr(self.detector, "detect_near", None)
        boxes = near(frame, box) if near is not None else self.detector.detect(frame)
        return boxes[0] if len(boxes) else None

    def _detection_affine(self, box) -> np.ndarray:
        cal = self._calibration()
        x, y, w, h = box
        centre = np.array([x + w / 2 + cal["dx"] * w, y + h / 2 + cal["dy"] * w])
        half = cal["side"] * w / 2
        return landmark_crop_affine(np.array([centre - half, centre + half]))

    def _calibration(self) -> dict:
        return self.reg.info.get("detector", {"side": 1.0, "dx": 0.0, "dy": 0.08})

    def face_box(self):
        """The Viola-Jones-like face box (x, y, w, h) of the last tracked frame (None when not tracking): where the
        segmenter should crop the next frame."""
        return None if self.prev is None else self.face_box_of(self.prev[0])

    def face_box_of(self, lm: np.ndarray) -> np.ndarray:
        """The Viola-Jones-like face box (x, y, w, h) of 73 landmarks (the inverse of the detection calibration)."""
        lo, hi = lm.min(0), lm.max(0)
        cal = self._calibration()
        w = float(np.max(hi - lo)) / cal["side"]
        c = (lo + hi) / 2 - np.array([cal["dx"], cal["dy"]]) * w
        return np.array([c[0] - w / 2, c[1] - w / 2, w, w])

    def _regress(self, crop, crop_mask, affine, shape: ShapeBatch):
        n = len(shape)
        cam = self._camera(affine, n)
        ident = np.repeat(self.identity[None], n, 0)
        out = self.reg.regress(self.model, crop[None], None if crop_mask is None else crop_mask[None],
                               np.zeros(n, np.int64), ident, cam, shape)
        return out, cam, self.model.landmarks(out, ident, cam)

    def _crop_mask(self, mask, affine: np.ndarray, prev) -> np.ndarray:
        """The (CROP_SIZE, CROP_SIZE) mask the regressor reads for a crop of the frame."""
        if hasattr(mask, "to_crop"):
            return mask.to_crop(affine, CROP_SIZE)
        if mask is not None:
            return cv2.warpAffine(np.ascontiguousarray(mask, np.uint8), affine, (CROP_SIZE, CROP_SIZE),
                                  flags=cv2.INTER_NEAREST, borderValue=0)
        # no segmentation: the face region of the previous estimate (the mean face after a detection), so a
        # regressor trained on masked features still sees face pixels only
        lm = (prev[0] - prev[4]) @ affine[:, :2].T + affine[:, 2] if prev is not None \
            else self.reg.mean_landmarks  # the rig's landmarks, without D: a regular face outline
        return face_polygon_mask(lm, (CROP_SIZE, CROP_SIZE), grow=3)

    def _from_detection(self, crop, crop_mask, affine):
        """The mean face started `restarts` times, jittered, in a detection's crop; the median estimate wins."""
        shape = self.reg.initial_shape(self.restarts)
        rng = np.random.default_rng(self.frame_index)
        shape.position[1:] += rng.normal(0, 4.0, (self.restarts - 1, 2))
        shape.log_scale[1:] += rng.normal(0, 0.04, self.restarts - 1)
        out, cam, lm = self._regress(crop, crop_mask, affine, shape)
        med = np.median(lm, axis=0)
        best = int(np.argmin(np.linalg.norm(lm - med, axis=2).mean(1)))
        return out.take([best]), CropCamera(cam.focal[[best]], cam.centre[[best]], cam.roll[[best]]), lm[[best]]

    def _to_frame(self, out, cam, lm, affine):
        """(landmarks frame px, R, t, x, D frame px) of a one-estimate regression result in a crop."""
        R, t = self.model.to_params(out, cam)
        s = affine[0, 0]
        return (lm[0] - affine[:, 2]) / s, R[0], t[0], out.expression[0], out.displacement[0] / s

    def _verify(self, frame, mask, box, lm_frame):
        """A fresh estimate from the detection `box`; returned (as `_to_frame`) when the tracked landmarks are
        more than DRIFT_IOD inter-ocular distances away from it on average, else None. A detection box alone
        misses a track locked in a wrong pose over the right face (an occluder passing by can leave it so)."""
        affine = self._detection_affine(box)
        crop_mask = self._crop_mask(mask, affine, None)
        fresh = self._to_frame(*self._from_detection(grey_crop(frame, affine), crop_mask, affine), affine)
        iod = float(np.linalg.norm(fresh[0][36] - fresh[0][45]))  # outer eye corners (iBUG 68)
        drift = float(np.linalg.norm(lm_frame - fresh[0], axis=1).mean()) / max(iod, 1e-6)
        return fresh if drift > DRIFT_IOD else None

    # ------------------------------------------------------------------------------------------------ per frame
    def track(self, frame: np.ndarray, mask: np.ndarray | None = None, detection=None) -> TrackResult:
        """frame (H, W, 3) uint8 RGB (or grey); mask (H, W) uint8, non-zero = face, or a segmentation's CropMask
        (mapped straight into the tracker's crop), or None (no segmentation). detection: a face box (x, y, w, h)
        this tracker's detector already found on this frame (the engine's segmentation stage detects too): used
        instead of detecting again when the tracker has to start over."""
        t0 = time.perf_counter()
        ms = {}
        self.frame_index += 1
        if self.keyframes is not None:
            new = self.keyframes.latest()
            if new is not None:
                self.identity, self.track_focal = new
        reinit = self.prev is None
        if reinit:
            t1 = time.perf_counter()
            box = self._detect(frame) if detection is None else np.asarray(detection, np.float64)
            if detection is None:
                ms["detect"] = (time.perf_counter() - t1) * 1000
            if box is None:
                return TrackResult(False, reason="no face detected", ms=ms)
            affine = self._detection_affine(box)
        else:
            affine = landmark_crop_affine(self.prev[0])
        crop = grey_crop(frame, affine)
        crop_mask = self._crop_mask(mask, affine, None if reinit else self.prev)
        t1 = time.perf_counter()
        if reinit:
            out, cam, lm = self._from_detection(crop, crop_mask, affine)
        else:
            _, R, t, x, D = self.prev
            cam = self._camera(affine)
            shape = self.model.from_params(R[None], t[None], x[None], cam)
            shape.displacement = (self.d_shrink * D * affine[0, 0])[None]
            if self.ensemble > 1:  # several slightly shifted starts, averaged: damps the ferns' bin flips
                shape = shape.take(np.zeros(self.ensemble, np.int64))
                rng = np.random.default_rng(self.frame_index)
                shape.position[1:] += rng.normal(0, 1.0, (self.ensemble - 1, 2))
                shape.log_scale[1:] += rng.normal(0, 0.01, self.ensemble - 1)
                out, cam, lm = self._regress(crop, crop_mask, affine, shape)
                out = ShapeBatch(R=mean_rotation(out.R)[None], position=out.position.mean(0, keepdims=True),
                                 log_scale=out.log_scale.mean(keepdims=True),
                                 expression=out.expression.mean(0, keepdims=True),
                                 displacement=out.displacement.mean(0, keepdims=True))
                cam = CropCamera(cam.focal[:1], cam.centre[:1], cam.roll[:1])
                lm = self.model.landmarks(out, self.identity[None], cam)
            else:
                out, cam, lm = self._regress(crop, crop_mask, affine, shape)
        ms["regress"] = (time.perf_counter() - t1) * 1000
        lm_frame, R, t, x, D = self._to_frame(out, cam, lm, affine)
        visible = face_visible_fraction(lm[0], crop_mask) if mask is not None else None
        if visible is not None and visible < HIDDEN_FRACTION and self.prev is not None and not reinit:
            self.unseen += 1
            if self.unseen < self.lost_after:
                return TrackResult(False, reason="face hidden: holding the last estimate", face_visible=visible,
                                   ms=ms)
            self.unseen, self.prev = 0, None
            return TrackResult(False, reason="no face in the segmentation", face_visible=visible, ms=ms)
        self.unseen = 0
        reason = self._lost(lm_frame, R)
        if not reason and reinit and visible is not None and visible < HIDDEN_FRACTION:
            reason = "no face in the segmentation"
        if not reason and self.verify_every and not reinit and self.frame_index % self.verify_every == 0:
            t1 = time.perf_counter()
            box = self._detect_near(frame, self.face_box_of(lm_frame))
            if box is not None and _box_iou(box, _lm_box(lm_frame)) < 0.3:
                reason = "a detection disagrees with the tracked face"
            elif box is not None:
                fresh = self._verify(frame, mask, box, lm_frame)
                if fresh is not None:  # the track had drifted (e.g. locked in a wrong pose after an occluder)
                    (lm_frame, R, t, x, D), reinit = fresh, True
            ms["verify"] = (time.perf_counter() - t1) * 1000
        if reason:
            self.prev = None
            return TrackResult(False, reason=reason, ms=ms, reinitialised=reinit)
        self.prev = (lm_frame, R, t, x, D)
        if self.keyframes is not None:
            self.keyframes.offer(lm_frame, R, t, x)
        raw, t = None, self._reported(R, t)
        if self.smoother is not None:  # the regression goes on from the raw values; only the output is smoothed
            if reinit:
                self.smoother.reset()
            raw = {"landmarks": lm_frame, "rotation": R, "translation": t, "expression": x.copy()}
            lm_frame, x, R, t = self.smoother(1.0 / self.fps, lm_frame, x, R, t)
        ms["total"] = (time.perf_counter() - t0) * 1000
        return TrackResult(True, landmarks=lm_frame, rotation=R, translation=t, expression=x.copy(),
                           bbox=_lm_box(lm_frame), face_visible=visible, reinitialised=reinit, ms=ms, raw=raw)

    def _lost(self, lm, R) -> str:
        W, H = self.image_size
        lo, hi = lm.min(0), lm.max(0)
        side = float(np.max(hi - lo))
        if not np.all(np.isfinite(lm)) or side < 12 or side > 1.5 * max(W, H):
            return "landmarks collapsed or exploded"
        c = (lo + hi) / 2
        if not (0 <= c[0] < W and 0 <= c[1] < H):
            return "face left the frame"
        if abs(np.degrees(np.arctan2(R[0, 2], R[2, 2]))) > 100:
            return "head turned away"
        return ""


def face_polygon_mask(landmarks: np.ndarray, shape: tuple[int, int], grow: int = 0) -> np.ndarray:
    """(H, W) uint8 {0, 1}: the face polygon (jaw line + forehead points of the 73 landmarks), grown by `grow` px."""
    outline = np.concatenate([landmarks[list(L.JAW)], landmarks[[72, 71, 70]]])
    poly = np.zeros(shape, np.uint8)
    cv2.fillPoly(poly, [np.round(outline).astype(np.int32)], 1)
    if grow > 0:
        poly = cv2.dilate(poly, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return poly


def face_visible_fraction(landmarks: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the face polygon (jaw line + forehead points of the 73 landmarks) that the mask calls face."""
    poly = face_polygon_mask(landmarks, mask.shape)
    area = int(poly.sum())
    return float(((mask > 0) & (poly > 0)).sum() / area) if area else 0.0


def _lm_box(lm) -> tuple:
    lo, hi = lm.min(0), lm.max(0)
    return (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))


def _box_iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    return inter / max(aw * ah + bw * bh - inter, 1e-9)
