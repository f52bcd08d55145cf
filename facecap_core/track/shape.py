"""The tracker's shape vector Q = [R, t, x, D] (paper §5) in the normalised form the regressor updates.

The regressor works on a square face crop (``CROP_SIZE`` px, cut around the previous frame's landmarks). A crop is
an image similarity of the source frame, so the crop has its own pinhole camera (:class:`CropCamera`): focal
s·f, principal point where the frame's centre lands, and an in-plane rotation folded into R and t.

Q is kept batched as ``ShapeBatch`` arrays and regressed as a 198-vector of *image-space* quantities, so an update
means the same thing whatever the face's size and the (still uncertain) focal length:

    rotation     3   rotation vector of the update, applied on the left (camera frame): R ← exp(δr) R
    position     2   crop position of the model reference point c0 (mean of the neutral landmarks) / CROP_SIZE
    log-scale    1   log(f_crop / z_c0): the face's image scale
    expression  46   x ∈ [0, 1] (clipped after every stage)
    displacement 146 D, the 73 landmarks' 2D displacements in crop px / CROP_SIZE

Identity u and focal f are per-instance constants (the key-frame thread solves them, Eq. 3); (R, t) are recovered
from (R, position, log-scale) with the instance's focal. Landmark i of the crop is
p_i = Π(R (b0_i(u) + B_i x) + t) + D_i, with the 17 jaw landmarks slid to the silhouette under the current pose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..rig import landmarks as L
from ..rig.fit import FitRig
from ..rig.model import N_EXPRESSIONS

CROP_SIZE = 160  # tracking crop side, px (the data engine's track_size)
CROP_MARGIN = 1.3  # crop side = margin × landmark box side (the data engine's track_margin)
N_LANDMARKS = len(L.LANDMARKS73)
GROUPS = (("rotation", 3), ("position", 2), ("log_scale", 1), ("expression", N_EXPRESSIONS),
          ("displacement", 2 * N_LANDMARKS))
DIM = sum(n for _, n in GROUPS)
SLICES = {}
_o = 0
for _name, _n in GROUPS:
    SLICES[_name] = slice(_o, _o + _n)
    _o += _n


def rodrigues(r: np.ndarray) -> np.ndarray:
    """(N, 3) rotation vectors → (N, 3, 3) matrices."""
    if len(r) <= 16:  # run time: one compiled loop instead of a dozen tiny numpy calls
        out = np.empty((len(r), 3, 3))
        _rodrigues_small(np.ascontiguousarray(r, np.float64), out)
        return out
    theta = np.linalg.norm(r, axis=1)
    k = r / np.maximum(theta, 1e-12)[:, None]
    K = np.zeros((len(r), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K[:, 1, 0], K[:, 2, 0], K[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    s, c = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    return np.eye(3)[None] + s * K + (1 - c) * (K @ K)


def log_rotation(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations → (N, 3) rotation vectors (angle < π)."""
    cos = np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    theta = np.arccos(cos)
    v = np.stack([R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], 1)
    s = np.sin(theta)
    scale = np.where(s > 1e-6, theta / np.maximum(2 * s, 1e-12), 0.5 + theta ** 2 / 12)
    return v * scale[:, None]


@dataclass
class CropCamera:
    """Pinhole camera of a crop: focal (N,) px, centre (N, 2) px, and the frame→crop in-plane rotation (N, 3, 3)
    (about the optical axis) that turns frame-camera R, t into crop-camera ones."""
    focal: np.ndarray
    centre: np.ndarray
    roll: np.ndarray

    @staticmethod
    def from_affine(affine: np.ndarray, focal: np.ndarray, image_size: np.ndarray) -> "CropCamera":
        """affine (N, 2, 3) frame px → crop px (a similarity), focal (N,) frame px, image_size (N, 2) = (W, H)."""
        affine = np.asarray(affine, np.float64).reshape(-1, 2, 3)
        M, b = affine[:, :, :2], affine[:, :, 2]
        s = np.sqrt(np.abs(np.linalg.det(M)))
        ang = np.arctan2(M[:, 1, 0], M[:, 0, 0])
        c, sn = np.cos(ang), np.sin(ang)
        roll = np.zeros((len(M), 3, 3))
        roll[:, 0, 0], roll[:, 0, 1], roll[:, 1, 0], roll[:, 1, 1], roll[:, 2, 2] = c, -sn, sn, c, 1.0
        centre = np.einsum("nij,nj->ni", M, np.asarray(image_size, np.float64).reshape(-1, 2) / 2) + b
        return CropCamera(focal=s * np.asarray(focal, np.float64).reshape(-1), centre=centre, roll=roll)


