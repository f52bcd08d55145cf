"""On-disk training datasets: a versioned folder of `.npz` shards with a JSON manifest.

    DIR/manifest.json                        format, version, seed, recipe, licences, shard list, counts
    DIR/{kind}-{split}-{index:05d}.npz       one shard: up to `shard_size` samples, arrays stacked on axis 0

Kinds (design §2, §7):

* ``segmentation``: fixed-size crops (default 128×128) for the two-stream CNN.
  ``image`` (N, H, W, 3) uint8 RGB; ``mask`` (N, H, W) uint8 1 = face (design §5); ``landmarks`` (N, 73, 2)
  float32 pixels in the crop (NaN on negatives); ``visible`` (N, 73) bool; ``is_negative`` (N,) bool.
* ``tracking``: face crops (default 160×160) for the DDE regressor, the same five arrays plus the ground truth
  S in the source camera (``rotation`` (N, 4) w,x,y,z; ``translation`` (N, 3) cm; ``expression`` (N, 46);
  ``identity`` (N, 50); ``focal`` (N,) px; ``image_size`` (N, 2) int32 width, height of the source image),
  ``crop_affine`` (N, 2, 3) source px → crop px, and P perturbed initial estimates per sample
  (``init_rotation`` (N, P, 4), ``init_translation`` (N, P, 3), ``init_expression`` (N, P, 46),
  ``init_identity`` (N, P, 50), ``init_focal`` (N, P), ``init_perturbed`` (P,) str: which parameter each one
  perturbs).

Every shard also carries per-sample provenance strings: ``source`` ("real-photo", "real-video", "synthetic",
"negative"), ``augmentation`` (the recipe's category: segmentation "perturb", "rectangles", "hand", "occluder",
"negative"; tracking "perturb", "cutout"), ``ops`` (what was applied, e.g. "crop_jitter+hand+color_jitter") and
``subject`` (the identity key used by the split). Shards are written atomically (temp file + rename) and never
hold pickled objects.

`Dataset(dir)` validates the manifest and gives sizes, random access and batched iteration (NumPy); `.torch()`
wraps one kind/split as a `torch.utils.data.Dataset` (torch is imported only then).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import zipfile
from collections import OrderedDict

import numpy as np

FORMAT = "facecap-dataset"
VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("segmentation", "tracking")
SPLITS = ("train", "val", "test")
PROVENANCE_FIELDS = ("source", "augmentation", "subject", "ops")
COMMON_FIELDS = ("image", "mask", "landmarks", "visible", "is_negative") + PROVENANCE_FIELDS
TRACKING_FIELDS = COMMON_FIELDS + ("rotation", "translation", "expression", "identity", "focal", "image_size",
                                   "crop_affine", "init_rotation", "init_translation", "init_expression",
                                   "init_identity", "init_focal", "init_perturbed")
FIELDS = {"segmentation": COMMON_FIELDS, "tracking": TRACKING_FIELDS}
PER_SHARD_FIELDS = ("init_perturbed",)  # not stacked per sample


class DatasetError(RuntimeError):
    """A missing, corrupt or wrong-format dataset: the message is one line naming the thing and what to do."""


def shard_name(kind: str, split: str, index: int) -> str:
    return f"{kind}-{split}-{index:05d}.npz"


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


# ------------------------------------------------------------------------------------------------- writing
def _fsync_replace(tmp: str, path: str) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(path: str, arrays: dict) -> str:
    """Write one shard atomically (`path`.tmp.npz, then rename). `arrays`: name → ndarray, no object dtypes.
    The bytes depend only on the arrays (zip entries carry a fixed date), so equal inputs give equal files.
    Returns the file's sha256 (hex)."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise ValueError(f"shard field {k!r} has dtype object (not allowed: shards never hold pickles)")
    tmp = path[:-4] + ".tmp.npz" if path.endswith(".npz") else path + ".tmp.npz"
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})
    _fsync_replace(tmp, path)
    return file_sha256(path)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: str, manifest: dict) -> str:
    """Write DIR/manifest.json atomically. Returns its path."""
    path = os.path.join(directory, MANIFEST)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    _fsync_replace(tmp, path)
    return path


