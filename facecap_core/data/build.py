"""The dataset recipe: base samples per identity split → the paper's augmentations → shards (`facecap data build`).

Per split (train / val / test by identity, `splits.py`; real samples of test identities go only to test):

    base samples   real photos (every labelled one), real video frames (≤ max_video_frames per clip, evenly
                   spaced), synthetic renders (count_synthetic, shared 80/10/10 over the splits)
    segmentation   per base sample (paper §4: 8,021 faces → 82,770 perturbed + 82,770 with rectangles +
                   41,380 with hands): `perturb` copies with a random translation/rotation/scale of the crop,
                   as many again with random uniformly coloured rectangles, half as many with a hand,
                   a quarter with another occluder (objects, masks, hair, glasses); then as many negatives
                   (no face, `is_negative`) as positives, for the fine-tuning phase
    tracking       per base sample, a 160×160 face crop with P perturbed initial estimates of S
                   (expression 15×, rotation, translation, identity and focal 5× each: paper §5, Cao et al. 2014),
                   + one extra copy with a rectangle cut out of the segmented face

Determinism: the plan (which item goes to which shard) depends only on the recipe and the sorted list of real
labels; shard i of (kind, split) draws all its randomness from `np.random.default_rng([seed, kind_id, split_id,
i])`. So shards are independent, and a resumed build (which keeps the complete shards it finds) writes the same
bytes as an uninterrupted one.

The sample generators are reached through an `Engine` (sources + augmentations). `ProjectEngine` binds the
project's modules (`real.py`, `splits.py`, `synth.py`, `texture.py`, `occluders.py`, `augment.py`); tests may
pass a small engine of their own.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .dataset import (FORMAT, KINDS, MANIFEST, SPLITS, VERSION, DatasetError, file_sha256, merge_counts, now_iso,
                      read_shard, shard_count, shard_counts, shard_name, write_manifest, write_shard)
from .types import FaceSample, ShapeParams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
DEFAULT_FACES = os.path.join(SHARED, "faces")
DEFAULT_OCCLUDERS = os.path.join(SHARED, "occluders")
DEFAULT_BACKGROUNDS = os.path.join(SHARED, "backgrounds")
KIND_ID = {k: i for i, k in enumerate(KINDS)}
SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}
TRACK_PARAMS = ("expression", "rotation", "translation", "identity", "focal")
STR_WIDTH = {"source": 16, "augmentation": 40, "subject": 64}


class BuildError(DatasetError):
    """The build cannot start or go on (no sources, recipe mismatch on resume …): one line."""


@dataclass
class Recipe:
    """What to build. Multiplicities are per base sample; fractional ones are spread evenly (every 2nd base
    sample gets a hand at 0.5). Defaults are the paper's proportions at 1 perturbed copy per base (the paper
    used ≈10: raise `seg_perturbed` and `seg_rectangles` together to get closer)."""
    kinds: tuple = KINDS
    seg_size: int = 128
    track_size: int = 160
    shard_size: int = 512
    count_synthetic: int = 2000  # synthetic base renders over all splits
    synthetic_split: tuple = (0.8, 0.1, 0.1)  # train, val, test fractions of the synthetic renders
    max_video_frames: int = 30  # per clip, evenly spaced over the labelled frames
    max_real: int | None = None  # cap on real base samples per split (None = all)
    seg_perturbed: int = 1  # translation/rotation/scale-perturbed copies per base sample
    seg_rectangles: int = 1  # copies with random uniformly coloured rectangles
    seg_hands: float = 0.5  # copies with a composited hand
    seg_occluders: float = 0.25  # copies with another occluder
    seg_negatives: float = 1.0  # negatives per positive (fine-tuning set)
    track_expression_perturbations: int = 15
    track_other_perturbations: int = 5  # for each of rotation, translation, identity, focal
    track_cutout: int = 1  # extra copies with a rectangle cut out of the face
    track_margin: float = 1.3  # face crop side = margin × landmark box side

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @property
    def n_init(self) -> int:
        return self.track_expression_perturbations + 4 * self.track_other_perturbations

    def init_perturbed(self) -> np.ndarray:
        names = ["expression"] * self.track_expression_perturbations
        for p in TRACK_PARAMS[1:]:
            names += [p] * self.track_other_perturbations
        return np.array(names, dtype="<U12")


@dataclass(frozen=True)
class BaseRef:
    """One base sample of the plan: a real label (index into the engine's sorted list) or synthetic render k."""
    source: str  # "real-photo", "real-video", "synthetic", "negative"
    index: int
    subject: str = ""


# ----------------------------------------------------------------------------------------------- the plan
def spread(count: float, j: int) -> int:
    """How many of a fractional per-base multiplicity base j gets: Σ_j spread(c, j) over n bases ≈ c·n, evenly."""
    return int(np.floor((j + 1) * count + 1e-9) - np.floor(j * count + 1e-9))


def plan_items(kind: str, bases: list[BaseRef], recipe: Recipe) -> list[tuple[BaseRef, str]]:
    """The ordered list of (base, augmentation) items for one kind and split. Items of one base are adjacent, so
    a shard renders each base once; negatives follow the base whose positives they balance."""
    items = []
    neg_due = 0.0
    for j, b in enumerate(bases):
        if kind == "segmentation":
            own = (["perturb"] * recipe.seg_perturbed + ["rectangles"] * recipe.seg_rectangles
                   + ["hand"] * spread(recipe.seg_hands, j) + ["occluder"] * spread(recipe.seg_occluders, j))
            items += [(b, a) for a in own]
            neg_due += recipe.seg_negatives * len(own)
            n_neg = int(np.floor(neg_due + 1e-9))
            neg_due -= n_neg
            items += [(BaseRef("negative", -1), "negative")] * n_neg
        else:
            items += [(b, "perturb")] + [(b, "cutout")] * recipe.track_cutout
    return items


def shard_ranges(n_items: int, shard_size: int) -> list[tuple[int, int]]:
    return [(i, min(i + shard_size, n_items)) for i in range(0, n_items, shard_size)]


def shard_rng(seed: int, kind: str, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, KIND_ID[kind], SPLIT_ID[split], index])


