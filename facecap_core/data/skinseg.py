"""Face masks for real images (design §5): the face-oval polygon refined by a skin-colour graph cut.

This replaces the paper's semi-automatic labelling tool. Given an RGB image and the teacher's 478 landmarks
(pixels), :func:`face_mask` returns a uint8 {0, 1} mask where 1 = face:

1. **Oval**: the 36-vertex face oval (``landmarks.FACE_OVAL``) filled, united with the 478-point mesh's triangles
   (a turned face's profile sticks out past the oval's far side). Everything outside is hard non-face.
2. **Hard face**: eyes (lid contours), eyebrows, lips (outer lip contour, which contains an open mouth) and the
   nostrils are face whatever their colour (design §5: eyes and an open mouth are face) — unless a worn face
   mask covers them (below).
3. **Colour models** in CIE Lab (L down-weighted, so shading matters less than chroma but dark hair on light skin
   and grey-scale photos still separate): smoothed 3D colour histograms.

   * skin: pixels of confidently-skin regions (both cheeks, nose bridge, the forehead centre just above the brows),
     robustified: the forehead region is dropped when its median is darker than, or of another chroma from, the
     cheeks' and nose's (bangs down to the brows), and a seed pixel far (Mahalanobis) from the cheek/nose colour is
     dropped (a hand on a cheek, stray hair do not poison the model). In colour images the histogram is smoothed
     more along L than along chroma, so a shadowed cheek of the skin's hue stays skin;
   * non-skin: a ring just outside the oval (hair, background, collar …) minus the pixels that look like skin
     (neck, ears), plus the seed pixels rejected above.

   **Worn face masks** (colour images): the skin's chroma (Lab a*, b*) is measured on the skin seeds of the
   upper face (never under a face mask). A pixel is *cool* when its chroma along the skin's hue is less than
   ``occluder_warmth`` of the skin's: white, grey, black and blue material, but not skin, lips or a beard of
   the skin's hue. A worn mask is detected when the lip band (outer minus inner lip contour) is mostly cool
   (lips are redder than skin, so a visible mouth hardly ever is) while the lower face around the mouth is largely
   cool and the upper face is not (that rules out grey-ish and colour-cast photos). Then the cool region
   reaching the mouth is the occluder (design §5: non-face): lips — and the nostrils when it covers them — lose
   their hard-face status, its pixels leave the skin seeds and join the non-skin samples, and the face-ward prior
   is dropped over it.

4. **Graph cut** (PyMaxflow, vectorised grid graph) on a crop around the oval, resampled so the face is
   ``work_size`` px wide: unary = −log colour likelihood + a spatial prior that favours face deep inside the oval
   (distance to the oval border) and is neutral near it; 8-connected contrast-sensitive pairwise term
   λ·exp(−β‖I_i − I_j‖²) (β from the mean colour contrast, GrabCut-style). Outside the oval: hard non-face;
   hard-face regions: hard face. The eye sockets (brow to upper lid, and a ring around each eye) get a stronger
   face-ward prior: shadowed sockets, eyeliner and lashes are face (design §5), while a glasses frame's colour
   evidence can still cut it. The colour log-likelihood ratio is capped (``llr_clip``) so the priors matter at all.
   Above the brows, fine texture across the image (``texture_forehead``) pushes towards non-face: a blonde
   fringe is too close to skin in colour, but its strands are textured.
5. Back at full resolution: the upsampled cut ∧ oval ∨ hard-face; small non-face specks (moles, pores, specular
   glints, < ``min_hole`` of the oval area) that do not touch the oval border are filled.

So hair over the forehead, dark glasses frames, hands, microphones and white/blue/black face masks are cut out;
a skin-coloured hand or a skin-toned (beige) or patterned face mask is not (or only partly: those cases come from
the synthetic composites, design §7); in grey-scale photos no face mask is looked for (no chroma to tell it by).
Pure functions on arrays; training-time only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..rig import landmarks as L

# ------------------------------------------------------------------------------------------------------------
# landmark regions (indices into the 478-point layout)
# ------------------------------------------------------------------------------------------------------------
EYE_R = L.EYE_R_UPPER + tuple(reversed(L.EYE_R_LOWER[1:-1]))
EYE_L = L.EYE_L_UPPER + tuple(reversed(L.EYE_L_LOWER[1:-1]))
BROW_R = L.BROW_R_UPPER + tuple(reversed(L.BROW_R_LOWER))
BROW_L = L.BROW_L_UPPER + tuple(reversed(L.BROW_L_LOWER))
LIPS_OUTER = L.LIPS_OUTER_UPPER + tuple(reversed(L.LIPS_OUTER_LOWER[1:-1]))
LIPS_INNER = L.LIPS_INNER_UPPER + tuple(reversed(L.LIPS_INNER_LOWER[1:-1]))
# nostrils / nose base: alae, columella and the tip's underside (MediaPipe mesh)
NOSTRILS = (48, 64, 98, 97, 2, 326, 327, 294, 278, 344, 440, 275, 4, 45, 220, 115)
# confidently-skin seed regions (polygons), away from eyes, brows, mouth and the hair line
CHEEK_R = (116, 117, 118, 101, 36, 206, 207, 187, 123)  # subject's right cheek (image left)
CHEEK_L = (345, 346, 347, 330, 266, 426, 427, 411, 352)
NOSE_BRIDGE = (168, 417, 465, 412, 399, 437, 4, 217, 174, 188, 245, 193)
FOREHEAD_C = (9, 107, 66, 105, 104, 69, 108, 151, 337, 299, 333, 334, 296, 336)


@dataclass(frozen=True)
class SkinSegParams:
    """Tuning of :func:`face_mask` (values chosen on the contact sheet of real faces, see the labelling script)."""

    work_size: int = 112  # the oval's width in the graph, px
    margin: float = 0.25  # crop margin around the oval, fraction of its size
    lab_weights: tuple = (0.5, 1.0, 1.0)  # L, a, b scaling before binning (L counts less: shading)
    bins: int = 24  # histogram bins per channel
    hist_sigma: float = 1.0  # Gaussian smoothing of the histograms, bins
    hist_sigma_l: float = 2.5  # … along L in colour images (shading: a shadowed cheek keeps the skin's chroma)
    seed_maha: float = 3.0  # seed pixels further than this (Mahalanobis, cheek/nose colour) are not skin seeds
    forehead_delta: float = 18.0  # the forehead seeds are dropped when their median is this far from the cheeks'
    #                               and nose's (weighted Lab units; bangs over the forehead, grey-scale photos too)
    pairwise: float = 6.0  # λ of the contrast-sensitive smoothness term (per 4-neighbour edge)
    prior_inner: float = 2.0  # log-odds in favour of face deep inside the oval (stubble, shadows)
    prior_border: float = 0.3  # log-odds in favour of face at the oval border (shadowed jaw lines)
    prior_depth: float = 0.12  # depth (fraction of oval width) at which the prior reaches prior_inner
    texture_forehead: float = 4.0  # above the brows, log-odds against face per unit of fine texture across the image
    #                                over texture_floor: a blonde fringe's strands (colour too close to skin's for the
    #                                histograms) are textured, forehead skin is smooth and its wrinkles run across.
    #                                0 turns the cue off (the labels before 2026-11-22, evening; segmenter_lite_history.md)
    texture_floor: float = 1.0  # L units (8-bit Lab) of texture that count as smooth skin
    prior_socket: float = 4.0  # log-odds for face in the eye sockets (brow to lid, and around the eye): dark
    #                            shadows and make-up are face (design §5); a glasses frame's colour can still cut
    llr_clip: float = 6.0  # |log skin/non-skin likelihood ratio| at most this (the histograms' floors reach ±15)
    socket_dilate: float = 0.03  # the eye's ring in the socket region, fraction of the oval width
    skin_cr: tuple = (133.0, 185.0)  # generic skin chroma box (8-bit YCrCb) a seed region must fall in (colour images)
    skin_cb: tuple = (70.0, 130.0)
    bg_skin_percentile: float = 5.0  # ring pixels likelier than this percentile of the seeds are not non-skin samples
    min_hole: float = 0.004  # non-face components smaller than this fraction of the oval area are filled
    hard_dilate: float = 0.015  # hard-face regions are dilated by this fraction of the oval width
    # worn face masks (see the module docstring); fractions of pixels that are "cool" (chroma along the skin's hue
    # below occluder_warmth × the skin's) in the lip band, the lower face and the upper face
    occluder_warmth: float = 0.45
    occluder_lips: float = 0.6  # at least this much of the lip band …
    occluder_lower: float = 0.3  # … and of the lower face (below mid-nose, outside the lips) …
    occluder_upper: float = 0.3  # … but at most this much of the upper face (eyes' level and above)
    occluder_min_chroma: float = 6.0  # skin chroma (Lab units) below which no mask is looked for (grey-ish photos)


DEFAULT_PARAMS = SkinSegParams()


def _fixed_point(pts: np.ndarray) -> np.ndarray:
    """Pixel coordinates as OpenCV's drawing functions take them with shift=4 (4 fractional bits)."""
    return np.round(np.asarray(pts, np.float64)[..., :2] * 16).astype(np.int32)


