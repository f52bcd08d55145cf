"""The face composited UNDER occluders (design §1.5, §5): the face mask (255 = face pixels that nothing covers)
decides where the 3D face may replace the footage, so hands, hair and props in front of the face stay in front.

* `facecap.composite_setup`: a camera equal to the footage's (size, focal length, centred principal point) at the
  origin of the rig's camera frame, with the footage as its background image and the render size set to match.
* `scene.facecap_composite.mode`: what the rig shows: SHADED (its own materials), TEXTURE (a replacement face
  image on the rig's UVs) or MAKEUP (a tinted, semi-transparent skin over the footage). Reversible: the rig's own
  materials are kept on the object and put back by SHADED.
* `facecap.composite_nodes`: the compositor graph that makes the composite in a render: the rendered rig (film
  transparent), its alpha multiplied by the frame's mask (a `frame_000000.png …` sequence, as written by
  `facecap track --masks DIR`), alpha-overed on the footage. Blender 5.0 keeps the compositor in a node group
  (`scene.compositing_node_group`), 4.2–4.5 in `scene.node_tree`: `compositor()` is the one place that knows.
* `facecap.composite_preview`: live, in the viewport's camera view: the newest captured frame's NON-face pixels
  (alpha = 255 − mask) drawn with the gpu module over the rig, so the rig shows only where the face is uncovered.
  Only the in-process engine keeps images (`Runtime.client.latest`); the panel says why nothing is drawn otherwise.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re

import bpy
import numpy as np
from bpy.props import EnumProperty, FloatProperty, FloatVectorProperty, PointerProperty, StringProperty

from . import engines
from .registration import registrar
from .capture_ops import Runtime

SENSOR_WIDTH_MM = 36.0  # as rigs/build_blend.py: lens (mm) = focal (px) · sensor width / image width
CAMERA_NAME = "FacecapCamera"
GROUP_NAME = "Facecap Composite"
NODE_PREFIX = "Facecap "  # our nodes inside a 4.2–4.5 scene.node_tree, which may hold the user's own nodes too
SAVED_MATERIALS = "facecap_composite_saved"  # rig property: the slot materials SHADED puts back (JSON names)
MASK_PATTERN = re.compile(r"frame_(\d+)\.png$")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".exr")
SKIN_SLOT = 0  # rig_import.MATERIALS: 0 skin, 1 mouth, 2 eye, 3 iris


class CompositeError(RuntimeError):
    """Something the user must fix (no footage, no masks): one line, reported by the operator."""


# --------------------------------------------------------------------------------------------- the footage
def footage_clip(context) -> bpy.types.MovieClip:
    """The footage as a MovieClip: the Source panel's clip, or its file (a video, an image, or an image folder
    whose first image starts the sequence) loaded as one. A clip is what both the camera background and the
    compositor read, whichever the source."""
    s = context.scene.facecap
    if s.source == "CLIP":
        if s.clip is None:
            raise CompositeError("no movie clip chosen (Source → Clip)")
        return s.clip
    if s.source == "CAMERA":
        raise CompositeError("the source is a live camera: choose a movie clip or a file as the footage to "
                             "composite on")
    path = bpy.path.abspath(s.filepath)
    if os.path.isdir(path):
        images = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not images:
            raise CompositeError(f"no images in the footage folder {path}")
        path = os.path.join(path, images[0])
    if not path or not os.path.isfile(path):
        raise CompositeError(f"footage file not found: {path or '(none chosen)'}")
    try:
        return bpy.data.movieclips.load(path, check_existing=True)
    except RuntimeError as exc:
        raise CompositeError(f"cannot read the footage {path}: {exc}") from exc


def footage_focal(context, width: int, height: int) -> tuple[float, str]:
    """(focal length in pixels, where it came from): the running engine's, else the last take's when it was
    tracked on this image size, else the engine's own first guess (a webcam-like 60° field of view)."""
    focal = getattr(Runtime.client, "focal", None) if Runtime.client is not None else None
    if focal:
        return float(focal), "the running capture"
    take_path = bpy.path.abspath(context.scene.facecap.last_take)
    if take_path and os.path.isfile(take_path):
        try:
            with open(take_path) as f:
                take = json.load(f)
            if take.get("focal") and (take.get("width"), take.get("height")) == (width, height):
                return float(take["focal"]), os.path.basename(take_path)
        except (OSError, ValueError, AttributeError):
            pass  # an unreadable take is no camera: fall back to the default
    return float(engines.core_module("rig.geometry").default_focal((width, height))), "the default 60° field of view"


