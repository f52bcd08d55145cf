"""Live capture, recording and footage processing: the operators and the main-thread timer that drains the engine.

Blender's API is not thread-safe. The engine runs on a thread or in a child process (engines.py); a
`bpy.app.timers` function on the main thread polls its frames, records them (journaled on disk as they come, so
a crash loses at most a second), applies the newest one to the rig and its retarget targets, and at the end bakes
the take as keyframes in bulk. Nothing here touches bpy from another thread.

Errors never raise out of the timer: they end the capture, keep the frames recorded so far, and are reported
as one line (a Blender error report and the panel's status).
"""
from __future__ import annotations

import os
import time

import bpy
import numpy as np
from bpy.props import StringProperty

from . import engines, keyframes
from .registration import registrar

ENGINE_REPORT: dict = {}  # the last engine check, shown in the preferences


class Runtime:
    """The capture in progress (one at a time; main thread only)."""
    client = None
    kind = ""  # "LIVE" or "FOOTAGE"
    recorder = None  # TakeRecorder while recording
    record_path = ""
    footage_frames: list = []
    footage_path = ""
    last_frame = None
    cancelled = False


def prefs(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def report_error(message: str) -> None:
    """A Blender error report from anywhere on the main thread (also from a timer, where no operator runs)."""
    try:
        bpy.ops.facecap.report("INVOKE_DEFAULT", message=message)
    except Exception:  # noqa: BLE001 - no window (background mode): the panel status still says it
        print(f"facecap: {message}")


def set_status(scene, text: str) -> None:
    scene.facecap.status = text[:1000]


# ------------------------------------------------------------------------------------------------- engine choice
def choose_engine(context) -> tuple[str, str, str]:
    """(client mode "IN_PROCESS"/"WORKER", python, why) for the preferences' choice; raises RuntimeError (one
    line, with what to do) when none works."""
    p = prefs(context)
    choice = p.engine if p else "AUTO"
    python = p.python if p else ""
    if choice in ("IN_PROCESS", "AUTO", "REMOTE"):
        ok, why = engines.in_process_status()
        if ok:
            return "IN_PROCESS", "", why
        if choice == "IN_PROCESS" or (choice == "REMOTE" and not python):
            raise RuntimeError(why)
    ok, why_worker = engines.worker_status(python)
    if ok:
        return "WORKER", python, why_worker
    raise RuntimeError(f"no engine can run: {why_worker}; or install the platform build of the extension, or "
                       "use a remote engine")


def engine_options(context, live: bool, masks_dir: str | None = None):
    """EngineOptions for a capture. A live capture keeps its newest frame and mask for the composite preview;
    footage writes a mask per frame (masks_dir) for the compositor."""
    settings = context.scene.facecap
    p = prefs(context)
    options = engines.core_module("capture.session").EngineOptions(
        segmentation=settings.segmentation, smoothing=settings.smoothing, mirror=live and settings.mirror,
        keep_latest=live, masks_dir=masks_dir)
    if p and p.engine == "REMOTE":
        options.remote, options.token = p.remote, (p.token or None)
    return options


def source_spec(context) -> str:
    """The engine's source string for the panel's choice; raises RuntimeError (one line) when it is unusable."""
    s = context.scene.facecap
    if s.source == "CAMERA":
        return f"camera:{s.camera_index}"
    if s.source == "CLIP":
        if s.clip is None:
            raise RuntimeError("no movie clip chosen (Source → Clip)")
        path = bpy.path.abspath(s.clip.filepath)
        if s.clip.source == "SEQUENCE":
            path = os.path.join(os.path.dirname(path), "*" + os.path.splitext(path)[1])
        elif not os.path.exists(path):
            raise RuntimeError(f"the movie clip's file is missing: {path} (relink or reload the clip)")
        return path
    path = bpy.path.abspath(s.filepath)
    if not path or not os.path.exists(path):
        raise RuntimeError(f"file not found: {path or '(none chosen)'}")
    return path


# --------------------------------------------------------------------------------------------- applying frames
def calibrated(expression, settings) -> np.ndarray:
    """Expressions minus the calibrated rest face, rescaled so that a full activation still reaches 1."""
    x = np.asarray(expression, np.float64)
    if not settings.use_neutral:
        return x
    n = np.clip(np.asarray(settings.neutral, np.float64), 0.0, 0.95)
    return np.clip((x - n) / (1.0 - n), 0.0, 1.0)


def apply_frame(context, frame: dict) -> None:
    """Pose the rig (and the retarget targets) with one tracked take frame, now (live preview)."""
    settings = context.scene.facecap
    rig = settings.rig
    if not frame.get("tracked") or rig is None or rig.data.shape_keys is None:
        return
    x = calibrated(frame["expression"], settings)
    blocks = rig.data.shape_keys.key_blocks
    for name, value in zip(engines.core_module("rig.model").EXPRESSION_NAMES, x):
        block = blocks.get(name)
        if block is not None:
            block.value = float(value)
    if settings.drive_head:
        from . import rig_import  # noqa: PLC0415

        head = settings.head or rig
        head.rotation_mode = "QUATERNION"
        head.rotation_quaternion = rig_import.rotation_to_blender(np.array(frame["rotation"]))
        head.location = rig_import.model_to_blender(np.array(frame["translation"]))
    try:
        from . import retarget_ops  # noqa: PLC0415
    except ImportError:
        return
    retarget_ops.apply_live(context, x, frame)


def bake_take(context, take: dict) -> int:
    """Keyframes (in bulk) on the rig and the retarget targets from a take, at the take's timestamps in the
    scene's fps. Returns the number of keyed frames."""
    scene = context.scene
    settings = scene.facecap
    fps = scene.render.fps / scene.render.fps_base
    frames = [f for f in take["frames"] if f.get("tracked")]
    if not frames:
        return 0
    calibrated_take = dict(take, frames=[dict(f, expression=calibrated(f["expression"], settings).tolist())
                                         for f in frames])
    n = 0
    if settings.rig is not None and settings.rig.data.shape_keys is not None:
        n = keyframes.apply_take(settings.rig, calibrated_take, frame_start=settings.frame_start, fps=fps,
                                 pose=settings.drive_head, head=settings.head)
    try:
        from . import retarget_ops  # noqa: PLC0415
    except ImportError:
        return n
    return max(n, retarget_ops.bake(context, calibrated_take, settings.frame_start, fps))


# ----------------------------------------------------------------------------------------------------- the timer
def _tick():
    context = bpy.context
    scene = context.scene
    client = Runtime.client
    if client is None:
        return None
    try:
        frames = client.poll()
        for f in frames:
            if Runtime.recorder is not None:
                Runtime.recorder.add(f)
            if Runtime.kind == "FOOTAGE":
                Runtime.footage_frames.append(f)
        tracked = [f for f in frames if f.get("tracked")]
        if tracked and Runtime.kind == "LIVE":
            Runtime.last_frame = tracked[-1]
            apply_frame(context, tracked[-1])
        scene.facecap.live_fps = float(client.fps)
        if client.total:
            scene.facecap.progress = 100.0 * client.done / client.total
        if not client.running:
            _finish(context)
            return None
    except Exception as exc:  # noqa: BLE001 - never a traceback from a timer: stop, keep the frames, say why
        Runtime.client.stop()
        _finish(context, f"capture stopped: {type(exc).__name__}: {exc}")
        return None
    _redraw(context)
    return 1.0 / 60.0


def _redraw(context) -> None:
    for window in getattr(context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PROPERTIES"):
                area.tag_redraw()


def start(context, kind: str, spec: str, live: bool) -> None:
    mode, python, why = choose_engine(context)
    masks_dir = None
    if kind == "FOOTAGE" and not (prefs(context) and prefs(context).engine == "REMOTE"):  # the masks stay remote
        masks_dir = os.path.splitext(_take_path(context))[0] + "_masks"
        composite = getattr(context.scene, "facecap_composite", None)
        if composite is not None:  # the compositor setup reads this footage's masks
            composite.masks_dir = masks_dir
    Runtime.client = engines.start_client(mode, spec, engine_options(context, kind == "LIVE", masks_dir),
                                          python=python)
    Runtime.kind, Runtime.cancelled, Runtime.footage_frames, Runtime.last_frame = kind, False, [], None
    Runtime.footage_path = spec
    context.scene.facecap.progress = 0.0
    set_status(context.scene, f"{'live' if live else 'processing'}: {spec} ({why})")
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.05)


def _finish(context, error: str = "") -> None:
    """The engine ended (or failed): drain what is left, close the take, bake, report."""
    scene = context.scene
    client = Runtime.client
    rest = client.poll() if client is not None else []
    for f in rest:
        if Runtime.recorder is not None:
            Runtime.recorder.add(f)
        if Runtime.kind == "FOOTAGE":
            Runtime.footage_frames.append(f)
    if client is not None:
        error = error or (client.error if client.state == "failed" else "")
    messages = []
    if Runtime.recorder is not None:
        messages.append(stop_recording(context, client))
    if Runtime.kind == "FOOTAGE" and Runtime.footage_frames and not Runtime.cancelled:
        messages.append(_bake_footage(context, client))
    if client is not None:
        client.close(timeout=2.0)
    Runtime.client = None
    scene.facecap.live_fps = 0.0
    if error:
        set_status(scene, error + (f"; {' '.join(messages)}" if messages else ""))
        report_error(error)
    else:
        set_status(scene, " ".join(messages) or "stopped")
    _redraw(context)


# ------------------------------------------------------------------------------------------------ recording
def _take_path(context) -> str:
    folder = bpy.path.abspath(context.scene.facecap.take_dir or "//takes/")
    if not folder or folder.startswith("//"):
        folder = os.path.join(bpy.app.tempdir or "/tmp", "facecap_takes")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, time.strftime("take_%Y%m%d_%H%M%S.json"))