def _poly(shape, pts: np.ndarray, value: int = 1) -> np.ndarray:
    m = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(m, [_fixed_point(pts).reshape(-1, 1, 2)], value, lineType=cv2.LINE_8, shift=4)
    return m


def oval_polygon(landmarks: np.ndarray) -> np.ndarray:
    """(36, 2) face-oval polygon of the 478 landmarks (x, y pixels)."""
    return np.asarray(landmarks, np.float64)[list(L.FACE_OVAL), :2]


@functools.lru_cache(maxsize=1)
def _mesh_triangles() -> np.ndarray:
    """(T, 3) triangles of the 478-point mesh (the rig's topology, which the teacher's points share)."""
    from ..rig.model import load_rig  # noqa: PLC0415

    return np.asarray(load_rig(None).triangles, np.int64)


def oval_mask(shape, landmarks: np.ndarray) -> np.ndarray:
    """uint8 {0,1} (H, W): the face's outline (design §5): the filled face oval united with every triangle of
    the 478-point mesh. In a frontal view the two agree; in a turned one the oval's far side runs behind the
    cheek, and the nose tip, the far half of the lips and the chin's profile stick out past it."""
    m = _poly(shape, oval_polygon(landmarks))
    for tri in _fixed_point(landmarks)[_mesh_triangles()]:
        cv2.fillConvexPoly(m, tri, 1, lineType=cv2.LINE_8, shift=4)
    return m


