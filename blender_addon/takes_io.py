"""Take files in and out of Blender: import (bake onto the rig and targets), export (the rig's animation sampled
back into a take), and a Live-Link-Face-style CSV of the last take."""
from __future__ import annotations

import os

import bpy
import numpy as np
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import capture_ops, engines, rig_import
from .registration import JsonFile, registrar


def rig_take(context, rig) -> dict:
    """The rig's animation over the scene's frame range as a take (design §6): shape-key values and the head
    pose, sampled once per frame (drivers and constraints included)."""
    model = engines.core_module("rig.model")
    take_mod = engines.core_module("take")
    scene = context.scene
    fps = scene.render.fps / scene.render.fps_base
    blocks = rig.data.shape_keys.key_blocks
    head = context.scene.facecap.head or rig
    inv = np.linalg.inv(rig_import.MODEL_TO_BLENDER)
    frames = []
    current = scene.frame_current
    try:
        for i, f in enumerate(range(scene.frame_start, scene.frame_end + 1)):
            scene.frame_set(f)
            x = [blocks[n].value if n in blocks else 0.0 for n in model.EXPRESSION_NAMES]
            q = np.array(head.rotation_quaternion) if head.rotation_mode == "QUATERNION" \
                else np.array(head.rotation_euler.to_quaternion())
            quat = np.concatenate([[q[0]], q[1:] @ inv.T])  # Blender frame → camera frame (rig_import's inverse)
            t = np.array(head.location) @ inv.T / rig_import.CM_TO_M
            frames.append(take_mod.make_frame(i, (f - scene.frame_start) / fps, expression=x, rotation=quat,
                                              translation=t, landmarks=np.zeros((73, 2))))
    finally:
        scene.frame_set(current)
    return take_mod.make_take(f"blender:{rig.name}", fps, scene.render.resolution_x, scene.render.resolution_y,
                              0.0, frames)


class FACECAP_OT_import_take(JsonFile, bpy.types.Operator, ImportHelper):
    """Read a facecap take and bake it onto the face rig (and the retarget targets)"""
    bl_idname = "facecap.import_take"
    bl_label = "Import Take"

    def execute(self, context):
        take_mod = engines.core_module("take")
        try:
            take = take_mod.read_take(self.filepath)
        except take_mod.TakeFileError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if context.scene.facecap.rig is None:
            self.report({"ERROR"}, "no face rig to animate: import the face rig first (Rig → Import Face Rig)")
            return {"CANCELLED"}
        n = capture_ops.bake_take(context, take)
        context.scene.facecap.last_take = self.filepath
        self.report({"INFO"}, f"baked {n} frames from {os.path.basename(self.filepath)}")
        return {"FINISHED"}


class FACECAP_OT_export_take(JsonFile, bpy.types.Operator, ExportHelper):
    """Write the face rig's animation over the scene's frame range as a facecap take"""
    bl_idname = "facecap.export_take"
    bl_label = "Export Take"

    @classmethod
    def poll(cls, context):
        rig = context.scene.facecap.rig
        return rig is not None and rig.data.shape_keys is not None

    def execute(self, context):
        take = rig_take(context, context.scene.facecap.rig)
        try:
            engines.core_module("take").write_take(self.filepath, take)
        except OSError as exc:
            self.report({"ERROR"}, f"cannot write {self.filepath}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"wrote {len(take['frames'])} frames to {os.path.basename(self.filepath)}")
        return {"FINISHED"}


class FACECAP_OT_export_csv(bpy.types.Operator, ExportHelper):
    """Write the last take as a Live Link Face style CSV (52 ARKit values, head and eye angles per frame)"""
    bl_idname = "facecap.export_csv"
    bl_label = "Export Live Link CSV"
    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return bool(context.scene.facecap.last_take)

    def execute(self, context):
        take_mod = engines.core_module("take")
        export = engines.core_module("export")
        try:
            take = take_mod.read_take(bpy.path.abspath(context.scene.facecap.last_take))
            n = export.write_livelink_csv(take, self.filepath)
        except (take_mod.TakeFileError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"wrote {n} rows to {os.path.basename(self.filepath)}")
        return {"FINISHED"}


CLASSES = (FACECAP_OT_import_take, FACECAP_OT_export_take, FACECAP_OT_export_csv)


register, unregister = registrar(CLASSES)