def match_camera(scene, width: int, height: int, focal_px: float) -> bpy.types.Object:
    """The scene camera equal to the footage's OpenCV camera, as rigs/build_blend.py sets it up: at the origin of
    the rig's camera frame looking down +Y (model +z), horizontal sensor, principal point centred. Reuses the
    FacecapCamera object when there is one (its transform is reset: the rig's pose is relative to it)."""
    import math  # noqa: PLC0415

    cam = bpy.data.objects.get(CAMERA_NAME)
    if cam is None or cam.type != "CAMERA":
        cam = bpy.data.objects.new(CAMERA_NAME, bpy.data.cameras.new(CAMERA_NAME))
    if cam.name not in scene.objects:
        scene.collection.objects.link(cam)
    data = cam.data
    data.type = "PERSP"
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH_MM
    data.lens = focal_px * SENSOR_WIDTH_MM / width
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = 0.01, 100.0
    cam.parent = None
    cam.location = (0.0, 0.0, 0.0)
    cam.rotation_mode = "XYZ"
    cam.rotation_euler = (math.pi / 2, 0.0, 0.0)  # Blender cameras look down local −Z; this turns it to +Y
    cam.scale = (1.0, 1.0, 1.0)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = int(width), int(height)
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    return cam


def set_background(cam: bpy.types.Object, clip: bpy.types.MovieClip) -> None:
    """The footage behind the camera view (one background entry of ours, reused on a second setup)."""
    data = cam.data
    bg = next((b for b in data.background_images if b.source == "MOVIE_CLIP"), None) or data.background_images.new()
    bg.source = "MOVIE_CLIP"
    bg.use_camera_clip = False
    bg.clip = clip
    bg.alpha = 1.0
    bg.display_depth = "BACK"
    bg.frame_method = "STRETCH"  # same aspect by construction; never letterboxed
    data.show_background_images = True


# --------------------------------------------------------------------------------------------- modes
def _node_material(name: str, color, alpha: float, image=None) -> bpy.types.Material:
    """A material (re)built as Principled BSDF → output, base colour `color` or `image` on the UVs, `alpha`
    opacity. Its viewport colour matches, so solid mode and Workbench renders agree with EEVEE/Cycles."""
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    if getattr(mat, "node_tree", None) is None and hasattr(mat, "use_nodes"):
        mat.use_nodes = True  # < 5.0: new materials have no node tree until asked
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.location, out.location = (-300, 0), (0, 0)
    links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    bsdf.inputs["Base Color"].default_value = (*color[:3], 1.0)
    bsdf.inputs["Alpha"].default_value = alpha
    bsdf.inputs["Roughness"].default_value = 0.55
    if image is not None:
        tex = nodes.new("ShaderNodeTexImage")  # the active UV map: the rig's only one, "UVMap"
        tex.image, tex.location = image, (-650, 0)
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    mat.diffuse_color = (*color[:3], alpha)
    if hasattr(mat, "surface_render_method"):  # 4.2+: EEVEE blends instead of dithering the transparency
        mat.surface_render_method = "BLENDED" if alpha < 1.0 else "DITHERED"
    elif hasattr(mat, "blend_method"):
        mat.blend_method = "BLEND" if alpha < 1.0 else "OPAQUE"
    return mat


