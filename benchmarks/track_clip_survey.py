"""Every teacher-labelled clip through the capture engine, with the regression's lens as shipped and as before.

For each clip of `../shared/faces` with at least `--min-frames` labelled frames: median NME against the teacher
(as `track_real_clip.py`) and the jaw's vertical offset from the teacher's, for

* **60° lens**: the tracker given the 60° guess as its focal (`--focal`), so it regresses through that lens: what
  `facecap track` did before the lens change;
* **shipped**: no focal given, so the regression works through a lens `GUESS_LENS_SCALE` times longer and reports
  poses in the guess's camera (`facecap_core/track/tracker.py`).

Most clips are of training identities (the tracker has seen their crops), so the absolute figures flatter it; the
paired difference is what the lens does. Needs ../shared.

With `--segmenter-model M`, a third column runs the shipped lens on segmenter M's masks (to judge a new segmenter
by what it does to tracking); `--no-60` leaves the 60° lens column out.

    python benchmarks/track_clip_survey.py [--min-frames 100] [--limit N] [--segmenter-model M] [--no-60]
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from track_real_clip import region_errors, run_engine, score  # first: it pins the BLAS threads and the import path

import numpy as np

from facecap_core.capture.bench import load_frames
from facecap_core.capture.run import open_frames
from facecap_core.data.paths import CACHE, DEFAULT_FACES
from facecap_core.data.real import load_real_labels
from facecap_core.rig.geometry import default_focal
from facecap_core.rig.model import load_rig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-frames", type=int, default=100, help="clips with at least this many labelled frames")
    ap.add_argument("--limit", type=int, default=None, help="at most this many clips")
    ap.add_argument("--segmenter-model", default=None, help="add a column: the shipped lens on this segmenter")
    ap.add_argument("--no-60", action="store_true", help="leave out the 60° lens column")
    args = ap.parse_args()

    labels = [lb for lb in load_real_labels(DEFAULT_FACES, CACHE, load_rig(), kinds=("video",)) if lb.face_index == 0]
    if not labels:
        raise SystemExit(f"no teacher labels cached for the clips of {DEFAULT_FACES} (facecap data build "
                         "--label-missing)")
    counts = Counter(lb.file for lb in labels)
    clips = [c for c, n in counts.items() if n >= args.min_frames][:args.limit]
    print(f"{len(clips)} clips with ≥ {args.min_frames} labelled frames; median NME % (jaw's vertical offset, % IOD)\n")
    # (column name, regress through the 60° guess (else the shipped lens), segmenter model or None for models/)
    columns = ([] if args.no_60 else [("60° lens", True, None)]) + [("shipped", False, None)]
    if args.segmenter_model:
        columns.append((os.path.basename(os.path.dirname(args.segmenter_model)) or args.segmenter_model, False,
                        args.segmenter_model))
    print("| clip | split | frames | " + " | ".join(c[0] for c in columns) + " |\n|---|---|---|" + "---|" * len(columns))
    pairs = []
    for clip in clips:
        by_frame = {lb.frame: lb for lb in labels if lb.file == clip}
        source = open_frames(os.path.join(DEFAULT_FACES, clip))
        frames = load_frames(source)
        cells = []
        guess = default_focal((source.width, source.height))
        for _, through_guess, segmenter in columns:
            got, _ = run_engine(frames, True, source.fps, focal=guess if through_guess else None,
                                segmenter_model=segmenter)
            cells.append((float(np.median(score(got, by_frame))), region_errors(got, by_frame)["jaw"][1]))
        pairs.append([c[0] for c in cells])
        split = next(iter(by_frame.values())).split
        print(f"| {clip} | {split} | {len(frames)} | " + " | ".join(f"{m:.2f} ({dy:+.2f})" for m, dy in cells) + " |",
              flush=True)
    a = np.array(pairs)
    shipped = [c[0] for c in columns].index("shipped")
    means = ", ".join(f"{name} {a[:, j].mean():.2f}" for j, (name, _, _) in enumerate(columns))
    others = "; ".join(f"{name} lower than shipped on {int((a[:, j] < a[:, shipped]).sum())} of {len(a)}"
                       for j, (name, _, _) in enumerate(columns) if j != shipped)
    print(f"\nmean over {len(a)} clips: {means}" + (f"; {others}" if others else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
