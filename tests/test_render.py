"""Rasteriser: numba kernel vs numpy reference, z-buffer, back-face culling, shading."""
import numpy as np
import pytest

from facecap_core.render import rasterize, rasterize_reference, render_shaded, vertex_normals
from facecap_core.render.raster import raster_into

SIZE = (48, 40)  # width, height


def _two_triangles():
    # a near red triangle and a far green one overlapping it; both front-facing (negative pixel area)
    xy = np.array([[5, 5], [5, 35], [40, 20], [10, 2], [10, 38], [45, 20]], np.float64)
    depth = np.array([10.0, 10.0, 10.0, 20.0, 20.0, 20.0])
    tris = np.array([[0, 1, 2], [3, 4, 5]])
    colours = np.array([[1, 0, 0]] * 3 + [[0, 1, 0]] * 3, np.float64)
    return xy, depth, tris, colours


def _signed_area(xy, tri):
    (x0, y0), (x1, y1), (x2, y2) = xy[tri]
    return (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)


def test_front_faces_have_negative_area_in_fixture():
    xy, _, tris, _ = _two_triangles()
    assert all(_signed_area(xy, t) < 0 for t in tris)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_zbuffer_picks_nearer_triangle_regardless_of_order(order):
    xy, depth, tris, colours = _two_triangles()
    res = rasterize(xy, depth, tris[list(order)], colours, SIZE)
    near_id = order.index(0)
    # pixel (row 20, col 20) is inside both triangles
    assert res.tri_id[20, 20] == near_id
    np.testing.assert_allclose(res.image[20, 20], [1, 0, 0], atol=1e-6)
    assert res.depth[20, 20] == pytest.approx(10.0)
    # a pixel covered only by the far triangle shows it
    assert res.tri_id[20, 43] == order.index(1)
    np.testing.assert_allclose(res.image[20, 43], [0, 1, 0], atol=1e-6)
    # outside: background, infinite depth, id -1
    assert res.tri_id[0, 0] == -1 and np.isinf(res.depth[0, 0])


def test_backfaces_culled_only_when_asked():
    xy, depth, tris, colours = _two_triangles()
    flipped = tris[:, ::-1].copy()  # reversed winding: back faces
    culled = rasterize(xy, depth, flipped, colours, SIZE, cull_backfaces=True)
    assert (culled.tri_id == -1).all()
    kept = rasterize(xy, depth, flipped, colours, SIZE, cull_backfaces=False)
    assert (kept.tri_id >= 0).sum() > 300
    front = rasterize(xy, depth, tris, colours, SIZE, cull_backfaces=True)
    assert (front.tri_id >= 0).sum() == (kept.tri_id >= 0).sum()


def test_barycentrics_reproduce_vertex_positions():
    xy, depth, tris, colours = _two_triangles()
    res = rasterize(xy, np.ones(6), tris, colours, SIZE)
    ii, jj = np.nonzero(res.tri_id >= 0)
    b = res.bary[ii, jj]
    np.testing.assert_allclose(b.sum(1), 1.0, atol=1e-5)
    p = np.einsum("pk,pkd->pd", b, xy[tris[res.tri_id[ii, jj]]])
    np.testing.assert_allclose(p, np.c_[jj + 0.5, ii + 0.5], atol=1e-3)


def test_numba_matches_numpy_reference_on_random_mesh():
    rng = np.random.default_rng(0)
    n, t = 60, 80
    xy = rng.uniform(-5, 70, (n, 2))
    depth = rng.uniform(5, 30, n)
    tris = rng.integers(0, n, (t, 3))
    colours = rng.uniform(0, 1, (n, 3))
    bias = rng.uniform(0, 2, t)
    for cull in (False, True):
        a = rasterize(xy, depth, tris, colours, (64, 56), cull_backfaces=cull, depth_bias=bias)
        b = rasterize_reference(xy, depth, tris, colours, (64, 56), cull_backfaces=cull, depth_bias=bias)
        same = a.tri_id == b.tri_id
        assert same.mean() > 0.995  # ties on shared edges may differ in the last bit
        assert (a.tri_id >= 0).sum() > 500
        np.testing.assert_allclose(a.image[same], b.image[same], atol=1e-4)
        np.testing.assert_allclose(a.depth[same], b.depth[same], rtol=1e-5)
        np.testing.assert_allclose(a.bary[same], b.bary[same], atol=1e-4)


