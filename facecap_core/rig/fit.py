"""Fitting the rig to 2D landmarks: the paper's Eq. 4 (one image) and Eq. 3 (identity and focal over key-frames).

Camera model (design §3): OpenCV frame (x right, y down, z forward), pinhole with focal length f in pixels and the
principal point at the image centre, so landmark i is observed at

    p_i = Π_f(R (b0_i(u) + B_i x) + t),     b0(u) = neutral + Σ_k u_k I_k,

with R a rotation (model → camera), t in cm, x ∈ [0, 1]^46 the expression weights and u ∈ R^50 the identity
coefficients (u ~ N(0, 1) over real faces). Jaw landmarks are silhouette points (design §4): on a turned head they
slide along ``rig.jaw_contour_candidates`` to the visible contour (:func:`silhouette_vertices`).

* :func:`fit_landmarks` (Eq. 4) — single-frame ground truth for the regressor: PnP for (R, t) (``cv2.solvePnP``),
  a joint projected Gauss-Newton over pose and x ∈ [0, 1] (and u, f when free) with the jaw re-slid between outer
  iterations, and a bounded L-BFGS-B polish of x (u, f); analytic derivatives, vectorised.
* :func:`solve_identity_focal` (Eq. 3) — the key-frame solve of the tracker's second thread: damped Gauss-Newton
  over (u, f) jointly with a per-frame pose (and optionally expression) refinement, using the Schur complement of
  the per-frame blocks so its cost is linear in the number of frames.

Energies (the regularisation weights are in cm², see :class:`FitWeights`): pixel residuals are converted to
centimetres at the face's depth (× t_z / f) and normalised to a 73-landmark fit, so the same weights work for the
'68', '73' and '478' landmark sets and for any image size:

    E = ½ (73 / Σw) Σ_i w_i ‖(t_z / f) (Π_f(R P_i + t) − p_i)‖² + λ₁ Σ_j x_j + ½ λ₂ ‖x‖² + ½ λ_u ‖u‖².

Pass a :class:`FitRig` (``FitRig(rig)``, built once) instead of a ``FaceRig`` in a per-frame loop: it holds the
re-laid-out basis that every call otherwise rebuilds (≈1 ms).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import minimize

from . import landmarks as L
from .geometry import default_focal, matrix_to_quat, rotvec_to_matrix
from .model import N_EXPRESSIONS, N_IDENTITY, FaceRig

LANDMARK_SETS = ("73", "68", "478")
_REF_POINTS = 73.0  # energies are normalised to a fit of this many points
_MIN_POINTS = 6  # PnP and a rigid pose need at least this many points with positive weight
_FOCAL_BOUNDS = (0.25, 4.0)  # f / f_init


@dataclass(frozen=True)
class FitWeights:
    """Regularisation weights of Eq. 4 / Eq. 3, in cm² (the data term is ½ Σ ‖residual in cm‖² per 73 points).

    * ``expression_l1`` λ₁: L1 on x (x ≥ 0, so Σ x): keeps x sparse. 1 px of noise on a face 60 cm from a 640-px
      webcam is ≈ 0.1 cm; λ₁ = 2e-3 cm² suppresses activations whose data gain is below that level and biases a
      well-observed shape (Hessian ≈ 1-3 cm² per unit) by < 0.002.
    * ``expression_l2`` λ₂: small ridge on x, for shapes that the landmarks barely see (Puff, JawFwd frontal).
    * ``identity`` λ_u: Tikhonov prior on u ~ N(0, 1): the MAP weight σ² for σ ≈ 0.1 cm landmark noise.
    """

    expression_l1: float = 2e-3
    expression_l2: float = 1e-3
    identity: float = 1e-2


@dataclass
class FitResult:
    """Result of :func:`fit_landmarks`. Frames: R, t map model-frame cm to OpenCV camera-frame cm."""

    quaternion: np.ndarray  # (4,) w, x, y, z; unit, w ≥ 0
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,) cm
    expression: np.ndarray  # (46,) in [0, 1]
    identity: np.ndarray  # (50,)
    focal: float  # pixels
    landmarks2d: np.ndarray  # (N, 2) fitted projections, pixels
    residuals: np.ndarray  # (N, 2) fitted − observed, pixels
    rms: float  # sqrt(mean ‖residual‖²) over points with positive weight, pixels
    vertices: np.ndarray  # (N,) rig vertex behind each landmark (jaw slid to the silhouette)
    energy: float  # final value of E (cm²)
    n_outer: int  # outer (PnP + L-BFGS-B) iterations run
    n_evaluations: int  # energy/gradient evaluations in L-BFGS-B, all outer iterations together


@dataclass
class KeyframeSolveResult:
    """Result of :func:`solve_identity_focal` with the per-frame refinements (iterable as ``(u, f, rms)``)."""

    identity: np.ndarray  # (50,)
    focal: float  # pixels
    rms: float  # pixels, over all frames
    rotations: np.ndarray  # (L, 3, 3) refined poses
    translations: np.ndarray  # (L, 3) cm
    expressions: np.ndarray  # (L, 46)
    iterations: int = 0
    frame_rms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (L,) pixels

    def __iter__(self):
        return iter((self.identity, self.focal, self.rms))


class FitRig:
    """The rig re-laid out for fitting: basis (478, 3, 96) = [46 expression deltas | 50 identity modes] per vertex,
    and the jaw silhouette candidates with their frontal outward directions. Build once per rig."""

    def __init__(self, rig: FaceRig):
        self.rig = rig
        self.neutral = np.ascontiguousarray(rig.neutral, np.float64)
        self.basis = np.ascontiguousarray(
            np.concatenate([rig.expression_deltas, rig.identity_basis], 0).transpose(1, 2, 0), np.float64)
        self.landmark_vertices = np.asarray(rig.landmark_vertices, np.int64)
        cand = np.asarray(rig.jaw_contour_candidates, np.int64)
        if cand.ndim != 2 or cand.shape[0] != len(L.JAW):
            raise ValueError(f"rig.jaw_contour_candidates has shape {cand.shape}, expected ({len(L.JAW)}, C)")
        valid = cand >= 0
        # a jaw landmark with no candidate list keeps its frontal vertex
        cand = np.where(valid, cand, self.landmark_vertices[list(L.JAW)][:, None])
        cand[~valid.any(1), 0] = self.landmark_vertices[list(L.JAW)][~valid.any(1)]
        self.jaw_candidates = cand  # (17, C), padding repeats the landmark's frontal vertex
        self.jaw_valid = valid | (np.arange(cand.shape[1]) == 0)[None]
        # frontal outward direction of each jaw landmark (model x-y plane): from the strip's inner end to the oval
        xy = self.neutral[:, :2]
        out = np.zeros((len(L.JAW), 3))
        for j in range(len(L.JAW)):
            c = cand[j][self.jaw_valid[j]]
            d = xy[c[0]] - (xy[c[1:]].mean(0) if len(c) > 1 else np.zeros(2))
            if np.linalg.norm(d) < 1e-9:
                d = xy[c[0]]
            out[j, :2] = d / max(np.linalg.norm(d), 1e-12)
        self.jaw_outward = out

    def vertices_for(self, landmark_set: str) -> tuple[np.ndarray, bool]:
        """(N,) frontal vertex of each landmark of the set and whether its first 17 points slide."""
        if landmark_set == "73":
            return self.landmark_vertices.copy(), True
        if landmark_set == "68":
            return self.landmark_vertices[:68].copy(), True
        if landmark_set == "478":
            return np.arange(len(self.neutral)), False
        raise ValueError(f"landmark_set must be one of {LANDMARK_SETS}, got {landmark_set!r}")

    def points(self, vertices: np.ndarray, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """(N, 3) model-frame cm positions of ``vertices`` for expression x (46,) and identity u (50,)."""
        z = np.concatenate([x, u])
        return self.neutral[vertices] + self.basis[vertices] @ z


def _as_fit_rig(rig) -> FitRig:
    if isinstance(rig, FitRig):
        return rig
    if isinstance(rig, FaceRig):
        return FitRig(rig)
    raise TypeError(f"rig must be a FaceRig or FitRig, got {type(rig).__name__}")


# --------------------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------------------
def _check_image_size(image_size) -> tuple[float, float]:
    try:
        w, h = (float(v) for v in image_size)
    except Exception as exc:
        raise ValueError(f"image_size must be (width, height), got {image_size!r}") from exc
    if not (np.isfinite(w) and np.isfinite(h)) or w <= 0 or h <= 0:
        raise ValueError(f"image_size must be positive (width, height) in pixels, got {image_size!r}")
    return w, h


def _check_points(points2d, n_expected: int, what: str = "points2d") -> np.ndarray:
    p = np.asarray(points2d, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{what} must have shape (N, 2), got {p.shape}")
    if p.shape[0] != n_expected:
        raise ValueError(f"{what} has {p.shape[0]} points but the landmark set needs {n_expected}")
    if not np.all(np.isfinite(p)):
        bad = np.where(~np.isfinite(p).all(1))[0]
        raise ValueError(f"{what} contains NaN/inf at point(s) {bad[:10].tolist()}")
    return p


def _check_layout(p: np.ndarray, w: np.ndarray, what: str = "points2d") -> None:
    use = p[w > 0]
    if len(use) < _MIN_POINTS:
        raise ValueError(f"{what}: only {len(use)} point(s) with positive weight, at least {_MIN_POINTS} needed")
    extent = np.ptp(use, axis=0)
    if extent.max() < 1.0:
        raise ValueError(f"{what}: degenerate layout, all points (nearly) identical (extent {extent.max():.3g} px)")
    if extent.min() < 1e-6:
        raise ValueError(f"{what}: degenerate layout, zero-area bounding box ({extent[0]:.3g} x {extent[1]:.3g} px)")
    s = np.linalg.svd(use - use.mean(0), compute_uv=False)
    if s[1] < 1e-2 * s[0]:
        raise ValueError(f"{what}: degenerate layout, points are (nearly) collinear (spread ratio {s[1] / s[0]:.2g})")


def _check_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {np.shape(weights)}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    return w


def _check_vector(v, n: int, what: str) -> np.ndarray:
    a = np.asarray(v, np.float64).reshape(-1)
    if a.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {np.shape(v)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN/inf")
    return a


def _check_focal(f, what: str = "f") -> float:
    f = float(f)
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"{what} must be a positive focal length in pixels, got {f}")
    return f


# --------------------------------------------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------------------------------------------
def _project(P: np.ndarray, R: np.ndarray, t: np.ndarray, f: float, c: np.ndarray):
    cam = P @ R.T + t
    z = cam[:, 2:3]
    return f * cam[:, :2] / z + c, cam


def silhouette_vertices(rig, R: np.ndarray, t: np.ndarray, f: float, image_size, x=None, u=None) -> np.ndarray:
    """(17,) rig vertex of each jaw landmark under pose (R (3, 3), t (3,) cm, f px): the silhouette point.

    Rule: each jaw landmark's candidates form a strip from the face oval inwards. Project the candidates and the
    landmark's frontal outward direction (model x-y plane, rotated by R) into the image; the silhouette is the
    candidate that lies furthest out along that image direction. Frontal faces keep the oval vertex (a candidate must
    beat it by more than 0.01 px); on a turned head the far side's landmarks move inwards to the visible contour.
    """
    fr = _as_fit_rig(rig)
    x = np.zeros(N_EXPRESSIONS) if x is None else np.asarray(x, np.float64)
    u = np.zeros(N_IDENTITY) if u is None else np.asarray(u, np.float64)
    w, h = _check_image_size(image_size)
    return _slide(fr, np.asarray(R, np.float64), np.asarray(t, np.float64), float(f), np.array([w / 2, h / 2]), x, u)


def _slide(fr: FitRig, R, t, f, c, x, u, observed=None, tol: float = 2.0) -> np.ndarray:
    cand = fr.jaw_candidates
    nj, nc = cand.shape
    P = fr.points(cand.ravel(), x, u).reshape(nj, nc, 3)
    q, _ = _project(P.reshape(-1, 3), R, t, f, c)
    q = q.reshape(nj, nc, 2)
    # image direction of the outward vector at the oval vertex (perspective-correct)
    tip, _ = _project(P[:, 0] + fr.jaw_outward, R, t, f, c)
    d = tip - q[:, 0]
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    score = np.einsum("jcd,jd->jc", q - q[:, :1], d)
    score[~fr.jaw_valid] = -np.inf
    score[:, 0] = 0.01  # margin in favour of the oval vertex
    if observed is not None:
        # fitting: among the candidates within `tol` px of the silhouette, take the one nearest the observation, so
        # that a near-tie under a still inexact pose/expression does not lock in the wrong strip vertex
        near = score >= score.max(1, keepdims=True) - tol
        dist = np.sum((q - observed[:, None]) ** 2, axis=2)
        dist[~near] = np.inf
        return cand[np.arange(nj), np.argmin(dist, axis=1)]
    return cand[np.arange(nj), np.argmax(score, axis=1)]


def _pnp(P: np.ndarray, p: np.ndarray, w: np.ndarray, f: float, c: np.ndarray, R0=None, t0=None):
    """Pose (R, t) of model points P (N, 3) observed at p (N, 2) with focal f: cv2.solvePnP (SQPnP when there is no
    guess, then Levenberg-Marquardt from the guess) on the points with positive weight."""
    K = np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])
    use = w > 0
    obj = np.ascontiguousarray(P[use], np.float64).reshape(-1, 1, 3)
    img = np.ascontiguousarray(p[use], np.float64).reshape(-1, 1, 2)
    if not (np.isfinite(f) and np.all(np.isfinite(obj)) and np.all(np.isfinite(img))):
        raise ValueError("pose estimation (PnP) got non-finite model points or focal length")
    if R0 is None:
        try:
            ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:  # SQPnP asserts on near-degenerate point spreads; EPnP copes or fails cleanly
            ok = False
        if not ok or tvec[2, 0] <= 0:
            ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP)
        if not ok:
            raise ValueError("pose estimation (PnP) failed: the landmarks do not look like a face")
    else:
        rvec = cv2.Rodrigues(np.asarray(R0, np.float64))[0]
        tvec = np.asarray(t0, np.float64).reshape(3, 1).copy()
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, None, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]
    return R, tvec.ravel().copy()


# --------------------------------------------------------------------------------------------------------------
# Eq. 4
# --------------------------------------------------------------------------------------------------------------
def fit_landmarks(points2d, image_size, rig, landmark_set: str = "73", weights=None, u=None, f=None,
                  fix_identity: bool = False, fix_focal: bool = False, x0=None, pose0=None,
                  outer_iterations: int = 3, gn_iterations: int = 10, max_lbfgs_iterations: int = 15,
                  reg: FitWeights | None = None, slide_jaw: bool = True) -> FitResult:
    """Eq. 4: fit pose, expression (and identity, focal) of the rig to 2D landmarks of one image.

    points2d: (N, 2) pixels (x right, y down) in ``landmark_set`` order — '73' (iBUG-68 + pupils + forehead,
    ``landmarks.LANDMARKS73``), '68' (its iBUG subset) or '478' (the teacher's full mesh, all rig vertices);
    image_size (width, height) px; rig a FaceRig or FitRig; weights (N,) ≥ 0 per point (0 ignores a point).
    u (50,) identity and f (px) are the starting values (0 and ``default_focal``) or, with ``fix_identity`` /
    ``fix_focal``, held fixed (the tracking setting). x0 (46,) and pose0 = (R (3, 3), t (3,) cm) warm-start from a
    previous frame. Jaw landmarks of the '73'/'68' sets slide to the silhouette at each outer iteration.

    Method (paper Eq. 4, PnP interleaved with bounded L-BFGS-B, made to converge in a few outer iterations):
    PnP (``cv2.solvePnP``: SQPnP, then LM) initialises (R, t) from the current 3D landmarks and f; then up to
    ``outer_iterations`` × [jaw sliding → projected Levenberg-Marquardt over pose, x ∈ [0, 1] (bound-active weights
    pinned) and the free ones of u, f, analytic Jacobian] until the silhouette vertices stop changing; then bounded
    L-BFGS-B (analytic gradient, variables scaled by the Gauss-Newton diagonal, ``max_lbfgs_iterations``) over
    x (u, f) at fixed pose, and a final PnP (skipped when the weights are not uniform: cv2 cannot weight points).
    Alternating PnP with L-BFGS-B alone converges too slowly (pose and expression are strongly coupled: ≈1 px RMS
    after 3 outer iterations on noise-free data), hence the joint step.
    Raises ValueError on bad input (NaN/inf, wrong point count, degenerate layout, bad image size).
    """
    fr = _as_fit_rig(rig)
    reg = reg or FitWeights()
    W, H = _check_image_size(image_size)
    c = np.array([W / 2.0, H / 2.0])
    verts, slides = fr.vertices_for(landmark_set)
    n = len(verts)
    p = _check_points(points2d, n)
    w = _check_weights(weights, n)
    _check_layout(p, w)
    u = np.zeros(N_IDENTITY) if u is None else _check_vector(u, N_IDENTITY, "u")
    f = default_focal((W, H)) if f is None else _check_focal(f)
    x = np.zeros(N_EXPRESSIONS) if x0 is None else np.clip(_check_vector(x0, N_EXPRESSIONS, "x0"), 0.0, 1.0)
    slides = slides and slide_jaw
    jaw = list(L.JAW)

    R = t = None
    if pose0 is not None:
        R, t = np.asarray(pose0[0], np.float64).reshape(3, 3), np.asarray(pose0[1], np.float64).reshape(3)
    wn = w * (_REF_POINTS / w.sum())
    n_eval = 0
    it = 0
    n_outer = max(1, int(outer_iterations))
    for it in range(1, n_outer + 1):
        if slides and R is not None:
            verts[jaw] = _slide(fr, R, t, f, c, x, u, p[jaw])
        if it == 1:  # PnP initialises (R, t); the joint Gauss-Newton step refines them with the shape afterwards
            R, t = _pnp(fr.points(verts, x, u), p, w, f, c, R, t)
            if slides:
                new = _slide(fr, R, t, f, c, x, u, p[jaw])
                if np.any(new != verts[jaw]):
                    verts[jaw] = new
                    R, t = _pnp(fr.points(verts, x, u), p, w, f, c, R, t)
        if not fix_focal and it == 1:  # focal is weakly observed: settle pose and shape at the initial f first
            R, t, x, u, f, _ = _joint_gn(fr, verts, p, wn, R, t, f, c, x, u, fix_identity, True, reg, gn_iterations)
        R, t, x, u, f, e_gn = _joint_gn(fr, verts, p, wn, R, t, f, c, x, u, fix_identity, fix_focal, reg,
                                        gn_iterations)
        # the Gauss-Newton solve is joint over pose and shape: once the silhouette stops moving it is the optimum
        if not slides or np.all(_slide(fr, R, t, f, c, x, u, p[jaw]) == verts[jaw]):
            break
    if max_lbfgs_iterations > 0:
        x, u, f, _, ne_ = _lbfgs_step(fr, verts, p, wn, R, t, f, c, x, u, fix_identity, fix_focal, reg,
                                      max_lbfgs_iterations)
        n_eval += ne_
    P = fr.points(verts, x, u)
    if np.ptp(w[w > 0]) == 0:
        R, t = _pnp(P, p, w, f, c, R, t)  # final PnP: the pose that best fits the final shape
    q, _ = _project(P, R, t, f, c)
    res = q - p
    use = w > 0
    rms = float(np.sqrt(np.mean(np.sum(res[use] ** 2, 1))))
    e = _energy_terms(res, wn, t, f, x, u, reg)
    return FitResult(quaternion=matrix_to_quat(R), rotation=R, translation=t, expression=x, identity=u, focal=float(f),
                     landmarks2d=q, residuals=res, rms=rms, vertices=verts, energy=e, n_outer=it,
                     n_evaluations=n_eval)


def _energy_terms(res, wn, t, f, x, u, reg: FitWeights) -> float:
    s2 = (t[2] / f) ** 2
    return float(0.5 * s2 * np.sum(wn[:, None] * res ** 2) + reg.expression_l1 * x.sum()
                 + 0.5 * reg.expression_l2 * x @ x + 0.5 * reg.identity * u @ u)


def _lbfgs_step(fr: FitRig, verts, p, wn, R, t, f, c, x, u, fix_identity, fix_focal, reg: FitWeights, maxiter):
    """Bounded L-BFGS-B over x (and u, f/f_in) at fixed pose; returns x, u, f, E, evaluations."""
    n = len(verts)
    ne = N_EXPRESSIONS
    Bsel = fr.basis[verts]  # (N, 3, 96)
    if fix_identity:
        base = fr.neutral[verts] + Bsel[:, :, ne:] @ u
        Ba = Bsel[:, :, :ne]
    else:
        base = fr.neutral[verts]
        Ba = Bsel
    ka = Ba.shape[2]
    Ba2 = np.ascontiguousarray(Ba.reshape(3 * n, ka))
    RtB = np.ascontiguousarray(Ba2.T)  # (ka, 3N) for the gradient
    free_f = not fix_focal
    f_in = f
    s2 = (t[2] / f_in) ** 2  # px² → cm² at the face depth, fixed within this step
    wcol = (s2 * wn)[:, None]
    l1, l2, lu = reg.expression_l1, reg.expression_l2, reg.identity

    z0 = x if fix_identity else np.concatenate([x, u])
    # diagonal scaling from the Gauss-Newton Hessian at the start point
    P0 = base + (Ba2 @ z0).reshape(n, 3)
    q0, cam0 = _project(P0, R, t, f, c)
    zc = cam0[:, 2:3]
    D = np.zeros((n, 2, 3))
    D[:, 0, 0] = D[:, 1, 1] = (f / zc[:, 0])
    D[:, :, 2] = -f * cam0[:, :2] / zc ** 2
    Jq = np.einsum("nab,bc,nck->nak", D, R, Ba)  # (N, 2, ka) d q / d z
    diag = np.einsum("n,nak->k", s2 * wn, Jq ** 2)
    diag[:ne] += l2
    if not fix_identity:
        diag[ne:] += lu
    if free_f:
        dq_df = (q0 - c) / f
        diag = np.append(diag, s2 * np.sum(wn[:, None] * dq_df ** 2) * f_in ** 2)
    scale = np.sqrt(np.maximum(diag, 1e-8))

    def fun(y):
        z = y[:ka] / scale[:ka]
        ff = f_in * y[ka] / scale[ka] if free_f else f_in
        P = base + (Ba2 @ z).reshape(n, 3)
        cam = P @ R.T + t
        iz = 1.0 / cam[:, 2:3]
        proj = cam[:, :2] * iz
        r = ff * proj + c - p
        wr = wcol * r
        xx = z[:ne]
        e = 0.5 * np.sum(wr * r) + l1 * xx.sum() + 0.5 * l2 * xx @ xx
        gcam = np.empty((n, 3))
        gcam[:, :2] = ff * wr * iz
        gcam[:, 2] = -np.sum(gcam[:, :2] * proj, 1)
        g = RtB @ (gcam @ R).ravel()
        g[:ne] += l1 + l2 * xx
        if not fix_identity:
            uu = z[ne:]
            e += 0.5 * lu * uu @ uu
            g[ne:] += lu * uu
        g = g / scale[:ka]
        if free_f:
            g = np.append(g, np.sum(wr * proj) * f_in / scale[ka])
        return e, g

    lo = np.concatenate([np.zeros(ne), np.full(ka - ne, -np.inf)]) * scale[:ka]
    hi = np.concatenate([np.ones(ne), np.full(ka - ne, np.inf)]) * scale[:ka]
    y0 = z0 * scale[:ka]
    if free_f:
        lo = np.append(lo, _FOCAL_BOUNDS[0] * scale[ka])
        hi = np.append(hi, _FOCAL_BOUNDS[1] * scale[ka])
        y0 = np.append(y0, scale[ka])
    bounds = list(zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None)))
    out = minimize(fun, y0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options=dict(maxiter=int(maxiter), maxcor=10, ftol=1e-9, gtol=1e-6))
    y = out.x
    z = y[:ka] / scale[:ka]
    x_new = np.clip(z[:ne], 0.0, 1.0)
    u_new = u if fix_identity else z[ne:].copy()
    f_new = f_in * y[ka] / scale[ka] if free_f else f_in
    return x_new, u_new, float(f_new), float(out.fun), int(out.nfev)


def _rodrigues_batch(r: np.ndarray) -> np.ndarray:
    """(L, 3) rotation vectors → (L, 3, 3) matrices."""
    theta = np.linalg.norm(r, axis=1)
    k = r / np.maximum(theta, 1e-300)[:, None]
    K = np.zeros((len(r), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K[:, 1, 0], K[:, 2, 0], K[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    s, c = np.sin(theta)[:, None, None], (1 - np.cos(theta))[:, None, None]
    return np.eye(3) + s * K + c * np.matmul(K, K)


class _Problem:
    """Residuals and Jacobian of Eq. 4 for one frame over θ = [δω (3), δt (3), x (46), u (50, if free), f (free)],
    pose perturbed as R ← exp([δω]×) R, t ← t + δt. Residuals are sqrt-weighted and in cm at the face depth."""

    def __init__(self, fr: FitRig, verts, p, wn, c, u, fix_identity, fix_focal, s):
        n = len(verts)
        ne = N_EXPRESSIONS
        B = fr.basis[verts]
        if fix_identity:
            self.base = fr.neutral[verts] + B[:, :, ne:] @ u
            self.B = np.ascontiguousarray(B[:, :, :ne])
        else:
            self.base = fr.neutral[verts].copy()
            self.B = B
        self.B2 = self.B.reshape(3 * n, -1)
        self.ka = self.B.shape[2]
        self.free_f = not fix_focal
        self.p, self.c, self.n = p, c, n
        self.sw = (s * np.sqrt(wn))[:, None]  # (N, 1) px → weighted cm
        self.k = 6 + self.ka + (1 if self.free_f else 0)

    def residual(self, R, t, z, f):
        P = self.base + (self.B2 @ z).reshape(self.n, 3)
        cam = P @ R.T + t
        q = f * cam[:, :2] / cam[:, 2:3] + self.c
        return (self.sw * (q - self.p)), cam

    def jacobian(self, R, t, f, cam):
        n = self.n
        iz = 1.0 / cam[:, 2]
        D = np.zeros((n, 2, 3))
        D[:, 0, 0] = D[:, 1, 1] = f * iz
        D[:, :, 2] = -f * cam[:, :2] * (iz ** 2)[:, None]
        D *= self.sw[:, :, None]
        J = np.empty((n, 2, self.k))
        a = cam - t  # rows of D (-[a]×) = a × row, a = R P (written out: np.cross is slow on small arrays)
        ax, ay, az = a[:, None, 0], a[:, None, 1], a[:, None, 2]
        J[:, :, 0] = ay * D[:, :, 2] - az * D[:, :, 1]
        J[:, :, 1] = az * D[:, :, 0] - ax * D[:, :, 2]
        J[:, :, 2] = ax * D[:, :, 1] - ay * D[:, :, 0]
        J[:, :, 3:6] = D
        DR = (self.sw * f * iz[:, None])[:, :, None] * (R[None, :2, :] - (cam[:, :2] * iz[:, None])[:, :, None]
                                                          * R[None, 2:3, :])
        J[:, :, 6:6 + self.ka] = np.matmul(DR, self.B)
        if self.free_f:
            J[:, :, -1] = self.sw * cam[:, :2] * iz[:, None]
        return J.reshape(2 * n, self.k)


def _reg_energy(z, reg: FitWeights, fix_identity):
    ne = N_EXPRESSIONS
    x = z[:ne]
    e = reg.expression_l1 * x.sum() + 0.5 * reg.expression_l2 * x @ x
    if not fix_identity:
        e += 0.5 * reg.identity * z[ne:] @ z[ne:]
    return e


def _joint_gn(fr: FitRig, verts, p, wn, R, t, f, c, x, u, fix_identity, fix_focal, reg: FitWeights, iters: int):
    """Projected Levenberg-Marquardt over pose, x ∈ [0, 1] (and u, f) jointly: bound-active expression weights are
    frozen for the step (gradient pointing out of the box), the others take the damped Gauss-Newton step, then x is
    clipped to the box. Returns R, t, x, u, f, E."""
    ne = N_EXPRESSIONS
    s = t[2] / f
    pb = _Problem(fr, verts, p, wn, c, u, fix_identity, fix_focal, s)
    z = x.copy() if fix_identity else np.concatenate([x, u])
    ka = pb.ka
    reg_diag = np.zeros(pb.k)
    reg_diag[6:6 + ne] = reg.expression_l2
    if not fix_identity:
        reg_diag[6 + ne:6 + ka] = reg.identity

    def reg_grad(z):
        g = np.zeros(pb.k)
        g[6:6 + ne] = reg.expression_l1 + reg.expression_l2 * z[:ne]
        if not fix_identity:
            g[6 + ne:6 + ka] = reg.identity * z[ne:]
        return g

    r, cam = pb.residual(R, t, z, f)
    e = 0.5 * np.sum(r * r) + _reg_energy(z, reg, fix_identity)
    mu = 1e-3
    for _ in range(iters):
        J = pb.jacobian(R, t, f, cam)
        H = J.T @ J
        g = J.T @ r.ravel() + reg_grad(z)
        H.flat[:: pb.k + 1] += reg_diag
        xs = z[:ne]
        gx = g[6:6 + ne]
        active0 = np.zeros(pb.k, bool)
        active0[6:6 + ne] = ((xs <= 1e-9) & (gx > 0)) | ((xs >= 1 - 1e-9) & (gx < 0))
        dH = np.maximum(np.diag(H).copy(), 1e-9)
        improved = False
        for _try in range(6):
            A = H + np.diag(mu * dH)
            step, act = np.zeros(pb.k), active0.copy()
            ok = True
            for _pass in range(4):  # expression weights that would leave the box are pinned to the bound
                # solve A_ff s_f = -(g_f + A_fa s_a) on the free block only (most expressions sit at a bound)
                free = ~act
                rhs = -(g[free] + A[np.ix_(free, act)] @ step[act])
                try:
                    step[free] = np.linalg.solve(A[np.ix_(free, free)], rhs)
                except np.linalg.LinAlgError:
                    ok = False
                    break
                xn = xs + step[6:6 + ne]
                viol = ~act[6:6 + ne] & ((xn < 0) | (xn > 1))
                if not viol.any():
                    break
                idx = 6 + np.where(viol)[0]
                act[idx] = True
                step[idx] = np.clip(xn[viol], 0.0, 1.0) - xs[viol]
            if not ok:
                mu *= 10
                continue
            R1 = rotvec_to_matrix(step[0:3]) @ R
            t1 = t + step[3:6]
            z1 = z + step[6:6 + ka]
            z1[:ne] = np.clip(z1[:ne], 0.0, 1.0)
            f1 = f + step[-1] if pb.free_f else f
            if t1[2] <= 1e-3 or f1 <= 0:
                mu *= 10
                continue
            r1, cam1 = pb.residual(R1, t1, z1, f1)
            if np.any(cam1[:, 2] <= 1e-6):
                mu *= 10
                continue
            e1 = 0.5 * np.sum(r1 * r1) + _reg_energy(z1, reg, fix_identity)
            if e1 < e:
                improved = True
                rel = min((e - e1) / max(e, 1e-300), (e - e1) * 1e-1)  # relative, or < 1e-5 cm² absolute
                R, t, z, f, r, cam, e = R1, t1, z1, f1, r1, cam1, e1
                mu = max(mu / 10, 1e-8)
                break
            mu *= 10
        if not improved or rel < 1e-4:  # tighter tolerances cost ~25 % more time for no measurable accuracy
            break
    x = z[:ne].copy()
    u = u if fix_identity else z[ne:].copy()
    return R, t, x, u, float(f), float(e)


# --------------------------------------------------------------------------------------------------------------
# Eq. 3
# --------------------------------------------------------------------------------------------------------------
def solve_identity_focal(keyframes, image_size, rig, u0=None, f0=None, landmark_set: str = "73",
                         iterations: int = 4, rounds: int = 3,
                         reg: FitWeights | None = None, refine_pose: bool = True,
                         refine_expression: bool = False, focal_prior: float = 0.0) -> KeyframeSolveResult:
    """Eq. 3: identity u (50,) and focal f (px) that best explain L key-frames, with each frame's pose refined.

    keyframes: list of (points2d (N, 2) px, R (3, 3), t (3,) cm, x (46,)) — the tracker's landmarks and its current
    pose/expression estimates for each key-frame; image_size (width, height); u0 (50,) and f0 (px) the current
    estimates (0 and ``default_focal`` when None). Minimises Σ_l ½ (73/N) Σ_i ‖(t_lz/f) (Π_f(R_l (b0_i(u) +
    B_i x_l) + t_l) − p_li)‖² + ½ λ_u ‖u‖² by damped Gauss-Newton over [u, f] and the 6 pose parameters of each
    frame (and, with ``refine_expression``, its 46 expression weights, kept in [0, 1] by freezing bound-active ones
    and clipping, regularised as in Eq. 4) — Schur complement of the per-frame blocks, so the cost is linear in L.
    ``iterations`` damped steps per round; between rounds (at most ``rounds``) the jaw landmarks are re-slid to
    each frame's silhouette under the new u, f and pose. ``refine_expression`` is off by default: it costs ≈4× and
    on landmarks alone expression, identity and focal trade off (in the tests it lowers the RMS but not the focal
    error when the key-frames' x came from a fit with the wrong u, f). Returns a KeyframeSolveResult, which unpacks as
    ``u, f, rms`` (rms in px over all frames' points).
    """
    fr = _as_fit_rig(rig)
    reg = reg or FitWeights()
    W, H = _check_image_size(image_size)
    c = np.array([W / 2.0, H / 2.0])
    if len(keyframes) == 0:
        raise ValueError("solve_identity_focal needs at least one key-frame")
    u = np.zeros(N_IDENTITY) if u0 is None else _check_vector(u0, N_IDENTITY, "u0")
    f = default_focal((W, H)) if f0 is None else _check_focal(f0, "f0")
    f_prior = f
    verts0, slides = fr.vertices_for(landmark_set)
    n = len(verts0)
    jaw = list(L.JAW)
    Ps, Rs, ts, xs, Vs = [], [], [], [], []
    for k, kf in enumerate(keyframes):
        if len(kf) != 4:
            raise ValueError(f"key-frame {k} must be (points2d, R, t, x)")
        p = _check_points(kf[0], n, f"key-frame {k} points2d")
        _check_layout(p, np.ones(n), f"key-frame {k} points2d")
        R = np.asarray(kf[1], np.float64).reshape(3, 3)
        if not np.all(np.isfinite(R)):
            raise ValueError(f"key-frame {k}: R contains NaN/inf")
        t = _check_vector(kf[2], 3, f"key-frame {k} t")
        if t[2] <= 0:
            raise ValueError(f"key-frame {k}: t_z must be positive (face in front of the camera), got {t[2]}")
        x = np.clip(_check_vector(kf[3], N_EXPRESSIONS, f"key-frame {k} x"), 0.0, 1.0)
        v = verts0.copy()
        if slides:
            v[jaw] = _slide(fr, R, t, f, c, x, u, p[jaw])
        Ps.append(p), Rs.append(R), ts.append(t), xs.append(x), Vs.append(v)
    p = np.stack(Ps)  # (L, N, 2)
    V = np.stack(Vs)  # (L, N)
    X = np.stack(xs)
    R = np.stack(Rs)
    t = np.stack(ts)
    it_total = 0
    for _round in range(rounds):  # re-slide the jaw with the new identity/focal/poses until the silhouette settles
        R, t, X, u, f, res_px, it, converged = _keyframe_lm(fr, p, V, R, t, X, u, f, c, reg, iterations,
                                                             focal_prior * len(p), f_prior,
                                                             refine_pose, refine_expression)
        it_total += it
        V_new = V.copy()
        if slides:
            for k in range(len(p)):
                V_new[k, jaw] = _slide(fr, R[k], t[k], f, c, X[k], u, p[k, jaw])
        if converged and np.array_equal(V_new, V):
            break
        V = V_new
    frame_rms = np.sqrt(np.mean(np.sum(res_px ** 2, -1), -1))
    rms = float(np.sqrt(np.mean(np.sum(res_px ** 2, -1))))
    return KeyframeSolveResult(identity=u, focal=float(f), rms=rms, rotations=R, translations=t, expressions=X,
                               iterations=it_total, frame_rms=frame_rms)


def _keyframe_lm(fr: FitRig, p, V, R, t, X, u, f, c, reg: FitWeights, iterations, lam_f, f0, refine_pose,
                 refine_expression):
    """Damped Gauss-Newton of Eq. 3 for fixed landmark vertices V (L, N); returns R, t, X, u, f, residuals px, its."""
    nf, n = V.shape
    Bx = fr.basis[V][..., :N_EXPRESSIONS]  # (L, N, 3, 46)
    Bu = np.ascontiguousarray(fr.basis[V][..., N_EXPRESSIONS:])  # (L, N, 3, 50)
    Bx = np.ascontiguousarray(Bx)
    nb = fr.neutral[V]
    ne = N_EXPRESSIONS
    nl = 6 + ne if refine_expression else 6
    sw = (t[:, 2] / f * np.sqrt(_REF_POINTS / n))[:, None, None]  # (L, 1, 1) px → cm, per frame, fixed
    ng = N_IDENTITY + 1

    def residual(R, t, u, f, X):
        P = nb + Bu @ u + np.einsum("lnck,lk->lnc", Bx, X)
        cam = np.einsum("lnc,ldc->lnd", P, R) + t[:, None]
        r = sw * (f * cam[..., :2] / cam[..., 2:3] + c - p)
        e = (0.5 * np.sum(r * r) + 0.5 * reg.identity * u @ u + reg.expression_l1 * X.sum()
             + 0.5 * reg.expression_l2 * np.sum(X * X) + 0.5 * lam_f * ((f - f0) / f0) ** 2)
        return r, cam, e

    r, cam, e = residual(R, t, u, f, X)
    mu = 1e-3
    it = 0
    converged = False
    for it in range(1, iterations + 1):
        iz = 1.0 / cam[..., 2]
        D = np.zeros((nf, n, 2, 3))
        D[..., 0, 0] = D[..., 1, 1] = f * iz
        D[..., :, 2] = -f * cam[..., :2] * (iz ** 2)[..., None]
        D *= sw[..., None]
        Jg = np.empty((nf, n, 2, ng))
        # D R without a batched 3×3 product: rows of R scaled, minus the projection times R's third row
        DR = (sw[..., None] * f * iz[..., None, None]) * (R[:, None, :2, :] - (cam[..., :2] * iz[..., None])[..., None]
                                                          * R[:, None, 2:3, :])
        Jg[..., :N_IDENTITY] = np.matmul(DR, Bu)
        Jg[..., -1] = sw * cam[..., :2] * iz[..., None]
        Jg = Jg.reshape(nf, 2 * n, ng)
        rr = r.reshape(nf, 2 * n)
        Jg2 = Jg.reshape(nf * 2 * n, ng)
        A = Jg2.T @ Jg2
        A[np.arange(N_IDENTITY), np.arange(N_IDENTITY)] += reg.identity
        A[-1, -1] += lam_f / f0 ** 2
        gg = Jg2.T @ rr.ravel()
        gg[:N_IDENTITY] += reg.identity * u
        gg[-1] += lam_f * (f - f0) / f0 ** 2
        if refine_pose:
            Jp = np.empty((nf, n, 2, nl))
            a = cam - t[:, None]
            Jp[..., 0:3] = np.cross(a[..., None, :], D)  # rows of D (-[a]×) = a × row
            Jp[..., 3:6] = D
            if refine_expression:
                Jp[..., 6:] = np.matmul(DR, Bx)
            Jp = Jp.reshape(nf, 2 * n, nl)
            JpT = np.transpose(Jp, (0, 2, 1))
            gp = np.matmul(JpT, rr[..., None])[..., 0]  # (L, nl)
            if refine_expression:
                gp[:, 6:] += reg.expression_l1 + reg.expression_l2 * X
                # expression weights held at a bound by the gradient are frozen for this step
                frozen = ((X <= 1e-9) & (gp[:, 6:] > 0)) | ((X >= 1 - 1e-9) & (gp[:, 6:] < 0))
                keep = np.concatenate([np.ones((nf, 6), bool), ~frozen], 1)
                Jp = Jp * keep[:, None, :]
                JpT = np.transpose(Jp, (0, 2, 1))
                gp = gp * keep
            Bm = np.matmul(np.transpose(Jg, (0, 2, 1)), Jp)  # (L, ng, nl)
            Dm = np.matmul(JpT, Jp)  # (L, nl, nl)
            if refine_expression:
                Dm[:, np.arange(6, nl), np.arange(6, nl)] += reg.expression_l2 + (~keep[:, 6:])
        improved = False
        for _try in range(6):
            Ad = A + np.diag(mu * np.maximum(np.diag(A), 1e-9))
            if refine_pose:
                Dd = Dm + mu * np.maximum(np.diagonal(Dm, axis1=1, axis2=2), 1e-9)[:, :, None] * np.eye(nl)
                Dinv_Bt = np.linalg.solve(Dd, np.transpose(Bm, (0, 2, 1)))  # (L, 6, ng)
                Dinv_g = np.linalg.solve(Dd, gp[..., None])[..., 0]  # (L, 6)
                S = Ad - np.matmul(Bm, Dinv_Bt).sum(0)
                rhs = -gg + np.matmul(Bm, Dinv_g[..., None])[..., 0].sum(0)
            else:
                S, rhs = Ad, -gg
            try:
                dg = np.linalg.solve(S, rhs)
            except np.linalg.LinAlgError:
                mu *= 10
                continue
            u1, f1 = u + dg[:N_IDENTITY], f + dg[-1]
            R1, t1, X1 = R, t, X
            if refine_pose:
                dp = -Dinv_g - Dinv_Bt @ dg
                R1 = np.matmul(_rodrigues_batch(dp[:, :3]), R)
                t1 = t + dp[:, 3:6]
                if refine_expression:
                    X1 = np.clip(X + dp[:, 6:], 0.0, 1.0)
            if f1 <= 0 or np.any(t1[:, 2] <= 1e-3):
                mu *= 10
                continue
            r1, cam1, e1 = residual(R1, t1, u1, f1, X1)
            if np.all(cam1[..., 2] > 1e-6) and e1 < e:
                # converged: < 1e-5 relative, or < 1e-5 cm² per frame (≈ 0.005 px rms at 60 cm) absolute
                rel = min((e - e1) / max(e, 1e-300), (e - e1) / nf)
                R, t, u, f, r, cam, e, X = R1, t1, u1, f1, r1, cam1, e1, X1
                mu = max(mu / 3, 1e-7)
                improved = True
                break
            mu *= 10
        if not improved or rel < 1e-5:
            converged = True
            break
    return R, t, X, u, f, r / sw, it, converged
