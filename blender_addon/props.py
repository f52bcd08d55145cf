"""The add-on's settings: per scene (`scene.facecap`) and in the add-on preferences (where the engine runs)."""
from __future__ import annotations

import json

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .registration import registrar

N_EXPRESSIONS = 46


def _is_mesh(_self, obj) -> bool:
    return obj.type == "MESH"


class FacecapSettings(bpy.types.PropertyGroup):
    @property
    def neutral(self) -> list[float]:
        return json.loads(self.neutral_json) if self.neutral_json else [0.0] * N_EXPRESSIONS

    @neutral.setter
    def neutral(self, values) -> None:
        self.neutral_json = json.dumps([float(v) for v in values])

    # -- source
    source: EnumProperty(name="Source", items=(
        ("CAMERA", "Camera", "A live webcam"),
        ("CLIP", "Movie Clip", "A movie clip or image sequence already in this file"),
        ("FILE", "File", "A video file or an image folder on disk")), default="CAMERA")
    camera_index: IntProperty(name="Camera", description="Index of the webcam (0 = the first)", default=0, min=0)
    mirror: BoolProperty(name="Mirror", description="Mirror the camera image (selfie view)", default=True)
    clip: PointerProperty(name="Clip", type=bpy.types.MovieClip)
    filepath: StringProperty(name="File", subtype="FILE_PATH", description="Video file or image folder")

    # -- engine behaviour
    smoothing: FloatProperty(name="Smoothing", description="One Euro smoothing strength of pose and expressions "
                             "(0 = off; the unfiltered values stay in the take)", default=1.0, min=0.0, max=10.0)
    segmentation: BoolProperty(name="Segmentation", description="Segment the face from occluders (hands, hair) "
                               "before tracking", default=True)

    # -- what is driven
    rig: PointerProperty(name="Face Rig", type=bpy.types.Object, poll=_is_mesh,
                         description="The FaceRig object the capture drives")
    head: PointerProperty(name="Head", type=bpy.types.Object,
                          description="The rig's head empty, which takes the head pose (empty: the rig itself)")
    # the performer's rest face (46 values, JSON: vector properties stop at 32 values)
    neutral_json: StringProperty(name="Neutral", default="", options={"HIDDEN"})
    use_neutral: BoolProperty(name="Use Neutral", default=False,
                              description="Subtract the calibrated rest face from the captured expressions")
    drive_head: BoolProperty(name="Head Pose", default=True, description="Drive the rig's head rotation/location")

    # -- recording and footage
    take_dir: StringProperty(name="Takes", subtype="DIR_PATH", default="//takes/",
                             description="Where recorded takes are written (journaled while recording)")
    frame_start: IntProperty(name="Start Frame", default=1, description="Scene frame of the take's time 0")

    # -- status (written by the add-on, shown in the panel)
    status: StringProperty(name="Status", default="")
    live_fps: FloatProperty(name="fps", default=0.0)
    progress: FloatProperty(name="Progress", subtype="PERCENTAGE", default=0.0, min=0.0, max=100.0)
    last_take: StringProperty(name="Last Take", subtype="FILE_PATH", default="")


class FacecapPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine: EnumProperty(name="Engine", items=(
        ("AUTO", "Automatic", "In Blender's process when its dependencies import here, else the external Python"),
        ("IN_PROCESS", "In Blender", "Run the engine inside Blender (bundled wheels, CPU)"),
        ("WORKER", "External Python", "Run the engine in another Python that has facecap installed (e.g. CUDA)"),
        ("REMOTE", "Remote", "Send the frames to a `facecap serve` engine on another machine")), default="AUTO")
    python: StringProperty(name="External Python", subtype="FILE_PATH", default="",
                           description="Python executable with facecap_core's dependencies installed")
    remote: StringProperty(name="Address", default="tcp://127.0.0.1:5557",
                           description="tcp://HOST:PORT of `facecap serve`")
    token: StringProperty(name="Token", subtype="PASSWORD", default="",
                          description="Access token of a remote engine bound beyond loopback")

    def draw(self, context):
        from . import capture_ops  # noqa: PLC0415

        layout = self.layout
        layout.prop(self, "engine")
        if self.engine in ("WORKER", "AUTO"):
            layout.prop(self, "python")
        if self.engine == "REMOTE":
            layout.prop(self, "remote")
            layout.prop(self, "token")
        layout.operator("facecap.check_engine", icon="FILE_REFRESH")
        box = layout.box()
        for line in capture_ops.ENGINE_REPORT.get("lines", ["Press Check Engine to see which engine is used"]):
            box.label(text=line)


CLASSES = (FacecapSettings, FacecapPreferences)


register, unregister = registrar(CLASSES, {"facecap": FacecapSettings})