@pytest.mark.parametrize("cull", [False, True])
@pytest.mark.parametrize("perspective", [False, True])
def test_raster_into_is_rasterize_without_colour(cull, perspective):
    """The buffer-filling fast path (used by the synthetic renderer) runs the same kernel: identical ids,
    barycentrics and depths; and it accumulates into the caller's buffers (a second batch of triangles z-tests
    against the first)."""
    rng = np.random.default_rng(1)
    n, t = 60, 80
    xy = rng.uniform(-5, 70, (n, 2))
    depth = rng.uniform(5, 30, n)
    tris = rng.integers(0, n, (t, 3)).astype(np.int64)
    ref = rasterize(xy, depth, tris, np.zeros((n, 3)), (64, 56), cull_backfaces=cull, perspective=perspective)
    assert (ref.tri_id >= 0).sum() > 500

    def buffers():
        return np.full((56, 64), np.inf, np.float32), -np.ones((56, 64), np.int32), np.zeros((56, 64, 3), np.float32)

    zb, tid, bary = buffers()
    raster_into(xy, depth, tris, zb, tid, bary, cull=cull, perspective=perspective)
    np.testing.assert_array_equal(tid, ref.tri_id)
    np.testing.assert_array_equal(bary, ref.bary)
    np.testing.assert_array_equal(zb, ref.depth)
    zb, tid, bary = buffers()
    raster_into(xy, depth, tris[:40].copy(), zb, tid, bary, cull=cull, perspective=perspective)
    raster_into(xy, depth, tris[40:].copy(), zb, tid, bary, cull=cull, perspective=perspective)
    np.testing.assert_array_equal(zb, ref.depth)


def test_perspective_correct_depth_is_exact_for_a_plane():
    # a tilted plane z = 50 + 0.2 x in camera space, projected with f = 100: depth per pixel must be the plane's
    f, w, h = 100.0, 64, 64
    pts = np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]], np.float64)
    z = 50 + 0.2 * pts[:, 0]
    cam = np.c_[pts, z]
    xy = f * cam[:, :2] / z[:, None] + [w / 2, h / 2]
    tris = np.array([[0, 2, 1], [0, 3, 2]])
    assert all(_signed_area(xy, t) < 0 for t in tris)
    res = rasterize(xy, z, tris, np.ones((4, 3)), (w, h))
    ii, jj = np.nonzero(res.tri_id >= 0)
    # back-project the pixel ray and intersect the plane: z = 50 / (1 - 0.2 * (x_pix - w/2) / f)
    expect = 50 / (1 - 0.2 * (jj + 0.5 - w / 2) / f)
    np.testing.assert_allclose(res.depth[ii, jj], expect, rtol=1e-4)


def test_render_shaded_lights_front_and_culls_back():
    # a unit quad facing the camera at z = 30, then the same quad facing away
    v = np.array([[-5, -5, 30], [5, -5, 30], [5, 5, 30], [-5, 5, 30]], np.float64)
    front = np.array([[0, 2, 1], [0, 3, 2]])
    n = vertex_normals(v, front)
    np.testing.assert_allclose(n, [[0, 0, -1]] * 4, atol=1e-12)  # towards the camera
    res = render_shaded(v, front, 100.0, (64, 64), light_dir=(0, 0, -1), ambient=0.2)
    np.testing.assert_allclose(res.image[32, 32], [0.8, 0.8, 0.8], atol=1e-5)  # full Lambert, grey albedo
    side = render_shaded(v, front, 100.0, (64, 64), light_dir=(1, 0, 0), ambient=0.2)
    np.testing.assert_allclose(side.image[32, 32], [0.16, 0.16, 0.16], atol=1e-5)  # ambient only
    back = render_shaded(v, front[:, ::-1], 100.0, (64, 64))
    assert (back.tri_id == -1).all()
