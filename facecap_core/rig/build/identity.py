"""Stage 3 of the rig build: 50 identity modes learned from real faces (design §4, §7).

The teacher (MediaPipe FaceLandmarker, ``facecap_core.teacher``) gives a 478-point mesh per face photo. For each
usable face:

1. **pose removed**: robust (Huber-IRLS) similarity Procrustes of the 468 face vertices onto ``base.neutral``.
   The teacher's z is a relative depth in roughly x-pixel units; one global depth factor ``z_scale`` (applied to the
   teacher's z before the fit) is estimated over all faces by minimising the alignment residual. The similarity
   also removes each person's overall size: the mean face has the canonical size (absolute scale is unobservable
   from one camera, where it trades against distance);
2. **expression removed**: bounded least squares (``scipy.optimize.lsq_linear``, x ∈ [0, 1], a small ridge) on
   the rig's expression deltas, plus rejection of strongly expressive faces by the teacher's blendshape scores
   (so the method also works while the deltas are still zeros);
3. **iris rings** are not taken from the teacher (they follow the gaze): each ring is moved rigidly with the mean
   displacement of its eye's lid contour, so it follows the eye region's shape;
4. faces are **averaged per identity** (manifest ``identity``; each face of a group photo is its own identity),
   so that people with many photos do not dominate; outliers of the alignment residual are rejected;
5. **PCA** of the identity shapes about their mean → 50 modes, each scaled to one standard deviation (u ~ N(0, 1)
   over real faces). If fewer than 51 identities are usable, the remaining modes are smooth anthropometric
   deformations (face width, length, depth, jaw width, nose size, …) orthogonalised against the learned ones.

The mean of real faces is symmetrised with its mirror image and compared with the canonical neutral (reported in
the notes, not applied: the base neutral stays the canonical face).
"""
from __future__ import annotations

import csv
import os
from collections import OrderedDict

import numpy as np

from .. import landmarks as L

N_MODES = 50
N_FACE = 468  # vertices that come from the teacher; 468-477 are the iris rings

# Faces whose teacher blendshape score exceeds these are too expressive to count as neutral.
EXPRESSION_LIMITS = {
    "jawOpen": 0.25, "eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5, "eyeWideLeft": 0.4, "eyeWideRight": 0.4,
    "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5, "mouthPucker": 0.4, "mouthFunnel": 0.3,
    "mouthUpperUpLeft": 0.5, "mouthUpperUpRight": 0.5, "mouthLowerDownLeft": 0.4, "mouthLowerDownRight": 0.4,
    "mouthShrugLower": 0.5, "mouthStretchLeft": 0.4, "mouthStretchRight": 0.4, "mouthFrownLeft": 0.4,
    "mouthFrownRight": 0.4, "browInnerUp": 0.5, "browOuterUpLeft": 0.5, "browOuterUpRight": 0.5,
    "browDownLeft": 0.7, "browDownRight": 0.7, "cheekPuff": 0.3, "noseSneerLeft": 0.4, "noseSneerRight": 0.4,
    "jawLeft": 0.3, "jawRight": 0.3, "jawForward": 0.3,
}
MAX_YAW_DEG = 25.0
MAX_PITCH_DEG = 25.0
MIN_EYE_DISTANCE_PX = 30.0  # outer eye corners; smaller faces give the teacher too little to go on


# -- geometry: pure functions --------------------------------------------------------------------------------
def similarity_procrustes(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None):
    """(s, R, t) minimising Σ w_i |s R src_i + t - dst_i|²; src, dst (N, 3); R a proper rotation."""
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    D = np.diag([1.0, 1.0, d])
    R = u @ D @ vt
    var_s = float(w @ (a * a).sum(1))
    s = float((sig * np.diag(D)).sum() / max(var_s, 1e-12))
    t = mu_d - s * R @ mu_s
    return s, R, t