def mode_materials(settings, n_slots: int) -> list:
    """The material of each rig slot for the chosen mode (None for SHADED: the rig's own)."""
    if settings.mode == "TEXTURE":
        return [_node_material("FacecapComposite_Texture", (0.8, 0.8, 0.8), 1.0, settings.texture)] * n_slots
    if settings.mode == "MAKEUP":
        makeup = _node_material("FacecapComposite_Makeup", settings.makeup_color, settings.makeup_opacity)
        clear = _node_material("FacecapComposite_Clear", (0.0, 0.0, 0.0), 0.0)  # eyes, mouth: the footage's own
        return [makeup if i == SKIN_SLOT else clear for i in range(n_slots)]
    return [None] * n_slots


def apply_mode(scene) -> str:
    """Give the rig the materials of the chosen mode; returns what was done (or why nothing was). The rig's own
    materials are saved on the object the first time it leaves SHADED and restored when it goes back."""
    settings = scene.facecap_composite
    rig = scene.facecap.rig
    if rig is None:
        return "no face rig (Live → Face Rig)"
    slots = rig.material_slots
    saved = rig.get(SAVED_MATERIALS)
    if settings.mode == "SHADED":
        if saved is not None:
            for slot, name in zip(slots, json.loads(saved)):
                slot.material = bpy.data.materials.get(name) if name else None
            del rig[SAVED_MATERIALS]
        return f"{rig.name}: its own materials"
    if saved is None:
        rig[SAVED_MATERIALS] = json.dumps([s.material.name if s.material else "" for s in slots])
    for slot, mat in zip(slots, mode_materials(settings, len(slots))):
        slot.material = mat
    return f"{rig.name}: {settings.mode.lower()}"


def _mode_changed(self, context):
    apply_mode(context.scene)


def _option_changed(self, context):
    if self.mode != "SHADED":
        apply_mode(context.scene)


class FacecapComposite(bpy.types.PropertyGroup):
    mode: EnumProperty(name="Mode", update=_mode_changed, default="SHADED", items=(
        ("SHADED", "Shaded", "The rig's own shaded face"),
        ("TEXTURE", "Texture", "A replacement face image on the rig's UVs"),
        ("MAKEUP", "Make-up", "The footage stays visible under a tinted, semi-transparent skin")))
    texture: PointerProperty(name="Face Image", type=bpy.types.Image, update=_option_changed,
                             description="Replacement face, unwrapped into the rig's UV layout")
    makeup_color: FloatVectorProperty(name="Tint", subtype="COLOR", size=3, min=0.0, max=1.0,
                                      default=(0.75, 0.2, 0.3), update=_option_changed)
    makeup_opacity: FloatProperty(name="Opacity", subtype="FACTOR", min=0.0, max=1.0, default=0.35,
                                  update=_option_changed)
    masks_dir: StringProperty(name="Masks", subtype="DIR_PATH", default="//masks/",
                              description="Folder of face masks frame_000000.png … (facecap track --masks DIR)")


