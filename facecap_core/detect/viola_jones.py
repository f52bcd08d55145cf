"""Viola–Jones face detection (OpenCV's frontal Haar cascade) and the face crop.

The cascade is OpenCV's `haarcascade_frontalface_default.xml`: from `cv2.data.haarcascades` where the installed
wheel ships it (4.x), else the copy in `models/` (the 5.0 wheels dropped the data files).

Coordinates: image pixels, x right, y down, pixel centres at integers (OpenCV). A box is (x, y, w, h) float.

The crop matches the face scale of the segmentation training crops (facecap_core.data.build: a square of side
margin × the larger side of the 73-landmark box, margin drawn uniformly in [1.25, 2.3], centred on that box).
Measured on 102 detected real labelled photos of the train split, OpenCV's Haar box is about as wide as
the landmark box (which runs from the upper forehead to the chin) and sits a little high:
landmark side ≈ LANDMARK_PER_BOX × box width, landmark-box centre ≈ box centre + CENTRE_SHIFT_Y × box height.
CROP_MARGIN (crop side / Haar box width) = LANDMARK_PER_BOX × 1.75, the middle of the training range, so the whole
face oval fits with a band of background around it, as in training.
"""
from __future__ import annotations

import os

import numpy as np

CROP_SIZE = 128
# measured on the real labelled photos (train split):
LANDMARK_PER_BOX = 1.0  # (larger landmark-box side) / (Haar box width): median 1.01, p10 0.88, p90 1.18
CENTRE_SHIFT_Y = 0.085  # (landmark-box centre y − Haar box centre y) / (box height): median, p10 0.04, p90 0.13
TRAINING_MARGIN = 1.75  # middle of the data engine's crop margins (uniform in [1.25, 2.3])
CROP_MARGIN = LANDMARK_PER_BOX * TRAINING_MARGIN
CASCADE = "haarcascade_frontalface_default.xml"
MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models")


class DetectorError(RuntimeError):
    """The cascade file is missing or unreadable: one line naming the file and what to do."""


def default_cascade_path() -> str:
    """OpenCV's own copy (`cv2.data.haarcascades`, shipped by the 4.x wheels) when present, else the copy in
    `models/` (the 5.0 wheels no longer ship the cascades; see models/haarcascade_frontalface_default.md)."""
    import cv2  # noqa: PLC0415

    base = getattr(getattr(cv2, "data", None), "haarcascades", "")
    shipped = os.path.join(base, CASCADE)
    return shipped if base and os.path.isfile(shipped) else os.path.join(MODELS_DIR, CASCADE)


