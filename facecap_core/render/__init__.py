"""Software rendering: a z-buffered triangle rasteriser (numba) and a Lambert shader."""
from .raster import RasterResult, rasterize, rasterize_reference, render_shaded, vertex_normals

__all__ = ["RasterResult", "rasterize", "rasterize_reference", "render_shaded", "vertex_normals"]
