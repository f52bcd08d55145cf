"""DDE tracker (`facecap_core.track`): features, ferns, cascade, model files, run-time tracking.

All data is generated here: shape-indexed features on drawn images, and a tiny cascade trained on synthetic renders
with procedural textures (no ../shared), which must track a synthetic sequence better than holding its start.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecap_core.rig.model import FaceRig
from facecap_core.track import features as Fe
from facecap_core.track.cascade import CascadeConfig, ModelFileError, Regressor, landmark_error, train_cascade
from facecap_core.track.ferns import fern_sum, fit_ferns
from facecap_core.track.shape import CROP_SIZE, ShapeModel


@pytest.fixture(scope="module")
def rig(rig_path):
    return FaceRig.load(rig_path)


@pytest.fixture(scope="module")
def shape_model(rig):
    return ShapeModel(rig)


def _mean_landmarks(rig):
    lm = rig.neutral[rig.landmark_vertices][:, :2]
    return (lm - lm.min(0)) / (lm.max(0) - lm.min(0)).max() * 90 + 35  # a face in a 160 crop


def _texture(size=CROP_SIZE, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (20, 20)).astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(img, (0, 0), 2.0)


# ------------------------------------------------------------------------------------------------------ features
def test_features_follow_a_similarity_transform(rig):
    lm = _mean_landmarks(rig)
    pts = Fe.make_feature_points(lm, 400, np.random.default_rng(0))
    img = _texture()
    ang, s, shift = np.radians(12), 1.15, np.array([-9.0, 6.0])
    c = np.array([80.0, 80.0])
    M = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    A = np.hstack([M, (c + shift - M @ c)[:, None]])
    img2 = cv2.warpAffine(img, A, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lm2 = lm @ M.T + A[:, 2]
    f1 = Fe.sample_features(img[None], None, np.zeros(1, int), lm[None], pts)[0]
    f2 = Fe.sample_features(img2[None], None, np.zeros(1, int), lm2[None], pts)[0]
    assert np.corrcoef(f1, f2)[0, 1] > 0.95  # same face points, wherever the face went
    # … and a different face position without moving the landmarks samples something else
    f3 = Fe.sample_features(img2[None], None, np.zeros(1, int), lm[None], pts)[0]
    assert np.corrcoef(f1, f3)[0, 1] < 0.8
    # the points' barycentric coordinates sum to one
    assert np.allclose(pts.bary.sum(1), 1, atol=1e-5)


def test_masked_points_are_never_sampled(rig):
    lm = _mean_landmarks(rig)
    pts = Fe.make_feature_points(lm, 400, np.random.default_rng(1))
    img = np.full((CROP_SIZE, CROP_SIZE), 50, np.uint8)
    mask = np.ones((CROP_SIZE, CROP_SIZE), np.uint8)
    mask[:, 80:] = 0  # the right half of the crop is covered
    rng = np.random.default_rng(2)
    img[:, 80:] = rng.integers(150, 255, (CROP_SIZE, CROP_SIZE - 80))  # … by something bright and noisy
    pos = pts.positions(lm[None])[0]
    covered = np.round(pos[:, 0]) >= 80
    assert 50 < covered.sum() < 350  # the test means something: many points land on the occluder
    f = Fe.sample_features(img[None], mask[None], np.zeros(1, int), lm[None], pts)[0]
    assert np.abs(f).max() < 1e-5  # only face pixels (all 50) were read: no contrast at all
    f_blind = Fe.sample_features(img[None], None, np.zeros(1, int), lm[None], pts)[0]
    assert np.abs(f_blind).max() > 0.5  # without the mask the occluder shows up
    # a fully covered face gives zeros rather than garbage
    f0 = Fe.sample_features(img[None], np.zeros_like(mask)[None], np.zeros(1, int), lm[None], pts)[0]
    assert np.all(f0 == 0)


# --------------------------------------------------------------------------------------------------------- ferns
def test_one_fern_reduces_the_residual_it_was_fit_to():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(4000, 30)).astype(np.float32)
    Y = np.stack([F[:, 3] - F[:, 7], 0.5 * (F[:, 10] - F[:, 2])], 1) + rng.normal(0, 0.1, (4000, 2))
    R = Y.copy()
    ferns = fit_ferns(F, R, n_ferns=1, depth=4, beta=10.0, rng=rng)
    assert np.mean(R ** 2) < 0.7 * np.mean(Y ** 2)
    assert {3, 7} & set(ferns.pairs[0].ravel().tolist())  # it picked informative features
    # the run-time sum reproduces what training subtracted
    acc = np.zeros((4000, 2), np.float32)
    fern_sum(F, ferns.pairs, ferns.thresholds, ferns.outputs, acc)
    assert np.allclose(acc, Y - R, atol=1e-4)


# ------------------------------------------------------------------------------------------- a tiny cascade
@pytest.fixture(scope="module")
def tiny_rows(rig):
    """Tracking rows of 160 synthetic renders (procedural textures), as the data engine writes them."""
    from facecap_core.data.augment import perturb_shape_params, warp_sample
    from facecap_core.data.build import Recipe, face_crop_affine, tracking_arrays
    from facecap_core.data.synth import SyntheticFaces
    from facecap_core.data.texture import procedural_library

    gen = SyntheticFaces(rig, procedural_library(rig, 4, size=128), None, size=CROP_SIZE)
    gen.cfg.yaw_max = 35.0
    rng = np.random.default_rng(0)
    recipe = Recipe(track_expression_perturbations=4, track_other_perturbations=1)
    samples, inits = [], []
    for _ in range(160):
        s = gen.sample(rng)
        s = warp_sample(s, face_crop_affine(s.landmarks, CROP_SIZE, 1.3), (CROP_SIZE, CROP_SIZE))
        row = []
        for kind, n in (("expression", 4), ("rotation", 1), ("translation", 1), ("identity", 1), ("focal", 1)):
            row += perturb_shape_params(s.params, rng, n, kind)
        samples.append(s)
        inits.append(row)
    rows = tracking_arrays(samples, ["perturb"] * len(samples), inits, recipe)
    rows.pop("init_perturbed")
    return rows, gen


@pytest.fixture(scope="module")
def tiny(tiny_rows, shape_model):
    """A 3-stage cascade trained on the tiny rows, its training set and the renderer."""
    from facecap_core.track.data import tracking_set

    rows, gen = tiny_rows
    data = tracking_set(rows, shape_model, np.random.default_rng(1))
    reg = train_cascade(shape_model, data, CascadeConfig(stages=3, ferns=40, points=200, beta=100.0),
                        log=lambda m: None)
    return reg, data, gen


def test_tiny_cascade_reduces_error_and_round_trips(tiny, shape_model, tmp_path):
    reg, data, _ = tiny
    gt = data.landmarks[data.image_index]
    e0 = landmark_error(shape_model.landmarks(data.shape, data.identity, data.camera), gt)
    out = reg.regress(shape_model, data.images, data.masks, data.image_index, data.identity, data.camera,
                      data.shape.copy())
    e1 = landmark_error(shape_model.landmarks(out, data.identity, data.camera), gt)
    assert np.median(e1) < 0.8 * np.median(e0)
    path = str(tmp_path / "t.npz")
    reg.save(path)
    back = Regressor.load(path)
    out2 = back.regress(shape_model, data.images, data.masks, data.image_index, data.identity, data.camera,
                        data.shape.copy())
    assert np.allclose(shape_model.landmarks(out2, data.identity, data.camera),
                       shape_model.landmarks(out, data.identity, data.camera), atol=1e-3)
    assert back.config == reg.config and len(back.stages) == 3


def test_runtime_focal_estimates_see_the_60_degree_guess_and_d_carries_the_difference(tiny_rows, shape_model):
    from facecap_core.rig.geometry import default_focal
    from facecap_core.track.data import InitPolicy, tracking_set

    rows, _ = tiny_rows
    # the same faces 8× further away through an 8× longer lens (the long focals the teacher's labels have): the
    # same image, with less perspective
    far = np.array([1.0, 1.0, 8.0], np.float32)
    rows = dict(rows, focal=rows["focal"] * 8, init_focal=rows["init_focal"] * 8,
                translation=rows["translation"] * far, init_translation=rows["init_translation"] * far)
    at_label = tracking_set(rows, shape_model, np.random.default_rng(1), 4)
    at_guess = tracking_set(rows, shape_model, np.random.default_rng(1), 4, InitPolicy(runtime_focal_fraction=1.0))
    # the same crops and estimates (the choice is drawn first); only the camera differs
    assert np.array_equal(at_label.image_index, at_guess.image_index)
    guessed = dict(rows, init_focal=np.stack([np.full(rows["init_focal"].shape[1], default_focal(s))
                                              for s in rows["image_size"]]))
    expect = tracking_set(guessed, shape_model, np.random.default_rng(1), 4)
    assert np.allclose(at_guess.camera.focal, expect.camera.focal)
    assert np.all(at_guess.camera.focal < 0.2 * at_label.camera.focal)
    # either way the target reaches the true landmarks: the rig's projection moves and D makes up the difference
    for data in (at_label, at_guess):
        lm = shape_model.landmarks(data.target, data.identity, data.camera)
        assert np.allclose(lm, data.landmarks[data.image_index], atol=1e-6)
    shift = np.linalg.norm(at_guess.target.displacement - at_label.target.displacement, axis=-1)
    assert np.median(shift) > 0.3  # crop px: the perspective of the two lenses differs
    # a fraction of 0 leaves the earlier recipe's random stream alone
    again = tracking_set(rows, shape_model, np.random.default_rng(1), 4, InitPolicy(runtime_focal_fraction=0.0))
    assert np.array_equal(again.target.displacement, at_label.target.displacement)


def test_without_a_focal_the_tracker_regresses_through_a_longer_lens_and_reports_the_guess(tiny, rig):
    from facecap_core.rig.geometry import default_focal, euler_to_matrix
    from facecap_core.track.tracker import GUESS_LENS_SCALE, FaceTracker

    reg = tiny[0]
    guessed = FaceTracker(reg, rig, image_size=(320, 240), keyframes=False)
    assert guessed.lens_scale == GUESS_LENS_SCALE > 1
    assert np.isclose(guessed.focal, default_focal((320, 240)))
    assert np.isclose(guessed.track_focal, GUESS_LENS_SCALE * guessed.focal)
    given = FaceTracker(reg, rig, image_size=(320, 240), focal=500.0, keyframes=False)
    assert given.lens_scale == 1.0 and given.track_focal == given.focal == 500.0

    R, t = euler_to_matrix(*np.radians([12.0, -6.0, 4.0])), np.array([3.0, -2.0, 60.0])
    guessed.start(R, t, np.zeros(46))
    _, R_in, t_in, _, _ = guessed.prev
    assert t_in[2] > 6 * t[2]  # the regression's camera sees the face from much further away
    assert np.allclose(guessed._reported(R_in, t_in), t)  # and the pose comes back as it went in

    def reference_pixel(t, f):  # where the face's reference point lands, and its image scale
        c = R @ guessed.model.reference + t
        return f * c[:2] / c[2], f / c[2]

    (p_in, s_in), (p_out, s_out) = reference_pixel(t_in, guessed.track_focal), reference_pixel(t, guessed.focal)
    assert np.allclose(p_in, p_out) and np.isclose(s_in, s_out)
    # the landmarks of the start state are those of the same face seen through the two lenses: close, not equal
    plain = FaceTracker(reg, rig, image_size=(320, 240), focal=guessed.focal, keyframes=False)
    plain.start(R, t, np.zeros(46))
    gap = np.linalg.norm(guessed.prev[0] - plain.prev[0], axis=1)
    assert 0 < np.median(gap) < 0.05 * np.ptp(plain.prev[0][:, 0])


def test_corrupt_or_missing_model_gives_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        Regressor.load(str(tmp_path / "nope.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ModelFileError, match="corrupt or not a facecap tracker"):
        Regressor.load(str(bad))
    other = tmp_path / "other.npz"
    np.savez(other, format=np.array("something-else"), version=np.array(1))
    with pytest.raises(ModelFileError, match="something-else"):
        Regressor.load(str(other))


def test_tiny_cascade_tracks_a_sequence_better_than_its_start(tiny, rig):
    from facecap_core.data.synth import SyntheticFaces
    from facecap_core.data.texture import procedural_library
    from facecap_core.track.sequences import synthetic_sequence
    from facecap_core.track.tracker import FaceTracker

    reg, _, _ = tiny
    gen = SyntheticFaces(rig, procedural_library(rig, 2, size=128, seed=5), None, size=256)
    seq = synthetic_sequence(gen, np.random.default_rng(3), n_frames=24, key_every=12, yaw_amplitude=20)
    tracker = FaceTracker(reg, rig, image_size=seq.image_size, focal=seq.focal, keyframes=False, verify_every=0)
    tracker.start(seq.rotation[0], seq.translation[0], seq.expression[0], identity=seq.identity)
    start = tracker.prev[0]
    tracked, held = [], []
    for i in range(len(seq.frames)):
        r = tracker.track(seq.frames[i], seq.masks[i] * 255)
        assert r.tracked, r.reason
        tracked.append(landmark_error(r.landmarks[None], seq.landmarks[i][None])[0])
        held.append(landmark_error(start[None], seq.landmarks[i][None])[0])
    assert np.mean(tracked[8:]) < 0.6 * np.mean(held[8:])
    assert np.median(tracked) < 8.0
    # the averaged-starts option tracks the same sequence as well
    ens = FaceTracker(reg, rig, image_size=seq.image_size, focal=seq.focal, keyframes=False, verify_every=0,
                      ensemble=3)
    ens.start(seq.rotation[0], seq.translation[0], seq.expression[0], identity=seq.identity)
    err = [landmark_error(ens.track(f, m * 255).landmarks[None], lm[None])[0]
           for f, m, lm in zip(seq.frames, seq.masks, seq.landmarks)]
    assert np.median(err) < 1.25 * np.median(tracked) + 0.5


def test_keyframe_thread_solves_focal_without_blocking(rig, shape_model):
    import time

    from facecap_core.rig.geometry import euler_to_matrix
    from facecap_core.track.shape import CropCamera
    from facecap_core.track.tracker import KeyframeSolver

    rng = np.random.default_rng(0)
    size, f_true = (640, 480), 700.0
    u_true = rng.normal(0, 0.7, 50) * (np.abs(rig.identity_basis).sum((1, 2)) > 0)
    # noise-free landmarks: weak priors (the tracker's defaults are firm, for noisy tracked landmarks)
    solver = KeyframeSolver(rig, size, f0=900.0, min_frames=4, focal_prior=0.0, identity_prior=0.01)
    try:
        offered = 0
        for k in range(10):
            R = euler_to_matrix(*np.radians(rng.uniform([-35, -15, -10], [35, 15, 10])))
            t = np.array([rng.uniform(-5, 5), rng.uniform(-3, 3), rng.uniform(45, 70)])
            x = np.clip(rng.normal(0, 0.3, 46), 0, 1)
            cam = CropCamera(np.array([f_true]), np.array([[320.0, 240.0]]), np.eye(3)[None])
            shape = shape_model.from_params(R[None], t[None], x[None], cam)
            lm = shape_model.landmarks(shape, u_true[None], cam)[0]
            t0 = time.perf_counter()
            offered += solver.offer(lm, R, t, x)
            assert time.perf_counter() - t0 < 0.05  # the tracking thread never waits for Eq. 3
        assert offered >= 4
        deadline = time.time() + 30
        got = None
        while time.time() < deadline and got is None:
            got = solver.latest()
            time.sleep(0.05)
        assert got is not None, "the key-frame thread published nothing"
        while solver._dirty and time.time() < deadline:  # let it finish the last batch
            time.sleep(0.05)
        f = solver.focal
        assert abs(f / f_true - 1) < abs(900.0 / f_true - 1) / 2  # much closer than where it started
    finally:
        solver.close()


def test_jaw_landmarks_slide_to_the_silhouette_like_the_fit(rig, shape_model):
    from facecap_core.rig.fit import silhouette_vertices
    from facecap_core.rig.geometry import euler_to_matrix, project
    from facecap_core.track.shape import CropCamera

    f, size = 500.0, (320, 320)
    cam = CropCamera(np.array([f]), np.array([[160.0, 160.0]]), np.eye(3)[None])
    moved = 0
    for yaw in (0.0, 25.0, 50.0, -50.0):
        R = euler_to_matrix(np.radians(yaw), 0.0, 0.0)
        t = np.array([0.0, 0.0, 60.0])
        shape = shape_model.from_params(R[None], t[None], np.zeros((1, 46)), cam)
        lm = shape_model.rig_landmarks(shape, np.zeros((1, 50)), cam)[0]
        v = silhouette_vertices(rig, R, t, f, size)
        expected = project(rig.neutral[v], R, t, f, size)
        assert np.allclose(lm[:17], expected, atol=1e-6)
        moved += int(np.sum(v != rig.landmark_vertices[:17]))
    assert moved > 0  # on turned heads some jaw landmarks left their frontal vertex


def test_detect_near_finds_the_face_around_its_box_only(rig):
    """The tracker's cheap periodic check: a scan around the expected box finds the rendered face (like a
    full-frame detection does), and finds nothing around an empty part of the frame."""
    from facecap_core.data.synth import SyntheticFaces
    from facecap_core.data.texture import procedural_library
    from facecap_core.detect import FaceDetector
    from facecap_core.track.sequences import synthetic_sequence

    gen = SyntheticFaces(rig, procedural_library(rig, 1, size=128, seed=3), None, size=320)
    seq = synthetic_sequence(gen, np.random.default_rng(8), n_frames=1, still=True, face_fraction=0.35)
    det = FaceDetector()
    full = det.detect(seq.frames[0])
    if not len(full):
        pytest.skip("the cascade finds no face in this render")
    near = det.detect_near(seq.frames[0], full[0])
    assert len(near) and np.abs(near[0] - full[0]).max() < 0.25 * full[0][2]
    x, y, w, h = full[0]
    away = (x + 2.5 * w if x + w / 2 < 160 else x - 2.5 * w, y, w, h)
    assert len(det.detect_near(seq.frames[0], away)) == 0


def test_smoothing_strength_slows_the_response_to_a_step():
    from facecap_core.track.smoothing import PoseSmoother

    def after_step(strength, frames=6):
        sm = PoseSmoother(strength=strength)
        lm, R, t = np.zeros((73, 2)), np.eye(3), np.zeros(3)
        sm(1 / 30, lm, np.zeros(46), R, t)
        for _ in range(frames):
            _, x, _, _ = sm(1 / 30, lm, np.full(46, 0.8), R, t)
        return x[0]

    soft, default, firm = after_step(2.0), after_step(1.0), after_step(0.5)
    assert 0 < soft < default < firm < 0.8  # all on their way to the new value, the stronger ones slower
    with pytest.raises(ValueError, match="strength"):
        PoseSmoother(strength=0)
