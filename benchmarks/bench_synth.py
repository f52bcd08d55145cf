"""Synthetic face renderer speed (design §7 target: ≥ 100 samples/s at 128×128 on the 2-core dev machine).

    python benchmarks/bench_synth.py [--size 128] [--n 200] [--runs 5] [--real]

Prints samples/s (median over runs), per-stage ms, and a reference measured in the same run (cv2.resize of a
640×480 frame to 128×128, ×100) so numbers from different machines can be compared. ``--real`` uses the cached real
texture library and /work/shared/backgrounds when present (procedural textures/backgrounds otherwise).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from facecap_core.data.synth import SyntheticFaces, load_backgrounds  # noqa: E402
from facecap_core.data.texture import DEFAULT_CACHE, TextureLibrary, procedural_library  # noqa: E402
from facecap_core.rig.model import load_rig  # noqa: E402


def reference_ms() -> float:
    import cv2  # noqa: PLC0415
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    t = time.perf_counter()
    for _ in range(100):
        cv2.resize(frame, (128, 128), interpolation=cv2.INTER_AREA)
    return (time.perf_counter() - t) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--real", action="store_true")
    a = ap.parse_args()
    rig = load_rig()
    lib, bgs = None, None
    path = os.path.join(DEFAULT_CACHE, "real_256.npz")
    if a.real and os.path.exists(path):
        lib, bgs = TextureLibrary.load(path), load_backgrounds()
    lib = lib or procedural_library(rig, 16)
    gen = SyntheticFaces(rig, lib, bgs, a.size)
    rng = np.random.default_rng(0)
    for _ in range(5):  # warm-up (numba cache load)
        gen.sample(rng)
    rates, stages = [], []
    ref = []
    for _ in range(a.runs):
        ref.append(reference_ms())
        gen.timings = {}
        t0 = time.perf_counter()
        for _ in range(a.n):
            gen.sample(rng)
        dt = time.perf_counter() - t0
        rates.append(a.n / dt)
        tm = dict(gen.timings)
        tm["params"] = dt - sum(tm.values())  # what is not inside render(): sample_params
        stages.append({k: v / a.n * 1e3 for k, v in tm.items()})
    print(f"textures: {len(lib)} ({'real' if a.real and bgs is not None else 'procedural'}), "
          f"backgrounds: {len(gen.backgrounds)}, size {a.size}×{a.size}, {a.n} samples × {a.runs} runs")
    print(f"{'stage':<14}{'ms/sample':>10}")
    for k in ("params", "mesh", "mesh_proxy", "raster", "shade", "composite"):
        print(f"{k:<14}{np.median([s.get(k, 0.0) for s in stages]):>10.2f}")
    print(f"{'total':<14}{1e3 / np.median(rates):>10.2f}")
    print(f"samples/s (median of {a.runs}): {np.median(rates):.1f}  [min {min(rates):.1f}, max {max(rates):.1f}]")
    print(f"reference: cv2.resize 640×480→128×128 ×100 = {np.median(ref):.2f} ms")


if __name__ == "__main__":
    main()
