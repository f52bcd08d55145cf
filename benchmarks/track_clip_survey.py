"""Every teacher-labelled clip through the capture engine, with the regression's lens as shipped and as before.

For each clip of `../shared/faces` with at least `--min-frames` labelled frames: median NME against the teacher
(as `track_real_clip.py`) and the jaw's vertical offset from the teacher's, for

* **60° lens**: the tracker given the 60° guess as its focal (`--focal`), so it regresses through that lens: what
  `facecap track` did before the lens change;
* **shipped**: no focal given, so the regression works through a lens `GUESS_LENS_SCALE` times longer and reports
  poses in the guess's camera (`facecap_core/track/tracker.py`).

Most clips are of training identities (the tracker has seen their crops), so the absolute figures flatter it; the
paired difference is what the lens does. Needs ../shared.

    python benchmarks/track_clip_survey.py [--min-frames 100] [--limit N]
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
    args = ap.parse_args()

    labels = [lb for lb in load_real_labels(DEFAULT_FACES, CACHE, load_rig(), kinds=("video",)) if lb.face_index == 0]
    if not labels:
        raise SystemExit(f"no teacher labels cached for the clips of {DEFAULT_FACES} (facecap data build "
                         "--label-missing)")
    counts = Counter(lb.file for lb in labels)
    clips = [c for c, n in counts.items() if n >= args.min_frames][:args.limit]
    print(f"{len(clips)} clips with ≥ {args.min_frames} labelled frames; median NME % (jaw's vertical offset, % IOD)\n")
    print("| clip | split | frames | 60° lens | shipped |\n|---|---|---|---|---|")
    pairs = []
    for clip in clips:
        by_frame = {lb.frame: lb for lb in labels if lb.file == clip}
        source = open_frames(os.path.join(DEFAULT_FACES, clip))
        frames = load_frames(source)
        cells = []
        for focal in (default_focal((source.width, source.height)), None):
            got, _ = run_engine(frames, True, source.fps, focal=focal)
            cells.append((float(np.median(score(got, by_frame))), region_errors(got, by_frame)["jaw"][1]))
        pairs.append([c[0] for c in cells])
        split = next(iter(by_frame.values())).split
        print(f"| {clip} | {split} | {len(frames)} | " + " | ".join(f"{m:.2f} ({dy:+.2f})" for m, dy in cells) + " |",
              flush=True)
    a = np.array(pairs)
    print(f"\nmean over {len(a)} clips: 60° lens {a[:, 0].mean():.2f}, shipped {a[:, 1].mean():.2f}; "
          f"the shipped lens lower on {int((a[:, 1] < a[:, 0]).sum())} of {len(a)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
