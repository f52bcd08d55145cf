"""Shape-indexed, mask-aware pixel features (paper §5; Cao et al. 2014).

Each cascade stage draws P feature points from a Gaussian on the unit square of the mean 2D landmark box and
stores each as barycentric coordinates of a triangle of the Delaunay triangulation of the mean landmarks (points
outside the hull use the nearest triangle, extrapolated), so the points move with the face: at run time a point is
Σ_j b_j · landmark[tri_j] of the current estimate.

**The mask rule** (segmentation-aware regression): a point that lands outside the crop or on a non-face pixel of the
segmentation mask is *never sampled*. It takes the intensity of the nearest point of the same stage (in the mean
shape) that did land on face, searching its `N_NEIGHBOURS` nearest neighbours in order; if none of them did, it
takes the mean intensity of all points that did (0 when the whole face is covered). The same rule runs in training
(on the training mask) and at run time (on the segmenter's mask), so the ferns learn the statistics they will see.
Finally the P values are normalised to zero mean and unit variance (brightness and contrast invariance).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.spatial import Delaunay

N_NEIGHBOURS = 8


@dataclass
class FeaturePoints:
    """P shape-indexed points: triangle vertex indices (P, 3) into the 73 landmarks, barycentrics (P, 3), and
    each point's N_NEIGHBOURS nearest other points (P, N_NEIGHBOURS) for the mask rule."""
    tri: np.ndarray
    bary: np.ndarray
    neighbours: np.ndarray

    def positions(self, landmarks: np.ndarray) -> np.ndarray:
        """(N, P, 2) point positions for landmarks (N, 73, 2)."""
        return np.einsum("pk,npkd->npd", self.bary, landmarks[:, self.tri])


def make_feature_points(mean_landmarks: np.ndarray, n_points: int, rng: np.random.Generator,
                        sigma: float = 0.3) -> FeaturePoints:
    """Draw n_points from N(centre, sigma) on the unit square of the mean landmark box (clipped to the square,
    slightly enlarged) and express them in the Delaunay triangulation of `mean_landmarks` (73, 2)."""
    lm = np.asarray(mean_landmarks, np.float64)
    lo, hi = lm.min(0), lm.max(0)
    unit = np.clip(rng.normal(0.5, sigma, (n_points, 2)), -0.05, 1.05)
    pts = lo + unit * (hi - lo)
    dela = Delaunay(lm)
    simplex = dela.find_simplex(pts)
    centroids = lm[dela.simplices].mean(1)
    outside = simplex < 0
    if outside.any():
        d = np.linalg.norm(pts[outside, None] - centroids[None], axis=2)
        simplex[outside] = np.argmin(d, axis=1)
    tri = dela.simplices[simplex].astype(np.int32)
    T = dela.transform[simplex]  # affine maps to barycentric coordinates
    b2 = np.einsum("pij,pj->pi", T[:, :2], pts - T[:, 2])
    bary = np.concatenate([b2, 1 - b2.sum(1, keepdims=True)], 1)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    np.fill_diagonal(d, np.inf)
    neighbours = np.argsort(d, axis=1)[:, :N_NEIGHBOURS].astype(np.int32)
    return FeaturePoints(tri=tri, bary=bary.astype(np.float32), neighbours=neighbours)


@numba.njit(cache=True, nogil=True)
def _sample(images, masks, image_index, landmarks, tri, bary, neighbours, out):
    n_inst, n_pts = out.shape
    H, W = images.shape[1], images.shape[2]
    vals = np.empty(n_pts, np.float32)
    ok = np.empty(n_pts, np.bool_)
    for n in range(n_inst):
        im = image_index[n]
        total, count = 0.0, 0
        for k in range(n_pts):
            x = 0.0
            y = 0.0
            for j in range(3):
                x += bary[k, j] * landmarks[n, tri[k, j], 0]
                y += bary[k, j] * landmarks[n, tri[k, j], 1]
            xi = int(np.floor(x + 0.5))
            yi = int(np.floor(y + 0.5))
            if 0 <= xi < W and 0 <= yi < H and masks[im, yi, xi] != 0:
                v = np.float32(images[im, yi, xi])
                vals[k] = v
                ok[k] = True
                total += v
                count += 1
            else:
                ok[k] = False
        mean = total / count if count > 0 else 0.0
        for k in range(n_pts):
            if not ok[k]:
                v = mean
                for j in range(neighbours.shape[1]):
                    if ok[neighbours[k, j]]:
                        v = vals[neighbours[k, j]]
                        break
                out[n, k] = v
            else:
                out[n, k] = vals[k]
        m = 0.0
        for k in range(n_pts):
            m += out[n, k]
        m /= n_pts
        var = 0.0
        for k in range(n_pts):
            out[n, k] -= m
            var += out[n, k] * out[n, k]
        inv = 1.0 / np.sqrt(var / n_pts + 1.0)  # +1 (grey level²): flat patches stay near zero, not noise-amplified
        for k in range(n_pts):
            out[n, k] *= inv


def sample_features(images: np.ndarray, masks: np.ndarray | None, image_index: np.ndarray, landmarks: np.ndarray,
                    points: FeaturePoints) -> np.ndarray:
    """(N, P) float32 normalised intensities at the feature points of N shape estimates.

    images (M, H, W) uint8 grey crops; masks (M, H, W) uint8 (non-zero = face) or None (no segmentation: every
    pixel counts as face); image_index (N,) which crop each estimate looks at; landmarks (N, 73, 2) crop px."""
    images = np.ascontiguousarray(images, np.uint8)
    if masks is None:
        masks = np.ones((1,) + images.shape[1:], np.uint8)
        masks = np.broadcast_to(masks, images.shape)
    masks = np.ascontiguousarray(masks, np.uint8)
    out = np.empty((len(landmarks), len(points.bary)), np.float32)
    _sample(images, masks, np.ascontiguousarray(image_index, np.int64),
            np.ascontiguousarray(landmarks, np.float32), points.tri, points.bary, points.neighbours, out)
    return out
