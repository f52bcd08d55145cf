"""DDE tracker accuracy, stability and speed (issue: DDE tracker; design §8).

    python benchmarks/bench_track.py --data out/track-v1 [--model models/tracker_dde.npz] [--crops 300]
                                     [--sequences 3] [--frames 180] [--segmenter [A.pt,B.pt]] [--real-only]
                                     [--hand-draws 8] [--split test|val]

Table 1 needs only the real frames' rows; without out/track-v1 they build in two minutes:
`facecap data build --out out/track-real --kinds tracking --count-synthetic 0 --reenact 0 --perturbed 1
--rectangles 1 --hands 0 --other-occluders 0`.

Tables:
1. NME (%) on the held-out **test identities' real frames** (teacher landmarks), regressing from the data engine's
   perturbed initial estimates (as in tracking: the previous frame is close) and from the mean face (as after a
   detection): clean crops, the cut-out copies (a rectangle removed from the face), and a hand pasted over the face.
   Masks: the ground-truth face mask (oracle segmentation) and, with --segmenter, the shipped segmenter's (or
   those of each segmenter listed: one view each, as live capture runs it, or N with 'A.pt+views=N'). Each
   estimate is one regression from a start near the truth, so unlike a tracked clip (`segmenter_tracking.py`) an
   error does not carry into the next frames: the figure to judge a segmenter's masks by what they do to the
   regression (`--hand-draws 8` for several hands per face; paired differences are printed below the table).
2. Synthetic sequences with ground truth (test-identity textures): NME and expression-coefficient MAE of the full
   run-time tracker (key-frame identity/focal thread on), started from a detection.
3. Jitter on still faces (design §8: landmark std over time / inter-ocular distance) with and without the One Euro
   filter; the still face is rendered once per frame with fresh sensor noise (σ = 4 grey levels).
4. Speed: cascade regression ms/frame, whole tracker step, Eq. 3 key-frame solve, beside a cv2.resize reference and
   the teacher (MediaPipe) on the same frames when installed.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from track_common import jitter, mean_interval, nme, segmenter_spec, sequence_generator, table, track_sequence

from facecap_core.data.dataset import Dataset
from facecap_core.data.paths import CACHE, SHARED
from facecap_core.rig.fit import solve_identity_focal
from facecap_core.rig.model import load_rig
from facecap_core.track.cascade import Regressor, landmark_error
from facecap_core.track.data import load_rows, tracking_set
from facecap_core.track.sequences import synthetic_sequence
from facecap_core.track.shape import CROP_SIZE, ShapeModel
from facecap_core.track.tracker import DEFAULT_MODEL, FaceTracker


def with_hands(rows, rng):
    """Paste a hand (real cut-outs from ../shared/occluders when present, else procedural) over every crop."""
    from facecap_core.data.augment import add_hand  # noqa: PLC0415
    from facecap_core.data.occluders import OccluderLibrary  # noqa: PLC0415
    from facecap_core.data.types import FaceSample, ShapeParams  # noqa: PLC0415

    lib = OccluderLibrary.from_dir(os.path.join(SHARED, "occluders"), os.path.join(CACHE, "occluders"))
    out = dict(rows)
    out["image"], out["mask"], out["visible"] = rows["image"].copy(), rows["mask"].copy(), rows["visible"].copy()
    for i in range(len(rows["image"])):
        params = ShapeParams(rows["rotation"][i], rows["translation"][i], rows["expression"][i],
                             rows["identity"][i], float(rows["focal"][i]), tuple(rows["image_size"][i]))
        s = FaceSample(rows["image"][i], rows["mask"][i], rows["landmarks"][i], rows["visible"][i], params)
        h = add_hand(s, rng, lib)
        out["image"][i], out["mask"][i], out["visible"][i] = h.image, h.mask, h.visible
    return out


def segmenter_masks(images, path: str | None = None):
    """A segmenter's masks (`path`, else the shipped one) for 160 px tracking crops (resized to its 128 px input
    and back)."""
    import cv2  # noqa: PLC0415

    from facecap_core.segment.graphcut import GraphCutRefiner  # noqa: PLC0415
    from facecap_core.segment.segmenter import Segmenter  # noqa: PLC0415

    path, views = segmenter_spec(path or "")  # 'A.pt+views=2': that many views of each crop
    seg = Segmenter.load(path, device="cpu") if path else Segmenter.load_default(device="cpu")
    seg.views, gc = views or 1, GraphCutRefiner()
    out = np.empty(images.shape[:3], np.uint8)
    for i, im in enumerate(images):
        small = cv2.resize(im, (128, 128), interpolation=cv2.INTER_AREA)
        m = gc.refine(seg.predict(small[None])[0], small).astype(np.uint8)
        out[i] = cv2.resize(m, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_NEAREST)
    return out


def paired_lines(errors: dict) -> list[str]:
    """Each segmenter after the first against the first, on the same estimates (errors[(set, start)] = [(mask
    name, per-estimate NME)]): mean difference with a 95 % bootstrap interval over the estimates."""
    lines = []
    for (set_name, start), runs in errors.items():
        base_name, base = runs[0]
        for name, e in runs[1:]:
            d = e - base
            lo, hi = mean_interval(d)
            lines.append(f"- {set_name}, {start}: {name} − {base_name} mean NME {d.mean():+.3f} ({lo:+.3f} to "
                         f"{hi:+.3f}), lower on {100 * np.mean(d < 0):.0f} % of {len(d)} estimates")
    return lines


def real_frames_table(reg, model, args, rng):
    ds = Dataset(args.data)
    rows = load_rows(ds.view("tracking", args.split))
    real = np.char.startswith(rows["source"].astype(str), "real")
    aug = rows["augmentation"].astype(str)
    sets = {"clean": real & (aug == "perturb"), "cut-out rectangle": real & (aug == "cutout")}
    out, errors = [], {}
    for name, keep in list(sets.items()) + [("hand over the face", None)]:
        if keep is None:  # each clean crop `--hand-draws` times, a different hand each time
            base = {k: np.concatenate([v[sets["clean"]]] * args.hand_draws) for k, v in rows.items()}
            r = with_hands(base, np.random.default_rng(7))
        else:
            r = {k: v[keep] for k, v in rows.items()}
        if args.crops and len(r["image"]) > args.crops:
            pick = np.sort(rng.choice(len(r["image"]), args.crops, replace=False))
            r = {k: v[pick] for k, v in r.items()}
        data = tracking_set(r, model, np.random.default_rng(11), inits_per_sample=4)
        det = tracking_set(r, model, np.random.default_rng(12), inits_per_sample=1)
        det.shape = reg.initial_shape(len(det))
        mask_sets = [("oracle", data.masks)]
        for path in args.segmenter or []:
            mask_sets.append((os.path.basename(path) if path else "segmenter", segmenter_masks(r["image"], path)))
        for mname, masks in mask_sets:
            for init_name, d in (("perturbed S*", data), ("mean face", det)):
                d.masks = masks
                gt = d.landmarks[d.image_index]
                e0 = landmark_error(model.landmarks(d.shape, d.identity, d.camera), gt)
                t0 = time.perf_counter()
                s = reg.regress(model, d.images, d.masks, d.image_index, d.identity, d.camera, d.shape.copy())
                dt = (time.perf_counter() - t0) * 1000 / len(d)
                e = landmark_error(model.landmarks(s, d.identity, d.camera), gt)
                if mname != "oracle":
                    errors.setdefault((name, init_name), []).append((mname, e))
                out.append([name, mname, init_name, len(r["image"]), len(d), f"{np.median(e0):.2f}",
                            f"{np.median(e):.2f}", f"{np.mean(e):.2f}", f"{100 * np.mean(e < 8):.0f}%",
                            f"{dt:.2f}"])
    head = table([f"{args.split} real frames", "mask", "start", "crops", "estimates", "start NME", "NME median",
                  "NME mean", "< 8 %", "ms/estimate (batched)"], out)
    return "\n".join([head, ""] + paired_lines(errors)) if len(args.segmenter or []) > 1 else head


def sequences_table(reg, rig, args):
    gen, kind = sequence_generator(rig, size=args.size)
    rows, jit = [], []
    for k in range(args.sequences):
        seq = synthetic_sequence(gen, np.random.default_rng(100 + k), n_frames=args.frames)
        # focal unknown (+20 %); Eq. 3 in step with the frames, as on footage: the same figures every run
        tr = FaceTracker(reg, rig, image_size=seq.image_size, focal=seq.focal * 1.2, threaded_keyframes=False)
        lms, xs, _ = track_sequence(tr, seq.frames, seq.masks * 255)
        e = nme(lms, seq.landmarks)
        ok = np.isfinite(e)
        mae = np.mean(np.abs(xs[ok] - seq.expression[ok]))
        rows.append([k, len(seq.frames), f"{100 * ok.mean():.0f}%", f"{np.nanmedian(e):.2f}", f"{np.nanmean(e):.2f}",
                     f"{mae:.3f}", tr.keyframes.solves, f"{tr.focal / seq.focal:.2f}"])
        tr.close()
        still = synthetic_sequence(gen, np.random.default_rng(200 + k), n_frames=90, still=True)
        noisy = np.clip(still.frames + np.random.default_rng(k).normal(0, 4, still.frames.shape), 0, 255
                        ).astype(np.uint8)
        for smooth in (False, True):
            tr = FaceTracker(reg, rig, image_size=still.image_size, focal=still.focal, smoothing=smooth,
                             keyframes=False)
            lms, _, _ = track_sequence(tr, noisy, still.masks * 255)
            jit.append((k, smooth, jitter(lms[10:], still.landmarks[10:])))
    seq_t = table(["sequence", "frames", "tracked", "NME median", "NME mean", "expression MAE", "Eq. 3 solves",
                   "final f / true f"], rows)
    jit_rows = [[k, "One Euro" if s else "raw", f"{j:.3f}"] for k, s, j in jit]
    jit_t = table(["still sequence", "output", "jitter (% of IOD)"], jit_rows)
    return seq_t, jit_t, kind


def speed_table(reg, rig, args):
    import cv2  # noqa: PLC0415

    gen, _ = sequence_generator(rig, size=args.size)
    seq = synthetic_sequence(gen, np.random.default_rng(300), n_frames=90)
    frames = [cv2.resize(f, (640, 480)) for f in seq.frames[:12]]
    t0 = time.perf_counter()
    for f in frames:
        cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA)
    ref = (time.perf_counter() - t0) * 1000 / len(frames)
    rows = []
    for label, kw in (("", {"keyframes": False}), (", Eq. 3 thread running", {"keyframes": True})):
        tr = FaceTracker(reg, rig, image_size=seq.image_size, focal=seq.focal, **kw)
        start = (seq.rotation[0], seq.translation[0], seq.expression[0], seq.identity)
        t0 = time.perf_counter()
        _, _, ms = track_sequence(tr, seq.frames, seq.masks * 255, start=start)
        step = (time.perf_counter() - t0) * 1000 / len(seq.frames)
        if tr.keyframes:
            tr.close()
        rows += [[f"DDE cascade regression per frame{label}", f"{np.median(ms[5:]):.2f}"],
                 [f"tracker step (crop, regression, checks){label}", f"{step:.2f}"]]
    kf = [(seq.landmarks[i], seq.rotation[i], seq.translation[i], seq.expression[i]) for i in range(0, 60, 10)]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        solve_identity_focal(kf, seq.image_size, rig, f0=seq.focal * 1.2, iterations=3, rounds=2)
        times.append((time.perf_counter() - t0) * 1000)
    rows += [["Eq. 3 identity/focal solve, 6 key-frames (own thread)", f"{np.median(times):.1f}"],
             ["reference: cv2.resize 640×480 → 320×240", f"{ref:.3f}"]]
    try:
        from facecap_core.teacher import Teacher  # noqa: PLC0415

        t = Teacher()
        t.detect(frames[0])
        t0 = time.perf_counter()
        for f in frames:
            t.detect(f)
        rows.append(["reference: teacher (MediaPipe FaceLandmarker), 640×480",
                     f"{(time.perf_counter() - t0) * 1000 / len(frames):.1f}"])
        t.close()
    except Exception as exc:  # the teacher extra is optional
        rows.append(["reference: teacher", f"unavailable ({exc.__class__.__name__})"])
    return table(["stage", "ms (median)"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="out/track-v1")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--crops", type=int, default=300, help="test crops per condition (0 = all)")
    ap.add_argument("--sequences", type=int, default=3)
    ap.add_argument("--frames", type=int, default=180)
    ap.add_argument("--size", type=int, default=320, help="synthetic frame size")
    ap.add_argument("--segmenter", nargs="?", const="", default=None, metavar="A.pt,B.pt",
                    help="also regress with the shipped segmenter's masks, or with those of each listed segmenter")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--real-only", action="store_true", help="only the held-out real frames' table")
    ap.add_argument("--hand-draws", type=int, default=1, help="hands pasted on each clean crop (a row each)")
    ap.add_argument("--split", choices=("test", "val"), default="test", help="identities of the real frames")
    ap.add_argument("--speed-only", action="store_true")
    args = ap.parse_args()
    if args.segmenter is not None:
        args.segmenter = args.segmenter.split(",") if args.segmenter else [None]
    rig = load_rig()
    reg = Regressor.load(args.model)
    model = ShapeModel(rig)
    c = reg.config
    print(f"# DDE tracker benchmark — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"model {os.path.relpath(args.model)} (T={c.stages}, K={c.ferns}, F={c.depth}, P={c.points}, masks "
          f"{'on' if c.use_masks else 'off'})\n")
    if args.speed_only:
        print(speed_table(reg, rig, args))
        return
    if not args.skip_real:
        print(f"## Held-out {args.split} identities, real frames (NME %, design §8)\n")
        print(real_frames_table(reg, model, args, np.random.default_rng(0)), "\n")
    if args.real_only:
        return
    seq_t, jit_t, kind = sequences_table(reg, rig, args)
    print(f"## Synthetic sequences ({kind}; {args.size} px; tracker from detection, f off by +20 %)\n")
    print(seq_t, "\n")
    print("## Jitter on still faces\n")
    print(jit_t, "\n")
    print("## Speed (this CPU, single thread)\n")
    print(speed_table(reg, rig, args))


if __name__ == "__main__":
    main()
