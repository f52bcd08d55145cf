"""`facecap track INPUT --out TAKE.json` (design §6): footage, image folders/globs or `camera:N` → a take.

Frames go through the capture engine (engine.py); every tracked frame becomes a take frame (design §6) recorded
through a journal (recorder.py), so a crash or an unplugged camera keeps what was recorded. Optional outputs: one
mask PNG per frame (`--masks DIR`) and a preview video (`--preview OUT.mp4`: mask tint, the 73 landmarks and the
rig's wireframe).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..fileformat import make_output_folder
from ..rig.geometry import matrix_to_quat
from ..segment.pipeline import tint_face
from ..segment.run import InputError, open_source
from ..take import make_frame


@dataclass
class FrameSource:
    """Frames with timestamps: `frames()` yields (index, time s, RGB uint8); `live` for cameras."""
    spec: str
    kind: str  # "video", "images", "camera"
    width: int
    height: int
    fps: float
    count: int | None
    live: bool = False
    mirror: bool = False
    _inner: object = None

    def frames(self):
        import cv2  # noqa: PLC0415

        if self.kind == "camera":
            cap = cv2.VideoCapture(int(self.spec.split(":", 1)[1]))
            t0, i = time.monotonic(), 0
            try:
                while True:
                    ok, bgr = cap.read()
                    if not ok:
                        raise InputError(f"camera {self.spec} stopped delivering frames (unplugged?); the take "
                                         f"keeps the {i} frames recorded so far")
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    yield i, time.monotonic() - t0, rgb[:, ::-1].copy() if self.mirror else rgb
                    i += 1
            finally:
                cap.release()
        fps = self.fps or 30.0
        for i, (_stem, rgb) in enumerate(self._inner.frames()):
            if rgb.shape[1] != self.width or rgb.shape[0] != self.height:
                raise InputError(f"{self.spec}: frame {i} is {rgb.shape[1]}×{rgb.shape[0]}, the first was "
                                 f"{self.width}×{self.height}; track images of one size")
            yield i, i / fps, rgb


def open_frames(spec: str, mirror: bool = False, fps: float | None = None) -> FrameSource:
    """A video file, an image / folder / glob of images, or `camera:N`. Raises InputError (one line)."""
    import cv2  # noqa: PLC0415

    if spec.startswith("camera:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            raise InputError(f"bad camera '{spec}': use camera:0, camera:1 …") from None
        cap = cv2.VideoCapture(n)
        ok = cap.isOpened() and cap.read()[0]
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        cam_fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        cap.release()
        if not ok:
            raise InputError(f"camera {spec} will not open (not connected, or in use by another program)")
        return FrameSource(spec, "camera", w, h, fps or cam_fps, None, live=True, mirror=mirror)
    inner = open_source(spec)
    first = next(iter(inner.frames()))[1]
    return FrameSource(spec, inner.kind, first.shape[1], first.shape[0], fps or inner.fps or 30.0, inner.count,
                       _inner=inner)


def take_frame(p) -> dict:
    """The take frame (design §6) of an engine output."""
    r = p.result
    if not r.tracked:
        return make_frame(p.index, p.time)
    raw = None
    if r.raw is not None:
        raw = {"rotation": matrix_to_quat(r.raw["rotation"]), "translation": r.raw["translation"],
               "expression": r.raw["expression"]}
    return make_frame(p.index, p.time, expression=r.expression, rotation=r.quaternion, translation=r.translation,
                      landmarks=r.landmarks, bbox=r.bbox, face_visible=r.face_visible, raw=raw)


class PreviewWriter:
    """The preview video: face mask tinted green, landmarks yellow, the rig's wireframe cyan."""

    def __init__(self, path: str, fps: float, size: tuple[int, int], rig, tracker):
        import cv2  # noqa: PLC0415

        # like the take's, the preview's folder is made when missing
        make_output_folder(os.path.dirname(os.path.abspath(path)), "the preview video's folder", InputError)
        self.writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise InputError(f"cannot write the preview video {path} (is it a writable path ending in .mp4?)")
        self.rig, self.tracker = rig, tracker
        tris = np.asarray(rig.triangles)
        e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
        self.edges = np.unique(np.sort(e, axis=1), axis=0)

    def write(self, p) -> None:
        import cv2  # noqa: PLC0415

        img = p.image.copy() if p.mask is None else tint_face(p.image, p.mask)
        r = p.result
        if r.tracked:
            f, (W, H) = self.tracker.focal, self.tracker.image_size
            v = self.rig.mesh(self.tracker.identity, r.expression) @ r.rotation.T + r.translation
            q = f * v[:, :2] / v[:, 2:3] + np.array([W / 2, H / 2])
            segs = np.round(q[self.edges] * 4).astype(np.int32)  # 2 fractional bits (shift=2)
            cv2.polylines(img, list(segs), False, (0, 200, 255), 1, cv2.LINE_AA, shift=2)
            for x, y in r.landmarks:
                cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 230, 0), -1, cv2.LINE_AA)
        self.writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

    def close(self):
        self.writer.release()


@dataclass
class TrackReport:
    frames: int = 0
    tracked: int = 0
    dropped: int = 0
    seconds: float = 0.0
    error: str = ""


def track_source(source: FrameSource, out: str, engine, recorder, preview=None, masks_dir: str | None = None,
                 progress: bool = True) -> TrackReport:
    """Run the engine over a source and record the take; an error of the source mid-take ends the take with the
    frames so far (the report carries the error line)."""
    import cv2  # noqa: PLC0415

    rep = TrackReport()
    bar = None
    if progress and not source.live:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=source.count, unit="frame", desc="track", file=sys.stderr, leave=False)
    if masks_dir:
        os.makedirs(masks_dir, exist_ok=True)
    t0 = time.perf_counter()
    try:
        for p in engine.run(source.frames(), live=source.live):
            recorder.add(take_frame(p))
            rep.frames += 1
            rep.tracked += int(p.result.tracked)
            rep.dropped += p.dropped
            if preview is not None:
                preview.write(p)
            if masks_dir and p.mask is not None:
                cv2.imwrite(os.path.join(masks_dir, f"frame_{p.index:06d}.png"), p.mask)
            if bar is not None:
                bar.update(1)
    except InputError as exc:
        rep.error = str(exc)
    finally:
        if bar is not None:
            bar.close()
        if preview is not None:
            preview.close()
    rep.seconds = time.perf_counter() - t0
    return rep
