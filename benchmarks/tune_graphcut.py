"""Tune the graph cut's λ and σ (Eq. 1) on saved evaluation crops: mean IOU per set for each pair.

The paper gives λ = 10, σ = 5 for its network; ours is another network on other crops, so the pair is a setting to
choose on the **validation** identities and then report once on the test ones. The network runs once per crop
(the fused map; one view of each crop, as live capture uses it, or `--views N`); each (λ, σ) then only re-runs
the cut. σ is on the 0–255 scale with the paper's 2σ denominator (graphcut.py): θ = exp(−d² / 2σ), d² summed
over RGB.

    python benchmarks/eval_segmentation.py --split val --no-detect --save-crops out/eval_crops_val.npz
    python benchmarks/tune_graphcut.py --crops out/eval_crops_val.npz [--model models/segmenter_lite.pt]
                                       [--lams 0,5,10,20,40] [--sigmas 5,20,50,150,500]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.eval_segmentation import load_crops, metrics  # noqa: E402
from facecap_core.segment.graphcut import GraphCutRefiner  # noqa: E402


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> int:
    from facecap_core.segment.segmenter import DEFAULT_MODEL, Segmenter, load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", required=True, metavar="NPZ", help="crops saved by eval_segmentation.py --save-crops")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--lams", type=_floats, default=_floats("0,5,10,20,40"))
    ap.add_argument("--sigmas", type=_floats, default=_floats("5,20,50,150,500"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--views", type=int, choices=(1, 2, 4), default=1, help="views of each crop (Segmenter.views)")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.crops):
        print(f"error: no crops at {args.crops}; write them first with benchmarks/eval_segmentation.py --split val "
              "--save-crops", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    arrays, n_ids, split, margin, _ = load_crops(args.crops)
    seg = Segmenter(load_model(args.model, "cpu")[0], device="cpu")
    seg.views = args.views
    probs = {name: seg.predict(crops) for name, (crops, _, _) in arrays.items()}
    print(f"{args.model}, {args.views} view(s), on {args.crops} ({split} identities, {n_ids} of them; "
          + ", ".join(f"{name} {len(c)}" for name, (c, _, _) in arrays.items()) + " crops)")
    names = list(arrays)
    print(f"{'λ':>6}{'σ':>7}" + "".join(f"{n:>12}" for n in names) + f"{'mean':>8}{'ms':>6}")
    rows = []
    for lam in args.lams:
        for sigma in args.sigmas if lam else args.sigmas[:1]:  # λ = 0 ignores σ: the map at 0.5
            gc = GraphCutRefiner(lam=lam, sigma=sigma)
            ious, times = [], []
            for name in names:
                crops, gts, _ = arrays[name]
                per = []
                for i in range(len(crops)):
                    t0 = time.perf_counter()
                    mask = gc.refine(probs[name][i], crops[i])
                    times.append(time.perf_counter() - t0)
                    per.append(metrics(mask, gts[i])[0])
                ious.append(float(np.mean(per)))
            rows.append((lam, sigma, ious))
            print(f"{lam:>6g}{sigma:>7g}" + "".join(f"{v:>12.4f}" for v in ious) + f"{np.mean(ious):>8.4f}"
                  f"{1e3 * np.median(times):>6.1f}", flush=True)
    best = max(rows, key=lambda r: np.mean(r[2]))
    print(f"best mean IOU: λ = {best[0]:g}, σ = {best[1]:g} ({np.mean(best[2]):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
