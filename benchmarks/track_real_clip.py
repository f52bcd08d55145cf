"""A real clip end to end through the capture engine, scored against the teacher's labels (issue 6).

The clip (a video of `../shared/faces`, by default a held-out test identity) goes through exactly what
`facecap track` runs (CaptureSession: Viola–Jones → segmentation + graph cut → DDE tracking, pipelined). Each
tracked frame that the teacher labelled (cached labels, `facecap data build --label-missing` makes them) is
scored: NME = mean landmark distance over the 73 landmarks / inter-ocular distance. Prints frames tracked, NME
median / p90, the share of labelled frames under 5 % NME, and the engine's fps. Needs ../shared (training data
is not part of the repository).

    python benchmarks/track_real_clip.py [--clip videos/liveportrait__driving_d10.mp4] [--no-segmentation]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from facecap_core.capture.session import CaptureSession, EngineOptions  # noqa: E402
from facecap_core.data.paths import CACHE, DEFAULT_FACES  # noqa: E402
from facecap_core.data.real import load_real_labels  # noqa: E402
from facecap_core.rig.model import load_rig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="videos/liveportrait__driving_d10.mp4", help="path inside ../shared/faces")
    ap.add_argument("--no-segmentation", action="store_true")
    args = ap.parse_args()

    labels = [lb for lb in load_real_labels(DEFAULT_FACES, CACHE, load_rig(), kinds=("video",))
              if lb.file == args.clip and lb.face_index == 0]
    if not labels:
        raise SystemExit(f"no teacher labels cached for {args.clip} (facecap data build --label-missing)")
    by_frame = {lb.frame: lb for lb in labels}
    session = CaptureSession(os.path.join(DEFAULT_FACES, args.clip),
                             EngineOptions(segmentation=not args.no_segmentation)).start()
    frames, t0 = [], time.perf_counter()
    while session.running:
        frames += session.poll()
        time.sleep(0.005)
    session.join()
    frames += session.poll()
    seconds = time.perf_counter() - t0
    if session.state != "finished":
        raise SystemExit(session.error)
    nme = []
    for f in frames:
        lb = by_frame.get(f["index"])
        if lb is not None and f["tracked"]:
            err = np.linalg.norm(np.array(f["landmarks"]) - lb.landmarks, axis=1).mean()
            nme.append(100 * err / lb.iod)
    nme = np.array(nme)
    tracked = sum(f["tracked"] for f in frames)
    print(f"{args.clip}: {len(frames)} frames of {session.width}×{session.height}, identity {labels[0].identity} "
          f"({labels[0].split} split)")
    print("| frames tracked | labelled frames scored | NME median % | NME p90 % | under 5 % | fps (incl. start) |")
    print("|---|---|---|---|---|---|")
    print(f"| {tracked}/{len(frames)} | {len(nme)}/{len(labels)} | {np.median(nme):.2f} | "
          f"{np.percentile(nme, 90):.2f} | {np.mean(nme < 5):.0%} | {len(frames) / seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
