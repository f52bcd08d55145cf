"""Choosing the cascade's T (stages), K (ferns per stage) and F (fern depth) by measurement.

    python benchmarks/sweep_track.py --data out/track-v1 [--crops 3000] [--inits 8] [--stages 15]

Each setting of (K, F) trains one cascade of `--stages` stages on the same subset of the training crops and
reports the validation NME (median, %) after 5, 10 and 15 stages — the curve gives T for free — with the shipped
file size and the regression time per frame (batch 1, this CPU) of a T = 10 model.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from track_common import table

from facecap_core.data.dataset import Dataset
from facecap_core.rig.model import load_rig
from facecap_core.track.cascade import CascadeConfig, Regressor, evaluate, train_cascade
from facecap_core.track.data import load_rows, subset, tracking_set
from facecap_core.track.shape import ShapeModel

SETTINGS = ((100, 5), (300, 4), (300, 5), (300, 6), (500, 5))


def regression_ms(reg: Regressor, model, data, n: int = 60) -> float:
    one = subset(data, np.arange(min(n, len(data))))
    times = []
    for i in range(len(one)):
        d = subset(one, np.array([i]))
        t0 = time.perf_counter()
        reg.regress(model, d.images, d.masks, d.image_index, d.identity, d.camera, d.shape.copy())
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times[3:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="out/track-v1")
    ap.add_argument("--crops", type=int, default=3000)
    ap.add_argument("--inits", type=int, default=8)
    ap.add_argument("--stages", type=int, default=15)
    args = ap.parse_args()
    model = ShapeModel(load_rig())
    ds = Dataset(args.data)
    rng = np.random.default_rng(0)
    rows = load_rows(ds.view("tracking", "train"), args.crops, rng)
    train = tracking_set(rows, model, np.random.default_rng(1), args.inits)
    val = tracking_set(load_rows(ds.view("tracking", "val"), 300, rng), model, np.random.default_rng(2), 4)
    out = []
    for k, f in SETTINGS:
        t0 = time.time()
        reg = train_cascade(model, train, CascadeConfig(stages=args.stages, ferns=k, depth=f), log=lambda m: None)
        curve = {e["stage"]: e for e in reg.info["curve"]}
        val_at = {t: evaluate(reg, model, val, stages=t)["nme_median"] for t in (5, 10, args.stages)}
        ten = Regressor(reg.config, reg.unit, reg.mean_shape, reg.mean_landmarks, reg.stages[:10])
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.npz")
            ten.save(path)
            size = os.path.getsize(path) / 1e6
        out.append([k, f, f"{val_at[5]:.2f}", f"{val_at[10]:.2f}", f"{val_at[args.stages]:.2f}",
                    f"{curve[10]['train_nme_median']:.2f}", f"{size:.1f}", f"{regression_ms(ten, model, val):.2f}",
                    f"{(time.time() - t0) / 60:.1f}"])
        print(out[-1], flush=True)
    print(f"\n# T, K, F sweep: {len(rows['image'])} training crops × {args.inits} starts, 300 val crops × 4 starts "
          f"(NME %, median)\n")
    print(table(["K", "F", "val T=5", "val T=10", f"val T={args.stages}", "train T=10", "MB (T=10)",
                 "ms/frame (T=10)", "train min"], out))


if __name__ == "__main__":
    main()
