"""Check the rig's learned neutral and identity modes: variance table + plots.

    python rigs/identity_report.py [--rig rigs/fw46.npz] [--out rigs/identity_modes.png]

Reads the built rig (no teacher needed). The figure shows the learned neutral (red) over MediaPipe's canonical
face (grey), then for each of the first ``--modes`` modes the face from the front (x, y) and from the side (z, y)
at u_k = -3 (blue) and +3 (red) over the neutral (grey); the modes should be smooth whole-face shape changes.
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


def plot(neutral: np.ndarray, basis: np.ndarray, out: str, n: int = 6, reference: np.ndarray | None = None) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    n = min(n, len(basis))
    extra = 1 if reference is not None else 0
    fig, axes = plt.subplots(n + extra, 2, figsize=(7, 3.3 * (n + extra)))
    axes = np.atleast_2d(axes)

    def draw(ax, P, view, colour, size, lw):
        a, b = (0, 1) if view == "front" else (2, 1)
        ax.scatter(P[:, a], P[:, b], s=size, c=colour, linewidths=0)
        for c in CONTOURS:
            c = list(c)
            ax.plot(P[c, a], P[c, b], "-", color=colour, lw=lw)

    rows = [("learned neutral (red) vs canonical", None)] if reference is not None else []
    rows += [(f"mode {k}  ±3σ", basis[k] * 3) for k in range(n)]
    for r, (title, d) in enumerate(rows):
        for c, view in enumerate(("front", "side")):
            ax = axes[r, c]
            draw(ax, neutral if d is not None else reference, view, "0.75", 2, 0.6)
            if d is None:
                draw(ax, neutral, view, "tab:red", 2, 0.8)
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
    from facecap_core.rig.model import DEFAULT_RIG_PATH, FaceRig  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rig", default=DEFAULT_RIG_PATH)
    ap.add_argument("--out", default=os.path.join(HERE, "identity_modes.png"))
    ap.add_argument("--modes", type=int, default=6)
    args = ap.parse_args(argv)

    rig = FaceRig.load(args.rig)
    print_table(rig.provenance["identity"])
    canonical = build_base(load_canonical_mesh()).neutral
    plot(rig.neutral, rig.identity_basis, args.out, args.modes, reference=canonical)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