# ---------------------------------------------------------------------------------------------- the engine
class Engine:
    """Sources and augmentations the builder calls. Every method that draws randomness takes the shard's rng."""

    name = "engine"

    def describe(self) -> dict:
        """What the engine found (sources, folders, counts), for the manifest."""
        return {}

    def licenses(self) -> dict:
        """{folder name: {licence text: rows}} of the source manifests used."""
        return {}

    def real_bases(self, split: str) -> list[BaseRef]:
        return []

    def load_real(self, ref: BaseRef) -> FaceSample:
        raise NotImplementedError

    def synthetic(self, rng: np.random.Generator) -> FaceSample:
        raise NotImplementedError

    def segmentation(self, sample: FaceSample, augmentation: str, rng, size: int) -> FaceSample:
        """A size×size crop of `sample` with the named augmentation ("perturb", "rectangles", "hand",
        "occluder"); every occluder clears the mask under it and marks the landmarks it covers."""
        raise NotImplementedError

    def negative(self, rng, size: int) -> FaceSample:
        raise NotImplementedError

    def tracking_crop(self, sample: FaceSample, rng, size: int, margin: float) -> FaceSample:
        return crop_face(sample, size, margin)

    def perturb(self, params: ShapeParams, which: str, n: int, rng) -> list[ShapeParams]:
        raise NotImplementedError

    def cutout(self, sample: FaceSample, rng) -> FaceSample:
        raise NotImplementedError


