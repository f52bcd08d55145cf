"""A weighted mean of the weights of several segmenters of one network ("model soup", Wortsman et al. 2022).

Networks fine-tuned from a common ancestor lie in one basin of the loss, so the mean of their weights is a network
between them, often better than each (the shipped v14 is the mean of v8 and v13). Every floating-point tensor is
averaged, BatchNorm statistics included; integer buffers (BatchNorm's batch counters) come from the first model.
Writes OUT (.pt) and the ONNX file beside it, with the recipe in their metadata.

    python -m facecap_core.segment.soup OUT.pt A.pt B.pt [C.pt ...] [--weights 1,1,...] [--recipe TEXT]
        [--iterations N]

Without `--recipe` the metadata keeps the first model's recipe (with the soup's line added); a soup meant to ship
says what it is: `--recipe` replaces the recipe and lists the averaged files, `--iterations` the iteration count.
"""
from __future__ import annotations

import argparse
import os
import sys

from .segmenter import ModelFileError, export_onnx, load_model, save_model


def average_state_dicts(states: list[dict], weights: list[float]) -> dict:
    """Σ w_i · state_i over floating-point tensors (weights normalised to sum 1); other entries from states[0]."""
    if len(states) != len(weights) or not states:
        raise ValueError("one weight per state dict, at least one")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    keys = set(states[0])
    for s in states[1:]:
        if set(s) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise ValueError("the models are not the same network (layer names or shapes differ)")
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = sum(s[k].float() * (w / total) for s, w in zip(states, weights)).to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="the averaged model (.pt); the .onnx is written beside it")
    ap.add_argument("models", nargs="+", help="segmenter .pt files of one network")
    ap.add_argument("--weights", default=None, help="comma-separated weights, one per model (default: equal)")
    ap.add_argument("--recipe", default=None, help="the soup's recipe for its metadata (model card, `facecap info`)")
    ap.add_argument("--iterations", type=int, default=None, help="training iterations behind the soup (metadata)")
    args = ap.parse_args(argv)

    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(args.models)
    try:
        loaded = [load_model(p, "cpu") for p in args.models]
        configs = {str(net.config) for net, _ in loaded}
        if len(configs) > 1:
            raise ValueError(f"the models are not the same network: {sorted(configs)}")
        states = [net.state_dict() for net, _ in loaded]
        net, meta = loaded[0]
        net.load_state_dict(average_state_dicts(states, weights))
    except (ModelFileError, ValueError) as exc:
        print(f"soup: error: {exc}", file=sys.stderr)
        return 2
    total = sum(weights)
    recipe = " + ".join(f"{w / total:.3f} × {os.path.relpath(p)}" for p, w in zip(args.models, weights))
    meta = dict(meta, soup=recipe)
    if args.recipe:
        meta.update(recipe=args.recipe, averaged=[os.path.relpath(p) for p in args.models])
    if args.iterations is not None:
        meta["iterations"] = args.iterations
    save_model(net, args.out, meta)
    onnx_path = os.path.splitext(args.out)[0] + ".onnx"
    export_onnx(net, onnx_path, meta)
    print(f"wrote {args.out} and {onnx_path}: {recipe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
