"""Segmentation training: a tiny generated dataset, resume gives the same weights as an uninterrupted run
(across the phase-1 → phase-2 boundary), and the run writes .pt, .onnx and a model card."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facecap_core.data.dataset import FORMAT, VERSION, shard_counts, shard_name, write_manifest, write_shard  # noqa: E402
from facecap_core.segment import Segmenter  # noqa: E402
from facecap_core.segment.train import main, mask_metrics  # noqa: E402


def _tiny_dataset(root, n=12, seed=0):
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :128]
    kinds = {"segmentation": {"image_size": [128, 128], "splits": {}}}
    for split in ("train", "val"):
        img = rng.integers(0, 255, (n, 128, 128, 3)).astype(np.uint8)
        mask = np.zeros((n, 128, 128), np.uint8)
        neg = np.arange(n) % 3 == 2
        for i in np.flatnonzero(~neg):
            inside = ((xx - 64) / 30) ** 2 + ((yy - 60) / 40) ** 2 < 1
            img[i][inside] = (210, 160, 130)
            mask[i][inside] = 1
        t = np.linspace(0, 2 * np.pi, 73, endpoint=False)  # landmarks on the face's outline (what occluders use)
        lm = np.where(neg[:, None, None], np.nan, np.stack([64 + 30 * np.cos(t), 60 + 40 * np.sin(t)], 1)[None])
        arrays = {"image": img, "mask": mask, "landmarks": lm.astype(np.float32),
                  "visible": ~neg[:, None].repeat(73, 1), "is_negative": neg,
                  "source": np.where(neg, "negative", "synthetic"), "augmentation": np.where(neg, "negative", "perturb"),
                  "subject": np.where(neg, "negative", f"s-{split}"), "ops": np.array(["none"] * n)}
        f = shard_name("segmentation", split, 0)
        sha = write_shard(os.path.join(root, f), arrays)
        c = shard_counts(arrays)
        c["subjects"] = len(c["subjects"])
        kinds["segmentation"]["splits"][split] = {"count": n, "shards": [{"file": f, "count": n, "sha256": sha}],
                                                  "counts": c}
    write_manifest(root, {"format": FORMAT, "version": VERSION, "seed": seed, "recipe": {}, "complete": True,
                          "created": "test", "licenses": {"faces": {"generated": n}}, "kinds": kinds})
    return root


def _args(data, out, run, *extra):
    return ["--data", data, "--out", out, "--run-dir", run, "--iters", "4", "--finetune-iters", "3",
            "--batch-size", "4", "--warmup", "2", "--log-every", "2", "--val-every", "3", "--val-size", "4",
            "--no-progress", *extra]


def test_mask_metrics_by_hand():
    gt = np.zeros((2, 4, 4), np.uint8)
    gt[0, :2] = 1  # 8 face pixels
    prob = np.zeros((2, 4, 4))
    prob[0, :1] = 0.9  # 4 predicted, all right
    m = mask_metrics(prob, gt)
    assert m["n"] == 1  # the face-less image is skipped
    assert m["iou"] == pytest.approx(0.5) and m["ave_face"] == pytest.approx(0.5)
    assert m["global"] == pytest.approx(12 / 16)


@pytest.mark.slow
def test_resume_matches_uninterrupted_and_writes_card(tmp_path):
    torch.set_num_threads(1)
    data = _tiny_dataset(str(tmp_path / "data"))
    a_out, a_run = str(tmp_path / "a" / "seg"), str(tmp_path / "a" / "run")
    b_out, b_run = str(tmp_path / "b" / "seg"), str(tmp_path / "b" / "run")
    online = ("--online-augment", "0.5", "--occluders", str(tmp_path / "none"), "--backgrounds", str(tmp_path / "none"),
              "--iou-loss", "0.5")
    assert main(_args(data, a_out, a_run, *online)) == 0
    assert main(_args(data, b_out, b_run, *online, "--stop-at", "3")) == 0  # stops in phase 1 (exports, in progress)
    assert "training in progress: 3 of 7" in open(b_out + ".md").read()
    assert main(_args(data, b_out, b_run, "--resume")) == 0  # crosses into phase 2; keeps --online-augment, --iou-loss
    sa = torch.load(a_out + ".pt", weights_only=True)["state_dict"]
    sb = torch.load(b_out + ".pt", weights_only=True)["state_dict"]
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6), k
    card = open(a_out + ".md").read()
    assert "**Status: trained.**" in card and "0.5·CE(DeconvNet)" in card and "generated" in card
    assert "--resume" in card and "online augmentation" in card and "--online-augment 0.5" in card
    assert "0.5·(1 − soft IOU(fused))" in card and "--iou-loss 0.5" in card
    # a checkpoint from before an option existed still exports, with the option at its default
    ckpt_path = os.path.join(b_run, "last.ckpt")
    ckpt = torch.load(ckpt_path, weights_only=True)
    del ckpt["args"]["iou_loss"]
    torch.save(ckpt, ckpt_path)
    assert main(_args(data, b_out, b_run, "--export-only")) == 0
    assert "soft IOU" not in open(b_out + ".md").read()
    meta = json.loads(torch.load(a_out + ".pt", weights_only=True)["meta"])
    assert meta["iterations"] == 7
    seg = Segmenter.load(a_out + ".onnx")
    assert seg.predict(np.zeros((2, 128, 128, 3), np.uint8)).shape == (2, 128, 128)
    assert os.path.getsize(a_out + ".pt") < 20e6 and os.path.getsize(a_out + ".onnx") < 20e6


def test_online_augmentation_is_seeded_and_keeps_labels_consistent(tmp_path):
    from facecap_core.data.dataset import Dataset
    from facecap_core.segment.train import OnlineAugmenter

    view = Dataset(_tiny_dataset(str(tmp_path / "data"))).view("segmentation", "train")
    batch = next(view.batches(12))
    before = {k: v.copy() for k, v in batch.items() if isinstance(v, np.ndarray)}
    aug = OnlineAugmenter(1.0, None, None)  # procedural occluders and backgrounds
    im1, m1 = aug(batch, np.random.default_rng(3))
    im2, m2 = aug(batch, np.random.default_rng(3))
    assert np.array_equal(im1, im2) and np.array_equal(m1, m2)  # a resumed run sees the same crops
    assert all(np.array_equal(before[k], batch[k], equal_nan=before[k].dtype.kind == "f") for k in before)  # untouched
    assert im1.shape == batch["image"].shape and im1.dtype == np.uint8 and set(np.unique(m1)) <= {0, 1}
    pos = ~batch["is_negative"]
    changed = [not np.array_equal(m1[i], batch["mask"][i]) for i in np.flatnonzero(pos)]
    assert sum(changed) >= len(changed) // 2  # occluders / jitter moved most face masks
    assert not m1[~pos].any()  # negatives stay face-free
    assert (m1[pos].sum((1, 2)) > 0).all()  # no positive lost its whole face
    im0, m0 = OnlineAugmenter(0.0, None, None)(batch, np.random.default_rng(3))
    assert np.array_equal(im0, batch["image"]) and np.array_equal(m0, batch["mask"])


def test_poly_schedule_decays_to_the_finetune_lr():
    from argparse import Namespace

    from facecap_core.segment.train import phase_lr

    a = Namespace(lr=0.01, finetune_lr=0.001, warmup=10, iters=110, lr_schedule="poly")
    lrs = [phase_lr(a, 1, s) for s in range(110)]
    assert lrs[0] == pytest.approx(0.001) and lrs[10] == pytest.approx(0.01)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:]))  # monotone after warm-up
    assert lrs[-1] == pytest.approx(0.001)  # floored at the fine-tuning lr
    assert phase_lr(a, 2, 200) == 0.001
    a.lr_schedule = "constant"
    assert phase_lr(a, 1, 100) == 0.01


@pytest.mark.slow
def test_init_from_starts_at_the_given_weights(tmp_path):
    torch.set_num_threads(1)
    data = _tiny_dataset(str(tmp_path / "data"))
    a_out, a_run = str(tmp_path / "a" / "seg"), str(tmp_path / "a" / "run")
    assert main(_args(data, a_out, a_run)) == 0
    b_out, b_run = str(tmp_path / "b" / "seg"), str(tmp_path / "b" / "run")
    # zero iterations of a run initialised from a: its export is a's weights, and its card says where they came from
    assert main(_args(data, b_out, b_run, "--init-from", a_out + ".pt", "--stop-at", "0")) == 0
    sa = torch.load(a_out + ".pt", weights_only=True)["state_dict"]
    sb = torch.load(b_out + ".pt", weights_only=True)["state_dict"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert "initialised from" in open(b_out + ".md").read()
    # a wider network (per-block channels) starts from a's weights widened: the same masks at iteration 0
    c_out, c_run = str(tmp_path / "c" / "seg"), str(tmp_path / "c" / "run")
    assert main(_args(data, c_out, c_run, "--channels", "8,16,32,64,128", "--fc-width", "512",
                      "--init-from", a_out + ".pt", "--stop-at", "0")) == 0
    crops = np.random.default_rng(5).integers(0, 255, (2, 128, 128, 3)).astype(np.uint8)
    pa, pc = Segmenter.load(a_out + ".pt").predict(crops), Segmenter.load(c_out + ".pt").predict(crops)
    assert np.allclose(pa, pc, atol=1e-5)
    assert Segmenter.load(c_out + ".onnx").predict(crops).shape == (2, 128, 128)
    card = open(c_out + ".md").read()
    assert "8-16-32-64-128" in card and "widened" in card and "--channels 8,16,32,64,128" in card
    # the same by copying channels (Net2WiderNet): the masks move by no more than the copies' noise
    s_out, s_run = str(tmp_path / "s" / "seg"), str(tmp_path / "s" / "run")
    assert main(_args(data, s_out, s_run, "--channels", "16,16,32,64,128", "--fc-width", "512", "--widen", "split",
                      "--init-from", a_out + ".pt", "--stop-at", "0")) == 0
    assert np.abs(Segmenter.load(s_out + ".pt").predict(crops) - pa).mean() < 1e-3
    assert "Net2WiderNet" in open(s_out + ".md").read()
    # a refinement head trained alone on top of a: the paper's weights stay a's, only the head moves
    r_out, r_run = str(tmp_path / "r" / "seg"), str(tmp_path / "r" / "run")
    assert main(_args(data, r_out, r_run, "--refine", "4", "--refine-only", "--init-from", a_out + ".pt")) == 0
    sr = torch.load(r_out + ".pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sr[k]) for k in sa) and any(sr[k].abs().sum() > 0 for k in sr if "refine.out" in k)
    card = open(r_out + ".md").read()
    assert "refinement head of 4 channels" in card and "--refine 4 --refine-only" in card
    with pytest.raises(SystemExit, match="--refine-only needs"):
        main(_args(data, str(tmp_path / "q" / "seg"), str(tmp_path / "q" / "run"), "--refine-only"))
    with pytest.raises(SystemExit, match="cannot start this network"):  # narrower than its source
        main(_args(data, str(tmp_path / "d" / "seg"), str(tmp_path / "d" / "run"), "--fc-width", "128",
                   "--init-from", c_out + ".pt", "--stop-at", "0"))
    with pytest.raises(SystemExit, match="no such file"):
        main(_args(data, str(tmp_path / "c" / "seg"), str(tmp_path / "c" / "run"),
                   "--init-from", str(tmp_path / "missing.pt")))


def test_distillation_mixes_the_teachers_mirror_averaged_probability_into_face_crops(tmp_path):
    from facecap_core.segment.net import TwoStreamNet, face_probability
    from facecap_core.segment.train import distill_targets

    torch.manual_seed(0)
    teachers = [TwoStreamNet(0.0625, 64).eval(), TwoStreamNet(0.0625, 64).eval()]
    x = torch.rand(3, 3, 128, 128)
    label = torch.zeros(3, 128, 128, dtype=torch.int64)
    label[:2, 40:90, 30:100] = 1  # crop 2 is a negative
    with torch.no_grad():
        def prob(t, img):
            return face_probability(t.streams(img)[2])
        q = torch.stack([(prob(t, x) + prob(t, x.flip(3)).flip(2)) / 2 for t in teachers]).mean(0)
    target = distill_targets(teachers, x, label, 0.25)
    assert target.dtype == torch.float32 and target.shape == label.shape
    assert torch.allclose(target[:2], 0.75 * label[:2].float() + 0.25 * q[:2], atol=1e-5)
    assert torch.equal(target[2], torch.zeros(128, 128))  # a negative keeps its label
    assert torch.equal(distill_targets(teachers, x, label, 0.0), label.float())
    # a training run with a teacher, and its card; a missing teacher is one clear error
    data = _tiny_dataset(str(tmp_path / "data"))
    t_out, s_out = str(tmp_path / "t" / "seg"), str(tmp_path / "s" / "seg")
    assert main(_args(data, t_out, str(tmp_path / "t" / "run"), "--stop-at", "2")) == 0
    assert main(_args(data, s_out, str(tmp_path / "s" / "run"), "--distill-from", t_out + ".pt",
                      "--distill-weight", "0.4", "--iou-loss", "1.0")) == 0
    card = open(s_out + ".md").read()
    assert "distillation" in card and "--distill-weight 0.4" in card
    with pytest.raises(SystemExit, match="--distill-from: .*not found"):
        main(_args(data, str(tmp_path / "m" / "seg"), str(tmp_path / "m" / "run"),
                   "--distill-from", str(tmp_path / "missing.pt")))


def test_sources_restrict_the_positives_and_unknown_ones_are_one_clear_error(tmp_path):
    data = _tiny_dataset(str(tmp_path / "data"))  # its positives are all "synthetic"
    out = str(tmp_path / "a" / "seg")
    assert main(_args(data, out, str(tmp_path / "a" / "run"), "--sources", "synthetic")) == 0
    card = open(out + ".md").read()
    assert "positives from the sources synthetic only" in card and "--sources synthetic" in card
    with pytest.raises(SystemExit, match="--sources: real-photo not among this dataset's training sources"):
        main(_args(data, str(tmp_path / "b" / "seg"), str(tmp_path / "b" / "run"), "--sources", "real-photo"))


@pytest.mark.slow
def test_ema_exports_the_average_and_resumes_it(tmp_path):
    torch.set_num_threads(1)
    data = _tiny_dataset(str(tmp_path / "data"))
    a_out, a_run = str(tmp_path / "a" / "seg"), str(tmp_path / "a" / "run")
    b_out, b_run = str(tmp_path / "b" / "seg"), str(tmp_path / "b" / "run")
    assert main(_args(data, a_out, a_run, "--ema", "0.5")) == 0
    assert main(_args(data, b_out, b_run, "--ema", "0.5", "--stop-at", "3")) == 0
    assert main(_args(data, b_out, b_run, "--resume")) == 0  # keeps the checkpoint's --ema and its average
    ckpt = torch.load(os.path.join(a_run, "last.ckpt"), weights_only=True)
    exported = torch.load(a_out + ".pt", weights_only=True)["state_dict"]
    resumed = torch.load(b_out + ".pt", weights_only=True)["state_dict"]
    w = "trunk.0.0.weight"
    assert torch.allclose(exported[w], ckpt["ema"]["module." + w])
    assert not torch.allclose(exported[w], ckpt["model"][w])  # the average, not the last step's weights
    for k in exported:
        assert torch.allclose(exported[k].float(), resumed[k].float(), atol=1e-6), k
    card = open(a_out + ".md").read()
    assert "moving average" in card and "--ema 0.5" in card


def test_two_view_training_loss_is_the_loss_of_what_two_views_predict(tmp_path):
    from facecap_core.segment.net import (TwoStreamNet, face_probability, two_view_loss, two_view_probability,
                                          zoomed_mirrored_view)
    from facecap_core.segment.segmenter import ZOOM_SIDE, ZOOM_WEIGHT

    torch.manual_seed(1)
    net = TwoStreamNet(0.0625, 64).eval()
    crops = np.random.default_rng(2).integers(0, 256, (3, 128, 128, 3)).astype(np.uint8)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    label = torch.zeros(3, 128, 128, dtype=torch.int64)
    label[:, 30:100, 20:60] = 1  # the face on the left: on the right once mirrored
    zoomed = zoomed_mirrored_view(label, ZOOM_SIDE)
    assert zoomed.dtype == torch.int64 and zoomed.shape == label.shape
    assert zoomed[:, :, :64].sum() < zoomed[:, :, 64:].sum()
    with torch.no_grad():
        fused = net.streams(torch.cat([x, zoomed_mirrored_view(x, ZOOM_SIDE)]))[2]
        p = two_view_probability(fused[:3], fused[3:], ZOOM_SIDE, ZOOM_WEIGHT)
    o = (128 - ZOOM_SIDE) // 2
    border = torch.ones(128, 128, dtype=torch.bool)
    border[o:o + ZOOM_SIDE, o:o + ZOOM_SIDE] = False
    assert torch.allclose(p[:, border], face_probability(fused[:3])[:, border])
    seg = Segmenter(net, device="cpu")
    seg.views = 2  # what inference with two views gives, up to the resampling of uint8 images
    assert np.abs(p.numpy() - seg.predict(crops)).mean() < 0.01
    outputs = net.streams(torch.cat([x, zoomed_mirrored_view(x, ZOOM_SIDE)]))
    loss = two_view_loss(outputs, label, ZOOM_SIDE, ZOOM_WEIGHT, iou_weight=2.0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and net.fuse.weight.grad.abs().sum() > 0
    # a training run with it writes its recipe into the card; with distillation it is one clear error
    data = _tiny_dataset(str(tmp_path / "data"))
    out = str(tmp_path / "v" / "seg")
    assert main(_args(data, out, str(tmp_path / "v" / "run"), "--views-loss", "1.0", "--iou-loss", "1.0",
                      "--views-zoom-weight", "0.5")) == 0
    card = open(out + ".md").read()
    assert "trained for two views" in card and "--views-loss 1.0 --views-zoom-weight 0.5" in card
    with pytest.raises(SystemExit):
        main(_args(data, out, str(tmp_path / "w" / "run"), "--views-loss", "1.0", "--distill-from", out + ".pt"))