def robust_align(src: np.ndarray, dst: np.ndarray, fit: np.ndarray | None = None, iters: int = 5,
                 huber_k: float = 3.0) -> tuple[np.ndarray, float]:
    """Align all of ``src`` (N, 3) onto ``dst`` with a similarity fitted on ``fit`` vertices by Huber-IRLS.
    Returns (aligned (N, 3), weighted RMS residual on the fit vertices)."""
    fit = np.arange(len(src)) if fit is None else np.asarray(fit)
    w = np.ones(len(fit))
    for _ in range(iters):
        s, R, t = similarity_procrustes(src[fit], dst[fit], w)
        r = np.linalg.norm(s * src[fit] @ R.T + t - dst[fit], axis=1)
        scale = 1.4826 * np.median(r) + 1e-9
        w = np.minimum(1.0, huber_k * scale / np.maximum(r, 1e-12))
    aligned = s * src @ R.T + t
    res = np.linalg.norm(aligned[fit] - dst[fit], axis=1)
    return aligned, float(np.sqrt(np.mean(res ** 2)))


def teacher_to_points(landmarks_px: np.ndarray, z_scale: float) -> np.ndarray:
    """Teacher landmarks (…, 478, 3) in pixels → points in the model frame's orientation (x right, y down,
    z away), with the teacher's depth multiplied by ``z_scale``."""
    return np.asarray(landmarks_px, np.float64) * np.array([1.0, 1.0, z_scale])


