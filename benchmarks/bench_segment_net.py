"""Segmentation network speed: ms per 128×128 crop (batch 1, median of N runs after warm-up), torch CPU vs
onnxruntime CPU, for several widths; parameter counts, GMAC, file sizes (fp32 .pt / .onnx). The reference in the
same run: cv2.resize of a 640×480 frame to 128×128, ×100 (so numbers from a loaded machine can be compared).

    python benchmarks/bench_segment_net.py [--threads 2] [--runs 50] [--widths 0.125:256,8-16-32-64-128:512,1.0:4096]
    (a width is a multiplier of the paper's channels, or five per-block channel counts joined by "-"; a third
    field adds the refinement head with that many channels: 8-16-32-64-128:512:8)
    python benchmarks/bench_segment_net.py --model models/segmenter_lite.pt     (also time the shipped files,
        with 1, 2 and 4 views of the crop: Segmenter.views)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def median_ms(fn, runs: int, warmup: int = 5) -> tuple[float, float]:
    """(median wall ms, median process-CPU ms). On a shared machine the wall time includes waiting for a core;
    with 1 thread the CPU time is close to what an idle core would take."""
    for _ in range(warmup):
        fn()
    ts, cs = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return 1000.0 * float(np.median(ts)), 1000.0 * float(np.median(cs))


def reference_ms(runs: int) -> float:
    import cv2

    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3)).astype(np.uint8)

    def hundred():
        for _ in range(100):
            cv2.resize(frame, (128, 128), interpolation=cv2.INTER_AREA)

    return median_ms(hundred, max(5, runs // 5), warmup=2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch / onnxruntime intra-op threads")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--widths", default="0.125:256,8-16-32-64-128:512,0.1875:256,0.25:256,1.0:4096",
                    help="comma-separated width:fc_width[:refine]; width = multiplier or per-block channels a-b-c-d-e; "
                         "refine = channels of the refinement head (net.RefineHead)")
    ap.add_argument("--full-runs", type=int, default=5, help="runs for networks over 20 M parameters (slow on a CPU)")
    ap.add_argument("--model", default=None, help="also time this .pt and the .onnx beside it")
    args = ap.parse_args(argv)

    import cv2
    import torch

    from facecap_core.segment import Segmenter
    from facecap_core.segment.net import TwoStreamNet, flops_estimate
    from facecap_core.segment.segmenter import export_onnx, save_model

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    crop = np.random.default_rng(1).integers(0, 255, (1, 128, 128, 3)).astype(np.uint8)
    ref0 = reference_ms(args.runs)
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench_seg_")
    configs = [(f[0], int(f[1]), int(f[2]) if len(f) > 2 else 0) for f in (s.split(":") for s in args.widths.split(","))]
    for label, fc, refine in configs:
        channels = [int(c) for c in label.split("-")] if "-" in label else None
        torch.manual_seed(0)
        net = TwoStreamNet(1.0 if channels else float(label), fc, channels=channels, refine=refine).eval()
        pt, onnx_path = os.path.join(tmp, f"w{label}.pt"), os.path.join(tmp, f"w{label}.onnx")
        save_model(net, pt)
        export_onnx(net, onnx_path)
        big = net.num_parameters() > 20e6  # the full-size network: seconds per crop on a CPU
        runs = args.full_runs if big else args.runs
        t_seg = Segmenter(net, device="cpu")
        o_seg = Segmenter.load(onnx_path, threads=args.threads)
        ms_t = median_ms(lambda: t_seg.predict(crop), runs, warmup=3 if big else 5)
        ms_o = median_ms(lambda: o_seg.predict(crop), runs, warmup=3 if big else 5)
        rows.append(("per-block" if channels else label, fc,
                     "-".join(map(str, net.channels)) + (f" +r{refine}" if refine else ""), net.num_parameters(),
                     flops_estimate(net),
                     ms_t, ms_o, os.path.getsize(pt) / 1e6, os.path.getsize(onnx_path) / 1e6, runs))
    shipped = []  # the shipped files through Segmenter.predict, with 1, 2 and 4 views of the crop in one batch
    if args.model:
        onnx_model = os.path.splitext(args.model)[0] + ".onnx"
        segs = [("torch", args.model, Segmenter.load(args.model, device="cpu"))]
        if os.path.isfile(onnx_model):
            segs.append(("onnxruntime", onnx_model, Segmenter.load(onnx_model, threads=args.threads)))
        for kind, path, seg in segs:
            for views in (1, 2, 4):
                seg.views = views
                shipped.append((kind, path, views, median_ms(lambda: seg.predict(crop), args.runs)))
    ref1 = reference_ms(args.runs)

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"segmentation network, batch 1, 128×128 crop, {args.threads} thread(s), {cpu} ({os.cpu_count()} CPUs), "
          f"torch {torch.__version__}")
    print(f"load average {os.getloadavg()[0]:.2f} (wall = elapsed; cpu = this process's CPU time, which excludes "
          "waiting for a core on a shared machine)")
    print(f"reference: cv2.resize 640×480 → 128×128 ×100 = {ref0[0]:.2f} ms wall / {ref0[1]:.2f} ms cpu before, "
          f"{ref1[0]:.2f} / {ref1[1]:.2f} after the nets\n")
    print(f"{'width':>9} {'fc':>5} {'channels':>20} {'params':>12} {'GMAC':>7} {'torch wall':>10} {'torch cpu':>9} "
          f"{'ort wall':>9} {'ort cpu':>8} {'.pt MB':>7} {'.onnx MB':>8} {'runs':>5}")
    for r in rows:
        print(f"{r[0]:>9} {r[1]:>5} {r[2]:>20} {r[3]:>12,} {r[4]:>7.3f} {r[5][0]:>10.2f} {r[5][1]:>9.2f} "
              f"{r[6][0]:>9.2f} {r[6][1]:>8.2f} {r[7]:>7.2f} {r[8]:>8.2f} {r[9]:>5}")
    for kind, path, views, ms in shipped:
        print(f"shipped {kind:>11}: {path}, {views} view{'s' if views > 1 else ''}: {ms[0]:.2f} ms wall, "
              f"{ms[1]:.2f} ms cpu per crop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
