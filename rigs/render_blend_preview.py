"""Render rigs/fw46.blend in Blender (Workbench, headless) to check what the add-on imports.

    python rigs/render_blend_preview.py [--blend rigs/fw46.blend] [--out rigs/fw46_blender_preview.png]

One tile per pose: neutral and a few shape keys at 1.0, front and three-quarter view, tiled into one PNG.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
POSES = ("Basis", "JawOpen", "MouthSmile_L", "EyeBlink_L", "BrowsU_C", "LipsPucker", "EyeOut_L", "Puff",
         "EyeUp_L", "EyeDown_L", "EyeIn_L", "EyeSquint_L", "EyeOpen_L", "EyeBlink_R")


def main(argv=None) -> int:
    import bpy  # noqa: PLC0415
    import cv2  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blend", default=os.path.join(HERE, "fw46.blend"))
    ap.add_argument("--out", default=os.path.join(HERE, "fw46_blender_preview.png"))
    args = ap.parse_args(argv)

    bpy.ops.wm.open_mainfile(filepath=args.blend)
    scene = bpy.context.scene
    obj = bpy.data.objects["FaceRig"]
    keys = obj.data.shape_keys.key_blocks
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.render.resolution_x = scene.render.resolution_y = 320
    cam = bpy.data.objects.new("PreviewCam", bpy.data.cameras.new("PreviewCam"))
    cam.data.lens = 85
    scene.collection.objects.link(cam)
    scene.camera = cam
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for pose in POSES:
            for k in keys:
                k.value = 1.0 if k.name == pose and pose != "Basis" else 0.0
            row = []
            for yaw in (0.0, 35.0):
                # orbit the camera around the face (the face looks towards −Y in Blender)
                a = math.radians(yaw)
                cam.location = (0.75 * math.sin(a), -0.75 * math.cos(a), 0.0)
                cam.rotation_euler = (math.pi / 2, 0.0, a)
                path = os.path.join(tmp, f"{pose}_{int(yaw)}.png")
                scene.render.filepath = path
                bpy.ops.render.render(write_still=True)
                img = cv2.imread(path)
                cv2.putText(img, f"{pose} {int(yaw)}deg", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
                row.append(img)
            tiles.append(np.concatenate(row, 1))
    half = (len(tiles) + 1) // 2
    sheet = np.concatenate([np.concatenate(tiles[:half], 0), np.concatenate(tiles[half:], 0)], 1)
    cv2.imwrite(args.out, sheet)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
