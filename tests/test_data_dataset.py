"""Dataset format and builder (`facecap_core.data.dataset`, `facecap_core.data.build`, `facecap data …`).

No ../shared data: the machinery tests use a tiny engine defined here (ellipse "faces" on noise, rectangles,
negatives), and one test builds through the project's own engine with procedural textures when its modules are
importable. Everything is small: the whole file runs in well under a minute on two cores.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from facecap_core.data import build as B
from facecap_core.data.dataset import (FORMAT, MANIFEST, Dataset, DatasetError, contact_sheet, read_shard,
                                       sample_batch, shard_name)
from facecap_core.data.types import FaceSample, ShapeParams
from facecap_core.rig.model import N_EXPRESSIONS, N_IDENTITY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------- a tiny engine
class ToyEngine(B.Engine):
    """Ellipse faces with 73 landmarks on their outline; everything drawn from the rng it is given."""

    name = "toy"

    def __init__(self, n_real=(3, 2, 2)):
        self.n_real = dict(zip(("train", "val", "test"), n_real))

    def describe(self):
        return {"toy": True}

    def licenses(self):
        return {"faces": {"CC BY-NC 4.0 (toy)": 3}}

    def real_bases(self, split):
        return [B.BaseRef("real-photo", i, f"{split}-person{i % 2}") for i in range(self.n_real[split])]

    def _face(self, rng, size=96):
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        cx, cy = rng.uniform(0.4, 0.6, 2) * size
        ax, ay = rng.uniform(0.2, 0.3) * size, rng.uniform(0.28, 0.36) * size
        yy, xx = np.mgrid[:size, :size]
        mask = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1).astype(np.uint8)
        img[mask > 0] = rng.integers(120, 230, 3)
        t = np.linspace(0, 2 * np.pi, 73, endpoint=False)
        lm = np.stack([cx + 0.9 * ax * np.cos(t), cy + 0.9 * ay * np.sin(t)], 1).astype(np.float32)
        params = ShapeParams(np.array([1.0, 0, 0, 0]), np.array([0, 0, 50.0]), rng.uniform(0, 1, N_EXPRESSIONS),
                             rng.normal(0, 1, N_IDENTITY), 400.0, (size, size))
        return FaceSample(img, mask, lm, np.ones(73, bool), params)

    def load_real(self, ref):
        s = self._face(np.random.default_rng(ref.index))  # a "photo": fixed per label
        s.source, s.identity = ref.source, ref.subject
        return s

    def synthetic(self, rng, split):
        s = self._face(rng)
        s.source, s.identity = "synthetic", "synthetic"
        return s

    def segmentation(self, sample, augmentation, rng, size, margin=(1.25, 2.3), split="train"):
        s = B.crop_face(sample, size, margin=rng.uniform(1.2, 1.6))
        if augmentation in ("rectangles", "hand", "occluder"):
            x0, y0 = rng.integers(0, size // 2, 2)
            x1, y1 = x0 + size // 3, y0 + size // 3
            s.image[y0:y1, x0:x1] = rng.integers(0, 255, 3)
            s.mask[y0:y1, x0:x1] = 0
            inside = ((s.landmarks[:, 0] >= x0) & (s.landmarks[:, 0] < x1) & (s.landmarks[:, 1] >= y0)
                      & (s.landmarks[:, 1] < y1))
            s.visible &= ~inside
        s.meta["augment"] = [{"op": "crop"}] + ([{"op": augmentation}] if augmentation != "perturb" else [])
        return s

    def negative(self, rng, size, split="train"):
        return FaceSample(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), np.zeros((size, size), np.uint8),
                          np.full((73, 2), np.nan, np.float32), np.zeros(73, bool), None, source="negative")

    def perturb(self, params, which, n, rng):
        out = []
        for _ in range(n):
            p = ShapeParams(params.rotation.copy(), params.translation.copy(), params.expression.copy(),
                            params.identity.copy(), params.focal, params.image_size)
            if which == "expression":
                p.expression = np.clip(p.expression + rng.normal(0, 0.2, N_EXPRESSIONS), 0, 1)
            elif which == "translation":
                p.translation = p.translation + rng.normal(0, 1, 3)
            out.append(p)
        return out

    def cutout(self, sample, rng):
        s = sample.copy()
        s.mask[10:40, 10:40] = 0
        s.image[10:40, 10:40] = 0
        return s


RECIPE = B.Recipe(seg_size=32, track_size=40, shard_size=8, count_synthetic=6, track_expression_perturbations=3,
                  track_other_perturbations=1)


def shard_hashes(path):
    return {n: hashlib.sha256(open(os.path.join(path, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(path)) if n.endswith(".npz")}


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ds") / "a")
    B.build_dataset(out, ToyEngine(), RECIPE, seed=3, progress=False, log=lambda *a: None)
    return out


# ------------------------------------------------------------------------------------------------- tests
def test_plan_proportions():
    bases = [B.BaseRef("synthetic", k) for k in range(8)]
    items = B.plan_items("segmentation", bases, B.Recipe())
    augs = [a for _, a in items]
    assert augs.count("perturb") == 8 and augs.count("rectangles") == 8
    assert augs.count("hand") == 4 and augs.count("occluder") == 4
    assert augs.count("negative") == 24  # as many negatives as positives
    track = B.plan_items("tracking", bases, B.Recipe())
    assert [a for _, a in track].count("cutout") == 8 and len(track) == 16
    assert B.Recipe().n_init == 15 + 4 * 5


def test_same_seed_same_bytes(toy_dataset, tmp_path):
    out = str(tmp_path / "b")
    B.build_dataset(out, ToyEngine(), RECIPE, seed=3, progress=False, log=lambda *a: None)
    assert shard_hashes(out) == shard_hashes(toy_dataset)
    assert len(shard_hashes(out)) > 4
    other = str(tmp_path / "c")
    B.build_dataset(other, ToyEngine(), RECIPE, seed=4, progress=False, log=lambda *a: None)
    assert shard_hashes(other) != shard_hashes(toy_dataset)


def test_resume_rebuilds_missing_shard_identically(toy_dataset, tmp_path):
    import shutil

    out = str(tmp_path / "r")
    shutil.copytree(toy_dataset, out)
    victim = shard_name("segmentation", "train", 1)
    os.remove(os.path.join(out, victim))
    with open(os.path.join(out, shard_name("tracking", "val", 0)), "r+b") as f:  # a half-written shard
        f.truncate(100)
    rep = B.build_dataset(out, ToyEngine(), RECIPE, seed=3, resume=True, progress=False, log=lambda *a: None)
    assert rep.written == 2 and rep.skipped == len(shard_hashes(toy_dataset)) - 2
    assert shard_hashes(out) == shard_hashes(toy_dataset)
    assert Dataset(out).complete and not Dataset(out).verify()


def test_resume_rebuilds_shards_whose_inputs_changed(toy_dataset, tmp_path):
    import shutil

    out = str(tmp_path / "r2")
    shutil.copytree(toy_dataset, out)

    class Relabelled(ToyEngine):  # the label behind real base 0 changed since the first build
        def fingerprint(self, ref):
            return repr(ref) + (":v2" if ref.source == "real-photo" and ref.index == 0 else "")

    rep = B.build_dataset(out, Relabelled(), RECIPE, seed=3, resume=True, progress=False, log=lambda *a: None)
    ds = Dataset(out)
    changed = {sh["file"] for k in ds.kinds for s in ds.splits(k) for sh in ds.shards(k, s)
               if sh["plan"] != {x["file"]: x for x in Dataset(toy_dataset).shards(k, s)}[sh["file"]]["plan"]}
    assert changed and rep.written == len(changed)  # only the shards holding that base were regenerated


def test_existing_dataset_needs_resume_and_same_recipe(toy_dataset):
    with pytest.raises(B.BuildError, match="--resume"):
        B.build_dataset(toy_dataset, ToyEngine(), RECIPE, seed=3, progress=False)
    with pytest.raises(B.BuildError, match="seed differs"):
        B.build_dataset(toy_dataset, ToyEngine(), RECIPE, seed=5, resume=True, progress=False)


def test_manifest_counts_match_shards(toy_dataset):
    ds = Dataset(toy_dataset)
    m = ds.manifest
    assert m["format"] == FORMAT and m["version"] == 1 and m["seed"] == 3 and m["complete"]
    assert m["non_commercial"] and "CC BY-NC 4.0 (toy)" in m["licenses"]["faces"]
    for kind in ("segmentation", "tracking"):
        for split in ("train", "val", "test"):
            arrays = [read_shard(os.path.join(toy_dataset, sh["file"])) for sh in ds.shards(kind, split)]
            n = sum(len(a["is_negative"]) for a in arrays)
            c = m["counts"][kind][split]
            assert n == c["total"] == ds.size(kind, split) > 0
            assert c["negative"] == sum(int(a["is_negative"].sum()) for a in arrays)
            src = np.concatenate([a["source"] for a in arrays])
            assert c["source"] == {s: int((src == s).sum()) for s in np.unique(src)}
            assert sum(c["augmentation"].values()) == n
    # real photos of the 'test' identities only in test
    test_subjects = {str(s) for s in np.concatenate([read_shard(os.path.join(toy_dataset, sh["file"]))["subject"]
                                                     for sh in ds.shards("segmentation", "train")])}
    assert not any(s.startswith("test-") for s in test_subjects)


def test_shapes_ranges_and_negatives(toy_dataset):
    ds = Dataset(toy_dataset)
    seg = next(ds.view("segmentation", "train").batches(1000))
    assert seg["image"].shape[1:] == (32, 32, 3) and seg["image"].dtype == np.uint8
    assert seg["mask"].shape[1:] == (32, 32) and set(np.unique(seg["mask"])) <= {0, 1}
    assert seg["landmarks"].shape[1:] == (73, 2) and seg["visible"].shape[1:] == (73,)
    neg = seg["is_negative"]
    assert neg.any() and (~neg).any()
    assert neg.sum() == (~neg).sum()  # as many negatives as positives
    assert not seg["mask"][neg].any() and np.isnan(seg["landmarks"][neg]).all() and not seg["visible"][neg].any()
    assert seg["mask"][~neg].reshape((~neg).sum(), -1).any(1).all()
    tr = ds.view("tracking", "train")[0]
    assert tr["image"].shape == (40, 40, 3) and tr["init_expression"].shape == (7, N_EXPRESSIONS)
    assert list(tr["init_perturbed"]) == ["expression"] * 3 + ["rotation", "translation", "identity", "focal"]
    assert tr["crop_affine"].shape == (2, 3) and tr["rotation"].shape == (4,) and tr["identity"].shape == (50,)


def test_random_access_and_batches(toy_dataset):
    view = Dataset(toy_dataset).view("segmentation", "train")
    n = len(view)
    first, last = view[0], view[-1]
    assert np.array_equal(view[n - 1]["image"], last["image"])
    with pytest.raises(IndexError):
        view[n]
    seen = sum(len(b["image"]) for b in view.batches(5, rng=np.random.default_rng(0)))
    assert seen == n
    pos = sum(len(b["image"]) for b in view.batches(5, negatives=False))
    assert pos == n - Dataset(toy_dataset).manifest["counts"]["segmentation"]["train"]["negative"]
    assert np.array_equal(next(view.batches(3))["image"][0], first["image"])


def test_batches_keep_only_the_chosen_sources(toy_dataset):
    view = Dataset(toy_dataset).view("segmentation", "train")
    everything = next(view.batches(100000))
    sources = {str(s) for s in everything["source"][~everything["is_negative"]]}
    assert len(sources) >= 2, "the toy dataset should mix sources"
    keep = sorted(sources)[0]
    kept = next(view.batches(100000, sources={keep}, rng=np.random.default_rng(1)))
    pos = ~kept["is_negative"]
    assert set(kept["source"][pos].astype(str)) == {keep}
    assert pos.sum() == (everything["source"] == keep).sum()
    assert kept["is_negative"].sum() == everything["is_negative"].sum()  # negatives are not filtered
    assert not any(True for _ in view.batches(4, sources=set(), negatives=False))


def test_torch_wrapper(toy_dataset):
    torch = pytest.importorskip("torch")
    tv = Dataset(toy_dataset).view("segmentation", "val").torch()
    item = tv[0]
    assert isinstance(item["image"], torch.Tensor) and item["image"].shape == (32, 32, 3)
    assert len(tv) == Dataset(toy_dataset).size("segmentation", "val")


def test_reader_errors(toy_dataset, tmp_path):
    with pytest.raises(DatasetError, match="dataset not found"):
        Dataset(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no manifest.json"):
        Dataset(str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MANIFEST).write_text("{not json")
    with pytest.raises(DatasetError, match="corrupt dataset manifest"):
        Dataset(str(bad))
    (bad / MANIFEST).write_text(json.dumps({"format": "facecap-take", "version": 1}))
    with pytest.raises(DatasetError, match="not a facecap-dataset manifest"):
        Dataset(str(bad))
    (bad / MANIFEST).write_text(json.dumps({"format": FORMAT, "version": 99, "kinds": {}}))
    with pytest.raises(DatasetError, match="version 99"):
        Dataset(str(bad))
    import shutil

    broken = str(tmp_path / "broken")
    shutil.copytree(toy_dataset, broken)
    name = shard_name("segmentation", "train", 0)
    with open(os.path.join(broken, name), "wb") as f:
        f.write(b"garbage" * 10)
    ds = Dataset(broken)
    with pytest.raises(DatasetError, match=f"corrupt dataset shard .*{name}"):
        ds.view("segmentation", "train")[0]
    assert any(name in p for p in ds.verify())
    os.remove(os.path.join(broken, name))
    with pytest.raises(DatasetError, match="dataset shard missing"):
        Dataset(broken)


def test_contact_sheet(toy_dataset):
    view = Dataset(toy_dataset).view("segmentation", "train")
    sheet = contact_sheet(sample_batch(view, 10), columns=4, tile=64)
    assert sheet.dtype == np.uint8 and sheet.shape == (3 * (64 + 26), 4 * 64, 3)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "facecap_core.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_cli_show_and_info(toy_dataset, tmp_path):
    png = tmp_path / "sheet.png"
    proc = run_cli("data", "show", toy_dataset, "--n", "12", "--out", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run_cli("data", "info", toy_dataset)
    assert proc.returncode == 0 and "segmentation" in proc.stdout and "non-commercial" in proc.stdout


def test_cli_errors_are_one_line(tmp_path):
    proc = run_cli("data", "info", str(tmp_path / "missing"))
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "dataset not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("data", "show", str(tmp_path / "missing"), "--out", str(tmp_path / "s.png"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- the project's engine (procedural)
def test_project_engine_procedural_build(rig_path, tmp_path):
    """`facecap data build` without ../shared: synthetic renders with procedural textures, occluders and
    backgrounds; the same seed gives the same bytes; labels stay consistent."""
    pytest.importorskip("facecap_core.data.synth")
    args = ["data", "build", "--faces", "none", "--occluders", "none", "--backgrounds", "none", "--rig", rig_path,
            "--count-synthetic", "4", "--shard-size", "6", "--limit", "8", "--no-progress",
            "--cache", str(tmp_path / "cache")]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    proc = run_cli(*args, "--out", a)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "samples/s" in proc.stdout
    ds = Dataset(a)
    assert ds.complete and ds.manifest["sources"]["texture_kind"] == "procedural"
    seg = next(ds.view("segmentation", "train").batches(100))
    assert seg["image"].shape[1:] == (128, 128, 3)
    neg = seg["is_negative"]
    assert neg.any() and not seg["mask"][neg].any()
    pos = ~neg
    lm, vis, mask = seg["landmarks"][pos], seg["visible"][pos], seg["mask"][pos]
    ij = np.round(lm[vis]).astype(int)
    rows = np.repeat(np.arange(pos.sum()), vis.sum(1))
    near = [mask[r, max(0, y - 3):y + 4, max(0, x - 3):x + 4].any() for r, (x, y) in zip(rows, ij)]
    assert np.mean(near) > 0.95  # visible landmarks lie on (or next to) face pixels
    tr = ds.view("tracking", "train")[0]
    assert tr["image"].shape == (160, 160, 3) and tr["init_expression"].shape == (35, N_EXPRESSIONS)
    proc = run_cli(*args[:-2], "--cache", str(tmp_path / "cache"), "--out", b)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shard_hashes(a) == shard_hashes(b)


def test_cli_build_missing_folder_says_so(rig_path, tmp_path):
    pytest.importorskip("facecap_core.data.synth")
    missing = str(tmp_path / "no_faces")
    proc = run_cli("data", "build", "--out", str(tmp_path / "d"), "--faces", missing, "--occluders", "none",
                   "--backgrounds", "none", "--rig", rig_path, "--count-synthetic", "2", "--limit", "2",
                   "--kinds", "segmentation", "--no-progress", "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if "not found" in ln]
    assert len(lines) == 1 and "faces folder not found" in lines[0] and missing in lines[0]
    proc = run_cli("data", "build", "--out", str(tmp_path / "e"), "--faces", "none", "--occluders", "none",
                   "--backgrounds", "none", "--rig", rig_path, "--count-synthetic", "0", "--no-progress")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "nothing to build" in proc.stderr
    proc = run_cli("data", "build", "--out", str(tmp_path / "f"), "--kinds", "segmentation,bogus")
    assert proc.returncode == 1 and "unknown dataset kind bogus" in proc.stderr


def test_project_engine_draws_the_crop_margin_from_the_recipe(rig_path):
    """`--seg-margin LO,HI` reaches the real faces' crops: a crop 2.2× the landmark box shows the face about
    (2.2 / 1.3)² ≈ 2.9 times smaller than one 1.3× it (the crop jitter scales both alike)."""
    engine = B.ProjectEngine(rig_path=rig_path, log=lambda *a: None)
    face = ToyEngine()._face(np.random.default_rng(0), size=160)
    face.source = "real-photo"

    def median_face_area(margin):
        return np.median([engine.segmentation(face.copy(), "perturb", np.random.default_rng(k), 64,
                                              margin=(margin, margin)).mask.sum() for k in range(12)])

    ratio = median_face_area(1.3) / median_face_area(2.2)
    assert 2.2 < ratio < 3.8
    assert B.Recipe(seg_margin=(1.5, 2.0)).to_json()["seg_margin"] == [1.5, 2.0]
    proc = run_cli("data", "build", "--out", "unused", "--seg-margin", "2.0,1.5")
    assert proc.returncode == 2 and "need 1 <= LO <= HI" in proc.stderr


def test_each_split_pastes_its_own_real_hands(rig_path):
    """The builder hands each shard's split to the engine, and the project's engine pastes only that split's real
    hand cut-outs, so the held-out figures are on hands no training crop showed."""
    from facecap_core.data.occluders import OccluderLibrary, cutout_split

    class Recording(ToyEngine):
        seen = set()

        def segmentation(self, sample, augmentation, rng, size, margin=(1.25, 2.3), split="train"):
            self.seen.add(split)
            return super().segmentation(sample, augmentation, rng, size, margin, split)

    eng = Recording()
    recipe = B.Recipe(kinds=("segmentation",), count_synthetic=3, seg_hands=1)
    for split in B.SPLITS:
        items = B.plan_items("segmentation", B._bases_for(eng, split, recipe), recipe)
        B.make_shard(eng, "segmentation", split, items, np.random.default_rng(0), recipe)
    assert Recording.seen == set(B.SPLITS)

    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[5:35, 5:25] = (190, 140, 110, 255)
    engine = B.ProjectEngine(rig_path=rig_path, log=lambda *a: None)
    engine.occluders = OccluderLibrary({"hand": [(rgba, f"ego_{k:02d}_hand1") for k in range(30)]}, p_real=1.0)
    face = ToyEngine()._face(np.random.default_rng(0), size=160)
    face.source = "real-photo"
    for split in ("val", "test"):
        files = {rec["file"] for k in range(10)
                 for rec in engine.segmentation(face.copy(), "hand", np.random.default_rng(k), 64, split=split)
                 .meta["augment"] if rec["op"] == "real-hand"}
        assert files and {cutout_split(f) for f in files} == {split}


def test_pack_round_trip_keeps_masks_and_provenance_and_the_chosen_negatives(toy_dataset, tmp_path):
    """The pack (to carry a dataset where 64 MiB is the limit) unpacks to a dataset that reads like the source:
    masks, visibility and provenance exact, every positive kept in order, images exact with lossless WebP,
    landmarks within float16's rounding, and the asked share of negatives."""
    from facecap_core.data.pack import main as pack_main
    from facecap_core.data.pack import pack, unpack

    path = str(tmp_path / "seg.pack.npz")
    kept = pack(toy_dataset, path, splits=("train", "val"), quality=101, negatives=0.5, seed=1)
    assert unpack(path, str(tmp_path / "un"), shard_size=7) == kept
    src, out = Dataset(toy_dataset), Dataset(str(tmp_path / "un"))
    assert out.kinds == ("segmentation",) and out.splits("segmentation") == ("train", "val")
    assert out.manifest["pack"]["webp_quality"] == 101 and out.manifest["licenses"] == src.manifest["licenses"]
    for split in ("train", "val"):
        a = next(src.view("segmentation", split).batches(10_000))
        b = next(out.view("segmentation", split).batches(10_000))
        pos_a, pos_b = ~a["is_negative"], ~b["is_negative"]
        assert pos_b.sum() == pos_a.sum() and 0 < b["is_negative"].sum() < a["is_negative"].sum()
        assert kept[split] == len(b["is_negative"]) == out.manifest["counts"]["segmentation"][split]["total"]
        for field in ("mask", "visible", "source", "augmentation", "subject", "ops"):
            np.testing.assert_array_equal(a[field][pos_a], b[field][pos_b])
        np.testing.assert_array_equal(a["image"][pos_a], b["image"][pos_b])
        np.testing.assert_allclose(a["landmarks"][pos_a], b["landmarks"][pos_b], atol=0.05)
        assert np.isnan(b["landmarks"][b["is_negative"]]).all() and not b["mask"][b["is_negative"]].any()
    # lossy and without landmarks: smaller; and the bad-input paths: one line, exit status 1
    lean = str(tmp_path / "lean.npz")
    pack(toy_dataset, lean, splits=("val",), negatives=0.0, landmarks=False)
    assert os.path.getsize(lean) < os.path.getsize(path) / 2
    unpack(lean, str(tmp_path / "lean"))
    v = next(Dataset(str(tmp_path / "lean")).view("segmentation", "val").batches(10_000))
    assert not v["is_negative"].any() and np.isnan(v["landmarks"]).all()
    assert pack_main(["--unpack", str(tmp_path / "missing.npz"), str(tmp_path / "x")]) == 1
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert pack_main(["--unpack", str(tmp_path / "junk.npz"), str(tmp_path / "y")]) == 1
    assert pack_main([toy_dataset, str(tmp_path / "z.npz"), "--negatives", "2"]) == 1
