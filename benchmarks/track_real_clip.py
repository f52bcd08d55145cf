"""A real clip end to end through the capture engine, scored against the teacher's labels (issue 6).

The clip (a video of `../shared/faces`, by default the only clip of a held-out test identity) goes through exactly what
`facecap track` runs (CaptureSession: Viola–Jones → segmentation + graph cut → DDE tracking, pipelined). Each
tracked frame that the teacher labelled (cached labels, `facecap data build --label-missing` makes them) is
scored: NME = mean landmark distance over the 73 landmarks / inter-ocular distance. Prints frames tracked, NME
median / p90, the share of labelled frames under 5 % NME, and the engine's fps. Needs ../shared (training data
is not part of the repository).

`--hand`: a real hand cut-out (../shared/occluders) sweeps across the face, covering it for a third of the clip,
and the table compares the engine with and without segmentation on those frames (the paper's point: the masked
regressor keeps tracking under the occluder; the labels are the teacher's on the clean frames). Two more rows
run the tracker frame by frame on the segmenter's masks as they are and on the same masks with the hand's pixels
taken out: the difference is what the segmenter's errors on the hand cost the tracking.

`--focal-scale K` runs with a focal K times the 60° guess (as `facecap track --focal` does), and `--regions` adds
the error and vertical offset per face region (jaw, brows, nose, eyes, mouth).

    python benchmarks/track_real_clip.py [--clip videos/liveportrait__driving_d19.mp4] [--hand] [--no-segmentation]
        [--focal-scale K] [--regions] [--tracker-model M] [--segmenter-model M]
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
from facecap_core.rig.geometry import default_focal  # noqa: E402
from facecap_core.rig.model import load_rig  # noqa: E402


def hand_over_face(frames: list, labels: dict, seed: int = 3) -> tuple[list, np.ndarray]:
    """The frames with a real hand sweeping across the face during their middle third; (frames, covered (N,) bool
    = the hand overlaps the face's landmark box)."""
    from facecap_core.data.occluders import OccluderLibrary
    from facecap_core.data.paths import DEFAULT_OCCLUDERS

    lib = OccluderLibrary.from_dir(DEFAULT_OCCLUDERS, os.path.join(CACHE, "occluders"))
    if not lib.has("hand"):
        raise SystemExit("no real hand cut-outs in ../shared/occluders")
    n = len(frames)
    h, w = frames[0][2].shape[:2]
    first, last = n // 3, 2 * n // 3
    anchor = labels.get((first + last) // 2) or next(iter(labels.values()))
    rng = np.random.default_rng(seed)
    layer = None
    while layer is None or layer.kind != "real-hand":
        layer = lib.hand(rng, (w, h), anchor.landmarks)
    rgba = layer.rgba.astype(np.float32)
    out, covered = [], np.zeros(n, bool)
    lo, hi = anchor.landmarks.min(0), anchor.landmarks.max(0)
    for i, t, img in frames:
        if not first <= i < last:
            out.append((i, t, img))
            continue
        phase = (i - first) / max(last - first - 1, 1)  # 0 → 1: in from the left, across, out to the right
        dx = int(round((phase - 0.5) * 1.6 * w))
        shifted = np.zeros_like(rgba)
        src = rgba[:, max(0, -dx):w - max(0, dx)]
        shifted[:, max(0, dx):max(0, dx) + src.shape[1]] = src
        a = shifted[..., 3:] / 255
        out.append((i, t, (shifted[..., :3] * a + img * (1 - a) + 0.5).astype(np.uint8)))
        box = shifted[int(lo[1]):int(hi[1]), int(lo[0]):int(hi[0]), 3]
        covered[i] = box.size > 0 and np.mean(box > 128) > 0.1
    return out, covered


def run_engine(frames, segmentation: bool, fps: float, tracker_model: str | None = None, focal: float | None = None,
               segmenter_model: str | None = None, views: int | None = None) -> tuple[list, float]:
    """Take frames of decoded frames through the engine (a CaptureSession over a temporary clip)."""
    import tempfile

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from conftest import write_clip

    with tempfile.TemporaryDirectory() as tmp:
        path = write_clip(os.path.join(tmp, "clip.avi"), [f[2] for f in frames], fps)
        options = EngineOptions(segmentation=segmentation, focal=focal, views=views)
        if tracker_model and segmentation:
            options.tracker_model = tracker_model
        if segmenter_model:
            options.segmenter_model = segmenter_model
        session = CaptureSession(path, options).start()
        got, t0 = [], time.perf_counter()
        while session.running:
            got += session.poll()
            time.sleep(0.005)
        session.join()
        got += session.poll()
        if session.state != "finished":
            raise SystemExit(session.error)
        return got, len(got) / (time.perf_counter() - t0)


def track_frame_by_frame(frames, clean, fps: float, hand_free: bool) -> list:
    """The tracker frame by frame on the segmenter's masks (cropped at the previous frame's box); with
    `hand_free`, every pixel the hand changed is taken out of the mask (a segmenter that never calls hand face)."""
    from facecap_core.detect import FaceDetector
    from facecap_core.segment import Segmenter
    from facecap_core.segment.graphcut import GraphCutRefiner
    from facecap_core.segment.pipeline import segment_frame
    from facecap_core.track.tracker import FaceTracker

    seg, refiner, detector = Segmenter.load_default(), GraphCutRefiner(), FaceDetector()
    h, w = frames[0][2].shape[:2]
    tracker = FaceTracker.load_default(image_size=(w, h), detector=detector, fps=fps, threaded_keyframes=False)
    out, box = [], None
    for (i, _, image), (_, _, before) in zip(frames, clean):
        mask, _ = segment_frame(image, detector if box is None else None, seg, refiner, box=box)
        if hand_free:
            mask[np.abs(image.astype(np.int16) - before).max(2) > 10] = 0
        r = tracker.track(image, mask)
        box = tracker.face_box() if r.tracked else None
        out.append({"index": i, "tracked": r.tracked, "landmarks": r.landmarks})
    tracker.close()
    return out


REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "mouth": range(48, 68)}


def region_errors(frames: list, by_frame: dict) -> dict:
    """Per region of the 68 points: (median over frames of its mean error, median vertical offset of its points
    from the teacher's), both % IOD; negative = above."""
    err, dy = [], []
    for f in frames:
        lb = by_frame.get(f["index"])
        if lb is not None and f["tracked"]:
            d = (np.array(f["landmarks"])[:68] - lb.landmarks[:68]) / lb.iod * 100
            err.append(np.linalg.norm(d, axis=1))
            dy.append(d[:, 1])
    err, dy = np.array(err), np.array(dy)
    return {name: (float(np.median(err[:, list(idx)].mean(1))), float(np.median(dy[:, list(idx)])))
            for name, idx in REGIONS.items()}


def score(frames: list, by_frame: dict, only=None) -> np.ndarray:
    nme = []
    for f in frames:
        lb = by_frame.get(f["index"])
        if lb is not None and f["tracked"] and (only is None or only[f["index"]]):
            nme.append(100 * np.linalg.norm(np.array(f["landmarks"]) - lb.landmarks, axis=1).mean() / lb.iod)
    return np.array(nme)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default="videos/liveportrait__driving_d19.mp4",
                    help="path inside ../shared/faces (default: the one clip of a test identity)")
    ap.add_argument("--no-segmentation", action="store_true")
    ap.add_argument("--hand", action="store_true", help="sweep a real hand across the face; compare both engines")
    ap.add_argument("--hand-seed", type=int, default=3, help="which hand and sweep (with --hand)")
    ap.add_argument("--tracker-model", default=None, help="the masked regressor to use (default: models/)")
    ap.add_argument("--segmenter-model", default=None, help="the segmenter to use (default: models/)")
    ap.add_argument("--focal-scale", type=float, default=None,
                    help="run with focal = this × the 60° guess (`facecap track --focal`; default: the guess)")
    ap.add_argument("--regions", action="store_true", help="also print the error per face region")
    args = ap.parse_args()

    labels = [lb for lb in load_real_labels(DEFAULT_FACES, CACHE, load_rig(), kinds=("video",))
              if lb.file == args.clip and lb.face_index == 0]
    if not labels:
        raise SystemExit(f"no teacher labels cached for {args.clip} (facecap data build --label-missing)")
    by_frame = {lb.frame: lb for lb in labels}
    from facecap_core.capture.bench import load_frames
    from facecap_core.capture.run import open_frames

    source = open_frames(os.path.join(DEFAULT_FACES, args.clip))
    frames = load_frames(source)
    covered, clean = None, frames
    if args.hand:
        frames, covered = hand_over_face(frames, by_frame, seed=args.hand_seed)
    hand = f"; a real hand across the face in {int(covered.sum())} frames" if args.hand else ""
    print(f"{args.clip}: {len(frames)} frames of {source.width}×{source.height}, identity {labels[0].identity} "
          f"({labels[0].split} split){hand}")
    print("| engine | frames tracked | scored | NME median % | NME p90 % | under 5 % | fps |")
    print("|---|---|---|---|---|---|---|")
    configs = [("segmentation + masked DDE", True), ("no segmentation", False)]
    if not args.hand:
        configs = configs[1:] if args.no_segmentation else configs[:1]
    focal = args.focal_scale * default_focal((source.width, source.height)) if args.focal_scale else None
    runs = [(name, *run_engine(frames, segmentation, source.fps, args.tracker_model, focal, args.segmenter_model))
            for name, segmentation in configs]
    if args.hand:
        runs += [(f"frame by frame, {kind}", track_frame_by_frame(frames, clean, source.fps, hand_free), float("nan"))
                 for kind, hand_free in (("segmenter's masks", False), ("the same masks without the hand", True))]
    for name, got, fps in runs:
        rows = [(name, None)] + ([(f"{name}, hand frames only", covered)] if args.hand else [])
        for label, only in rows:
            nme = score(got, by_frame, only)
            n = len(got) if only is None else int(only.sum())
            tracked = sum(f["tracked"] for f in got if only is None or only[f["index"]])
            print(f"| {label} | {tracked}/{n} | {len(nme)} | {np.median(nme):.2f} | {np.percentile(nme, 90):.2f} | "
                  f"{np.mean(nme < 5):.0%} | {fps:.1f} |")
    if args.regions:
        print(f"\nPer region ({runs[0][0]}; % IOD, medians over the labelled frames):\n")
        print("| region | error | vertical offset from the teacher |\n|---|---|---|")
        for name, (err, dy) in region_errors(runs[0][1], by_frame).items():
            print(f"| {name} | {err:.2f} | {dy:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