def read_shard(path: str) -> dict:
    """All arrays of one shard (loaded into memory). Raises DatasetError for a missing or unreadable file."""
    if not os.path.exists(path):
        raise DatasetError(f"dataset shard missing: {path} (rebuild it with `facecap data build --resume`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise DatasetError(f"corrupt dataset shard {path} ({exc.__class__.__name__}: {exc}); delete it and "
                           "rebuild with `facecap data build --resume`") from None


def shard_count(path: str) -> int | None:
    """Number of samples in a shard on disk, or None if it is missing or unreadable (used to resume)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(len(z["is_negative"]))
    except Exception:  # noqa: BLE001 — any failure means "not a complete shard"
        return None


def shard_counts(arrays: dict) -> dict:
    """Counts by source, augmentation, subject and negative/positive for one shard's arrays."""
    out = {"total": int(len(arrays["is_negative"])), "negative": int(np.sum(arrays["is_negative"])),
           "source": {}, "augmentation": {}}
    for field in ("source", "augmentation"):
        values, counts = np.unique(arrays[field], return_counts=True)
        out[field] = {str(v): int(c) for v, c in zip(values, counts)}
    out["subjects"] = sorted({str(s) for s in np.unique(arrays["subject"]) if str(s) not in ("", "negative")})
    return out


def merge_counts(parts: list[dict]) -> dict:
    out = {"total": 0, "negative": 0, "source": {}, "augmentation": {}, "subjects": 0}
    subjects: set = set()
    for p in parts:
        out["total"] += p["total"]
        out["negative"] += p["negative"]
        for field in ("source", "augmentation"):
            for k, v in p[field].items():
                out[field][k] = out[field].get(k, 0) + v
        subjects.update(p.get("subjects", ()))
    out["source"] = dict(sorted(out["source"].items()))
    out["augmentation"] = dict(sorted(out["augmentation"].items()))
    out["subjects"] = len(subjects)
    return out


