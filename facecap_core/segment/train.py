"""Train the two-stream segmentation network (paper-notes "Segmentation network"; design §5, §8).

    python -m facecap_core.segment.train --data out/seg-v1 --out models/segmenter_lite [--width 0.125 --fc-width 256]
    python -m facecap_core.segment.train --data out/seg-v1 --out models/segmenter_lite --resume      (go on)
    python -m facecap_core.segment.train --data out/seg-v1 --out models/segmenter_lite --export-only (files now)

The paper's recipe, from scratch (no pretrained VGG can be downloaded here; BatchNorm in the net makes that work):

* loss = 0.5·CE(DeconvNet) + 0.5·CE(FCN-8s) + 1.0·CE(fused) (`net.two_stream_loss`);
* phase 1: positives only, SGD lr 0.01, momentum 0.9, weight decay 5e-4 (`--iters`, paper 50,000), after a
  linear warm-up from lr/10 over `--warmup` iterations (insurance against an early blow-up from scratch);
* phase 2: fine-tuning with negatives at lr 0.001 (`--finetune-iters`, paper 10,000); the dataset holds as many
  negatives as positives and batches are drawn from both, so about half of each batch is negative;
* random horizontal flips (image and mask) on top of the dataset's own augmentation;
* `--iou-loss W` (off by default, not the paper's): adds W · (1 − soft IOU) of the fused output per crop, so
  training weighs every face as the per-image IOU metric does, however much of it an occluder hides;
* `--online-augment P`: each training sample, with probability P, is augmented again on the fly
  (`augment.augment_for_segmentation` with `online_policy()`: a fresh occluder, crop jitter, photometric changes).
  The dataset holds every base face with a fixed handful of augmentations, which the network learns by heart
  (v4 fits occluded training crops at IOU 0.795 against 0.731 on validation); fresh ones keep coming;
* `--distill-from A.pt[,B.pt...]` (off by default, not the paper's): the targets become
  (1 − W)·label + W·q on crops with a face, q = the teachers' mean fused face probability on the crop and its
  mirror image, W = `--distill-weight` (knowledge distillation: an ensemble's agreement, which the metric rewards,
  taught to one network of the lite budget); crops without a face keep their all-non-face label;
* `--refine C` (off by default, not the paper's): a full-resolution refinement head on the fused output
  (`net.RefineHead`), started as the identity; with `--refine-only` only the head trains on top of `--init-from`;
* fixed seed: batch order depends only on (seed, phase, epoch), flips and online augmentation on (seed, step), so
  a resumed run sees the same batches as an uninterrupted one.

Progress: tqdm, a log line every `--log-every` iterations (loss parts, lr, speed) and validation IOU / global /
ave(face) (design §8, threshold 0.5) on a fixed val subset every `--val-every`. Checkpoints (model, optimiser,
torch RNG, step, epoch position, history, wall time) go to RUN_DIR/last.ckpt every `--checkpoint-minutes` and at
the end; `--resume` continues from it. At the end: OUT.pt, OUT.onnx and the model card OUT.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

from ..data.dataset import file_sha256
from ..data.paths import DEFAULT_BACKGROUNDS, DEFAULT_OCCLUDERS
from .segmenter import ZOOM_WEIGHT, export_onnx, save_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKPOINT = "last.ckpt"
SPLIT_NOISE = 0.01  # --widen split: noise on the copied channels' weights (× each tensor's std) that lets them diverge


# ------------------------------------------------------------------------------------------------- metrics
def mask_metrics(prob: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> dict:
    """Design §8 on face-containing images, per image then averaged. prob (N, H, W) float face probability,
    gt (N, H, W) {0, 1}. → {"iou", "global", "ave_face", "n"}. Images whose ground truth has no face pixel are
    skipped (use `false_face_fraction` for negatives)."""
    pred = prob >= threshold
    gt = gt.astype(bool)
    keep = gt.reshape(len(gt), -1).any(1)
    pred, gt = pred[keep], gt[keep]
    if not len(gt):
        return {"iou": float("nan"), "global": float("nan"), "ave_face": float("nan"), "n": 0}
    inter = (pred & gt).reshape(len(gt), -1).sum(1)
    union = (pred | gt).reshape(len(gt), -1).sum(1)
    acc = (pred == gt).reshape(len(gt), -1).mean(1)
    rec = inter / gt.reshape(len(gt), -1).sum(1)
    return {"iou": float(np.mean(inter / np.maximum(union, 1))), "global": float(acc.mean()),
            "ave_face": float(rec.mean()), "n": int(len(gt))}


def false_face_fraction(prob: np.ndarray, threshold: float = 0.5) -> float:
    """Mean fraction of pixels called face, for images without a face (negatives)."""
    return float((prob >= threshold).mean()) if len(prob) else float("nan")


# ------------------------------------------------------------------------------------------------- data
def load_val_subset(view, n_pos: int, n_neg: int) -> dict:
    """Evenly spaced positives and negatives of a split, in memory: {"image", "mask", "is_negative", "source",
    "augmentation"}."""
    imgs, masks, negs, srcs, augs = [], [], [], [], []
    for b in view.batches(512):
        imgs.append(b["image"])
        masks.append(b["mask"])
        negs.append(b["is_negative"])
        srcs.append(b["source"].astype(str))
        augs.append(b["augmentation"].astype(str))
    image, mask, neg = np.concatenate(imgs), np.concatenate(masks), np.concatenate(negs)
    src, aug = np.concatenate(srcs), np.concatenate(augs)
    pos_i, neg_i = np.flatnonzero(~neg), np.flatnonzero(neg)
    pick = []
    for idx, n in ((pos_i, n_pos), (neg_i, n_neg)):
        if len(idx) and n > 0:
            pick.append(idx[np.unique(np.linspace(0, len(idx) - 1, min(n, len(idx))).round().astype(int))])
    sel = np.concatenate(pick) if pick else np.zeros(0, int)
    return {"image": image[sel], "mask": mask[sel], "is_negative": neg[sel], "source": src[sel],
            "augmentation": aug[sel]}


def epoch_batches(view, batch_size: int, seed: int, phase: int, epoch: int, sources=None):
    """One epoch of training batches for `phase` (1: positives only, 2: with negatives), in an order fixed by
    (seed, phase, epoch); `sources`: keep only the positives of these provenance sources (None = all)."""
    rng = np.random.default_rng([seed, phase, epoch])
    return view.batches(batch_size, rng=rng, drop_last=True, negatives=(phase == 2), sources=sources)


def online_policy():
    """What `--online-augment` draws for a sample: the dataset's crops are already jittered and half of them
    occluded, so more of the draws add an occluder and fewer add a second one than `SegmentationPolicy`."""
    from ..data.augment import SegmentationPolicy  # noqa: PLC0415

    return SegmentationPolicy(p_crop_jitter=0.5, occlusion={"none": 0.4, "rectangles": 0.15, "hand": 0.3, "other": 0.15},
                              p_second_occluder=0.1, p_color_jitter=0.5, p_noise=0.15, p_jpeg=0.15,
                              p_motion_blur=0.05, p_defocus=0.05)


class OnlineAugmenter:
    """Re-augments a random part of each batch (`--online-augment`) with occluders from `occluders_dir` and
    backgrounds from `backgrounds_dir` (procedural ones when a folder is missing, e.g. in the tests)."""

    def __init__(self, probability: float, occluders_dir: str | None, backgrounds_dir: str | None):
        from ..data.augment import load_backgrounds  # noqa: PLC0415
        from ..data.occluders import OccluderLibrary  # noqa: PLC0415
        from ..data.paths import CACHE  # noqa: PLC0415

        self.probability, self.policy, self.face_present = probability, online_policy(), _face_present()
        have = occluders_dir and os.path.isdir(occluders_dir)
        self.occluders = (OccluderLibrary.from_dir(occluders_dir, cache_dir=os.path.join(CACHE, "occluders"))
                          if have else OccluderLibrary()).for_split("train")  # held-out hands stay unseen
        self.backgrounds = load_backgrounds(backgrounds_dir) if backgrounds_dir else []

    def describe(self) -> str:
        real = sum(self.occluders.counts().values())
        return (f"online augmentation p={self.probability}: {real} real occluder cut-outs, "
                f"{len(self.backgrounds)} background photos")

    def __call__(self, batch: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        from ..data.augment import augment_for_segmentation  # noqa: PLC0415
        from ..data.types import FaceSample  # noqa: PLC0415

        image, mask = batch["image"].copy(), batch["mask"].copy()
        for i in np.flatnonzero(rng.random(len(image)) < self.probability):
            s = FaceSample(image[i], mask[i], batch["landmarks"][i], batch["visible"][i],
                           params=None if batch["is_negative"][i] else self.face_present)
            s = augment_for_segmentation(s, rng, self.occluders, self.backgrounds, self.policy)
            image[i], mask[i] = s.image, s.mask
        return image, mask


def _face_present():
    """Stand-in ShapeParams for a dataset row: the augmentations read the landmarks and only ask whether the
    sample holds a face at all (params is None for negatives)."""
    from ..data.types import ShapeParams  # noqa: PLC0415
    from ..rig.model import N_EXPRESSIONS, N_IDENTITY  # noqa: PLC0415

    return ShapeParams(np.array([1.0, 0, 0, 0]), np.zeros(3), np.zeros(N_EXPRESSIONS), np.zeros(N_IDENTITY), 1.0,
                       (0, 0))


def flip_batch(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """Mirror a random half of the batch left-right (image (N, H, W, 3), mask (N, H, W))."""
    f = rng.random(len(image)) < 0.5
    image, mask = image.copy(), mask.copy()
    image[f] = image[f, :, ::-1]
    mask[f] = mask[f, :, ::-1]
    return image, mask


# ------------------------------------------------------------------------------------------------- helpers
def predict_probs(net, images: np.ndarray, device, batch_size: int = 64) -> np.ndarray:
    import torch  # noqa: PLC0415

    from .net import autocast, uint8_to_input  # noqa: PLC0415

    was = net.training
    net.eval()
    out = []
    with torch.inference_mode(), autocast(device):
        for i in range(0, len(images), batch_size):
            x = uint8_to_input(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device))
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(net(x).float().cpu().numpy())
    net.train(was)
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[1:3], np.float32)


OCCLUDED = ("rectangles", "hand", "occluder")


def evaluate(net, subset: dict, device, groups: bool = False) -> dict:
    """Metrics on a subset (see `load_val_subset`); with `groups`, also per source and clean / occluded."""
    prob = predict_probs(net, subset["image"], device)
    neg = subset["is_negative"]
    m = mask_metrics(prob[~neg], subset["mask"][~neg])
    m["neg_face_fraction"] = false_face_fraction(prob[neg])
    m["n_neg"] = int(neg.sum())
    if groups:
        m["groups"] = {}
        occluded = np.isin(subset["augmentation"], OCCLUDED)
        for name, sel in ([(f"source {s}", subset["source"] == s) for s in np.unique(subset["source"][~neg])]
                          + [("clean (perturbed only)", ~occluded), ("occluded (rectangles, hands, objects)",
                                                                      occluded)]):
            sel = sel & ~neg
            if sel.any():
                m["groups"][name] = mask_metrics(prob[sel], subset["mask"][sel])
    return m


def hardware() -> str:
    import torch  # noqa: PLC0415

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    s = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with {torch.get_num_threads()} thread(s)"
    if torch.cuda.is_available():
        s += f"; GPU {torch.cuda.get_device_name(0)}"
    return s


def _atomic_torch_save(obj, path: str) -> None:
    import torch  # noqa: PLC0415

    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------- training
def _comma_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def _views_zoom_weight(args: argparse.Namespace) -> float:
    """The zoomed view's weight in the two-view loss: --views-zoom-weight, else what inference uses."""
    weight = getattr(args, "views_zoom_weight", None)
    return ZOOM_WEIGHT if weight is None else weight


