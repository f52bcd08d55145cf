"""The "Facecap" tab of the 3D View sidebar: Source, Live, Record, Footage, Rig & Takes (Retarget and Composite
add their own sub-panels)."""
from __future__ import annotations

import bpy

from .capture_ops import Runtime
from .registration import registrar


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Facecap"


class FACECAP_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "Facecap"
    bl_idname = "FACECAP_PT_main"

    def draw(self, context):
        s = context.scene.facecap
        col = self.layout.column(align=True)
        if Runtime.client is not None:
            col.label(text=f"{Runtime.kind.lower()}: {s.live_fps:.1f} fps", icon="REC" if Runtime.recorder else "PLAY")
        if s.status:
            for line in _wrap(s.status, 48)[:4]:
                col.label(text=line)


class FACECAP_PT_source(_Sidebar, bpy.types.Panel):
    bl_label = "Source"
    bl_parent_id = "FACECAP_PT_main"

    def draw(self, context):
        s = context.scene.facecap
        layout = self.layout
        layout.prop(s, "source", expand=True)
        if s.source == "CAMERA":
            row = layout.row()
            row.prop(s, "camera_index")
            row.prop(s, "mirror")
        elif s.source == "CLIP":
            layout.template_ID(s, "clip", open="clip.open")
        else:
            layout.prop(s, "filepath")
        layout.prop(s, "segmentation")


class FACECAP_PT_live(_Sidebar, bpy.types.Panel):
    bl_label = "Live"
    bl_parent_id = "FACECAP_PT_main"

    def draw(self, context):
        s = context.scene.facecap
        layout = self.layout
        row = layout.row(align=True)
        if Runtime.client is None:
            row.operator("facecap.live_start", icon="PLAY")
        else:
            row.operator("facecap.live_stop", icon="SNAP_FACE")
        layout.prop(s, "rig")
        row = layout.row(align=True)
        row.operator("facecap.calibrate_neutral", icon="RESTRICT_SELECT_OFF")
        row.prop(s, "use_neutral", text="", icon="CHECKMARK")
        layout.prop(s, "smoothing", slider=True)
        layout.prop(s, "drive_head")


class FACECAP_PT_record(_Sidebar, bpy.types.Panel):
    bl_label = "Record"
    bl_parent_id = "FACECAP_PT_main"

    def draw(self, context):
        s = context.scene.facecap
        layout = self.layout
        recording = Runtime.recorder is not None
        layout.operator("facecap.record", text="Stop Recording" if recording else "Record",
                        icon="SNAP_FACE" if recording else "REC", depress=recording)
        layout.prop(s, "take_dir")
        layout.prop(s, "frame_start")


class FACECAP_PT_footage(_Sidebar, bpy.types.Panel):
    bl_label = "Process Footage"
    bl_parent_id = "FACECAP_PT_main"

    def draw(self, context):
        s = context.scene.facecap
        layout = self.layout
        if Runtime.client is not None and Runtime.kind == "FOOTAGE":
            layout.prop(s, "progress", slider=True)
            layout.operator("facecap.live_stop", text="Cancel", icon="CANCEL")
        else:
            layout.operator("facecap.process_footage", icon="SEQUENCE")


class FACECAP_PT_rig(_Sidebar, bpy.types.Panel):
    bl_label = "Rig & Takes"
    bl_parent_id = "FACECAP_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.operator("facecap.import_face_rig", icon="MESH_MONKEY")
        col = layout.column(align=True)
        col.operator("facecap.import_take", icon="IMPORT")
        col.operator("facecap.export_take", icon="EXPORT")
        col.operator("facecap.export_csv", icon="FILE")


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


CLASSES = (FACECAP_PT_main, FACECAP_PT_source, FACECAP_PT_live, FACECAP_PT_record, FACECAP_PT_footage, FACECAP_PT_rig)


register, unregister = registrar(CLASSES)
