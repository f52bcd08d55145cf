"""Stage 1 of the rig build: the canonical topology turned into the rig's base arrays.

* model frame: MediaPipe's canonical frame (y up, z towards the viewer) → (x, -y, -z), so that with R = I the
  face looks down an OpenCV camera's +z axis; centimetres throughout.
* two iris rings (vertices 468-477, the 478-point layout) are placed as eye decals: just in front of the eye
  membrane where the opening shows them, behind the lid skin elsewhere (``place_iris``), so lids clip them;
* each canonical triangle gets a material: the triangles bridging the lips are the mouth interior, those
  bridging the eyelids are the eye surface, so the mouth can open and the lids close without new topology.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import landmarks as L
from ..model import MATERIAL_EYE, MATERIAL_IRIS, MATERIAL_MOUTH, MATERIAL_SKIN
from ..topology import CanonicalMesh

IRIS_RADIUS_CM = 0.58  # human iris diameter ≈ 11.7 mm
EYEBALL_RADIUS_CM = 1.2  # ≈ 24 mm eyeball


@dataclass
class RigBase:
    neutral: np.ndarray  # (478, 3) cm, model frame
    uv: np.ndarray  # (478, 2)
    triangles: np.ndarray  # (T, 3)
    triangle_material: np.ndarray  # (T,)
    mirror: np.ndarray  # (478,)
    eyeball_centres: np.ndarray  # (2, 3)
    landmark_vertices: np.ndarray  # (73,)
    jaw_contour_candidates: np.ndarray  # (17, C)
    face_oval: np.ndarray  # (36,)


def _seam_triangles(triangles: np.ndarray, upper: tuple, lower: tuple) -> np.ndarray:
    """Triangles whose vertices all lie on a closed contour pair and touch both sides (the gap between)."""
    contour = set(upper) | set(lower)
    upper_only, lower_only = set(upper) - set(lower), set(lower) - set(upper)
    out = np.zeros(len(triangles), bool)
    for i, tri in enumerate(triangles):
        s = set(tri.tolist())
        out[i] = s <= contour and bool(s & upper_only) and bool(s & lower_only)
    return out


IRIS_FRONT_CM = 0.03  # visible iris: this far in front of the eye membrane (an "eye decal")
IRIS_BEHIND_CM = 0.06  # iris ring points outside the eye opening: this far behind the lid skin
RING_DIRECTIONS = np.array([(1.0, 0.0), (0.0, -1.0), (-1.0, 0.0), (0.0, 1.0)])  # image right, top, left, bottom


def surface_depth(vertices: np.ndarray, triangles: np.ndarray, material: np.ndarray, xy: np.ndarray):
    """Front-most surface hit by rays along +z through points xy (K, 2) (orthographic, model frame).

    Only skin and eye-membrane triangles count. Returns (z (K,), on_membrane (K,) bool); z is +inf where no
    triangle is hit."""
    keep = (material == MATERIAL_SKIN) | (material == MATERIAL_EYE)
    tris = triangles[keep]
    mat = material[keep]
    a, b, c = (vertices[tris[:, k]] for k in range(3))
    xy = np.atleast_2d(np.asarray(xy, np.float64))
    e1, e2 = (b - a)[:, :2], (c - a)[:, :2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-12
    z = np.full(len(xy), np.inf)
    on = np.zeros(len(xy), bool)
    for k, q in enumerate(xy):
        r = q[None, :] - a[:, :2]
        with np.errstate(divide="ignore", invalid="ignore"):
            w1 = (r[:, 0] * e2[:, 1] - r[:, 1] * e2[:, 0]) / det
            w2 = (e1[:, 0] * r[:, 1] - e1[:, 1] * r[:, 0]) / det
            w0 = 1.0 - w1 - w2
        inside = ok & (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        if not inside.any():
            continue
        zz = w0 * a[:, 2] + w1 * b[:, 2] + w2 * c[:, 2]
        zz = np.where(inside, zz, np.inf)
        j = int(np.argmin(zz))
        z[k], on[k] = zz[j], mat[j] == MATERIAL_EYE
    return z, on


def place_iris(vertices: np.ndarray, triangles: np.ndarray, material: np.ndarray, ring_xy: np.ndarray,
               front: float = IRIS_FRONT_CM, behind: float = IRIS_BEHIND_CM) -> np.ndarray:
    """(5, 3) iris ring (centre + 4 contour points) at the given image-plane positions ring_xy (5, 2), "eye decal"
    style: points seen through the eye opening sit ``front`` cm in front of the eye membrane, points outside
    the opening ``behind`` cm behind the lid skin, so a plain depth test lets the lids clip the iris (and a
    closed lid, whose membrane has collapsed, hides it)."""
    z, on = surface_depth(vertices, triangles, material, ring_xy)
    if not np.all(np.isfinite(z)):
        raise RuntimeError("iris ring point outside the face mesh")
    return np.c_[ring_xy, np.where(on, z - front, z + behind)]


def iris_ring_xy(centre_xy: np.ndarray, radius: float = IRIS_RADIUS_CM) -> np.ndarray:
    return np.r_[np.asarray(centre_xy, np.float64)[None, :2], centre_xy[None, :2] + radius * RING_DIRECTIONS]


def _jaw_candidates(vertices: np.ndarray, jaw_vertices: np.ndarray, max_depth_cm: float = 4.0,
                    half_width_cm: float = 0.6, max_count: int = 10) -> np.ndarray:
    """For each jaw landmark, the vertices it may slide to on a turned head: a strip running inwards from the
    oval vertex along the contour's inward normal (in the frontal x-y plane), ordered outside → inside."""
    oval = np.array(L.FACE_OVAL)
    xy = vertices[:, :2]
    out = -np.ones((len(jaw_vertices), max_count), np.int32)
    for j, v in enumerate(jaw_vertices):
        k = int(np.where(oval == v)[0][0])
        tangent = xy[oval[(k + 1) % len(oval)]] - xy[oval[k - 1]]
        tangent /= np.linalg.norm(tangent)
        inward = np.array([-tangent[1], tangent[0]])
        if np.dot(inward, -xy[v]) < 0:  # make it point towards the face centre
            inward = -inward
        rel = xy - xy[v]
        depth, lateral = rel @ inward, rel @ tangent
        ok = (depth >= -1e-6) & (depth <= max_depth_cm) & (np.abs(lateral) <= half_width_cm)
        ok[468:] = False
        cand = np.where(ok)[0]
        cand = cand[np.argsort(depth[cand])][:max_count]
        out[j, :len(cand)] = cand
    return out


