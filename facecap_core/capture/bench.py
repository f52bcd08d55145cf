"""`facecap bench INPUT`: per-stage milliseconds and end-to-end frames per second on a clip (design §6, §8).

The clip goes through the capture engine exactly as in `facecap track` (pipelined: segmentation and tracking on
separate threads); each stage's time is the median over the frames, and the end-to-end rate is frames / wall time.
Printed beside the teacher (MediaPipe FaceLandmarker, VIDEO mode) on the same frames in the same run when the
`teacher` extra is installed, since absolute numbers depend on the machine.
"""
from __future__ import annotations

import os
import time

import numpy as np

STAGES = (("detect", "Viola-Jones detection (first frame, re-detections)"), ("crop", "crop 128×128"),
          ("net", "segmentation network"), ("graphcut", "graph cut (Eq. 1)"), ("paste", "mask paste-back"),
          ("track_regress", "DDE regression"), ("track", "tracking step (crop, regression, checks)"))


def run_bench(source, engine, tracker, max_frames: int | None = None, teacher: bool = True) -> str:
    frames = []
    for item in source.frames():
        frames.append(item)
        if max_frames and len(frames) >= max_frames:
            break
    if not frames:
        raise ValueError(f"{source.spec} has no frames")
    times: dict[str, list] = {}
    tracked = 0
    t0 = time.perf_counter()
    for p in engine.run(iter(frames)):
        tracked += int(p.result.tracked)
        for k, v in p.ms.items():
            times.setdefault(k, []).append(v)
    wall = time.perf_counter() - t0
    n = len(frames)
    rows = [(label, f"{np.median(times[k]):.2f}", len(times[k])) for k, label in STAGES if k in times]
    if tracker.keyframes is not None and tracker.keyframes.solves:
        rows.append(("Eq. 3 identity/focal (own thread, last solve)", f"{tracker.keyframes.last_ms:.1f}",
                     tracker.keyframes.solves))
    h, w = frames[0][2].shape[:2]
    lines = [f"facecap bench: {source.spec}, {n} frames of {w}×{h}, {os.cpu_count()} CPUs; face tracked in "
             f"{tracked}", "", "| stage | ms (median) | frames |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", f"end to end (pipelined): {n / wall:.1f} fps ({1000 * wall / n:.1f} ms/frame)"]
    if teacher:
        try:
            from ..teacher import Teacher  # noqa: PLC0415

            with Teacher(mode="video") as t:
                t.detect(frames[0][2], 0)
                t0 = time.perf_counter()
                for i, (_, ts, rgb) in enumerate(frames):
                    t.detect(rgb, int(1000 * ts) + 1)
                tw = time.perf_counter() - t0
            lines.append(f"reference, same frames: teacher (MediaPipe FaceLandmarker, VIDEO mode) {n / tw:.1f} fps "
                         f"({1000 * tw / n:.1f} ms/frame)")
        except Exception as exc:  # the teacher extra is optional
            lines.append(f"reference: teacher unavailable ({exc.__class__.__name__}: pip install -e .[teacher])")
    return "\n".join(lines)
