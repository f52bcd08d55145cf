"""What a segmenter's masks do to the tracking: two or more segmenters on the same real clips, clean and with a
real hand sweeping across the face, through the capture engine (issue 4's check before a segmenter ships).

For each clip (default: the test identity's d19 clip and retalking face_5) the engine runs once on the clean clip
and once per hand sweep (`--hand-seeds`, the hands of `track_real_clip.py --hand`), with every model in turn on the
same frames, so all models see the same inputs in the same process. Each cell is the median NME (% inter-ocular
distance, against the teacher's labels on the clean frames; the hand runs show the median over the hand-covered
frames in brackets). The last rows are the means over the runs and, for each model after the first, its paired
difference from the first on the hand-covered frames (mean over the hand runs, 95 % bootstrap interval over the
runs, and on how many runs it is lower / higher): with the default 6 hand runs one bad sweep can decide the mean,
so judge a close call with more sweeps (`--hand-seeds 0-11`). Tracking feeds each frame's error into the next, so
a tiny change of the masks can send a hand sweep down another path: a segmenter whose masks differ from the
shipped one's on 0.1 % of the pixels scored 0.45 points worse here over 14 hand sweeps (2026-12-08). For what the
masks do to the regression itself, one estimate at a time over hundreds of crops, use
`bench_track.py --segmenter A.pt,B.pt --hand-draws 8 --real-only`.

    python benchmarks/segmenter_tracking.py --models models/segmenter_lite.pt,OTHER.pt [--clips A,B]
        [--hand-seeds 3,4,5 | 0-11] [--graphcut LAM,SIGMA]
"""
from __future__ import annotations

import argparse
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from track_common import mean_interval, segmenter_spec  # noqa: E402
from track_real_clip import hand_over_face, run_engine, score  # noqa: E402

from facecap_core.data.paths import CACHE, DEFAULT_FACES  # noqa: E402
from facecap_core.data.real import load_real_labels  # noqa: E402
from facecap_core.rig.model import load_rig  # noqa: E402

DEFAULT_CLIPS = "videos/liveportrait__driving_d19.mp4,videos/retalking__face_5.mp4"


def parse_seeds(spec: str) -> list[int]:
    """'3,4,5' or '0-11' (or a mix: '0-3,7') → the hand seeds."""
    seeds = []
    for part in (p for p in spec.split(",") if p):
        first, _, last = part.partition("-")
        seeds += list(range(int(first), int(last or first) + 1))
    return seeds


def paired_summary(base: list, other: list) -> str:
    """other − base over the hand runs: mean (95 % bootstrap interval over runs), runs lower / higher."""
    d = np.asarray(other) - np.asarray(base)
    lo, hi = mean_interval(d)
    return f"{d.mean():+.2f} ({lo:+.2f} to {hi:+.2f}); lower on {int((d < 0).sum())}, higher on {int((d > 0).sum())}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", required=True, help="comma-separated segmenter files (.pt or .onnx); a file "
                    "followed by +views=N averages N views of each crop (1, 2, 4; Segmenter.views)")
    ap.add_argument("--clips", default=DEFAULT_CLIPS, help="comma-separated paths inside ../shared/faces")
    ap.add_argument("--hand-seeds", default="3,4,5",
                    help="hand sweeps per clip: a list and/or ranges, 0-11 (empty: clean clips only)")
    ap.add_argument("--graphcut", default=None, metavar="LAM,SIGMA",
                    help="run the engine's graph cut with this λ and σ instead of its defaults (a run per setting; "
                         "the engine is deterministic on footage, so runs compare)")
    args = ap.parse_args(argv)
    if args.graphcut:
        from facecap_core.segment.graphcut import GraphCutRefiner

        lam, sigma = (float(v) for v in args.graphcut.split(","))
        GraphCutRefiner.__init__.__defaults__ = (lam, sigma)  # the engine builds its refiner with the defaults
        print(f"graph cut λ = {lam:g}, σ = {sigma:g}", file=sys.stderr)

    models = [m for m in args.models.split(",") if m]
    for m in models:
        if not os.path.isfile(segmenter_spec(m)[0]):
            raise SystemExit(f"no such segmenter: {m}")
    seeds = parse_seeds(args.hand_seeds)
    from facecap_core.capture.bench import load_frames
    from facecap_core.capture.run import open_frames

    rig = load_rig()
    all_labels = load_real_labels(DEFAULT_FACES, CACHE, rig, kinds=("video",))
    medians = {m: [] for m in models}
    covered_medians = {m: [] for m in models}
    header = "| run | " + " | ".join(os.path.relpath(m) for m in models) + " |"
    rows = []
    for clip in args.clips.split(","):
        by_frame = {lb.frame: lb for lb in all_labels if lb.file == clip and lb.face_index == 0}
        if not by_frame:
            raise SystemExit(f"no teacher labels cached for {clip} (facecap data build --label-missing)")
        source = open_frames(os.path.join(DEFAULT_FACES, clip))
        clean = load_frames(source)
        for seed in [None] + seeds:
            frames, covered = (clean, None) if seed is None else hand_over_face(clean, by_frame, seed=seed)
            cells = []
            for m in models:
                path, views = segmenter_spec(m)
                got, _ = run_engine(frames, True, source.fps, segmenter_model=path, views=views)
                med = float(np.median(score(got, by_frame)))
                medians[m].append(med)
                if covered is None or not covered.any():  # (a sweep can miss the face's box)
                    cells.append(f"{med:.2f}")
                else:
                    cov = float(np.median(score(got, by_frame, covered)))
                    covered_medians[m].append(cov)
                    cells.append(f"{med:.2f} ({cov:.2f})")
            name = f"{os.path.basename(clip)}, " + ("clean" if seed is None else f"hand {seed}")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    print("Median NME % of the engine with each segmenter (hand runs: all frames (hand-covered frames))\n")
    print(header)
    print("|---" * (len(models) + 1) + "|")
    print("\n".join(rows))
    print("| **mean of the medians** | " + " | ".join(f"**{np.mean(medians[m]):.2f}**" for m in models) + " |")
    if seeds:
        print("| **mean, hand-covered frames** | "
              + " | ".join(f"**{np.mean(covered_medians[m]):.2f}**" for m in models) + " |")
        if len(models) > 1:
            runs = len(covered_medians[models[0]])
            print(f"\nhand-covered frames, paired against {models[0]} over {runs} hand runs:")
            for m in models[1:]:
                print(f"- {m}: {paired_summary(covered_medians[models[0]], covered_medians[m])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