def build_base(canonical: CanonicalMesh, iris_offset=(0.0, 0.0)) -> RigBase:
    """The rig's base arrays from a canonical mesh. ``iris_offset`` (x, y) cm places the iris centre relative to
    the middle of the (subject's left) eye opening; the right eye mirrors it."""
    mp = canonical.vertices
    face = mp * np.array([1.0, -1.0, -1.0])  # model frame
    tris = canonical.triangles.copy()
    # MediaPipe winds triangles counter-clockwise seen from the front (+z_mp); flipping y and z is a rotation
    # by 180° about x, which keeps the winding, so the front face is still counter-clockwise as seen by the camera
    # after the y-down projection flips it: keep the indices as they are.
    material = np.full(len(tris), MATERIAL_SKIN, np.int8)
    material[_seam_triangles(tris, L.LIPS_INNER_UPPER, L.LIPS_INNER_LOWER)] = MATERIAL_MOUTH
    material[_seam_triangles(tris, L.EYE_R_UPPER, L.EYE_R_LOWER)] = MATERIAL_EYE
    material[_seam_triangles(tris, L.EYE_L_UPPER, L.EYE_L_LOWER)] = MATERIAL_EYE

    verts = [face]
    uv = [canonical.uv]
    new_tris = []
    eyeballs = []
    # the subject's left eye is placed, the right one is its exact mirror image (ring order image right, top,
    # left, bottom: mirroring swaps image right and left)
    contour_l = np.array(sorted(set(L.EYE_L_UPPER) | set(L.EYE_L_LOWER)))
    ring_l = place_iris(face, tris, material, iris_ring_xy(face[contour_l].mean(0)[:2] + np.asarray(iris_offset)))
    ring_r = ring_l[[0, 3, 2, 1, 4]] * np.array([-1.0, 1.0, 1.0])
    for iris, upper, lower, ring in ((L.IRIS_R, L.EYE_R_UPPER, L.EYE_R_LOWER, ring_r),
                                     (L.IRIS_L, L.EYE_L_UPPER, L.EYE_L_LOWER, ring_l)):
        contour = np.array(sorted(set(upper) | set(lower)))
        # the eyeball (a sphere through the iris centre) sits behind it; gaze rotates the ring about it
        eyeball = ring[0] + np.array([0.0, 0.0, EYEBALL_RADIUS_CM - 0.1])
        verts.append(ring)
        eyeballs.append(eyeball)
        # iris texture coordinates: the photo's own eye, around the eye-opening centre in UV space
        uv_c = canonical.uv[contour].mean(0)
        uv_r = 0.5 * np.ptp(canonical.uv[contour, 1])
        uv.append(np.array([uv_c] + [uv_c + uv_r * np.array(d) for d in ((1, 0), (0, 1), (-1, 0), (0, -1))]))
        c = iris[0]
        for a, b in ((1, 2), (2, 3), (3, 4), (4, 1)):
            new_tris.append((c, iris[a], iris[b]))
    neutral = np.concatenate(verts)
    assert neutral.shape == (478, 3)
    triangles = np.concatenate([tris, np.array(new_tris, np.int32)])
    material = np.concatenate([material, np.full(len(new_tris), MATERIAL_IRIS, np.int8)])

    mirror = np.empty(478, np.int32)
    mirror[:468] = L.mirror_map(face)
    mirror[list(L.IRIS_R)] = L.IRIS_L[0], L.IRIS_L[3], L.IRIS_L[2], L.IRIS_L[1], L.IRIS_L[4]
    mirror[list(L.IRIS_L)] = L.IRIS_R[0], L.IRIS_R[3], L.IRIS_R[2], L.IRIS_R[1], L.IRIS_R[4]

    landmark_vertices = np.array(L.LANDMARKS73, np.int32)
    jaw = _jaw_candidates(face, landmark_vertices[list(L.JAW)])
    return RigBase(neutral=neutral, uv=np.concatenate(uv), triangles=triangles.astype(np.int32),
                   triangle_material=material, mirror=mirror, eyeball_centres=np.array(eyeballs),
                   landmark_vertices=landmark_vertices, jaw_contour_candidates=jaw,
                   face_oval=np.array(L.FACE_OVAL, np.int32))
