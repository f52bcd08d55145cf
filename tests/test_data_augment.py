"""Augmentations keep every label consistent with the pixels (no shared data needed: toy faces, procedural
occluders)."""
from __future__ import annotations

import numpy as np
import pytest

from facecap_core.data import augment as A
from facecap_core.data import occluders as O


@pytest.fixture
def face():
    return A.toy_face_sample(np.random.default_rng(3), 128, tone=(200, 160, 130))


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_toy_face_labels_consistent(face):
    assert face.image.dtype == np.uint8 and face.image.shape == (128, 128, 3)
    assert face.mask.dtype == np.uint8 and set(np.unique(face.mask)) <= {0, 1}
    ij = np.round(face.landmarks).astype(int)
    assert face.mask[ij[:, 1], ij[:, 0]].all()  # all 73 landmarks lie on the face
    assert face.visible.all()


def test_rectangle_occludes_mask_and_landmark(face):
    x, y = np.round(face.landmarks[30]).astype(int)  # nose tip
    layer = np.zeros((128, 128, 4), np.uint8)
    layer[y - 5:y + 6, x - 6:x + 7] = (255, 0, 0, 255)
    out = A.paste_occluder(face, layer, name="test-rect")
    assert not out.visible[30] and out.visible[0] and out.visible[36]
    assert (out.mask[y - 5:y + 6, x - 6:x + 7] == 0).all()
    assert (out.image[y - 5:y + 6, x - 6:x + 7] == (255, 0, 0)).all()
    assert out.meta["augment"][-1]["op"] == "test-rect" and "augment" not in face.meta  # input untouched
    # every hidden landmark sits on mask 0, every visible one on mask 1
    ij = np.round(out.landmarks).astype(int)
    m = out.mask[ij[:, 1], ij[:, 0]]
    assert (m[~out.visible] == 0).all() and (m[out.visible] == 1).all()
    # semi-transparent layer (alpha ≤ 0.5) is not an occluder
    layer[..., 3] = np.where(layer[..., 3] > 0, 120, 0)
    out2 = A.paste_occluder(face, layer)
    assert out2.visible.all() and (out2.mask == face.mask).all()


@pytest.mark.parametrize("make", [
    lambda r, s, lm: O.random_rectangle(r, s, lm),
    lambda r, s, lm: O.procedural_hand(r, s, lm, tone=np.array([0.8, 0.6, 0.5], np.float32)),
    lambda r, s, lm: O.procedural_hair(r, s, lm),
    lambda r, s, lm: O.procedural_glasses(r, s, lm),
    lambda r, s, lm: O.procedural_object(r, s, lm),
])
def test_procedural_occluders_update_labels(face, make):
    for seed in range(4):
        occ = make(_rng(seed), (128, 128), face.landmarks)
        assert occ.rgba.shape == (128, 128, 4) and occ.rgba.dtype == np.uint8
        out = A.paste_occluder(face, occ)
        covered = occ.rgba[..., 3] > 127
        assert (out.mask[covered] == 0).all()
        assert (out.mask[~covered] == face.mask[~covered]).all()
        ij = np.round(out.landmarks).astype(int)
        assert (out.visible == (face.visible & ~covered[ij[:, 1], ij[:, 0]])).all()


def test_hand_poses_cover_the_face(face):
    for pose in O.HAND_POSES:
        occ = O.procedural_hand(_rng(1), (128, 128), face.landmarks, pose=pose, p_motion_blur=0.0)
        a = occ.rgba[..., 3] > 127
        assert a.sum() > 300, pose  # a hand-sized blob
        assert (a & (face.mask > 0)).sum() > 0, pose  # over / touching the face
        # soft edges: there are fractional alpha values along the outline
        frac = ((occ.rgba[..., 3] > 10) & (occ.rgba[..., 3] < 245)).sum()
        assert frac > 20, pose