def crop_face(sample: FaceSample, size: int, margin: float = 1.3) -> FaceSample:
    """A size×size crop around the sample's landmark box (square, side = margin × the larger box side), composed
    into `crop_affine`; landmarks outside the crop become not visible. Image bilinear, mask nearest."""
    import cv2  # noqa: PLC0415

    pts = sample.landmarks[np.all(np.isfinite(sample.landmarks), axis=1)]
    if len(pts) == 0:
        raise ValueError("crop_face needs landmarks")
    lo, hi = pts.min(0), pts.max(0)
    centre, side = (lo + hi) / 2, max(float(np.max(hi - lo)) * margin, 8.0)
    s = size / side
    a = np.array([[s, 0, size / 2 - s * centre[0]], [0, s, size / 2 - s * centre[1]]])
    image = cv2.warpAffine(sample.image, a, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(sample.mask, a, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
    lm = (sample.landmarks @ a[:, :2].T + a[:, 2]).astype(np.float32)
    inside = np.all((lm >= 0) & (lm <= size - 1), axis=1)
    affine = np.vstack([a, [0, 0, 1]]) @ np.vstack([sample.crop_affine, [0, 0, 1]])
    return sample.copy(image=image, mask=mask, landmarks=lm, visible=sample.visible & inside,
                       crop_affine=affine[:2])


# ------------------------------------------------------------------------------------------- shard arrays
def _str_array(values, field_name):
    return np.array([str(v)[:STR_WIDTH[field_name]] for v in values], dtype=f"<U{STR_WIDTH[field_name]}")


def _aug_label(sample: FaceSample, default: str) -> str:
    augs = sample.meta.get("augmentations")
    if isinstance(augs, (list, tuple)) and augs:
        return "+".join(str(a) for a in augs)
    return default


def segmentation_arrays(samples: list[FaceSample], labels: list[str]) -> dict:
    return {
        "image": np.stack([s.image for s in samples]).astype(np.uint8),
        "mask": np.stack([s.mask for s in samples]).astype(np.uint8),
        "landmarks": np.stack([s.landmarks for s in samples]).astype(np.float32),
        "visible": np.stack([s.visible for s in samples]).astype(bool),
        "is_negative": np.array([s.is_negative for s in samples], bool),
        "source": _str_array([s.source for s in samples], "source"),
        "augmentation": _str_array(labels, "augmentation"),
        "subject": _str_array([s.identity for s in samples], "subject"),
    }


def tracking_arrays(samples: list[FaceSample], labels: list[str], inits: list[list[ShapeParams]],
                    recipe: Recipe) -> dict:
    out = segmentation_arrays(samples, labels)
    ps = [s.params for s in samples]
    out.update({
        "rotation": np.array([p.rotation for p in ps], np.float32).reshape(-1, 4),
        "translation": np.array([p.translation for p in ps], np.float32).reshape(-1, 3),
        "expression": np.array([p.expression for p in ps], np.float32).reshape(len(ps), -1),
        "identity": np.array([p.identity for p in ps], np.float32).reshape(len(ps), -1),
        "focal": np.array([p.focal for p in ps], np.float32),
        "image_size": np.array([p.image_size for p in ps], np.int32).reshape(-1, 2),
        "crop_affine": np.stack([s.crop_affine for s in samples]).astype(np.float32),
        "init_rotation": np.array([[q.rotation for q in row] for row in inits], np.float32),
        "init_translation": np.array([[q.translation for q in row] for row in inits], np.float32),
        "init_expression": np.array([[q.expression for q in row] for row in inits], np.float32),
        "init_identity": np.array([[q.identity for q in row] for row in inits], np.float32),
        "init_focal": np.array([[q.focal for q in row] for row in inits], np.float32),
        "init_perturbed": recipe.init_perturbed(),
    })
    return out


# ------------------------------------------------------------------------------------------ making shards
def make_shard(engine: Engine, kind: str, items: list[tuple[BaseRef, str]], rng: np.random.Generator,
               recipe: Recipe, progress=None) -> dict:
    """Generate the samples of one shard and stack them into arrays."""
    samples, labels, inits = [], [], []
    base_key, base = None, None
    for ref, aug in items:
        if ref.source != "negative" and ref != base_key:
            base = engine.load_real(ref) if ref.source.startswith("real") else engine.synthetic(rng)
            if ref.subject and not base.identity:
                base.identity = ref.subject
            base_key = ref
        if kind == "segmentation":
            if aug == "negative":
                s = engine.negative(rng, recipe.seg_size)
            else:
                s = engine.segmentation(base, aug, rng, recipe.seg_size)
            samples.append(s)
            labels.append(_aug_label(s, aug))
        else:
            s = engine.tracking_crop(base, rng, recipe.track_size, recipe.track_margin)
            if aug == "cutout":
                s = engine.cutout(s, rng)
            row = []
            for which in TRACK_PARAMS:
                n = recipe.track_expression_perturbations if which == "expression" else \
                    recipe.track_other_perturbations
                row += list(engine.perturb(s.params, which, n, rng)) if n else []
            samples.append(s)
            labels.append(aug)
            inits.append(row)
        if progress is not None:
            progress.update(1)
    if kind == "segmentation":
        return segmentation_arrays(samples, labels)
    return tracking_arrays(samples, labels, inits, recipe)


# ----------------------------------------------------------------------------------------------- the build
@dataclass
class BuildReport:
    out: str
    written: int = 0  # shards written in this run
    skipped: int = 0  # complete shards found on disk and kept (resume)
    samples: int = 0  # samples generated in this run
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def _bases_for(engine: Engine, split: str, recipe: Recipe) -> list[BaseRef]:
    real = list(engine.real_bases(split))
    if recipe.max_real is not None:
        real = real[:recipe.max_real]
    frac = dict(zip(SPLITS, recipe.synthetic_split))
    # largest-remainder split of count_synthetic, so the three parts add up exactly
    raw = np.array([frac.get(s, 0.0) for s in SPLITS]) * recipe.count_synthetic / max(sum(frac.values()), 1e-9)
    n = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - n))[: recipe.count_synthetic - int(n.sum())]:
        n[k] += 1
    n_synth = int(n[SPLIT_ID[split]]) if engine_has_synthetic(engine) else 0
    return real + [BaseRef("synthetic", k) for k in range(n_synth)]


