"""The paper's Fig. 8 on our data: tracking error vs the size of a synthetic occluding box.

    python benchmarks/fig8_occlusion.py --models models/tracker_dde.npz out/track-nomask.npz out/track-nocutout.npz
                                        [--sequences 3] [--frames 180] [--out benchmarks/results/fig8_occlusion.png]

Sequences: synthetic, 180 frames each, held-out test-identity textures over real backgrounds, head turning ±25°,
expressions changing (track_common / track.sequences). On every frame a box of side `fraction` × the face box is
drawn at a fixed place relative to the face (random per sequence, near its centre); the segmentation mask the
tracker gets is the true face mask minus the box (an oracle segmenter, so the figure isolates the regressor).
The tracker starts from the first frame's true pose and expression (identity unknown: u = 0) and runs on its own;
a frame it declares lost is re-detected. NME (%) over the 68 iBUG points — those under the box included — on the
tracked frames; '% tracked' says how often it kept the face.

The three models are the paper's comparison: (a) trained and run without masks, (b) masked, (c) masked + the
random cut-out augmentation — train them with `python -m facecap_core.track.train` (--no-masks, --no-cutout).
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from track_common import ROOT, nme, occlude_box, sequence_generator, table, track_sequence

from facecap_core.rig.model import load_rig
from facecap_core.track.cascade import Regressor
from facecap_core.track.sequences import synthetic_sequence
from facecap_core.track.tracker import FaceTracker

FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def label(reg: Regressor, path: str) -> str:
    if not reg.config.use_masks:
        return "(a) no masks"
    if not reg.info.get("cutout_copies", True):
        return "(b) masks"
    return "(c) masks + cut-out augmentation"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--sequences", type=int, default=3)
    ap.add_argument("--frames", type=int, default=180)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "fig8_occlusion.png"))
    args = ap.parse_args()
    rig = load_rig()
    gen, kind = sequence_generator(rig, size=args.size)
    seqs = [synthetic_sequence(gen, np.random.default_rng(500 + k), n_frames=args.frames)
            for k in range(args.sequences)]
    regs = [(label(r, p), r) for p in args.models for r in [Regressor.load(p)]]
    results = {name: np.zeros((len(FRACTIONS), 2)) for name, _ in regs}
    rows = []
    for fi, frac in enumerate(FRACTIONS):
        errs = {name: [] for name, _ in regs}
        tracked = {name: [] for name, _ in regs}
        for k, seq in enumerate(seqs):
            frames, masks = occlude_box(seq.frames, seq.masks, seq.landmarks, frac, np.random.default_rng(900 + k))
            for name, reg in regs:
                tr = FaceTracker(reg, rig, image_size=seq.image_size, focal=seq.focal, keyframes=False)
                lms, _, _ = track_sequence(tr, frames, masks * 255,
                                           start=(seq.rotation[0], seq.translation[0], seq.expression[0],
                                                  np.zeros(50)))
                e = nme(lms, seq.landmarks)
                errs[name].append(e[np.isfinite(e)])
                tracked[name].append(np.isfinite(e).mean())
        for name, _ in regs:
            e = np.concatenate(errs[name])
            results[name][fi] = np.mean(e) if len(e) else np.nan, np.mean(tracked[name])
            rows.append([f"{frac:.1f}", name, f"{np.mean(e):.2f}" if len(e) else "-",
                         f"{np.median(e):.2f}" if len(e) else "-", f"{100 * np.mean(tracked[name]):.0f}%"])
    print(f"# Fig. 8 — error vs occluding box size ({args.sequences} synthetic sequences × {args.frames} frames, "
          f"{kind}, {args.size} px, oracle masks)\n")
    print(table(["box / face", "model", "NME mean", "NME median", "tracked"], rows))
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, _ in regs:
        ax.plot(FRACTIONS, results[name][:, 0], marker="o", label=name)
    ax.set_xlabel("occluding box side / face box side")
    ax.set_ylabel("landmark NME (%)")
    ax.set_title("Tracking error vs occluder size (cf. paper Fig. 8)")
    ax.grid(alpha=0.3)
    ax.legend()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"\nplot: {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
