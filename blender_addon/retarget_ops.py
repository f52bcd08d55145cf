"""Retargeting onto the user's characters: target meshes with their own shape-key names (auto-detected scheme,
editable mapping, JSON presets), head rotation onto an object or a bone, gaze onto eye bones; live (the newest
frame poses the targets) or baked (keyframes in bulk from a take).

The mapping logic is facecap_core.retarget (pure Python); this module keeps it in Blender properties, so it is
saved with the .blend and editable in the sidebar.
"""
from __future__ import annotations

import bpy
import numpy as np
from bpy.props import (BoolProperty, CollectionProperty, FloatProperty, IntProperty, PointerProperty, StringProperty)
from bpy_extras.io_utils import ExportHelper, ImportHelper
from mathutils import Quaternion

from . import engines, keyframes, rig_import
from .registration import JsonFile, registrar


def _retarget():
    return engines.core_module("retarget")


class FacecapChannel(bpy.types.PropertyGroup):
    target: StringProperty(name="Shape Key")
    source: StringProperty(name="Source", description="fw46 coefficient (EyeBlink_L …) or ARKit name (jawOpen …)")
    gain: FloatProperty(name="Gain", default=1.0, soft_min=0.0, soft_max=3.0)
    offset: FloatProperty(name="Offset", default=0.0, soft_min=-1.0, soft_max=1.0)
    clamp_min: FloatProperty(name="Min", default=0.0)
    clamp_max: FloatProperty(name="Max", default=1.0)
    mirror: BoolProperty(name="Mirror", description="Read the other side's channel", default=False)
    enabled: BoolProperty(name="Enabled", default=True)


class FacecapTarget(bpy.types.PropertyGroup):
    obj: PointerProperty(name="Mesh", type=bpy.types.Object)
    scheme: StringProperty(name="Scheme")
    coverage: FloatProperty(name="Coverage", subtype="FACTOR")
    channels: CollectionProperty(type=FacecapChannel)
    active_channel: IntProperty()


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


class FacecapRetarget(bpy.types.PropertyGroup):
    targets: CollectionProperty(type=FacecapTarget)
    active_target: IntProperty()
    live: BoolProperty(name="Live", default=True, description="Pose the targets with each live frame "
                       "(non-destructive: no keys until you record or bake)")
    bake: BoolProperty(name="Bake", default=True, description="Key the targets when a take is baked")
    head_object: PointerProperty(name="Head Object", type=bpy.types.Object,
                                 description="Object that takes the head rotation")
    armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature)
    head_bone: StringProperty(name="Head Bone")
    eye_bone_l: StringProperty(name="Left Eye Bone", description="The subject's left eye")
    eye_bone_r: StringProperty(name="Right Eye Bone")


# ------------------------------------------------------------------------------------------------- mapping
def mapping_of(target: FacecapTarget):
    r = _retarget()
    return r.Mapping([r.Channel(c.target, c.source, c.gain, c.offset, c.clamp_min, c.clamp_max, c.mirror, c.enabled)
                      for c in target.channels], target.scheme or None)


def set_mapping(target: FacecapTarget, mapping) -> None:
    target.channels.clear()
    for ch in mapping.channels:
        item = target.channels.add()
        for k in ("target", "source", "gain", "offset", "clamp_min", "clamp_max", "mirror", "enabled"):
            setattr(item, k, getattr(ch, k))
    target.scheme = mapping.scheme or ""


def detect_into(target: FacecapTarget) -> str:
    """Fill a target's mapping from its shape keys; raises ValueError (one line) when it has none that match."""
    obj = target.obj
    keys = obj.data.shape_keys if obj is not None and obj.type == "MESH" else None
    if keys is None:
        raise ValueError(f"{obj.name if obj else 'the target'} has no shape keys: add face shape keys (ARKit, Live "
                         "Link, _L/_R, Character Creator or fw46 names) or choose another mesh")
    det = _retarget().detect_scheme([kb.name for kb in keys.key_blocks])
    if det.scheme is None:
        raise ValueError(f"{obj.name}: none of its {len(keys.key_blocks)} shape keys has a face channel name "
                         "(ARKit, Live Link, _L/_R, Character Creator or fw46)")
    set_mapping(target, _retarget().Mapping.from_detection(det))
    target.coverage = det.coverage
    return f"{obj.name}: {det.scheme} names, {len(det.mapping)} shape keys driven ({det.coverage:.0%} of the channels)"


