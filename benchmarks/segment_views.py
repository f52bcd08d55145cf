"""Which views of a crop to average (`Segmenter.views`): IOU with the graph cut of the mean of several views' face
probabilities, on held-out crops saved by `eval_segmentation.py --save-crops`, each combination paired against the
crop alone (points, with the 95 % interval over identities).

A view is the crop ("crop"), its mirror image ("mirror"), or its centre S × S window enlarged to 128 × 128 ("zS")
and mirrored ("zSm"); the enlarged views only see their window, so each pixel averages the views that saw it.
`--views` lists the combinations to score ("+" joins the views of one). The shipped choice, two views = crop +
z106m, was made on the validation identities with this script, and so was the zoomed views' weight
(`--zoom-weights`: inside the window each zoomed view weighs w, each whole-crop view 1 − w; 0.5 is the plain mean):

    python benchmarks/eval_segmentation.py --split val --no-detect --save-crops out/eval_crops_val.npz
    python benchmarks/segment_views.py --crops out/eval_crops_val.npz --model models/segmenter_lite.pt \\
        --views crop+mirror,crop+z96m,crop+z102m,crop+z106m,crop+z110m,crop+z116m,z106+z106m,crop+mirror+z106+z106m
    python benchmarks/segment_views.py --crops out/eval_crops_val.npz --views crop+z106m,crop+mirror+z106+z106m \
        --zoom-weights 0.4,0.5,0.6,0.7
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eval_segmentation import identity_interval, load_crops, metrics  # noqa: E402

from facecap_core.segment.graphcut import GraphCutRefiner  # noqa: E402
from facecap_core.segment.segmenter import INPUT_SIZE, ZOOM_WEIGHT, Segmenter, zoom_in, zoom_out  # noqa: E402

VIEW = re.compile(r"^(crop|mirror|z(\d+)(m?))$")


def view_probability(seg: Segmenter, crops: np.ndarray, view: str) -> tuple[np.ndarray, np.ndarray]:
    """One view's face probability in the crop's frame (N, 128, 128) and where it saw the crop (128, 128)."""
    match = VIEW.match(view)
    if not match:
        raise SystemExit(f"error: unknown view {view!r} (crop, mirror, zS or zSm with S < {INPUT_SIZE})")
    seen = np.ones((INPUT_SIZE, INPUT_SIZE), np.float32)
    if view == "crop":
        return seg.predict(crops), seen
    if view == "mirror":
        return seg.predict(np.ascontiguousarray(crops[:, :, ::-1]))[:, :, ::-1], seen
    side, mirrored = int(match.group(2)), bool(match.group(3))
    if not 0 < side < INPUT_SIZE or side % 2:
        raise SystemExit(f"error: window {side} must be even and below {INPUT_SIZE}")
    zoomed = zoom_in(crops, side)
    prob = seg.predict(np.ascontiguousarray(zoomed[:, :, ::-1] if mirrored else zoomed))
    o = (INPUT_SIZE - side) // 2
    full = np.zeros((len(crops), INPUT_SIZE, INPUT_SIZE), np.float32)
    full[:, o:o + side, o:o + side] = zoom_out(prob[:, :, ::-1] if mirrored else prob, side)
    seen[:] = 0
    seen[o:o + side, o:o + side] = 1
    return full, seen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", required=True, help="held-out crops from eval_segmentation.py --save-crops")
    ap.add_argument("--model", default="models/segmenter_lite.pt")
    ap.add_argument("--views", required=True, help="comma-separated combinations of views joined by +")
    ap.add_argument("--zoom-weights", default=str(ZOOM_WEIGHT),
                    help="comma-separated weights of the zoomed views, each combination scored with each "
                         "(default: the shipped ZOOM_WEIGHT)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if not os.path.isfile(args.crops):
        raise SystemExit(f"error: no crops at {args.crops} (write them with eval_segmentation.py --save-crops)")
    arrays, n_ids, split, _, identities = load_crops(args.crops)
    seg, gc = Segmenter.load(args.model, device="cpu"), GraphCutRefiner()
    cache: dict = {}

    def ious(set_name: str, combo: list, zoom_weight: float = 0.5) -> np.ndarray:
        crops, gts, _ = arrays[set_name]
        for view in combo:
            if (set_name, view) not in cache:
                cache[set_name, view] = view_probability(seg, crops, view)
        weight = {v: zoom_weight if v.startswith("z") else 1 - zoom_weight for v in combo}
        total = sum(weight[v] * cache[set_name, v][0] * cache[set_name, v][1] for v in combo)
        seen = sum(weight[v] * cache[set_name, v][1] for v in combo)
        prob = np.where(seen > 0, total / np.maximum(seen, 1e-6), 0.0).astype(np.float32)
        return np.array([metrics(gc.refine(prob[i], crops[i]), gts[i])[0] for i in range(len(crops))])

    weights = [float(w) for w in args.zoom_weights.split(",") if w]
    runs = [(["crop"], 0.5)] + [(c.split("+"), w) for c in args.views.split(",") if c for w in weights]
    print(f"{args.model} on {args.crops} ({split} identities, {n_ids}); fused + graph cut IOU, and the difference "
          "from the crop alone in points (95 % interval over identities)\n")
    print("| views | " + " | ".join(arrays) + " |")
    print("|---" * (len(arrays) + 1) + "|")
    base = {s: ious(s, ["crop"]) for s in arrays}
    for combo, w in runs:
        cells = []
        for s in arrays:
            got = ious(s, combo, w)
            groups = np.tile(identities, len(got) // len(identities))
            lo, hi = identity_interval(got - base[s], groups)
            cells.append(f"{got.mean():.4f} ({100 * (got - base[s]).mean():+.2f}: {100 * lo:+.2f} to {100 * hi:+.2f})")
        zoom = f" (zoom weight {w:g})" if len(weights) > 1 and any(v.startswith("z") for v in combo) else ""
        print(f"| {' + '.join(combo)}{zoom} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
