"""Segmentation accuracy on held-out real faces (design §8) and the paper's Table 1 on our data.

Faces: the real labelled photos of the **test identities** (facecap_core.data.splits), ground truth = the data
engine's mask (skin-refined teacher oval, design §5), cropped to 128×128 around the landmark box with the
pipeline's margin (`viola_jones.TRAINING_MARGIN`, 1.75, the middle of the training range; `--margin`; detection is
measured separately, on the full frames). Three sets: clean, + a pasted hand, + random rectangles (augment.py,
fixed seed; real hand cut-outs when the occluder cache exists). Hands are sized by the face, rectangles by the crop,
so with a smaller `--margin` the rectangles cover less of the face. Each face gets `--draws` occluders (8): one
draw of 56 hands moves the hand figure by about a point from seed to seed (sd 0.013), so the figures are the mean
over all draws, and the spread of the per-draw means is printed, with a 95 % interval over the identities
(bootstrap: identities drawn with replacement, each with all its photos and draws), the uncertainty that a
held-out set of this size leaves on each figure.

Maps: the network's training-mode outputs (DeconvNet stream, FCN stream, fused) of `--model`; "naive average" is
the mean of the two streams' probabilities. Each ± graph cut (Eq. 1 as the pipeline runs it: λ = 10, σ = 50;
graphcut.py). Metrics per image, then averaged:
IOU, global (pixel accuracy), ave(face) (face recall). "fused, 2 views" averages the fused map with that of the
crop's centre enlarged 1.21× and mirrored (weighing ZOOM_WEIGHT, 0.6, inside that centre), "4 views" adds the
mirrored crop and the enlarged centre unmirrored (`Segmenter.views`, `facecap segment --views N`). ms/crop: batch-1
CPU forward of what each row needs (all views in one batch), median. Without a model file the script runs end to end on an **oracle-noise** map (the ground
truth blurred, with noise and holes) and says so: that checks the script and the graph cut, not a network.

`--hand-gaps-closed PX` is a diagnostic: in the hand set, the slivers of face between spread fingers (gaps that a
PX-pixel disc closes) count as hand, to measure how much of the error is lines thinner than the network draws.
`--error-bands` is another: where on the face (forehead, middle, chin quarter of its height) the errors lie;
`--worst-sheet` draws each set's worst crops with both outlines.

    python benchmarks/eval_segmentation.py [--model models/segmenter_lite.pt] [--limit N] [--threads 1] [--draws 8] [--margin 1.75]
                                           [--split test|val] [--hand-gaps-closed PX] [--error-bands]
                                           [--worst-sheet out/worst.png] [--save-crops out/eval_crops.npz]
                                           [--compare OTHER.pt]   (paired difference, with its interval)
    python benchmarks/eval_segmentation.py --crops out/eval_crops.npz --model M.pt   (where ../shared is not)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from facecap_core.data.augment import add_hand, add_random_rectangles  # noqa: E402
from facecap_core.data.build import crop_face  # noqa: E402
from facecap_core.data.paths import CACHE, DEFAULT_FACES, DEFAULT_OCCLUDERS  # noqa: E402
from facecap_core.detect.viola_jones import TRAINING_MARGIN  # noqa: E402
from facecap_core.segment.graphcut import GraphCutRefiner  # noqa: E402

MARGIN = TRAINING_MARGIN  # the pipeline's crop
REFINED = "fused + refine head"  # beyond the paper (net.RefineHead), for networks that have one
VIEWED = {2: "fused, 2 views", 4: "fused, 4 views"}  # Segmenter.views: the crop, mirrored and enlarged views


def metrics(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    """(IOU, global, ave(face)) of one image; IOU/recall of an image without face pixels count as 1 if pred is
    empty too."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = np.sum(pred | gt)
    iou = np.sum(pred & gt) / union if union else 1.0
    recall = np.sum(pred & gt) / np.sum(gt) if gt.any() else float(not pred.any())
    return float(iou), float(np.mean(pred == gt)), float(recall)