# -------------------------------------------------------------------------------------------- head and eyes
def head_rotation(frame: dict) -> Quaternion:
    """The tracked head rotation in Blender's frame (the camera→Blender change is rig_import's)."""
    return Quaternion(rig_import.rotation_to_blender(np.array(frame["rotation"], np.float64)).tolist())


def eye_rotations(expression) -> list[Quaternion]:
    """(left, right) eye rotations in the head's Blender frame: yaw about +Z (towards the subject's left, +X),
    pitch about −X (up, +Z), as facecap_core.retarget.gaze_angles defines them."""
    angles = _retarget().gaze_angles(np.asarray(expression, np.float64))
    return [Quaternion((0.0, 0.0, 1.0), float(yaw)) @ Quaternion((1.0, 0.0, 0.0), -float(pitch))
            for yaw, pitch in angles]


def bone_local(bone, rotation: Quaternion) -> Quaternion:
    """A rotation given in armature space, as the pose bone's own (rest-relative) rotation."""
    rest = bone.bone.matrix_local.to_3x3()
    return (rest.inverted() @ rotation.to_matrix() @ rest).to_quaternion()


def _pose_targets(settings: FacecapRetarget, head: Quaternion | None, eyes: list[Quaternion] | None):
    """(id_data, data_path, quaternion) for each driven head/eye rotation."""
    out = []
    if head is not None and settings.head_object is not None:
        out.append((settings.head_object, "rotation_quaternion", head))
    arm = settings.armature
    if arm is not None:
        for name, q in ((settings.head_bone, head), (settings.eye_bone_l, eyes and eyes[0]),
                        (settings.eye_bone_r, eyes and eyes[1])):
            bone = arm.pose.bones.get(name) if name else None
            if bone is not None and q is not None:
                out.append((arm, f'pose.bones["{name}"].rotation_quaternion', bone_local(bone, q)))
    return out


def _set_quaternion(id_data, data_path: str, q: Quaternion) -> None:
    owner = id_data.path_resolve(data_path.rsplit(".", 1)[0]) if "." in data_path else id_data
    owner.rotation_mode = "QUATERNION"
    owner.rotation_quaternion = q


# ------------------------------------------------------------------------------------------------ live, bake
def apply_live(context, expression, frame: dict) -> None:
    """Pose every target with one (calibrated) frame; called by the capture timer on the main thread."""
    settings = context.scene.facecap_retarget
    if not settings.live:
        return
    sources = _retarget().source_values(np.asarray(expression, np.float64))
    for target in settings.targets:
        if target.obj is None or target.obj.data.shape_keys is None or not len(target.channels):
            continue
        blocks = target.obj.data.shape_keys.key_blocks
        for name, value in mapping_of(target).apply(sources).items():
            if name in blocks:
                blocks[name].value = value
    for id_data, path, q in _pose_targets(settings, head_rotation(frame), eye_rotations(expression)):
        _set_quaternion(id_data, path, q)