# ------------------------------------------------------------------------------------------------- reading
class Dataset:
    """A dataset folder written by `facecap data build`.

    >>> ds = Dataset("out/dataset-v1")
    >>> ds.size("segmentation", "train")
    >>> sample = ds.view("segmentation", "train")[17]           # dict of arrays for one sample
    >>> for batch in ds.view("segmentation", "train").batches(64, rng=np.random.default_rng(0)): ...
    """

    def __init__(self, path: str, *, cache_shards: int = 2):
        self.path = os.path.abspath(path)
        if not os.path.isdir(self.path):
            raise DatasetError(f"dataset not found: {path} (build one with `facecap data build --out {path}`)")
        mpath = os.path.join(self.path, MANIFEST)
        if not os.path.exists(mpath):
            raise DatasetError(f"not a facecap dataset: {path} has no {MANIFEST} (build one with "
                               f"`facecap data build --out {path}`)")
        try:
            with open(mpath, encoding="utf-8") as f:
                m = json.load(f)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"corrupt dataset manifest {mpath} ({exc}); rebuild with `facecap data build`") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            got = m.get("format") if isinstance(m, dict) else type(m).__name__
            raise DatasetError(f"{mpath} is not a {FORMAT} manifest (format {got!r})")
        if not isinstance(m.get("version"), int) or m["version"] > VERSION or m["version"] < 1:
            raise DatasetError(f"{mpath} has dataset version {m.get('version')!r}; this facecap reads version "
                               f"{VERSION} (rebuild with `facecap data build`)")
        if not isinstance(m.get("kinds"), dict):
            raise DatasetError(f"corrupt dataset manifest {mpath} (no 'kinds' table); rebuild with "
                               "`facecap data build`")
        self.manifest = m
        self._cache: OrderedDict = OrderedDict()
        self._cache_shards = max(1, cache_shards)
        for kind, entry in m["kinds"].items():
            for split, s in entry.get("splits", {}).items():
                for sh in s.get("shards", []):
                    if not os.path.exists(os.path.join(self.path, sh["file"])):
                        raise DatasetError(f"dataset shard missing: {os.path.join(self.path, sh['file'])} "
                                           f"(rebuild it with `facecap data build --out {path} --resume`)")

    # --- sizes
    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def kinds(self) -> tuple:
        return tuple(self.manifest["kinds"])

    def splits(self, kind: str) -> tuple:
        return tuple(self._kind(kind).get("splits", {}))

    def _kind(self, kind: str) -> dict:
        if kind not in self.manifest["kinds"]:
            raise DatasetError(f"dataset {self.path} has no {kind!r} samples (kinds: "
                               f"{', '.join(self.manifest['kinds']) or 'none'})")
        return self.manifest["kinds"][kind]

    def shards(self, kind: str, split: str) -> list[dict]:
        splits = self._kind(kind).get("splits", {})
        if split not in splits:
            raise DatasetError(f"dataset {self.path} has no {kind} samples in split {split!r} (splits: "
                               f"{', '.join(splits) or 'none'})")
        return list(splits[split]["shards"])

    def size(self, kind: str, split: str) -> int:
        return sum(int(s["count"]) for s in self.shards(kind, split))

    def __len__(self) -> int:
        return sum(self.size(k, s) for k in self.kinds for s in self.splits(k))

    def view(self, kind: str, split: str) -> "DatasetView":
        return DatasetView(self, kind, split)

    # --- shards
    def load_shard(self, file: str) -> dict:
        """Arrays of one shard (a small LRU cache keeps the last few in memory)."""
        if file in self._cache:
            self._cache.move_to_end(file)
            return self._cache[file]
        arrays = read_shard(os.path.join(self.path, file))
        if "is_negative" not in arrays:
            raise DatasetError(f"corrupt dataset shard {os.path.join(self.path, file)} (no is_negative array); "
                               "delete it and rebuild with `facecap data build --resume`")
        self._cache[file] = arrays
        while len(self._cache) > self._cache_shards:
            self._cache.popitem(last=False)
        return arrays

    def verify(self) -> list[str]:
        """Check every shard's sha256 and sample count against the manifest. Returns the problems (empty = ok)."""
        problems = []
        for kind in self.kinds:
            for split in self.splits(kind):
                for sh in self.shards(kind, split):
                    p = os.path.join(self.path, sh["file"])
                    if sh.get("sha256") and file_sha256(p) != sh["sha256"]:
                        problems.append(f"{sh['file']}: sha256 differs from the manifest")
                    elif shard_count(p) != sh["count"]:
                        problems.append(f"{sh['file']}: unreadable or wrong sample count")
        return problems


