"""Segmentation network latency on CUDA (issue 4: the full-size network's batch-1 latency, aim ≥ 300 fps on an
H100-class card in fp16): ms per call for batch 1 and 8, fp32 and fp16 autocast (channels-last, as
`Segmenter` runs on CUDA), plain and replayed as a CUDA graph (batch-1 latency of a small network is mostly
kernel launches). Timed with CUDA events, median of N runs after warm-up. The reference in the same run: an
fp16 4096×4096 matrix product (TFLOP/s), so that figures from different cards and days can be compared.

    python benchmarks/bench_segment_cuda.py [--widths 8-16-32-64-128:512,1.0:4096] [--runs 200] [--model M.pt]
    python benchmarks/bench_segment_cuda.py --device cpu --runs 3      (a dry run of the script without a GPU)
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Timer:
    """Median ms of a callable: CUDA events on a GPU, perf_counter on the CPU (the dry run)."""

    def __init__(self, device):
        import torch  # noqa: PLC0415

        self.torch, self.cuda = torch, device.type == "cuda"

    def __call__(self, fn, runs: int, warmup: int = 10) -> float:
        import time  # noqa: PLC0415

        for _ in range(warmup):
            fn()
        times = []
        for _ in range(runs):
            if self.cuda:
                start, end = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t = time.perf_counter()
                fn()
                times.append(1000 * (time.perf_counter() - t))
        return float(np.median(times))


def graph_replay(torch, fn, x):
    """`fn` captured as a CUDA graph on the static input `x`; returns a callable that replays it."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(x)
    return graph.replay


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", default="8-16-32-64-128:512,1.0:4096",
                    help="comma-separated width:fc_width; width = multiplier or per-block channels a-b-c-d-e")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--model", default=None, help="also time this trained .pt")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run of the script")
    args = ap.parse_args(argv)

    import torch  # noqa: PLC0415

    from facecap_core.segment.net import TwoStreamNet, autocast, flops_estimate, prepare_for_device  # noqa: PLC0415
    from facecap_core.segment.segmenter import load_model  # noqa: PLC0415

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_segment_cuda: no CUDA device (use --device cpu for a dry run)", file=sys.stderr)
        return 1
    timer = Timer(device)
    cuda = device.type == "cuda"

    a = torch.randn(4096, 4096, device=device, dtype=torch.float16 if cuda else torch.float32)
    ref_ms = timer(lambda: a @ a, max(3, args.runs // 10))
    ref_tflops = 2 * 4096 ** 3 / (ref_ms / 1000) / 1e12

    nets = []
    for spec in (s for s in args.widths.split(",") if s):
        label, fc = spec.split(":")
        channels = [int(c) for c in label.split("-")] if "-" in label else None
        torch.manual_seed(0)
        nets.append((spec, TwoStreamNet(1.0 if channels else float(label), int(fc), channels=channels)))
    if args.model:
        nets.append((os.path.basename(args.model), load_model(args.model)[0]))

    rows = []
    for name, net in nets:
        net = prepare_for_device(net, device).eval()
        for batch in (int(b) for b in args.batches.split(",")):
            x = torch.rand(batch, 3, 128, 128, device=device)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            for precision in ("fp32", "fp16"):
                if precision == "fp16" and not cuda:
                    continue

                def forward(inp, precision=precision):
                    with torch.inference_mode():
                        if precision == "fp16":
                            with autocast(device):
                                return net(inp)
                        return net(inp)

                plain = timer(lambda: forward(x), args.runs)
                graph = timer(graph_replay(torch, forward, x), args.runs) if cuda else float("nan")
                rows.append((name, net.num_parameters(), flops_estimate(net), batch, precision, plain, graph))

    gpu = torch.cuda.get_device_name(device) if cuda else "CPU (dry run)"
    clock = "CUDA events" if cuda else "perf_counter"
    print(f"segmentation network on {gpu}, torch {torch.__version__}, 128×128 crops, {clock}, median of "
          f"{args.runs} runs")
    print(f"reference: {'fp16' if cuda else 'fp32'} 4096×4096 matrix product {ref_ms:.3f} ms "
          f"({ref_tflops:.1f} TFLOP/s)\n")
    print(f"{'network':>22} {'params':>12} {'GMAC':>7} {'batch':>5} {'prec.':>5} {'ms':>8} {'graph ms':>9} "
          f"{'crops/s':>9}")
    for name, params, gmac, batch, precision, plain, graph in rows:
        best = np.nanmin([plain, graph])
        print(f"{name:>22} {params:>12,} {gmac:>7.3f} {batch:>5} {precision:>5} {plain:>8.3f} {graph:>9.3f} "
              f"{1000 * batch / best:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
