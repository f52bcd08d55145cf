"""One register/unregister pair per add-on module (its classes, and the scene properties that point at them), and
the file-browser mixin the add-on's JSON import/export operators share."""
import bpy
from bpy.props import StringProperty


def registrar(classes, scene_properties=None, before_unregister=None):
    """(register, unregister) for `classes` (registered in order, unregistered in reverse) and
    `scene_properties` {name: PropertyGroup class} added to bpy.types.Scene as PointerProperties."""
    scene_properties = scene_properties or {}

    def register():
        for cls in classes:
            bpy.utils.register_class(cls)
        for name, group in scene_properties.items():
            setattr(bpy.types.Scene, name, bpy.props.PointerProperty(type=group))

    def unregister():
        if before_unregister is not None:
            before_unregister()
        for name in scene_properties:
            delattr(bpy.types.Scene, name)
        for cls in reversed(classes):
            bpy.utils.unregister_class(cls)

    return register, unregister


class JsonFile:
    """Mixin of the operators that read or write one .json file (with ImportHelper / ExportHelper)."""
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})