def engine_has_synthetic(engine: Engine) -> bool:
    return getattr(engine, "has_synthetic", True)


def build_dataset(out: str, engine: Engine, recipe: Recipe | None = None, *, seed: int = 0, resume: bool = False,
                  limit: int | None = None, progress: bool = True, log=print) -> BuildReport:
    """Build (or resume) the dataset in `out`. `limit` caps the samples per kind and split (a quick small build).
    Raises BuildError when `out` holds a different dataset (or any dataset, without `resume`)."""
    recipe = recipe or Recipe()
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    mpath = os.path.join(out, MANIFEST)
    header = {"format": FORMAT, "version": VERSION, "seed": int(seed), "recipe": recipe.to_json(),
              "limit": limit, "engine": engine.name}
    if os.path.exists(mpath):
        import json  # noqa: PLC0415

        try:
            with open(mpath, encoding="utf-8") as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
        if not resume:
            raise BuildError(f"{out} already holds a dataset: pass --resume to complete it, or choose another --out")
        for key in ("format", "version", "seed", "recipe", "limit", "engine"):
            if old.get(key) != header[key]:
                raise BuildError(f"cannot resume {out}: its {key} differs from this build's (use another --out)")
    elif resume and any(n.endswith(".npz") for n in os.listdir(out)):
        log(f"resuming {out}: no manifest yet, keeping the complete shards found")

    plans = {}
    for kind in recipe.kinds:
        if kind not in KINDS:
            raise BuildError(f"unknown dataset kind {kind!r} (kinds: {', '.join(KINDS)})")
        for split in SPLITS:
            items = plan_items(kind, _bases_for(engine, split, recipe), recipe)
            if limit is not None:
                items = items[:limit]
            plans[kind, split] = items
    total = sum(len(v) for v in plans.values())
    if total == 0:
        raise BuildError("nothing to build: no real labels and no synthetic renders (check --faces, "
                         "--count-synthetic)")

    manifest = dict(header, created=now_iso(), complete=False, sources=engine.describe(),
                    licenses=engine.licenses(), non_commercial=is_non_commercial(engine.licenses()), kinds={})
    for kind in recipe.kinds:
        size = recipe.seg_size if kind == "segmentation" else recipe.track_size
        manifest["kinds"][kind] = {"image_size": [size, size], "splits": {}}
        if kind == "tracking":
            manifest["kinds"][kind]["init_perturbed"] = recipe.init_perturbed().tolist()
    write_manifest(out, manifest)

    report = BuildReport(out=out)
    bar = _progress_bar(total, progress)
    t0 = time.perf_counter()
    try:
        for (kind, split), items in plans.items():
            entries, parts = [], []
            for index, (a, b) in enumerate(shard_ranges(len(items), recipe.shard_size)):
                path = os.path.join(out, shard_name(kind, split, index))
                if resume and shard_count(path) == b - a:
                    arrays = read_shard(path)
                    report.skipped += 1
                    if bar is not None:
                        bar.update(b - a)
                else:
                    arrays = make_shard(engine, kind, items[a:b], shard_rng(seed, kind, split, index), recipe, bar)
                    write_shard(path, arrays)
                    report.written += 1
                    report.samples += b - a
                c = shard_counts(arrays)
                parts.append(c)
                entries.append({"file": shard_name(kind, split, index), "count": b - a,
                                "sha256": file_sha256(path)})
                split_entry = {"count": sum(e["count"] for e in entries), "shards": entries,
                               "counts": merge_counts(parts)}
                manifest["kinds"][kind]["splits"][split] = split_entry
                write_manifest(out, manifest)
            if not items:
                manifest["kinds"][kind]["splits"][split] = {"count": 0, "shards": [], "counts": merge_counts([])}
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - t0
    _remove_stale_shards(out, manifest)
    manifest["complete"] = True
    manifest["build_seconds"] = round(report.seconds, 2)
    manifest["counts"] = {k: {s: e["counts"] for s, e in v["splits"].items()} for k, v in manifest["kinds"].items()}
    write_manifest(out, manifest)
    report.counts = manifest["counts"]
    return report


