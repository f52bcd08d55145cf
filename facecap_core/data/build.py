"""The dataset recipe: base samples per identity split → the paper's augmentations → shards (`facecap data build`).

Per split (train / val / test by identity, `splits.py`; real samples of test identities go only to test):

    base samples   real photos (every labelled one), real video frames (≤ max_video_frames per clip, evenly
                   spaced), re-enactments (each single-face photo re-rendered with a new expression,
                   reenact_per_photo), synthetic renders (count_synthetic, shared 80/10/10 over the splits)
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

from ..fileformat import make_output_folder
from ..teacher import INSTALL_HINT as TEACHER_HINT
from .dataset import (FORMAT, KINDS, MANIFEST, SPLITS, VERSION, DatasetError, file_sha256, merge_counts, now_iso,
                      read_shard, shard_count, shard_counts, shard_name, write_manifest, write_shard)
from .paths import CACHE
from .types import FaceSample, ShapeParams

KIND_ID = {k: i for i, k in enumerate(KINDS)}
SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}
TRACK_PARAMS = ("expression", "rotation", "translation", "identity", "focal")
STR_WIDTH = {"source": 24, "augmentation": 16, "subject": 64, "ops": 96}


class BuildError(DatasetError):
    """The build cannot start or go on (no sources, recipe mismatch on resume …): one line."""


SEG_MARGIN = (1.25, 2.3)  # real faces' segmentation crops: side / landmark-box side, drawn uniformly per copy


@dataclass
class Recipe:
    """What to build. Multiplicities are per base sample; fractional ones are spread evenly (every 2nd base
    sample gets a hand at 0.5). Defaults are the paper's proportions at 1 perturbed copy per base (the paper
    used ≈10: raise `seg_perturbed` and `seg_rectangles` together to get closer)."""
    kinds: tuple = KINDS
    seg_size: int = 128
    seg_margin: tuple = SEG_MARGIN
    track_size: int = 160
    shard_size: int = 512
    count_synthetic: int = 2000  # synthetic base renders over all splits
    synthetic_split: tuple = (0.8, 0.1, 0.1)  # train, val, test fractions of the synthetic renders
    max_video_frames: int = 30  # per clip, evenly spaced over the labelled frames
    max_real: int | None = None  # cap on real (and on re-enacted) base samples per split (None = all)
    reenact_per_photo: int = 1  # re-enactment renders per single-face real photo (synth.reenact), 0 = none
    seg_perturbed: int = 1  # translation/rotation/scale-perturbed copies per base sample
    seg_rectangles: int = 1  # copies with random uniformly coloured rectangles
    seg_hands: float = 0.5  # copies with a composited hand
    seg_occluders: float = 0.5  # copies with another occluder (hair, glasses, objects, masks: augment.py)
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
    source: str  # "real-photo", "real-video", "synthetic", "synthetic-reenact", "negative"
    index: int
    subject: str = ""
    copy: int = 0  # k-th base made from the same label (re-enactments)


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
                   + ["hand"] * spread(recipe.seg_hands, j) + ["occluder"] * spread(recipe.seg_occluders, j + 1))
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


def plan_digest(engine: Engine, items: list[tuple[BaseRef, str]]) -> str:
    """sha1 of a shard's items (base fingerprints and augmentation categories)."""
    import hashlib  # noqa: PLC0415

    h = hashlib.sha1()
    for ref, aug in items:
        h.update(f"{engine.fingerprint(ref)}|{aug}\n".encode())
    return h.hexdigest()


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

    def fingerprint(self, ref: BaseRef) -> str:
        """What a base sample is made from (file, frame, label version …), so that a resumed build can tell
        whether a shard on disk was made from the same inputs. Default: the reference itself."""
        return repr(ref)

    def reenact_bases(self, split: str, per_photo: int) -> list[BaseRef]:
        """Re-enactment bases (a real photo re-rendered with a new expression): none by default."""
        return []

    def reenact(self, ref: BaseRef, rng) -> FaceSample:
        raise NotImplementedError

    def load_real(self, ref: BaseRef) -> FaceSample:
        raise NotImplementedError

    def configure(self, recipe: "Recipe") -> None:
        """Called once before planning (e.g. to read recipe.max_video_frames)."""

    def synthetic(self, rng: np.random.Generator, split: str) -> FaceSample:
        """A synthetic render for `split` (textures of that split's identities only)."""
        raise NotImplementedError

    def segmentation(self, sample: FaceSample, augmentation: str, rng, size: int,
                     margin: tuple = SEG_MARGIN, split: str = "train") -> FaceSample:
        """A size×size crop of `sample` (real faces: side drawn from `margin` × the landmark box) with the named
        augmentation ("perturb", "rectangles", "hand", "occluder"); every occluder clears the mask under it and
        marks the landmarks it covers. Real hands come from `split`'s cut-outs (`occluders.cutout_split`)."""
        raise NotImplementedError

    def negative(self, rng, size: int, split: str = "train") -> FaceSample:
        raise NotImplementedError

    def tracking_crop(self, sample: FaceSample, rng, size: int, margin: float) -> FaceSample:
        return crop_face(sample, size, margin)

    def perturb(self, params: ShapeParams, which: str, n: int, rng) -> list[ShapeParams]:
        raise NotImplementedError

    def cutout(self, sample: FaceSample, rng) -> FaceSample:
        raise NotImplementedError