def close_hand_gaps(clean, hand, px: int):
    """The hand crop with its label's face slivers between the fingers given to the hand: the hidden region
    (face in `clean`, not in `hand`) closed with a `px`-pixel disc. A diagnostic of how much of the hand set's
    error is gaps thinner than the network can draw, not a fix of the labels (those slivers are face). px ≤ 0: the
    hand crop as it is."""
    if px <= 0:
        return hand
    full = clean.mask.astype(bool)
    hidden = (full & ~hand.mask.astype(bool)).astype(np.uint8)
    hidden = cv2.morphologyEx(hidden, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (px, px)))
    return hand.copy(mask=(full & ~hidden.astype(bool)).astype(hand.mask.dtype))


def load_test_faces(limit: int | None, seed: int, margin: float = MARGIN, split: str = "test",
                    hand_gaps_closed: int = 0, draws: int = 1):
    """The split's labelled photos as 128×128 crops: one clean set, and `draws` occluded copies of every face for
    the hand and rectangle sets (draw-major: crop i belongs to draw i // n). Draw 0 uses the generator that a
    single-draw run used, so `draws=1` gives the same crops as before draws existed."""
    from facecap_core.data.occluders import OccluderLibrary
    from facecap_core.data.real import load_real_labels, read_frame, real_sample
    from facecap_core.rig.model import load_rig

    labels = load_real_labels(DEFAULT_FACES, CACHE, load_rig(None), kinds=("image",))
    by_image = {}
    for lb in labels:
        by_image.setdefault(lb.file, []).append(lb)
    test = [lb for lb in labels if lb.split == split]
    if limit:
        test = test[:limit]
    try:  # the split's own real hands: the training data never pastes them (occluders.cutout_split)
        occ = OccluderLibrary.from_dir(DEFAULT_OCCLUDERS, os.path.join(CACHE, "occluders")).for_split(split)
    except Exception:  # noqa: BLE001 - procedural hands only
        occ = None
    sets = {"clean": [], "hand": [], "rectangles": []}
    frames = []
    for lb in test:
        image = read_frame(os.path.join(DEFAULT_FACES, lb.file), lb.frame)
        if image is None:
            continue
        s = real_sample(lb, image, others=[o for o in by_image[lb.file] if o is not lb])
        frames.append((image, s.mask, lb))
        sets["clean"].append(crop_face(s, 128, margin))
    for draw in range(draws):
        rng = np.random.default_rng(seed if draw == 0 else [seed, draw])
        for c in sets["clean"]:
            sets["hand"].append(close_hand_gaps(c, add_hand(c, rng, occ), hand_gaps_closed))
            sets["rectangles"].append(add_random_rectangles(c, rng))
    return sets, frames, len({lb.identity for lb in test})


def frame_identities(frames: list) -> np.ndarray:
    """The identity of each evaluated face (the order of the clean set), as small integers."""
    names = [lb.identity for _, _, lb in frames]
    return np.unique(names, return_inverse=True)[1]


def set_arrays(sets: dict) -> dict:
    """{set name: (crops (N, 128, 128, 3) uint8, ground truth (N, 128, 128) bool, hand kind per crop or None)}."""
    out = {}
    for name, samples in sets.items():
        kinds = np.array([smp.meta["augment"][-1]["op"] for smp in samples]) if name == "hand" else None
        out[name] = (np.stack([smp.image for smp in samples]), np.stack([smp.mask for smp in samples]).astype(bool),
                     kinds)
    return out


def save_crops(path: str, arrays: dict, n_ids: int, split: str, margin: float, identities: np.ndarray) -> None:
    """The evaluation's crops and labels in one .npz (`--crops` reads it where ../shared is not: the GPU machine).
    They are crops of real photos: keep the file under out/, never commit it."""
    blob = {"n_ids": np.array(n_ids), "split": np.array(split), "margin": np.array(margin),
            "identity": np.asarray(identities)}
    for name, (crops, gts, kinds) in arrays.items():
        blob[f"{name}.image"], blob[f"{name}.mask"] = crops, np.packbits(gts, axis=-1)
        if kinds is not None:
            blob[f"{name}.kind"] = kinds
    np.savez_compressed(path, **blob)


