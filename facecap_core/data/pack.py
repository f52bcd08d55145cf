"""A dataset's segmentation samples in one small file, and back to a dataset folder.

The device machine that trains the full-size network takes 64 MiB in all (the working tree included), and a
segmentation dataset folder is about 1.5 GB of uncompressed shards. The pack keeps what training reads:
images as WebP (lossy at `--quality` 1-100, lossless at 101; the build already JPEG-re-encodes some crops), masks
and visibility as bits, landmarks as float16 (or not at all with `--no-landmarks`: only `--online-augment`
reads them), the provenance strings, and a fraction of the negatives (`--negatives`, drawn with `--seed`).

    python -m facecap_core.data.pack DATASET PACK.npz [--splits train,val] [--quality 75] [--negatives 0.5]
                                     [--no-landmarks] [--seed 0]
    python -m facecap_core.data.pack --unpack PACK.npz DATASET      (a dataset folder `Dataset` reads)

The file is an `.npz` without pickles: `manifest` (the source manifest as UTF-8 JSON with a "pack" entry) and,
per split, `<split>.webp` (the images' bytes back to back), `<split>.offsets` (N + 1), `<split>.mask` and
`<split>.visible` (bit-packed along the last axis), `<split>.landmarks`, `<split>.is_negative` and the
provenance fields.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .dataset import (PROVENANCE_FIELDS, Dataset, DatasetError, merge_counts, now_iso, shard_counts,
                      shard_name, write_manifest, write_shard)

KIND = "segmentation"
N_LANDMARKS = 73


def _encode_webp(image: np.ndarray, quality: int) -> bytes:
    import cv2  # noqa: PLC0415

    ok, buf = cv2.imencode(".webp", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise DatasetError("pack: OpenCV could not encode WebP (an OpenCV build without WebP support?)")
    return buf.tobytes()


def _decode_webp(data: np.ndarray) -> np.ndarray:
    import cv2  # noqa: PLC0415

    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError("pack: an image in the pack does not decode (a truncated or corrupt pack file)")
    return bgr[..., ::-1]


def pack_split(view, rng: np.random.Generator, *, quality: int, negatives: float, landmarks: bool) -> dict:
    """The arrays of one split's pack entry (see the module doc), keeping every positive and a `negatives`
    fraction of the negatives."""
    keep, blobs = [], []
    for file in [sh["file"] for sh in view.dataset.shards(KIND, view.split)]:
        arrays = view.dataset.load_shard(file)
        neg = arrays["is_negative"].astype(bool)
        chosen = ~neg | (rng.random(len(neg)) < negatives)
        blobs += [_encode_webp(im, quality) for im in arrays["image"][chosen]]  # one shard's images at a time
        keep.append({k: v[chosen] for k, v in arrays.items() if k != "image"})
    rows = {k: np.concatenate([a[k] for a in keep]) for k in keep[0]}
    out = {"webp": np.frombuffer(b"".join(blobs), np.uint8),
           "offsets": np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64),
           "mask": np.packbits(rows["mask"].astype(bool), axis=-1),
           "visible": np.packbits(rows["visible"].astype(bool), axis=-1),
           "is_negative": rows["is_negative"].astype(bool)}
    if landmarks:
        out["landmarks"] = rows["landmarks"].astype(np.float16)
    for field in PROVENANCE_FIELDS:
        out[field] = rows[field]
    return out


def pack(dataset_dir: str, out_path: str, *, splits=("train", "val"), quality: int = 75, negatives: float = 0.5,
         landmarks: bool = True, seed: int = 0) -> dict:
    """Write the pack of `dataset_dir`'s segmentation samples to `out_path`. Returns {split: samples kept}."""
    ds = Dataset(dataset_dir)
    if not 0.0 <= negatives <= 1.0:
        raise DatasetError(f"pack: --negatives {negatives} is not a fraction in [0, 1]")
    rng = np.random.default_rng(seed)
    arrays, kept = {}, {}
    for split in splits:
        entry = pack_split(ds.view(KIND, split), rng, quality=quality, negatives=negatives, landmarks=landmarks)
        kept[split] = int(len(entry["is_negative"]))
        arrays.update({f"{split}.{k}": v for k, v in entry.items()})
    manifest = dict(ds.manifest, pack={"from": os.path.abspath(dataset_dir), "created": now_iso(),
                                       "splits": list(splits), "webp_quality": quality, "negatives_kept": negatives,
                                       "landmarks": landmarks, "seed": seed, "samples": kept})
    manifest["kinds"] = {KIND: {"image_size": ds.manifest["kinds"][KIND]["image_size"], "splits": {}}}
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    tmp = out_path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, out_path)
    return kept


