"""The composite under occluders (blender_addon/composite.py) under real Blender (bpy from PyPI), one subprocess per
Blender session so pytest's own process never loads bpy.

The synthetic case: 320×240 footage of a face-coloured oval with a "hand" rectangle over its lower left, and the
matching face mask (design §5: inside the rig's face oval AND not covered: the oval minus the hand), computed here
from the rig's projection with facecap_core; the rig is put where that projection says, in front of the camera.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap

import cv2
import numpy as np
import pytest

from facecap_core.rig.geometry import project
from facecap_core.rig.model import load_rig

pytestmark = pytest.mark.blender

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H, FOCAL = 320, 240, 300.0
TRANSLATION_CM = (0.0, 1.0, 45.0)  # camera frame (x right, y down, z forward)
OUT_PNG = os.path.join(ROOT, "out", "composite_test.png")

PRELUDE = """
import sys, json, bpy
sys.path.insert(0, {root!r})
bpy.ops.wm.read_factory_settings(use_empty=True)
import blender_addon
from blender_addon import composite, rig_import
blender_addon.register()
scene = bpy.context.scene
"""

SCENE = """
bpy.ops.facecap.import_face_rig(filepath=sys.argv[1])
rig = scene.facecap.rig
rig.location = rig_import.model_to_blender(json.loads(sys.argv[3])).tolist()
rig.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
s = scene.facecap
s.source, s.filepath, s.last_take = "FILE", sys.argv[2] + "/footage.png", sys.argv[2] + "/take.json"
"""


def run_bpy(python: str, code: str, *args: str, scene: bool = False) -> dict:
    """Run `code` in a fresh Python with bpy, after the add-on is registered (and with `scene`, the synthetic case
    set up: rig, footage, take); its last line is one JSON object."""
    source = PRELUDE.format(root=ROOT) + (SCENE if scene else "") + textwrap.dedent(code)
    proc = subprocess.run([python, "-c", source, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def case(rig_path, tmp_path_factory):
    """Footage, mask folder and take (for the focal length) on disk; the face and hand regions as arrays."""
    rig = load_rig(rig_path)
    oval = project(rig.neutral[rig.face_oval], np.eye(3), np.array(TRANSLATION_CM), FOCAL, (W, H))
    face = np.zeros((H, W), np.uint8)
    cv2.fillPoly(face, [np.round(oval).astype(np.int32)], 255)
    ys, xs = np.nonzero(face)
    cx, cy = int(xs.mean()), int(ys.mean())
    hand = np.zeros((H, W), np.uint8)
    hand[cy:cy + 60, cx - 60:cx + 5] = 255  # over the face's lower left and beyond it
    mask = np.where(hand > 0, 0, face).astype(np.uint8)

    yy, xx = np.mgrid[0:H, 0:W]
    footage = np.stack([40 + xx * 0.4, 90 + yy * 0.3, 120 + 20 * np.sin(xx / 9.0)], -1)  # a textured backdrop
    footage[face > 0] = (205, 160, 135)
    footage[hand > 0] = (150, 100, 80)
    footage = np.clip(footage, 0, 255).astype(np.uint8)

    d = tmp_path_factory.mktemp("composite")
    cv2.imwrite(str(d / "footage.png"), cv2.cvtColor(footage, cv2.COLOR_RGB2BGR))
    (d / "masks").mkdir()
    cv2.imwrite(str(d / "masks" / "frame_000000.png"), mask)
    (d / "take.json").write_text(json.dumps({"format": "facecap-take", "version": 1, "width": W, "height": H,
                                             "focal": FOCAL, "frames": []}))
    texture = np.full((64, 64, 3), (40, 200, 90), np.uint8)
    cv2.imwrite(str(d / "texture.png"), texture)
    return {"dir": d, "rig": rig_path, "footage": footage, "face": face > 0, "hand": hand > 0, "mask": mask > 0}


def test_render_shows_the_rig_only_on_uncovered_face_pixels(case, bpy_python):
    code = """
    bpy.ops.facecap.composite_setup()
    cam = scene.camera
    bg = cam.data.background_images[0]
    try:  # a folder without masks: one error line, and the compositor is left as it was
        scene.facecap_composite.masks_dir = sys.argv[2]
        bpy.ops.facecap.composite_nodes()
        failed = ""
    except RuntimeError as exc:
        failed = str(exc)
    untouched = scene.compositing_node_group is None and len(bpy.data.node_groups) == 0
    scene.facecap_composite.masks_dir = sys.argv[2] + "/masks"
    bpy.ops.facecap.composite_nodes()
    bpy.ops.facecap.composite_nodes()  # again: replaces its graph, leaves no orphan behind
    built = scene.compositing_node_group.name
    real_input, composite._input = composite._input, None  # a failure halfway through building the graph
    failed_halfway = ""
    try:
        bpy.ops.facecap.composite_nodes()
    except RuntimeError as exc:
        failed_halfway = str(exc)
    composite._input = real_input
    kept = scene.compositing_node_group.name == built and len(bpy.data.node_groups) == 1
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.filepath = sys.argv[2] + "/composite.png"
    scene.frame_set(scene.facecap.frame_start)
    bpy.ops.render.render(write_still=True)
    print(json.dumps({"lens": cam.data.lens, "sensor": cam.data.sensor_width, "fit": cam.data.sensor_fit,
                      "shift": [cam.data.shift_x, cam.data.shift_y], "location": list(cam.location),
                      "res": [scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage],
                      "bg": [bg.source, bg.clip.name, cam.data.show_background_images], "camera": scene.camera.name,
                      "failed": failed, "untouched": untouched, "halfway": failed_halfway, "kept": kept,
                      "groups": len(bpy.data.node_groups),
                      "transparent": scene.render.film_transparent}))
    """
    out = run_bpy(bpy_python, code, case["rig"], str(case["dir"]), json.dumps(TRANSLATION_CM), scene=True)
    assert out["lens"] == pytest.approx(FOCAL * 36.0 / W) and out["sensor"] == 36.0 and out["fit"] == "HORIZONTAL"
    assert out["shift"] == [0.0, 0.0] and out["location"] == [0.0, 0.0, 0.0]
    assert out["res"] == [W, H, 100] and out["camera"] == "FacecapCamera"
    assert out["bg"] == ["MOVIE_CLIP", "footage.png", True]
    assert "no masks" in out["failed"] and "\n" not in out["failed"].strip() and out["untouched"]
    assert "cannot build the compositor graph" in out["halfway"] and out["kept"]
    assert out["groups"] == 1 and out["transparent"]

    comp = cv2.cvtColor(cv2.imread(str(case["dir"] / "composite.png")), cv2.COLOR_BGR2RGB)
    os.makedirs(os.path.dirname(OUT_PNG), exist_ok=True)
    cv2.imwrite(OUT_PNG, cv2.cvtColor(comp, cv2.COLOR_RGB2BGR))
    changed = np.abs(comp.astype(int) - case["footage"].astype(int)).max(-1) > 3
    # (a) the footage is untouched outside the mask: the hand, the background, the face's edge beyond the mask
    assert not changed[~case["mask"]].any(), f"{changed[~case['mask']].sum()} pixels changed outside the mask"
    covered = case["hand"] & case["face"]  # where the rig is behind the hand
    assert covered.sum() > 1500 and not changed[covered].any()
    # (b) where the face is uncovered, the rig replaces it (its silhouette is the oval the mask was drawn from)
    inner = cv2.erode(case["mask"].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert inner.sum() > 2000 and changed[inner].mean() > 0.95


def test_modes_set_the_rig_materials_and_shaded_restores_them(case, bpy_python):
    code = """
    c = scene.facecap_composite
    rig = scene.facecap.rig
    slots = lambda: [s.material.name if s.material else None for s in rig.material_slots]
    seen = {"SHADED": slots()}
    c.texture = bpy.data.images.load(sys.argv[2] + "/texture.png")
    c.mode = "TEXTURE"
    mat = rig.material_slots[0].material
    seen["TEXTURE"] = slots()
    seen["texture_image"] = [n.image.name for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    c.makeup_color, c.makeup_opacity = (0.9, 0.1, 0.2), 0.4
    c.mode = "MAKEUP"
    seen["MAKEUP"] = slots()
    bsdf = lambda: next(n for n in rig.material_slots[0].material.node_tree.nodes
                        if n.bl_idname == "ShaderNodeBsdfPrincipled")
    seen["makeup"] = [list(bsdf().inputs["Base Color"].default_value), bsdf().inputs["Alpha"].default_value,
                      list(rig.material_slots[0].material.diffuse_color)]
    c.makeup_opacity = 0.6  # an option change re-applies the mode
    seen["opacity"] = bsdf().inputs["Alpha"].default_value
    c.mode = "SHADED"
    seen["back"] = slots()
    seen["saved_left"] = "facecap_composite_saved" in rig.keys()
    print(json.dumps(seen))
    """
    out = run_bpy(bpy_python, code, case["rig"], str(case["dir"]), json.dumps(TRANSLATION_CM), scene=True)
    own = ["FaceRig_Skin", "FaceRig_Mouth", "FaceRig_Eye", "FaceRig_Iris"]
    assert out["SHADED"] == own
    assert out["TEXTURE"] == ["FacecapComposite_Texture"] * 4 and out["texture_image"] == ["texture.png"]
    assert out["MAKEUP"] == ["FacecapComposite_Makeup"] + ["FacecapComposite_Clear"] * 3
    color, alpha, viewport = out["makeup"]
    np.testing.assert_allclose(color, [0.9, 0.1, 0.2, 1.0], atol=1e-6)
    assert alpha == pytest.approx(0.4) and viewport == pytest.approx([0.9, 0.1, 0.2, 0.4])
    assert out["opacity"] == pytest.approx(0.6)
    assert out["back"] == own and not out["saved_left"]


def test_preview_handler_toggles_and_unregister_leaves_nothing(bpy_python):
    code = """
    import numpy as np
    from blender_addon.capture_ops import Runtime
    states = []
    bpy.ops.facecap.composite_preview()
    states.append(composite.Preview.handle is not None)
    bpy.ops.facecap.composite_preview()
    states.append(composite.Preview.handle is not None)

    class Options:  # an in-process engine's options, as the preview sees them
        keep_latest, remote = False, None
    class Session:
        options, latest = Options(), None
    class InProcess:
        session = Session()
        options = Session.options
        latest = property(lambda self: self.session.latest)
    reasons = [composite.latest_frame()[1]]
    Runtime.client = InProcess()
    bpy.ops.facecap.composite_preview()
    reasons.append(composite.latest_frame()[1])
    image = np.zeros((4, 6, 3), np.uint8); image[0] = 200
    mask = np.zeros((4, 6), np.uint8); mask[1:3, 2:5] = 255
    Session.latest = (7, image, None)
    reasons.append(composite.latest_frame()[1])
    Session.latest = (7, image, mask)
    reasons.append(composite.latest_frame()[1])
    rgba = composite.overlay_rgba(image, mask)
    Runtime.client = type("Worker", (), {"options": Options()})()
    reasons.append(composite.latest_frame()[1])
    Runtime.client = None
    blender_addon.unregister()  # with the preview still on
    print(json.dumps({"states": states, "reasons": reasons, "rgba": rgba.tolist(),
                      "after": [composite.Preview.handle is not None,
                                hasattr(bpy.types.Scene, "facecap_composite"),
                                hasattr(bpy.types, "FACECAP_PT_composite")]}))
    """
    out = run_bpy(bpy_python, code)
    assert out["states"] == [True, False]
    none, waiting, no_mask, drawn, worker = out["reasons"]
    assert "no capture" in none and "waiting" in waiting and "no face mask" in no_mask
    assert drawn.startswith("frame 7") and "external Python" in worker
    rgba = np.array(out["rgba"], np.uint8)[::-1]  # back to top-down rows
    assert rgba.shape == (4, 6, 4)
    assert (rgba[0, :, :3] == 200).all() and (rgba[1:, :, :3] == 0).all()
    expected_alpha = np.full((4, 6), 255, np.uint8)
    expected_alpha[1:3, 2:5] = 0  # face pixels: transparent, the rig shows there
    np.testing.assert_array_equal(rgba[..., 3], expected_alpha)
    assert out["after"] == [False, False, False]
