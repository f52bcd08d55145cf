"""The per-frame segmentation path (the paper's Fig. 1, left half): detection (or a given crop box) → 128×128 crop →
network → graph cut → bilinear paste-back into the full frame.

    mask, info = segment_frame(image_rgb, detector, segmenter, refiner)        # (H, W) uint8 0/255
    held, info = segment_frame_in_crop(image_rgb, detector, segmenter, refiner)  # CropMask: no paste-back yet

The capture engine uses the second form: the tracker maps the 128×128 mask straight into its own crop
(`CropMask.to_crop`), and the full-frame mask is pasted only when something asks for it (preview, mask files).

`segmenter` is anything with `predict(crops uint8 (N, 128, 128, 3)) -> prob (N, 128, 128) float32` (the
two-stream CNN's `Segmenter`, or a stand-in), or such a callable itself. `refiner` is a `GraphCutRefiner` (or
None: threshold the probability at 0.5, the network output of the paper's Table 1).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..detect.viola_jones import CROP_SIZE, crop_affine, crop_box, crop_image, paste_back


@dataclass
class FrameInfo:
    """What happened to one frame. box: the face box used (x, y, w, h) or None; square: the crop (cx, cy, side);
    affine: (2, 3) image px → crop px; prob: the network's (128, 128) face probability; crop_mask: the (128, 128)
    bool mask after the graph cut / threshold; ms: milliseconds per stage."""

    face_found: bool
    box: np.ndarray | None = None
    square: np.ndarray | None = None
    affine: np.ndarray | None = None
    crop: np.ndarray | None = None
    prob: np.ndarray | None = None
    crop_mask: np.ndarray | None = None
    ms: dict = field(default_factory=dict)


class CropMask:
    """A face mask kept in the segmentation crop: `crop_mask` (S, S) bool, the image→crop `affine` (2, 3) and the
    frame size (W, H). `full()` is the bilinear paste-back into the frame (computed once); `to_crop(affine, size)`
    maps the mask into another crop of the same frame directly (bilinear, thresholded at one half), which costs a
    fraction of the full-frame paste."""

    def __init__(self, crop_mask: np.ndarray | None, affine: np.ndarray | None, image_size: tuple[int, int]):
        self.crop_mask, self.affine, self.image_size = crop_mask, affine, (int(image_size[0]), int(image_size[1]))
        self._full = None

    def refined(self, refiner, prob: np.ndarray, crop: np.ndarray) -> "CropMask":
        """The same crop with its mask replaced by `refiner.refine(prob, crop)` (the graph cut, run later)."""
        return self if self.crop_mask is None else CropMask(refiner.refine(prob, crop), self.affine, self.image_size)

    @classmethod
    def empty(cls, image_size) -> "CropMask":
        """No face anywhere in the frame."""
        return cls(None, None, image_size)

    def full(self) -> np.ndarray:
        if self._full is None:
            W, H = self.image_size
            self._full = np.zeros((H, W), np.uint8) if self.crop_mask is None else \
                paste_back(self.crop_mask, self.affine, self.image_size)
        return self._full

    def to_crop(self, affine: np.ndarray, size: int) -> np.ndarray:
        """(size, size) uint8 0/255 mask of the crop that `affine` (image px → that crop's px) cuts from the frame."""
        import cv2  # noqa: PLC0415

        if self.crop_mask is None:
            return np.zeros((size, size), np.uint8)
        A1, b1 = self.affine[:, :2], self.affine[:, 2]
        A2inv = np.linalg.inv(np.asarray(affine, np.float64)[:, :2])
        b2 = np.asarray(affine, np.float64)[:, 2]
        m = A1 @ A2inv  # that crop's px → this crop's px
        back = np.hstack([m, (b1 - m @ b2)[:, None]])
        up = cv2.warpAffine(self.crop_mask.astype(np.float32), back, (size, size),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
        return np.where(up >= 0.5, 255, 0).astype(np.uint8)


def tint_face(image: np.ndarray, mask: np.ndarray, colour=(0, 255, 0), alpha: float = 0.4) -> np.ndarray:
    """A copy of the RGB `image` with the face (`mask` > 0) blended towards `colour` (the previews' green)."""
    out = image.astype(np.float32)
    face = np.asarray(mask) > 0
    out[face] = out[face] * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha
    return out.astype(np.uint8)


def mask_check_image(image: np.ndarray, mask: np.ndarray, info: FrameInfo) -> np.ndarray:
    """A check image for one segmented frame: the face tinted green and outlined, the crop square in yellow, or
    "no face" in red where the detector found none (RGB uint8)."""
    import cv2  # noqa: PLC0415

    out = tint_face(image, mask)
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (0, 255, 0), 1, cv2.LINE_AA)
    if info.face_found and info.square is not None:
        cx, cy, side = (float(v) for v in info.square)
        p0 = (int(round(cx - side / 2)), int(round(cy - side / 2)))
        p1 = (int(round(cx + side / 2)), int(round(cy + side / 2)))
        cv2.rectangle(out, p0, p1, (255, 220, 0), 1, cv2.LINE_AA)
    else:
        cv2.putText(out, "no face", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 40, 40), 2, cv2.LINE_AA)
    return out