def _remove_stale_shards(out: str, manifest: dict) -> None:
    """Delete leftover temp files (an interrupted write) and shards the plan no longer has."""
    keep = {sh["file"] for k in manifest["kinds"].values() for s in k["splits"].values() for sh in s["shards"]}
    for name in os.listdir(out):
        if name.endswith(".tmp.npz") or name.endswith(".json.tmp") or (
                name.endswith(".npz") and name.split("-")[0] in KINDS and name not in keep):
            os.remove(os.path.join(out, name))


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm  # noqa: PLC0415
    except ImportError:
        return None
    return tqdm(total=total, unit="sample", unit_scale=False, dynamic_ncols=True, smoothing=0.05,
                file=sys.stderr, desc="facecap data build")


# --------------------------------------------------------------------------------------------- licences
NON_COMMERCIAL_WORDS = ("non-commercial", "noncommercial", "research", "academic", "cc by-nc", "nc 4.0",
                        "by-nc")


def is_non_commercial(licenses: dict) -> bool:
    return any(w in text.lower() for entry in licenses.values() for text in entry for w in NON_COMMERCIAL_WORDS)


def manifest_licenses(folder: str, files: set | None = None) -> dict:
    """{licence text: rows} over the folder's manifest.csv (only rows whose `file` is in `files`, when given)."""
    path = os.path.join(folder, "manifest.csv")
    out: dict = {}
    if not os.path.exists(path):
        return out
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if files is not None and row.get("file") not in files:
                continue
            text = (row.get("license") or "unknown").strip() or "unknown"
            out[text] = out.get(text, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