def start_recording(context) -> str:
    client = Runtime.client
    recorder_cls = engines.core_module("capture.recorder").TakeRecorder
    path = _take_path(context)
    Runtime.recorder = recorder_cls(path, client.spec if hasattr(client, "spec") else "camera",
                                    client.source_fps or 30.0, client.width, client.height, client.focal or 0.0)
    Runtime.record_path = path
    return path


def stop_recording(context, client=None) -> str:
    """Close the take file and bake it; returns a status line."""
    recorder, Runtime.recorder = Runtime.recorder, None
    if recorder is None:
        return ""
    client = client or Runtime.client
    identity = getattr(client, "identity", None) if client is not None else None
    focal = getattr(client, "focal", None) if client is not None else None
    first_time = recorder.frames[0]["time"] if recorder.frames else 0.0
    for f in recorder.frames:  # the take starts where the recording started
        f["time"] = f["time"] - first_time
    take = recorder.finish(identity=identity, focal=focal)
    context.scene.facecap.last_take = recorder.path
    n = bake_take(context, take)
    return f"recorded {len(take['frames'])} frames → {recorder.path} ({n} keyed)"


def _bake_footage(context, client) -> str:
    take_mod = engines.core_module("take")
    frames = Runtime.footage_frames
    take = take_mod.make_take(Runtime.footage_path, client.source_fps or 30.0, client.width, client.height,
                              client.focal or 0.0, frames, identity=client.identity)
    path = _take_path(context)
    take_mod.write_take(path, take)
    context.scene.facecap.last_take = path
    n = bake_take(context, take)
    return f"processed {len(frames)} frames ({n} keyed) → {path}"