def bake(context, take: dict, frame_start: int, fps: float) -> int:
    """Keys on every target from a (calibrated) take, in bulk. Returns the number of keyed frames."""
    settings = context.scene.facecap_retarget
    if not settings.bake:
        return 0
    frames = [f for f in take["frames"] if f.get("tracked") and f.get("expression") is not None]
    if not frames:
        return 0
    times = keyframes.take_frame_numbers(take, frame_start, fps)
    expression = np.array([f["expression"] for f in frames], np.float64)
    for target in settings.targets:
        if target.obj is None or target.obj.data.shape_keys is None or not len(target.channels):
            continue
        names, values = mapping_of(target).apply_array(expression)  # from the calibrated coefficients
        keys = target.obj.data.shape_keys
        for j, name in enumerate(names):
            if name in keys.key_blocks:
                keyframes.write_keyframes(keys, f'key_blocks["{name}"].value', times, values[:, j], group="Facecap")
    heads = [head_rotation(f) for f in frames]
    eyes = [eye_rotations(x) for x in expression]
    per_frame = [_pose_targets(settings, h, e) for h, e in zip(heads, eyes)]
    for k, (id_data, path, _q) in enumerate(per_frame[0]):
        quats = np.array([list(p[k][2]) for p in per_frame])
        for i in range(1, len(quats)):  # q and −q are one rotation: keep neighbours in one hemisphere
            if np.dot(quats[i], quats[i - 1]) < 0:
                quats[i] = -quats[i]
        _set_quaternion(id_data, path, Quaternion(quats[0].tolist()))
        for i in range(4):
            keyframes.write_keyframes(id_data, path, times, quats[:, i], index=i, group="Facecap Head")
    return len(frames)


# ------------------------------------------------------------------------------------------------ operators
def _active(context) -> FacecapTarget | None:
    s = context.scene.facecap_retarget
    return s.targets[s.active_target] if 0 <= s.active_target < len(s.targets) else None


class _NeedsTarget:
    @classmethod
    def poll(cls, context):
        return _active(context) is not None


class FACECAP_OT_retarget_add(bpy.types.Operator):
    """Add the selected meshes as retarget targets and detect their shape-key naming"""
    bl_idname = "facecap.retarget_add"
    bl_label = "Add Selected"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.facecap_retarget
        rig = context.scene.facecap.rig
        meshes = [o for o in context.selected_objects if o.type == "MESH" and o != rig]
        if not meshes:
            self.report({"ERROR"}, "select the character mesh(es) to drive first")
            return {"CANCELLED"}
        lines = []
        for obj in meshes:
            if any(t.obj == obj for t in s.targets):
                continue
            target = s.targets.add()
            target.obj = obj
            try:
                lines.append(detect_into(target))
            except ValueError as exc:
                s.targets.remove(len(s.targets) - 1)
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
        s.active_target = len(s.targets) - 1
        self.report({"INFO"}, "; ".join(lines) or "already targets")
        return {"FINISHED"}


class FACECAP_OT_retarget_remove(_NeedsTarget, bpy.types.Operator):
    """Stop driving the active target"""
    bl_idname = "facecap.retarget_remove"
    bl_label = "Remove Target"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.facecap_retarget
        s.targets.remove(s.active_target)
        s.active_target = max(0, s.active_target - 1)
        return {"FINISHED"}


class FACECAP_OT_retarget_detect(_NeedsTarget, bpy.types.Operator):
    """Detect the active target's naming scheme again (replaces its mapping)"""
    bl_idname = "facecap.retarget_detect"
    bl_label = "Detect"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            self.report({"INFO"}, detect_into(_active(context)))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class FACECAP_OT_retarget_save_preset(_NeedsTarget, JsonFile, bpy.types.Operator, ExportHelper):
    """Save the active target's mapping as a JSON preset"""
    bl_idname = "facecap.retarget_save_preset"
    bl_label = "Save Preset"

    def execute(self, context):
        try:
            _retarget().save_preset(self.filepath, mapping_of(_active(context)))
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"cannot save the preset: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"saved {len(_active(context).channels)} channels")
        return {"FINISHED"}


class FACECAP_OT_retarget_load_preset(_NeedsTarget, JsonFile, bpy.types.Operator, ImportHelper):
    """Load a JSON preset into the active target's mapping"""
    bl_idname = "facecap.retarget_load_preset"
    bl_label = "Load Preset"

    def execute(self, context):
        try:
            mapping = _retarget().load_preset(self.filepath)
        except ValueError as exc:  # PresetError: one line naming the file
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        set_mapping(_active(context), mapping)
        self.report({"INFO"}, f"loaded {len(mapping.channels)} channels")
        return {"FINISHED"}


