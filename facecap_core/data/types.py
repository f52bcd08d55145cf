"""The sample every data source produces and every augmentation transforms."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..rig.model import N_EXPRESSIONS, N_IDENTITY


@dataclass
class ShapeParams:
    """S = {R, t, x, u, f} of paper Eq. 2 in the camera frame of the image the sample came from
    (OpenCV: x right, y down, z forward; principal point at that image's centre)."""
    rotation: np.ndarray  # (4,) unit quaternion w, x, y, z
    translation: np.ndarray  # (3,) cm
    expression: np.ndarray  # (46,) in [0, 1]
    identity: np.ndarray  # (50,)
    focal: float  # pixels, in the source image
    image_size: tuple[int, int]  # (width, height) of the source image the camera belongs to

    def __post_init__(self):
        assert self.expression.shape == (N_EXPRESSIONS,) and self.identity.shape == (N_IDENTITY,)


@dataclass
class FaceSample:
    """One training sample. `crop_affine` maps source-image pixels to this sample's pixels, so `params`
    (which live in the source camera) project into the sample by Π_f followed by the affine."""
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) uint8, 1 = face (design §5: inside the face oval and not occluded), 0 otherwise
    landmarks: np.ndarray  # (73, 2) float32 pixels in this image; NaN where there is no face
    visible: np.ndarray  # (73,) bool: landmark inside the image and not covered by an occluder
    params: ShapeParams | None  # None for negatives (no face)
    crop_affine: np.ndarray = field(default_factory=lambda: np.eye(2, 3))  # (2, 3) source px → sample px
    source: str = ""  # "real-photo", "real-video", "synthetic", "negative"
    identity: str = ""  # identity key used for the train/val/test split
    meta: dict = field(default_factory=dict)  # provenance: file, frame, fit residual, augmentations applied …

    @property
    def is_negative(self) -> bool:
        return self.params is None

    def copy(self, **changes) -> "FaceSample":
        out = replace(self, **changes)
        for k in ("image", "mask", "landmarks", "visible", "crop_affine"):
            if k not in changes:
                setattr(out, k, getattr(self, k).copy())
        out.meta = dict(self.meta, **changes.get("meta", {}))
        return out
