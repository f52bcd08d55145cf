"""`facecap demo`: the embedded default sample, end to end with the stages that exist.

A synthetic performance of the rig (expressions rising and falling, the head turning) is rendered into a sample
clip; its 73 landmarks are fitted back frame by frame with Eq. 4 (identity and focal fixed, warm-started, as a
tracker would); the fitted parameters become a take (design §6), a preview video (the clip with the landmarks
and the fit's reprojection) and a .blend with the animated FaceRig. When the segmentation net and the DDE
regressor exist, the clip will be tracked from its pixels instead of its landmarks.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from .rig import fit as F
from .rig.geometry import default_focal, euler_to_matrix, matrix_to_quat, project, quat_to_matrix
from .rig.landmarks import JAW
from .rig.model import MATERIAL_EYE, MATERIAL_IRIS, MATERIAL_MOUTH, FaceRig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQUENCE = (("JawOpen",), ("MouthSmile_L", "MouthSmile_R"), ("EyeBlink_L", "EyeBlink_R"), ("BrowsU_C",))
FPS = 30.0
IMAGE_SIZE = (640, 480)


class DemoError(RuntimeError):
    """An expected failure of the demo (e.g. no bpy for the .blend): one line for the user."""


def performance(rig: FaceRig, n_frames: int, fps: float = FPS):
    """Each group of SEQUENCE rises and falls in turn (a sine bump) while the head turns ±20° and nods a little.
    Returns expression (N, 46), rotation (N, 4) quaternions (w, x, y, z), translation (N, 3) cm (camera frame)."""
    t = np.arange(n_frames) / fps
    expr = np.zeros((n_frames, len(rig.expression_names)))
    seg = n_frames / len(SEQUENCE)
    for i in range(n_frames):
        k = min(int(i // seg), len(SEQUENCE) - 1)
        for name in SEQUENCE[k]:
            expr[i, rig.expression_index(name)] = np.sin(np.pi * (i - k * seg) / seg) ** 2
    duration = n_frames / fps
    yaw = np.radians(20.0) * np.sin(2 * np.pi * t / duration)
    pitch = np.radians(5.0) * np.sin(4 * np.pi * t / duration)
    rot = np.array([matrix_to_quat(euler_to_matrix(y, p, 0.0)) for y, p in zip(yaw, pitch)])
    return expr, rot, np.tile([0.0, 0.0, 55.0], (n_frames, 1))


def landmarks_of(rig: FaceRig, expr, rot, trans, focal: float, size=IMAGE_SIZE) -> np.ndarray:
    """(N, 73, 2) pixel landmarks; the 17 jaw points sit on the visible contour (design §4)."""
    out = []
    for x, q, t in zip(expr, rot, trans):
        R = quat_to_matrix(q)
        verts = rig.landmark_vertices.copy()
        verts[list(JAW)] = F.silhouette_vertices(rig, R, t, focal, size, x=x)
        out.append(project(rig.landmarks3d(x=x, vertices=verts), R, t, focal, size))
    return np.array(out)


def fit_sequence(rig: FaceRig, landmarks: np.ndarray, focal: float, size=IMAGE_SIZE):
    """Eq. 4 per frame with identity and focal fixed, warm-started from the previous frame.
    Returns expression (N, 46), quaternions (N, 4), translation (N, 3), reprojected landmarks (N, 73, 2)."""
    fit_rig = F.FitRig(rig)
    xs, qs, ts, lms = [], [], [], []
    x0 = pose0 = None
    for lm in landmarks:
        r = F.fit_landmarks(lm, size, fit_rig, f=focal, fix_identity=True, fix_focal=True, x0=x0, pose0=pose0)
        xs.append(r.expression), qs.append(r.quaternion), ts.append(r.translation), lms.append(r.landmarks2d)
        x0, pose0 = r.expression, (r.rotation, r.translation)
    return np.array(xs), np.array(qs), np.array(ts), np.array(lms)


def render_clip(rig: FaceRig, expr, rot, trans, focal: float, size=IMAGE_SIZE) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames of the shaded rig (skin, dark mouth, pale eyes, dark irises) on a gradient."""
    from .render.raster import render_shaded  # noqa: PLC0415

    w, h = size
    colour = {MATERIAL_MOUTH: (0.35, 0.08, 0.08), MATERIAL_EYE: (0.92, 0.9, 0.86), MATERIAL_IRIS: (0.2, 0.12, 0.08)}
    corners = np.array([colour.get(int(m), (0.86, 0.68, 0.58)) for m in rig.triangle_material])
    corners = np.repeat(corners[:, None, :], 3, axis=1)
    background = np.linspace(0.18, 0.32, h)[:, None, None] * np.ones((1, w, 3))
    frames = []
    for x, q, t in zip(expr, rot, trans):
        cam = rig.mesh(x=x) @ quat_to_matrix(q).T + t
        res = render_shaded(cam, rig.triangles, focal, size, colours=corners)
        img = np.where((res.tri_id >= 0)[..., None], res.image, background)
        frames.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return np.array(frames)


