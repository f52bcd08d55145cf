"""Textured synthetic faces (design §7): the rig rendered with random identity, expression, pose, focal length and
lighting, a real (or procedural) face texture, plausible eyes and mouth interior, a head/neck/hair/torso context
and a real (or procedural) background.

    faces = SyntheticFaces(load_rig(), textures, backgrounds, size=128)
    sample = faces.sample(np.random.default_rng(0))   # FaceSample: image, mask, 73 landmarks, visible, S

Camera and crop: every sample has a *virtual source camera* of ``image_size`` (default 640×480, principal point at
its centre, focal from a 40-80° horizontal field of view) in which the head sits at a random place and distance;
``params`` (S = {R, t, x, u, f}) live in that camera. The sample image is a size×size crop around the face
(random margin and offset) rendered *directly* at crop resolution; ``crop_affine`` (scale + offset) maps source
pixels to crop pixels, exactly as for crops of real photos, so Π_f followed by ``crop_affine`` reproduces the
sample's landmarks. Perspective is therefore that of a real webcam (faces 35-130 cm away), not of a camera whose
whole frame is the crop.

Mask (design §5): pixels where a front-facing triangle of the face mesh (skin, eyes, mouth interior, iris — the
mesh boundary is the face oval) is the nearest surface and no hair strand covers it. The head, neck, torso and
hair proxies are drawn *behind* the face (painter's order), so they never count as face; a hair fringe over the
forehead or strands over the cheeks are drawn over the face and remove those pixels from the mask.

Landmarks: the 73 of ``rig.landmark_vertices`` with the 17 jaw points at the silhouette vertices of
``rig.fit.silhouette_vertices``; ``visible`` is False outside the crop, when the face's own z-buffer has something
nearer (turned heads, nose) or when hair covers the point.

Stages (see ``benchmarks/bench_synth.py``): params → mesh (identity + expression, pose, projection, normals,
lighting per vertex) → raster (numba z-buffer, perspective-correct barycentrics) → shade (texture, eyes, mouth, hair)
→ composite (background crop, proxies, face).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
from numba import njit

from ..render.raster import raster_into
from ..rig import landmarks as L
from ..rig.fit import FitRig, silhouette_vertices
from ..rig.geometry import euler_to_matrix, matrix_to_quat
from ..rig.model import FaceRig
from .paths import DEFAULT_BACKGROUNDS
from .texture import TextureLibrary, procedural_library
from .types import FaceSample, ShapeParams

__all__ = ["SyntheticFaces", "SynthConfig", "load_backgrounds", "procedural_backgrounds",
           "sample_expression", "contact_sheet"]

# ------------------------------------------------------------------------------------------------------------------
# numba kernels (flat and small); rasterising is ``render.raster.raster_into`` (the project's one rasteriser)
# ------------------------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _bilinear(tex, x, y, out):
    h, w = tex.shape[0], tex.shape[1]
    x = min(max(x - 0.5, 0.0), w - 1.001)
    y = min(max(y - 0.5, 0.0), h - 1.001)
    j, i = int(x), int(y)
    fx, fy = x - j, y - i
    for k in range(3):
        out[k] = ((tex[i, j, k] * (1 - fx) + tex[i, j + 1, k] * fx) * (1 - fy)
                  + (tex[i + 1, j, k] * (1 - fx) + tex[i + 1, j + 1, k] * fx) * fy) * (1.0 / 255.0)


@njit(cache=True, nogil=True)
def _shade_face(tid, bary, tris, mat, tri_eye, vattr, tex, eye_c, eye_inv, eye_col, mouth_col, hair_v, hair_side,
                hair_col, noise, out, mask):
    """Per pixel of the face buffer: vattr (N, 12) per vertex = u_pix, v_pix, diffuse rgb, specular rgb, up, 0, 0, 0.
    eye_c (2, 2), eye_inv (2, 2, 2) pixel → iris frame; eye_col (2, 10): iris rgb, sclera rgb, pupil radius, glint,
    iris detail, 0; mouth_col (8,): teeth rgb, teeth upper/lower flags, mouth depth tint, 0, 0;
    hair_v (64,) uv v above which … is hair; hair_side (64, 2) u bounds; hair_col (3,)."""
    h, w = tid.shape
    alb = np.zeros(3)
    at = np.zeros(12)
    nh, nw = noise.shape
    for i in range(h):
        for j in range(w):
            t = tid[i, j]
            if t < 0:
                continue
            for k in range(12):
                at[k] = 0.0
            for c in range(3):
                bc = bary[i, j, c]
                v = tris[t, c]
                for k in range(9):
                    at[k] += bc * vattr[v, k]
            m = mat[t]
            spec = 0.0
            if m == 0:
                uu, vv = at[0], at[1]
                ts = tex.shape[0]
                fu, fv = uu / ts, vv / ts
                bu = min(max(int(fu * 64.0), 0), 63)
                bv = min(max(int(fv * 64.0), 0), 63)
                nz = noise[i % nh, j % nw]
                if fv < hair_v[bu] + 0.02 * nz or fu < hair_side[bv, 0] + 0.02 * nz or fu > hair_side[bv, 1] - 0.02 * nz:
                    g = 0.55 + 0.45 * noise[(i * 3) % nh, j % nw]
                    for k in range(3):
                        out[i, j, k] = hair_col[k] * g * at[2 + k] + 0.3 * at[5 + k] * g
                    mask[i, j] = 0
                    continue
                _bilinear(tex, uu, vv, alb)
                spec = 1.0
            elif m == 1:
                up = at[8]
                deep = min(up, 1.0 - up) * 2.0
                if mouth_col[3] > 0.5 and up > 0.72:
                    gap = abs(((at[0] / tex.shape[0]) * 90.0) % 1.0 - 0.5)
                    s = 0.75 + 0.25 * min(gap * 6.0, 1.0)
                    for k in range(3):
                        alb[k] = mouth_col[k] * s * (0.6 + 0.4 * (up - 0.72) / 0.28)
                elif mouth_col[4] > 0.5 and up < 0.18:
                    for k in range(3):
                        alb[k] = mouth_col[k] * 0.7
                else:
                    f = max(0.0, 1.0 - deep) ** 1.5
                    alb[0] = 0.04 + mouth_col[5] * f
                    alb[1] = 0.01 + 0.25 * mouth_col[5] * f
                    alb[2] = 0.01 + 0.25 * mouth_col[5] * f
            else:
                e = tri_eye[t]
                dx, dy = j + 0.5 - eye_c[e, 0], i + 0.5 - eye_c[e, 1]
                s_ = eye_inv[e, 0, 0] * dx + eye_inv[e, 0, 1] * dy
                t_ = eye_inv[e, 1, 0] * dx + eye_inv[e, 1, 1] * dy
                r = np.sqrt(s_ * s_ + t_ * t_)
                if r < eye_col[e, 6]:
                    alb[0], alb[1], alb[2] = 0.02, 0.02, 0.025
                elif r < 1.0:
                    ang = np.arctan2(t_, s_)
                    streak = 0.8 + eye_col[e, 8] * np.sin(ang * 23.0 + r * 4.0) * np.sin(ang * 7.0)
                    limb = 1.0 - 0.6 * max(0.0, (r - 0.8) / 0.2)
                    inner = 1.0 + 0.35 * max(0.0, 1.0 - (r - eye_col[e, 6]) / 0.25)
                    for k in range(3):
                        alb[k] = eye_col[e, k] * streak * limb * inner
                else:
                    dark = 1.0 - 0.35 * min(max(r - 1.0, 0.0) / 2.0, 1.0)
                    for k in range(3):
                        alb[k] = eye_col[e, 3 + k] * dark
                g = eye_col[e, 7]
                gx, gy = s_ + 0.35, t_ + 0.35
                if g > 0.0 and gx * gx + gy * gy < 0.03:
                    alb[0], alb[1], alb[2] = 2.5, 2.5, 2.5
            for k in range(3):
                out[i, j, k] = alb[k] * at[2 + k] + spec * at[5 + k]
            mask[i, j] = 1


@njit(cache=True, nogil=True)
def _shade_proxy(tid, bary, tris, vattr, noise, noff, out):
    """vattr (N, 7): skin-shaded rgb, hair-shaded rgb, hairness. Hair gets strand noise."""
    h, w = tid.shape
    nh, nw = noise.shape
    for i in range(h):
        for j in range(w):
            t = tid[i, j]
            if t < 0:
                continue
            hs = 0.0
            for c in range(3):
                hs += bary[i, j, c] * vattr[tris[t, c], 6]
            nz = noise[(i + noff) % nh, (j + 2 * noff) % nw]
            if hs > 0.5 + 0.25 * (nz - 0.5):
                g = 0.55 + 0.45 * noise[(3 * i + noff) % nh, (j + noff) % nw]
                for k in range(3):
                    s = 0.0
                    for c in range(3):
                        s += bary[i, j, c] * vattr[tris[t, c], 3 + k]
                    out[i, j, k] = s * g
            else:
                for k in range(3):
                    s = 0.0
                    for c in range(3):
                        s += bary[i, j, c] * vattr[tris[t, c], k]
                    out[i, j, k] = s


@njit(cache=True, nogil=True)
def _eval_mesh(neutral, basis, z, R, t, verts, cam):
    """verts = neutral + basis @ z ((N*3,), (N*3, K), (K,)); cam = R verts + t. No BLAS (threads contend)."""
    n = verts.shape[0]
    for v in range(n):
        for c in range(3):
            r = 3 * v + c
            s = neutral[r]
            for k in range(z.shape[0]):
                if z[k] != 0.0:
                    s += basis[r, k] * z[k]
            verts[v, c] = s
        for c in range(3):
            cam[v, c] = R[c, 0] * verts[v, 0] + R[c, 1] * verts[v, 1] + R[c, 2] * verts[v, 2] + t[c]


@njit(cache=True, nogil=True)
def _composite(bg, tp, prox, tf, face, out):
    """uint8 image: face over proxies over background (float 0-1 layers → 0-255)."""
    h, w = tf.shape
    for i in range(h):
        for j in range(w):
            if tf[i, j] >= 0:
                for k in range(3):
                    out[i, j, k] = min(max(face[i, j, k] * 255.0 + 0.5, 0.0), 255.0)
            elif tp[i, j] >= 0:
                for k in range(3):
                    out[i, j, k] = min(max(prox[i, j, k] * 255.0 + 0.5, 0.0), 255.0)
            else:
                for k in range(3):
                    out[i, j, k] = bg[i, j, k]


@njit(cache=True, nogil=True)
def _visibility(lm, lz, zf, tf, fmask, tol, vis):
    """A landmark is visible when inside the image, not behind the face's own nearest surface (max depth of the
    3×3 neighbourhood + tol; an empty neighbour counts as silhouette), not under hair covering the face, and with
    a face-mask pixel within 2 px."""
    h, w = zf.shape
    for k in range(lm.shape[0]):
        x, y = lm[k, 0], lm[k, 1]
        vis[k] = False
        if not (x >= 0.0 and x < w and y >= 0.0 and y < h):
            continue
        j, i = int(x), int(y)
        zmax = -np.inf
        for ii in range(max(i - 1, 0), min(i + 2, h)):
            for jj in range(max(j - 1, 0), min(j + 2, w)):
                zmax = max(zmax, zf[ii, jj])
        if lz[k] > zmax + tol:
            continue
        if tf[i, j] >= 0 and fmask[i, j] == 0:
            continue
        face_near = False  # some face pixel within 2 px (else hair/strands cover the silhouette point)
        for ii in range(max(i - 2, 0), min(i + 3, h)):
            for jj in range(max(j - 2, 0), min(j + 3, w)):
                if fmask[ii, jj] > 0:
                    face_near = True
        vis[k] = face_near


# ------------------------------------------------------------------------------------------------------------------
# parameter sampling
# ------------------------------------------------------------------------------------------------------------------
_PAIRS = None


def _pairs(names):
    idx = {n: i for i, n in enumerate(names)}
    pair = -np.ones(len(names), np.int64)
    for n, i in idx.items():
        if n.endswith("_L") and n[:-2] + "_R" in idx:
            pair[i] = idx[n[:-2] + "_R"]
            pair[idx[n[:-2] + "_R"]] = i
    return pair


_GAZE = ("EyeDown", "EyeIn", "EyeOut", "EyeUp")


def sample_expression(rng: np.random.Generator, names) -> np.ndarray:
    """(46,) realistic sparse expression in [0, 1]: 15% neutral, otherwise ~Poisson(2.5) active shapes (at least 1),
    mostly small (Beta(1.3, 3)), 15% of them extreme (0.7-1); an _L/_R shape activates its partner 70% of the time
    with a similar weight; gaze is one direction for both eyes; blink vs. wide-open never together."""
    n = len(names)
    x = np.zeros(n)
    pair = _pairs(names)
    idx = {nm: i for i, nm in enumerate(names)}
    gaze_ids = {idx[f"{g}_{s}"] for g in _GAZE for s in "LR"}
    free = np.array([i for i in range(n) if i not in gaze_ids])
    if rng.uniform() >= 0.15:
        k = max(1, rng.poisson(2.5))
        for i in rng.choice(free, size=min(k, len(free)), replace=False):
            v = rng.uniform(0.7, 1.0) if rng.uniform() < 0.15 else rng.beta(1.3, 3.0)
            x[i] = max(x[i], v)
            if pair[i] >= 0 and rng.uniform() < 0.7:
                x[pair[i]] = max(x[pair[i]], np.clip(v + rng.normal(0, 0.1), 0, 1))
        if rng.uniform() < 0.08:  # full blink
            x[idx["EyeBlink_L"]] = x[idx["EyeBlink_R"]] = rng.uniform(0.8, 1.0)
    for s in "LR":  # blink and wide-open are exclusive
        if x[idx[f"EyeBlink_{s}"]] > 0 and x[idx[f"EyeOpen_{s}"]] > 0:
            x[idx[f"EyeOpen_{s}"] if rng.uniform() < 0.5 else idx[f"EyeBlink_{s}"]] = 0.0
    for a, b in (("JawLeft", "JawRight"), ("MouthLeft", "MouthRight")):
        if x[idx[a]] > 0 and x[idx[b]] > 0:
            x[idx[a] if rng.uniform() < 0.5 else idx[b]] = 0.0
    if rng.uniform() < 0.6:  # gaze: one direction for both eyes
        gx, gy = rng.normal(0, 0.35), rng.normal(0, 0.3)
        # looking to the subject's left: left eye out, right eye in
        if gx > 0:
            x[idx["EyeOut_L"]] = x[idx["EyeIn_R"]] = min(gx, 1.0)
        else:
            x[idx["EyeIn_L"]] = x[idx["EyeOut_R"]] = min(-gx, 1.0)
        if gy > 0:
            x[idx["EyeDown_L"]] = x[idx["EyeDown_R"]] = min(gy, 1.0)
        else:
            x[idx["EyeUp_L"]] = x[idx["EyeUp_R"]] = min(-gy, 1.0)
    return np.clip(x, 0.0, 1.0)


def _kelvin_rgb(rng):
    """A light colour between warm tungsten and cool daylight (normalised to max 1)."""
    t = rng.uniform()
    c = np.array([1.0, 0.80, 0.60]) * (1 - t) + np.array([0.82, 0.90, 1.0]) * t
    return c / c.max()


@dataclass
class SynthConfig:
    image_size: tuple = (640, 480)  # virtual source camera (width, height)
    fov_deg: tuple = (40.0, 80.0)  # horizontal field of view
    distance_cm: tuple = (35.0, 130.0)
    yaw_frontal_sigma: float = 25.0  # degrees; mixture: 70% N(0, σ) clipped, 30% U(±max)
    yaw_max: float = 90.0
    pitch_max: float = 35.0
    roll_max: float = 30.0
    margin: tuple = (1.25, 2.3)  # crop side / face size
    offset: float = 0.12  # crop centre jitter, fraction of the crop side
    identity_sigma: float = 1.0


# ------------------------------------------------------------------------------------------------------------------
# proxy geometry (head, long hair, neck, torso) in the rig's model frame (cm, y down, z away)
# ------------------------------------------------------------------------------------------------------------------
def _wrapped_grid_triangles(n_rows: int, n_cols: int) -> np.ndarray:
    """Triangles of a (n_rows + 1) × n_cols vertex grid whose columns wrap around (a surface of revolution)."""
    tris = []
    for a in range(n_rows):
        for b in range(n_cols):
            i00, i01 = a * n_cols + b, a * n_cols + (b + 1) % n_cols
            i10, i11 = (a + 1) * n_cols + b, (a + 1) * n_cols + (b + 1) % n_cols
            tris += [(i00, i10, i11), (i00, i11, i01)]
    return np.array(tris, np.int64)


def _ellipsoid(n_lat=12, n_lon=20):
    th = np.linspace(0, np.pi, n_lat + 1)  # from top (y = -1) to bottom
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    T, P = np.meshgrid(th, ph, indexing="ij")
    v = np.stack([np.sin(T) * np.sin(P), -np.cos(T), -np.sin(T) * np.cos(P)], -1).reshape(-1, 3)
    return v, _wrapped_grid_triangles(n_lat, n_lon)


def _cylinder(n_lon=20, n_h=3):
    ph = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    hs = np.linspace(-1, 1, n_h + 1)
    H, P = np.meshgrid(hs, ph, indexing="ij")
    v = np.stack([np.sin(P), H, -np.cos(P)], -1).reshape(-1, 3)
    return v, _wrapped_grid_triangles(n_h, n_lon)


def _orient_outward(v, tris, axis_mask=(1, 1, 1)):
    """Flip triangles so that cross(b - a, c - a) points away from the shape's axis (outward normal)."""
    a, b, c = v[tris[:, 0]], v[tris[:, 1]], v[tris[:, 2]]
    n = np.cross(b - a, c - a)
    out = (a + b + c) / 3 * np.asarray(axis_mask, float)
    flip = np.sum(n * out, 1) < 0
    tris = tris.copy()
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def _rot(pts, R):
    """pts (N, 3) @ R.T without BLAS (small products; BLAS threads contend with data-loader workers)."""
    return pts[:, 0:1] * R[:, 0] + pts[:, 1:2] * R[:, 1] + pts[:, 2:3] * R[:, 2]


