"""`facecap demo`: the embedded default sample, tracked end to end from its pixels.

A synthetic performance (expressions rising and falling in turn while the head turns) of a procedurally textured
face over a procedural background is rendered into a 640×480 sample clip — everything from the installed package,
nothing downloaded. The clip then goes through the same path as `facecap track`: Viola–Jones → segmentation
network + graph cut → DDE regressor (models/), pipelined, into a take (design §6), a preview video (mask tint,
landmarks, rig wireframe) and a .blend with the animated FaceRig. Because the clip is rendered, the demo also prints
how close the tracking came to the truth.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from .rig.geometry import default_focal, euler_to_matrix, matrix_to_quat, quat_to_matrix
from .rig.model import FaceRig

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
    period = max(n_frames / fps, 2.0)  # a short clip turns part-way, never faster than a 2 s turn (≤ 2°/frame)
    yaw = np.radians(20.0) * np.sin(2 * np.pi * t / period)
    pitch = np.radians(5.0) * np.sin(4 * np.pi * t / period)
    rot = np.array([matrix_to_quat(euler_to_matrix(y, p, 0.0)) for y, p in zip(yaw, pitch)])
    return expr, rot, np.tile([0.0, 0.0, 55.0], (n_frames, 1))


def render_clip(rig: FaceRig, expr, rot, seed: int = 7, size=IMAGE_SIZE):
    """The sample clip: the performance on a procedurally textured face (SyntheticFaces) over a procedural
    background, 640×480, principal point at the centre. Returns the rendered Sequence cut to `size`."""
    from .data.synth import SyntheticFaces, procedural_backgrounds  # noqa: PLC0415
    from .data.texture import procedural_library  # noqa: PLC0415
    from .track.sequences import render_sequence  # noqa: PLC0415

    w, h = size
    gen = SyntheticFaces(rig, procedural_library(rig, 1, seed=seed), procedural_backgrounds(4, seed=seed, size=256),
                         size=w)
    p = gen.sample_params(np.random.default_rng(seed))
    p["hairstyle"]["bald"] = False
    z = 55.0 * p["focal"] / default_focal(size) * 0.9  # the face about as large as a webcam user's
    trans = np.tile([0.0, 0.0, z], (len(expr), 1))
    seq = render_sequence(gen, p, quat_to_matrix(rot), trans, expr, face_fraction=0.3)
    top = (w - h) // 2  # the square render, cut to 4:3 around its centre row (keeps the principal point central)
    seq.frames, seq.masks = seq.frames[:, top:top + h], seq.masks[:, top:top + h]
    seq.landmarks = seq.landmarks - np.array([0.0, top])
    return seq


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
    """The whole demo; returns the paths written and the tracking figures."""
    from .capture.engine import CaptureEngine  # noqa: PLC0415
    from .capture.recorder import TakeRecorder  # noqa: PLC0415
    from .capture.run import PreviewWriter, take_frame  # noqa: PLC0415
    from .segment.graphcut import GraphCutRefiner  # noqa: PLC0415
    from .segment.segmenter import Segmenter  # noqa: PLC0415
    from .take import read_take  # noqa: PLC0415
    from .track.cascade import landmark_error  # noqa: PLC0415
    from .track.tracker import FaceTracker  # noqa: PLC0415

    os.makedirs(out, exist_ok=True)
    expr, rot, _ = performance(rig, n_frames)
    seq = render_clip(rig, expr, rot)
    paths = {"sample": write_video(os.path.join(out, "sample.mp4"), seq.frames)}
    np.savez_compressed(os.path.join(out, "landmarks.npz"), landmarks=seq.landmarks, expression=seq.expression,
                        rotation=seq.rotation, translation=seq.translation, focal=seq.focal,
                        image_size=np.array(IMAGE_SIZE))
    log(f"sample clip: {n_frames} frames ({', '.join('+'.join(g) for g in SEQUENCE)}, head turn ±20°) → "
        f"{paths['sample']}")

    tracker = FaceTracker.load_default(rig=rig, image_size=IMAGE_SIZE, smoothing=True, fps=FPS)
    engine = CaptureEngine(tracker, Segmenter.load_default(device="cpu"), GraphCutRefiner())
    paths["take"] = os.path.join(out, "take.json")
    recorder = TakeRecorder(paths["take"], "facecap demo: synthetic sample clip", FPS, IMAGE_SIZE[0], IMAGE_SIZE[1],
                            tracker.focal)
    paths["preview"] = os.path.join(out, "preview.mp4")
    preview = PreviewWriter(paths["preview"], FPS, IMAGE_SIZE, rig, tracker)
    t0 = time.perf_counter()
    lms, xs = np.full((n_frames, 73, 2), np.nan), np.full((n_frames, 46), np.nan)
    try:
        for p in engine.run((i, i / FPS, f) for i, f in enumerate(seq.frames)):
            recorder.add(take_frame(p))
            preview.write(p)
            if p.result.tracked:
                lms[p.index], xs[p.index] = p.result.landmarks, p.result.expression
    except BaseException:
        recorder.abort()
        raise
    finally:
        preview.close()
        tracker.close()
    ms = 1000 * (time.perf_counter() - t0) / n_frames
    recorder.finish(identity=tracker.identity, focal=tracker.focal)
    read_take(paths["take"])
    ok = np.isfinite(lms[:, 0, 0])
    nme = float(np.median(landmark_error(lms[ok], seq.landmarks[ok]))) if ok.any() else float("nan")
    err_x = float(np.abs(xs[ok] - seq.expression[ok]).mean()) if ok.any() else float("nan")
    log(f"tracked {int(ok.sum())}/{n_frames} frames from their pixels (detection → segmentation → DDE regressor, "
        f"{ms:.1f} ms/frame): landmark NME {nme:.2f} % (median), expression error {err_x:.3f} (mean |Δx| over 46)")
    log(f"take → {paths['take']}")
    log(f"preview (mask green, landmarks yellow, rig wireframe) → {paths['preview']}")
    if blend:
        paths["blend"] = os.path.join(out, "demo.blend")
        build_blend(rig_path, paths["take"], paths["blend"], python)
        log(f"blend → {paths['blend']} (object FaceRig, {len(rig.expression_names)} shape keys, animated; camera "
            "FacecapCamera)")
    return {"paths": paths, "ms_per_frame": ms, "tracked": int(ok.sum()), "nme": nme, "expression_error": err_x}
