"""SyntheticFaces and the texture library on data the project generates (procedural textures and backgrounds;
no ../shared needed)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecap_core.data.synth import SyntheticFaces
from facecap_core.data.texture import TextureLibrary, procedural_library, unwrap_photo
from facecap_core.render.raster import raster_into, rasterize_reference
from facecap_core.rig.geometry import project, quat_to_matrix
from facecap_core.rig.model import FaceRig


@pytest.fixture(scope="module")
def rig(rig_path):
    return FaceRig.load(rig_path)


@pytest.fixture(scope="module")
def gen(rig):
    return SyntheticFaces(rig, procedural_library(rig, 4, size=128), None, size=96)


def _projected_vertices(rig, s):
    p = s.params
    v = rig.mesh(p.identity, p.expression)
    src = project(v, quat_to_matrix(p.rotation), p.translation, p.focal, p.image_size)
    return src @ s.crop_affine[:, :2].T + s.crop_affine[:, 2]


def test_shapes_dtypes_ranges(gen):
    s = gen.sample(np.random.default_rng(0))
    assert s.image.shape == (96, 96, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (96, 96) and s.mask.dtype == np.uint8 and set(np.unique(s.mask)) <= {0, 1}
    assert s.landmarks.shape == (73, 2) and s.landmarks.dtype == np.float32 and np.isfinite(s.landmarks).all()
    assert s.visible.shape == (73,) and s.visible.dtype == bool
    assert s.params.expression.shape == (46,) and s.params.expression.min() >= 0 and s.params.expression.max() <= 1
    assert s.params.identity.shape == (50,) and abs(np.linalg.norm(s.params.rotation) - 1) < 1e-9
    assert s.crop_affine.shape == (2, 3) and s.source == "synthetic" and s.mask.sum() > 100


def test_landmarks_match_params_and_mask(rig, gen):
    rng = np.random.default_rng(1)
    for _ in range(12):
        s = gen.sample(rng)
        xy = _projected_vertices(rig, s)
        # Π_f then crop_affine reproduces the landmarks (jaw points at the recorded silhouette vertices)
        lmv = np.asarray(rig.landmark_vertices).copy()
        lmv[:17] = s.meta["jaw_vertices"]
        np.testing.assert_allclose(s.landmarks, xy[lmv], atol=1e-3)
        # visible landmarks lie on the mask (dilated by 2 px)
        dil = cv2.dilate(s.mask, np.ones((5, 5), np.uint8))
        for (x, y), v in zip(s.landmarks, s.visible):
            if v:
                assert dil[int(y), int(x)] == 1
        # the mask lies inside the convex hull of the projected face vertices
        pts = xy
        hull = np.zeros_like(s.mask)
        cv2.fillPoly(hull, [np.round(cv2.convexHull(pts.astype(np.float32))[:, 0] * 16).astype(np.int32)], 1,
                     shift=4)
        hull = cv2.dilate(hull, np.ones((3, 3), np.uint8))
        assert np.all(hull[s.mask > 0] == 1)


def test_frontal_mask_inside_face_oval(rig, gen):
    p = gen.sample_params(np.random.default_rng(4))
    p.update(angles_deg=np.zeros(3), expression=np.zeros(46))
    s = gen.render(p)
    oval = _projected_vertices(rig, s)[rig.face_oval]
    hull = np.zeros_like(s.mask)
    cv2.fillPoly(hull, [np.round(oval * 16).astype(np.int32)], 1, shift=4)
    hull = cv2.dilate(hull, np.ones((3, 3), np.uint8))
    assert np.all(hull[s.mask > 0] == 1)
    assert s.visible[:68].all() or s.mask.sum() < (hull > 0).sum()  # all visible unless hair covers some


def test_determinism(gen):
    a = gen.sample(np.random.default_rng(7))
    b = gen.sample(np.random.default_rng(7))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.visible, b.visible)
    assert np.array_equal(a.params.expression, b.params.expression)


def test_profile_hides_far_side(gen):
    rng = np.random.default_rng(3)
    for yaw in (90.0, -90.0):
        p = gen.sample_params(rng)
        p["angles_deg"] = np.array([yaw, 0.0, 0.0])
        p["hair_v"][:] = -1  # no fringe
        p["hair_side"][:] = (-1, 2)
        s = gen.render(p)
        hidden = ~s.visible[17:68]
        assert hidden.sum() >= 8, hidden.sum()
        # the far eye (subject's left for yaw > 0 turns the face to the image right … either way one eye is hidden)
        eyes_r, eyes_l = ~s.visible[36:42], ~s.visible[42:48]
        assert eyes_r.all() or eyes_l.all()


def test_raster_matches_reference(rig):
    rng = np.random.default_rng(0)
    v = rig.neutral @ np.array([[0.94, 0, 0.34], [0, 1, 0], [-0.34, 0, 0.94]]).T + np.array([0.5, 0.0, 45.0])
    xy = 120 * v[:, :2] / v[:, 2:3] + 48 + rng.normal(0, 0.01, (len(v), 2))
    z = v[:, 2]
    zb = np.full((96, 96), np.inf, np.float32)
    tid = -np.ones((96, 96), np.int32)
    bary = np.zeros((96, 96, 3), np.float32)
    raster_into(xy, z, rig.triangles.astype(np.int64), zb, tid, bary, cull=True)
    ref = rasterize_reference(xy, z, rig.triangles, np.zeros((len(v), 3)), (96, 96), cull_backfaces=True,
                              perspective=True)
    assert np.mean(tid == ref.tri_id) > 0.999
    same = (tid == ref.tri_id) & (tid >= 0)
    np.testing.assert_allclose(bary[same], ref.bary[same], atol=1e-4)
    np.testing.assert_allclose(zb[same], ref.depth[same], rtol=1e-5)


def test_unwrap_render_round_trip(rig):
    """Render a frontal face with a procedural texture under flat white light, unwrap the render through its own
    projected vertices, re-render with the unwrapped texture: the face region must match closely."""
    lib = procedural_library(rig, 1, seed=5, size=256)
    g = SyntheticFaces(rig, lib, None, size=256)
    p = g.sample_params(np.random.default_rng(2))
    p.update(angles_deg=np.array([0.0, 0.0, 0.0]), expression=np.zeros(46), margin=1.15, offset=np.zeros(2),
             ambient=np.ones(3), lights=[], specular=(0.0, 10.0), exposure=1.0)
    p["hair_v"][:] = -1
    p["hair_side"][:] = (-1, 2)
    s = g.render(p)
    xy = _projected_vertices(rig, s)
    cam_z = (rig.mesh(p["identity"], p["expression"]) @ quat_to_matrix(s.params.rotation).T)[:, 2]
    tex = unwrap_photo(rig, s.image, np.c_[xy, cam_z * s.crop_affine[0, 0] * s.params.focal / p["translation"][2]],
                       256)
    g2 = SyntheticFaces(rig, TextureLibrary(tex[None], ["x"], ["x"], lib.skin), None, size=256)
    s2 = g2.render(p)
    skin = cv2.erode(s.mask, np.ones((5, 5), np.uint8)) > 0
    err = s.image[skin].astype(float) - s2.image[skin].astype(float)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean(err ** 2))
    assert psnr > 28, psnr


# ------------------------------------------------------------------------------------------------------------------
# re-enactment (SyntheticFaces.reenact) on a "photo" the test renders itself: a frontal neutral synthetic face and
# its 478 projected vertices standing in for the teacher landmarks
# ------------------------------------------------------------------------------------------------------------------
_JAW_OPEN = 19  # index of JawOpen in rig.expression_names (checked in the fixture)


@pytest.fixture(scope="module")
def photo(rig, gen):
    """(image 160×160 uint8, landmarks478 (478, 3) px with z scaled like x, the FaceSample it came from)."""
    assert rig.expression_names[_JAW_OPEN] == "JawOpen"
    g = SyntheticFaces(rig, gen.textures, None, size=160)
    p = g.sample_params(np.random.default_rng(2))
    p.update(angles_deg=np.zeros(3), expression=np.zeros(46), margin=1.5, offset=np.zeros(2))
    p["hair_v"][:] = -1  # no fringe or strands: the photo's face is clean
    p["hair_side"][:] = (-1, 2)
    s = g.render(p)
    xy = _projected_vertices(rig, s)
    cam_z = (rig.mesh(s.params.identity, s.params.expression) @ quat_to_matrix(s.params.rotation).T)[:, 2]
    z = cam_z * s.crop_affine[0, 0] * s.params.focal / s.params.translation[2]
    return s.image, np.c_[xy, z], s


class _JawOpenFaces(SyntheticFaces):
    """Draws everything as usual but the expression: exactly JawOpen = ``jaw_open``."""

    jaw_open = 0.8

    def sample_params(self, rng):
        p = super().sample_params(rng)
        p["expression"] = np.zeros(len(self.rig.expression_names))
        p["expression"][_JAW_OPEN] = self.jaw_open
        return p


def _to_photo(s):
    """The sample's 73 landmarks in photo pixels (undo its crop)."""
    A = s.crop_affine
    return (s.landmarks - A[:, 2]) @ np.linalg.inv(A[:, :2]).T