def unpack(pack_path: str, out_dir: str, *, shard_size: int = 512) -> dict:
    """Write the dataset folder of a pack (shards of `shard_size` samples and a manifest). Returns {split: n}."""
    if not os.path.isfile(pack_path):
        raise DatasetError(f"pack not found: {pack_path} (make one with `python -m facecap_core.data.pack DATASET "
                           f"{pack_path}`)")
    try:
        z = np.load(pack_path, allow_pickle=False)
        manifest = json.loads(z["manifest"].tobytes().decode())
        info = manifest["pack"]
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"not a readable facecap dataset pack: {pack_path} ({exc.__class__.__name__}); make it "
                           "again with `python -m facecap_core.data.pack`") from None
    os.makedirs(out_dir, exist_ok=True)
    size = manifest["kinds"][KIND]["image_size"]
    written = {}
    with z:
        for split in info["splits"]:
            webp, offsets = z[f"{split}.webp"], z[f"{split}.offsets"]
            n = len(offsets) - 1
            fields = {k: z[f"{split}.{k}"] for k in ("is_negative", *PROVENANCE_FIELDS)}
            masks = np.unpackbits(z[f"{split}.mask"], axis=-1, count=size[1]).astype(np.uint8)
            visible = np.unpackbits(z[f"{split}.visible"], axis=-1, count=N_LANDMARKS).astype(bool)
            lm = (z[f"{split}.landmarks"].astype(np.float32) if f"{split}.landmarks" in z.files
                  else np.full((n, N_LANDMARKS, 2), np.nan, np.float32))
            entries, parts = [], []
            for index, a in enumerate(range(0, n, shard_size)):
                b = min(a + shard_size, n)
                arrays = {"image": np.stack([_decode_webp(webp[offsets[i]:offsets[i + 1]]) for i in range(a, b)]),
                          "mask": masks[a:b], "landmarks": lm[a:b], "visible": visible[a:b],
                          **{k: v[a:b] for k, v in fields.items()}}
                name = shard_name(KIND, split, index)
                sha = write_shard(os.path.join(out_dir, name), arrays)
                entries.append({"file": name, "count": b - a, "sha256": sha})
                parts.append(shard_counts(arrays))
            manifest["kinds"][KIND]["splits"][split] = {"count": n, "shards": entries, "counts": merge_counts(parts)}
            written[split] = n
    manifest["counts"] = {KIND: {s: e["counts"] for s, e in manifest["kinds"][KIND]["splits"].items()}}
    manifest["complete"] = True
    write_manifest(out_dir, manifest)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m facecap_core.data.pack", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="dataset folder (or, with --unpack, the pack file)")
    ap.add_argument("dest", help="pack file to write (or, with --unpack, the dataset folder to write)")
    ap.add_argument("--unpack", action="store_true", help="write the dataset folder of a pack")
    ap.add_argument("--splits", default="train,val", help="segmentation splits to pack (default train,val)")
    ap.add_argument("--quality", type=int, default=75, help="WebP quality 1-100 (default 75: about 2 KB a 128×128 crop); 101 = lossless")
    ap.add_argument("--negatives", type=float, default=0.5, help="fraction of the negatives kept (default 0.5)")
    ap.add_argument("--no-landmarks", action="store_true", help="leave the landmarks out (NaN when unpacked)")
    ap.add_argument("--seed", type=int, default=0, help="which negatives are kept")
    args = ap.parse_args(argv)
    try:
        if args.unpack:
            n = unpack(args.source, args.dest)
            print(f"unpacked {args.source} → {args.dest}: " + ", ".join(f"{s} {c}" for s, c in n.items()))
        else:
            n = pack(args.source, args.dest, splits=tuple(s for s in args.splits.split(",") if s),
                     quality=args.quality, negatives=args.negatives, landmarks=not args.no_landmarks, seed=args.seed)
            mb = os.path.getsize(args.dest) / 2**20
            print(f"packed {args.source} → {args.dest}: {mb:.1f} MiB, " + ", ".join(f"{s} {c}" for s, c in n.items()))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
