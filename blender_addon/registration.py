"""One register/unregister pair per add-on module: its classes, and the scene properties that point at them."""
from __future__ import annotations


def registrar(classes, scene_properties=None, before_unregister=None):
    """(register, unregister) for `classes` (registered in order, unregistered in reverse) and
    `scene_properties` {name: PropertyGroup class} added to bpy.types.Scene as PointerProperties."""
    import bpy  # noqa: PLC0415

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