def test_held_out_hands_come_from_photos_training_never_saw(face):
    """Real hand cut-outs split by the photo they were cut from: every split's hands are disjoint, all together
    are the library's, two hands of one photo share a split, and a split's library pastes only its own."""
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[5:35, 5:25] = (200, 150, 120, 255)
    names = [f"ego_{k:02d}_hand{j}" for k in range(40) for j in (1, 2)] + [f"ego_{k:02d}_c0" for k in range(40)]
    lib = O.OccluderLibrary({"hand": [(rgba, n) for n in names], "object": [(rgba, "cup")]}, p_real=1.0)
    parts = {s: {n for _, n in lib.for_split(s).cutouts["hand"]} for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == len(names) and set().union(*parts.values()) == set(names)
    assert 0.5 < len(parts["train"]) / len(names) < 0.85 and parts["val"] and parts["test"]
    for k in range(40):
        assert len({O.cutout_split(f"ego_{k:02d}_{t}") for t in ("hand1", "hand2", "c0")}) == 1
    assert lib.for_split("test").counts()["object"] == 1 and lib.for_split(None) is lib
    test_lib = lib.for_split("test")
    for seed in range(6):
        out = A.add_hand(face, _rng(seed), test_lib)
        rec = out.meta["augment"][-1]
        assert rec["op"] == "real-hand" and rec["file"] in parts["test"]


def test_geometric_warp_keeps_labels_on_content(face):
    out = A.random_crop_jitter(face, _rng(5), max_shift=0.05, max_rotation_deg=20)
    rec = out.meta["augment"][-1]
    assert rec["op"] == "crop_jitter" and abs(rec["rotation_deg"]) > 0
    ij0 = np.round(face.landmarks).astype(int)
    ij1 = np.round(out.landmarks).astype(int)
    vis = out.visible
    assert vis.sum() > 60
    # mask value and colour at each landmark are preserved (colour loosely: interpolation)
    assert (out.mask[ij1[vis, 1], ij1[vis, 0]] == face.mask[ij0[vis, 1], ij0[vis, 0]]).all()
    c0 = face.image[ij0[vis, 1], ij0[vis, 0]].astype(int)
    c1 = out.image[ij1[vis, 1], ij1[vis, 0]].astype(int)
    assert np.median(np.abs(c0 - c1)) < 25
    # crop_affine composes: a source point maps through old affine then the warp == new affine
    M = np.array([[1.5, 0.1, -20.0], [-0.1, 1.5, -10.0]])
    face2 = face.copy(crop_affine=M)
    out2 = A.warp_sample(face2, np.array([[0.9, -0.2, 12.0], [0.2, 0.9, -3.0]]))
    p = np.array([40.0, 60.0, 1.0])
    via_old = np.array([[0.9, -0.2, 12.0], [0.2, 0.9, -3.0]]) @ np.append(M @ p, 1.0)
    assert np.allclose(out2.crop_affine @ p, via_old)
    # a landmark pushed out of the image becomes not visible
    out3 = A.warp_sample(face, np.array([[1.0, 0, 60.0], [0, 1.0, 0]]))
    gone = out3.landmarks[:, 0] >= 127.5
    assert gone.any() and not out3.visible[gone].any() and out3.visible[~gone].all()


def test_negative_sample():
    for seed in range(3):
        neg = A.make_negative(_rng(seed), None, None, (96, 80))
        assert neg.image.shape == (80, 96, 3) and neg.image.dtype == np.uint8
        assert neg.mask.shape == (80, 96) and neg.mask.sum() == 0
        assert np.isnan(neg.landmarks).all() and not neg.visible.any()
        assert neg.params is None and neg.is_negative and neg.source == "negative"
    # augmenting a negative keeps it negative
    out = A.augment_for_segmentation(A.make_negative(_rng(1)), _rng(2))
    assert out.mask.sum() == 0 and np.isnan(out.landmarks).all() and not out.visible.any()


def test_determinism_from_seed(face):
    a = A.augment_for_segmentation(face, _rng(11))
    b = A.augment_for_segmentation(face, _rng(11))
    c = A.augment_for_segmentation(face, _rng(12))
    assert (a.image == b.image).all() and (a.mask == b.mask).all() and (a.visible == b.visible).all()
    assert np.array_equal(a.landmarks, b.landmarks) and a.meta["augment"] == b.meta["augment"]
    assert not (a.image == c.image).all()
    n1 = A.make_negative(_rng(4))
    n2 = A.make_negative(_rng(4))
    assert (n1.image == n2.image).all()


def test_policy_labels_consistent_over_many_samples(face):
    rng = _rng(7)
    ops = set()
    for _ in range(40):
        s = A.augment_for_segmentation(face, rng)
        ops |= {r["op"] for r in s.meta["augment"]}
        assert s.image.dtype == np.uint8 and s.mask.dtype == np.uint8 and s.image.shape == (128, 128, 3)
        ij = np.round(s.landmarks).astype(int)
        vis = s.visible
        assert (s.mask[ij[vis, 1], ij[vis, 0]] == 1).all()  # toy face: every visible landmark is on the mask
    assert {"crop_jitter", "rectangle"} <= ops and ("hand" in ops)


def test_perturbations_clip_and_count(face):
    p = face.params
    p.expression[:] = 0.95
    pert = A.tracker_perturbation_set(p, _rng(0), n_expression=15, n_other=5,
                                      expression_pool=np.random.default_rng(1).uniform(-0.5, 1.5, (10, 46)))
    kinds = [k for k, _ in pert]
    assert len(pert) == 35 and kinds.count("expression") == 15
    assert all(kinds.count(k) == 5 for k in ("rotation", "translation", "identity", "focal"))
    for k, s in pert:
        assert s.expression.min() >= 0 and s.expression.max() <= 1
        assert np.isclose(np.linalg.norm(s.rotation), 1.0) and s.focal > 0
    for kind in ("rotation", "translation", "pose", "expression", "identity", "focal"):
        out = A.perturb_shape_params(p, _rng(2), 7, kind)
        assert len(out) == 7
        changed = [not (np.allclose(o.rotation, p.rotation) and np.allclose(o.translation, p.translation)
                        and np.allclose(o.expression, p.expression) and np.allclose(o.identity, p.identity)
                        and o.focal == p.focal) for o in out]
        assert all(changed), kind
    assert np.allclose(A.perturb_shape_params(p, _rng(2), 3, "focal")[0].expression, p.expression)
    with pytest.raises(ValueError):
        A.perturb_shape_params(p, _rng(0), 1, "nonsense")


def test_cutout_rectangle_within_face_box(face):
    box = A.face_box(face)
    bw, bh = box[2] - box[0], box[3] - box[1]
    for seed in range(30):
        out = A.cutout_rectangle(face, _rng(seed))
        x0, y0, x1, y1 = out.meta["augment"][-1]["box"]
        assert x1 - x0 <= 0.8 * bw + 1 and y1 - y0 <= 0.8 * bh + 1
        assert (out.mask[y0:y1, x0:x1] == 0).all()
        ij = np.round(out.landmarks).astype(int)
        inside = (ij[:, 0] >= x0) & (ij[:, 0] < x1) & (ij[:, 1] >= y0) & (ij[:, 1] < y1)
        assert not out.visible[inside].any() and out.visible[~inside].all()
        outside = np.ones_like(face.mask, bool)
        outside[y0:y1, x0:x1] = False
        assert (out.mask[outside] == face.mask[outside]).all()


@pytest.mark.parametrize("fn", [A.motion_blur, A.gaussian_noise, A.jpeg_reencode, A.color_jitter, A.defocus_blur])
def test_photometric_keeps_labels(face, fn):
    out = fn(face, _rng(3))
    assert out.image.dtype == np.uint8 and out.image.shape == face.image.shape
    assert not (out.image == face.image).all()
    assert (out.mask == face.mask).all() and np.array_equal(out.landmarks, face.landmarks)
    assert (out.visible == face.visible).all() and np.array_equal(out.crop_affine, face.crop_affine)
    assert out.meta["augment"][-1]["op"] in fn.__name__ or fn.__name__.startswith(out.meta["augment"][-1]["op"])


def test_face_skin_tone_and_palette(face):
    tone = O.face_skin_tone(face.image, face.mask)
    assert tone is not None and np.abs(tone.astype(int) - (200, 160, 130)).max() < 40
    pal = O.skin_tone_palette()
    lum = pal.astype(float).mean(1)
    assert lum.max() > 200 and lum.min() < 60  # light to dark skin


def test_empty_library_uses_procedural(face):
    lib = O.OccluderLibrary()
    for seed in range(6):
        occ = lib.other(_rng(seed), (128, 128), face.landmarks)
        assert occ.kind in ("hair", "glasses", "object")
        assert lib.hand(_rng(seed), (128, 128), face.landmarks).kind == "hand"
