"""Train the DDE regressor (paper §5; design §4, §8).

    python -m facecap_core.track.train --data out/track-v1 --out models/tracker_dde
    python -m facecap_core.track.train --data out/track-v1 --out models/tracker_dde --resume   (go on after a stop)

Data: the `tracking` kind of a dataset (``facecap data build --kinds tracking``): 160×160 face crops with ground
truth S and the paper's perturbed initial estimates, plus the random-rectangle cut-out copies (``--no-cutout``
leaves them out, ``--no-masks`` trains a tracker blind to the segmentation: the two ablations of the paper's Fig. 8).
Every stage is saved to RUN_DIR/partial.npz; ``--resume`` re-runs the saved stages on the (deterministic) training
estimates and continues. At the end: OUT.npz and the model card OUT.md (data, settings, time, hardware, metrics).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from ..data.dataset import Dataset
from ..rig.model import load_rig
from .cascade import CascadeConfig, ModelFileError, Regressor, evaluate, train_cascade
from .data import InitPolicy, load_rows, tracking_set
from .shape import CROP_MARGIN, CROP_SIZE, ShapeModel


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def calibrate_detector(rows: dict, limit: int = 800) -> dict:
    """Where the landmark box sits relative to a Viola-Jones box, measured on training crops: the tracker turns a
    detection into a crop with it. Returns medians of (landmark-box side / detection width) and of the centre
    offset / detection width, with the number of crops used."""
    from ..detect.viola_jones import FaceDetector  # noqa: PLC0415

    det = FaceDetector()
    real = np.flatnonzero(np.char.startswith(rows["source"].astype(str), "real"))[:limit]
    side, dx, dy = [], [], []
    for i in real:
        boxes = det.detect(rows["image"][i])
        lm = rows["landmarks"][i]
        if not len(boxes) or not np.all(np.isfinite(lm)):
            continue
        x, y, w, h = boxes[0]
        lo, hi = lm.min(0), lm.max(0)
        c = (lo + hi) / 2
        if not (x <= c[0] <= x + w and y <= c[1] <= y + h):
            continue
        side.append(np.max(hi - lo) / w)
        dx.append((c[0] - (x + w / 2)) / w)
        dy.append((c[1] - (y + h / 2)) / w)
    if len(side) < 10:
        return {"side": 1.15, "dx": 0.0, "dy": 0.08, "n": len(side)}  # typical values, when too few detections
    return {"side": float(np.median(side)), "dx": float(np.median(dx)), "dy": float(np.median(dy)), "n": len(side)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facecap_core.track.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder with the tracking kind")
    ap.add_argument("--out", default=os.path.join("models", "tracker_dde"), help="writes OUT.npz and OUT.md")
    ap.add_argument("--run-dir", default=None, help="partial model and log (default out/track-train/<name>)")
    ap.add_argument("--stages", type=int, default=10, help="T")
    ap.add_argument("--ferns", type=int, default=300, help="K per stage")
    ap.add_argument("--depth", type=int, default=5, help="F")
    ap.add_argument("--points", type=int, default=400, help="feature points per stage")
    ap.add_argument("--beta", type=float, default=1000.0, help="bin-output shrinkage")
    ap.add_argument("--max-rank", type=int, default=64, help="principal directions of the update kept per stage")
    ap.add_argument("--inits-per-sample", type=int, default=12, help="initial estimates per crop (of 35)")
    ap.add_argument("--max-crops", type=int, default=None, help="at most this many training crops")
    ap.add_argument("--val-crops", type=int, default=400)
    ap.add_argument("--no-masks", action="store_true", help="ignore the segmentation (Fig. 8 ablation a)")
    ap.add_argument("--no-cutout", action="store_true", help="leave out the cut-out copies (Fig. 8 ablation b)")
    ap.add_argument("--unknown-identity", type=float, default=InitPolicy.unknown_identity_fraction,
                    help="fraction of estimates starting from the mean identity (u = 0), as before Eq. 3 has run")
    ap.add_argument("--runtime-focal", type=float, default=InitPolicy.runtime_focal_fraction,
                    help="fraction of estimates seen through the 60° focal guess the tracker runs with on footage")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)

    name = os.path.basename(args.out.rstrip("/"))
    run_dir = args.run_dir or os.path.join("out", "track-train", name)
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, "train.log")

    def log(msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")

    t_start = time.time()
    try:
        ds = Dataset(args.data)
        train_view, val_view = ds.view("tracking", "train"), ds.view("tracking", "val")
    except Exception as exc:  # DatasetError, KeyError for a dataset without the tracking kind
        print(f"error: cannot read the tracking data in {args.data} ({exc}): build it with "
              f"`facecap data build --kinds tracking --out {args.data}`", file=sys.stderr)
        return 2
    rig = load_rig()
    model = ShapeModel(rig)
    rng = np.random.default_rng([args.seed, 1])
    rows = load_rows(train_view)
    if args.no_cutout:
        keep = rows["augmentation"].astype(str) != "cutout"
        rows = {k: v[keep] for k, v in rows.items()}
    if args.max_crops is not None and len(rows["image"]) > args.max_crops:
        pick = np.sort(rng.choice(len(rows["image"]), args.max_crops, replace=False))
        rows = {k: v[pick] for k, v in rows.items()}
    detector = calibrate_detector(rows)
    policy = InitPolicy(unknown_identity_fraction=args.unknown_identity, runtime_focal_fraction=args.runtime_focal)
    train = tracking_set(rows, model, np.random.default_rng([args.seed, 2]), args.inits_per_sample, policy)
    vrows = load_rows(val_view, args.val_crops, np.random.default_rng([args.seed, 3]))
    val = tracking_set(vrows, model, np.random.default_rng([args.seed, 4]), 4, policy)
    sources = {str(k): int(v) for k, v in zip(*np.unique(rows["source"].astype(str), return_counts=True))}
    log(f"data {args.data}: {len(rows['image'])} training crops {sources}, {len(train)} estimates; "
        f"{len(vrows['image'])} val crops, {len(val)} estimates; detector calibration {detector}")
    del rows

    config = CascadeConfig(stages=args.stages, ferns=args.ferns, depth=args.depth, points=args.points,
                           beta=args.beta, max_rank=args.max_rank, use_masks=not args.no_masks, seed=args.seed)
    partial = os.path.join(run_dir, "partial.npz")
    start = None
    if args.resume and os.path.isfile(partial):
        try:
            start = Regressor.load_partial(partial)
        except ModelFileError as exc:
            log(f"cannot resume ({exc}); starting over")
        else:
            if start.config.__dict__ != config.__dict__:
                log(f"resume: settings differ from the partial model's {start.config.__dict__}; starting over")
                start = None
            else:
                log(f"resumed with {len(start.stages)} stages from {partial}")

    def stage_done(reg, t):
        reg.save(partial)

    reg = train_cascade(model, train, config, val=val, log=log, stage_done=stage_done, start=start)
    reg.info.update({"detector": detector, "crop_size": CROP_SIZE, "crop_margin": CROP_MARGIN,
                     "rig": rig.name, "data": os.path.abspath(args.data), "train_crops": int(len(train.images)),
                     "train_estimates": int(len(train)), "sources": sources,
                     "wall_seconds_last_run": round(time.time() - t_start, 1),
                     "hardware": f"{cpu_name()}, {os.cpu_count()} logical CPUs", "use_masks": not args.no_masks,
                     "cutout_copies": not args.no_cutout, "licenses": ds.manifest.get("licenses", {}),
                     "args": {k: getattr(args, k) for k in ("data", "out", "inits_per_sample", "no_masks",
                                                            "no_cutout", "max_crops", "unknown_identity",
                                                            "runtime_focal")}})
    reg.info["val"] = evaluate(reg, model, val)
    out_npz = args.out + ".npz"
    reg.save(out_npz)
    write_card(args.out + ".md", reg, os.path.getsize(out_npz))
    log(f"wrote {out_npz} ({os.path.getsize(out_npz) / 1e6:.1f} MB) and {args.out}.md; val {reg.info['val']}")
    return 0


def licence_lines(licenses: dict) -> list[str]:
    out = []
    for folder, counts in licenses.items():
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            out.append(f"  - {folder}: {n} × {name}")
    if any(w in name.lower() for c in licenses.values() for name in c for w in ("non-commercial", "research")):
        out.append("  - some sources are non-commercial / research-only: so is this model")
    return out


def write_card(path: str, reg: Regressor, size: int) -> None:
    c, info = reg.config, reg.info
    a = info["args"]
    val = info["val"]
    out = a["out"]
    lines = [
        f"# {os.path.basename(out)}: DDE regressor (fern cascade)",
        "",
        "Segmentation-aware displaced dynamic expression regressor of Saito et al. 2016 §5 (Cao et al. 2014): "
        "T stages × K random ferns of depth F on P shape-indexed, mask-aware pixel features; updates "
        "Q = [R, t, x, D] (46 expressions, 73 landmark displacements); identity and focal come from the key-frame "
        "solver (Eq. 3). Code: `facecap_core/track/`.",
        "",
        "## Settings",
        f"- T = {c.stages} stages, K = {c.ferns} ferns, F = {c.depth}, P = {c.points} points, shrinkage β = {c.beta}, "
        f"update rank ≤ {c.max_rank}; masks {'used' if c.use_masks else 'ignored'}; "
        f"cut-out copies {'in' if info.get('cutout_copies', True) else 'left out'}; seed {c.seed}",
        f"- file {os.path.basename(out)}.npz, {size / 1e6:.1f} MB (bin outputs float16)",
        "",
        "## Data",
        f"- {info['train_crops']} training crops ({', '.join(f'{k} {v}' for k, v in info['sources'].items())}) × "
        f"{a['inits_per_sample']} initial estimates = {info['train_estimates']} estimates, from `{a['data']}` "
        "(identity split: no validation or test identity is trained on); "
        f"{100 * a.get('unknown_identity', 0):.0f} % of the estimates start from the mean identity (u = 0), as the "
        "tracker does until Eq. 3 has run"
        + (f"; {100 * a['runtime_focal']:.0f} % are seen through the 60° focal guess the tracker runs with"
           if a.get("runtime_focal") else ""),
        f"- Viola-Jones → crop calibration, measured on {info['detector']['n']} training crops: landmark box side = "
        f"{info['detector']['side']:.3f} × detection width, centre offset ({info['detector']['dx']:.3f}, "
        f"{info['detector']['dy']:.3f}) × width",
        "- licences of the sources (from their manifest.csv):",
        *licence_lines(info.get("licenses", {})),
        "",
        "## Training",
        f"- hardware: {info['hardware']}; {info['wall_seconds_last_run'] / 60:.1f} min",
        "- curve (NME %, median; design §8):",
        "",
        "| stage | rank kept (energy) | train | val | s |",
        "|---|---|---|---|---|",
    ]
    for e in info.get("curve", []):
        lines.append(f"| {e['stage']} | {e['rank']} ({100 * e['energy']:.0f} %) | {e['train_nme_median']:.2f} | "
                     f"{e.get('val_nme_median', float('nan')):.2f} | {e['seconds']} |")
    lines += ["", "## Metrics",
              f"- validation identities, from the perturbed initial estimates: NME median {val['nme_median']:.2f} %, "
              f"mean {val['nme_mean']:.2f} % (start: {val['init_nme_median']:.2f} %); expression MAE "
              f"{val.get('expression_mae', 0):.3f}",
              *[f"- {line}" for line in info.get("benchmarks", [])],
              "- all benchmark tables: `benchmarks/bench_track.py`, `benchmarks/fig8_occlusion.py`; figures in the "
              "README", "", "## Reproduce", "```",
              f"python -m facecap_core.track.train --data {a['data']} --out {out} --stages {c.stages} "
              f"--ferns {c.ferns} --depth {c.depth} --points {c.points} --beta {c.beta} "
              f"--inits-per-sample {a['inits_per_sample']} --unknown-identity {a.get('unknown_identity', 0)}"
              + (f" --runtime-focal {a['runtime_focal']}" if a.get("runtime_focal") else "")
              + (" --no-masks" if a["no_masks"] else "")
              + (" --no-cutout" if a["no_cutout"] else "") + (f" --max-crops {a['max_crops']}" if a["max_crops"]
                                                               else "")
              + (f" --seed {c.seed}" if c.seed else ""), "```", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
