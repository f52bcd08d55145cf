"""Write the fw46 rig as a Blender file: object `FaceRig` with `Basis` + 46 shape keys, UVs and materials.

    python rigs/build_blend.py [--rig rigs/fw46.npz] [--out rigs/fw46.blend] [--take TAKE.json]

Run with a Python that has `bpy` (the project venv: `pip install -e .[test]` installs bpy==5.0.1). With
--take, the rig is animated from the take (shape keys and head pose) and a camera matching the take's image
size and focal length is added at the origin, so the viewport through the camera shows the take's framing.
Uses only numpy and the self-contained modules of blender_addon/ (no facecap_core).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "blender_addon"))

SENSOR_WIDTH_MM = 36.0


def add_camera(scene, width: int, height: int, focal_px: float):
    """A Blender camera at the origin equal to the take's OpenCV camera (looking down +Y = model +z)."""
    import bpy

    cam_data = bpy.data.cameras.new("FacecapCamera")
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.sensor_width = SENSOR_WIDTH_MM
    cam_data.lens = focal_px * SENSOR_WIDTH_MM / width
    cam_data.clip_start, cam_data.clip_end = 0.01, 100.0
    cam = bpy.data.objects.new("FacecapCamera", cam_data)
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)  # Blender cameras look down local −Z; this turns it to +Y
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = int(width), int(height)
    return cam


def build(rig_path: str, out_path: str, take_path: str | None = None) -> dict:
    import bpy

    import keyframes
    import rig_import

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    obj = rig_import.import_rig_file(rig_path)
    info = {"object": obj.name, "vertices": len(obj.data.vertices), "shape_keys": len(obj.data.shape_keys.key_blocks)}
    light = bpy.data.objects.new("FacecapKey", bpy.data.lights.new("FacecapKey", "AREA"))
    light.location = (0.3, -0.4, 0.4)
    light.data.energy = 30.0
    scene.collection.objects.link(light)
    if take_path:
        with open(take_path) as f:
            take = json.load(f)
        keyed = keyframes.apply_take(obj, take)
        scene.render.fps = int(round(take["fps"]))
        scene.frame_start, scene.frame_end = 1, len(take["frames"])
        add_camera(scene, take["width"], take["height"], take["focal"])
        light.location = (0.3, -0.1, 0.4)
        info["keyed_frames"] = keyed
    else:
        obj.location = (0.0, 0.0, 0.0)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp.blend"
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(tmp), compress=True)
    os.replace(tmp, out_path)
    info["out"] = out_path
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rig", default=os.path.join(HERE, "fw46.npz"))
    ap.add_argument("--out", default=os.path.join(HERE, "fw46.blend"))
    ap.add_argument("--take", default=None, help="animate the rig from this take JSON and add its camera")
    args = ap.parse_args(argv)
    if not os.path.exists(args.rig):
        print(f"build_blend: rig file not found: {args.rig} (build it with `python rigs/build_rig.py`)",
              file=sys.stderr)
        return 1
    try:
        import bpy  # noqa: F401
    except ImportError:
        print("build_blend: bpy is not installed in this Python: pip install bpy==5.0.1 (Python 3.11)",
              file=sys.stderr)
        return 1
    info = build(args.rig, args.out, args.take)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