# ------------------------------------------------------------------------------------------------- operators
class FACECAP_OT_report(bpy.types.Operator):
    """Show a facecap error"""
    bl_idname = "facecap.report"
    bl_label = "Facecap Report"
    bl_options = {"INTERNAL"}

    message: StringProperty()

    def execute(self, context):
        self.report({"ERROR"}, self.message)
        return {"FINISHED"}

    def invoke(self, context, event):
        return self.execute(context)


class FACECAP_OT_check_engine(bpy.types.Operator):
    """Find out which engine would run, and why"""
    bl_idname = "facecap.check_engine"
    bl_label = "Check Engine"

    def execute(self, context):
        lines = []
        ok, why = engines.in_process_status()
        lines.append(("✓ " if ok else "✗ ") + "in Blender: " + why)
        p = prefs(context)
        if p and p.python:
            ok_w, why_w = engines.worker_status(p.python)
            lines.append(("✓ " if ok_w else "✗ ") + "external: " + why_w)
        try:
            mode, _python, why_used = choose_engine(context)
            lines.insert(0, f"active: {why_used}")
            self.report({"INFO"}, f"facecap engine: {why_used}")
        except RuntimeError as exc:
            lines.insert(0, f"none works: {exc}")
            self.report({"ERROR"}, str(exc))
        ENGINE_REPORT["lines"] = lines
        return {"FINISHED"}


