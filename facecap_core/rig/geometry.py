"""Rotations and the pinhole camera Π_f (OpenCV frame: x right, y down, z forward; principal point at the
image centre; focal length f in pixels). Rotations are unit quaternions (w, x, y, z) at interfaces."""
from __future__ import annotations

import numpy as np


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternion (w, x, y, z), any norm → (..., 3, 3) rotation matrix."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix → unit quaternion (w, x, y, z) with w ≥ 0."""
    m = np.asarray(m, np.float64)
    # Shepperd's method: pick the largest diagonal combination for numerical stability.
    tr = np.trace(m)
    cands = np.array([tr, m[0, 0], m[1, 1], m[2, 2]])
    k = int(np.argmax(cands))
    if k == 0:
        s = np.sqrt(1.0 + tr) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif k == 1:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif k == 2:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def rotvec_to_matrix(r: np.ndarray) -> np.ndarray:
    """Rodrigues: (3,) axis-angle (radians) → (3, 3)."""
    r = np.asarray(r, np.float64)
    theta = np.linalg.norm(r)
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def matrix_to_rotvec(m: np.ndarray) -> np.ndarray:
    q = matrix_to_quat(m)
    s = np.linalg.norm(q[1:])
    if s < 1e-12:
        return np.zeros(3)
    return q[1:] / s * 2 * np.arctan2(s, q[0])


def euler_to_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head pose angles in radians in the camera frame: yaw about y (down), pitch about x, roll about z."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def matrix_to_euler(m: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in radians of a rotation built as `euler_to_matrix` builds it (Rz·Rx·Ry): its third
    row is (−cos p sin y, sin p, cos p cos y), and its second column (−sin r cos p, cos r cos p, ·)."""
    m = np.asarray(m, np.float64)
    pitch = float(np.arcsin(np.clip(m[2, 1], -1.0, 1.0)))
    return float(np.arctan2(-m[2, 0], m[2, 2])), pitch, float(np.arctan2(-m[0, 1], m[1, 1]))


def project(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: float,
            image_size: tuple[int, int]) -> np.ndarray:
    """Π_f(R p + t): (..., N, 3) model points (cm) → (..., N, 2) pixels. image_size = (width, height);
    rotation is a (3, 3) matrix, translation (3,) in cm."""
    cam = points @ np.asarray(rotation).T + np.asarray(translation)
    w, h = image_size
    z = cam[..., 2:3]
    return focal * cam[..., :2] / z + np.array([w / 2.0, h / 2.0])


def default_focal(image_size: tuple[int, int]) -> float:
    """A webcam-like focal length in pixels (≈ 60° horizontal field of view) for a first guess."""
    return 0.5 * image_size[0] / np.tan(np.radians(30.0))