def face_crop_affine(landmarks: np.ndarray, size: int, margin: float = 1.3) -> np.ndarray:
    """(2, 3) affine: sample px → a size×size crop centred on the landmark box (73, 2), square, side = margin ×
    the larger box side (pixel centres at integers, OpenCV)."""
    pts = landmarks[np.all(np.isfinite(landmarks), axis=1)]
    if len(pts) == 0:
        raise ValueError("a face crop needs landmarks")
    lo, hi = pts.min(0), pts.max(0)
    centre, side = (lo + hi) / 2, max(float(np.max(hi - lo)) * margin, 8.0)
    s = size / side
    return np.array([[s, 0, (size - 1) / 2 - s * centre[0]], [0, s, (size - 1) / 2 - s * centre[1]]])


def crop_face(sample: FaceSample, size: int, margin: float = 1.3) -> FaceSample:
    """A size×size crop around the sample's landmark box (`face_crop_affine`), composed into `crop_affine`;
    landmarks outside the crop become not visible. Image bilinear with the border replicated, as the pipeline
    crops frames (`detect.crop_image`; a reflected border would mirror the face into the crop); mask nearest."""
    import cv2  # noqa: PLC0415

    a = face_crop_affine(sample.landmarks, size, margin)
    image = cv2.warpAffine(sample.image, a, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(sample.mask, a, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
    lm = (sample.landmarks @ a[:, :2].T + a[:, 2]).astype(np.float32)
    inside = np.all((lm >= 0) & (lm <= size - 1), axis=1)
    affine = np.vstack([a, [0, 0, 1]]) @ np.vstack([sample.crop_affine, [0, 0, 1]])
    return sample.copy(image=image, mask=mask, landmarks=lm, visible=sample.visible & inside,
                       crop_affine=affine[:2])


# ------------------------------------------------------------------------------------------- shard arrays
def _str_array(values, field_name):
    return np.array([str(v)[:STR_WIDTH[field_name]] for v in values], dtype=f"<U{STR_WIDTH[field_name]}")


def _ops(sample: FaceSample) -> str:
    """The augmentation ops applied to a sample ("crop_jitter+hand+color_jitter"), from meta["augment"]."""
    ops = sample.meta.get("augment") or sample.meta.get("augmentations") or []
    return "+".join(str(o.get("op", "?")) if isinstance(o, dict) else str(o) for o in ops)


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
        "ops": _str_array([_ops(s) for s in samples], "ops"),
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
def make_shard(engine: Engine, kind: str, split: str, items: list[tuple[BaseRef, str]],
               rng: np.random.Generator, recipe: Recipe, progress=None) -> dict:
    """Generate the samples of one shard and stack them into arrays."""
    samples, labels, inits = [], [], []
    base_key, base = None, None
    for ref, aug in items:
        if ref.source != "negative" and ref != base_key:
            if ref.source.startswith("real"):
                base = engine.load_real(ref)
            elif ref.source == "synthetic-reenact":
                base = engine.reenact(ref, rng)
            else:
                base = engine.synthetic(rng, split)
            if ref.subject and not base.identity:
                base.identity = ref.subject
            base_key = ref
        if kind == "segmentation":
            if aug == "negative":
                s = engine.negative(rng, recipe.seg_size, split)
            else:
                s = engine.segmentation(base, aug, rng, recipe.seg_size, tuple(recipe.seg_margin), split)
            samples.append(s)
            labels.append(aug)
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
    real = _evenly(list(engine.real_bases(split)), recipe.max_real)
    frac = dict(zip(SPLITS, recipe.synthetic_split))
    # largest-remainder split of count_synthetic, so the three parts add up exactly
    raw = np.array([frac.get(s, 0.0) for s in SPLITS]) * recipe.count_synthetic / max(sum(frac.values()), 1e-9)
    n = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - n))[: recipe.count_synthetic - int(n.sum())]:
        n[k] += 1
    n_synth = int(n[SPLIT_ID[split]])
    reenact = list(engine.reenact_bases(split, recipe.reenact_per_photo)) if recipe.reenact_per_photo else []
    reenact = _evenly(reenact, recipe.max_real)
    return real + reenact + [BaseRef("synthetic", k) for k in range(n_synth)]


