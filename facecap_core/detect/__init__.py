"""Face detection and the face crop (design §1 step 1): Viola–Jones (OpenCV's Haar cascade) on the first frame or
after a loss, the square crop box around a face, the affine to the network's 128×128 crop and the paste-back of a
crop mask into the full frame."""
from .viola_jones import (CROP_MARGIN, CROP_SIZE, DetectorError, FaceDetector, crop_affine, crop_box, crop_image,
                          paste_back)

__all__ = ["CROP_MARGIN", "CROP_SIZE", "DetectorError", "FaceDetector", "crop_affine", "crop_box", "crop_image",
           "paste_back"]
