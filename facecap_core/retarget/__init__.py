"""Retargeting a take onto a user's character (pure Python; the Blender add-on writes the keys).

`detect_scheme(shape_key_names)` finds which naming scheme a character uses and which take channel drives each
shape key; `Mapping.from_detection` turns that into an editable mapping whose `apply`/`apply_array`/`bake`
compute shape-key values; `save_preset`/`load_preset` keep a mapping as JSON; `gaze_angles` gives eye angles.
"""
from .head import MAX_GAZE_PITCH, MAX_GAZE_YAW, gaze_angles
from .mapping import (PRESET_FORMAT, PRESET_VERSION, SOURCE_CHANNELS, Channel, Mapping, PresetError, load_preset,
                      mirror_source, save_preset, source_matrix, source_values)
from .schemes import SCHEMES, Detection, detect_scheme, normalize, scheme_names, spell

__all__ = ["MAX_GAZE_PITCH", "MAX_GAZE_YAW", "gaze_angles", "PRESET_FORMAT", "PRESET_VERSION", "SOURCE_CHANNELS",
           "Channel", "Mapping", "PresetError", "load_preset", "mirror_source", "save_preset", "source_matrix",
           "source_values", "SCHEMES", "Detection", "detect_scheme", "normalize", "scheme_names", "spell"]
