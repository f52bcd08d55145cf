"""Check the learned identity modes: variance table + plots of neutral ± 3σ of the first modes.

    python rigs/identity_report.py [--faces ../shared/faces] [--cache cache/teacher] [--out rigs/identity_modes.png]

Runs the identity stage (teacher outputs are cached) with zero expression deltas unless ``--rig`` names a built
rig, whose expression deltas are then used. The figure shows, for each of the first ``--modes`` modes, the face
from the front (x, y) and from the side (z, y) at u_k = -3 (blue) and +3 (red) over the neutral (grey); the
modes should be smooth whole-face shape changes.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from facecap_core.rig import landmarks as L  # noqa: E402
from facecap_core.rig.build.base import build_base  # noqa: E402
from facecap_core.rig.build.identity import learn_identity_details  # noqa: E402
from facecap_core.rig.topology import load_canonical_mesh  # noqa: E402

CONTOURS = [L.FACE_OVAL + L.FACE_OVAL[:1], L.LIPS_OUTER_UPPER, L.LIPS_OUTER_LOWER, L.LIPS_INNER_UPPER,
            L.LIPS_INNER_LOWER, L.EYE_R_UPPER, L.EYE_R_LOWER, L.EYE_L_UPPER, L.EYE_L_LOWER, L.BROW_R_UPPER,
            L.BROW_L_UPPER, (168, 6, 197, 195, 5, 4, 1, 2), (98, 97, 2, 326, 327)]


def print_table(notes: dict) -> None:
    print(f"faces detected {notes['faces_detected']}, used {notes['faces_used']} "
          f"({notes['images_used']} photos, {notes['video_frames_used']} video frames), "
          f"identities {notes['identities']}; learned modes {notes['learned_modes']}, "
          f"anthropometric {notes['anthropometric_modes']}")
    print("rejected:", ", ".join(f"{k}: {v}" for k, v in notes["rejected"].items()))
    print(f"z scale {notes.get('z_scale')}, real-face mean vs canonical RMS {notes['mean_vs_canonical_rms_cm']} cm")
    print(" mode  var%   cum%   rms cm")
    for k, (v, c, r) in enumerate(zip(notes["variance_fraction"], notes["variance_cumulative"], notes["mode_rms_cm"])):
        print(f"  {k:3d} {100 * v:6.2f} {100 * c:6.2f}  {r:.3f}")


def plot(base, basis: np.ndarray, out: str, n: int = 6, mean: np.ndarray | None = None) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    neutral = base.neutral
    n = min(n, len(basis))
    extra = 1 if mean is not None else 0
    fig, axes = plt.subplots(n + extra, 2, figsize=(7, 3.3 * (n + extra)))
    axes = np.atleast_2d(axes)

    def draw(ax, P, view, colour, size, lw):
        a, b = (0, 1) if view == "front" else (2, 1)
        ax.scatter(P[:, a], P[:, b], s=size, c=colour, linewidths=0)
        for c in CONTOURS:
            c = list(c)
            ax.plot(P[c, a], P[c, b], "-", color=colour, lw=lw)

    rows = [("real-face mean (red) vs canonical", mean - neutral)] if mean is not None else []
    rows += [(f"mode {k}  ±3σ", basis[k] * 3) for k in range(n)]
    for r, (title, d) in enumerate(rows):
        for c, view in enumerate(("front", "side")):
            ax = axes[r, c]
            draw(ax, neutral, view, "0.75", 2, 0.6)
            if title.startswith("real"):
                draw(ax, neutral + d, view, "tab:red", 2, 0.8)
            else:
                draw(ax, neutral - d, view, "tab:blue", 2, 0.8)
                draw(ax, neutral + d, view, "tab:red", 2, 0.8)
            ax.invert_yaxis()
            ax.set_aspect("equal")
            ax.set_title(f"{title} ({view})", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", default=os.path.join(HERE, "..", "..", "shared", "faces"))
    ap.add_argument("--cache", default=os.path.join(HERE, "..", "cache", "teacher"))
    ap.add_argument("--rig", default=None, help="use this rig's expression deltas (default: zeros)")
    ap.add_argument("--out", default=os.path.join(HERE, "identity_modes.png"))
    ap.add_argument("--modes", type=int, default=6)
    args = ap.parse_args(argv)

    base = build_base(load_canonical_mesh())
    deltas = np.zeros((46, 478, 3))
    if args.rig:
        from facecap_core.rig.model import FaceRig  # noqa: PLC0415

        deltas = FaceRig.load(args.rig).expression_deltas
    basis, frac, notes, details = learn_identity_details(base, deltas, args.faces, args.cache)
    print_table(notes)
    plot(base, basis, args.out, args.modes, details.get("mean"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
