"""Stage 2 of the rig build: the 46 expression blendshapes, authored procedurally from the anatomy.

Every shape is a displacement field (cm, model frame: x = subject's left, y down, z away from the camera)
built from a few *anchor* vertices (named sets in ``landmarks.py``) and a smooth falloff:

* distances are **geodesic on the skin** (Dijkstra on the edges of skin triangles only). The mouth-interior
  and eye-surface seam triangles are left out, so the upper and lower lip (and lid) are only connected around
  the corners: a field anchored on the lower lip does not leak into the upper lip, and vice versa;
* weights fall off with a raised cosine, 1 at the anchors and 0 at the shape's radius R;
* anchor displacements are spread to the surrounding vertices with a normalised Gaussian kernel (Euclidean,
  σ ≈ 0.35 cm) and set exactly on the anchors themselves (so e.g. EyeBlink puts the upper-lid contour exactly
  on the lower-lid contour and LipsTogether makes the inner lip contours meet);
* JawOpen is a rotation of the lower face about a jaw hinge below/in front of the ear, blended with a
  jaw weight that is 1 on the lower lip, chin and jaw line and 0 on the upper lip and above;
* the iris rings are eye decals (``base.place_iris``): every eye shape re-places its ring on the deformed mesh,
  just in front of the eye membrane inside the opening and behind the lid skin outside it; gaze shapes move the
  ring to where a rotation about the eyeball centre would take it in the image plane (depth following the
  membrane) and nudge the lids; a blink collapses the membrane, so the ring goes behind the closed lid;
* the subject's-left shapes (_L, and JawLeft/MouthLeft) are authored, their partners derived with the mirror
  map: ``delta_R[v] = delta_L[mirror[v]] * (-1, 1, 1)`` — exact mirror images; centre shapes are symmetrised
  the same way, so they are exactly symmetric.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from ...render.raster import vertex_normals
from .. import landmarks as L
from ..geometry import rotvec_to_matrix
from ..model import EXPRESSION_NAMES, MATERIAL_SKIN
from .base import RigBase, place_iris

# ---- magnitudes (cm, degrees) -------------------------------------------------------------------------
JAW_OPEN_DEG = 21.0
JAW_HINGE_YZ = (1.4, 2.6)  # hinge (y, z) in cm: level with the nose base, behind the face plane (TMJ)
GAZE_DEG = 28.0  # horizontal gaze (eyeLookIn/Out)
GAZE_VERTICAL_DEG = 20.0  # vertical gaze: the lids follow the eye, the iris centre stays inside the opening
BLINK_IRIS_BACK_CM = 0.12  # a blink pushes the iris ring back: behind the closing lid from mid-blink on
EYE_WIDE_CM = 0.30
BROW_RAISE_CM = 1.1  # tuned with benchmarks/rig_semantics.py (0.9 read as browOuterUp 0.16-0.28)
BROW_INNER_RAISE_CM = 0.8
BROW_DOWN_CM = 0.8
SMILE_CM = (0.45, -0.8, 0.45)
FROWN_CM = (0.15, 0.6, -0.05)
DIMPLE_CM = (0.2, -0.05, 0.5)
STRETCH_CM = (1.1, 0.35, 0.25)  # tuned (0.8 read as mouthStretch 0.08-0.10)
MOUTH_SHIFT_CM = 1.15  # tuned (1.0 read as mouthLeft/Right 0.19/0.29)
JAW_SHIFT_CM = 0.9
JAW_FWD_CM = 0.8


def _fall(d: np.ndarray, r: float) -> np.ndarray:
    """Raised-cosine falloff: 1 at d = 0, 0 for d >= r (C1 smooth)."""
    t = np.clip(np.asarray(d, np.float64) / r, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def _smoothstep(x: np.ndarray, a: float, b: float) -> np.ndarray:
    t = np.clip((np.asarray(x, np.float64) - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class _Author:
    """Geometry helpers over the neutral mesh."""

    def __init__(self, base: RigBase):
        self.n = base.neutral.astype(np.float64)
        self.nv = len(self.n)
        self.mirror = base.mirror
        self.eyeballs = base.eyeball_centres
        self.triangles, self.material = base.triangles, base.triangle_material
        skin = base.triangles[base.triangle_material == MATERIAL_SKIN]
        e = np.concatenate([skin[:, [0, 1]], skin[:, [1, 2]], skin[:, [2, 0]]])
        e = np.unique(np.sort(e, axis=1), axis=0)  # each edge once (coo → csr would sum duplicates)
        w = np.linalg.norm(self.n[e[:, 0]] - self.n[e[:, 1]], axis=1)
        self.graph = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                                shape=(self.nv, self.nv)).tocsr()
        self._geo_cache: dict = {}

    # -- distances and fields ---------------------------------------------------------------------------
    def geo(self, anchors) -> np.ndarray:
        key = tuple(sorted(set(int(a) for a in anchors)))
        if key not in self._geo_cache:
            self._geo_cache[key] = dijkstra(self.graph, indices=list(key), min_only=True)
        return self._geo_cache[key]

    def side(self, a, b, soft: float = 0.25) -> np.ndarray:
        """Smooth indicator of being geodesically nearer the anchors a than b (1 on a, 0 on b)."""
        da, db = self.geo(a), self.geo(b)
        big = 1e3
        diff = np.nan_to_num(db, posinf=big) - np.nan_to_num(da, posinf=big)
        return _smoothstep(diff, -soft, soft)

    def interp(self, anchors, deltas, sigma: float = 0.35) -> np.ndarray:
        """(N, 3): anchor displacements spread to every vertex by a normalised Gaussian kernel (Euclidean)."""
        anchors = np.asarray(anchors, int)
        deltas = np.broadcast_to(np.asarray(deltas, np.float64), (len(anchors), 3))
        d2 = ((self.n[:, None, :] - self.n[anchors][None, :, :]) ** 2).sum(-1)
        k = np.exp(-0.5 * (d2 - d2.min(1, keepdims=True)) / sigma ** 2)
        return (k @ deltas) / k.sum(1, keepdims=True)

    def field(self, anchors, deltas, radius: float, sigma: float = 0.35, exact: bool = True) -> np.ndarray:
        """(N, 3): anchor displacements spread by a Gaussian kernel, times the geodesic falloff."""
        anchors = np.asarray(anchors, int)
        deltas = np.broadcast_to(np.asarray(deltas, np.float64), (len(anchors), 3))
        out = self.interp(anchors, deltas, sigma) * _fall(self.geo(anchors), radius)[:, None]
        if exact:
            out[anchors] = deltas
        out[468:] = 0.0
        return out

    def with_iris(self, d: np.ndarray, iris, ring_xy=None) -> np.ndarray:
        """d with the iris ring re-placed as an eye decal on the deformed mesh (``base.place_iris``): in front of
        the (moved) eye membrane where the opening shows it, behind the (moved) lids elsewhere. ring_xy (5, 2):
        where the ring goes in the image plane (default: where it is at rest)."""
        iris = list(iris)
        xy = self.n[iris, :2] if ring_xy is None else ring_xy
        out = d.copy()
        out[iris] = place_iris(self.n + d, self.triangles, self.material, xy) - self.n[iris]
        return out

    def mirrored(self, d: np.ndarray) -> np.ndarray:
        return d[self.mirror] * np.array([-1.0, 1.0, 1.0])

    def sym(self, d: np.ndarray) -> np.ndarray:
        return 0.5 * (d + self.mirrored(d))

    def nearest(self, p, among=None) -> int:
        idx = np.arange(468) if among is None else np.asarray(among)
        return int(idx[np.argmin(np.linalg.norm(self.n[idx] - np.asarray(p), axis=1))])

    # -- regions ----------------------------------------------------------------------------------------
    def jaw_weight(self) -> np.ndarray:
        """1 on the lower lip, chin and jaw line; 0 on the upper lip and everything above the mouth."""
        up = list(L.LIPS_INNER_UPPER[1:-1]) + list(L.LIPS_OUTER_UPPER[1:-1])
        low = list(L.LIPS_INNER_LOWER[1:-1]) + list(L.LIPS_OUTER_LOWER[1:-1])
        s = self.side(low, up, soft=0.9)
        y = self.n[:, 1]
        corner_y = self.n[[61, 291], 1].mean()
        # above the mouth-corner level only the lower-lip side counts, fading out over the cheeks
        vert = _smoothstep(y, corner_y - 2.2, corner_y + 0.3)
        w = s * vert
        w[list(low)] = 1.0
        w[list(up)] = 0.0
        w[468:] = 0.0
        return w

    def lip_profile(self, idx, floor: float = 0.3) -> np.ndarray:
        """(k,) 1 at the lip centre, `floor` at the corners (by |x|)."""
        x = np.abs(self.n[np.asarray(idx), 0]) / abs(self.n[291, 0])
        return floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * np.clip(x, 0, 1)))


def _flipped(neutral: np.ndarray, d: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    def normals(v):
        return np.cross(v[triangles[:, 1]] - v[triangles[:, 0]], v[triangles[:, 2]] - v[triangles[:, 0]])

    return (normals(neutral) * normals(neutral + d)).sum(1) < 0


def _unfold(d: np.ndarray, neutral: np.ndarray, triangles: np.ndarray, pinned=(), max_iter: int = 50) -> np.ndarray:
    """Mend a shape that turns skin triangles over at weight 1 (near-degenerate slivers, e.g. at the mouth
    corners, whose vertices move by different amounts): move each folded triangle's free vertices by the
    triangle's mean displacement — a translation cannot fold it — and repeat while a neighbour folds.
    ``pinned`` vertices (e.g. the lid contours of EyeBlink, which must land exactly) are left alone."""
    d = d.copy()
    pinned = set(np.asarray(pinned, np.int64).tolist())
    for _ in range(max_iter):
        bad = np.where(_flipped(neutral, d, triangles))[0]
        if not len(bad):
            break
        for tri in triangles[bad]:
            free = [v for v in tri if v not in pinned]
            if free:
                d[free] = d[tri].mean(0)
    return d


def _lid_profile(k: int = 9) -> np.ndarray:
    return np.sin(np.pi * np.arange(k) / (k - 1)) ** 0.7


def author_expressions(base: RigBase) -> tuple[np.ndarray, dict]:
    """The 46 expression deltas (46, 478, 3) float64 in cm at weight 1, ordered as ``EXPRESSION_NAMES``,
    and provenance notes (method, parameters, per-shape maximum displacement)."""
    A = _Author(base)
    n = A.n
    shapes: dict[str, np.ndarray] = {}
    zero = lambda: np.zeros((A.nv, 3))  # noqa: E731

    # ---- eyes (authored on the subject's left eye) -------------------------------------------------------
    up_c, lo_c = np.array(L.EYE_L_UPPER), np.array(L.EYE_L_LOWER)
    up_i, lo_i = up_c[1:-1], lo_c[1:-1]
    prof = _lid_profile()[:, None]
    upper_side = A.side(up_i, lo_i, soft=0.4)
    lower_side = A.side(lo_i, up_i, soft=0.4)
    eye_ctr = A.eyeballs[1]
    iris = np.array(L.IRIS_L)

    def lids(up_delta, lo_delta, r_up=1.2, r_lo=1.0):
        d = zero()
        if up_delta is not None:
            # spread from the interior of the contour (the fixed corners would otherwise pin the canthus skin)
            up_delta = np.broadcast_to(np.asarray(up_delta, np.float64), (len(up_c), 3))
            d += A.field(up_i, up_delta[1:-1], r_up) * upper_side[:, None]
            d[up_c] = up_delta
        if lo_delta is not None:
            d += A.field(lo_c, lo_delta, r_lo) * lower_side[:, None]
            d[lo_c] = lo_delta
        return d

    blink_up = n[lo_c] - n[up_c]  # the upper-lid contour lands on the lower-lid contour
    d = lids(blink_up, None, r_up=1.3)
    # the closing lid slides over the cornea: bulge the middle of the upper lid forward a little
    d += A.field(up_i, (0, 0, -0.12), 1.0, exact=False) * upper_side[:, None] * (1 - _fall(A.geo(up_c), 0.15))[:, None]
    # the iris ring moves straight back: just enough that the closing lid passes in front of it while the
    # membrane left below the lid still shows it (linear blending: visible until ~half-blink, hidden when closed)
    d[iris] = (0.0, 0.0, BLINK_IRIS_BACK_CM)
    shapes["EyeBlink_L"] = d

    d = lids(prof * np.array([0, 0.08, 0]), prof * np.array([0, -0.3, -0.03]), r_lo=1.3)
    d += A.field([A.nearest(n[374] + [0.2, 1.2, 0])], (0, -0.12, -0.05), 1.5, exact=False) * lower_side[:, None]
    d[lo_c] = (prof * np.array([0, -0.3, -0.03]))
    shapes["EyeSquint_L"] = A.with_iris(d, iris)

    shapes["EyeOpen_L"] = A.with_iris(lids(prof * np.array([0, -EYE_WIDE_CM, -0.03]), prof * np.array([0, 0.05, 0]),
                                           r_up=1.1), iris)

    def gaze(direction, up_lid, lo_lid, deg=GAZE_DEG):
        target = np.asarray(direction, np.float64)
        target /= np.linalg.norm(target)
        f = np.array([0.0, 0.0, -1.0])
        axis = np.cross(f, target)
        R = rotvec_to_matrix(axis / np.linalg.norm(axis) * np.radians(deg))
        d = lids(prof * np.asarray(up_lid), prof * np.asarray(lo_lid), r_up=1.0, r_lo=0.8)
        # the ring's image-plane target from the rotation about the eyeball centre; its depth follows the
        # membrane (a rigid rotation would sink it behind the membrane)
        target_xy = ((n[iris] - eye_ctr) @ R.T + eye_ctr)[:, :2]
        return A.with_iris(d, iris, target_xy)

    shapes["EyeDown_L"] = gaze((0, 1, 0), (0, 0.2, -0.02), (0, 0.08, 0), GAZE_VERTICAL_DEG)
    shapes["EyeUp_L"] = gaze((0, -1, 0), (0, -0.2, -0.02), (0, -0.04, 0), GAZE_VERTICAL_DEG)
    shapes["EyeIn_L"] = gaze((-1, 0, 0), (-0.04, 0, 0), (-0.03, 0, 0))  # towards the nose (−x for the left eye)
    shapes["EyeOut_L"] = gaze((1, 0, 0), (0.04, 0, 0), (0.03, 0, 0))  # towards the ear

    # ---- brows ----------------------------------------------------------------------------------------------
    brow_l = np.array(L.BROW_L_UPPER + L.BROW_L_LOWER)
    eye_contours = list(L.EYE_L_UPPER) + list(L.EYE_L_LOWER) + list(L.EYE_R_UPPER) + list(L.EYE_R_LOWER)
    protect_eyes = (1 - _fall(A.geo(eye_contours), 0.7))[:, None]

    def brow_field(anchors, deltas, r_above=3.2, r_below=1.6):
        anchors = np.asarray(anchors)
        # above the brow (forehead) the skin follows over a long distance, below it (lid fold) a short one
        k = np.exp(-0.5 * ((n[:, None, 0] - n[None, anchors, 0]) ** 2) / 0.6 ** 2)
        y_brow = (k @ n[anchors, 1]) / k.sum(1)
        below = _smoothstep(n[:, 1] - y_brow, -0.3, 0.4)
        dg = A.geo(anchors)
        w = _fall(dg, r_above) * (1 - below) + _fall(dg, r_below) * below
        f = A.interp(anchors, deltas, sigma=0.6)
        out = f * w[:, None] * protect_eyes
        out[468:] = 0
        return out

    bx = n[brow_l, 0]
    t_out = (bx - bx.min()) / np.ptp(bx)  # 0 at the inner end, 1 at the outer end
    shapes["BrowsU_L"] = brow_field(brow_l, (0.25 + 0.75 * _smoothstep(t_out, 0.0, 0.9))[:, None]
                                    * np.array([0, -BROW_RAISE_CM, 0]))
    shapes["BrowsD_L"] = brow_field(brow_l, (0.6 + 0.4 * (1 - t_out))[:, None]
                                    * np.array([-0.3, BROW_DOWN_CM, -0.1]) + np.array([0, 0, 0]), r_above=2.5)
    inner = (1.0 - 0.85 * _smoothstep(t_out, 0.1, 0.9))[:, None] * np.array([0, -BROW_INNER_RAISE_CM, 0])
    glabella = [A.nearest((0.0, n[brow_l, 1].mean(), n[brow_l, 2].min()), among=np.where(np.abs(n[:468, 0]) < 1e-6)[0])]
    anchors_c = np.r_[brow_l, glabella]
    deltas_c = np.r_[inner, [[0, -0.6 * BROW_INNER_RAISE_CM, 0]]]
    shapes["BrowsU_C"] = A.sym(brow_field(np.r_[anchors_c, A.mirror[brow_l]],
                                          np.r_[deltas_c, inner * np.array([-1, 1, 1])]))

    # ---- jaw --------------------------------------------------------------------------------------------------
    wj = A.jaw_weight()
    hinge = np.array([0.0, JAW_HINGE_YZ[0], JAW_HINGE_YZ[1]])
    R = rotvec_to_matrix(np.array([np.radians(JAW_OPEN_DEG), 0, 0]))
    rotated = (n - hinge) @ R.T + hinge
    shapes["JawOpen"] = A.sym((rotated - n) * wj[:, None])
    shapes["JawFwd"] = A.sym(wj[:, None] * np.array([0, 0, -JAW_FWD_CM]))
    shapes["JawLeft"] = wj[:, None] * np.array([JAW_SHIFT_CM, 0, 0])

    # ---- mouth ------------------------------------------------------------------------------------------------
    lips_all = sorted(set(L.LIPS_OUTER_UPPER + L.LIPS_OUTER_LOWER + L.LIPS_INNER_UPPER + L.LIPS_INNER_LOWER))
    lip_w = _fall(A.geo(lips_all), 2.2)
    shapes["MouthLeft"] = lip_w[:, None] * np.array([MOUTH_SHIFT_CM, 0, 0])

    corner = [291, 308]
    cheek = A.nearest(n[291] + np.array([1.3, -2.6, 0.0]))
    d = A.field(corner, SMILE_CM, 2.8)
    d += A.field([cheek], (0.05, -0.3, -0.3), 2.0, exact=False)
    shapes["MouthSmile_L"] = d
    shapes["MouthFrown_L"] = A.field(corner, FROWN_CM, 2.2)
    shapes["MouthDimple_L"] = A.field(corner, DIMPLE_CM, 1.8)
    shapes["LipsStretch_L"] = A.field(corner, STRETCH_CM, 2.6)

    iu, il = np.array(L.LIPS_INNER_UPPER), np.array(L.LIPS_INNER_LOWER)
    ou, ol = np.array(L.LIPS_OUTER_UPPER), np.array(L.LIPS_OUTER_LOWER)
    up_lip = list(iu[1:-1]) + list(ou[1:-1])
    lo_lip = list(il[1:-1]) + list(ol[1:-1])
    s_up = A.side(up_lip, lo_lip, soft=0.6)[:, None]
    s_lo = A.side(lo_lip, up_lip, soft=0.6)[:, None]

    def upper_lip(inner_d, outer_d, r=1.2, sigma=0.35):
        anchors = np.r_[iu[1:-1], ou[1:-1]]
        deltas = np.r_[A.lip_profile(iu[1:-1])[:, None] * np.asarray(inner_d),
                       A.lip_profile(ou[1:-1])[:, None] * np.asarray(outer_d)]
        return A.field(anchors, deltas, r, sigma=sigma) * s_up

    def lower_lip(inner_d, outer_d, r=1.2, sigma=0.35):
        anchors = np.r_[il[1:-1], ol[1:-1]]
        deltas = np.r_[A.lip_profile(il[1:-1])[:, None] * np.asarray(inner_d),
                       A.lip_profile(ol[1:-1])[:, None] * np.asarray(outer_d)]
        return A.field(anchors, deltas, r, sigma=sigma) * s_lo

    shapes["LipsUpperClose"] = A.sym(upper_lip((0, -0.05, 0.35), (0, 0.3, 0.35), r=1.0, sigma=0.5))
    shapes["LipsLowerClose"] = A.sym(lower_lip((0, 0.05, 0.3), (0, -0.4, 0.35), r=1.2, sigma=0.5))
    shapes["LipsUpperUp"] = A.sym(upper_lip((0, -0.4, -0.1), (0, -0.45, -0.1), r=1.6))
    shapes["LipsLowerDown"] = A.sym(lower_lip((0, 0.45, -0.1), (0, 0.4, -0.1), r=1.8))

    mouth_w = _fall(A.geo(lips_all), 1.6)[:, None]
    x_in = np.c_[-n[:, 0], np.zeros(A.nv), np.zeros(A.nv)]
    gap = n[il] - n[iu]  # (11, 3) inner lower minus inner upper, per column
    d = mouth_w * (np.array([0, 0, -0.6]) + 0.22 * x_in)
    d += upper_lip((0, -0.25, 0), (0, -0.1, -0.05), r=0.8) + lower_lip((0, 0.35, 0), (0, 0.15, -0.05), r=0.8)
    shapes["LipsFunnel"] = A.sym(d)
    d = mouth_w * (np.array([0, 0, -0.7]) + 0.3 * x_in)
    d += A.field(iu[1:-1], 0.45 * gap[1:-1], 0.9) * s_up + A.field(il[1:-1], -0.45 * gap[1:-1], 0.9) * s_lo
    d += upper_lip((0, 0, -0.05), (0, 0.1, -0.1), r=0.6) + lower_lip((0, 0, -0.05), (0, -0.15, -0.1), r=0.6)
    shapes["LipsPucker"] = A.sym(d)

    chin = [A.nearest((0.0, n[152, 1] - 1.5, -5.0), among=np.where(np.abs(n[:468, 0]) < 1e-6)[0])]
    d = lower_lip((0, -0.35, -0.05), (0, -0.35, -0.1), r=1.0)
    d += A.field(chin, (0, -0.3, -0.2), 2.2, exact=False) * s_lo
    shapes["ChinLowerRaise"] = A.sym(d)
    shapes["ChinUpperRaise"] = A.sym(upper_lip((0, -0.25, -0.1), (0, -0.25, -0.12), r=1.2))

    ala = 327  # subject's left nostril wing
    d = A.field([ala], (0.05, -0.45, 0.05), 1.6, exact=False)
    d += A.field([A.nearest(n[ala] + np.array([0.0, -1.8, 0.5]))], (0.0, -0.3, -0.05), 1.3, exact=False)
    shapes["Sneer"] = d + A.mirrored(d)  # both sides (the left field does not reach the right side)

    cheek_c = A.nearest(np.array([4.3, 2.2, n[425, 2]]))
    nrm = np.zeros_like(n)
    nrm[:468] = vertex_normals(n[:468], base.triangles[(base.triangles < 468).all(1)])
    lips_protect = 0.15 + 0.85 * (1 - _fall(A.geo(lips_all), 1.6))[:, None]
    out_dir = nrm + np.array([0.5, 0.0, 0.0])  # the (left) cheek swells forward and sideways
    out_dir /= np.maximum(np.linalg.norm(out_dir, axis=1, keepdims=True), 1e-9)
    # Euclidean falloff here: the canonical mesh is coarse over the cheek, where edge paths overestimate distance
    d = (out_dir * 0.7) * _fall(np.linalg.norm(n - n[cheek_c], axis=1), 3.0)[:, None] * lips_protect
    d[468:] = 0.0
    shapes["Puff"] = d + A.mirrored(d)

    under_eye = A.nearest(n[374] + np.array([0.3, 1.4, 0.0]))
    d = A.field([under_eye], (0, -0.35, -0.12), 1.8, exact=False) * (1 - upper_side)[:, None]
    d[up_c] = 0.0
    shapes["CheekSquint_L"] = d


    # ---- no skin triangle may turn over; then mirror the left shapes ----------------------------------------------
    skin = base.triangles[base.triangle_material == MATERIAL_SKIN]
    blink_pins = np.r_[up_c, lo_c, iris]
    for name in list(shapes):
        shapes[name] = _unfold(shapes[name], n, skin, blink_pins if name == "EyeBlink_L" else ())
        if not name.endswith("_L") and name not in ("JawLeft", "MouthLeft"):
            shapes[name] = A.sym(shapes[name])
    # ARKit's mouthClose: the lips stay sealed while the jaw is open, so LipsTogether closes the gap that the
    # neutral and the final JawOpen leave together (JawOpen + LipsTogether = closed lips). Like ARKit's target,
    # it is only meaningful on top of JawOpen (alone the lips press through each other), so it is mended there.
    jaw_gap = shapes["JawOpen"][il] - shapes["JawOpen"][iu]
    mid = 0.5 * (gap + jaw_gap)[1:-1]
    d = A.field(iu[1:-1], mid, 1.0) * s_up + A.field(il[1:-1], -mid, 1.0) * s_lo
    d[iu[1:-1]] = mid
    d[il[1:-1]] = -mid
    d = _unfold(d, n + shapes["JawOpen"], skin, pinned=np.r_[iu, il])  # mend it where it is used
    shapes["LipsTogether"] = A.sym(d)
    for name in list(shapes):
        if name.endswith("_L"):
            shapes[name[:-2] + "_R"] = A.mirrored(shapes[name])
    shapes["JawRight"] = A.mirrored(shapes["JawLeft"])
    shapes["MouthRight"] = A.mirrored(shapes["MouthLeft"])

    missing = [k for k in EXPRESSION_NAMES if k not in shapes]
    if missing:
        raise RuntimeError(f"expressions not authored: {missing}")
    deltas = np.stack([shapes[k] for k in EXPRESSION_NAMES]).astype(np.float64)
    if not np.all(np.isfinite(deltas)):
        raise RuntimeError("non-finite expression delta")
    mags = {k: round(float(np.linalg.norm(shapes[k], axis=1).max()), 3) for k in EXPRESSION_NAMES}
    notes = {
        "method": "procedural: geodesic (skin-only graph) raised-cosine falloffs around anatomical anchor vertices, "
                  "Gaussian-interpolated anchor displacements; JawOpen = rotation about a jaw hinge; gaze = iris decal "
                  "moved as by a rotation about the eyeball centre; _R shapes = mirror images of _L; centre shapes symmetrised",
        "units": "cm, model frame (x subject's left, y down, z away from the camera)",
        "jaw_open_deg": JAW_OPEN_DEG, "jaw_hinge_yz_cm": list(JAW_HINGE_YZ), "gaze_deg": GAZE_DEG,
        "max_displacement_cm": mags,
    }
    return deltas, notes
