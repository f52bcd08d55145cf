"""Stage 1 of the rig build: the canonical topology turned into the rig's base arrays.

* model frame: MediaPipe's canonical frame (y up, z towards the viewer) → (x, -y, -z), so that with R = I the
  face looks down an OpenCV camera's +z axis; centimetres throughout.
* two iris rings (vertices 468-477, the 478-point layout) are added in front of the eye openings;
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
IRIS_DEPTH_CM = 0.15  # iris plane sits this far behind the eye-opening surface


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


def _iris_ring(centre: np.ndarray, eyeball: np.ndarray) -> np.ndarray:
    """Centre + 4 ring points (image right, top, left, bottom) on the eyeball sphere, in the model frame."""
    pts = [centre]
    for dx, dy in ((1, 0), (0, -1), (-1, 0), (0, 1)):
        p = centre + IRIS_RADIUS_CM * np.array([dx, dy, 0.0])
        # push the ring point onto the sphere through the iris centre (the iris is a cap, not a flat disc)
        d = p - eyeball
        pts.append(eyeball + d / np.linalg.norm(d) * np.linalg.norm(centre - eyeball))
    return np.array(pts)


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


def build_base(canonical: CanonicalMesh) -> RigBase:
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
    for iris, upper, lower in ((L.IRIS_R, L.EYE_R_UPPER, L.EYE_R_LOWER), (L.IRIS_L, L.EYE_L_UPPER, L.EYE_L_LOWER)):
        contour = np.array(sorted(set(upper) | set(lower)))
        opening = face[contour].mean(0)
        centre = opening + np.array([0.0, 0.0, IRIS_DEPTH_CM])
        eyeball = centre + np.array([0.0, 0.0, EYEBALL_RADIUS_CM - 0.1])
        ring = _iris_ring(centre, eyeball)
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
