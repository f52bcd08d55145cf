"""End-to-end capture speed at 640×480 on this CPU, beside the teacher, repeated and interleaved (issue 6).

Clip: the demo's rendered performance (expressions in turn, head turning ±20°), `--frames` long, 640×480, or
`--clip PATH` (any video OpenCV reads). Frames are decoded before timing. Each repeat runs, in this order and on
the same frames:

* engine: `facecap track`'s pipelined engine (network on one thread; graph cut and DDE tracking on another);
* engine, no segmentation: the mask-blind regressor on the face-polygon mask (`facecap track --no-segmentation`);
* sequential: the same stages one after another on one thread (what the pipelining buys);
* teacher: MediaPipe FaceLandmarker in VIDEO mode (blendshapes on), the project's label source;
* with `--remote`: a `facecap serve` engine in another process on this machine, frames sent as JPEG over
  loopback ZeroMQ with up to 4 frames in flight (the paper's GPU offload, here without a GPU).

The table gives each configuration's median fps over the repeats and the median per-stage ms of the pipelined
engine's repeats (stage times measured inside the pipeline include waiting for the other thread's GIL).

    python benchmarks/bench_capture.py [--frames 300] [--repeats 5] [--clip PATH] [--remote]
                                       [--out benchmarks/results/bench_capture.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):  # as the CLI: the stages own the cores
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from facecap_core.capture.bench import STAGES, EngineTiming, time_engine, time_teacher  # noqa: E402
from facecap_core.capture.engine import CaptureEngine  # noqa: E402
from facecap_core.detect import FaceDetector  # noqa: E402
from facecap_core.rig.model import load_rig  # noqa: E402
from facecap_core.segment.graphcut import GraphCutRefiner  # noqa: E402
from facecap_core.segment.pipeline import segment_frame_in_crop  # noqa: E402
from facecap_core.segment.segmenter import Segmenter  # noqa: E402
from facecap_core.track.cascade import Regressor  # noqa: E402
from facecap_core.track.tracker import FaceTracker  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo_frames(n: int, rig) -> list:
    from facecap_core.demo import FPS, performance, render_clip

    expr, rot, _ = performance(rig, n)
    seq = render_clip(rig, expr, rot)
    return [(i, i / FPS, np.ascontiguousarray(f)) for i, f in enumerate(seq.frames)]


def clip_frames(path: str, n: int) -> list:
    from facecap_core.capture.bench import load_frames
    from facecap_core.capture.run import open_frames

    return load_frames(open_frames(path), n)


def sequential(tracker, segmenter, refiner, frames) -> EngineTiming:
    """The engine's stages one after another on this thread (no pipelining)."""
    timing = EngineTiming(len(frames), 0.0, 0)
    t0 = time.perf_counter()
    box = None
    for _, _, image in frames:
        held, info = segment_frame_in_crop(image, tracker.detector if box is None else None, segmenter, refiner,
                                           box=box)
        result = tracker.track(image, held)
        box = tracker.face_box() if result.tracked else None
        timing.tracked += int(result.tracked)
    timing.wall = time.perf_counter() - t0
    return timing


def remote_fps(frames, port: int) -> tuple[float, int]:
    """(fps, frames tracked) of the frames through a `facecap serve` on this machine."""
    from facecap_core.capture.remote import RemoteSession

    h, w = frames[0][2].shape[:2]
    session = RemoteSession(f"tcp://127.0.0.1:{port}", w, h, 30.0, timeout=30.0)
    t0, tracked = time.perf_counter(), 0
    for frame in session.run(frames):
        tracked += int(frame["tracked"])
    fps = len(frames) / (time.perf_counter() - t0)
    session.end()
    return fps, tracked


def start_server():
    """(process, port) of a `facecap serve` on loopback."""
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "facecap_core.cli", "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()  # "facecap serve: engine listening on …"
    return proc, port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clip", default=None, help="a video instead of the rendered demo performance")
    ap.add_argument("--seg-threads", type=int, default=1, help="onnxruntime intra-op threads of the network")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--remote", action="store_true", help="also time a facecap serve engine over loopback")
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = ap.parse_args()

    rig = load_rig()
    frames = clip_frames(args.clip, args.frames) if args.clip else demo_frames(args.frames, rig)
    h, w = frames[0][2].shape[:2]
    fps_clip = 1.0 / max(frames[1][1] - frames[0][1], 1e-6) if len(frames) > 1 else 30.0
    regressor = Regressor.load(os.path.join(ROOT, "models", "tracker_dde.npz"))
    regressor_blind = Regressor.load(os.path.join(ROOT, "models", "tracker_dde_nomask.npz"))
    segmenter = Segmenter.load(os.path.join(ROOT, "models", "segmenter_lite.onnx"), threads=args.seg_threads)
    refiner, detector = GraphCutRefiner(), FaceDetector()

    def tracker(reg):
        return FaceTracker(reg, rig, image_size=(w, h), detector=detector, smoothing=True, fps=fps_clip)

    runs: dict[str, list] = {"engine": [], "engine, no segmentation": [], "sequential": [], "teacher": [],
                             "remote engine (loopback)": []}
    server = start_server() if args.remote else None
    engine_timings = []
    for r in range(args.repeats):
        t = tracker(regressor)
        timing = time_engine(CaptureEngine(t, segmenter, refiner, detector), frames)
        t.close()
        engine_timings.append(timing)
        runs["engine"].append((timing.fps, timing.tracked))
        t = tracker(regressor_blind)
        timing = time_engine(CaptureEngine(t, None, None, detector), frames)
        t.close()
        runs["engine, no segmentation"].append((timing.fps, timing.tracked))
        t = tracker(regressor)
        timing = sequential(t, segmenter, refiner, frames)
        t.close()
        runs["sequential"].append((timing.fps, timing.tracked))
        if not args.no_teacher:
            try:
                runs["teacher"].append((time_teacher(frames), None))
            except ImportError:
                args.no_teacher = True
        if server is not None:
            runs["remote engine (loopback)"].append(remote_fps(frames, server[1]))
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1][0]:.1f} fps" for k, v in runs.items()
                                                            if v), flush=True)

    if server is not None:
        server[0].terminate()
        server[0].wait(10)
    label = os.path.basename(args.clip) if args.clip else "demo performance (rendered)"
    lines = [f"Capture speed: {label}, {len(frames)} frames of {w}×{h}, {os.cpu_count()} CPUs, network on "
             f"onnxruntime ({args.seg_threads} thread), {args.repeats} interleaved repeats, median.", "",
             "| configuration | fps | ms/frame | frames tracked |", "|---|---|---|---|"]
    for name, vals in runs.items():
        if not vals:
            continue
        fps = float(np.median([v[0] for v in vals]))
        tracked = vals[0][1]
        lines.append(f"| {name} | {fps:.1f} | {1000 / fps:.1f} | "
                     f"{'–' if tracked is None else f'{tracked}/{len(frames)}'} |")
    if runs["teacher"]:
        ratio = np.median([e[0] for e in runs["engine"]]) / np.median([t[0] for t in runs["teacher"]])
        lines += ["", f"engine / teacher: {ratio:.2f}×"]
    lines += ["", "Per stage inside the pipelined engine (median ms over frames, then over repeats):", "",
              "| stage | ms |", "|---|---|"]
    for key, name in STAGES:
        vals = [t.median_ms(key) for t in engine_timings if t.stages.get(key)]
        if vals:
            lines.append(f"| {name} | {np.median(vals):.2f} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n\nCommand: `python benchmarks/bench_capture.py " + " ".join(sys.argv[1:]) + "`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