class _NeedsIdle:
    @classmethod
    def poll(cls, context):
        return Runtime.client is None


class FACECAP_OT_live_start(_NeedsIdle, bpy.types.Operator):
    """Start capturing from the chosen source, driving the rig live"""
    bl_idname = "facecap.live_start"
    bl_label = "Start Live"

    def execute(self, context):
        try:
            spec = source_spec(context)
            start(context, "LIVE", spec, live=context.scene.facecap.source == "CAMERA")
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class FACECAP_OT_live_stop(bpy.types.Operator):
    """Stop the capture (a recording in progress is written and baked)"""
    bl_idname = "facecap.live_stop"
    bl_label = "Stop"

    @classmethod
    def poll(cls, context):
        return Runtime.client is not None

    def execute(self, context):
        Runtime.cancelled = Runtime.kind == "FOOTAGE"
        Runtime.client.stop()
        _finish(context)
        return {"FINISHED"}


class FACECAP_OT_calibrate_neutral(bpy.types.Operator):
    """Take the performer's current face as the rest face subtracted from every frame"""
    bl_idname = "facecap.calibrate_neutral"
    bl_label = "Calibrate Neutral"

    @classmethod
    def poll(cls, context):
        return Runtime.last_frame is not None

    def execute(self, context):
        settings = context.scene.facecap
        settings.neutral = [float(v) for v in Runtime.last_frame["expression"]]
        settings.use_neutral = True
        self.report({"INFO"}, "neutral face calibrated")
        return {"FINISHED"}


class FACECAP_OT_record(bpy.types.Operator):
    """Record the live capture into a take (written to disk as it goes); press again to stop and bake it"""
    bl_idname = "facecap.record"
    bl_label = "Record"

    @classmethod
    def poll(cls, context):
        return Runtime.client is not None and Runtime.kind == "LIVE"

    def execute(self, context):
        try:
            if Runtime.recorder is None:
                path = start_recording(context)
                set_status(context.scene, f"recording → {path}")
            else:
                set_status(context.scene, stop_recording(context))
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"recording failed: {exc}")
            return {"CANCELLED"}
        return {"FINISHED"}


class FACECAP_OT_process_footage(_NeedsIdle, bpy.types.Operator):
    """Track the chosen clip or file in the background, then bake it as keyframes"""
    bl_idname = "facecap.process_footage"
    bl_label = "Process Footage"

    def execute(self, context):
        settings = context.scene.facecap
        if settings.source == "CAMERA":
            self.report({"ERROR"}, "choose a movie clip or a file as the source to process footage")
            return {"CANCELLED"}
        try:
            start(context, "FOOTAGE", source_spec(context), live=False)
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (FACECAP_OT_report, FACECAP_OT_check_engine, FACECAP_OT_live_start, FACECAP_OT_live_stop,
           FACECAP_OT_calibrate_neutral, FACECAP_OT_record, FACECAP_OT_process_footage)


def _stop_everything() -> None:
    """Disabling the add-on mid-capture: stop the engine and the timer, keep the journal on disk."""
    if Runtime.client is not None:
        Runtime.client.close(timeout=2.0)
        Runtime.client = None
        if Runtime.recorder is not None:
            Runtime.recorder.abort()
            Runtime.recorder = None
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)


register, unregister = registrar(CLASSES, before_unregister=_stop_everything)
