"""The Blender side of the rig, under real Blender (bpy from PyPI): one subprocess per Blender session, so pytest's
own process never loads bpy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from facecap_core.rig.model import EXPRESSION_NAMES, load_rig

pytestmark = pytest.mark.blender

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDON = os.path.join(ROOT, "blender_addon")


def run_bpy(python: str, code: str, *args: str) -> dict:
    """Run `code` in a fresh Python with bpy; it must print one JSON object as its last line."""
    prelude = f"import sys, json\nsys.path.insert(0, {ADDON!r})\n"
    proc = subprocess.run([python, "-c", prelude + textwrap.dedent(code), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


INSPECT_RIG = """
import bpy, numpy as np
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
obj = bpy.data.objects["FaceRig"]
mesh = obj.data
keys = mesh.shape_keys.key_blocks
mat_index = np.zeros(len(mesh.polygons), np.int32)
mesh.polygons.foreach_get("material_index", mat_index)
smooth = np.zeros(len(mesh.polygons), bool)
mesh.polygons.foreach_get("use_smooth", smooth)

def evaluated():
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    m = ev.to_mesh()
    co = np.zeros(3 * len(m.vertices))
    m.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)

rest = evaluated()
keys["JawOpen"].value = 1.0
jaw = evaluated()
print(json.dumps({
    "type": obj.type, "vertices": len(mesh.vertices), "triangles": len(mesh.polygons),
    "shape_keys": [k.name for k in keys], "uv_layers": [l.name for l in mesh.uv_layers],
    "materials": [m.name for m in mesh.materials], "material_counts": np.bincount(mat_index, minlength=4).tolist(),
    "smooth": bool(smooth.all()), "jaw_max_move": float(np.abs(jaw - rest).max()),
    "rest": rest.tolist(),
}))
"""


@pytest.fixture(scope="module")
def rig_blend(rig_path, bpy_python, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("blend") / "fw46.blend")
    proc = subprocess.run([bpy_python, os.path.join(ROOT, "rigs", "build_blend.py"), "--rig", rig_path,
                           "--out", out], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_rig_blend_has_facerig_with_46_named_shape_keys(rig_blend, rig_path, bpy_python):
    rig = load_rig(rig_path)
    info = run_bpy(bpy_python, INSPECT_RIG, rig_blend)
    assert info["type"] == "MESH"
    assert info["vertices"] == 478
    assert info["triangles"] == len(rig.triangles)
    assert info["shape_keys"] == ["Basis"] + list(EXPRESSION_NAMES)
    assert info["uv_layers"] == ["UVMap"]
    assert info["materials"] == ["FaceRig_Skin", "FaceRig_Mouth", "FaceRig_Eye", "FaceRig_Iris"]
    assert info["material_counts"] == np.bincount(rig.triangle_material.astype(int), minlength=4).tolist()
    assert info["smooth"]
    jaw_cm = np.abs(rig.expression_deltas[rig.expression_index("JawOpen")]).max()
    assert info["jaw_max_move"] == pytest.approx(jaw_cm * 0.01, rel=1e-3) and info["jaw_max_move"] > 1e-3


def test_rig_blend_coordinates_are_model_frame_converted(rig_blend, rig_path, bpy_python):
    """Blender (x, y, z) = 0.01 (x, z, −y): the chin is below the nose tip, the nose in front (−Y) of the eyes."""
    rig = load_rig(rig_path)
    rest = np.array(run_bpy(bpy_python, INSPECT_RIG, rig_blend)["rest"])
    expected = 0.01 * np.stack([rig.neutral[:, 0], rig.neutral[:, 2], -rig.neutral[:, 1]], axis=1)
    np.testing.assert_allclose(rest, expected, atol=1e-6)
    nose_tip, chin, eye_corner = 1, 152, 33  # canonical topology vertex ids
    assert rest[chin, 2] < rest[nose_tip, 2]
    assert rest[nose_tip, 1] < rest[eye_corner, 1]


def test_keyframe_writer_writes_n_keys_with_values(bpy_python):
    code = """
    import bpy, numpy as np
    import keyframes
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    mesh = bpy.data.meshes.new("m"); obj = bpy.data.objects.new("o", mesh); scene.collection.objects.link(obj)
    mesh.vertices.add(1)
    obj.shape_key_add(name="Basis"); obj.shape_key_add(name="JawOpen")
    frames = np.arange(1, 26); values = np.linspace(0, 1, 25) ** 2
    fc = keyframes.write_keyframes(obj, "location", frames, values, index=2, group="Head")
    fk = keyframes.write_keyframes(mesh.shape_keys, 'key_blocks["JawOpen"].value', frames, 1 - values)
    keyframes.write_keyframes(obj, "location", frames, values, index=2)  # rewriting replaces, not appends
    co = np.zeros(2 * len(fc.keyframe_points)); fc.keyframe_points.foreach_get("co", co)
    sampled = []
    for f in (1, 7, 25):
        scene.frame_set(f)
        sampled.append([obj.location.z, mesh.shape_keys.key_blocks["JawOpen"].value])
    print(json.dumps({"n": len(fc.keyframe_points), "n_key": len(fk.keyframe_points), "co": co.tolist(),
                      "interp": sorted({p.interpolation for p in fc.keyframe_points}), "sampled": sampled,
                      "legacy": not hasattr(bpy.types, "ActionChannelbag")}))
    """
    out = run_bpy(bpy_python, code)
    values = np.linspace(0, 1, 25) ** 2
    assert out["n"] == 25 and out["n_key"] == 25
    co = np.array(out["co"]).reshape(-1, 2)
    np.testing.assert_allclose(co[:, 0], np.arange(1, 26))
    np.testing.assert_allclose(co[:, 1], values, atol=1e-6)
    assert out["interp"] == ["LINEAR"]
    np.testing.assert_allclose(out["sampled"], [[values[i], 1 - values[i]] for i in (0, 6, 24)], atol=1e-5)


@pytest.mark.slow
def test_demo_blend_reprojects_onto_take_landmarks(rig_path, bpy_python, tmp_path):
    """The whole chain: `facecap demo` writes a take and a .blend; seen through the .blend's camera, the animated
    rig's landmark vertices land on the take's landmarks (frame change, pose, focal length and shape keys)."""
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "facecap_core.cli", "demo", "--rig", rig_path, "--out", str(out),
                           "--frames", "20"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    take = json.loads((out / "take.json").read_text())
    rig = load_rig(rig_path)
    code = """
    import bpy, numpy as np
    from bpy_extras.object_utils import world_to_camera_view
    bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
    idx = json.loads(sys.argv[2]); scene = bpy.context.scene; obj = bpy.data.objects["FaceRig"]
    res = {}
    for i in (0, 5, 12, 19):
        scene.frame_set(1 + i)
        dg = bpy.context.evaluated_depsgraph_get(); ev = obj.evaluated_get(dg); m = ev.to_mesh()
        pts = []
        for v in idx:
            c = world_to_camera_view(scene, scene.camera, ev.matrix_world @ m.vertices[v].co)
            pts.append([c.x * scene.render.resolution_x, (1 - c.y) * scene.render.resolution_y])
        ev.to_mesh_clear()
        res[i] = pts
    print(json.dumps(res))
    """
    got = run_bpy(bpy_python, code, str(out / "demo.blend"), json.dumps(rig.landmark_vertices.tolist()))
    for i, pts in got.items():
        frame = take["frames"][int(i)]
        if frame["tracked"]:
            from facecap_core.rig.geometry import project, quat_to_matrix
            want = project(rig.landmarks3d(x=np.array(frame["expression"])), quat_to_matrix(np.array(frame["rotation"])),
                           np.array(frame["translation"]), take["focal"], (take["width"], take["height"]))
            np.testing.assert_allclose(np.array(pts), want, atol=0.05)


def test_addon_registers_and_imports_the_rig(rig_path, bpy_python):
    code = """
    import bpy
    sys.path.insert(0, sys.argv[2])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    import blender_addon
    blender_addon.register()
    result = bpy.ops.facecap.import_face_rig(filepath=sys.argv[1])
    obj = bpy.data.objects.get("FaceRig")
    panel = hasattr(bpy.types, "FACECAP_PT_main")
    blender_addon.unregister()
    print(json.dumps({"result": sorted(result), "keys": len(obj.data.shape_keys.key_blocks), "panel": panel,
                      "active": bpy.context.view_layer.objects.active.name}))
    """
    out = run_bpy(bpy_python, code, rig_path, ROOT)
    assert out == {"result": ["FINISHED"], "keys": 47, "panel": True, "active": "FaceRig"}
