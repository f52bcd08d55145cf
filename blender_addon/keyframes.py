"""Keyframe writing for Blender 4.2 – 5.0, in bulk (no per-key Python calls).

Blender 5.0 removed `Action.fcurves`: F-curves live in a channelbag per action slot, reached with
`bpy_extras.anim_utils.action_ensure_channelbag_for_slot` (4.4+). On 4.2/4.3 only the legacy
`action.fcurves` exists. `fcurve_for` hides the difference; `write_keyframes` fills an F-curve with
`keyframe_points.foreach_set`. `apply_take` animates a FaceRig object from a take (design §6).
Self-contained like `rig_import` (importable with or without the add-on package).
"""
from __future__ import annotations

import numpy as np


def _channel_container(id_data, action_name: str | None = None):
    """The F-curve collection of `id_data`'s action (created and assigned if missing), for its slot."""
    import bpy

    anim = id_data.animation_data or id_data.animation_data_create()
    action = anim.action
    if action is None:
        action = bpy.data.actions.new(action_name or f"{id_data.name}Action")
        anim.action = action
    try:
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot
    except ImportError:  # 4.2 / 4.3: layered actions do not exist yet
        return action.fcurves
    slot = getattr(anim, "action_slot", None)
    if slot is None:
        slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
        anim.action_slot = slot
    return action_ensure_channelbag_for_slot(action, slot).fcurves


def fcurve_for(id_data, data_path: str, index: int = 0, group: str | None = None, action_name: str | None = None):
    """Find or create the F-curve animating `id_data.<data_path>[index]`."""
    fcurves = _channel_container(id_data, action_name)
    fc = fcurves.find(data_path, index=index)
    if fc is None:
        if not group:
            fc = fcurves.new(data_path, index=index)
        else:
            try:  # channelbag (4.4+) calls it group_name, the legacy action.fcurves action_group
                fc = fcurves.new(data_path, index=index, group_name=group)
            except TypeError:
                fc = fcurves.new(data_path, index=index, action_group=group)
    return fc


def write_keyframes(id_data, data_path: str, frames, values, index: int = 0, interpolation: str = "LINEAR",
                    group: str | None = None, action_name: str | None = None):
    """Replace the keys of `id_data.<data_path>[index]` with (frames[i], values[i]); frames and values (N,).
    Returns the F-curve."""
    frames = np.asarray(frames, np.float32).ravel()
    values = np.asarray(values, np.float32).ravel()
    if frames.shape != values.shape:
        raise ValueError(f"frames {frames.shape} and values {values.shape} differ")
    fc = fcurve_for(id_data, data_path, index, group, action_name)
    points = fc.keyframe_points
    if len(points):
        points.clear()
    points.add(len(frames))
    co = np.column_stack([frames, values]).ravel()
    points.foreach_set("co", co)
    points.foreach_set("handle_left", co)
    points.foreach_set("handle_right", co)
    for p in points:  # enum: no bulk setter that works on every version
        p.interpolation = interpolation
    fc.update()
    return fc


def take_frame_numbers(take: dict, frame_start: int = 1, fps: float | None = None) -> np.ndarray:
    """Scene frame of each tracked take frame: frame_start + time · fps (fps: the scene's; None → the take's,
    which makes frame n of footage land on frame_start + n). Sub-frame positions are kept: a live take's
    timestamps are irregular, and snapping would bunch or drop keys."""
    fps = float(fps or take.get("fps") or 30.0)
    return np.array([frame_start + f["time"] * fps for f in take["frames"] if f.get("tracked")], np.float64)


def apply_take(obj, take: dict, frame_start: int = 1, fps: float | None = None, pose: bool = True,
               head=None) -> int:
    """Animate FaceRig `obj` (built by rig_import) from a take dict: shape-key values from each tracked frame's
    "expression" and (pose=True) the rotation/location of `head` (the rig's head empty; default the rig object
    itself) from "rotation"/"translation" (camera frame, cm → Blender via rig_import's frame change), at
    `take_frame_numbers`. Untracked frames get no key. Returns the number of keyed frames."""
    try:
        from . import rig_import
    except ImportError:
        import rig_import

    frames = [f for f in take["frames"] if f.get("tracked")]
    if not frames:
        return 0
    times = take_frame_numbers(take, frame_start, fps)
    expr = np.array([f["expression"] for f in frames], np.float64)
    keys = obj.data.shape_keys
    for j, name in enumerate(take["expression_names"]):
        if name in keys.key_blocks:
            write_keyframes(keys, f'key_blocks["{name}"].value', times, expr[:, j], group="Expressions")
    if pose:
        head = head or obj
        head.rotation_mode = "QUATERNION"
        quat = rig_import.rotation_to_blender(np.array([f["rotation"] for f in frames]))
        loc = rig_import.model_to_blender(np.array([f["translation"] for f in frames]))
        for i in range(4):
            write_keyframes(head, "rotation_quaternion", times, quat[:, i], index=i, group="Head")
        for i in range(3):
            write_keyframes(head, "location", times, loc[:, i], index=i, group="Head")
    return len(frames)