def test_reenact_outputs_and_mask(rig, gen, photo):
    image, lm478, _ = photo
    s = gen.reenact(image, lm478, np.random.default_rng(3), identity_key="me", source="rendered")
    S = gen.size
    assert s.image.shape == (S, S, 3) and s.image.dtype == np.uint8
    assert s.mask.shape == (S, S) and s.mask.dtype == np.uint8 and set(np.unique(s.mask)) <= {0, 1}
    assert s.landmarks.shape == (73, 2) and np.isfinite(s.landmarks).all() and s.visible.shape == (73,)
    assert s.source == "synthetic-reenact" and s.identity == "me" and s.meta["texture"] == "rendered"
    assert s.params.image_size == (160, 160)  # params live in the photo's camera
    assert s.params.expression.shape == (46,) and 0 <= s.params.expression.min() <= s.params.expression.max() <= 1
    # Π_f then crop_affine reproduces the landmarks; visible ones lie on the mask; the mask is the face mesh
    xy = _projected_vertices(rig, s)
    lmv = np.asarray(rig.landmark_vertices).copy()
    lmv[:17] = s.meta["jaw_vertices"]
    np.testing.assert_allclose(s.landmarks, xy[lmv], atol=1e-3)
    assert s.visible[17:68].all()  # a near-frontal clean face: every inner landmark is seen
    dil = cv2.dilate(s.mask, np.ones((5, 5), np.uint8))
    assert all(dil[int(y), int(x)] for (x, y), v in zip(s.landmarks, s.visible) if v)
    oval, hull = np.zeros_like(s.mask), np.zeros_like(s.mask)
    cv2.fillPoly(oval, [np.round(xy[rig.face_oval] * 16).astype(np.int32)], 1, shift=4)
    cv2.fillPoly(hull, [np.round(cv2.convexHull(xy.astype(np.float32))[:, 0] * 16).astype(np.int32)], 1, shift=4)
    iou = np.sum((s.mask > 0) & (oval > 0)) / np.sum((s.mask > 0) | (oval > 0))
    assert iou > 0.9, iou  # the mask is the face oval (up to the silhouette of a slightly turned head)
    assert s.mask[cv2.dilate(hull, np.ones((3, 3), np.uint8)) == 0].sum() == 0
    # outside the mask the image is the photo itself (cropped); inside, the face wears the photo's own colours
    bg = cv2.warpAffine(image, s.crop_affine, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    np.testing.assert_array_equal(s.image[s.mask == 0], bg[s.mask == 0])
    skin = cv2.erode(s.mask, np.ones((5, 5), np.uint8)) > 0
    assert np.abs(s.image[skin].mean(0) - bg[skin].mean(0)).max() < 12


def test_reenact_expression_moves_the_expected_landmarks(rig, gen, photo):
    image, lm478, src = photo
    kw = dict(textures=gen.textures, size=gen.size)
    still, jaw = _JawOpenFaces(rig, **kw), _JawOpenFaces(rig, **kw)
    still.jaw_open = 0.0
    a = still.reenact(image, lm478, np.random.default_rng(5), max_pose_deg=0.0)
    b = jaw.reenact(image, lm478, np.random.default_rng(5), max_pose_deg=0.0)
    # neutral, no pose change: the re-rendered face sits where the photo's face is (the fit reproduces it)
    err = np.linalg.norm(_to_photo(a) - src.landmarks, axis=1)
    assert np.median(err) < 1.0 and err.max() < 3.0, err
    # JawOpen: lower lip and chin go down, eyes, brows and nose stay
    d = _to_photo(b) - src.landmarks
    lower_lip, chin, upper_face = [56, 57, 58, 65, 66, 67], [7, 8, 9], list(range(17, 48))
    assert d[lower_lip, 1].min() > 5.0, d[lower_lip]
    assert d[chin, 1].min() > 2.0, d[chin]
    assert np.abs(d[upper_face]).max() < 2.0, d[upper_face]
    # the open mouth is face (design §5): the pixel between the inner lips is in the mask
    mid = (b.landmarks[62] + b.landmarks[66]) / 2
    assert b.landmarks[66, 1] - b.landmarks[62, 1] > 4 and b.mask[int(mid[1]), int(mid[0])] == 1


def test_reenact_is_deterministic(gen, photo):
    image, lm478, _ = photo
    a = gen.reenact(image, lm478, np.random.default_rng(11))
    b = gen.reenact(image, lm478, np.random.default_rng(11))
    c = gen.reenact(image, lm478, np.random.default_rng(12))
    for k in ("image", "mask", "landmarks", "visible"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert np.array_equal(a.params.expression, b.params.expression)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.params.rotation, c.params.rotation)