def positives_by_source(counts: dict, sources: list[str] | None) -> int:
    """How many training positives `--sources` keeps (all of them for None), from the split's manifest counts; a
    source the dataset does not have is one clear error."""
    if sources is None:
        return int(counts["total"] - counts["negative"])
    have = {k: v for k, v in counts.get("source", {}).items() if k != "negative"}
    missing = [s for s in sources if s not in have]
    if missing or not sources:
        raise SystemExit(f"--sources: {', '.join(missing) or 'nothing given'} not among this dataset's training "
                         f"sources ({', '.join(sorted(have))}); pick from those")
    return sum(have[s] for s in sources)


def _channel_list(text: str) -> list[int]:
    from .net import checked_channels  # noqa: PLC0415

    try:
        return checked_channels(text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--channels wants five comma-separated positive integers, got {text!r}"
                                         ) from None


def parse_args(argv=None) -> argparse.Namespace:
    from .net import LITE  # noqa: PLC0415

    ap = argparse.ArgumentParser(prog="python -m facecap_core.segment.train", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (facecap data build --kinds segmentation)")
    ap.add_argument("--out", default=os.path.join("models", "segmenter_lite"),
                    help="model path without extension: writes OUT.pt, OUT.onnx, OUT.md (default models/segmenter_lite)")
    ap.add_argument("--run-dir", default=None, help="checkpoints and logs (default out/segment-train/<name of OUT>)")
    ap.add_argument("--width", type=float, default=LITE["width"], help="channel multiplier (1.0 = paper)")
    ap.add_argument("--fc-width", type=int, default=LITE["fc_width"], help="fc6/fc7 width (paper 4096)")
    ap.add_argument("--channels", type=_channel_list, default=None,
                    help="per-block channel counts, five comma-separated numbers (overrides --width), "
                         "e.g. 8,16,32,64,128")
    ap.add_argument("--no-batchnorm", action="store_true")
    ap.add_argument("--refine", type=int, default=0, metavar="C",
                    help="beyond the paper: add a full-resolution refinement head of C channels (net.RefineHead)")
    ap.add_argument("--refine-only", action="store_true",
                    help="train only the refinement head; every other weight (from --init-from) stays fixed")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--iters", type=int, default=50000, help="phase 1 iterations, positives only (paper 50,000)")
    ap.add_argument("--finetune-iters", type=int, default=10000, help="phase 2 iterations with negatives (paper 10,000)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--finetune-lr", type=float, default=0.001)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=500, help="linear warm-up iterations from lr/10")
    ap.add_argument("--lr-schedule", choices=("constant", "poly"), default="constant",
                    help="phase 1 learning rate: constant (paper) or poly, lr·(1 − it/iters)^0.9 down to the "
                         "fine-tuning lr")
    ap.add_argument("--init-from", default=None,
                    help="start a new run from these weights (.pt or training checkpoint; its moving average when "
                         "it has one) instead of from scratch; a narrower network is widened without changing "
                         "what it computes (net.widen_state_dict)")
    ap.add_argument("--widen", choices=("zero", "split"), default="zero",
                    help="how --init-from widens a narrower network: new channels random with zeroed readers "
                         "(zero), or copies of old channels sharing their readers' weights (split, Net2WiderNet; "
                         "use it with --ema: zero's fresh BatchNorm statistics stall the moving average, see the "
                         "segmenter's lab notebook)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="exponential moving average of the weights (and BatchNorm statistics) with this decay per "
                         "iteration, e.g. 0.999; validation and the exported model use the average (0 = off)")
    ap.add_argument("--iou-loss", type=float, default=0.0,
                    help="weight of a per-crop IOU term on the fused output added to the paper's loss (the soft "
                         "IOU, net.soft_iou_loss, unless --iou-surrogate says otherwise); 0 = the paper's loss")
    ap.add_argument("--iou-surrogate", choices=("soft", "lovasz"), default="soft",
                    help="the IOU term of --iou-loss: soft IOU of the probabilities, or the Lovász hinge of the "
                         "face score (net.lovasz_hinge_loss)")
    ap.add_argument("--online-augment", type=float, default=0.0,
                    help="probability that a training sample is augmented again on the fly (a fresh occluder, crop "
                         "jitter, photometric changes; see online_policy); 0 = off")
    ap.add_argument("--occluders", default=DEFAULT_OCCLUDERS,
                    help="occluder folder for --online-augment (procedural occluders when missing)")
    ap.add_argument("--backgrounds", default=DEFAULT_BACKGROUNDS,
                    help="background photos for --online-augment (procedural backgrounds when missing)")
    ap.add_argument("--distill-from", type=_comma_list, default=[],
                    help="comma-separated teacher models (.pt): their mean fused probability (with a mirror pass) "
                         "is mixed into the targets (distillation; see --distill-weight)")
    ap.add_argument("--distill-weight", type=float, default=0.5,
                    help="with --distill-from: target = (1 − W)·label + W·teachers' probability")
    ap.add_argument("--views-loss", type=float, default=0.0, metavar="W",
                    help="train for two views (Segmenter.views = 2, not the paper's): each batch also runs every "
                         "crop's centre enlarged and mirrored (twice the time), the paper's loss is averaged over "
                         "both views, and W · (cross-entropy + the --iou-loss term) of their mean probability is "
                         "added (net.two_view_loss); 0 = off")
    ap.add_argument("--views-zoom-weight", type=float, default=None, metavar="W",
                    help="with --views-loss: the zoomed view's weight in that mean (default: Segmenter's "
                         "ZOOM_WEIGHT, 0.6; v38 was trained with 0.5, the plain mean of its day)")
    ap.add_argument("--sources", type=_comma_list, default=None,
                    help="train only on the positives of these provenance sources, comma-separated, e.g. "
                         "real-photo,real-video (negatives are kept; default: every source)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--val-size", type=int, default=256, help="val positives (and half as many negatives) evaluated")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (checkpointed, resumable) after this long")
    ap.add_argument("--stop-at", type=int, default=None, help="stop (checkpointed, resumable) at this iteration")
    ap.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.ckpt")
    ap.add_argument("--export-only", action="store_true",
                    help="write OUT.pt/.onnx/.md from RUN_DIR/last.ckpt now (marked in progress if unfinished)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.views_loss and args.distill_from:
        ap.error("--views-loss and --distill-from cannot be combined (the zoomed view needs hard labels)")
    if args.run_dir is None:
        args.run_dir = os.path.join(ROOT, "out", "segment-train", os.path.basename(args.out))
    return args


class Logger:
    def __init__(self, path: str):
        self.f = open(path, "a", buffering=1)

    def __call__(self, msg: str) -> None:
        line = f"{datetime.datetime.now().strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")