@dataclass
class ShapeBatch:
    """N shape vectors: R (N, 3, 3) crop camera, position (N, 2) crop px, log_scale (N,), expression (N, 46),
    displacement (N, 73, 2) crop px."""
    R: np.ndarray
    position: np.ndarray
    log_scale: np.ndarray
    expression: np.ndarray
    displacement: np.ndarray

    def __len__(self) -> int:
        return len(self.R)

    def copy(self) -> "ShapeBatch":
        return ShapeBatch(self.R.copy(), self.position.copy(), self.log_scale.copy(), self.expression.copy(),
                          self.displacement.copy())

    def take(self, idx) -> "ShapeBatch":
        return ShapeBatch(self.R[idx], self.position[idx], self.log_scale[idx], self.expression[idx],
                          self.displacement[idx])

    def difference(self, other: "ShapeBatch") -> np.ndarray:
        """(N, DIM) normalised update that takes `other` to `self` (self ⊖ other)."""
        out = np.empty((len(self), DIM))
        out[:, SLICES["rotation"]] = log_rotation(self.R @ np.transpose(other.R, (0, 2, 1)))
        out[:, SLICES["position"]] = (self.position - other.position) / CROP_SIZE
        out[:, SLICES["log_scale"]] = (self.log_scale - other.log_scale)[:, None]
        out[:, SLICES["expression"]] = self.expression - other.expression
        out[:, SLICES["displacement"]] = (self.displacement - other.displacement).reshape(len(self), -1) / CROP_SIZE
        return out

    def apply(self, delta: np.ndarray) -> "ShapeBatch":
        """self ⊕ delta (N, DIM): the regressor's update, expression clipped to [0, 1]."""
        n = len(self)
        return ShapeBatch(
            R=rodrigues(delta[:, SLICES["rotation"]]) @ self.R,
            position=self.position + delta[:, SLICES["position"]] * CROP_SIZE,
            log_scale=self.log_scale + delta[:, SLICES["log_scale"]][:, 0],
            expression=np.clip(self.expression + delta[:, SLICES["expression"]], 0.0, 1.0),
            displacement=self.displacement + delta[:, SLICES["displacement"]].reshape(n, N_LANDMARKS, 2) * CROP_SIZE)