def _evenly(items: list, n: int | None) -> list:
    """At most n items, evenly spaced over the list (so a cap keeps photos and video frames alike)."""
    if n is None or len(items) <= n:
        return items
    return [items[int(k)] for k in np.unique(np.linspace(0, len(items) - 1, n).round())]


def build_dataset(out: str, engine: Engine, recipe: Recipe | None = None, *, seed: int = 0, resume: bool = False,
                  limit: int | None = None, progress: bool = True, log=print) -> BuildReport:
    """Build (or resume) the dataset in `out`. `limit` caps the samples per kind and split (a quick small build).
    Raises BuildError when `out` holds a different dataset (or any dataset, without `resume`)."""
    recipe = recipe or Recipe()
    out = os.path.abspath(out)
    make_output_folder(out, "the dataset folder", BuildError)
    mpath = os.path.join(out, MANIFEST)
    header = {"format": FORMAT, "version": VERSION, "seed": int(seed), "recipe": recipe.to_json(),
              "limit": limit, "engine": engine.name}
    old: dict = {}
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
    done = {sh["file"]: sh for k in old.get("kinds", {}).values() for s in k.get("splits", {}).values()
            for sh in s.get("shards", []) if sh.get("plan")}
    done = dict(old.get("previous_shards", {}), **done)
    stale = 0

    engine.configure(recipe)
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
                    licenses=engine.licenses(), non_commercial=is_non_commercial(engine.licenses()), kinds={},
                    previous_shards=done)  # until complete: what an interrupted build had, for the next resume
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
                plan = plan_digest(engine, items[a:b])
                prev = done.get(shard_name(kind, split, index))
                keep = resume and prev is not None and prev["plan"] == plan and shard_count(path) == b - a \
                    and file_sha256(path) == prev.get("sha256")
                stale += bool(resume and prev is not None and not keep and os.path.exists(path))
                if keep:
                    arrays = read_shard(path)
                    report.skipped += 1
                    if bar is not None:
                        bar.update(b - a)
                else:
                    rng = shard_rng(seed, kind, split, index)
                    arrays = make_shard(engine, kind, split, items[a:b], rng, recipe, bar)
                    write_shard(path, arrays)
                    report.written += 1
                    report.samples += b - a
                c = shard_counts(arrays)
                parts.append(c)
                entries.append({"file": shard_name(kind, split, index), "count": b - a,
                                "sha256": file_sha256(path), "plan": plan})
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
    if stale:
        log(f"resume: {stale} shards on disk were made from other inputs (labels changed) and were rebuilt")
    _remove_stale_shards(out, manifest)
    manifest.pop("previous_shards", None)
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