def _nostrils(shape, lm: np.ndarray) -> np.ndarray:
    return _poly(shape, cv2.convexHull(lm[list(NOSTRILS)].astype(np.float32)).reshape(-1, 2))


def hard_face_mask(shape, landmarks: np.ndarray, dilate_px: int = 0, mouth: bool = True,
                   nostrils: bool = True) -> np.ndarray:
    """uint8 {0,1}: eyes, brows, lips (with the open mouth inside; unless ``mouth`` is False) and nostrils (unless
    ``nostrils`` is False), within the oval."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    m = np.zeros(shape[:2], np.uint8)
    for poly in (EYE_R, EYE_L, BROW_R, BROW_L) + ((LIPS_OUTER, LIPS_INNER) if mouth else ()):
        m |= _poly(shape, lm[list(poly)])
    if nostrils:
        m |= _nostrils(shape, lm)
    if dilate_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        m = cv2.dilate(m, k)
    return m & oval_mask(shape, lm)


def eye_socket_mask(shape, landmarks: np.ndarray, dilate_px: int) -> np.ndarray:
    """uint8 {0,1}: both eye sockets — the skin between the lower brow contour and the upper lid, and a ring of
    ``dilate_px`` around each eye — within the oval. Often dark (shadow, make-up, lashes) yet face (design §5)."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    m = np.zeros(shape[:2], np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
    for brow, lid, eye in ((L.BROW_R_LOWER, L.EYE_R_UPPER, EYE_R), (L.BROW_L_LOWER, L.EYE_L_UPPER, EYE_L)):
        m |= _poly(shape, cv2.convexHull(lm[list(brow + lid)].astype(np.float32)).reshape(-1, 2))
        m |= cv2.dilate(_poly(shape, lm[list(eye)]), k)
    return m & oval_mask(shape, lm)


SEED_REGIONS = (CHEEK_R, CHEEK_L, NOSE_BRIDGE, FOREHEAD_C)


