"""Behavioural tests of the Eq. 4 landmark fit and the Eq. 3 key-frame identity/focal solve (facecap_core.rig.fit).

Runs on the real rig (rigs/fw46.npz) when it exists, otherwise on a stand-in built from the base arrays with smooth
random expression deltas and identity modes (so these tests never silently skip).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from facecap_core.rig import fit as F
from facecap_core.rig.geometry import default_focal, euler_to_matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (640, 480)
C = np.array([320.0, 240.0])


def _standin_rig(seed=0):
    from facecap_core.rig.build.base import build_base
    from facecap_core.rig.model import N_IDENTITY, FaceRig
    from facecap_core.rig.topology import load_canonical_mesh

    rng = np.random.default_rng(seed)
    base = build_base(load_canonical_mesh())
    V = base.neutral
    n = len(V)
    deltas = np.zeros((46, n, 3))
    for k in range(46):  # smooth local bumps of ~1 cm centred on landmarks
        centre = V[base.landmark_vertices[rng.integers(0, 73)]]
        wgt = np.exp(-np.sum((V - centre) ** 2, 1) / (2 * rng.uniform(2.0, 4.0) ** 2))
        d = rng.normal(size=3)
        deltas[k] = wgt[:, None] * d / np.linalg.norm(d) * rng.uniform(0.6, 1.2)
    feats = np.stack([np.ones(n), V[:, 0], V[:, 1], V[:, 2], V[:, 0] ** 2, V[:, 1] ** 2, V[:, 0] * V[:, 1],
                      np.sin(V[:, 0] / 3), np.cos(V[:, 1] / 3)], 1)
    feats /= np.abs(feats).max(0)
    ident = np.stack([feats @ rng.normal(size=(feats.shape[1], 3)) * 0.4 / np.sqrt(1 + k / 5)
                      for k in range(N_IDENTITY)])
    return FaceRig(neutral=V, identity_basis=ident, expression_deltas=deltas, triangles=base.triangles,
                   triangle_material=base.triangle_material, uv=base.uv, landmark_vertices=base.landmark_vertices,
                   jaw_contour_candidates=base.jaw_contour_candidates, face_oval=base.face_oval, mirror=base.mirror,
                   eyeball_centres=base.eyeball_centres, identity_variance=np.ones(N_IDENTITY) / N_IDENTITY)


@pytest.fixture(scope="module")
def fr():
    path = os.path.join(ROOT, "rigs", "fw46.npz")
    if os.path.exists(path):
        from facecap_core.rig.model import load_rig
        return F.FitRig(load_rig(path))
    return F.FitRig(_standin_rig())


def _sample(fr, rng, landmark_set="73", yaw=None, noise=0.0):
    yaw = np.radians(rng.uniform(-30, 30)) if yaw is None else np.radians(yaw)
    R = euler_to_matrix(yaw, np.radians(rng.uniform(-20, 20)), np.radians(rng.uniform(-10, 10)))
    t = np.array([rng.uniform(-4, 4), rng.uniform(-4, 4), rng.uniform(40, 80)])
    x = np.zeros(46)
    k = rng.choice(46, 8, replace=False)
    x[k] = rng.uniform(0, 1, 8)
    u = rng.normal(0, 0.5, 50)
    f = default_focal(SIZE) * rng.uniform(0.85, 1.15)
    verts, slides = fr.vertices_for(landmark_set)
    if slides:
        verts[:17] = F.silhouette_vertices(fr, R, t, f, SIZE, x, u)
    p, _ = F._project(fr.points(verts, x, u), R, t, f, C)
    return dict(R=R, t=t, x=x, u=u, f=f, p=p + rng.normal(0, noise, p.shape) if noise else p)


def _angle(Ra, Rb):
    return np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1)))


def test_round_trip_noise_free_known_identity_focal(fr):
    rng = np.random.default_rng(1)
    for _ in range(4):
        s = _sample(fr, rng)
        r = F.fit_landmarks(s["p"], SIZE, fr, u=s["u"], f=s["f"], fix_identity=True, fix_focal=True)
        assert r.rms < 0.5
        assert np.abs(r.expression - s["x"]).mean() < 0.05
        assert _angle(r.rotation, s["R"]) < 0.5
        assert np.all((r.expression >= 0) & (r.expression <= 1))
        assert r.quaternion.shape == (4,) and abs(np.linalg.norm(r.quaternion) - 1) < 1e-9


def test_round_trip_noise_free_free_identity_focal(fr):
    rng = np.random.default_rng(2)
    for _ in range(3):
        s = _sample(fr, rng)
        r = F.fit_landmarks(s["p"], SIZE, fr)
        assert r.rms < 0.5
        assert 0.5 < r.focal / s["f"] < 2.0


def test_one_pixel_noise_is_sane(fr):
    rng = np.random.default_rng(3)
    maes, angs = [], []
    for _ in range(4):
        s = _sample(fr, rng, noise=1.0)
        r = F.fit_landmarks(s["p"], SIZE, fr, u=s["u"], f=s["f"], fix_identity=True, fix_focal=True)
        maes.append(np.abs(r.expression - s["x"]).mean())
        angs.append(_angle(r.rotation, s["R"]))
        assert r.rms < 2.0
    assert max(angs) < 3.0
    assert np.mean(maes) < 0.15


@pytest.mark.parametrize("landmark_set", ["68", "478"])
def test_other_landmark_sets(fr, landmark_set):
    rng = np.random.default_rng(4)
    s = _sample(fr, rng, landmark_set)
    r = F.fit_landmarks(s["p"], SIZE, fr, landmark_set=landmark_set, u=s["u"], f=s["f"], fix_identity=True,
                        fix_focal=True)
    assert r.residuals.shape == s["p"].shape
    assert r.rms < 0.5
    assert np.abs(r.expression - s["x"]).mean() < 0.08


def test_jaw_slides_on_turned_head(fr):
    t = np.array([0.0, 0.0, 60.0])
    f = default_focal(SIZE)
    frontal = F.silhouette_vertices(fr, np.eye(3), t, f, SIZE)
    # frontal: the chin keeps its face-oval vertices (at the temples a cheek vertex may be the true outline)
    assert np.array_equal(frontal[4:13], fr.jaw_candidates[4:13, 0])
    assert all(v in fr.jaw_candidates[j] for j, v in enumerate(frontal))
    turned = F.silhouette_vertices(fr, euler_to_matrix(np.radians(60), 0, 0), t, f, SIZE)
    assert np.sum(turned != frontal) >= 3
    # and the fit of a turned head uses the slid vertices
    rng = np.random.default_rng(5)
    s = _sample(fr, rng, yaw=45)
    r = F.fit_landmarks(s["p"], SIZE, fr, u=s["u"], f=s["f"], fix_identity=True, fix_focal=True)
    assert np.any(r.vertices[:17] != frontal)
    assert r.rms < 0.5


def _keyframes(fr, rng, n, u_true, f_true, f0, warm_start=False):
    """n key-frames of a face with identity u_true seen with focal f_true, each fitted with the mean face and
    focal f0 (identity and focal fixed, as the tracker would): yields (landmarks, fit result, true x)."""
    for _ in range(n):
        s = _sample(fr, rng)
        verts, _ = fr.vertices_for("73")
        verts[:17] = F.silhouette_vertices(fr, s["R"], s["t"], f_true, SIZE, s["x"], u_true)
        p, _ = F._project(fr.points(verts, s["x"], u_true), s["R"], s["t"], f_true, C)
        r = F.fit_landmarks(p, SIZE, fr, u=np.zeros(50), f=f0, fix_identity=True, fix_focal=True,
                            x0=s["x"] if warm_start else None)
        yield p, r, s["x"]


def test_eq3_keyframes_recover_focal_and_reduce_identity_error(fr):
    rng = np.random.default_rng(6)
    u_true = rng.normal(0, 0.5, 50)
    f0 = default_focal(SIZE)
    f_true = f0 * 1.15
    # the tracker's estimates for each key-frame: pose fitted with the mean face and the default focal
    kfs = [(p, r.rotation, r.translation, x)
           for p, r, x in _keyframes(fr, rng, 10, u_true, f_true, f0, warm_start=True)]
    res = F.solve_identity_focal(kfs, SIZE, fr, np.zeros(50), f0, refine_expression=False, iterations=30)
    u, f, rms = res
    assert abs(f / f_true - 1) < 0.08
    mesh_err = lambda uu: np.abs(fr.rig.identity_mesh(uu) - fr.rig.identity_mesh(u_true)).mean()  # noqa: E731
    assert mesh_err(u) < mesh_err(None)
    assert rms < 2.0


@pytest.mark.parametrize("mutate, message", [
    (lambda p: np.where(np.arange(73)[:, None] == 5, np.nan, p), "NaN"),
    (lambda p: np.where(np.arange(73)[:, None] == 5, np.inf, p), "NaN/inf"),
    (lambda p: p[:70], "needs 73"),
    (lambda p: np.full_like(p, 100.0), "identical"),
    (lambda p: np.stack([np.linspace(0, 100, 73), np.linspace(0, 50, 73)], 1), "collinear"),
    (lambda p: np.stack([np.linspace(0, 100, 73), np.full(73, 7.0)], 1), "zero-area"),
    (lambda p: p[:, :1], "shape"),
])
def test_bad_points_rejected(fr, mutate, message):
    s = _sample(fr, np.random.default_rng(7))
    with pytest.raises(ValueError, match=message):
        F.fit_landmarks(mutate(s["p"]), SIZE, fr)


def test_bad_image_size_and_weights_rejected(fr):
    s = _sample(fr, np.random.default_rng(8))
    for size in [(0, 480), (-640, 480), (640, np.nan)]:
        with pytest.raises(ValueError, match="image_size"):
            F.fit_landmarks(s["p"], size, fr)
    w = np.zeros(73)
    w[:4] = 1
    with pytest.raises(ValueError, match="at least 6"):
        F.fit_landmarks(s["p"], SIZE, fr, weights=w)
    with pytest.raises(ValueError, match="landmark_set"):
        F.fit_landmarks(s["p"], SIZE, fr, landmark_set="70")
    with pytest.raises(ValueError, match="key-frame"):
        F.solve_identity_focal([], SIZE, fr)
    # a diverged identity/focal solve must not reach OpenCV (whose PnP asserts on such input)
    with pytest.raises(ValueError, match="focal"):
        F.fit_landmarks(s["p"], SIZE, fr, f=np.nan, fix_focal=True)
    with pytest.raises(ValueError, match="NaN/inf"):
        F.fit_landmarks(s["p"], SIZE, fr, u=np.full(50, np.nan), fix_identity=True)


def test_zero_weight_points_are_ignored(fr):
    rng = np.random.default_rng(9)
    s = _sample(fr, rng)
    p = s["p"].copy()
    p[[30, 48, 54]] += 40.0  # three grossly wrong landmarks
    w = np.ones(73)
    w[[30, 48, 54]] = 0.0
    r = F.fit_landmarks(p, SIZE, fr, weights=w, u=s["u"], f=s["f"], fix_identity=True, fix_focal=True)
    assert r.rms < 0.5  # over the points with positive weight
    assert np.abs(r.expression - s["x"]).mean() < 0.08


def test_eq3_expression_refinement_lowers_residual(fr):
    rng = np.random.default_rng(10)
    u_true = rng.normal(0, 0.5, 50)
    f0 = default_focal(SIZE)
    kfs = [(p, r.rotation, r.translation, r.expression) for p, r, _ in _keyframes(fr, rng, 4, u_true, f0, f0)]
    start = np.sqrt(np.mean([F.fit_landmarks(k[0], SIZE, fr, u=np.zeros(50), f=f0, fix_identity=True,
                                             fix_focal=True).rms ** 2 for k in kfs]))
    res = F.solve_identity_focal(kfs, SIZE, fr, np.zeros(50), f0, refine_expression=True)
    assert res.rms < start
    assert res.expressions.shape == (4, 46) and np.all((res.expressions >= 0) & (res.expressions <= 1))