class _Proxies:
    """Unit shapes; each sample scales/places them. Part ids: 0 head, 1 long hair, 2 neck, 3 torso."""

    def __init__(self):
        ve, te = _ellipsoid()
        te = _orient_outward(ve, te)
        vc, tc = _cylinder()
        tc = _orient_outward(vc, tc, (1, 0, 1))
        self.unit = [ve, ve, vc, ve]
        self.tris = [te, te, tc, te]
        offs = np.cumsum([0] + [len(v) for v in self.unit])
        self.offsets = offs
        self.all_tris = np.concatenate([t + o for t, o in zip(self.tris, offs[:-1])])
        self.part = np.concatenate([np.full(len(v), k) for k, v in enumerate(self.unit)])
        self.n = int(offs[-1])


# ------------------------------------------------------------------------------------------------------------------
# backgrounds
# ------------------------------------------------------------------------------------------------------------------
def load_backgrounds(folder: str = DEFAULT_BACKGROUNDS, max_side: int = 360, limit: int | None = None):
    """Real background photos as a list of uint8 RGB arrays (downscaled to ``max_side``); [] when absent."""
    import csv  # noqa: PLC0415

    man = os.path.join(folder, "manifest.csv")
    if not os.path.exists(man):
        return []
    out = []
    for row in list(csv.DictReader(open(man)))[:limit]:
        img = cv2.imread(os.path.join(folder, row["file"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        s = max_side / max(img.shape[:2])
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(img[..., ::-1]))
    return out


def procedural_backgrounds(n: int = 24, seed: int = 0, size: int = 256):
    """n procedural backgrounds (uint8 RGB, size×size): colour gradients, low-frequency noise, blurred shapes."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for _ in range(n):
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        a = rng.uniform(0, 2 * np.pi)
        g = np.clip((np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
        img = c0 * (1 - g) + c1 * g
        nz = cv2.resize(rng.standard_normal((8, 8)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        img = img * (1 + 0.15 * nz[..., None])
        for _ in range(rng.integers(2, 7)):
            col = tuple(float(v) for v in rng.uniform(0, 1, 3))
            p = rng.integers(0, size, 2)
            if rng.uniform() < 0.5:
                q = p + rng.integers(10, size // 2, 2)
                cv2.rectangle(img, tuple(int(v) for v in p), tuple(int(v) for v in q), col, -1)
            else:
                cv2.ellipse(img, (int(p[0]), int(p[1])), tuple(int(v) for v in rng.integers(5, size // 4, 2)),
                            float(rng.uniform(0, 180)), 0, 360, col, -1)
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.5, 3))
        img += rng.normal(0, 0.02, img.shape).astype(np.float32)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return out


def _hair_noise(seed=0, size=128):
    rng = np.random.default_rng(seed)
    nz = rng.uniform(0, 1, (size, size)).astype(np.float32)
    nz = cv2.GaussianBlur(nz, (1, 0), sigmaX=0.6, sigmaY=5.0) if False else cv2.GaussianBlur(nz, (0, 0), 0.7, sigmaY=4.0)
    nz = (nz - nz.min()) / (nz.max() - nz.min())
    return np.ascontiguousarray(nz)


# ------------------------------------------------------------------------------------------------------------------
# the generator
# ------------------------------------------------------------------------------------------------------------------
_HAIR_COLOURS = np.array([[0.05, 0.04, 0.035], [0.12, 0.08, 0.05], [0.25, 0.16, 0.09], [0.45, 0.32, 0.18],
                          [0.75, 0.62, 0.40], [0.55, 0.25, 0.12], [0.6, 0.6, 0.58], [0.02, 0.02, 0.02]])
_IRIS_COLOURS = np.array([[0.30, 0.17, 0.08], [0.18, 0.10, 0.05], [0.40, 0.30, 0.15], [0.25, 0.38, 0.25],
                          [0.30, 0.45, 0.62], [0.45, 0.50, 0.55], [0.12, 0.07, 0.04]])


class SyntheticFaces:
    """Random textured renders of the rig as :class:`FaceSample` (see the module docstring).

    rig: FaceRig; textures: TextureLibrary (None → 16 procedural textures); backgrounds: list of uint8 RGB images
    (None or [] → procedural ones); size: crop side in pixels; config: :class:`SynthConfig`.
    """

    def __init__(self, rig: FaceRig, textures: TextureLibrary | None = None, backgrounds=None, size: int = 128,
                 config: SynthConfig | None = None):
        self.rig = rig
        self.fit_rig = FitRig(rig)
        self.textures = textures if textures is not None and len(textures) else procedural_library(rig, 16)
        self.backgrounds = list(backgrounds) if backgrounds else procedural_backgrounds()
        self.size = int(size)
        self.cfg = config or SynthConfig()
        nv = len(rig.neutral)
        self.tris = np.ascontiguousarray(rig.triangles, np.int64)
        self.mat = np.ascontiguousarray(rig.triangle_material, np.int8)
        cen = rig.neutral[self.tris].mean(1)
        self.tri_eye = np.ascontiguousarray((cen[:, 0] > 0).astype(np.int64))  # 0 = subject's right (x < 0)
        self.basis = np.ascontiguousarray(np.concatenate(
            [rig.identity_basis, rig.expression_deltas], 0).reshape(-1, nv * 3).T, np.float64)  # (1434, 96)
        self.neutral = rig.neutral.reshape(-1).copy()
        # vertex ← triangle incidence for normals
        rows = self.tris.ravel()
        cols = np.repeat(np.arange(len(self.tris)), 3)
        self.incidence = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(nv, len(self.tris)))
        self.up = np.zeros(nv)
        self.up[list(L.LIPS_INNER_UPPER)] = 1.0
        self.up[[78, 308]] = 0.5
        self.uvpix = rig.uv * self.textures.size
        self.lm_vertices = np.asarray(rig.landmark_vertices, np.int64).copy()
        self.oval = np.asarray(rig.face_oval, np.int64)
        self.neutral_oval_extent = np.ptp(rig.neutral[self.oval], 0)
        self.proxies = _Proxies()
        self.noise = _hair_noise()
        s = self.size
        self._zf = np.empty((s, s), np.float32)
        self._tf = np.empty((s, s), np.int32)
        self._bf = np.empty((s, s, 3), np.float32)
        self._zp = np.empty((s, s), np.float32)
        self._tp = np.empty((s, s), np.int32)
        self._bp = np.empty((s, s, 3), np.float32)
        self.timings = None  # set to a dict to accumulate per-stage seconds

    # -- parameters --------------------------------------------------------------------------------------------
    def sample_params(self, rng: np.random.Generator) -> dict:
        """All random choices of one sample (a plain dict; ``render`` turns it into a FaceSample)."""
        cfg = self.cfg
        p = {}
        p["identity"] = rng.standard_normal(self.rig.identity_basis.shape[0]) * cfg.identity_sigma
        p["expression"] = sample_expression(rng, self.rig.expression_names)
        if rng.uniform() < 0.7:
            yaw = np.clip(rng.normal(0, cfg.yaw_frontal_sigma), -cfg.yaw_max, cfg.yaw_max)
        else:
            yaw = rng.uniform(-cfg.yaw_max, cfg.yaw_max)
        pitch = np.clip(rng.normal(0, cfg.pitch_max / 2.5), -cfg.pitch_max, cfg.pitch_max)
        roll = np.clip(rng.normal(0, cfg.roll_max / 2.5), -cfg.roll_max, cfg.roll_max)
        p["angles_deg"] = np.array([yaw, pitch, roll])
        w, h = cfg.image_size
        fov = np.radians(rng.uniform(*cfg.fov_deg))
        f = 0.5 * w / np.tan(0.5 * fov)
        z = rng.uniform(*cfg.distance_cm)
        px, py = rng.uniform(0.25 * w, 0.75 * w), rng.uniform(0.25 * h, 0.7 * h)
        p["focal"] = f
        p["translation"] = np.array([(px - w / 2) * z / f, (py - h / 2) * z / f, z])
        # lighting: ambient + 1-2 directional lights (towards the light, camera frame), optional specular
        amb_c = _kelvin_rgb(rng)
        p["ambient"] = amb_c * rng.uniform(0.25, 0.55)
        lights = []
        for k in range(1 if rng.uniform() < 0.5 else 2):
            d = np.array([rng.uniform(-1.3, 1.3), rng.uniform(-1.2, 0.6), -1.0])
            lights.append((d / np.linalg.norm(d), _kelvin_rgb(rng) * (rng.uniform(0.5, 0.9) if k == 0 else rng.uniform(0.1, 0.4))))
        p["lights"] = lights
        p["specular"] = (rng.uniform(0.0, 0.25), rng.uniform(8, 30))
        p["texture"] = int(rng.integers(len(self.textures)))
        p["exposure"] = rng.uniform(0.85, 1.2)
        # appearance of the context
        hc = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2, 3)
        p["hair_colour"] = np.clip(hc, 0, 1)
        p["hairstyle"] = {"bald": rng.uniform() < 0.08, "long": rng.uniform() < 0.4,
                          "front": rng.uniform(-0.75, -0.5), "back": rng.uniform(0.2, 0.8),
                          "volume": rng.uniform(1.0, 1.12)}
        fr = rng.uniform()
        hv = np.full(64, -1.0)
        hs = np.tile(np.array([-1.0, 2.0]), (64, 1))
        if not p["hairstyle"]["bald"] and fr < 0.3:  # fringe over the forehead, wavy edge
            depth = rng.uniform(0.04, 0.22)
            ph = rng.uniform(0, 2 * np.pi, 3)
            u = np.linspace(0, 1, 64)
            wave = 0.3 * np.sin(u * 9 + ph[0]) + 0.2 * np.sin(u * 23 + ph[1])
            tilt = rng.uniform(-0.08, 0.08) * (u - 0.5) * 2
            hv = 0.107 + depth * (1 + wave) + tilt + 0.25 * (u - 0.5) ** 2
        if not p["hairstyle"]["bald"] and rng.uniform() < 0.15:  # strands over the cheeks
            v = np.linspace(0, 1, 64)
            side = rng.uniform(0.03, 0.12) * np.clip(1.3 - v, 0, 1)
            if rng.uniform() < 0.5:
                hs[:, 0] = side
            else:
                hs[:, 1] = 1 - side
        p["hair_v"], p["hair_side"] = hv, hs
        ic = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] * rng.uniform(0.75, 1.25)
        sclera = np.array([0.92, 0.88, 0.84]) * rng.uniform(0.75, 1.0) * rng.uniform(0.95, 1.05, 3)
        eye = np.zeros((2, 10))
        eye[:, :3] = ic
        eye[:, 3:6] = sclera
        eye[:, 6] = rng.uniform(0.3, 0.5)
        eye[:, 7] = 1.0 if rng.uniform() < 0.6 else 0.0
        eye[:, 8] = rng.uniform(0.05, 0.25)
        p["eye"] = eye
        mouth = np.zeros(8)
        mouth[:3] = np.array([0.9, 0.87, 0.78]) * rng.uniform(0.7, 1.0)
        mouth[3] = float(rng.uniform() < 0.85)
        mouth[4] = float(rng.uniform() < 0.4)
        mouth[5] = rng.uniform(0.15, 0.45)
        p["mouth"] = mouth
        p["cloth"] = rng.uniform(0.05, 0.9, 3)
        p["margin"] = rng.uniform(*cfg.margin)
        p["offset"] = rng.uniform(-cfg.offset, cfg.offset, 2)
        p["background"] = int(rng.integers(len(self.backgrounds)))
        p["bg_window"] = rng.uniform(size=4)
        p["noise_offset"] = int(rng.integers(0, 128))
        return p

    # -- rendering ---------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> FaceSample:
        """One random sample; deterministic given the generator's state."""
        return self.render(self.sample_params(rng))

    def _tick(self, name, t0):
        if self.timings is not None:
            import time  # noqa: PLC0415
            t1 = time.perf_counter()
            self.timings[name] = self.timings.get(name, 0.0) + t1 - t0
            return t1
        return t0

    def render(self, p: dict) -> FaceSample:
        import time  # noqa: PLC0415
        t0 = time.perf_counter()
        rig, S = self.rig, self.size
        nv = len(rig.neutral)
        u, x = p["identity"], p["expression"]
        R = p["R"] if "R" in p else euler_to_matrix(*np.radians(p["angles_deg"]))
        t = np.asarray(p["translation"], np.float64)
        f = p["focal"]
        W, H = p.get("image_size", self.cfg.image_size)
        verts = np.empty((nv, 3))
        cam = np.empty((nv, 3))
        _eval_mesh(self.neutral, self.basis, np.concatenate([u, x]), R, t, verts, cam)
        src = f * cam[:, :2] / cam[:, 2:3] + np.array([W / 2.0, H / 2.0])
        # crop around the face
        lo, hi = src.min(0), src.max(0)
        side = max(hi - lo) * p["margin"]
        centre = (lo + hi) / 2 + p["offset"] * side
        sc = S / side
        A = np.array([[sc, 0, S / 2 - sc * centre[0]], [0, sc, S / 2 - sc * centre[1]]])
        xy = src * sc + A[:, 2]
        # normals and per-vertex lighting
        a_, b_, c_ = cam[self.tris[:, 0]], cam[self.tris[:, 1]], cam[self.tris[:, 2]]
        n = self.incidence @ np.cross(b_ - a_, c_ - a_)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        view = -cam / np.linalg.norm(cam, axis=1, keepdims=True)
        diff = np.broadcast_to(p["ambient"], (nv, 3)).copy()
        spec = np.zeros((nv, 3))
        ks, kp = p["specular"]
        for d, col in p["lights"]:
            ndl = n[:, 0] * d[0] + n[:, 1] * d[1] + n[:, 2] * d[2]
            diff += np.clip(ndl, 0, None)[:, None] * col
            hv = d + view
            hv /= np.linalg.norm(hv, axis=1, keepdims=True)
            spec += (ks * np.clip(np.sum(n * hv, 1), 0, None) ** kp * (ndl > 0))[:, None] * col
        diff *= p["exposure"]
        t0 = self._tick("mesh", t0)
        # proxies
        use_proxies = p.get("proxies", True)
        if use_proxies:
            pv, ptris, pattr = self._proxy_mesh(p, verts, R, t, f, sc, A, (W, H))
        t0 = self._tick("mesh_proxy", t0)
        # raster
        self._zf.fill(np.inf); self._tf.fill(-1)
        self._zp.fill(np.inf); self._tp.fill(-1)
        z = np.ascontiguousarray(cam[:, 2])
        raster_into(np.ascontiguousarray(xy), z, self.tris, self._zf, self._tf, self._bf)
        if use_proxies:
            raster_into(pv[0], pv[1], ptris, self._zp, self._tp, self._bp)
        t0 = self._tick("raster", t0)
        # shade
        vattr = np.zeros((nv, 12))
        vattr[:, :2] = self.uvpix
        vattr[:, 2:5] = diff
        vattr[:, 5:8] = spec
        vattr[:, 8] = self.up
        eye_c = np.empty((2, 2))
        eye_inv = np.zeros((2, 2, 2))
        for e, ring in enumerate((L.IRIS_R, L.IRIS_L)):
            c0, right, top, left, bottom = (xy[k] for k in ring)
            M = np.stack([(right - left) / 2, (bottom - top) / 2], 1)
            eye_c[e] = c0
            det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
            if abs(det) > 1e-3:
                eye_inv[e] = np.array([[M[1, 1], -M[0, 1]], [-M[1, 0], M[0, 0]]]) / det
            else:
                eye_inv[e] = np.eye(2) * 1e3
        face = np.zeros((S, S, 3), np.float32)
        fmask = np.zeros((S, S), np.uint8)
        hair_col = p["hair_colour"].astype(np.float64)
        _shade_face(self._tf, self._bf, self.tris, self.mat, self.tri_eye, vattr,
                    p["texture_array"] if "texture_array" in p else self.textures.textures[p["texture"]], eye_c, eye_inv, p["eye"], p["mouth"], p["hair_v"],
                    p["hair_side"], hair_col, self.noise, face, fmask)
        prox = np.zeros((S, S, 3), np.float32)
        if use_proxies:
            _shade_proxy(self._tp, self._bp, ptris, pattr, self.noise, p["noise_offset"], prox)
        t0 = self._tick("shade", t0)
        # composite
        if "photo" in p:  # re-enactment: the real photo is the context
            bg = cv2.warpAffine(p["photo"], A, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        else:
            bg = self._background(p)
        img = np.empty((S, S, 3), np.uint8)
        _composite(bg, self._tp, prox, self._tf, face, img)
        # landmarks and visibility
        lmv = self.lm_vertices.copy()
        lmv[:17] = silhouette_vertices(self.fit_rig, R, t, f, (W, H), x, u)
        lm = xy[lmv].astype(np.float32)
        lz = cam[lmv, 2]
        visible = np.zeros(len(lm), np.bool_)
        _visibility(lm.astype(np.float64), np.ascontiguousarray(lz), self._zf, self._tf, fmask, 0.6, visible)
        t0 = self._tick("composite", t0)
        params = ShapeParams(rotation=matrix_to_quat(R), translation=np.asarray(t, np.float64),
                             expression=np.asarray(x, np.float64), identity=np.asarray(u, np.float64),
                             focal=float(f), image_size=(int(W), int(H)))
        tex_i = p["texture"]
        if "photo" in p:
            return FaceSample(image=img, mask=fmask.copy(), landmarks=lm, visible=visible, params=params,
                              crop_affine=A, source="synthetic-reenact", identity=p.get("identity_key", ""),
                              meta={"texture": p.get("photo_source", ""), "jaw_vertices": lmv[:17].tolist()})
        return FaceSample(image=img, mask=fmask.copy(), landmarks=lm, visible=visible, params=params,
                          crop_affine=A, source="synthetic", identity=self.textures.identities[tex_i],
                          meta={"texture": self.textures.sources[tex_i], "angles_deg": p["angles_deg"].tolist(),
                                "jaw_vertices": lmv[:17].tolist()})

    def reenact(self, image: np.ndarray, landmarks478: np.ndarray, rng: np.random.Generator, fit=None,
                identity_key: str = "", source: str = "", max_pose_deg: float = 8.0) -> FaceSample:
        """Re-enactment: re-render a real photo's face with the photo as its own texture under a new random
        expression and a small pose change (≤ max_pose_deg per axis about the head), composited back into the
        photo (hair, neck, background stay real). image (H, W, 3) uint8 RGB; landmarks478 (478, 2|3) teacher
        pixels; fit: a ``rig.fit.FitResult`` for those landmarks (fitted here with landmark_set='478' if None).
        Params live in the photo's camera (image_size = photo size). Mask = the re-rendered face region; lighting
        stays the photo's (flat shading of the baked texture). Limitation: where the new face is *smaller* than
        the old one (mouth closed, head turned away) the old face's edge can show around the new one, and
        occluders already in the photo are pasted over by the render: use photos whose teacher mask is clean."""
        from ..rig.fit import fit_landmarks  # noqa: PLC0415
        from .texture import unwrap_photo  # noqa: PLC0415

        h, w = image.shape[:2]
        lm = np.asarray(landmarks478, np.float64)
        if fit is None:
            fit = fit_landmarks(lm[:, :2], (w, h), self.fit_rig, landmark_set="478")
        p = self.sample_params(rng)
        dR = euler_to_matrix(*np.radians(rng.uniform(-max_pose_deg, max_pose_deg, 3)))
        p.update(R=dR @ np.asarray(fit.rotation), translation=np.asarray(fit.translation), focal=float(fit.focal),
                 identity=np.asarray(fit.identity), image_size=(w, h), photo=image, proxies=False,
                 texture_array=unwrap_photo(self.rig, image, lm, self.textures.size), ambient=np.ones(3),
                 lights=[], specular=(0.0, 10.0), exposure=1.0, identity_key=identity_key, photo_source=source)
        p["hair_v"][:] = -1.0
        p["hair_side"][:] = (-1.0, 2.0)
        return self.render(p)

    def _proxy_mesh(self, p, verts, R, t, f, sc, A, size_wh):
        """Head ellipsoid (+ hair cap), optional long-hair volume, neck cylinder and torso, scaled to the identity's
        face, projected into the crop. Returns ((xy, z), tris, attr (N, 7))."""
        P = self.proxies
        ext = np.ptp(verts[self.oval], 0) / self.neutral_oval_extent
        sx, sy, sz = ext[0], ext[1], max(0.8, min(1.25, 0.5 * (ext[0] + ext[1])))
        hs = p["hairstyle"]
        parts = []
        # head: centre and radii in model cm
        ve = P.unit[0]
        head = ve * np.array([7.7 * sx, 10.8 * sy, 10.0 * sz]) + np.array([0, -1.6 * sy, 5.0 * sz])
        ey, ez = ve[:, 1], ve[:, 2]
        thr = hs["front"] * (1 - ez) / 2 + hs["back"] * (1 + ez) / 2 - 0.3 * (1 - np.abs(ez))  # ears stay free
        hairness = np.zeros(len(ve)) if hs["bald"] else 1.0 / (1.0 + np.exp(-(thr - ey) / 0.06))
        head = head + (head - np.array([0, -1.6 * sy, 5.0 * sz])) * ((hs["volume"] - 1) * hairness)[:, None]
        parts.append((head, hairness, "head"))
        # long hair: a volume behind the head reaching down to the shoulders
        if hs["long"] and not hs["bald"]:
            lh = ve * np.array([9.0 * sx, 15.0 * sy, 8.5 * sz]) + np.array([0, 4.0 * sy, 8.0 * sz])
            parts.append((lh, np.ones(len(ve)), "long"))
        else:
            parts.append((np.tile(np.array([0, 0, 1e3]), (len(ve), 1)), np.zeros(len(ve)), "none"))
        neck = P.unit[2] * np.array([5.0 * sx, 8.0, 5.3 * sz]) + np.array([0, 12.0 * sy, 5.5 * sz])
        parts.append((neck, np.zeros(len(neck)), "neck"))
        torso = ve * np.array([19.0 * sx, 8.0, 11.0 * sz]) + np.array([0, 25.0 * sy, 6.0 * sz])
        parts.append((torso, np.zeros(len(ve)), "torso"))
        # head parts follow R; neck and torso follow a damped body rotation about the neck pivot
        yaw, pitch, roll = np.radians(p["angles_deg"])
        Rb = euler_to_matrix(0.3 * yaw, 0.2 * pitch, 0.3 * roll)
        pivot = np.array([0, 6.0 * sy, 5.0 * sz])
        cams = []
        for k, (pts, _, _) in enumerate(parts):
            if k < 2:
                cams.append(_rot(pts, R) + t)
            else:
                cams.append(_rot(pts - pivot, Rb) + (_rot(pivot[None], R)[0] + t))
        cam = np.concatenate(cams)
        W, H = size_wh
        xy = (f * cam[:, :2] / cam[:, 2:3] + np.array([W / 2.0, H / 2.0])) * sc + A[:, 2]
        # shading: ambient + diffuse per vertex (normals of the scaled shapes, approximate: from the unit shapes)
        normals = []
        for k, (pts, _, _) in enumerate(parts):
            un = P.unit[k] if k != 2 else P.unit[2] * np.array([1, 0, 1])
            rad = {0: (7.7, 10.8, 10.0), 1: (9.0, 15.0, 8.5), 2: (5.0, 1.0, 5.3), 3: (19.0, 8.0, 11.0)}[k]
            nn = un / np.array(rad)
            nn /= np.maximum(np.linalg.norm(nn, axis=1, keepdims=True), 1e-9)
            normals.append(_rot(nn, R if k < 2 else Rb))
        nrm = np.concatenate(normals)
        light = np.broadcast_to(p["ambient"], (len(cam), 3)).copy()
        for d, col in p["lights"]:
            light += np.clip(_rot(nrm, d[None])[:, 0], 0, None)[:, None] * col
        light *= p["exposure"]
        skin = self.textures.skin[p["texture"]].astype(np.float64)
        albedo = np.concatenate([np.tile(skin, (len(parts[0][0]), 1)), np.tile(skin, (len(parts[1][0]), 1)),
                                 np.tile(skin * 0.92, (len(parts[2][0]), 1)), np.tile(p["cloth"], (len(parts[3][0]), 1))])
        attr = np.zeros((len(cam), 7))
        attr[:, :3] = albedo * light
        attr[:, 3:6] = p["hair_colour"] * light
        attr[:, 6] = np.concatenate([h for _, h, _ in parts])
        return (np.ascontiguousarray(xy), np.ascontiguousarray(cam[:, 2])), P.all_tris, attr

    def _background(self, p):
        S = self.size
        bg = self.backgrounds[p["background"]]
        h, w = bg.shape[:2]
        r = p["bg_window"]
        side = min(h, w) * (0.35 + 0.65 * r[0])
        x0, y0 = r[1] * (w - side), r[2] * (h - side)
        s = S / side
        M = np.array([[s, 0, -s * x0], [0, s, -s * y0]])
        if r[3] < 0.5:
            M = np.array([[-1, 0, S], [0, 1, 0]]) @ np.vstack([M, [0, 0, 1]])
        return cv2.warpAffine(bg, M, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ------------------------------------------------------------------------------------------------------------------
# looking at samples
# ------------------------------------------------------------------------------------------------------------------
def contact_sheet(samples, cols: int = 8, scale: int = 2) -> np.ndarray:
    """(H, W, 3) uint8 RGB sheet: per sample the image with landmarks (green visible, red hidden) and, next to it,
    the mask overlaid (face tinted blue, mask contour in yellow)."""
    tiles = []
    for s in samples:
        img = cv2.resize(s.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        a = img.copy()
        for (x, y), v in zip(s.landmarks, s.visible):
            if np.isfinite(x):
                cv2.circle(a, (int(x * scale), int(y * scale)), 1, (0, 255, 0) if v else (255, 0, 0), -1)
        m = cv2.resize(s.mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        b = img.copy()
        b[m > 0] = (0.5 * b[m > 0] + 0.5 * np.array([0, 90, 255])).astype(np.uint8)
        cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(b, cs, -1, (255, 255, 0), 1)
        tiles.append(np.concatenate([a, b], 1))
    rows = []
    for r in range(0, len(tiles), cols):
        row = tiles[r:r + cols]
        row += [np.zeros_like(tiles[0])] * (cols - len(row))
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)