class FaceDetector:
    """OpenCV Haar cascade face detector.

    `detect(image_rgb (H, W, 3) uint8) -> (N, 4) float64 boxes (x, y, w, h)`, largest first (N may be 0).
    Images are scanned at most `max_side` px on their longer side (boxes are returned in input pixels); faces
    smaller than `min_size` (fraction of the shorter image side) are ignored."""

    def __init__(self, cascade_path: str | None = None, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: float = 0.08, max_side: int = 640):
        import cv2  # noqa: PLC0415

        self.cascade_path = cascade_path or default_cascade_path()
        if not os.path.isfile(self.cascade_path):
            raise DetectorError(f"face detector cascade not found: {self.cascade_path} (neither in "
                                "cv2.data.haarcascades nor in models/; restore models/" + CASCADE + ")")
        self._cascade = cv2.CascadeClassifier(self.cascade_path)
        if self._cascade.empty():
            raise DetectorError(f"face detector cascade is corrupt or unreadable: {self.cascade_path} (reinstall "
                                "opencv-python-headless)")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> np.ndarray:
        import cv2  # noqa: PLC0415

        img = np.asarray(image)
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        h, w = grey.shape
        s = min(1.0, self.max_side / max(h, w))
        if s < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        m = max(20, int(self.min_size * min(grey.shape)))
        found = self._cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(m, m))
        boxes = np.asarray(found, np.float64).reshape(-1, 4) / s
        return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]

    __call__ = detect

    def detect_near(self, image: np.ndarray, box, grow: float = 2.0, face_px: int = 80) -> np.ndarray:
        """Faces near an expected box (x, y, w, h): only the region `grow`× the box around it is scanned, resized so
        the box is `face_px` wide, for faces 0.6–1.6× that size — a few ms instead of a full-frame scan (the
        tracker's periodic check that the face is where it thinks). Returns boxes in input pixels, largest first."""
        import cv2  # noqa: PLC0415

        img = np.asarray(image)
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        H, W = grey.shape
        x, y, w, h = (float(v) for v in box)
        side = grow * max(w, h, 1.0)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(W, cx + side / 2)), int(min(H, cy + side / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return np.zeros((0, 4))
        s = face_px / max(w, h, 1.0)
        roi = cv2.resize(grey[y0:y1, x0:x1], (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                         interpolation=cv2.INTER_AREA)
        found = self._cascade.detectMultiScale(cv2.equalizeHist(roi), scaleFactor=self.scale_factor,
                                               minNeighbors=self.min_neighbors,
                                               minSize=(int(0.6 * face_px),) * 2, maxSize=(int(1.6 * face_px),) * 2)
        boxes = np.asarray(found, np.float64).reshape(-1, 4) / s + np.array([x0, y0, 0, 0])
        return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def crop_box(box, image_size: tuple[int, int], margin: float = CROP_MARGIN,
             shift_y: float = CENTRE_SHIFT_Y) -> np.ndarray:
    """Square crop (cx, cy, side) float64 around a detected face box (x, y, w, h): centre = box centre moved down by
    shift_y × h, side = margin × max(w, h). image_size = (W, H): the centre is kept inside the image (the crop
    itself may extend past the border; those pixels are replicated from the border when cropping)."""
    x, y, w, h = (float(v) for v in box)
    if not (w > 0 and h > 0):
        raise ValueError(f"face box needs a positive size, got {box}")
    W, H = image_size
    cx = min(max(x + w / 2, 0.0), W - 1.0)
    cy = min(max(y + h / 2 + shift_y * h, 0.0), H - 1.0)
    return np.array([cx, cy, margin * max(w, h)])


def crop_affine(square, size: int = CROP_SIZE) -> np.ndarray:
    """(2, 3) affine: image px → size×size crop px for a square (cx, cy, side) (same convention as the data
    engine's face_crop_affine: the square's centre maps to the crop centre (size − 1)/2)."""
    cx, cy, side = (float(v) for v in square)
    s = size / side
    return np.array([[s, 0.0, (size - 1) / 2 - s * cx], [0.0, s, (size - 1) / 2 - s * cy]])


def crop_image(image: np.ndarray, affine: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The size×size crop (uint8 RGB) of an image under an image→crop affine (bilinear, border replicated, like
    the data engine's warp_sample)."""
    import cv2  # noqa: PLC0415

    return cv2.warpAffine(np.ascontiguousarray(image), np.asarray(affine, np.float64), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def paste_back(mask: np.ndarray, affine: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Binary crop mask (S, S) (bool or 0/1 or 0/255) → full-frame mask (H, W) uint8 0/255.

    The mask is bilinearly upsampled (the paper's last step) straight into the frame through the inverse of the
    image→crop `affine`, then thresholded at one half; frame pixels outside the crop are 0. image_size = (W, H)."""
    import cv2  # noqa: PLC0415

    m = np.asarray(mask)
    m = (m > (127 if m.dtype == np.uint8 and m.max(initial=0) > 1 else 0)).astype(np.float32)
    W, H = image_size
    up = cv2.warpAffine(m, np.asarray(affine, np.float64), (int(W), int(H)),
                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.where(up >= 0.5, 255, 0).astype(np.uint8)
