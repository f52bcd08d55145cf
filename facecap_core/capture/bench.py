"""`facecap bench INPUT`: per-stage milliseconds and end-to-end frames per second on a clip (design §6, §8).

The clip goes through the capture engine exactly as in `facecap track` (pipelined: the segmentation network on one
thread, graph cut and tracking on another); each stage's time is the median over the frames, and the end-to-end
rate is frames / wall time. Frames are decoded before the clock starts, for the engine and the teacher alike.
Printed beside the teacher (MediaPipe FaceLandmarker, VIDEO mode) on the same frames in the same run when the
`teacher` extra is installed, since absolute numbers depend on the machine. `benchmarks/bench_capture.py` repeats
both, interleaved, and reports medians.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..teacher import INSTALL_HINT as TEACHER_HINT

STAGES = (("detect", "Viola-Jones detection (first frame, re-detections)"), ("crop", "crop 128×128"),
          ("net", "segmentation network"), ("graphcut", "graph cut (Eq. 1)"),
          ("track_regress", "DDE regression"), ("track", "tracking step (crop, mask, regression, checks)"))


@dataclass
class EngineTiming:
    frames: int
    wall: float  # seconds for all frames, pipelined
    tracked: int
    stages: dict = field(default_factory=dict)  # stage key → list of ms

    @property
    def fps(self) -> float:
        return self.frames / self.wall

    def median_ms(self, key: str) -> float:
        return float(np.median(self.stages[key])) if self.stages.get(key) else float("nan")


def load_frames(source, max_frames: int | None = None) -> list:
    """The decoded (index, time, RGB) frames of a source, at most max_frames."""
    frames = []
    for item in source.frames():
        frames.append(item)
        if max_frames and len(frames) >= max_frames:
            break
    if not frames:
        raise ValueError(f"{source.spec} has no frames")
    return frames


def time_engine(engine, frames) -> EngineTiming:
    """Run decoded frames through a CaptureEngine (footage mode: no frame dropped) and time it."""
    timing = EngineTiming(len(frames), 0.0, 0)
    t0 = time.perf_counter()
    for p in engine.run(iter(frames)):
        timing.tracked += int(p.result.tracked)
        for k, v in p.ms.items():
            timing.stages.setdefault(k, []).append(v)
    timing.wall = time.perf_counter() - t0
    return timing


def time_teacher(frames) -> float:
    """Frames per second of the teacher (MediaPipe FaceLandmarker, VIDEO mode, blendshapes on) on the same frames.
    Raises ImportError when the `teacher` extra is missing."""
    from ..teacher import Teacher  # noqa: PLC0415

    with Teacher(mode="video") as t:
        t.detect(frames[0][2], 0)  # model load and first-frame set-up stay off the clock, as for the engine
        t0 = time.perf_counter()
        for _, ts, rgb in frames:
            t.detect(rgb, int(1000 * ts) + 1)
        return len(frames) / (time.perf_counter() - t0)


def run_bench(source, engine, tracker, max_frames: int | None = None, teacher: bool = True) -> str:
    frames = load_frames(source, max_frames)
    timing = time_engine(engine, frames)
    rows = [(label, f"{timing.median_ms(k):.2f}", len(timing.stages[k])) for k, label in STAGES
            if k in timing.stages]
    if tracker.keyframes is not None and tracker.keyframes.solves:
        rows.append(("Eq. 3 identity/focal (own thread, last solve)", f"{tracker.keyframes.last_ms:.1f}",
                     tracker.keyframes.solves))
    h, w = frames[0][2].shape[:2]
    n = timing.frames
    lines = [f"facecap bench: {source.spec}, {n} frames of {w}×{h}, {os.cpu_count()} CPUs; face tracked in "
             f"{timing.tracked}", "", "| stage | ms (median) | frames |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", f"end to end (pipelined): {timing.fps:.1f} fps ({1000 / timing.fps:.1f} ms/frame)"]
    if teacher:
        try:
            fps = time_teacher(frames)
            lines.append(f"reference, same frames: teacher (MediaPipe FaceLandmarker, VIDEO mode) {fps:.1f} fps "
                         f"({1000 / fps:.1f} ms/frame)")
        except Exception as exc:  # noqa: BLE001 - the teacher extra is optional
            lines.append(f"reference: teacher unavailable ({exc.__class__.__name__}; {TEACHER_HINT})")
    return "\n".join(lines)