def estimate_z_scale(landmarks_px: np.ndarray, reference: np.ndarray, fit: np.ndarray,
                     lo: float = 0.3, hi: float = 3.0, iters: int = 25) -> float:
    """Global factor on the teacher's depth that best matches ``reference`` after similarity alignment
    (golden-section search on the mean RMS alignment residual over the given faces (F, 478, 3))."""
    def cost(kz):
        return float(np.mean([robust_align(teacher_to_points(p, kz), reference, fit, iters=2)[1]
                              for p in landmarks_px]))

    g = (np.sqrt(5) - 1) / 2
    a, b = np.log(lo), np.log(hi)
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = cost(np.exp(c)), cost(np.exp(d))
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = cost(np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = cost(np.exp(d))
    return float(np.exp((a + b) / 2))


def remove_expression(shapes: np.ndarray, neutral: np.ndarray, deltas: np.ndarray, fit: np.ndarray | None = None,
                      ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Fit x ∈ [0, 1] (bounded least squares, small ridge) so that neutral + Σ x_j deltas_j ≈ shape on the
    ``fit`` vertices, and subtract Σ x_j deltas_j. shapes (F, V, 3) → (shapes without expression, x (F, J))."""
    from scipy.optimize import lsq_linear  # noqa: PLC0415

    shapes = np.asarray(shapes, np.float64)
    J = len(deltas)
    if J == 0 or not np.any(deltas):
        return shapes.copy(), np.zeros((len(shapes), J))
    fit = np.arange(shapes.shape[1]) if fit is None else np.asarray(fit)
    A = deltas[:, fit].reshape(J, -1).T
    A = np.vstack([A, np.sqrt(ridge * len(fit)) * np.eye(J)])
    xs = np.zeros((len(shapes), J))
    for i, s in enumerate(shapes):
        b = np.concatenate([(s[fit] - neutral[fit]).ravel(), np.zeros(J)])
        xs[i] = lsq_linear(A, b, bounds=(0.0, 1.0), method="bvls").x
    return shapes - np.tensordot(xs, deltas, axes=1), xs


def eye_contours() -> tuple[np.ndarray, np.ndarray]:
    return (np.array(sorted(set(L.EYE_R_UPPER) | set(L.EYE_R_LOWER))),
            np.array(sorted(set(L.EYE_L_UPPER) | set(L.EYE_L_LOWER))))


def attach_iris(displacements: np.ndarray) -> np.ndarray:
    """Set the iris-ring displacements (…, 478, 3) to the mean displacement of their eye's lid contour, so the
    rings move rigidly with the eye region (linear: valid for shapes' deltas and for modes alike)."""
    out = np.array(displacements, np.float64, copy=True)
    for iris, contour in zip((L.IRIS_R, L.IRIS_L), eye_contours()):
        out[..., list(iris), :] = out[..., contour, :].mean(-2, keepdims=True)
    return out


def mirror_shape(shape: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Mirror image of a (…, 478, 3) shape across x = 0 with vertex correspondence ``mirror``."""
    return shape[..., mirror, :] * np.array([-1.0, 1.0, 1.0])


def pca_modes(shapes: np.ndarray, n_modes: int, weights: np.ndarray | None = None):
    """PCA of shapes (N, V, 3) about their (weighted) mean. Returns (mean (V, 3), modes (K, V, 3) each scaled to
    one standard deviation, variance fraction (K,) of the total variance, K = min(n_modes, N - 1))."""
    X = np.asarray(shapes, np.float64).reshape(len(shapes), -1)
    w = np.ones(len(X)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mean = w @ X
    Xc = (X - mean) * np.sqrt(w)[:, None]
    _, sig, vt = np.linalg.svd(Xc, full_matrices=False)
    n_eff = len(X) / (len(X) - 1) if len(X) > 1 else 1.0  # unbiased variance
    var = sig ** 2 * n_eff
    K = max(0, min(n_modes, len(X) - 1, len(var)))
    total = var.sum() if var.sum() > 0 else 1.0
    # sign convention: the largest-magnitude component of each mode is positive
    vt = vt[:K] * np.sign(vt[:K][np.arange(K), np.abs(vt[:K]).argmax(1)])[:, None]
    modes = vt * np.sqrt(var[:K])[:, None]
    return mean.reshape(shapes.shape[1:]), modes.reshape((K,) + shapes.shape[1:]), var[:K] / total


# -- anthropometric fill modes ----------------------------------------------------------------------------
def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def anthropometric_modes(neutral: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Smooth, named whole-face deformations of the neutral (unit-less displacement fields, (K, 478, 3))."""
    P = neutral[:N_FACE]
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    c = P.mean(0)
    nose, mouth = neutral[4], neutral[[13, 14]].mean(0)
    eyes = neutral[list(L.PUPILS)]
    brow_y = neutral[list(L.BROW_R_UPPER + L.BROW_L_UPPER), 1].mean()
    chin_y = neutral[152, 1]
    height = np.ptp(y)

    def gauss(centre, sigma):
        return np.exp(-((P - centre) ** 2).sum(1) / (2 * sigma ** 2))

    fields = OrderedDict()

    def add(name, d):
        f = np.zeros_like(neutral)
        f[:N_FACE] = d
        fields[name] = f

    zero = np.zeros_like(x)
    add("face width", np.stack([x - c[0], zero, zero], 1))
    add("face length", np.stack([zero, y - c[1], zero], 1))
    add("face depth", np.stack([zero, zero, z - c[2]], 1))
    lower = _smoothstep((y - mouth[1] + 2.0) / 4.0)
    add("jaw width", np.stack([(x - c[0]) * lower, zero, zero], 1))
    add("chin length", np.stack([zero, np.maximum(y - mouth[1], 0.0) / max(chin_y - mouth[1], 1e-6), zero], 1))
    add("forehead height", np.stack([zero, -_smoothstep((brow_y - y) / (0.3 * height)), zero], 1))
    gn = gauss(nose, 1.6)
    add("nose size", (P - nose) * gn[:, None])
    add("nose protrusion", np.stack([zero, zero, -gn], 1))
    add("nose width", np.stack([(x - nose[0]) * gn, zero, zero], 1))
    ge = np.maximum(gauss(eyes[0], 1.5), gauss(eyes[1], 1.5))
    add("eye spacing", np.stack([np.tanh(x / 1.5) * ge, zero, zero], 1))
    add("eye height", np.stack([zero, ge, zero], 1))
    gm = gauss(mouth, 1.8)
    add("mouth width", np.stack([(x - mouth[0]) * gm, zero, zero], 1))
    add("lip fullness", np.stack([zero, (y - mouth[1]) * gm, -gm], 1))
    cheeks = np.maximum(gauss(np.array([-4.5, mouth[1] - 1.5, c[2]]), 2.0),
                        gauss(np.array([4.5, mouth[1] - 1.5, c[2]]), 2.0))
    add("cheek fullness", np.stack([np.tanh(x / 1.5) * cheeks, zero, -0.5 * cheeks], 1))
    add("brow ridge", np.stack([zero, zero, -_smoothstep((brow_y + 1.0 - y) / 2.0) * (y < brow_y + 1.0)], 1))
    # low-order polynomial fields (degree 1-3 in x, y, z, for each axis) for anything else: smooth by construction
    u = (P - c) / (0.5 * height)
    for deg in (2, 1, 3):
        for a in range(deg + 1):
            for b in range(deg + 1 - a):
                e = deg - a - b
                for axis, name in enumerate("xyz"):
                    d = np.zeros_like(P)
                    d[:, axis] = u[:, 0] ** a * u[:, 1] ** b * u[:, 2] ** e
                    add(f"poly {name}: x^{a} y^{b} z^{e}", d)
    names = list(fields)
    return names, attach_iris(np.array([fields[n] for n in names]))


def similarity_tangent(neutral: np.ndarray) -> np.ndarray:
    """(7, V*3) infinitesimal similarity motions of the face vertices (3 translations, 3 rotations, scale)."""
    P = np.zeros_like(neutral)
    P[:N_FACE] = neutral[:N_FACE] - neutral[:N_FACE].mean(0)
    out = []
    for a in range(3):
        d = np.zeros_like(P)
        d[:N_FACE, a] = 1.0
        out.append(d)
        w = np.zeros(3)
        w[a] = 1.0
        out.append(np.cross(w, P))
    out.append(P.copy())
    return attach_iris(np.array(out)).reshape(7, -1)


def fill_modes(learned: np.ndarray, learned_var: np.ndarray, neutral: np.ndarray, n_total: int,
               rms_cm: float | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Append anthropometric modes, orthogonalised (Gram-Schmidt) against the learned ones and each other, until
    there are ``n_total``. Each fill mode gets a per-vertex RMS of ``rms_cm`` (default: that of the weakest learned
    mode, or 0.1 cm). Returns (modes (n_total, V, 3), variances (n_total,) in cm², names of the fill modes)."""
    names, cand = anthropometric_modes(neutral)
    V = neutral.shape[0]
    basis = []
    for m in list(similarity_tangent(neutral)) + [m.ravel() for m in learned]:  # pose is not identity
        v = m.ravel().copy()
        for b in basis:
            v -= (v @ b) * b
        if np.linalg.norm(v) > 1e-9:
            basis.append(v / np.linalg.norm(v))
    if rms_cm is None:
        rms_cm = float(np.sqrt((learned[-1] ** 2).sum(1).mean())) if len(learned) else 0.1
    out, var, used = list(learned), list(learned_var), []
    for name, f in zip(names, cand):
        if len(out) >= n_total:
            break
        v = f.ravel().copy()
        for b in basis:
            v -= (v @ b) * b
        if np.linalg.norm(v) < 0.2 * np.linalg.norm(f):  # (nearly) already spanned
            continue
        v /= np.linalg.norm(v)
        basis.append(v.copy())
        m = v.reshape(V, 3)
        m = m * rms_cm / np.sqrt((m ** 2).sum(1).mean())
        out.append(m)
        var.append(float((m ** 2).sum()))
        used.append(name)
    rng = np.random.default_rng(0)
    while len(out) < n_total:  # should not happen: smooth random fields as a last resort
        v = attach_iris(rng.standard_normal((1, V, 3)))[0]
        v = v.ravel()
        for b in basis:
            v -= (v @ b) * b
        v /= np.linalg.norm(v)
        basis.append(v.copy())
        out.append(v.reshape(V, 3) * rms_cm / np.sqrt(((v.reshape(V, 3)) ** 2).sum(1).mean()))
        var.append(float((out[-1] ** 2).sum()))
        used.append("random")
    return np.array(out), np.array(var), used


def identity_shapes_from_meshes(meshes: np.ndarray, neutral: np.ndarray, deltas: np.ndarray | None = None,
                                z_scale: float = 1.0):
    """Core (pure): teacher meshes (F, 478, 3) in teacher units → identity shapes (F, 478, 3) in cm in the model
    frame: similarity-aligned onto ``neutral`` (face vertices), expression removed, iris rings attached.
    Returns (shapes, alignment RMS (F,) cm, expression coefficients (F, J))."""
    fit = np.arange(N_FACE)
    aligned, rms = [], []
    for m in meshes:
        a, r = robust_align(teacher_to_points(m, z_scale), neutral, fit)
        aligned.append(a)
        rms.append(r)
    aligned = np.array(aligned)
    if deltas is None:
        deltas = np.zeros((0,) + neutral.shape)
    shapes, xs = remove_expression(aligned, neutral, deltas, fit)
    if len(deltas) and np.any(deltas):  # re-align onto neutral + expression, then refit the expression
        pts = [teacher_to_points(m, z_scale) for m in meshes]
        for _ in range(2):
            expr = np.tensordot(xs, deltas, axes=1)
            for i in range(len(pts)):
                aligned[i], rms[i] = robust_align(pts[i], neutral + expr[i], fit)
            shapes, xs = remove_expression(aligned, neutral, deltas, fit)
    disp = attach_iris(shapes - neutral)
    return neutral + disp, np.array(rms), xs


def nuisance_features(faces) -> tuple[np.ndarray, list[str]]:
    """Per-face nuisance regressors from the teacher: head angles (rad; yaw, pitch, roll, yaw², pitch²) and the
    ARKit blendshape scores."""
    from ...teacher import ARKIT_NAMES  # noqa: PLC0415

    ang = np.radians(np.array([f.head_angles_deg() for f in faces], np.float64).reshape(-1, 3))
    bs = np.array([f.blendshape_vector for f in faces], np.float64).reshape(len(ang), -1)
    feats = np.concatenate([ang, ang[:, :2] ** 2, bs], 1)
    names = ["yaw", "pitch", "roll", "yaw^2", "pitch^2"] + list(ARKIT_NAMES)
    return feats, names


def regress_out_nuisance(shapes: np.ndarray, features: np.ndarray, groups: list, ridge: float = 1e-2):
    """Remove the part of the shapes (F, V, 3) explained linearly by nuisance features (F, p) — the teacher's
    head pose and expression scores — estimated *within* identities (fixed-effects regression: features and
    shapes demeaned per group, so identity differences are not taken as nuisance; groups with one sample do not
    contribute). Returns (cleaned shapes, W (p, V*3), fraction of within-identity variance explained)."""
    F = len(shapes)
    Y = np.asarray(shapes, np.float64).reshape(F, -1)
    X = np.asarray(features, np.float64)
    keep = X.std(0) > 1e-9
    X = X[:, keep]
    Xd, Yd = X.copy(), Y.copy()
    for g in set(groups):
        idx = [i for i, h in enumerate(groups) if h == g]
        Xd[idx] -= X[idx].mean(0)
        Yd[idx] -= Y[idx].mean(0)
    W = np.zeros((len(keep), Y.shape[1]))
    if not np.any(Xd):
        return np.array(shapes, np.float64), W, 0.0
    scale = np.maximum(Xd.std(0), 1e-9)
    Xs = Xd / scale
    n_eff = max(1, int((np.abs(Xd).sum(1) > 0).sum()))
    Ws = np.linalg.solve(Xs.T @ Xs + ridge * n_eff * np.eye(Xs.shape[1]), Xs.T @ Yd)
    W[keep] = Ws / scale[:, None]
    explained = 1.0 - float(((Yd - Xs @ Ws) ** 2).sum() / max((Yd ** 2).sum(), 1e-12))
    cleaned = Y - (X - X.mean(0)) @ W[keep]
    return cleaned.reshape(np.shape(shapes)), W, explained


def learn_modes(shapes: np.ndarray, groups: list, base, n_modes: int = N_MODES):
    """Per-group (identity) averaging + PCA + symmetric mean + fill. Returns (basis, variance_fraction, info)."""
    order = list(OrderedDict.fromkeys(groups))
    G = np.array([shapes[[i for i, g in enumerate(groups) if g == k]].mean(0) for k in order])
    mean, modes, frac = pca_modes(G, n_modes)
    modes = attach_iris(modes)
    n_learned = len(modes)
    total_var = float(np.var(G.reshape(len(G), -1), axis=0, ddof=1).sum()) if len(G) > 1 else 0.0
    learned_var = frac * total_var
    fill_names = []
    if n_learned < n_modes:
        modes, var, fill_names = fill_modes(modes, learned_var, base.neutral, n_modes)
        frac = var / max(total_var + var[n_learned:].sum(), 1e-12)
    mean_sym = 0.5 * (mean + mirror_shape(mean, base.mirror))
    info = {"identities": len(order), "n_learned": n_learned, "n_fill": n_modes - n_learned,
            "fill_modes": fill_names, "mean": mean_sym, "mean_asym_rms_cm": _rms(mean - mean_sym),
            "mean_vs_canonical_rms_cm": _rms(mean_sym[:N_FACE] - base.neutral[:N_FACE])}
    return modes, frac, info


def _rms(d) -> float:
    return float(np.sqrt((np.asarray(d) ** 2).sum(-1).mean()))


# -- the build stage -----------------------------------------------------------------------------------------
def _read_manifest(faces_dir: str) -> list[dict]:
    with open(os.path.join(faces_dir, "manifest.csv"), newline="") as f:
        return list(csv.DictReader(f))


def collect_teacher_faces(faces_dir: str, cache_dir: str, use_videos: bool = True, video_stride: int = 15,
                          video_frames: int = 20):
    """Teacher faces for the manifest's photos (all faces; group photos give one identity per face) and a few
    frames per video. Returns (list of (identity, source, TeacherFace), rejections dict, counts dict)."""
    from ... import teacher as T  # noqa: PLC0415 - optional extra

    rows = _read_manifest(faces_dir)
    images = [r for r in rows if r["kind"] == "image"]
    labels = T.label_images([os.path.join(faces_dir, r["file"]) for r in images], os.path.join(cache_dir, "images"))
    items, rejected = [], {"no face": 0}
    counts = {"images": len(images), "images_with_face": 0, "video_frames": 0}
    for r, lab in zip(images, labels):
        if not lab["faces"]:
            rejected["no face"] += 1
            continue
        counts["images_with_face"] += 1
        group = r["identity"].lower().startswith(("group", "family group")) or len(lab["faces"]) > 1 and \
            "group" in r["identity"].lower()
        faces = lab["faces"] if group else lab["faces"][:1]
        for k, f in enumerate(faces):
            ident = f"{r['file']}#{k}" if group else (r["identity"] or r["file"])
            items.append((ident, r["file"], f))
    if use_videos:
        for r in rows:
            if r["kind"] != "video":
                continue
            frames = T.label_video(os.path.join(faces_dir, r["file"]), os.path.join(cache_dir, "videos"),
                                   stride=video_stride, max_frames=video_frames)
            for fr in frames:
                counts["video_frames"] += 1
                if fr["faces"]:
                    items.append((r["identity"] or r["file"], f"{r['file']}@{fr['frame']}", fr["faces"][0]))
                else:
                    rejected["no face"] += 1
    return items, rejected, counts


def screen_faces(items, limits=EXPRESSION_LIMITS, max_yaw=MAX_YAW_DEG, max_pitch=MAX_PITCH_DEG,
                 min_eye_px=MIN_EYE_DISTANCE_PX):
    """Keep near-frontal, large-enough, near-neutral faces. Returns (kept items, rejection counts)."""
    kept, rej = [], {}

    def bump(k):
        rej[k] = rej.get(k, 0) + 1

    for it in items:
        f = it[2]
        yaw, pitch, _ = f.head_angles_deg()
        if f.size < min_eye_px:
            bump(f"small face (eye distance < {min_eye_px:g} px)")
        elif abs(yaw) > max_yaw or abs(pitch) > max_pitch:
            bump(f"head turned (|yaw| > {max_yaw:g}° or |pitch| > {max_pitch:g}°)")
        else:
            over = [n for n, lim in limits.items() if f.blendshapes.get(n, 0.0) > lim]
            if over:
                bump("expressive: " + ("mouthSmile" if any(n.startswith("mouthSmile") for n in over)
                                       else over[0].replace("Left", "").replace("Right", "")))
            else:
                kept.append(it)
    return kept, rej


def learn_identity_details(base, expression_deltas, faces_dir: str, cache_dir: str, n_modes: int = N_MODES,
                           use_videos: bool = True, outlier_mads: float = 4.0, regress_nuisance: bool = True):
    """learn_identity plus a details dict (real-face mean, the per-face identity shapes, their groups/sources)."""
    neutral = base.neutral
    deltas = np.asarray(expression_deltas, np.float64) if expression_deltas is not None else None
    notes = {"method": "PCA of MediaPipe FaceLandmarker meshes on real photos (facecap_core.rig.build.identity)"}
    items, rejected = [], {}
    counts = {}
    if faces_dir and os.path.exists(os.path.join(faces_dir, "manifest.csv")):
        try:
            items, rejected, counts = collect_teacher_faces(faces_dir, cache_dir, use_videos=use_videos)
        except ImportError as exc:
            notes["teacher_unavailable"] = str(exc)
    else:
        notes["faces_dir_missing"] = str(faces_dir)
    kept, rej2 = screen_faces(items)
    rejected.update(rej2)

    if len(kept) >= 3:
        meshes = np.array([it[2].landmarks for it in kept], np.float64)
        fit = np.arange(N_FACE)
        z_scale = estimate_z_scale(meshes[:: max(1, len(meshes) // 60)], neutral, fit)
        shapes, rms, xs = identity_shapes_from_meshes(meshes, neutral, deltas, z_scale)
        med = np.median(rms)
        mad = 1.4826 * np.median(np.abs(rms - med))
        ok = rms <= med + outlier_mads * mad
        rejected[f"alignment outlier (RMS > {med + outlier_mads * mad:.3f} cm)"] = int((~ok).sum())
        # second outlier test: distance of the shape from the mean in units of the typical distance
        dist = np.sqrt(((shapes - shapes[ok].mean(0)) ** 2).sum(-1).mean(-1))
        dmed = np.median(dist[ok])
        dmad = 1.4826 * np.median(np.abs(dist[ok] - dmed))
        ok2 = ok & (dist <= dmed + outlier_mads * dmad)
        rejected[f"shape outlier (RMS from mean > {dmed + outlier_mads * dmad:.3f} cm)"] = int((ok & ~ok2).sum())
        sel = np.where(ok2)[0]
        shapes = shapes[sel]
        groups = [kept[i][0] for i in sel]
        if regress_nuisance:
            feats, _ = nuisance_features([kept[i][2] for i in sel])
            shapes, _, expl = regress_out_nuisance(shapes, feats, groups)
            shapes = neutral + attach_iris(shapes - neutral)
            notes["nuisance_regression"] = (
                "teacher head pose (yaw, pitch, roll, yaw², pitch²) and blendshape scores regressed out within "
                f"identities; explained {100 * expl:.1f}% of the within-identity variance")
        notes.update(z_scale=z_scale, alignment_rms_cm_median=float(med),
                     expression_removed=bool(deltas is not None and np.any(deltas)),
                     mean_expression_coefficients=(xs[sel].mean(0).round(4).tolist() if np.any(xs) else None))
        sources = [kept[i][1] for i in sel]
    else:
        shapes, groups, sources = np.zeros((0,) + neutral.shape), [], []
    if len(set(groups)) >= 2:
        basis, frac, info = learn_modes(shapes, groups, base, n_modes)
    else:
        basis, var, names = fill_modes(np.zeros((0,) + neutral.shape), np.zeros(0), neutral, n_modes, rms_cm=0.1)
        frac = var / var.sum()
        info = {"identities": len(set(groups)), "n_learned": 0, "n_fill": n_modes, "fill_modes": names,
                "mean_vs_canonical_rms_cm": None, "mean_asym_rms_cm": None}
    n_imgs = len({s for s in sources if "@" not in s})
    notes.update(
        counts=counts, faces_detected=len(items), faces_used=len(shapes), images_used=n_imgs,
        video_frames_used=len([s for s in sources if "@" in s]), rejected=rejected,
        identities=info["identities"], learned_modes=info["n_learned"], anthropometric_modes=info["n_fill"],
        anthropometric_mode_names=info["fill_modes"],
        variance_fraction=[round(float(v), 5) for v in frac],
        variance_cumulative=[round(float(v), 5) for v in np.cumsum(frac)],
        mode_rms_cm=[round(_rms(m), 4) for m in basis],
        mean_vs_canonical_rms_cm=info["mean_vs_canonical_rms_cm"],
        mean_asymmetry_rms_cm=info["mean_asym_rms_cm"],
        neutral="canonical MediaPipe face (unchanged); the real-face mean is reported, not applied",
        scale="per-face similarity alignment: overall head size is not an identity mode (mean = canonical size)",
        iris="iris rings follow the mean displacement of their eye's lid contour",
    )
    details = {"mean": info.get("mean"), "shapes": shapes, "groups": groups, "sources": sources}
    return basis.astype(np.float64), np.asarray(frac, np.float64), notes, details


def learn_identity(base, expression_deltas, faces_dir: str, cache_dir: str, n_modes: int = N_MODES, **kw):
    """Identity basis (n_modes, 478, 3) cm per unit u, variance fraction (n_modes,), notes (JSON-able dict).
    Without the teacher or the photos, all modes are anthropometric (and the notes say so)."""
    basis, frac, notes, _ = learn_identity_details(base, expression_deltas, faces_dir, cache_dir, n_modes, **kw)
    return basis, frac, notes


# -- the neutral face ----------------------------------------------------------------------------------------
# A face counts as neutral when every teacher channel except gaze and eye squint is at most this (MediaPipe
# reads eyeSquint ≈ 0.4 on most relaxed faces, so it is not a usable neutrality cue).
NEUTRAL_SCORE_LIMIT = 0.3
_NEUTRAL_EXTRA_CHANNELS = ("mouthClose", "mouthRollLower", "mouthRollUpper", "mouthShrugUpper", "mouthPressLeft",
                           "mouthPressRight", "mouthDimpleLeft", "mouthDimpleRight", "cheekSquintLeft",
                           "cheekSquintRight")


def learn_neutral(base, faces_dir: str, cache_dir: str, limit: float = NEUTRAL_SCORE_LIMIT, min_identities: int = 10):
    """The rig's neutral face from real relaxed faces: the teacher's meshes of near-frontal faces whose
    blendshape scores are all ≤ ``limit`` (gaze and eye squint excepted), similarity-aligned onto the canonical
    face (so its size is kept), averaged per identity, then over identities, and made exactly symmetric.

    Why: fitting the canonical neutral (lips parted 0.55 cm, narrower eyes) to real relaxed faces needs
    LipsUpperUp ≈ 0.8 and EyeOpen ≈ 0.55 on *every* frame — a character would never rest. Returns (neutral (478, 3)
    cm, model frame — only the 468 face vertices are meaningful; the iris rings are re-placed by build_base —
    or None when there are too few faces, and notes, whose ``iris_offset_cm`` is the teacher's median iris-centre
    offset from the middle of the eye opening, for ``build_base``)."""
    notes = {"method": "mean of the teacher's meshes on relaxed real faces (facecap_core.rig.build.identity."
                       "learn_neutral)", "score_limit": limit}
    if not faces_dir or not os.path.exists(os.path.join(faces_dir, "manifest.csv")):
        notes["kept"] = "canonical (no real faces available)"
        return None, notes
    try:
        items, _, _ = collect_teacher_faces(faces_dir, cache_dir)
    except ImportError as exc:
        notes["kept"] = f"canonical (teacher unavailable: {exc})"
        return None, notes
    limits = {k: min(v, limit) for k, v in EXPRESSION_LIMITS.items()}
    limits.update({c: limit for c in _NEUTRAL_EXTRA_CHANNELS})
    kept, _ = screen_faces(items, limits=limits)
    groups = [it[0] for it in kept]
    if len(set(groups)) < min_identities:
        notes["kept"] = f"canonical (only {len(set(groups))} identities with a relaxed face)"
        return None, notes
    meshes = np.array([it[2].landmarks for it in kept], np.float64)
    z_scale = estimate_z_scale(meshes[:: max(1, len(meshes) // 60)], base.neutral, np.arange(N_FACE))
    shapes, rms, _ = identity_shapes_from_meshes(meshes, base.neutral, None, z_scale)
    per_identity = np.array([shapes[[i for i, g in enumerate(groups) if g == gid]].mean(0)
                             for gid in sorted(set(groups))])
    mean = per_identity.mean(0)
    mean = 0.5 * (mean + mirror_shape(mean, base.mirror))
    # where the teacher puts the iris in the eye opening: on relaxed faces the upper lid covers the top of the
    # iris, so its centre sits above the middle of the opening (the rig's iris would otherwise need EyeUp)
    from .. import landmarks as L  # noqa: PLC0415

    contour = np.array(sorted(set(L.EYE_L_UPPER) | set(L.EYE_L_LOWER)))
    offsets = []
    for m in meshes:
        aligned, _ = robust_align(teacher_to_points(m, z_scale), base.neutral, np.arange(N_FACE))
        offsets.append(aligned[L.IRIS_L[0], :2] - aligned[contour, :2].mean(0))
    iris_offset = np.median(np.array(offsets), axis=0) * np.array([0.0, 1.0])  # vertical only: gaze is free
    notes.update(faces=len(kept), identities=len(set(groups)), z_scale=round(float(z_scale), 4),
                 alignment_rms_cm_median=round(float(np.median(rms)), 4),
                 change_vs_canonical_rms_cm=round(_rms(mean[:N_FACE] - base.neutral[:N_FACE]), 4),
                 inner_lip_gap_cm={"canonical": round(float(np.linalg.norm(base.neutral[14] - base.neutral[13])), 3),
                                   "learned": round(float(np.linalg.norm(mean[14] - mean[13])), 3)},
                 iris_offset_cm=[round(float(v), 4) for v in iris_offset])
    return mean, notes