class ShapeModel:
    """The rig as the tracker sees it: landmark points for (x, u), the pose ↔ (position, log-scale) maps, and the
    73 crop landmarks of a shape batch (jaw slid to the silhouette)."""

    def __init__(self, rig):
        self.fr = rig if isinstance(rig, FitRig) else FitRig(rig)
        lv = self.fr.landmark_vertices
        cand = self.fr.jaw_candidates  # (17, C)
        self.vertices = np.concatenate([lv, cand.ravel()])  # landmark vertices, then the jaw strips
        self.n_cand = cand.shape[1]
        B = self.fr.basis[self.vertices]  # (V, 3, 96)
        self.neutral = self.fr.neutral[self.vertices]  # (V, 3)
        self.basis_x = np.ascontiguousarray(B[:, :, :N_EXPRESSIONS].reshape(-1, N_EXPRESSIONS))
        self.basis_u = np.ascontiguousarray(B[:, :, N_EXPRESSIONS:].reshape(-1, B.shape[2] - N_EXPRESSIONS))
        self.basis_x3 = np.ascontiguousarray(B[:, :, :N_EXPRESSIONS])  # (V, 3, 46) for the small-batch kernel
        self.basis_u3 = np.ascontiguousarray(B[:, :, N_EXPRESSIONS:])
        self._no_identity = np.zeros(self.basis_u3.shape[:2] + (0,))
        self._b0, self._b0_key = None, None
        self.reference = self.fr.neutral[lv].mean(0)  # c0, model cm
        self.jaw_outward = self.fr.jaw_outward
        self.jaw_valid = self.fr.jaw_valid

    # -- rig points -----------------------------------------------------------------------------------------
    def points(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """(N, V, 3) model cm of the landmark and jaw-candidate vertices for x (N, 46), u (N, 50)."""
        n = len(x)
        P = (x @ self.basis_x.T + u @ self.basis_u.T).reshape(n, -1, 3)
        return P + self.neutral[None]

    # -- pose maps ------------------------------------------------------------------------------------------
    def encode_pose(self, R: np.ndarray, t: np.ndarray, cam: CropCamera):
        """Crop-camera (R, t) → (position (N, 2), log_scale (N,))."""
        p0 = np.einsum("nij,j->ni", R, self.reference) + t
        pos = cam.focal[:, None] * p0[:, :2] / p0[:, 2:3] + cam.centre
        return pos, np.log(cam.focal / p0[:, 2])

    def decode_pose(self, shape: ShapeBatch, cam: CropCamera) -> np.ndarray:
        """(N, 3) crop-camera translation t of a shape batch under its instances' cameras."""
        z = cam.focal / np.exp(shape.log_scale)
        p0 = np.concatenate([(shape.position - cam.centre) * (z / cam.focal)[:, None], z[:, None]], 1)
        return p0 - np.einsum("nij,j->ni", shape.R, self.reference)

    def from_params(self, R_frame, t_frame, expression, cam: CropCamera) -> ShapeBatch:
        """Shape batch (D = 0) from frame-camera R (N, 3, 3), t (N, 3) and x (N, 46) seen through crop cameras."""
        R = cam.roll @ np.asarray(R_frame, np.float64)
        t = np.einsum("nij,nj->ni", cam.roll, np.asarray(t_frame, np.float64))
        pos, ls = self.encode_pose(R, t, cam)
        n = len(R)
        return ShapeBatch(R=R, position=pos, log_scale=ls, expression=np.asarray(expression, np.float64).copy(),
                          displacement=np.zeros((n, N_LANDMARKS, 2)))

    def to_params(self, shape: ShapeBatch, cam: CropCamera):
        """Frame-camera (R (N, 3, 3), t (N, 3)) of a shape batch."""
        t = self.decode_pose(shape, cam)
        back = np.transpose(cam.roll, (0, 2, 1))
        return back @ shape.R, np.einsum("nij,nj->ni", back, t)

    # -- landmarks ------------------------------------------------------------------------------------------
    def rig_landmarks(self, shape: ShapeBatch, identity: np.ndarray, cam: CropCamera,
                      chunk: int = 8192) -> np.ndarray:
        """(N, 73, 2) crop px: projected rig landmarks (jaw on the silhouette), without the displacements D."""
        if len(shape) <= chunk:
            return self._project(shape, identity, cam)
        out = np.empty((len(shape), N_LANDMARKS, 2))
        for a in range(0, len(shape), chunk):
            s = slice(a, a + chunk)
            out[s] = self._project(shape.take(s), identity[s],
                                   CropCamera(cam.focal[s], cam.centre[s], cam.roll[s]))
        return out

    def landmarks(self, shape: ShapeBatch, identity: np.ndarray, cam: CropCamera) -> np.ndarray:
        """(N, 73, 2) crop px: the tracked landmarks p_i = Π(R P_i + t) + D_i."""
        return self.rig_landmarks(shape, identity, cam) + shape.displacement

    def _project(self, shape: ShapeBatch, identity, cam: CropCamera) -> np.ndarray:
        n = len(shape)
        if n <= 16:  # run time: one compiled loop beats a dozen tiny numpy calls (and BLAS thread wake-ups)
            out = np.empty((n, N_LANDMARKS, 2))
            identity = np.ascontiguousarray(identity, np.float64)
            neutral, bu = self.neutral, self.basis_u3
            if np.all(identity == identity[:1]):  # one identity for all: b0(u) once, cached across stages
                key = identity[0].tobytes()
                if self._b0_key != key:
                    self._b0 = self.neutral + self.basis_u3 @ identity[0]
                    self._b0_key = key
                neutral, bu = self._b0, self._no_identity
            _project_small(np.ascontiguousarray(shape.expression, np.float64), identity,
                           np.ascontiguousarray(shape.R, np.float64), self.decode_pose(shape, cam),
                           cam.focal.astype(np.float64), np.ascontiguousarray(cam.centre, np.float64), neutral,
                           self.basis_x3, bu, self.jaw_outward, self.jaw_valid, self.n_cand, out)
            return out
        P = self.points(shape.expression, identity)  # (n, V, 3)
        t = self.decode_pose(shape, cam)
        C = np.einsum("nij,nvj->nvi", shape.R, P) + t[:, None]
        q = cam.focal[:, None, None] * C[..., :2] / C[..., 2:3] + cam.centre[:, None]
        lm = q[:, :N_LANDMARKS].copy()
        nj, nc = len(L.JAW), self.n_cand
        qc = q[:, N_LANDMARKS:].reshape(n, nj, nc, 2)
        # silhouette rule of rig.fit.silhouette_vertices: furthest out along the image direction of the oval
        # vertex's outward normal (the oval vertex keeps a small margin)
        P0 = P[:, N_LANDMARKS:].reshape(n, nj, nc, 3)[:, :, 0]
        tip = np.einsum("nij,nkj->nki", shape.R, P0 + self.jaw_outward[None]) + t[:, None]
        tip = cam.focal[:, None, None] * tip[..., :2] / tip[..., 2:3] + cam.centre[:, None]
        d = tip - qc[:, :, 0]
        d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
        score = np.einsum("njcd,njd->njc", qc - qc[:, :, :1], d)
        score[:, ~self.jaw_valid] = -np.inf
        score[:, :, 0] = 0.01
        best = np.argmax(score, axis=2)
        lm[:, list(L.JAW)] = np.take_along_axis(qc, best[..., None, None], axis=2)[:, :, 0]
        return lm


@numba.njit(cache=True, nogil=True)
def _project_small(x, u, R, t, focal, centre, neutral, bx, bu, jaw_outward, jaw_valid, n_cand, out):
    """ShapeModel._project for a few estimates (same rule; see there)."""
    n_lm = out.shape[1]
    n_jaw = jaw_outward.shape[0]
    n_v = neutral.shape[0]
    q = np.empty((n_v, 2))
    P = np.empty((n_v, 3))
    for n in range(x.shape[0]):
        for v in range(n_v):
            for d in range(3):
                acc = neutral[v, d]
                for j in range(bx.shape[2]):
                    acc += bx[v, d, j] * x[n, j]
                for j in range(bu.shape[2]):
                    acc += bu[v, d, j] * u[n, j]
                P[v, d] = acc
            cx = R[n, 0, 0] * P[v, 0] + R[n, 0, 1] * P[v, 1] + R[n, 0, 2] * P[v, 2] + t[n, 0]
            cy = R[n, 1, 0] * P[v, 0] + R[n, 1, 1] * P[v, 1] + R[n, 1, 2] * P[v, 2] + t[n, 1]
            cz = R[n, 2, 0] * P[v, 0] + R[n, 2, 1] * P[v, 1] + R[n, 2, 2] * P[v, 2] + t[n, 2]
            q[v, 0] = focal[n] * cx / cz + centre[n, 0]
            q[v, 1] = focal[n] * cy / cz + centre[n, 1]
        for i in range(n_lm):
            out[n, i, 0] = q[i, 0]
            out[n, i, 1] = q[i, 1]
        for j in range(n_jaw):
            base = n_lm + j * n_cand
            # image direction of the outward normal at the oval vertex
            px = P[base, 0] + jaw_outward[j, 0]
            py = P[base, 1] + jaw_outward[j, 1]
            pz = P[base, 2] + jaw_outward[j, 2]
            cx = R[n, 0, 0] * px + R[n, 0, 1] * py + R[n, 0, 2] * pz + t[n, 0]
            cy = R[n, 1, 0] * px + R[n, 1, 1] * py + R[n, 1, 2] * pz + t[n, 1]
            cz = R[n, 2, 0] * px + R[n, 2, 1] * py + R[n, 2, 2] * pz + t[n, 2]
            dx = focal[n] * cx / cz + centre[n, 0] - q[base, 0]
            dy = focal[n] * cy / cz + centre[n, 1] - q[base, 1]
            norm = max(np.sqrt(dx * dx + dy * dy), 1e-12)
            dx /= norm
            dy /= norm
            best, best_score = 0, 0.01
            for c in range(1, n_cand):
                if not jaw_valid[j, c]:
                    continue
                sc = (q[base + c, 0] - q[base, 0]) * dx + (q[base + c, 1] - q[base, 1]) * dy
                if sc > best_score:
                    best, best_score = c, sc
            out[n, j, 0] = q[base + best, 0]
            out[n, j, 1] = q[base + best, 1]


@numba.njit(cache=True, nogil=True)
def _rodrigues_small(r, out):
    for n in range(r.shape[0]):
        theta = np.sqrt(r[n, 0] ** 2 + r[n, 1] ** 2 + r[n, 2] ** 2)
        if theta < 1e-12:
            kx, ky, kz, s, c = 0.0, 0.0, 0.0, 0.0, 1.0
        else:
            kx, ky, kz = r[n, 0] / theta, r[n, 1] / theta, r[n, 2] / theta
            s, c = np.sin(theta), np.cos(theta)
        v = 1.0 - c
        out[n, 0, 0] = c + kx * kx * v
        out[n, 0, 1] = kx * ky * v - kz * s
        out[n, 0, 2] = kx * kz * v + ky * s
        out[n, 1, 0] = ky * kx * v + kz * s
        out[n, 1, 1] = c + ky * ky * v
        out[n, 1, 2] = ky * kz * v - kx * s
        out[n, 2, 0] = kz * kx * v - ky * s
        out[n, 2, 1] = kz * ky * v + kx * s
        out[n, 2, 2] = c + kz * kz * v
