"""Facial segmentation (Saito, Li & Li, ECCV 2016 §3): the two-stream CNN (`net`), its training (`train`) and the
`Segmenter` that turns 128×128 face crops into face-probability maps (torch or onnxruntime).

Importing this package is light (NumPy only); torch is imported by `net`/`train` and when a .pt model is loaded.
"""
from .segmenter import DEFAULT_MODEL, ModelFileError, Segmenter

__all__ = ["DEFAULT_MODEL", "ModelFileError", "Segmenter"]