def skin_seed_mask(shape, landmarks: np.ndarray) -> np.ndarray:
    """uint8 (H, W): the skin model's candidate training pixels, labelled by region — 1 right cheek, 2 left cheek,
    3 nose bridge, 4 forehead centre (0 elsewhere); eyes, brows, lips and nostrils excluded."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    m = np.zeros(shape[:2], np.uint8)
    for k, poly in enumerate(SEED_REGIONS, 1):
        r = _poly(shape, lm[list(poly)])
        m[(r > 0) & (m == 0)] = k
    m[hard_face_mask(shape, lm) > 0] = 0
    return m


# ------------------------------------------------------------------------------------------------------------
# colour models
# ------------------------------------------------------------------------------------------------------------
def _lab(img: np.ndarray, weights) -> np.ndarray:
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)  # 8-bit Lab: all channels in 0..255
    return lab * np.asarray(weights, np.float32)


def _bin_index(feat: np.ndarray, bins: int, weights) -> np.ndarray:
    hi = 256.0 * np.asarray(weights, np.float32)
    q = np.clip((feat / hi * bins).astype(np.int32), 0, bins - 1)
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def _histogram(idx: np.ndarray, bins: int, sigma) -> np.ndarray:
    """Smoothed normalised 3D histogram as a flat (bins³,) log-density; sigma in bins, one value or (L, a, b)."""
    h = np.bincount(idx.ravel(), minlength=bins ** 3).astype(np.float64).reshape(bins, bins, bins)
    n = h.sum()
    if np.any(np.asarray(sigma) > 0):
        from scipy.ndimage import gaussian_filter  # noqa: PLC0415

        h = gaussian_filter(h, sigma, mode="constant")
    h = h / max(h.sum(), 1e-12)
    return np.log(h.ravel() + 1.0 / (bins ** 3 * max(n, 1.0) * 4.0))


def _strand_texture(lum: np.ndarray, lms: np.ndarray, floor: float) -> np.ndarray:
    """float32 (H, W): fine texture of `lum` (8-bit Lab L) across the image (high-pass along x only, so hair strands
    that run down count and forehead wrinkles that run across do not), less `floor`, above the brows' upper edge;
    0 elsewhere."""
    tex = cv2.blur(np.abs(lum - cv2.GaussianBlur(lum, (9, 1), 1.2)), (5, 5))
    coord = eye_mouth_coordinate(lum.shape, lms)
    brows = lms[list(L.BROW_R_UPPER + L.BROW_L_UPPER)]
    h, w = lum.shape[:2]
    top = float(coord[np.clip(brows[:, 1].astype(int), 0, h - 1), np.clip(brows[:, 0].astype(int), 0, w - 1)].mean())
    return np.where(coord < top, np.maximum(tex - floor, 0.0), 0.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------
# worn face masks
# ------------------------------------------------------------------------------------------------------------
def eye_mouth_coordinate(shape, landmarks: np.ndarray) -> np.ndarray:
    """float32 (H, W): each pixel's position along the face's eyes→mouth axis, 0 at the eyes' centre, 1 at the
    mouth's (so about 0.5 at the nose tip; negative on the forehead)."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    eye = lm[list(EYE_R + EYE_L)].mean(0)
    ax = lm[list(LIPS_OUTER)].mean(0) - eye
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (((xx + 0.5 - eye[0]) * ax[0] + (yy + 0.5 - eye[1]) * ax[1]) / max(float(ax @ ax), 1e-9)).astype(np.float32)


