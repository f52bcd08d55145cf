"""Build the fw46 face rig as a Blender mesh object from plain arrays (no facecap_core import).

The rig's model frame is OpenCV-style (x right = subject's left, y down, z away from the camera, centimetres).
Blender's frame is z up, metres; the face is placed looking towards −Y (Blender's front view sees it), so
Blender (x, y, z) = 0.01 · (x, z, −y) of the model frame. That change of frame lives in `model_to_blender`
(points) and `MODEL_TO_BLENDER` (the same rotation, for poses) and nowhere else.

Self-contained on purpose: importable as `blender_addon.rig_import` inside the add-on and as a plain module by
`rigs/build_blend.py` and the tests. `bpy` is imported inside the functions that need it.
"""
from __future__ import annotations

import json

import numpy as np

CM_TO_M = 0.01
# rows: Blender axes in terms of model axes. A proper rotation (det +1), so triangle winding is kept.
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0],
                             [0.0, 0.0, 1.0],
                             [0.0, -1.0, 0.0]])

MATERIALS = (  # index = triangle_material value of the rig: 0 skin, 1 mouth, 2 eye, 3 iris
    ("FaceRig_Skin", (0.80, 0.60, 0.50, 1.0)),
    ("FaceRig_Mouth", (0.35, 0.08, 0.08, 1.0)),
    ("FaceRig_Eye", (0.92, 0.90, 0.88, 1.0)),
    ("FaceRig_Iris", (0.20, 0.12, 0.06, 1.0)),
)


def model_to_blender(points) -> np.ndarray:
    """(..., 3) points in the rig's model/camera frame (cm) → (..., 3) Blender coordinates (m)."""
    return np.asarray(points, np.float64) @ MODEL_TO_BLENDER.T * CM_TO_M


def rotation_to_blender(quat_wxyz) -> np.ndarray:
    """(..., 4) unit quaternion (w, x, y, z) of a rotation in the model frame → the same rotation expressed in
    Blender's frame, C R Cᵀ with C = MODEL_TO_BLENDER. For a proper rotation C this is the quaternion with its
    vector part mapped by C."""
    q = np.asarray(quat_wxyz, np.float64)
    out = np.empty_like(q)
    out[..., 0] = q[..., 0]
    out[..., 1:] = q[..., 1:] @ MODEL_TO_BLENDER.T
    return out


def load_rig_arrays(path: str) -> dict:
    """Read the arrays the Blender rig needs from a facecap-rig .npz with numpy alone.
    Returns neutral (478, 3) cm, triangles (T, 3), uv (478, 2), expression_deltas (46, 478, 3) cm,
    triangle_material (T,), expression_names (46 str), name, provenance."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != "facecap-rig":
            raise ValueError(f"{path} is not a facecap-rig file")
        out = {k: np.array(data[k]) for k in ("neutral", "triangles", "uv", "expression_deltas", "triangle_material")}
    out["expression_names"] = list(meta["expression_names"])
    out["name"] = meta.get("name", "fw46")
    out["provenance"] = meta.get("provenance", {})
    return out


def _material(name: str, rgba) -> "bpy.types.Material":  # noqa: F821
    import bpy

    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = rgba  # viewport (solid mode) colour
    if getattr(mat, "node_tree", None) is None and hasattr(mat, "use_nodes"):
        mat.use_nodes = True  # < 5.0: new materials have no node tree until asked
    tree = getattr(mat, "node_tree", None)
    if tree is not None:
        bsdf = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = rgba
            bsdf.inputs["Roughness"].default_value = 0.15 if name.endswith(("Eye", "Iris")) else 0.55
    return mat


def build_face_rig(neutral, triangles, uv, expression_deltas, expression_names, triangle_material=None,
                   name: str = "FaceRig", collection=None, properties: dict | None = None):
    """Create the mesh object `name` with UVs, 4 material slots, smooth shading, a `Basis` shape key and one
    shape key per expression (in the given order), all at value 0.

    neutral (V, 3) cm and expression_deltas (K, V, 3) cm at weight 1, both in the model frame; triangles (T, 3)
    int; uv (V, 2) with v up; triangle_material (T,) ints 0 skin, 1 mouth, 2 eye, 3 iris. Returns the object,
    linked to `collection` (default: the scene's collection)."""
    import bpy

    neutral = np.asarray(neutral, np.float64)
    triangles = np.asarray(triangles, np.int64)
    uv = np.asarray(uv, np.float64)
    deltas = np.asarray(expression_deltas, np.float64)
    names = [str(n) for n in expression_names]
    if deltas.shape != (len(names),) + neutral.shape:
        raise ValueError(f"expression_deltas {deltas.shape} does not match {len(names)} names × {neutral.shape}")
    n_v, n_t = len(neutral), len(triangles)

    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(n_v)
    mesh.vertices.foreach_set("co", model_to_blender(neutral).astype(np.float32).ravel())
    mesh.loops.add(3 * n_t)
    mesh.loops.foreach_set("vertex_index", triangles.astype(np.int32).ravel())
    mesh.polygons.add(n_t)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * n_t, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(n_t, 3, np.int32))
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)
    if len(mesh.polygons) != n_t:
        raise ValueError(f"mesh validation dropped {n_t - len(mesh.polygons)} degenerate triangles")

    layer = mesh.uv_layers.new(name="UVMap")
    layer.data.foreach_set("uv", uv[triangles.ravel()].astype(np.float32).ravel())

    for mat_name, rgba in MATERIALS:
        mesh.materials.append(_material(mat_name, rgba))
    if triangle_material is not None:
        mat_index = np.clip(np.asarray(triangle_material, np.int32), 0, len(MATERIALS) - 1)
        mesh.polygons.foreach_set("material_index", mat_index)
    mesh.polygons.foreach_set("use_smooth", np.ones(n_t, bool))

    obj = bpy.data.objects.new(name, mesh)
    (collection or bpy.context.scene.collection).objects.link(obj)
    obj.rotation_mode = "QUATERNION"

    obj.shape_key_add(name="Basis", from_mix=False)
    for k, key_name in enumerate(names):
        block = obj.shape_key_add(name=key_name, from_mix=False)
        block.slider_min, block.slider_max = 0.0, 1.0
        block.data.foreach_set("co", model_to_blender(neutral + deltas[k]).astype(np.float32).ravel())
        block.value = 0.0
    mesh.shape_keys.use_relative = True
    mesh.shape_keys.name = name + "Keys"

    for key, value in (properties or {}).items():
        obj[key] = value
    return obj


def import_rig_file(path: str, name: str = "FaceRig", collection=None):
    """Load a facecap-rig .npz and build its Blender object (see `build_face_rig`)."""
    rig = load_rig_arrays(path)
    return build_face_rig(rig["neutral"], rig["triangles"], rig["uv"], rig["expression_deltas"],
                          rig["expression_names"], rig["triangle_material"], name=name, collection=collection,
                          properties={"facecap_rig": rig["name"],
                                      "facecap_provenance": json.dumps(rig["provenance"])[:4000]})