# --------------------------------------------------------------------------------------------- compositor
@contextlib.contextmanager
def compositor(scene):
    """Yield (node tree, input socket that receives the final image) of the scene's compositor, on any
    supported Blender: 5.0+ a new node group (Group Output "Image") set as `scene.compositing_node_group`;
    4.2–4.5 `scene.node_tree` (`use_nodes`) and its Composite node. What the `with` body builds becomes the
    compositor only if the body completes; on an error everything it added is removed, the old graph stays."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
        try:
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            output = tree.nodes.new("NodeGroupOutput")
            output.location = (600, 0)
            yield tree, output.inputs[0]
        except BaseException:
            bpy.data.node_groups.remove(tree)
            raise
        old, scene.compositing_node_group = scene.compositing_node_group, tree
        tree["facecap"] = True
        if old is not None and old.get("facecap") and old.users == 0:
            bpy.data.node_groups.remove(old)
        return
    was_using_nodes = scene.use_nodes
    scene.use_nodes = True
    tree = scene.node_tree
    before = {n.name for n in tree.nodes}
    composite = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
    if composite is None:
        composite = tree.nodes.new("CompositorNodeComposite")
        composite.name = NODE_PREFIX + "Output"
        composite.location = (600, 0)
    previous = composite.inputs[0].links[0].from_socket if composite.inputs[0].is_linked else None
    try:
        yield tree, composite.inputs[0]
    except BaseException:
        for node in [n for n in tree.nodes if n.name not in before]:
            tree.nodes.remove(node)
        if previous is not None and composite.name in before:
            tree.links.new(previous, composite.inputs[0])
        scene.use_nodes = was_using_nodes
        raise
    for node in [n for n in tree.nodes if n.name in before and n.name.startswith(NODE_PREFIX) and n != composite]:
        tree.nodes.remove(node)  # the graph of a previous setup
    for node in tree.nodes:
        if node.name not in before and node.label:
            node.name = node.label  # drop the ".001" the old graph's names forced


def _node(tree, bl_idname: str, label: str, x: float, y: float):
    node = tree.nodes.new(bl_idname)
    node.name = node.label = NODE_PREFIX + label
    node.location = (x, y)
    return node


def _input(node, name: str, legacy_index: int):
    """A node input by its Blender 5.0 name, else by its 4.2–4.5 position (4.x's Alpha Over has "Fac", "Image",
    "Image" where 5.0 has "Background", "Foreground", "Factor")."""
    return node.inputs.get(name) or node.inputs[legacy_index]


def mask_sequence(folder: str) -> tuple[bpy.types.Image, int, int]:
    """(image sequence, first frame number, last frame number) of the masks frame_NNNNNN.png in `folder`."""
    path = bpy.path.abspath(folder) if folder else ""
    if not path or not os.path.isdir(path):
        raise CompositeError(f"masks folder not found: {path or '(none chosen)'} (write one with "
                             "`facecap track INPUT --out TAKE.json --masks DIR`)")
    numbers = sorted(int(m.group(1)) for f in glob.glob(os.path.join(path, "frame_*.png"))
                     if (m := MASK_PATTERN.search(f)))
    if not numbers:
        raise CompositeError(f"no masks frame_000000.png … in {path}")
    first = os.path.join(path, f"frame_{numbers[0]:06d}.png")
    try:
        image = bpy.data.images.load(first, check_existing=True)
    except RuntimeError as exc:
        raise CompositeError(f"cannot read the mask {first}: {exc}") from exc
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"  # 255 is 1.0, not a colour to linearise
    return image, numbers[0], numbers[-1]


def build_composite_nodes(scene, clip: bpy.types.MovieClip, masks_dir: str) -> str:
    """The compositor graph of the composite (see the module's docstring); returns a one-line summary. Scene
    frame F shows footage frame F − frame_start and mask frame_{F − frame_start}.png, like a baked take."""
    mask, first, last = mask_sequence(masks_dir)
    start = scene.facecap.frame_start
    with compositor(scene) as (tree, result):
        layers = _node(tree, "CompositorNodeRLayers", "Render", -400, 200)
        layers.scene = scene
        footage = _node(tree, "CompositorNodeMovieClip", "Footage", -400, -150)
        footage.clip = clip
        masks = _node(tree, "CompositorNodeImage", "Mask", -400, -450)
        masks.image = mask
        masks.frame_start, masks.frame_offset, masks.frame_duration = start, -1, last + 1
        masks.use_cyclic = False  # a missing mask (no face tracked) shows no rig, not another frame's
        over = _node(tree, "CompositorNodeAlphaOver", "Over", 200, 0)
        # Alpha Over's factor scales the premultiplied foreground: the rig's alpha × the mask, per pixel
        tree.links.new(footage.outputs["Image"], _input(over, "Background", 1))
        tree.links.new(layers.outputs["Image"], _input(over, "Foreground", 2))
        tree.links.new(masks.outputs["Image"], _input(over, "Factor", 0))
        tree.links.new(over.outputs["Image"], result)
    clip.frame_start = start
    render = scene.render
    render.film_transparent = True  # the rig's alpha is what the mask multiplies
    render.use_compositing = True
    view = scene.view_settings
    view.view_transform, view.look, view.exposure, view.gamma = "Standard", "None", 0.0, 1.0  # footage unchanged
    return f"composite: rig × {os.path.basename(mask.filepath)}… ({last - first + 1} masks) over {clip.name}"


# --------------------------------------------------------------------------------------------- live preview
def overlay_rgba(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame's non-face pixels as straight-alpha RGBA uint8 (alpha = 255 − mask), rows bottom-up as a GPU
    texture wants them: drawn over the rig, it leaves the rig visible only where the face is uncovered."""
    h, w = mask.shape[:2]
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = image[:h, :w, :3]
    rgba[..., 3] = 255 - mask
    return np.ascontiguousarray(rgba[::-1])


class Preview:
    """The viewport overlay (main thread only). The draw handler reads `Runtime.client.latest` and nothing else
    of the capture (a live in-process capture keeps its newest frame and mask: capture_ops.engine_options)."""
    handle = None
    texture = None
    index = None  # frame index of `texture`

    @classmethod
    def active(cls) -> bool:
        return cls.handle is not None

    @classmethod
    def enable(cls) -> None:
        if cls.handle is None:
            cls.handle = bpy.types.SpaceView3D.draw_handler_add(_draw, (), "WINDOW", "POST_PIXEL")

    @classmethod
    def disable(cls) -> None:
        if cls.handle is not None:
            bpy.types.SpaceView3D.draw_handler_remove(cls.handle, "WINDOW")
        cls.handle = cls.texture = cls.index = None
        _redraw_views()


def latest_frame():
    """(index, RGB image, mask) of the newest captured frame, or (None, why not) for the panel."""
    client = Runtime.client
    if client is None:
        return None, "no capture running (Live → Start Live)"
    if getattr(client, "session", None) is None:
        return None, "the engine runs in an external Python: no images reach Blender"
    if client.options.remote:
        return None, "a remote engine keeps the masks: nothing to draw here"
    latest = client.latest
    if latest is None:
        return None, "waiting for the first frame"
    if latest[2] is None:
        return None, f"frame {latest[0]}: no face mask (no face, or segmentation off)"
    return latest, f"frame {latest[0]}: occluders drawn over the rig"


def camera_frame_rect(context):
    """(x, y, width, height) in region pixels of the scene camera's frame, when the view looks through it."""
    from bpy_extras.view3d_utils import location_3d_to_region_2d  # noqa: PLC0415

    scene, region, rv3d = context.scene, context.region, context.region_data
    if scene.camera is None or rv3d is None or rv3d.view_perspective != "CAMERA":
        return None
    corners = [scene.camera.matrix_world @ v for v in scene.camera.data.view_frame(scene=scene)]
    points = [location_3d_to_region_2d(region, rv3d, c) for c in corners]
    if any(p is None for p in points):
        return None
    xs, ys = [p.x for p in points], [p.y for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _draw():
    """POST_PIXEL: the newest frame's occluders and background over the camera frame (nothing when there is no
    image and mask, or when the view is not the camera's)."""
    latest, _why = latest_frame()
    if latest is None:
        return
    rect = camera_frame_rect(bpy.context)
    if rect is None:
        return
    import gpu  # noqa: PLC0415 - drawing only: not available in background mode
    from gpu_extras.presets import draw_texture_2d  # noqa: PLC0415

    index, image, mask = latest
    if Preview.index != index or Preview.texture is None:
        rgba = overlay_rgba(image, mask)
        h, w = rgba.shape[:2]
        pixels = gpu.types.Buffer("UBYTE", rgba.size, rgba.reshape(-1))
        Preview.texture = gpu.types.GPUTexture((w, h), format="RGBA8", data=pixels)
        Preview.index = index
    gpu.state.blend_set("ALPHA")
    draw_texture_2d(Preview.texture, rect[:2], rect[2], rect[3])
    gpu.state.blend_set("NONE")


def _redraw_views() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


# --------------------------------------------------------------------------------------------- operators
class FACECAP_OT_composite_setup(bpy.types.Operator):
    """Make the scene camera match the footage (size, focal length) with the footage as its background"""
    bl_idname = "facecap.composite_setup"
    bl_label = "Set Up Camera"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        try:
            clip = footage_clip(context)
            width, height = (int(v) for v in clip.size)
            if not width or not height:
                raise CompositeError(f"the footage {clip.filepath} has no image size (is the file readable?)")
        except CompositeError as exc:
            if Runtime.client is None or not Runtime.client.width:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
            clip, width, height = None, Runtime.client.width, Runtime.client.height  # a live camera: no footage
        focal, source = footage_focal(context, width, height)
        cam = match_camera(scene, width, height, focal)
        if clip is not None:
            clip.frame_start = scene.facecap.frame_start
            set_background(cam, clip)
            scene.active_clip = clip
        self.report({"INFO"}, f"camera {width}×{height}, focal {focal:.0f} px (from {source})"
                    + (f", background {clip.name}" if clip is not None else ""))
        return {"FINISHED"}


class FACECAP_OT_composite_nodes(bpy.types.Operator):
    """Build the compositor graph: the rendered rig, cut by the face masks, over the footage"""
    bl_idname = "facecap.composite_nodes"
    bl_label = "Compositor Nodes"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        try:
            clip = footage_clip(context)
            summary = build_composite_nodes(scene, clip, scene.facecap_composite.masks_dir)
        except CompositeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except (RuntimeError, KeyError, TypeError, AttributeError) as exc:  # an API this Blender lacks
            self.report({"ERROR"}, f"cannot build the compositor graph on Blender {bpy.app.version_string}: "
                        f"{type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, summary)
        return {"FINISHED"}


class FACECAP_OT_composite_preview(bpy.types.Operator):
    """Show the live capture's occluders over the rig in the camera view (in-process engine only)"""
    bl_idname = "facecap.composite_preview"
    bl_label = "Live Preview"

    def execute(self, context):
        if Preview.active():
            Preview.disable()
        else:
            Preview.enable()
            _redraw_views()
        return {"FINISHED"}


class FACECAP_PT_composite(bpy.types.Panel):
    bl_space_type, bl_region_type, bl_category = "VIEW_3D", "UI", "Facecap"
    bl_label = "Composite"
    bl_parent_id = "FACECAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        c = context.scene.facecap_composite
        layout = self.layout
        layout.operator("facecap.composite_setup", icon="CAMERA_DATA")
        layout.prop(c, "mode", expand=True)
        if c.mode == "TEXTURE":
            layout.template_ID(c, "texture", open="image.open")
        elif c.mode == "MAKEUP":
            row = layout.row(align=True)
            row.prop(c, "makeup_color", text="")
            row.prop(c, "makeup_opacity", slider=True)
        if context.scene.facecap.rig is None:
            layout.label(text="no face rig (Live → Face Rig)", icon="INFO")
        layout.prop(c, "masks_dir")
        layout.operator("facecap.composite_nodes", icon="NODE_COMPOSITING")
        on = Preview.active()
        layout.operator("facecap.composite_preview", icon="HIDE_OFF" if on else "HIDE_ON", depress=on)
        if on:
            _latest, why = latest_frame()
            layout.label(text=why)
            space = context.space_data
            if getattr(getattr(space, "region_3d", None), "view_perspective", "CAMERA") != "CAMERA":
                layout.label(text="look through the camera (Numpad 0)", icon="INFO")


CLASSES = (FacecapComposite, FACECAP_OT_composite_setup, FACECAP_OT_composite_nodes, FACECAP_OT_composite_preview,
           FACECAP_PT_composite)


register, unregister = registrar(CLASSES, {"facecap_composite": FacecapComposite},
                                 before_unregister=Preview.disable)