def phase_lr(args: argparse.Namespace, phase: int, step: int) -> float:
    """The learning rate of iteration `step`: warm-up, then constant or poly decay in phase 1; phase 2 constant."""
    if phase == 2:
        return args.finetune_lr
    if step < args.warmup:
        return args.lr * (0.1 + 0.9 * step / max(1, args.warmup))
    if getattr(args, "lr_schedule", "constant") == "poly":
        frac = (step - args.warmup) / max(1, args.iters - args.warmup)
        return max(args.finetune_lr, args.lr * (1.0 - frac) ** 0.9)
    return args.lr


def initial_weights(path: str) -> dict:
    """The state dict of a shipped .pt model or of a training checkpoint (for --init-from); of a checkpoint's
    moving average when it has one (that is what the run exported)."""
    import torch  # noqa: PLC0415

    if not os.path.isfile(path):
        raise SystemExit(f"--init-from: no such file: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(blob, dict) and isinstance(blob.get("ema"), dict):
        return {k[len("module."):]: v for k, v in blob["ema"].items() if k.startswith("module.")}
    for key in ("model", "state_dict"):
        if isinstance(blob, dict) and key in blob and isinstance(blob[key], dict):
            return blob[key]
    return blob


def train(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415

    from ..data.dataset import Dataset  # noqa: PLC0415
    from .net import (TwoStreamNet, autocast, prepare_for_device, resolve_device, two_stream_loss,  # noqa: PLC0415
                      two_view_loss, widen_state_dict, zoomed_mirrored_view)
    from .segmenter import ZOOM_SIDE  # noqa: PLC0415

    torch.set_num_threads(max(1, args.threads))
    os.makedirs(args.run_dir, exist_ok=True)
    log = Logger(os.path.join(args.run_dir, "train.log"))
    ckpt_path = os.path.join(args.run_dir, CHECKPOINT)
    device = resolve_device(args.device)
    ds = Dataset(args.data)
    train_view, val_view = ds.view("segmentation", "train"), ds.view("segmentation", "val")

    ckpt = None
    if args.resume or args.export_only:
        if not os.path.isfile(ckpt_path):
            log(f"no checkpoint at {ckpt_path}: {'nothing to export' if args.export_only else 'starting fresh'}")
            if args.export_only:
                return 1
        else:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            saved = ckpt["args"]
            for k in ("width", "fc_width", "channels", "refine", "refine_only", "no_batchnorm", "batch_size", "seed", "lr", "finetune_lr", "momentum",
                      "weight_decay", "warmup", "iters", "finetune_iters", "lr_schedule", "init_from", "ema",
                      "online_augment", "iou_loss", "iou_surrogate", "occluders", "backgrounds", "distill_from",
                      "distill_weight", "sources", "views_loss", "views_zoom_weight"):
                if not args.export_only and k in saved and getattr(args, k) != saved[k]:
                    log(f"resume: --{k.replace('_', '-')} {getattr(args, k)} differs from the checkpoint's "
                        f"{saved[k]}; using the new value" if k in ("iters", "finetune_iters")
                        else f"resume: keeping the checkpoint's --{k.replace('_', '-')} {saved[k]}")
                if k in saved and (k not in ("iters", "finetune_iters") or args.export_only):
                    setattr(args, k, saved[k])  # a key the checkpoint predates keeps its default (what that run did)
    n_pos = positives_by_source(ds.manifest["kinds"]["segmentation"]["splits"]["train"]["counts"], args.sources)

    torch.manual_seed(args.seed)
    net = TwoStreamNet(args.width, args.fc_width, batchnorm=not args.no_batchnorm, channels=args.channels,
                       refine=getattr(args, "refine", 0))
    net = prepare_for_device(net, device)
    if getattr(args, "refine_only", False):
        if not args.refine or not (args.init_from or args.resume or args.export_only):
            raise SystemExit("--refine-only needs --refine C and a trained network to refine (--init-from)")
        net.freeze_base()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    state = {"step": 0, "epoch": {"1": 0, "2": 0}, "batch_in_epoch": 0, "history": [], "train_seconds": 0.0,
             "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = json.loads(ckpt["state"])
        log(f"{'loaded' if args.export_only else 'resumed from'} {ckpt_path} at iteration {state['step']}")

    if ckpt is None and args.init_from:
        weights = initial_weights(args.init_from)
        narrower = any(k in weights and weights[k].shape != v.shape for k, v in net.state_dict().items())
        if narrower:
            try:
                weights = widen_state_dict(net, weights, split=args.widen == "split", noise=SPLIT_NOISE,
                                           seed=args.seed)
            except ValueError as e:
                raise SystemExit(f"--init-from {args.init_from}: cannot start this network from it ({e})") from None
        head_only = {k for k in net.state_dict() if k.startswith("refine.")} - set(weights)
        if head_only:  # a network without the head: the new head starts as the identity (RefineHead)
            weights = {**{k: v for k, v in net.state_dict().items() if k in head_only}, **weights}
        net.load_state_dict(weights)
        state["init_from"] = os.path.abspath(args.init_from)
        state["init_widened"] = args.widen if narrower else False
        log(f"initialised from {args.init_from}" + (" (widened)" if narrower else ""))
    # SGD at a constant lr leaves the weights jittering around a minimum (the val IOU moves by several points
    # from one check to the next); their running average sits nearer its centre
    ema = weight_average(net, args.ema) if args.ema > 0 else None
    if ema is not None and ckpt is not None and "ema" in ckpt:
        ema.load_state_dict(ckpt["ema"])

    def exported():
        return net if ema is None else ema.module

    augmenter = None
    if getattr(args, "online_augment", 0.0) > 0:
        augmenter = OnlineAugmenter(args.online_augment, args.occluders, args.backgrounds)
        log(augmenter.describe())

    teachers = load_teachers(args.distill_from, device)
    views_loss = args.views_loss
    views_zoom_weight = _views_zoom_weight(args)
    if teachers:
        log(f"distilling from {', '.join(args.distill_from)} (weight {args.distill_weight})")
    total_iters = args.iters + args.finetune_iters
    val_subset = load_val_subset(val_view, args.val_size, args.val_size // 2)

    def save_checkpoint():
        _atomic_torch_save({"model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                            "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                            "state": json.dumps(state), "args": vars(args), "config": dict(net.config),
                            **({} if ema is None else {"ema": ema.state_dict()})}, ckpt_path)

    if args.export_only:
        return export(exported(), args, ds, state, val_view, device, log, finished=state["step"] >= total_iters)

    log(f"training {net.config} ({net.num_parameters():,} parameters) on {device} ({hardware()}); "
        f"data {args.data}: {len(train_view)} train samples ({n_pos} positives), val subset "
        f"{len(val_subset['image'])}; iterations {state['step']}/{total_iters} "
        f"(phase 1 {args.iters}, phase 2 {args.finetune_iters}), batch {args.batch_size}")
    if state["step"] == 0:
        m = evaluate(net, val_subset, device)
        state["history"].append({"step": 0, "val": m})
        log(f"val at 0: IOU {m['iou']:.3f} global {m['global']:.3f} ave(face) {m['ave_face']:.3f}")

    from tqdm import tqdm  # noqa: PLC0415

    bar = tqdm(total=total_iters, initial=state["step"], disable=args.no_progress, mininterval=10,
               desc="segment train", dynamic_ncols=True, file=sys.stderr)
    t_session = t_start = time.time()
    t_ckpt = time.time()
    t_log, seen_log = time.time(), 0
    run_loss = np.zeros(4)
    net.train()
    stop = args.stop_at is not None and state["step"] >= args.stop_at
    while state["step"] < total_iters and not stop:
        phase = 1 if state["step"] < args.iters else 2
        epoch = state["epoch"][str(phase)]
        skip = state["batch_in_epoch"] if state.get("phase", phase) == phase else 0
        state["phase"] = phase
        epoch_done, n_batches = True, 0
        batches = epoch_batches(train_view, args.batch_size, args.seed, phase, epoch, args.sources)
        for b_i, batch in enumerate(batches):
            n_batches += 1
            if b_i < skip:
                continue
            step = state["step"]
            if (1 if step < args.iters else 2) != phase:
                epoch_done = False  # phase 1 is over: phase 2 starts its own first epoch
                break
            lr = phase_lr(args, phase, step)
            for g in opt.param_groups:
                g["lr"] = lr
            image, mask = batch["image"], batch["mask"]
            if augmenter is not None:
                image, mask = augmenter(batch, np.random.default_rng([args.seed, 11, step]))
            image, mask = flip_batch(image, mask, np.random.default_rng([args.seed, 7, step]))
            x = torch.from_numpy(image).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(mask.astype(np.int64)).to(device)
            if teachers:
                y = distill_targets(teachers, x, y, args.distill_weight)
            if views_loss:  # the batch and its zoomed mirrored views, as Segmenter.views = 2 sees them
                x = torch.cat([x, zoomed_mirrored_view(x, ZOOM_SIDE)])
                y = torch.cat([y, zoomed_mirrored_view(y, ZOOM_SIDE)])
            with autocast(device):
                outputs = net(x)
            loss, parts = two_stream_loss(outputs, y, iou_weight=args.iou_loss,
                                          iou_surrogate=getattr(args, "iou_surrogate", "soft"))
            if views_loss:
                loss = loss + views_loss * two_view_loss(outputs, y[:len(y) // 2], ZOOM_SIDE, views_zoom_weight,
                                                          args.iou_loss)
            if not torch.isfinite(loss):
                log(f"non-finite loss at iteration {step} (lr {lr}): stopping; lower --lr or raise --warmup")
                save_checkpoint()
                return 1
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if ema is not None:
                ema.update_parameters(net)
            state["step"] = step + 1
            state["batch_in_epoch"] = b_i + 1
            run_loss += np.array([float(loss.detach())] + [float(p) for p in parts])
            seen_log += 1
            bar.update(1)
            now = time.time()
            if state["step"] % args.log_every == 0:
                avg = run_loss / max(1, seen_log)
                rate = seen_log / max(1e-9, now - t_log)
                state["history"].append({"step": state["step"], "loss": round(avg[0], 5), "deconv": round(avg[1], 5),
                                         "fcn": round(avg[2], 5), "fused": round(avg[3], 5), "lr": lr})
                log(f"it {state['step']} phase {phase} epoch {epoch} loss {avg[0]:.4f} (deconv {avg[1]:.4f} "
                    f"fcn {avg[2]:.4f} fused {avg[3]:.4f}) lr {lr:.4g} {rate:.2f} it/s")
                bar.set_postfix(loss=f"{avg[0]:.3f}")
                run_loss[:] = 0
                t_log, seen_log = now, 0
            if state["step"] % args.val_every == 0 or state["step"] == total_iters:
                m = evaluate(exported(), val_subset, device)
                state["history"].append({"step": state["step"], "val": m})
                raw = "" if ema is None else f" (raw weights IOU {evaluate(net, val_subset, device)['iou']:.3f})"
                log(f"val at {state['step']}: IOU {m['iou']:.3f} global {m['global']:.3f} "
                    f"ave(face) {m['ave_face']:.3f} face on negatives {m['neg_face_fraction']:.3f}{raw}")
            if now - t_ckpt > 60 * args.checkpoint_minutes:
                state["train_seconds"] += now - t_session
                t_session = now
                save_checkpoint()
                t_ckpt = now
                log(f"checkpoint {ckpt_path} at iteration {state['step']}")
            if args.max_minutes is not None and now - t_start > 60 * args.max_minutes:
                stop = True
            if args.stop_at is not None and state["step"] >= args.stop_at:
                stop = True
            if stop or state["step"] >= total_iters:
                epoch_done = False
                break
        if n_batches == 0:
            raise RuntimeError(f"{args.data}: no training batches for phase {phase} (batch size {args.batch_size})")
        if epoch_done:
            state["epoch"][str(phase)] = epoch + 1
            state["batch_in_epoch"] = 0
    bar.close()
    state["train_seconds"] += time.time() - t_session
    save_checkpoint()
    log(f"checkpoint {ckpt_path} at iteration {state['step']} ({state['train_seconds'] / 3600:.2f} h of training)")
    return export(exported(), args, ds, state, val_view, device, log, finished=state["step"] >= total_iters)


def load_teachers(paths: list[str], device) -> list:
    """The `--distill-from` models on `device`, in eval mode (`load_model`; `distill_targets` runs them without
    gradients)."""
    from .segmenter import ModelFileError, load_model  # noqa: PLC0415

    try:
        return [load_model(path, device)[0] for path in paths]
    except ModelFileError as e:
        raise SystemExit(f"--distill-from: {e}") from None


def distill_targets(teachers: list, x, label, weight: float):
    """Soft targets (N, H, W) float: (1 − weight)·label + weight·q on the crops whose label holds a face, where q
    is the teachers' mean fused face probability on x (N, 3, H, W) and on its mirror image; crops without a face
    keep their label (a negative stays all non-face)."""
    import torch  # noqa: PLC0415

    from .net import autocast, face_probability  # noqa: PLC0415

    with torch.no_grad(), autocast(x.device):
        both = torch.cat([x, x.flip(3)])
        q = torch.stack([face_probability(t.streams(both)[2]) for t in teachers]).mean(0)
        q = (q[: len(x)] + q[len(x):].flip(2)) / 2
    target = label.float()
    has_face = label.flatten(1).any(1)
    target[has_face] = (1.0 - weight) * target[has_face] + weight * q[has_face].float()
    return target


def weight_average(net, decay: float):
    """An exponential moving average of `net`'s parameters and buffers (BatchNorm statistics included)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn  # noqa: PLC0415

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


# ------------------------------------------------------------------------------------------------- export
def export(net, args, ds, state, val_view, device, log, *, finished: bool) -> int:
    """Write OUT.pt, OUT.onnx and the model card OUT.md; val metrics on the whole val split."""
    total_iters = args.iters + args.finetune_iters
    full_val = load_val_subset(val_view, 10 ** 9, 10 ** 9)
    metrics = evaluate(net, full_val, device, groups=True)
    curve = [h for h in state["history"] if "val" in h]
    status = "trained" if finished else (f"training in progress: {state['step']} of {total_iters} iterations, "
                                         f"val IOU {metrics['iou']:.3f}")
    meta = {"status": status, "iterations": state["step"], "planned_iterations": total_iters,
            "dataset": os.path.abspath(args.data), "dataset_created": ds.manifest.get("created"),
            "val": metrics, "train_seconds": round(state["train_seconds"], 1)}
    pt, onnx_path, card = args.out + ".pt", args.out + ".onnx", args.out + ".md"
    save_model(net, pt, meta)
    export_onnx(net, onnx_path, meta)
    write_card(card, args, ds, state, metrics, curve, net, status, [pt, onnx_path])
    log(f"wrote {pt}, {onnx_path}, {card} ({status}); val IOU {metrics['iou']:.3f} global {metrics['global']:.3f} "
        f"ave(face) {metrics['ave_face']:.3f} on {metrics['n']} faces; face on negatives "
        f"{metrics['neg_face_fraction']:.3f}")
    return 0


def rel(path: str) -> str:
    return os.path.relpath(os.path.abspath(path), ROOT)


def init_line(state: dict) -> str:
    """The card's line on where the weights started."""
    src = state.get("init_from")
    if not src:
        return "- from scratch (no pretrained VGG available offline), He-normal init, bilinear-initialised upsamplers"
    how = state.get("init_widened")
    widened = ""
    if how == "split":
        widened = (", widened to this network's channels by making each new channel a copy of an old one whose "
                   "readers share its weights (Net2WiderNet; the same function at the start but for "
                   f"{SPLIT_NOISE:g}×std noise on the copies' weights)")
    elif how:
        widened = (", widened to this network's channels by copying its weights and zeroing the weights that read "
                   "the new channels (same function at the start)")
    return (f"- initialised from `{rel(src)}` (an earlier run of this recipe, itself trained from scratch: no "
            f"pretrained VGG is available offline){widened}; the iterations below are this run's")


def write_card(path, args, ds, state, metrics, curve, net, status, files) -> None:
    from .net import flops_estimate  # noqa: PLC0415

    man = ds.manifest
    seg = man["kinds"]["segmentation"]["splits"]
    lines = [f"# Segmenter `{os.path.basename(args.out)}`: two-stream face segmentation network", "",
             f"**Status: {status}.**", "",
             "Saito, Li & Li (ECCV 2016) two-stream network (VGG-16-style trunk, fc6 as a 4×4 convolution, fc7; "
             "DeconvNet stream unpooling by the pooling switches; FCN-8s stream from pool5 fused with pool4 and "
             "pool3 scores; concatenation, 1×1 fusion, softmax). Code: `facecap_core/segment/net.py`.", "",
             "## Network", "",
             f"- width {net.config['width']} (channels {'-'.join(str(c) for c in net.channels)}; paper "
             f"64-128-256-512-512), fc6/fc7 width {net.config['fc_width']} (paper 4096), BatchNorm "
             f"{'on' if net.config['batchnorm'] else 'off'} (training from scratch)",
             *([f"- beyond the paper: a full-resolution refinement head of {net.config['refine']} channels on the "
                "crop and the fused probability (`net.RefineHead`)"
                + (", trained alone on fixed network weights" if getattr(args, "refine_only", False) else "")]
               if net.config.get("refine") else []),
             f"- {net.num_parameters():,} parameters, {flops_estimate(net):.3f} GMAC per 128×128 crop",
             "- input: 128×128 RGB crop (uint8 in the ONNX graph); output: face probability 128×128 "
             "(1 = face, design §5)", "",
             "## Data", "",
             f"Dataset `{rel(args.data)}` (facecap-dataset v{man.get('version')}, seed {man.get('seed')}, created "
             f"{man.get('created')}, recipe {json.dumps(man.get('recipe', {}), sort_keys=True)}).", "",
             "| split | samples | negatives | subjects | by source |", "|---|---|---|---|---|"]
    for split in ("train", "val", "test"):
        if split in seg:
            c = seg[split]["counts"]
            src = ", ".join(f"{k} {v}" for k, v in sorted(c.get("source", {}).items()))
            lines.append(f"| {split} | {c['total']} | {c['negative']} | {c.get('subjects', '')} | {src} |")
    lines += ["", "Licences of the sources (from their manifests; counts of files):", ""]
    for group, d in man.get("licenses", {}).items():
        for lic, n in sorted(d.items(), key=lambda kv: -kv[1]):
            lines.append(f"- {group}: {n} × {lic}")
    if man.get("non_commercial"):
        lines += ["", "**Some sources are non-commercial / research-only: so is this model.**"]
    lines += ["", "## Recipe", "",
              init_line(state),
              "- loss 0.5·CE(DeconvNet) + 0.5·CE(FCN-8s) + 1.0·CE(fused)"
              + (f" + {args.iou_loss}·" + ("Lovász hinge(fused)" if getattr(args, "iou_surrogate", "soft") == "lovasz"
                                            else "(1 − soft IOU(fused))") + " per crop with a face"
                 if args.iou_loss else ""),
              f"- phase 1 (positives only): SGD lr {args.lr}, momentum {args.momentum}, weight decay "
              f"{args.weight_decay}, linear warm-up from lr/10 over {args.warmup} iterations, {args.iters} iterations"
              + (", poly decay lr·(1 − it/iters)^0.9 (floored at the fine-tuning lr)"
                 if getattr(args, "lr_schedule", "constant") == "poly" else ", constant lr"),
              f"- phase 2 (with negatives, ≈ as many as positives): lr {args.finetune_lr}, {args.finetune_iters} "
              "iterations",
              f"- batch {args.batch_size}, random horizontal flips, seed {args.seed}",
              *([f"- positives from the sources {', '.join(args.sources)} only (negatives: all of them)"]
                if getattr(args, "sources", None) else []),
              *([f"- distillation: targets (1 − {args.distill_weight})·label + {args.distill_weight}·q on crops "
                 "with a face, q = the mean fused face probability of "
                 + ", ".join(f"`{rel(t)}`" for t in args.distill_from) + " on the crop and its mirror image"]
                if getattr(args, "distill_from", None) else []),
              *([f"- trained for two views: the loss averaged over each crop and its centre enlarged and mirrored, "
                 f"+ {args.views_loss}·(CE + the IOU term) of their mean probability (`net.two_view_loss`; the "
                 f"zoomed view weighing {_views_zoom_weight(args)} in it)"]
                if getattr(args, "views_loss", 0.0) else []),
              *([f"- online augmentation: each sample re-augmented with probability {args.online_augment} "
                 "(`train.online_policy`: a fresh occluder, crop jitter, photometric changes)"]
                if getattr(args, "online_augment", 0.0) > 0 else []),
              *([f"- exported weights: exponential moving average of the weights and BatchNorm statistics, decay "
                 f"{args.ema} per iteration (the validation curve is of the average too)"] if args.ema > 0 else []),
              f"- iterations done: {state['step']} of {args.iters + args.finetune_iters}; training wall time "
              f"{state['train_seconds'] / 3600:.2f} h",
              f"- hardware: {hardware()}", "",
              "## Metrics (val split, network alone, threshold 0.5; design §8)", "",
              "| faces | IOU | global | ave(face) | face fraction on negatives |", "|---|---|---|---|---|",
              f"| {metrics['n']} | {metrics['iou']:.3f} | {metrics['global']:.3f} | {metrics['ave_face']:.3f} | "
              f"{metrics['neg_face_fraction']:.3f} ({metrics['n_neg']} negatives) |", "",
              "| val subset | faces | IOU | global | ave(face) |", "|---|---|---|---|---|"]
    for name, g in metrics.get("groups", {}).items():
        lines.append(f"| {name} | {g['n']} | {g['iou']:.3f} | {g['global']:.3f} | {g['ave_face']:.3f} |")
    lines += ["",
              "Validation curve (fixed val subset):", "", "| iteration | IOU | global | ave(face) |",
              "|---|---|---|---|"]
    for h in curve[-20:]:
        v = h["val"]
        lines.append(f"| {h['step']} | {v['iou']:.3f} | {v['global']:.3f} | {v['ave_face']:.3f} |")
    losses = [h for h in state["history"] if "loss" in h]
    if losses:
        lines += ["", "Training loss (weighted sum, mean over the preceding log interval): " + ", ".join(
            f"{h['step']}: {h['loss']:.3f}" for h in losses[:: max(1, len(losses) // 12)])]
    cmd = (f"python -m facecap_core.segment.train --data {rel(args.data)} --out {rel(args.out)} --width {args.width} "
           + (f"--channels {','.join(str(c) for c in args.channels)} " if args.channels else "") + f"--fc-width {args.fc_width} --batch-size {args.batch_size} --warmup {args.warmup} --iters {args.iters} --finetune-iters "
           f"{args.finetune_iters} --lr {args.lr} --lr-schedule {getattr(args, 'lr_schedule', 'constant')} --seed {args.seed} "
           f"--threads {args.threads} --run-dir {rel(args.run_dir)}" + (f" --ema {args.ema}" if args.ema > 0 else "")
           + (f" --online-augment {args.online_augment}" if getattr(args, "online_augment", 0.0) > 0 else "")
           + (f" --iou-loss {args.iou_loss}" if args.iou_loss else "")
           + (" --iou-surrogate lovasz" if getattr(args, "iou_surrogate", "soft") == "lovasz" else "")
           + (f" --distill-from {','.join(rel(t) for t in args.distill_from)} --distill-weight {args.distill_weight}"
              if getattr(args, "distill_from", None) else "")
           + (f" --sources {','.join(args.sources)}" if getattr(args, "sources", None) else "")
           + (f" --views-loss {args.views_loss} --views-zoom-weight {_views_zoom_weight(args)}"
              if getattr(args, "views_loss", 0.0) else "")
           + (f" --refine {args.refine}" if getattr(args, "refine", 0) else "")
           + (" --refine-only" if getattr(args, "refine_only", False) else "")
           + (f" --init-from {rel(state['init_from'])}" if state.get("init_from") else ""))
    lines += ["", "## Retrain / resume", "", "```", cmd, cmd + " --resume", "```", "",
              f"(checkpoint: `{rel(os.path.join(args.run_dir, CHECKPOINT))}`; not committed)", "", "## Files", ""]
    for f in files:
        lines.append(f"- `{rel(f)}`: {os.path.getsize(f) / 1e6:.2f} MB, sha256 {file_sha256(f)[:16]}…")
    with open(path + ".tmp", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return train(args)
    except KeyboardInterrupt:
        print("interrupted (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