class DatasetView:
    """The samples of one kind and split, in shard order. `view[i]` → dict of per-sample arrays."""

    def __init__(self, dataset: Dataset, kind: str, split: str):
        self.dataset, self.kind, self.split = dataset, kind, split
        self._shards = dataset.shards(kind, split)
        self._starts = np.cumsum([0] + [int(s["count"]) for s in self._shards])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, index: int) -> tuple[int, int]:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"sample {index} out of range ({n} {self.kind} samples in {self.split})")
        k = int(np.searchsorted(self._starts, index, side="right") - 1)
        return k, index - int(self._starts[k])

    def _rows(self, arrays: dict, rows) -> dict:
        return {k: (v if k in PER_SHARD_FIELDS else v[rows]) for k, v in arrays.items()}

    def __getitem__(self, index: int) -> dict:
        k, row = self._locate(int(index))
        return self._rows(self.dataset.load_shard(self._shards[k]["file"]), row)

    def batches(self, batch_size: int, *, rng: np.random.Generator | None = None, drop_last: bool = False,
                negatives: bool = True, sources=None):
        """Yield dicts of stacked arrays, `batch_size` samples each. With `rng`, shard order and the order inside
        each shard are shuffled (a block shuffle: one shard in memory at a time). `negatives=False` drops the
        negative samples (e.g. for the first training phase); `sources` (a collection of provenance sources, e.g.
        {"real-photo", "real-video"}) keeps only the positives from those sources (negatives are unaffected)."""
        order = np.arange(len(self._shards)) if rng is None else rng.permutation(len(self._shards))
        pending: list[dict] = []
        n_pending = 0
        for k in order:
            arrays = self.dataset.load_shard(self._shards[k]["file"])
            rows = np.arange(len(arrays["is_negative"]))
            if not negatives:
                rows = rows[~arrays["is_negative"]]
            if sources is not None:
                keep = arrays["is_negative"] | np.isin(arrays["source"].astype(str), list(sources))
                rows = rows[keep[rows]]
            if rng is not None:
                rows = rng.permutation(rows)
            pending.append(self._rows(arrays, rows))
            n_pending += len(rows)
            while n_pending >= batch_size:
                batch, pending, n_pending = _take(pending, batch_size)
                yield batch
        if n_pending and not drop_last:
            yield _take(pending, n_pending)[0]

    def torch(self, transform=None):
        """This view as a `torch.utils.data.Dataset` (torch imported here, not at module import). Items are
        dicts of tensors, or whatever `transform(sample_dict)` returns."""
        import torch  # noqa: PLC0415
        from torch.utils.data import Dataset as TorchDataset  # noqa: PLC0415

        view = self

        class _TorchView(TorchDataset):
            def __len__(self):
                return len(view)

            def __getitem__(self, index):
                sample = view[index]
                if transform is not None:
                    return transform(sample)
                return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sample.items()
                        if v.dtype.kind in "biuf"}

        return _TorchView()


def _take(pending: list[dict], n: int):
    """Concatenate the first n samples of the pending chunks; return (batch, rest, n_rest)."""
    out, rest, need = [], [], n
    for chunk in pending:
        m = len(chunk["is_negative"])
        if need <= 0:
            rest.append(chunk)
        elif m <= need:
            out.append(chunk)
            need -= m
        else:
            out.append({k: (v if k in PER_SHARD_FIELDS else v[:need]) for k, v in chunk.items()})
            rest.append({k: (v if k in PER_SHARD_FIELDS else v[need:]) for k, v in chunk.items()})
            need = 0
    batch = {k: (out[0][k] if k in PER_SHARD_FIELDS else np.concatenate([c[k] for c in out]))
             for k in out[0]}
    return batch, rest, sum(len(c["is_negative"]) for c in rest)