def worn_mask_region(image: np.ndarray, landmarks: np.ndarray, skin: np.ndarray,
                     params: SkinSegParams = DEFAULT_PARAMS) -> tuple[np.ndarray, bool]:
    """A face mask worn over the mouth (design §5: an occluder) in a colour image.

    image (H, W, 3) uint8 RGB; landmarks (478, 2) pixels; skin (H, W) bool: trusted skin pixels (the skin seeds),
    of which those above mid-nose give the skin's chroma. Returns (region, nose):
    region (H, W) bool, the cool pixels connected to the lip band (all False when no mask is detected, see the
    module docstring), and whether the region also covers the nostrils."""
    shape = image.shape[:2]
    none = np.zeros(shape, bool), False
    lm = np.asarray(landmarks, np.float64)[:, :2]
    v = eye_mouth_coordinate(shape, lm)
    ref = skin & (v < 0.35)
    if ref.sum() < 20:
        ref = skin
    if ref.sum() < 20:
        return none
    chroma = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 1:].astype(np.float32) - 128.0
    hue = np.median(chroma[ref], 0)
    sat = float(np.linalg.norm(hue))
    if sat < params.occluder_min_chroma:
        return none
    cool = (chroma @ (hue / sat)) < params.occluder_warmth * sat
    oval = oval_mask(shape, lm) > 0
    eyes_brows = hard_face_mask(shape, lm, mouth=False, nostrils=False) > 0
    lips = _poly(shape, lm[list(LIPS_OUTER)]) > 0
    band = lips & ~(_poly(shape, lm[list(LIPS_INNER)]) > 0)
    lower = oval & (v > 0.55) & ~lips & ~eyes_brows
    upper = oval & (v > -0.4) & (v < 0.35) & ~eyes_brows
    if band.sum() < 5 or lower.sum() < 20 or upper.sum() < 20:
        return none
    if not (cool[band].mean() >= params.occluder_lips and cool[lower].mean() >= params.occluder_lower
            and cool[upper].mean() <= params.occluder_upper):
        return none
    cand = cool & oval & ~eyes_brows & (v > 0.2)
    n, cc = cv2.connectedComponents(cand.astype(np.uint8), connectivity=8)
    hit = np.zeros(n, bool)
    hit[np.unique(cc[cand & band])] = True
    hit[0] = False
    region = hit[cc]
    nose = _nostrils(shape, lm) > 0
    return region, bool(nose.any() and region[nose].mean() >= 0.5)


# ------------------------------------------------------------------------------------------------------------
# graph cut
# ------------------------------------------------------------------------------------------------------------
def _graph_cut(unary_face: np.ndarray, unary_bg: np.ndarray, feat: np.ndarray, lam: float,
               hard_face: np.ndarray, hard_bg: np.ndarray) -> np.ndarray:
    """Binary cut, 8-connected contrast-sensitive pairwise; returns bool (H, W) face."""
    import maxflow  # noqa: PLC0415

    h, w = unary_face.shape
    g = maxflow.Graph[float]()
    ids = g.add_grid_nodes((h, w))
    # β = 1 / (2 E‖ΔI‖²) over 4-neighbours
    dx = np.sum((feat[:, 1:] - feat[:, :-1]) ** 2, -1)
    dy = np.sum((feat[1:] - feat[:-1]) ** 2, -1)
    dd = np.sum((feat[1:, 1:] - feat[:-1, :-1]) ** 2, -1)
    da = np.sum((feat[1:, :-1] - feat[:-1, 1:]) ** 2, -1)
    beta = 1.0 / (2.0 * max(float(np.mean(np.concatenate([dx.ravel(), dy.ravel()]))), 1e-6))
    for diff, struct, sl, scale in (
            (dx, np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]]), (slice(None), slice(0, w - 1)), 1.0),
            (dy, np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]]), (slice(0, h - 1), slice(None)), 1.0),
            (dd, np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1]]), (slice(0, h - 1), slice(0, w - 1)), 1 / np.sqrt(2)),
            (da, np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]]), (slice(0, h - 1), slice(1, w)), 1 / np.sqrt(2))):
        wgt = np.zeros((h, w))
        wgt[sl] = lam * scale * np.exp(-beta * diff)
        g.add_grid_edges(ids, weights=wgt, structure=struct, symmetric=True)
    inf = 1e9
    # source = face: a node ending on the sink side (non-face) pays its source capacity
    src = np.where(hard_face, inf, unary_bg)
    snk = np.where(hard_bg, inf, unary_face)
    src = np.where(hard_bg, 0.0, src)
    snk = np.where(hard_face, 0.0, snk)
    g.add_grid_tedges(ids, src, snk)
    g.maxflow()
    return ~g.get_grid_segments(ids)


def _fill_small_holes(face: np.ndarray, oval: np.ndarray, min_area: int) -> np.ndarray:
    """Fill non-face components inside the oval smaller than min_area that do not touch the oval border."""
    hole = ((face == 0) & (oval > 0)).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(hole, connectivity=4)
    if n <= 1:
        return face
    border = (oval > 0) & (cv2.erode(oval, np.ones((3, 3), np.uint8)) == 0)
    touches = np.zeros(n, bool)
    touches[np.unique(lab[border])] = True
    small = (stats[:, cv2.CC_STAT_AREA] < min_area) & ~touches
    small[0] = False
    out = face.copy()
    out[small[lab]] = 1
    return out


