"""facecap Blender extension: live facial capture, recording, footage processing, retargeting and a composite
preview, in a "Facecap" tab of the 3D View sidebar. Thin: the engine is facecap_core (bundled beside this file in
the extension zip), run in Blender's process, in an external Python, or on a remote `facecap serve`
(engines.py; chosen in the add-on preferences).

Modules: props (settings), capture_ops (live / record / footage, the main-thread timer), takes_io (take files,
CSV), retarget_ops (characters), composite (the preview under occluders), panels (UI), rig_import and keyframes
(self-contained helpers also used outside the add-on).
"""
from __future__ import annotations

import os

import bpy
from bpy.props import StringProperty

from . import capture_ops, composite, panels, props, retarget_ops, rig_import, takes_io


def bundled_rig_path() -> str:
    """rigs/fw46.npz inside the extension zip, or beside blender_addon/ in a source checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "rigs", "fw46.npz"), os.path.join(os.path.dirname(here), "rigs", "fw46.npz")):
        if os.path.exists(candidate):
            return candidate
    return os.path.join(here, "rigs", "fw46.npz")


class FACECAP_OT_import_face_rig(bpy.types.Operator):
    """Add the fw46 face rig (46 expression shape keys) to the scene; the capture drives it"""

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
        # the head empty carries the head pose; the rig (and anything else the user parents, a hat, glasses)
        # follows it
        head = bpy.data.objects.new(f"{obj.name}_Head", None)
        head.empty_display_type, head.empty_display_size = "PLAIN_AXES", 0.1
        head.rotation_mode = "QUATERNION"
        (context.collection or context.scene.collection).objects.link(head)
        obj.parent = head
        for other in context.selected_objects:
            other.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        context.scene.facecap.rig, context.scene.facecap.head = obj, head
        self.report({"INFO"}, f"imported {obj.name} (head empty {head.name}): "
                              f"{len(obj.data.shape_keys.key_blocks) - 1} shape keys")
        return {"FINISHED"}


MODULES = (props, capture_ops, takes_io, panels, retarget_ops, composite)  # panels before their sub-panels


def register():
    for m in MODULES:
        m.register()
    bpy.utils.register_class(FACECAP_OT_import_face_rig)


def unregister():
    bpy.utils.unregister_class(FACECAP_OT_import_face_rig)
    for m in reversed(MODULES):
        m.unregister()