# ------------------------------------------------------------------------------------- the project's engine
class ProjectEngine(Engine):
    """Sources and augmentations of the project (issue 3): teacher-labelled real faces (`real.py`, split by
    identity with `splits.py`), textured synthetic renders (`synth.py` + `texture.py`), and the paper's
    augmentations (`augment.py` + `occluders.py`). Missing folders (faces/occluders/backgrounds = None) fall back
    to procedural textures, occluders and backgrounds.

    `label_missing=False` (the default) uses only the real labels already in the cache (`cache_dir/real_labels`):
    labelling new files needs the teacher and takes minutes per clip (benchmarks/label_real_faces.py)."""

    name = "project-v1"

    def __init__(self, faces: str | None = None, occluders: str | None = None, backgrounds: str | None = None,
                 rig_path: str | None = None, cache_dir: str | None = None, image_size: int = 160,
                 label_missing: bool = False, stale_labels: bool = False, log=print):
        from .augment import load_backgrounds  # noqa: PLC0415
        from .occluders import OccluderLibrary  # noqa: PLC0415
        from ..rig.model import load_rig  # noqa: PLC0415

        self.faces, self.occluders_dir, self.backgrounds_dir = faces, occluders, backgrounds
        self.cache_dir = cache_dir or CACHE
        self.render_size = int(image_size)
        self.log = log
        self.rig = load_rig(rig_path)
        self.backgrounds = load_backgrounds(backgrounds, max_side=360) if backgrounds else []
        self.occluders = OccluderLibrary.from_dir(occluders, cache_dir=os.path.join(self.cache_dir, "occluders")) \
            if occluders else OccluderLibrary()
        self.labels, self.stats = [], {}
        self.stale_labels = stale_labels
        self.label_missing = label_missing
        if faces:
            self.labels = self._load_labels(label_missing)
        self._by_image: dict = {}
        for i, lb in enumerate(self.labels):
            self._by_image.setdefault((lb.file, lb.frame), []).append(i)
        self._textures = None
        self._synth: dict = {}
        self._image_key, self._image = None, None
        pool = [lb.params.expression for lb in self.labels if lb.split == "train"]
        self.expression_pool = np.array(pool, np.float64) if pool else None

    # --- sources
    def _load_labels(self, label_missing: bool) -> list:
        from . import real  # noqa: PLC0415

        if label_missing:
            labels = real.load_real_labels(self.faces, self.cache_dir, self.rig, stats=self.stats)
        else:
            rows = real.read_manifest(self.faces)
            resolver = real.IdentityResolver(rows)
            key = real.rig_digest(self.rig)
            labels, missing, stale = [], 0, 0
            for row in rows:
                if row.get("kind") not in ("image", "video"):
                    continue
                path = os.path.join(self.faces, row["file"])
                if not os.path.exists(path):
                    continue
                cpath = real.cache_path(self.cache_dir, row["file"], real._file_digest(path), key)
                if not os.path.exists(cpath) and self.stale_labels:
                    cpath = _newest_stale(cpath)
                    stale += cpath is not None
                if cpath is None or not os.path.exists(cpath):
                    missing += 1
                    continue
                for lb in real.labels_from_arrays(real.load_arrays(cpath), row, resolver):
                    if lb.accepted:
                        lb.meta["cache"] = os.path.basename(cpath)  # names the label file (rig + file digest)
                        labels.append(lb)
            self.stats["unlabelled_files"] = missing
            self.stats["stale_label_files"] = stale
            if stale:
                self.log(f"facecap data build: {stale} files use labels cached for another rig version "
                         "(--stale-labels): their expression/identity fits belong to that rig")
            if missing:
                self.log(f"facecap data build: {missing} files of {self.faces} have no cached teacher labels yet; "
                         f"using the labelled ones (to label them, add --label-missing; {TEACHER_HINT})")
        bad = [lb for lb in labels if (lb.kind == "video") != (lb.frame >= 0)]
        if bad:  # e.g. a clip labelled as a still (frame -1): its image cannot be read back consistently
            self.stats["inconsistent_labels"] = sorted({lb.file for lb in bad})
            self.log(f"facecap data build: skipping {len(bad)} labels whose kind and frame disagree "
                     f"({', '.join(sorted({lb.file for lb in bad}))})")
        bad_ids = {id(lb) for lb in bad}
        labels = [lb for lb in labels if lb.split in SPLITS and id(lb) not in bad_ids]
        labels.sort(key=lambda lb: (lb.file, lb.frame, lb.face_index))
        return labels

    def describe(self) -> dict:
        return {"faces": self.faces, "occluders": self.occluders_dir, "backgrounds": self.backgrounds_dir,
                "rig": self.rig.name, "real_labels": len(self.labels),
                "real_identities": len({lb.identity for lb in self.labels}),
                "textures": len(self.textures),
                "texture_kind": "real" if self.faces and any(not s.startswith("procedural")
                                                             for s in self.textures.sources) else "procedural",
                "backgrounds_loaded": len(self.backgrounds), "occluder_cutouts": self.occluders.counts(),
                "render_size": self.render_size, **({"label_stats": self.stats} if self.stats else {})}

    def licenses(self) -> dict:
        out = {}
        if self.faces:
            used = {lb.file for lb in self.labels} | {s for s in self.textures.sources
                                                       if not s.startswith("procedural")}
            out["faces"] = manifest_licenses(self.faces, used)
        if self.occluders_dir and self.occluders.counts():
            out["occluders"] = manifest_licenses(self.occluders_dir)
        if self.backgrounds_dir and self.backgrounds:
            out["backgrounds"] = manifest_licenses(self.backgrounds_dir)
        return out

    @property
    def textures(self):
        if self._textures is None:
            from .texture import build_library, procedural_library  # noqa: PLC0415

            lib = None
            if self.faces:
                cached = os.path.join(self.cache_dir, "textures", "real_256.npz")
                if os.path.exists(cached) or self.label_missing:  # building it needs the teacher
                    lib = build_library(self.rig, self.faces, cache_path=cached)
                else:
                    self.log("facecap data build: no real texture library in cache/textures; using procedural "
                             "textures (to build it from the photos, add --label-missing; "
                             f"{TEACHER_HINT})")
            self._textures = lib if lib is not None and len(lib) else procedural_library(self.rig, 16, seed=0)
        return self._textures

    def real_bases(self, split: str) -> list[BaseRef]:
        photos, clips = [], {}
        for i, lb in enumerate(self.labels):
            if lb.split != split:
                continue
            if lb.kind == "video":
                clips.setdefault(lb.file, []).append(i)
            else:
                photos.append(BaseRef("real-photo", i, lb.identity))
        frames = []
        for file in sorted(clips):
            idx = clips[file]
            keep = idx if len(idx) <= self._max_video_frames else \
                [idx[int(k)] for k in np.unique(np.linspace(0, len(idx) - 1, self._max_video_frames).round())]
            frames += [BaseRef("real-video", i, self.labels[i].identity) for i in keep]
        return photos + frames

    _max_video_frames = 30

    def fingerprint(self, ref: BaseRef) -> str:
        if ref.source.startswith("real") or ref.source == "synthetic-reenact":
            lb = self.labels[ref.index]
            return f"{ref.source}:{lb.file}:{lb.frame}:{lb.face_index}:{lb.meta.get('cache', '')}:{ref.copy}"
        return repr(ref)

    def reenact_bases(self, split: str, per_photo: int) -> list[BaseRef]:
        return [BaseRef("synthetic-reenact", i, lb.identity, k) for i, lb in enumerate(self.labels)
                if lb.split == split and lb.kind == "photo" and lb.n_faces == 1 for k in range(per_photo)]

    def _read(self, lb):
        from .real import read_frame  # noqa: PLC0415

        key = (lb.file, lb.frame)
        if key != self._image_key:
            image = read_frame(os.path.join(self.faces, lb.file), lb.frame)
            if image is None:
                raise BuildError(f"cannot read {os.path.join(self.faces, lb.file)} (frame {lb.frame})")
            self._image_key, self._image = key, image
        return self._image

    def reenact(self, ref: BaseRef, rng) -> FaceSample:
        from types import SimpleNamespace  # noqa: PLC0415

        from ..rig.geometry import quat_to_matrix  # noqa: PLC0415

        lb = self.labels[ref.index]
        p = lb.params
        fit = SimpleNamespace(rotation=quat_to_matrix(p.rotation), translation=p.translation, focal=p.focal,
                              identity=p.identity)
        return self._synthetic_faces(lb.split).reenact(self._read(lb), lb.teacher, rng, fit=fit,
                                                       identity_key=lb.identity, source=lb.file)

    def configure(self, recipe: Recipe) -> None:
        self._max_video_frames = recipe.max_video_frames

    def load_real(self, ref: BaseRef) -> FaceSample:
        from .real import real_sample  # noqa: PLC0415

        lb = self.labels[ref.index]
        image = self._read(lb)
        others = [self.labels[i] for i in self._by_image.get((lb.file, lb.frame), []) if i != ref.index]
        return real_sample(lb, image, others=others)

    def synthetic(self, rng, split: str) -> FaceSample:
        return self._synthetic_faces(split).sample(rng)

    def _synthetic_faces(self, split: str):
        if split not in self._synth:
            from .synth import SyntheticFaces  # noqa: PLC0415

            tex = self.textures.for_split(split) if self.faces else self.textures
            self._synth[split] = SyntheticFaces(self.rig, tex if len(tex) else None, self.backgrounds,
                                                size=self.render_size)
        return self._synth[split]

    # --- augmentations
    def _to_size(self, sample: FaceSample, rng, size: int, margin: float) -> FaceSample:
        from .augment import random_background, warp_sample  # noqa: PLC0415

        if sample.source.startswith("synthetic"):  # already a face crop with a random margin: scale only
            s = size / sample.image.shape[1]
            a = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5]])
        else:
            a = face_crop_affine(sample.landmarks, size, margin)
        return warp_sample(sample, a, (size, size), background=random_background(rng, self.backgrounds,
                                                                                  (size, size)))

    def segmentation(self, sample, augmentation, rng, size, margin=SEG_MARGIN, split="train"):
        from .augment import SegmentationPolicy, augment_for_segmentation  # noqa: PLC0415

        s = self._to_size(sample, rng, size, float(rng.uniform(*margin)))
        choice = {"perturb": "none", "rectangles": "rectangles", "hand": "hand", "occluder": "other"}[augmentation]
        policy = SegmentationPolicy(occlusion={choice: 1.0})
        return augment_for_segmentation(s, rng, self.occluders.for_split(split), self.backgrounds, policy)

    def negative(self, rng, size, split="train"):
        from .augment import make_negative  # noqa: PLC0415

        return make_negative(rng, self.occluders.for_split(split), self.backgrounds, (size, size))

    def tracking_crop(self, sample, rng, size, margin):
        from .augment import random_background, warp_sample  # noqa: PLC0415

        return warp_sample(sample, face_crop_affine(sample.landmarks, size, margin), (size, size),
                           background=random_background(rng, self.backgrounds, (size, size)))

    def perturb(self, params, which, n, rng):
        from .augment import perturb_shape_params  # noqa: PLC0415

        return perturb_shape_params(params, rng, n, which, expression_pool=self.expression_pool)

    def cutout(self, sample, rng):
        from .augment import cutout_rectangle  # noqa: PLC0415

        return cutout_rectangle(sample, rng)


def _newest_stale(cpath: str) -> str | None:
    """The newest cached label file of the same source file under another key (another rig or label version)."""
    import glob  # noqa: PLC0415

    stem = os.path.basename(cpath).rsplit("-", 1)[0]
    found = [p for p in glob.glob(os.path.join(os.path.dirname(cpath), glob.escape(stem) + "-*.npz"))
             if os.path.basename(p).rsplit("-", 1)[0] == stem]
    return max(found, key=os.path.getmtime) if found else None