def predict_fn(segmenter):
    """The `crops → prob` callable of a segmenter object (its `predict`) or of a plain callable."""
    fn = getattr(segmenter, "predict", segmenter)
    if not callable(fn):
        raise TypeError(f"segmenter {segmenter!r} has no predict() and is not callable")
    return fn


def segment_crop(crop: np.ndarray, segmenter, refiner=None) -> tuple[np.ndarray, np.ndarray]:
    """One 128×128 RGB crop → (prob (128, 128) float32, mask (128, 128) bool)."""
    prob = np.asarray(predict_fn(segmenter)(crop[None]), np.float32)[0]
    mask = refiner.refine(prob, crop) if refiner is not None else prob > 0.5
    return prob, mask


def segment_frame(image: np.ndarray, detector, segmenter, refiner=None, box=None,
                  size: int = CROP_SIZE) -> tuple[np.ndarray, FrameInfo]:
    """Full-frame face mask of one image.

    image (H, W, 3) uint8 RGB; detector: `detect(image) -> (N, 4) boxes`, largest first (used when box is None);
    box: (x, y, w, h) face box in image px to use instead of detecting (e.g. the tracker's projected model).
    Returns (mask (H, W) uint8, 255 = face, all 0 when no face is found; FrameInfo)."""
    held, info = segment_frame_in_crop(image, detector, segmenter, refiner, box, size)
    t0 = time.perf_counter()
    mask = held.full()
    if info.face_found:
        info.ms["paste"] = 1e3 * (time.perf_counter() - t0)
    return mask, info


def segment_frame_in_crop(image: np.ndarray, detector, segmenter, refiner=None, box=None,
                          size: int = CROP_SIZE) -> tuple[CropMask, FrameInfo]:
    """`segment_frame` without the paste-back: (CropMask, FrameInfo)."""
    h, w = image.shape[:2]
    ms = {}
    t0 = time.perf_counter()
    if box is None:
        boxes = detector.detect(image) if detector is not None else np.zeros((0, 4))
        ms["detect"] = 1e3 * (time.perf_counter() - t0)
        if len(boxes) == 0:
            return CropMask.empty((w, h)), FrameInfo(face_found=False, ms=ms)
        box = boxes[0]
    box = np.asarray(box, np.float64)
    square = crop_box(box, (w, h))
    affine = crop_affine(square, size)
    t1 = time.perf_counter()
    crop = crop_image(image, affine, size)
    ms["crop"] = 1e3 * (time.perf_counter() - t1)
    t2 = time.perf_counter()
    prob = np.asarray(predict_fn(segmenter)(crop[None]), np.float32)[0]
    ms["net"] = 1e3 * (time.perf_counter() - t2)
    t3 = time.perf_counter()
    crop_mask = refiner.refine(prob, crop) if refiner is not None else prob > 0.5
    ms["graphcut" if refiner is not None else "threshold"] = 1e3 * (time.perf_counter() - t3)
    info = FrameInfo(face_found=True, box=box, square=square, affine=affine, crop=crop, prob=prob,
                     crop_mask=crop_mask, ms=ms)
    return CropMask(crop_mask, affine, (w, h)), info