def load_crops(path: str) -> tuple[dict, int, str, float, np.ndarray]:
    """What save_crops wrote: (arrays, n_ids, split, margin, identity of each face; files written before the
    identities were saved give each face its own)."""
    with np.load(path, allow_pickle=False) as z:
        names = sorted({k.split(".")[0] for k in z.files if "." in k}, key=("clean", "hand", "rectangles").index)
        arrays = {name: (z[f"{name}.image"],
                         np.unpackbits(z[f"{name}.mask"], axis=-1, count=z[f"{name}.image"].shape[2]).astype(bool),
                         z[f"{name}.kind"] if f"{name}.kind" in z.files else None) for name in names}
        n = len(arrays["clean"][0])
        identities = z["identity"] if "identity" in z.files else np.arange(n)
        return arrays, int(z["n_ids"]), str(z["split"]), float(z["margin"]), identities


def identity_interval(ious: np.ndarray, identities: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple:
    """95 % bootstrap interval of the mean IOU over identities: `ious` (draws × n faces, draw-major) per crop,
    `identities` (n,) per face; each resample draws identities with replacement and averages all their crops."""
    per_face = ious.reshape(-1, len(identities)).mean(0)
    groups = [np.flatnonzero(identities == g) for g in np.unique(identities)]
    sums = np.array([per_face[g].sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    pick = np.random.default_rng(seed).integers(0, len(groups), (reps, len(groups)))
    means = sums[pick].sum(1) / counts[pick].sum(1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def oracle_maps(crops, gts, rng):
    out = []
    for gt in gts:
        p = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 2.0) * 0.9 + 0.05
        p = p + rng.normal(0, 0.2, p.shape)
        for _ in range(3):  # holes
            y, x = rng.integers(20, 108, 2)
            p[y:y + 4, x:x + 4] -= 0.6
        out.append(np.clip(p, 0, 1).astype(np.float32))
    p = np.stack(out)
    return {"oracle-noise": p}, {"oracle-noise": 0.0}


def network_maps(net, crops, full: bool = True):
    """The network's maps per row of the table, and batch-1 ms per row; `full=False`: the paper's rows only, no
    extra views and no timings (enough for a network's headline output)."""
    import torch

    from facecap_core.segment.net import uint8_to_input
    from facecap_core.segment.segmenter import Segmenter

    net.train(False)
    refined = net.refine is not None
    d_all, f_all, u_all, r_all = [], [], [], []
    with torch.inference_mode():
        for i in range(0, len(crops), 16):
            x = uint8_to_input(torch.from_numpy(np.ascontiguousarray(crops[i:i + 16])))
            d, f, u = net.paper_streams(x)
            d_all.append(torch.softmax(d.float(), 1)[:, 1].numpy())
            f_all.append(torch.softmax(f.float(), 1)[:, 1].numpy())
            u_all.append(torch.softmax(u.float(), 1)[:, 1].numpy())
            if refined:
                r_all.append(torch.softmax(net.refine(x, u).float(), 1)[:, 1].numpy())
    pd, pf, pu = (np.concatenate(a) for a in (d_all, f_all, u_all))
    maps = {"FCN-8s stream": pf, "DeconvNet stream": pd, "naive average": (pd + pf) / 2, "fused (ours)": pu}
    if refined:
        maps[REFINED] = np.concatenate(r_all)
    if not full:
        return maps, {}
    viewed = Segmenter(net, device="cpu")
    for views, name in VIEWED.items():
        viewed.views = views
        maps[name] = viewed.predict(crops)
    # batch-1 forward time of what each row needs
    x = uint8_to_input(torch.from_numpy(np.ascontiguousarray(crops[:1])))

    def t(fn, n=15):
        ts = []
        with torch.inference_mode():
            fn()
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(ts))

    def fcn():
        _, pooled, _, _ = net.encode(x)
        return net.fcn_stream(pooled)

    def deconv():
        fc7, _, sw, sz = net.encode(x)
        return net.deconv_stream(fc7, sw, sz)

    def both():
        fc7, pooled, sw, sz = net.encode(x)
        return net.deconv_stream(fc7, sw, sz), net.fcn_stream(pooled)

    ms = {"FCN-8s stream": t(fcn), "DeconvNet stream": t(deconv), "naive average": t(both),
          "fused (ours)": t(lambda: net.paper_streams(x))}
    for views, name in VIEWED.items():
        ms[name] = t(lambda: net.streams(x.repeat(views, 1, 1, 1)))
    if refined:
        ms[REFINED] = t(lambda: net.streams(x))
    return maps, ms


def headline_ious(net, crops: np.ndarray, gts: np.ndarray, gc) -> np.ndarray:
    """Per-crop IOU of another network's own output + graph cut (for `--compare`)."""
    maps = network_maps(net, crops, full=False)[0]
    p = maps[headline(maps)]
    return np.array([metrics(gc.refine(p[i], crops[i]), gts[i])[0] for i in range(len(crops))])


def headline(maps: dict) -> str:
    """The row that is the network's own output: the refined fusion when it has a refinement head."""
    return REFINED if REFINED in maps else "oracle-noise" if "oracle-noise" in maps else "fused (ours)"


BANDS = ("forehead", "middle", "chin")


def print_error_bands(preds: np.ndarray, gts: np.ndarray) -> None:
    """Where the errors of masks `preds` against `gts` (N, H, W) bool lie: each crop's rows split at the quarters
    of its labelled face's height (forehead = everything above the first quarter's end, the crop's top included;
    chin = from the last quarter down), false-face and missed-face pixels per crop in each band, and the mean
    IOU if that band's pixels were all right."""
    errors = {b: [0, 0] for b in BANDS}
    fixed = {b: [] for b in BANDS}
    for pred, gt in zip(preds, gts):
        rows = np.where(gt.any(1))[0]
        if rows.size == 0:
            continue
        top, bottom = rows.min(), rows.max()
        quarter = (bottom - top) // 4
        band = np.full(gt.shape[0], 1)
        band[:top + quarter] = 0
        band[bottom - quarter:] = 2
        for k, name in enumerate(BANDS):
            inside = (band == k)[:, None]
            errors[name][0] += int((pred & ~gt & inside).sum())
            errors[name][1] += int((gt & ~pred & inside).sum())
            corrected = np.where(inside, gt, pred)
            fixed[name].append((corrected & gt).sum() / max((corrected | gt).sum(), 1))
    n = len(preds)
    print("  errors by band of the face's height (fused + graph cut; px per crop):")
    for name in BANDS:
        print(f"    {name:<9} false face {errors[name][0] / n:6.1f}  missed face {errors[name][1] / n:6.1f}  "
              f"IOU if this band were right {np.mean(fixed[name]):.3f}")


def write_worst_sheet(path: str, crops: np.ndarray, preds: np.ndarray, gts: np.ndarray, ious: np.ndarray,
                      count: int = 24, columns: int = 6, scale: int = 2) -> None:
    """A contact sheet of the `count` lowest-IOU crops, each enlarged `scale`×, with the label's outline in green,
    the prediction's in red, and its index and IOU in the corner."""
    tiles = []
    for i in np.argsort(ious)[:count]:
        size = crops.shape[1] * scale
        tile = cv2.resize(crops[i], (size, size), interpolation=cv2.INTER_NEAREST)
        for mask, colour in ((gts[i], (0, 255, 0)), (preds[i], (255, 0, 0))):
            big = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tile, contours, -1, colour, 1)
        cv2.putText(tile, f"{i} {ious[i]:.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[r:r + columns]) for r in range(0, len(tiles), columns)])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, sheet[..., ::-1])


def main(argv=None):
    from facecap_core.segment.segmenter import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--limit", type=int, default=None, help="at most N test faces")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=8,
                    help="occluders drawn per face for the hand and rectangle sets (their figures are the mean "
                         "over all draws; one draw varies by about a point from seed to seed); 1 = the figures "
                         "of runs before 2026-12-07 evening")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--no-detect", action="store_true", help="skip the full-frame (Viola-Jones) section")
    ap.add_argument("--margin", type=float, default=MARGIN,
                    help="crop side / landmark-box side (training draws 1.25-2.3; smaller = the face fills more of "
                         "the crop)")
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="identities to evaluate on: test (report) or val (to choose settings such as --margin)")
    ap.add_argument("--error-bands", action="store_true",
                    help="diagnostic: where the fused + graph cut errors lie on each set, by quarter of the face's "
                         "height (forehead, middle, chin), and the IOU with one band's errors taken out")
    ap.add_argument("--worst-sheet", default=None, metavar="PNG",
                    help="write each set's 24 worst crops (fused + graph cut; label green, prediction red) to "
                         "PNG with the set's name before the extension (keep it under out/: real faces)")
    ap.add_argument("--hand-gaps-closed", type=int, default=0, metavar="PX",
                    help="diagnostic: count face slivers between the fingers (gaps a PX-pixel disc closes) as hand")
    ap.add_argument("--save-crops", default=None, metavar="NPZ",
                    help="also write the three sets' crops and labels to NPZ (for --crops; real faces: keep it "
                         "under out/)")
    ap.add_argument("--compare", default=None, metavar="MODEL",
                    help="also run MODEL on the same crops and print the paired difference of the two networks' "
                         "IOU per set, with its 95 %% interval over identities")
    ap.add_argument("--crops", default=None, metavar="NPZ",
                    help="evaluate on crops saved by --save-crops instead of building them from ../shared (no "
                         "full-frame section); for the GPU machine")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    frames = []
    if args.crops:
        if not os.path.isfile(args.crops):
            raise SystemExit(f"error: no crops at {args.crops} (write them with --save-crops where ../shared is)")
        arrays, n_ids, split, margin, identities = load_crops(args.crops)
        print(f"crops from {args.crops} ({split} identities)")
    else:
        if not os.path.isfile(os.path.join(DEFAULT_FACES, "manifest.csv")):
            raise SystemExit(f"error: no labelled faces at {DEFAULT_FACES} (the held-out photos come from "
                             "../shared/faces; elsewhere, pass --crops with a file written by --save-crops)")
        sets, frames, n_ids = load_test_faces(args.limit, args.seed, args.margin, args.split, args.hand_gaps_closed,
                                              args.draws)
        arrays, split, margin, identities = set_arrays(sets), args.split, args.margin, frame_identities(frames)
        if args.save_crops:
            save_crops(args.save_crops, arrays, n_ids, split, margin, identities)
    n = len(arrays["clean"][0])
    print(f"held-out real faces: {n} photos of {n_ids} {split} identities, crop margin {margin} "
          f"(loaded in {time.perf_counter() - t0:.0f} s); {GraphCutRefiner()!r}")
    net = None
    if os.path.isfile(args.model):
        import torch

        from facecap_core.segment.segmenter import load_model

        torch.set_num_threads(args.threads)
        net, meta = load_model(args.model, "cpu")
        print(f"model {args.model}: config {net.config}; {meta.get('iterations', meta.get('iteration', '?'))} "
              f"iterations")
    else:
        print(f"NO MODEL ({args.model} missing): maps are ORACLE-NOISE (ground truth blurred + noise + holes); "
              "this checks the script and the graph cut only")
    other = None
    if args.compare:
        if net is None or not os.path.isfile(args.compare):
            raise SystemExit(f"error: --compare needs both models: {args.model}, {args.compare}")
        other = load_model(args.compare, "cpu")[0]
    gc = GraphCutRefiner()
    rng = np.random.default_rng(args.seed)
    table1 = {}
    for set_name, (crops, gts, kinds) in arrays.items():
        maps, ms = network_maps(net, crops) if net is not None else oracle_maps(crops, gts, rng)
        draws = len(crops) // n
        print(f"\n[{set_name}] {len(crops)} crops" + (f" ({draws} draws of {n} faces)" if draws > 1 else ""))
        print(f"{'method':<22}{'IOU':>7}{'global':>8}{'ave(face)':>10}{'  | +graph cut':>14}{'IOU':>7}{'global':>8}"
              f"{'ave(face)':>10}{'net ms':>8}{'gc ms':>7}")
        for name, p in maps.items():
            raw = np.mean([metrics(p[i] > 0.5, gts[i]) for i in range(len(crops))], 0)
            tg, cut, masks = [], [], []
            for i in range(len(crops)):
                t1 = time.perf_counter()
                m = gc.refine(p[i], crops[i])
                tg.append(time.perf_counter() - t1)
                cut.append(metrics(m, gts[i]))
                masks.append(m)
            if name == headline(maps):
                per_image, fused_masks = np.array(cut), np.array(masks, bool)
            cut = np.mean(cut, 0)
            table1[(set_name, name)] = (raw, cut, ms[name], 1e3 * float(np.median(tg)))
            print(f"{name:<22}{raw[0]:>7.3f}{raw[1]:>8.3f}{raw[2]:>10.3f}{'':>14}{cut[0]:>7.3f}{cut[1]:>8.3f}"
                  f"{cut[2]:>10.3f}{ms[name]:>8.1f}{1e3 * float(np.median(tg)):>7.1f}")
        if kinds is not None:  # the network output's IOU with graph cut, by kind of hand
            print(f"  {headline(maps)} + graph cut by hand: " + ", ".join(
                f"{k} {per_image[kinds == k, 0].mean():.3f} ({int((kinds == k).sum())})" for k in np.unique(kinds)))
        if draws > 1:  # how much one draw of occluders would have varied
            per_draw = per_image[:, 0].reshape(draws, n).mean(1)
            print(f"  {headline(maps)} + graph cut per draw: median {np.median(per_draw):.3f}, sd "
                  f"{per_draw.std(ddof=1):.3f}, range {per_draw.min():.3f}–{per_draw.max():.3f}")
        n_groups = len(np.unique(identities))
        unit = "identities" if n_groups < n else "faces"
        lo, hi = identity_interval(per_image[:, 0], identities)
        print(f"  {headline(maps)} + graph cut, 95 % interval over {n_groups} {unit} (bootstrap): {lo:.3f}–{hi:.3f}")
        if other is not None:  # paired: the same crops through both networks
            theirs = headline_ious(other, crops, gts, gc)
            diff = per_image[:, 0] - theirs
            lo, hi = identity_interval(diff, identities)
            print(f"  against {args.compare}: {theirs.mean():.3f}; difference {diff.mean():+.4f} "
                  f"(95 % interval over {unit}: {lo:+.4f} to {hi:+.4f})")
        if args.error_bands:
            print_error_bands(fused_masks, gts)
        if args.worst_sheet:
            root, ext = os.path.splitext(args.worst_sheet)
            path = f"{root}_{set_name}{ext or '.png'}"
            write_worst_sheet(path, crops, fused_masks, gts, per_image[:, 0])
            print(f"  worst crops → {path}")
    if frames and not args.no_detect and net is not None:
        from facecap_core.detect import FaceDetector
        from facecap_core.segment.pipeline import segment_frame
        from facecap_core.segment.segmenter import Segmenter

        seg = Segmenter(net, device="cpu")
        det = FaceDetector()
        found, res_raw, res_gc = 0, [], {views: [] for views in (1, *VIEWED)}
        for image, gt, lb in frames:
            seg.views = 1
            m0, info = segment_frame(image, det, seg, None)
            found += info.face_found
            res_raw.append(metrics(m0 > 0, gt))
            for views, res in res_gc.items():
                seg.views = views
                m1 = segment_frame(image, None, seg, gc, box=info.box)[0] if info.face_found else m0
                res.append(metrics(m1 > 0, gt))
        r0, r1 = np.mean(res_raw, 0), np.mean(res_gc[1], 0)
        print(f"\n[full frames: Viola-Jones → crop → net → paste-back] face found in {found}/{len(frames)}; "
              f"IOU {r0[0]:.3f} global {r0[1]:.3f} ave(face) {r0[2]:.3f}; with graph cut IOU {r1[0]:.3f} "
              f"global {r1[1]:.3f} ave(face) {r1[2]:.3f} (misses count as empty masks); "
              + "; ".join(f"{VIEWED[v]} + graph cut IOU {np.mean(res_gc[v], 0)[0]:.3f}" for v in VIEWED))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