class FACECAP_OT_retarget_bake_take(bpy.types.Operator):
    """Key the targets from the last take"""
    bl_idname = "facecap.retarget_bake_take"
    bl_label = "Bake Last Take"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return bool(context.scene.facecap.last_take) and len(context.scene.facecap_retarget.targets) > 0

    def execute(self, context):
        from . import capture_ops  # noqa: PLC0415

        take_mod = engines.core_module("take")
        try:
            take = take_mod.read_take(bpy.path.abspath(context.scene.facecap.last_take))
        except take_mod.TakeFileError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        scene = context.scene
        calibrated = dict(take, frames=[dict(f, expression=capture_ops.calibrated(f["expression"], scene.facecap)
                                             .tolist()) if f.get("tracked") else f for f in take["frames"]])
        try:
            n = bake(context, calibrated, scene.facecap.frame_start, scene.render.fps / scene.render.fps_base)
        except ValueError as exc:  # a mapping that drives one key twice, an unknown source
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"keyed {n} frames on {len(scene.facecap_retarget.targets)} targets")
        return {"FINISHED"}


# --------------------------------------------------------------------------------------------------- UI
class FACECAP_UL_channels(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.label(text=item.target)
        row.prop(item, "source", text="")
        row.prop(item, "gain", text="")


class FACECAP_UL_targets(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        layout.label(text=f"{item.obj.name if item.obj else '(deleted)'}  [{item.scheme or '?'}]",
                     icon="OUTLINER_OB_MESH")


class FACECAP_PT_retarget(bpy.types.Panel):
    bl_space_type, bl_region_type, bl_category = "VIEW_3D", "UI", "Facecap"
    bl_label = "Retarget"
    bl_parent_id = "FACECAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.facecap_retarget
        layout = self.layout
        row = layout.row()
        row.template_list("FACECAP_UL_targets", "", s, "targets", s, "active_target", rows=2)
        col = row.column(align=True)
        col.operator("facecap.retarget_add", text="", icon="ADD")
        col.operator("facecap.retarget_remove", text="", icon="REMOVE")
        target = _active(context)
        if target is not None:
            row = layout.row(align=True)
            row.operator("facecap.retarget_detect", icon="VIEWZOOM")
            row.operator("facecap.retarget_load_preset", text="", icon="IMPORT")
            row.operator("facecap.retarget_save_preset", text="", icon="EXPORT")
            layout.template_list("FACECAP_UL_channels", "", target, "channels", target, "active_channel", rows=4)
            if 0 <= target.active_channel < len(target.channels):
                ch = target.channels[target.active_channel]
                col = layout.column(align=True)
                col.prop(ch, "source")
                row = col.row(align=True)
                row.prop(ch, "gain")
                row.prop(ch, "offset")
                row = col.row(align=True)
                row.prop(ch, "clamp_min")
                row.prop(ch, "clamp_max")
                col.prop(ch, "mirror")
        layout.prop(s, "head_object")
        layout.prop(s, "armature")
        if s.armature is not None:
            layout.prop_search(s, "head_bone", s.armature.data, "bones")
            layout.prop_search(s, "eye_bone_l", s.armature.data, "bones")
            layout.prop_search(s, "eye_bone_r", s.armature.data, "bones")
        row = layout.row()
        row.prop(s, "live")
        row.prop(s, "bake")
        layout.operator("facecap.retarget_bake_take", icon="KEYINGSET")


CLASSES = (FacecapChannel, FacecapTarget, FacecapRetarget, FACECAP_OT_retarget_add, FACECAP_OT_retarget_remove,
           FACECAP_OT_retarget_detect, FACECAP_OT_retarget_save_preset, FACECAP_OT_retarget_load_preset,
           FACECAP_OT_retarget_bake_take, FACECAP_UL_channels, FACECAP_UL_targets, FACECAP_PT_retarget)


register, unregister = registrar(CLASSES, {"facecap_retarget": FacecapRetarget})
