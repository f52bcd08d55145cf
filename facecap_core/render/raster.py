"""A small z-buffered triangle rasteriser (numba kernel + a pure-numpy reference) and a Lambert shader.

Conventions (design §3): pixel coordinates x right, y down; pixel (row i, column j) has its centre at
(x, y) = (j + 0.5, i + 0.5), so the principal point at the image centre is (W / 2, H / 2), exactly what
``facecap_core.rig.geometry.project`` uses. ``image_size`` is (width, height) everywhere, as in ``project``.

Front-facing triangles have NEGATIVE signed area in pixel coordinates (y down) — the rig's winding seen by a
camera at the origin looking along +z. Back-face culling drops triangles with signed area >= 0.

Attributes are interpolated perspective-correctly (barycentrics weighted by 1/z) when every depth is positive,
and linearly in screen space otherwise (e.g. orthographic depth). The per-pixel barycentrics and triangle ids are
returned so later stages (UV texture sampling) can interpolate anything else per pixel.

One numba kernel does all the rasterising: :func:`rasterize` (allocates, colours, depth bias) and
:func:`raster_into` (the allocation-free fast path into caller-owned buffers, used by ``data.synth``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["rasterize", "raster_into", "rasterize_reference", "vertex_normals", "render_shaded", "RasterResult"]


class RasterResult:
    """Output buffers of :func:`rasterize`.

    image: (H, W, 3) float32 colour (background where nothing was drawn).
    depth: (H, W) float32 depth of the visible surface (same units as the input depth), +inf where empty.
    tri_id: (H, W) int32 index of the visible triangle, -1 where empty.
    bary: (H, W, 3) float32 barycentric weights of the visible triangle's 3 corners (perspective-corrected
        when ``perspective`` was used), 0 where empty.
    """

    __slots__ = ("image", "depth", "tri_id", "bary")

    def __init__(self, image, depth, tri_id, bary):
        self.image, self.depth, self.tri_id, self.bary = image, depth, tri_id, bary

    def __iter__(self):  # allows ``image, depth, tri_id, bary = rasterize(...)``
        return iter((self.image, self.depth, self.tri_id, self.bary))


def _corner_colours(colours, triangles: np.ndarray) -> np.ndarray:
    """Per-vertex (N, 3) or per-corner (T, 3, 3) or per-triangle (T, 3) colours → (T, 3, 3) float32."""
    c = np.asarray(colours, np.float32)
    t = len(triangles)
    if c.ndim == 3:
        if c.shape != (t, 3, 3):
            raise ValueError(f"corner colours must be (T, 3, 3), got {c.shape}")
        return np.ascontiguousarray(c)
    if c.ndim == 2 and c.shape[1] == 3:
        return np.ascontiguousarray(c[triangles])
    raise ValueError(f"colours must be (N, 3) per vertex or (T, 3, 3) per corner, got {c.shape}")


def _prepare(xy, depth, triangles, colours, image_size, depth_bias, perspective):
    xy = np.ascontiguousarray(xy, np.float64)
    depth = np.ascontiguousarray(depth, np.float64)
    tris = np.ascontiguousarray(triangles, np.int64)
    if xy.ndim != 2 or xy.shape[1] != 2 or depth.shape != (len(xy),):
        raise ValueError(f"xy must be (N, 2) and depth (N,), got {xy.shape} and {depth.shape}")
    if tris.ndim != 2 or tris.shape[1] != 3:
        raise ValueError(f"triangles must be (T, 3), got {tris.shape}")
    cc = _corner_colours(colours, tris)
    bias = np.zeros(len(tris)) if depth_bias is None else np.ascontiguousarray(
        np.broadcast_to(np.asarray(depth_bias, np.float64), (len(tris),)))
    w, h = int(image_size[0]), int(image_size[1])
    if perspective is None:
        perspective = bool(len(depth) == 0 or np.all(depth > 0))
    return xy, depth, tris, cc, bias, w, h, perspective


@njit(cache=True, nogil=True)
def _raster_kernel(xy, depth, tris, cull, linear, zbuf, tid, bary, bias, cc, image):
    """The project's one triangle rasteriser (:func:`rasterize` and :func:`raster_into` both call it).

    Writes into preallocated buffers: zbuf (H, W) float32 (+inf = empty), tid (H, W) int32 (-1 = empty), bary
    (H, W, 3) float32. The optional parts are switched off by passing None — an argument *type*, so numba prunes
    the dead branches at compile time and the lean call (the synthetic renderer's) has no per-pixel tests for them:
    linear None: perspective-correct (1/z-weighted) barycentrics, triangles with a depth <= 0 skipped; True:
    screen-linear. bias (T,) z-test depth bias, removed again from zbuf at the end. cc (T, 3, 3) corner colours
    interpolated into image (H, W, 3) (both None or both arrays)."""
    h, w = zbuf.shape
    for t in range(tris.shape[0]):
        a, b, c = tris[t, 0], tris[t, 1], tris[t, 2]
        x0, y0, x1, y1, x2, y2 = xy[a, 0], xy[a, 1], xy[b, 0], xy[b, 1], xy[c, 0], xy[c, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or not np.isfinite(area):
            continue
        if cull and area >= 0.0:
            continue
        za, zb, zc = depth[a], depth[b], depth[c]
        if linear is None and (za <= 0.0 or zb <= 0.0 or zc <= 0.0):
            continue
        jmin = max(int(np.floor(min(x0, min(x1, x2)) - 0.5)), 0)
        jmax = min(int(np.ceil(max(x0, max(x1, x2)) - 0.5)), w - 1)
        imin = max(int(np.floor(min(y0, min(y1, y2)) - 0.5)), 0)
        imax = min(int(np.ceil(max(y0, max(y1, y2)) - 0.5)), h - 1)
        inv = 1.0 / area
        for i in range(imin, imax + 1):
            py = i + 0.5
            for j in range(jmin, jmax + 1):
                px = j + 0.5
                w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) * inv
                w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) * inv
                w2 = 1.0 - w0 - w1
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                if linear is None:
                    q0, q1, q2 = w0 / za, w1 / zb, w2 / zc
                    z = 1.0 / (q0 + q1 + q2)
                    b0, b1, b2 = q0 * z, q1 * z, q2 * z
                else:
                    b0, b1, b2 = w0, w1, w2
                    z = w0 * za + w1 * zb + w2 * zc
                if bias is not None:
                    z += bias[t]
                if z < zbuf[i, j]:
                    zbuf[i, j] = z
                    tid[i, j] = t
                    bary[i, j, 0], bary[i, j, 1], bary[i, j, 2] = b0, b1, b2
                    if cc is not None:
                        for k in range(3):
                            image[i, j, k] = b0 * cc[t, 0, k] + b1 * cc[t, 1, k] + b2 * cc[t, 2, k]
    if bias is not None:  # the depth buffer reports the surface depth, not the biased test depth
        for i in range(h):
            for j in range(w):
                t = tid[i, j]
                if t >= 0:
                    zbuf[i, j] -= bias[t]


def raster_into(xy, depth, tris, zbuf, tid, bary, cull: bool = True, perspective: bool = True) -> None:
    """Z-buffer triangles into preallocated buffers: no colour, no depth bias, no allocation (reset the buffers
    first: zbuf to +inf, tid to -1). The fast path of :func:`rasterize` for callers that shade from ``tid`` /
    ``bary`` themselves (the synthetic renderer).

    xy (N, 2) float64 pixels (pixel centres at +0.5), depth (N,) float64, tris (T, 3) int64, all C-contiguous;
    zbuf (H, W) float32, tid (H, W) int32, bary (H, W, 3) float32. Same rules as :func:`rasterize`: front faces
    have negative signed area and ``cull`` drops the others; ``perspective`` interpolates with 1/z weights and
    skips triangles with a depth <= 0."""
    _raster_kernel(xy, depth, tris, bool(cull), None if perspective else True, zbuf, tid, bary, None, None, None)


def _buffers(w, h, zdtype):
    """Empty output buffers: image (H, W, 3) zeros, zbuf (H, W) +inf, tri ids -1, barycentrics zeros."""
    return (np.zeros((h, w, 3), np.float32), np.full((h, w), np.inf, zdtype), -np.ones((h, w), np.int32),
            np.zeros((h, w, 3), np.float32))


def _finish(image, zbuf, tid, bary, background):
    empty = tid < 0
    if background is not None:
        image[empty] = np.asarray(background, np.float32)
    return RasterResult(image, zbuf, tid, bary)


def rasterize(xy, depth, triangles, colours, image_size, *, cull_backfaces: bool = False,
              perspective: bool | None = None, depth_bias=None, background=(0.0, 0.0, 0.0)) -> RasterResult:
    """Rasterise triangles with a z-buffer (numba kernel).

    xy: (N, 2) float pixel coordinates of the vertices (x right, y down; pixel centres at +0.5).
    depth: (N,) float depth per vertex (cm for a camera-frame mesh); smaller = nearer.
    triangles: (T, 3) int vertex indices.
    colours: (N, 3) per-vertex or (T, 3, 3) per-corner float RGB (any range; typically 0-1).
    image_size: (width, height) in pixels.
    cull_backfaces: drop triangles whose signed pixel area is >= 0 (front faces are negative).
    perspective: interpolate with 1/z weights (default: True iff every depth > 0).
    depth_bias: scalar or (T,) added to a triangle's depth for the z-test only (positive pushes it back), e.g.
        to draw the eye-surface triangles behind the iris.
    background: RGB for empty pixels (None leaves zeros).
    Returns a :class:`RasterResult` (image, depth, tri_id, bary).
    """
    xy, depth, tris, cc, bias, w, h, perspective = _prepare(xy, depth, triangles, colours, image_size, depth_bias,
                                                            perspective)
    image, zbuf, tid, bary = _buffers(w, h, np.float32)
    _raster_kernel(xy, depth, tris, bool(cull_backfaces), None if perspective else True, zbuf, tid, bary,
                   None if depth_bias is None else bias, cc, image)
    return _finish(image, zbuf, tid, bary, background)


def rasterize_reference(xy, depth, triangles, colours, image_size, *, cull_backfaces: bool = False,
                        perspective: bool | None = None, depth_bias=None,
                        background=(0.0, 0.0, 0.0)) -> RasterResult:
    """Pure-numpy reference implementation of :func:`rasterize` (same arguments and outputs; slow: a Python
    loop over triangles, vectorised over each triangle's bounding box). Used by the tests."""
    xy, depth, tris, cc, bias, w, h, perspective = _prepare(xy, depth, triangles, colours, image_size, depth_bias,
                                                            perspective)
    image, zbuf, tid, bary = _buffers(w, h, np.float64)
    for t, (a, b, c) in enumerate(tris):
        (x0, y0), (x1, y1), (x2, y2) = xy[a], xy[b], xy[c]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or not np.isfinite(area) or (cull_backfaces and area >= 0.0):
            continue
        z3 = depth[[a, b, c]]
        if perspective and np.any(z3 <= 0):
            continue
        jmin = max(int(np.floor(min(x0, x1, x2) - 0.5)), 0)
        jmax = min(int(np.ceil(max(x0, x1, x2) - 0.5)), w - 1)
        imin = max(int(np.floor(min(y0, y1, y2) - 0.5)), 0)
        imax = min(int(np.ceil(max(y0, y1, y2) - 0.5)), h - 1)
        if jmin > jmax or imin > imax:
            continue
        py, px = np.meshgrid(np.arange(imin, imax + 1) + 0.5, np.arange(jmin, jmax + 1) + 0.5, indexing="ij")
        w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
        w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
        w2 = 1.0 - w0 - w1
        wts = np.stack([w0, w1, w2], -1)
        if perspective:
            q = wts / z3
            z = 1.0 / q.sum(-1)
            bw = q * z[..., None]
        else:
            z = wts @ z3
            bw = wts
        zt = z + bias[t]
        win = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (zt < zbuf[imin:imax + 1, jmin:jmax + 1])
        ii, jj = np.nonzero(win)
        ii_img, jj_img = ii + imin, jj + jmin
        zbuf[ii_img, jj_img] = zt[ii, jj]
        tid[ii_img, jj_img] = t
        bary[ii_img, jj_img] = bw[ii, jj]
        image[ii_img, jj_img] = bw[ii, jj] @ cc[t]
    filled = tid >= 0
    zbuf[filled] -= bias[tid[filled]]
    return _finish(image, zbuf.astype(np.float32), tid, bary, background)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N, 3) unit area-weighted vertex normals of a mesh in a right-handed x-right, y-down, z-forward frame,
    pointing out of the front faces (towards the camera, −z, for a face looking at it). Isolated vertices get
    (0, 0, -1)."""
    v = np.asarray(vertices, np.float64)
    tris = np.asarray(triangles)
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    out = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), np.array([0.0, 0.0, -1.0]))
    return out


def render_shaded(vertices_cam_cm: np.ndarray, triangles: np.ndarray, focal: float, image_size,
                  colours=None, light_dir=(0.35, -0.45, -1.0), ambient: float = 0.3, *,
                  depth_bias=None, background=(1.0, 1.0, 1.0), cull_backfaces: bool = True) -> RasterResult:
    """Project a camera-frame mesh with a pinhole camera and render it Gouraud-shaded (Lambert + ambient).

    vertices_cam_cm: (N, 3) camera-frame vertices in cm (OpenCV frame: x right, y down, z forward; z > 0).
    triangles: (T, 3) int.
    focal: focal length in pixels; the principal point is the image centre (W / 2, H / 2).
    image_size: (width, height).
    colours: (N, 3) per-vertex or (T, 3, 3) per-corner albedo in 0-1 (default light grey).
    light_dir: (3,) direction FROM the surface TOWARDS the light in the camera frame (default: from upper left
        of the camera, in front of the face).
    ambient: ambient fraction; shade = ambient + (1 - ambient) * max(0, n·l).
    depth_bias: per-triangle z-test bias (see :func:`rasterize`).
    Returns a :class:`RasterResult`; ``image`` is (H, W, 3) float32 in 0-1 (before clipping).
    """
    v = np.asarray(vertices_cam_cm, np.float64)
    tris = np.asarray(triangles, np.int64)
    w, h = int(image_size[0]), int(image_size[1])
    z = v[:, 2]
    xy = focal * v[:, :2] / z[:, None] + np.array([w / 2.0, h / 2.0])
    n = vertex_normals(v, tris)
    ldir = np.asarray(light_dir, np.float64)
    ldir = ldir / np.linalg.norm(ldir)
    shade = ambient + (1.0 - ambient) * np.clip(n @ ldir, 0.0, None)  # (N,)
    if colours is None:
        colours = np.full((len(v), 3), 0.8)
    cc = _corner_colours(colours, tris).astype(np.float64)
    cc = cc * shade[tris][..., None]
    return rasterize(xy, z, tris, cc, (w, h), cull_backfaces=cull_backfaces, depth_bias=depth_bias,
                     background=background)
