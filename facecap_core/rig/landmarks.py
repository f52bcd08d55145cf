"""Named vertex sets of the canonical 478-point topology (indices into the rig's vertices).

Index lists follow MediaPipe's face-mesh connection tables (Apache-2.0). "Left"/"right" are the subject's:
the subject's left is the image's right on an unmirrored camera (x > 0 in the rig's model frame).
"""
from __future__ import annotations

import numpy as np

# The 36-vertex face oval, clockwise in the image starting at mid-forehead (design §5 mask polygon).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

# Lip contours, each from the subject's right mouth corner (image left) to the left corner.
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)

# Eyelid contours, from the outer to the inner corner.
EYE_R_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
EYE_R_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
EYE_L_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
EYE_L_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)

# Eyebrows, outer to inner: upper edge and lower edge.
BROW_R_UPPER = (70, 63, 105, 66, 107)
BROW_R_LOWER = (46, 53, 52, 65, 55)
BROW_L_UPPER = (300, 293, 334, 296, 336)
BROW_L_LOWER = (276, 283, 282, 295, 285)

# Iris rings of the 478-point layout: centre then 4 contour points (image right, top, left, bottom).
IRIS_R = (468, 469, 470, 471, 472)
IRIS_L = (473, 474, 475, 476, 477)

# The 68 points of the iBUG / 300-W convention, in their order (0-16 jaw from image left to right,
# 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth).
IBUG68 = (
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,  # 0-16 jaw line
    70, 63, 105, 66, 107,  # 17-21 subject's right brow, outer to inner
    336, 296, 334, 293, 300,  # 22-26 subject's left brow, inner to outer
    168, 197, 5, 4,  # 27-30 nose bridge to tip
    98, 97, 2, 326, 327,  # 31-35 nostrils / columella
    33, 160, 158, 133, 153, 144,  # 36-41 right eye
    362, 385, 387, 263, 373, 380,  # 42-47 left eye
    61, 40, 37, 0, 267, 270, 291,  # 48-54 upper outer lip
    321, 314, 17, 84, 91,  # 55-59 lower outer lip
    78, 81, 13, 311, 308,  # 60-64 upper inner lip
    402, 14, 178,  # 65-67 lower inner lip
)
PUPILS = (468, 473)  # 68 subject's right pupil, 69 subject's left pupil
FOREHEAD = (103, 10, 332)  # 70-72 upper forehead on the face oval, image left to right
LANDMARKS73 = IBUG68 + PUPILS + FOREHEAD
JAW = tuple(range(17))  # indices into LANDMARKS73 that slide along the silhouette
IBUG_OUTER_EYE_CORNERS = (36, 45)  # NME normaliser (design §8)

LANDMARK_NAMES = tuple(
    [f"jaw_{i}" for i in range(17)] + [f"brow_r_{i}" for i in range(5)] + [f"brow_l_{i}" for i in range(5)]
    + [f"nose_bridge_{i}" for i in range(4)] + [f"nose_base_{i}" for i in range(5)]
    + [f"eye_r_{i}" for i in range(6)] + [f"eye_l_{i}" for i in range(6)]
    + [f"lip_outer_{i}" for i in range(12)] + [f"lip_inner_{i}" for i in range(8)]
    + ["pupil_r", "pupil_l", "forehead_r", "forehead_c", "forehead_l"]
)

assert len(FACE_OVAL) == 36 and len(IBUG68) == 68 and len(LANDMARKS73) == 73 == len(LANDMARK_NAMES)


def mirror_map(vertices: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """(N,) index of each vertex's mirror image across the x = 0 plane, for a symmetric mesh (N,3)."""
    from scipy.spatial import cKDTree  # noqa: PLC0415

    dist, idx = cKDTree(vertices).query(vertices * np.array([-1.0, 1.0, 1.0]))
    if dist.max() > tol:
        raise ValueError(f"mesh is not mirror-symmetric (worst vertex off by {dist.max():.4f})")
    return idx.astype(np.int32)