def face_mask(image: np.ndarray, landmarks: np.ndarray, params: SkinSegParams = DEFAULT_PARAMS,
              return_debug: bool = False):
    """uint8 {0,1} (H, W) face mask of one face (design §5) from an RGB image (H, W, 3) uint8 and the teacher's
    478 landmarks ((478, 2) or (478, 3) pixels). See the module docstring for the method."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 RGB (H, W, 3), got {img.dtype} {img.shape}")
    lm = np.asarray(landmarks, np.float64)[:, :2]
    if lm.shape != (478, 2) or not np.all(np.isfinite(lm)):
        raise ValueError(f"expected finite (478, 2) landmarks, got {lm.shape}")
    H, W = img.shape[:2]
    oval_full = oval_mask((H, W), lm)
    out = np.zeros((H, W), np.uint8)
    if oval_full.sum() == 0:
        return (out, {}) if return_debug else out
    # crop around the oval (clipped to the image), resampled so the oval is work_size px wide
    o = oval_polygon(lm)
    x0, y0 = o.min(0)
    x1, y1 = o.max(0)
    size = max(x1 - x0, y1 - y0, 1.0)
    m = params.margin * size
    cx0, cy0 = int(max(0, np.floor(x0 - m))), int(max(0, np.floor(y0 - m)))
    cx1, cy1 = int(min(W, np.ceil(x1 + m))), int(min(H, np.ceil(y1 + m)))
    if cx1 - cx0 < 4 or cy1 - cy0 < 4:
        return (oval_full, {}) if return_debug else oval_full
    s = params.work_size / max(x1 - x0, 1.0)
    gw, gh = max(8, int(round((cx1 - cx0) * s))), max(8, int(round((cy1 - cy0) * s)))
    sx, sy = gw / (cx1 - cx0), gh / (cy1 - cy0)
    crop = img[cy0:cy1, cx0:cx1]
    interp = cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR
    small = cv2.resize(crop, (gw, gh), interpolation=interp)
    lms = (lm - [cx0, cy0]) * [sx, sy]
    shape = (gh, gw)
    oval = oval_mask(shape, lms)
    dil = max(1, int(round(params.hard_dilate * params.work_size)))
    hard = hard_face_mask(shape, lms, dil)
    seeds = skin_seed_mask(shape, lms) * (oval > 0)
    feat = _lab(small, params.lab_weights)

    # skin model. Seed regions whose chroma is not skin-like (a white face mask over the cheeks, a blue glove)
    # are dropped in colour images; then seed pixels far from the consensus colour (bangs over the forehead centre,
    # a microphone on a cheek) are dropped too.
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    inside = (oval > 0) & (hard == 0)
    colourful = bool(inside.any()) and float(np.mean(np.abs(ycc[inside][:, 1:] - 128.0))) > 2.0
    regions = []
    for k in range(1, len(SEED_REGIONS) + 1):
        r = seeds == k
        if r.sum() < 5:
            continue
        if colourful:
            cr, cb = np.median(ycc[r][:, 1]), np.median(ycc[r][:, 2])
            if not (params.skin_cr[0] <= cr <= params.skin_cr[1] and params.skin_cb[0] <= cb <= params.skin_cb[1]):
                continue
        regions.append(k)
    if not regions:
        regions = [k for k in range(1, len(SEED_REGIONS) + 1) if (seeds == k).sum() >= 5]
    cand = np.isin(seeds, regions) if regions else inside
    core_regions = [k for k in regions if k != 4] or regions
    core = feat[np.isin(seeds, core_regions)] if core_regions else feat[inside]
    if len(core) < 20:
        core = feat[inside] if inside.sum() >= 20 else feat.reshape(-1, 3)
    mu = np.median(core, 0)
    # bangs over the forehead centre (its colour far from the cheeks' and nose's): not skin seeds but hair samples
    if 4 in regions and len(regions) > 1:
        d_forehead = np.median(feat[seeds == 4], 0) - mu
        d_forehead[0] = min(d_forehead[0], 0.0)  # a brighter forehead is lighting (or a bald head), not hair
        if np.linalg.norm(d_forehead) > params.forehead_delta:
            regions.remove(4)
            cand = np.isin(seeds, regions)
    cov = np.cov(core.T) + np.eye(3) * 4.0
    icov = np.linalg.inv(cov)
    dv = feat - mu
    d_seed = np.sqrt(np.einsum("...i,ij,...j->...", dv, icov, dv))
    good = cand & (d_seed < params.seed_maha)
    if good.sum() < 20:
        good = cand if cand.sum() >= 20 else inside
    bad_seed = (seeds > 0) & ~good
    # a worn face mask: no hard face under it, its pixels are non-skin samples and get no face-ward prior
    occluder, covers_nose = worn_mask_region(small, lms, good, params) if colourful else (np.zeros(shape, bool), False)
    if occluder.any():
        hard = hard_face_mask(shape, lms, dil, mouth=False, nostrils=not covers_nose)
        good &= ~occluder
        if good.sum() < 20:
            good = inside & ~occluder if (inside & ~occluder).sum() >= 20 else good | inside
        bad_seed |= occluder
    bins = params.bins
    idx = _bin_index(feat, bins, params.lab_weights)
    sigma = (params.hist_sigma_l if colourful else params.hist_sigma, params.hist_sigma, params.hist_sigma)
    log_skin = _histogram(idx[good], bins, sigma)
    # non-skin model: ring outside the oval, minus skin-looking pixels (neck, ears), plus rejected seeds
    kr = max(3, int(round(0.12 * params.work_size)))
    ring = (cv2.dilate(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * kr + 1, 2 * kr + 1))) > 0) & (oval == 0)
    seed_ll = log_skin[idx[good]]
    skin_like = log_skin[idx] >= np.percentile(seed_ll, params.bg_skin_percentile)
    bg_pix = (ring & ~skin_like) | bad_seed
    if bg_pix.sum() < 50:  # face fills the image, or background is skin-coloured: take the ring as is
        bg_pix = ring | bad_seed
    if bg_pix.sum() < 20:  # oval touches the crop everywhere: a flat non-skin model
        log_bg = np.full(bins ** 3, -np.log(bins ** 3))
    else:
        log_bg = _histogram(idx[bg_pix], bins, sigma)
    # spatial prior: log-odds for face rising from 0 at the oval border to prior_inner at prior_depth
    depth = cv2.distanceTransform(oval, cv2.DIST_L2, 3) / max(params.work_size, 1)
    prior = params.prior_border + (params.prior_inner - params.prior_border) * np.clip(depth / params.prior_depth, 0.0, 1.0)
    socket = eye_socket_mask(shape, lms, max(1, int(round(params.socket_dilate * params.work_size)))) > 0
    if params.texture_forehead > 0:
        lum = feat[..., 0] / params.lab_weights[0]  # the Lab already computed for the colour models
        prior -= params.texture_forehead * _strand_texture(lum, lms, params.texture_floor)
    prior[socket] = np.maximum(prior[socket], params.prior_socket)
    prior[occluder] = 0.0
    # the colour evidence is capped so that the sockets' prior and the smoothness term can overrule it
    ls, lb = log_skin[idx], log_bg[idx]
    lb = np.clip(lb, ls - params.llr_clip, ls + params.llr_clip)
    unary_face = -(ls + 0.5 * prior)
    unary_bg = -(lb - 0.5 * prior)
    off = np.minimum(unary_face, unary_bg)
    unary_face, unary_bg = unary_face - off, unary_bg - off
    face_small = _graph_cut(unary_face, unary_bg, feat, params.pairwise, hard > 0, oval == 0)

    up = cv2.resize(face_small.astype(np.float32), (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
    out[cy0:cy1, cx0:cx1] = up >= 0.5
    hard_full = hard_face_mask((H, W), lm, mouth=not occluder.any(), nostrils=not covers_nose)
    out = (out & oval_full) | hard_full
    out = _fill_small_holes(out, oval_full, int(params.min_hole * oval_full.sum()))
    out = out & oval_full
    if return_debug:
        dbg = dict(crop=(cx0, cy0, cx1, cy1), small=small, seeds=seeds, good=good, bg=bg_pix, hard=hard, regions=regions,
                   face_small=face_small, log_skin=ls, log_bg=lb, occluder=occluder)
        return out.astype(np.uint8), dbg
    return out.astype(np.uint8)
