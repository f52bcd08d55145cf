"""facecap Blender extension (thin: the capture engine is facecap_core; see README.md).

For now: a "Facecap" tab in the 3D View sidebar with an "Import Face Rig" operator that builds the fw46 rig
(object FaceRig, Basis + 46 shape keys) from the bundled rigs/fw46.npz, or from a chosen .npz.
"""
from __future__ import annotations

import os

import bpy
from bpy.props import StringProperty

from . import rig_import


def bundled_rig_path() -> str:
    """rigs/fw46.npz inside the extension zip, or beside blender_addon/ in a source checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "rigs", "fw46.npz"), os.path.join(os.path.dirname(here), "rigs", "fw46.npz")):
        if os.path.exists(candidate):
            return candidate
    return os.path.join(here, "rigs", "fw46.npz")


class FACECAP_OT_import_face_rig(bpy.types.Operator):
    """Add the fw46 face rig (46 expression shape keys) to the scene"""

    bl_idname = "facecap.import_face_rig"
    bl_label = "Import Face Rig"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Rig file", description="facecap-rig .npz (empty: the bundled fw46 rig)",
                             default="", subtype="FILE_PATH")

    def execute(self, context):
        path = bpy.path.abspath(self.filepath) if self.filepath else bundled_rig_path()
        if not os.path.exists(path):
            self.report({"ERROR"}, f"rig file not found: {path}")
            return {"CANCELLED"}
        try:
            obj = rig_import.import_rig_file(path, collection=context.collection)
        except (OSError, ValueError, KeyError) as exc:
            self.report({"ERROR"}, f"cannot read rig {path}: {exc}")
            return {"CANCELLED"}
        for other in context.selected_objects:
            other.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        self.report({"INFO"}, f"imported {obj.name}: {len(obj.data.shape_keys.key_blocks) - 1} shape keys")
        return {"FINISHED"}


class FACECAP_PT_main(bpy.types.Panel):
    bl_label = "Facecap"
    bl_idname = "FACECAP_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Facecap"

    def draw(self, context):
        layout = self.layout
        layout.operator(FACECAP_OT_import_face_rig.bl_idname, icon="MESH_MONKEY")
        layout.label(text="Capture: not available yet")


CLASSES = (FACECAP_OT_import_face_rig, FACECAP_PT_main)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