def write_video(path: str, frames_rgb: np.ndarray, fps: float = FPS, overlays=()) -> str:
    """Write RGB frames as mp4; overlays: (points (N, K, 2), BGR colour, radius) drawn on each frame."""
    import cv2  # noqa: PLC0415

    h, w = frames_rgb.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise DemoError(f"cannot write video {path} (OpenCV has no mp4v encoder here)")
    for i, rgb in enumerate(frames_rgb):
        img = np.ascontiguousarray(rgb[..., ::-1])
        for points, colour, radius in overlays:
            for p in points[i]:
                cv2.circle(img, (int(round(p[0])), int(round(p[1]))), radius, colour, -1, cv2.LINE_AA)
        writer.write(img)
    writer.release()
    return path


def build_blend(rig_path: str, take_path: str, out_path: str, python: str | None = None) -> None:
    """rigs/build_blend.py in a separate Python with bpy (a Blender session stays out of this process)."""
    proc = subprocess.run([python or sys.executable, os.path.join(ROOT, "rigs", "build_blend.py"), "--rig", rig_path,
                           "--take", take_path, "--out", out_path], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        raise DemoError(f"building {out_path} failed: {lines[-1] if lines else 'exit status %d' % proc.returncode}")


def run_demo(rig: FaceRig, rig_path: str, out: str, n_frames: int = 60, blend: bool = True,
             python: str | None = None, log=print) -> dict:
    """The whole demo; returns the paths written and the fit's figures."""
    from .take import make_frame, make_take, read_take, write_take  # noqa: PLC0415

    os.makedirs(out, exist_ok=True)
    focal = default_focal(IMAGE_SIZE)
    expr, rot, trans = performance(rig, n_frames)
    landmarks = landmarks_of(rig, expr, rot, trans, focal)
    clip = render_clip(rig, expr, rot, trans, focal)
    paths = {"sample": write_video(os.path.join(out, "sample.mp4"), clip)}
    np.savez_compressed(os.path.join(out, "landmarks.npz"), landmarks=landmarks, expression=expr, rotation=rot,
                        translation=trans, focal=focal, image_size=np.array(IMAGE_SIZE))
    log(f"sample clip: {n_frames} frames of {rig.name} ({', '.join('+'.join(g) for g in SEQUENCE)}, head turn "
        f"±20°) → {paths['sample']}")

    t0 = time.perf_counter()
    fx, fq, ft, flm = fit_sequence(rig, landmarks, focal)
    ms = 1000 * (time.perf_counter() - t0) / n_frames
    err_px = float(np.linalg.norm(flm - landmarks, axis=2).mean())
    err_x = float(np.abs(fx - expr).mean())
    log(f"fitted {n_frames} frames from their landmarks (Eq. 4, {ms:.1f} ms/frame): landmark error {err_px:.2f} px, "
        f"expression error {err_x:.3f} (mean |Δx| over 46)")

    frames = [make_frame(i, i / FPS, fx[i], fq[i], ft[i], flm[i]) for i in range(n_frames)]
    paths["take"] = os.path.join(out, "take.json")
    write_take(paths["take"], make_take("facecap demo: synthetic performance fitted from its landmarks", FPS,
                                        IMAGE_SIZE[0], IMAGE_SIZE[1], focal, frames))
    read_take(paths["take"])
    log(f"take → {paths['take']}")
    paths["preview"] = write_video(os.path.join(out, "preview.mp4"), clip,
                                   overlays=((landmarks, (0, 200, 0), 3), (flm, (0, 0, 255), 1)))
    log(f"preview (landmarks green, fit red) → {paths['preview']}")
    if blend:
        paths["blend"] = os.path.join(out, "demo.blend")
        build_blend(rig_path, paths["take"], paths["blend"], python)
        log(f"blend → {paths['blend']} (object FaceRig, {len(rig.expression_names)} shape keys, animated; camera "
            "FacecapCamera)")
    return {"paths": paths, "ms_per_frame": ms, "landmark_error_px": err_px, "expression_error": err_x}