def counts_table(manifest: dict) -> str:
    """The manifest's counts as a text table (what `facecap data info` prints)."""
    lines = [f"dataset {manifest.get('format')} v{manifest.get('version')}  created {manifest.get('created')}  "
             f"seed {manifest.get('seed')}  {'complete' if manifest.get('complete') else 'INCOMPLETE'}"]
    for kind, entry in manifest.get("kinds", {}).items():
        size = entry.get("image_size")
        lines.append(f"\n{kind} ({size[1]}×{size[0]} crops)" if size else f"\n{kind}")
        lines.append(f"  {'split':<6}{'samples':>9}{'negative':>10}{'subjects':>10}{'shards':>8}  sources")
        aug_rows = {}
        for split, s in entry.get("splits", {}).items():
            c = s.get("counts", {})
            src = ", ".join(f"{k} {v}" for k, v in c.get("source", {}).items())
            lines.append(f"  {split:<6}{c.get('total', 0):>9}{c.get('negative', 0):>10}{c.get('subjects', 0):>10}"
                         f"{len(s.get('shards', [])):>8}  {src}")
            aug_rows[split] = c.get("augmentation", {})
        augs = sorted({a for row in aug_rows.values() for a in row})
        if augs:
            lines.append(f"  {'augmentation':<24}" + "".join(f"{s:>9}" for s in aug_rows))
            for a in augs:
                lines.append(f"    {a:<22}" + "".join(f"{aug_rows[s].get(a, 0):>9}" for s in aug_rows))
    lic = manifest.get("licenses", {})
    if lic:
        lines.append("\nlicences of the sources used (from their manifest.csv):")
        for name, entry in lic.items():
            for text, n in entry.items():
                lines.append(f"  {name:<12}{n:>6}  {text}")
        if manifest.get("non_commercial"):
            lines.append("  NOTE: some sources are non-commercial / research-only: so is this dataset and anything "
                         "trained on it.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- contact sheet
def contact_sheet(batch: dict, *, columns: int = 8, tile: int = 160) -> np.ndarray:
    """A contact sheet (uint8 RGB) of a batch from `DatasetView.batches` or stacked samples: each tile is the image
    with the face mask tinted blue, landmarks green where visible and red where occluded/outside, and a caption
    "source / augmentation" (plus "NEG" for negatives)."""
    import cv2  # noqa: PLC0415

    n = len(batch["image"])
    rows = max(1, -(-n // columns))
    cap = 26
    sheet = np.full((rows * (tile + cap), columns * tile, 3), 24, np.uint8)
    for i in range(n):
        img = batch["image"][i].astype(np.float32)
        m = batch["mask"][i] > 0
        img[m] = 0.6 * img[m] + 0.4 * np.array([40, 110, 255], np.float32)
        h, w = img.shape[:2]
        s = tile / max(h, w)
        img = cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (int(round(w * s)), int(round(h * s))),
                         interpolation=cv2.INTER_NEAREST if s >= 1 else cv2.INTER_AREA)
        contours, _ = cv2.findContours(cv2.resize(m.astype(np.uint8), img.shape[1::-1],
                                                  interpolation=cv2.INTER_NEAREST), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (80, 160, 255), 1, cv2.LINE_AA)
        for p, vis in zip(batch["landmarks"][i], batch["visible"][i]):
            if np.all(np.isfinite(p)):
                c = (0, 230, 0) if vis else (255, 40, 40)
                cv2.circle(img, (int(round((p[0] + 0.5) * s - 0.5)), int(round((p[1] + 0.5) * s - 0.5))), 2, c,
                           -1, cv2.LINE_AA)
        r, c = divmod(i, columns)
        y, x = r * (tile + cap), c * tile
        sheet[y:y + img.shape[0], x:x + img.shape[1]] = img
        src = str(batch["source"][i]) + (" NEG" if batch["is_negative"][i] else "")
        cv2.putText(sheet, src[:26], (x + 3, y + tile + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (230, 230, 230), 1,
                    cv2.LINE_AA)
        ops = str(batch["ops"][i]) if "ops" in batch else ""
        ops = "+".join(o for o in ops.split("+") if o not in ("crop_jitter", "negative_background"))
        aug = str(batch["augmentation"][i]) + (f": {ops}" if ops else "")
        cv2.putText(sheet, aug[:30], (x + 3, y + tile + 22), cv2.FONT_HERSHEY_SIMPLEX,
                    0.33, (170, 200, 255), 1, cv2.LINE_AA)
    return sheet


def sample_batch(view: "DatasetView", n: int, rng: np.random.Generator | None = None) -> dict:
    """n samples of a view stacked into one batch: evenly spaced over the view, or random with `rng`."""
    total = len(view)
    if total == 0:
        raise DatasetError(f"no {view.kind} samples in split {view.split!r} of {view.dataset.path}")
    n = min(n, total)
    idx = np.sort(rng.choice(total, n, replace=False)) if rng is not None else \
        np.unique(np.linspace(0, total - 1, n).round().astype(int))
    items = [view[int(i)] for i in idx]
    return {k: (items[0][k] if k in PER_SHARD_FIELDS else np.stack([it[k] for it in items])) for k in items[0]}
