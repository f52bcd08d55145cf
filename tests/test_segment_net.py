"""The two-stream segmentation network: shapes, stream alignment, switches, loss weights, learning, ONNX, files."""
import importlib.util
import os
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from facecap_core.segment import ModelFileError, Segmenter  # noqa: E402
from facecap_core.segment.net import (  # noqa: E402
    FULL, LITE, LOSS_WEIGHTS, TwoStreamNet, build, fold_batchnorm, lovasz_hinge_loss, max_unpool, soft_iou_loss,
    two_stream_loss, upsampler, widen_state_dict)
from facecap_core.segment.segmenter import (  # noqa: E402
    ZOOM_SIDE, ZOOM_WEIGHT, export_onnx, load_model, save_model, zoom_in, zoom_out)

torch.set_num_threads(1)


def _lite(seed=0):
    torch.manual_seed(seed)
    return TwoStreamNet(**LITE)


def _crops(n, seed=0):
    """Hand-made crops: a skin-coloured ellipse (face, mask 1) on a random background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :128]
    imgs = rng.integers(0, 255, (n, 128, 128, 3)).astype(np.uint8)
    masks = np.zeros((n, 128, 128), np.uint8)
    for i in range(n):
        cx, cy = rng.uniform(50, 78, 2)
        inside = ((xx - cx) / 34) ** 2 + ((yy - cy) / 44) ** 2 < 1
        imgs[i][inside] = (200, 150, 120)
        masks[i][inside] = 1
    return imgs, masks


def test_lite_shapes_train_and_eval():
    net = _lite().train()
    x = torch.rand(2, 3, 128, 128)
    d, f, fused = net(x)
    assert d.shape == f.shape == fused.shape == (2, 2, 128, 128)
    net.eval()
    with torch.no_grad():
        p = net(x)
    assert p.shape == (2, 128, 128)
    assert float(p.min()) >= 0 and float(p.max()) <= 1
    assert net.channels == [8, 16, 32, 64, 64]


def test_full_width_shapes_batch_one():
    t = time.perf_counter()
    torch.manual_seed(0)
    net = TwoStreamNet(**FULL)
    assert net.channels == [64, 128, 256, 512, 512]
    assert net.fc6[0].kernel_size == (4, 4) and net.fc6[0].out_channels == 4096
    assert net.fc7[0].kernel_size == (1, 1)
    n_params = net.num_parameters()
    assert 100e6 < n_params < 130e6  # VGG-16 conv trunk + 4×4 fc6 + mirrored decoder
    net.train()
    with torch.no_grad():
        outs = net(torch.rand(1, 3, 128, 128))
    assert all(o.shape == (1, 2, 128, 128) for o in outs)
    if time.perf_counter() - t > 30:
        pytest.skip("full-width forward slower than 30 s on this machine (shapes checked)")


def test_trunk_and_fcn_alignment():
    """pool1..pool5 at 64..4 px; fc6 (4×4 conv) reduces pool5 to 1×1; every FCN upsampler doubles (×8 at the end)
    with pixel centres aligned: a bilinear-initialised ×s upsampler maps a constant map to the same constant
    away from the border, and a point at input pixel j peaks at output pixels s·j + s/2 - 1 and s·j + s/2."""
    net = _lite().eval()
    with torch.no_grad():
        fc7, pooled, switches, sizes = net.encode(torch.rand(1, 3, 128, 128))
    assert [p.shape[-1] for p in pooled] == [64, 32, 16, 8, 4]
    assert [s.shape for s in switches] == [p.shape for p in pooled]
    assert fc7.shape[-2:] == (1, 1)
    for factor in (2, 8):
        up = upsampler(2, factor)
        with torch.no_grad():
            const = up(torch.ones(1, 2, 6, 6))
            assert const.shape[-1] == 6 * factor
            interior = const[..., factor:-factor, factor:-factor]
            assert torch.allclose(interior, torch.ones_like(interior), atol=1e-6)
            point = torch.zeros(1, 2, 6, 6)
            point[0, 0, 3, 3] = 1
            out = up(point)[0, 0]
        peak = out.max()
        rows = torch.nonzero(out == peak)[:, 0].unique().tolist()
        centre = factor * 3 + factor / 2 - 0.5  # centre of input pixel 3 in output pixels
        assert np.mean(rows) == pytest.approx(centre)


def test_switches_unpool_correctly():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)
    pooled, idx = torch.nn.MaxPool2d(2, 2, return_indices=True)(x)
    up = max_unpool(pooled, idx)
    assert torch.equal(up, F.max_unpool2d(pooled, idx, 2))
    # every 2×2 window keeps exactly its maximum, in its place
    win = up.unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 3, 4, 4, 4)
    xwin = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 3, 4, 4, 4)
    assert torch.equal((win != 0).sum(-1), torch.ones(2, 3, 4, 4, dtype=torch.long))
    assert torch.equal((win != 0).float().argmax(-1), xwin.argmax(-1))
    assert torch.equal(win.sum(-1), xwin.max(-1).values)


def test_deconv_stream_uses_the_switches():
    """The DeconvNet output depends on where the pooling maxima were (not only their values): permuting the
    switches changes the output."""
    net = _lite().eval()
    with torch.no_grad():
        fc7, pooled, switches, sizes = net.encode(torch.rand(1, 3, 128, 128))
        a = net.deconv_stream(fc7, switches, sizes)
        flipped = [s ^ 1 for s in switches]  # move each maximum to its horizontal neighbour in the window
        b = net.deconv_stream(fc7, flipped, sizes)
    assert a.shape == (1, 2, 128, 128)
    assert not torch.allclose(a, b)


def test_loss_weighting_matches_manual():
    torch.manual_seed(2)
    outs = [torch.randn(3, 2, 16, 16) for _ in range(3)]
    target = torch.randint(0, 2, (3, 16, 16))
    total, parts = two_stream_loss(outs, target)
    assert LOSS_WEIGHTS == (0.5, 0.5, 1.0)

    def ce(logits):  # by hand: -log softmax of the true class, mean over pixels
        logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        return -logp.gather(1, target[:, None]).mean()

    manual = 0.5 * ce(outs[0]) + 0.5 * ce(outs[1]) + 1.0 * ce(outs[2])
    assert float(total) == pytest.approx(float(manual), rel=1e-5)
    assert [float(p) for p in parts] == pytest.approx([float(ce(o)) for o in outs], rel=1e-5)


def test_soft_targets_give_the_hard_loss_on_hard_labels_and_are_minimised_at_the_target():
    torch.manual_seed(3)
    outs = [torch.randn(2, 2, 16, 16) for _ in range(3)]
    target = torch.randint(0, 2, (2, 16, 16))
    hard, hard_parts = two_stream_loss(outs, target, iou_weight=1.0)
    soft, soft_parts = two_stream_loss(outs, target.float(), iou_weight=1.0)
    assert float(soft) == pytest.approx(float(hard), rel=1e-5)
    assert [float(p) for p in soft_parts] == pytest.approx([float(p) for p in hard_parts], rel=1e-5)
    # a soft target q: the cross-entropy is smallest where the network's probability equals q
    q = torch.full((1, 4, 4), 0.3)
    losses = {p: float(two_stream_loss([_logits_for(torch.full((1, 4, 4), p))] * 3, q)[0]) for p in (0.1, 0.3, 0.6)}
    assert losses[0.3] < losses[0.1] and losses[0.3] < losses[0.6]


def _logits_for(prob: torch.Tensor) -> torch.Tensor:
    """(N, H, W) face probabilities → (N, 2, H, W) logits whose softmax gives them back."""
    logit = torch.log(prob) - torch.log1p(-prob)
    return torch.stack([torch.zeros_like(logit), logit], 1)


def test_soft_iou_loss_weighs_each_face_alike():
    big = torch.zeros(1, 32, 32, dtype=torch.int64)
    big[:, 4:28, 4:28] = 1
    small = torch.zeros(1, 32, 32, dtype=torch.int64)
    small[:, 12:16, 12:16] = 1
    # the same share of each face missed: the IOU term sees the same loss, the cross-entropy sees the big face's
    # error 36 times over
    miss_big = torch.where(big.bool(), 1 - 1e-5, 1e-5).float()
    miss_big[:, 4:28, 4:10] = 1e-5
    miss_small = torch.where(small.bool(), 1 - 1e-5, 1e-5).float()
    miss_small[:, 12:16, 12:13] = 1e-5
    l_big = float(soft_iou_loss(_logits_for(miss_big), big))
    l_small = float(soft_iou_loss(_logits_for(miss_small), small))
    assert l_big == pytest.approx(0.25, abs=0.01) and l_small == pytest.approx(0.25, abs=0.01)
    ce_big = float(F.cross_entropy(_logits_for(miss_big), big))
    ce_small = float(F.cross_entropy(_logits_for(miss_small), small))
    assert ce_big > 20 * ce_small
    # a right answer costs nothing, and a face-free crop adds nothing (negatives are the CE's business)
    assert float(soft_iou_loss(_logits_for(torch.where(big.bool(), 1 - 1e-5, 1e-5).float()), big)) < 0.01
    empty = torch.zeros(2, 32, 32, dtype=torch.int64)
    assert float(soft_iou_loss(torch.randn(2, 2, 32, 32), empty)) == 0.0
    outs = [torch.randn(2, 2, 32, 32) for _ in range(3)]
    target = torch.cat([big, empty[:1]])
    base, _ = two_stream_loss(outs, target)
    with_iou, _ = two_stream_loss(outs, target, iou_weight=2.0)
    assert float(with_iou - base) == pytest.approx(2.0 * float(soft_iou_loss(outs[2], target)), rel=1e-5)


def test_lovasz_hinge_is_the_iou_loss_on_binary_answers():
    """With face scores ±1 (a hard answer), the hinge errors are 0 where right and 2 where wrong, and the Lovász
    extension there equals the set function it extends: 2 · (1 − IOU) of that answer, per crop, averaged."""
    rng = np.random.default_rng(3)
    target = torch.zeros(3, 24, 24, dtype=torch.int64)
    target[0, 4:20, 6:18] = 1
    target[1, 10:14, 10:14] = 1  # a small face weighs as much as a big one
    answer = target.clone()
    answer[0, 4:20, 6:9] = 0  # a quarter of face 0 missed
    answer[1, 8:10, 10:14] = 1  # face 1 overgrown by half
    flip = torch.from_numpy(rng.random((24, 24)) < 0.1)
    answer[2] = flip.long()  # crop 2 has no face: it adds nothing
    logits = torch.stack([torch.zeros(3, 24, 24), 2.0 * answer.float() - 1.0], 1)
    ious = [float((answer[i] & target[i]).sum() / (answer[i] | target[i]).sum()) for i in range(2)]
    expected = np.mean([2 * (1 - v) for v in ious])
    assert float(lovasz_hinge_loss(logits, target)) == pytest.approx(expected, rel=1e-5)
    confident = torch.stack([torch.zeros(3, 24, 24), 5.0 * (2.0 * target.float() - 1.0)], 1)
    assert float(lovasz_hinge_loss(confident, target)) == 0.0  # right beyond the margin: nothing to learn
    assert float(lovasz_hinge_loss(logits, torch.zeros_like(target))) == 0.0
    outs = [torch.randn(3, 2, 24, 24) for _ in range(3)]
    base, _ = two_stream_loss(outs, target)
    with_iou, _ = two_stream_loss(outs, target, iou_weight=2.0, iou_surrogate="lovasz")
    assert float(with_iou - base) == pytest.approx(2.0 * float(lovasz_hinge_loss(outs[2], target)), rel=1e-5)
    x = (0.01 * torch.randn(3, 2, 24, 24)).requires_grad_()
    lovasz_hinge_loss(x, target).backward()
    face_grad = x.grad[:, 1]  # descent raises the face score on the face, lowers it elsewhere
    assert float(face_grad[0][target[0].bool()].max()) <= 0 <= float(face_grad[0][~target[0].bool()].min())
    assert float(face_grad[0][target[0].bool()].sum()) < 0 < float(face_grad[0][~target[0].bool()].sum())


def _sgd_steps(net, steps, lr, *, params=None, weight_decay=0.0, n=4, seed=3) -> list[float]:
    """`steps` SGD steps (momentum 0.9) of the paper's loss on `n` hand-made crops; the losses."""
    imgs, masks = _crops(n, seed=seed)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(masks.astype(np.int64))
    opt = torch.optim.SGD(net.parameters() if params is None else params, lr=lr, momentum=0.9,
                          weight_decay=weight_decay)
    net.train()
    losses = []
    for _ in range(steps):
        loss, _ = two_stream_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_sgd_steps_reduce_loss():
    losses = _sgd_steps(_lite(3), 10, 0.01, weight_decay=5e-4)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.8 * losses[0]


def test_batchnorm_folding_keeps_the_function():
    net = _lite(7).train()
    with torch.no_grad():  # move BN statistics and affine parameters away from identity
        net(torch.rand(4, 3, 128, 128))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.eval()
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(net(x), folded(x), atol=1e-4)


def _perturbed_statistics(net):
    """Move the BatchNorm statistics and affine parameters away from identity (as a trained net has them)."""
    with torch.no_grad():
        net.train()(torch.rand(4, 3, 128, 128))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_per_block_channels_build_and_round_trip(tmp_path):
    torch.manual_seed(1)
    net = TwoStreamNet(0.125, 512, channels=(8, 16, 32, 64, 128)).eval()
    assert net.channels == [8, 16, 32, 64, 128] and net.config["channels"] == [8, 16, 32, 64, 128]
    assert net.fc6[0].in_channels == 128 and net.decoder[0][0].in_channels == 128
    assert net.decoder[0][-3].out_channels == 64  # block 5's decoder ends at block 4's width
    assert build(net.config).channels == net.channels
    path = str(tmp_path / "seg.pt")
    save_model(net, path, {})
    net2, _ = load_model(path)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(net(x), net2(x))
    with pytest.raises(ValueError, match="five|5"):
        TwoStreamNet(channels=(8, 16, 32))


def test_widening_keeps_the_function_and_the_new_channels_learn():
    narrow = _perturbed_statistics(_lite(3))
    torch.manual_seed(9)
    wide = TwoStreamNet(0.125, 512, channels=(8, 16, 32, 96, 128))
    wide.load_state_dict(widen_state_dict(wide, narrow.state_dict()))
    wide.eval()
    x = torch.rand(3, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(narrow(x), wide(x), atol=1e-5)
        for a, b in zip(narrow.streams(x), wide.streams(x)):
            assert torch.allclose(a, b, atol=1e-4)
    # the weights reading the new channels start at zero but get gradients, so training can use them
    wide.train()
    total, _ = two_stream_loss(wide(x), torch.randint(0, 2, (3, 128, 128)))
    total.backward()
    reader = wide.fc6[0].weight  # reads block 5: 64 old channels, 64 new
    assert float(reader.detach()[:, 64:].abs().max()) == 0.0
    assert float(reader.grad[:, 64:].abs().max()) > 0.0
    with pytest.raises(ValueError, match="widen"):
        widen_state_dict(_lite(), wide.state_dict())  # narrowing is not widening


def test_split_widening_copies_trained_channels():
    narrow = _perturbed_statistics(_lite(3))
    wide = TwoStreamNet(0.125, 512, channels=(16, 16, 32, 96, 128))
    x = torch.rand(3, 3, 128, 128)
    wide.load_state_dict(widen_state_dict(wide, narrow.state_dict(), split=True))
    wide.eval()
    with torch.no_grad():
        assert torch.allclose(narrow(x), wide(x), atol=1e-5)
        for a, b in zip(narrow.streams(x), wide.streams(x)):
            assert torch.allclose(a, b, atol=1e-4)
    sd, old = wide.state_dict(), narrow.state_dict()
    # each new channel of block 1 (8 → 16) copies a different old one, BatchNorm statistics included
    mean = sd["trunk.0.1.running_mean"]
    assert torch.equal(mean[:8], old["trunk.0.1.running_mean"])
    assert sorted(mean[8:].tolist()) == sorted(mean[:8].tolist())
    # a reader of block 1 shares each old channel's weight among its copies: the sums over copies are the old weights
    reader, old_reader = sd["trunk.1.0.weight"], old["trunk.1.0.weight"]
    assert torch.allclose(reader[:, :8] * 2, old_reader)
    # with noise the copies start apart from their originals (or they would get the same gradients forever), and
    # the masks barely move
    wide.load_state_dict(widen_state_dict(wide, old, split=True, noise=0.01, seed=1))
    w = wide.state_dict()["trunk.0.0.weight"]
    assert not any(torch.equal(w[j], w[i]) for j in range(8, 16) for i in range(8))
    with torch.no_grad():
        assert float((narrow(x) - wide.eval()(x)).abs().mean()) < 1e-3


def test_save_load_round_trip(tmp_path):
    net = _lite(4).eval()
    path = str(tmp_path / "seg.pt")
    save_model(net, path, {"status": "test"})
    net2, meta = load_model(path)
    assert meta == {"status": "test"}
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(net(x), net2(x))
    seg = Segmenter.load(path, device="cpu")
    imgs, _ = _crops(3, seed=4)
    prob = seg.predict(imgs)
    assert prob.shape == (3, 128, 128) and prob.dtype == np.float32
    assert seg.predict(imgs[0]).shape == (128, 128)


def test_corrupt_missing_and_wrong_version_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(ModelFileError) as e:
        Segmenter.load(str(bad))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    missing = str(tmp_path / "none.pt")
    with pytest.raises(ModelFileError, match="none.pt"):
        Segmenter.load(missing)
    net = _lite()
    path = str(tmp_path / "v.pt")
    save_model(net, path)
    blob = torch.load(path, weights_only=True)
    blob["version"] = 99
    torch.save(blob, path)
    with pytest.raises(ModelFileError, match="version 99"):
        load_model(path)
    blob["version"] = 1
    blob["config"]["width"] = 0.25  # weights no longer fit
    torch.save(blob, path)
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(path)
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match="bad.onnx"):
        Segmenter.load(str(bad_onnx))


def test_onnx_matches_torch(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    net = _lite(5)
    _sgd_steps(net, 3, 0.01, n=8, seed=5)  # BatchNorm statistics and weights away from their initial values
    net.eval()
    path = str(tmp_path / "seg.onnx")
    export_onnx(net, path, {"status": "test"})
    ort_seg = Segmenter.load(path, threads=1)
    torch_seg = Segmenter(net, device="cpu")
    assert ort_seg.backend == "onnxruntime" and ort_seg.meta == {"status": "test"}
    test_imgs, _ = _crops(5, seed=6)
    p_ort = ort_seg.predict(test_imgs)
    p_torch = torch_seg.predict(test_imgs)
    assert p_ort.shape == p_torch.shape == (5, 128, 128)
    assert np.abs(p_ort - p_torch).max() < 1e-4
    assert ((p_ort >= 0.5) == (p_torch >= 0.5)).mean() > 0.999
    assert ort_seg.predict(test_imgs[:1]).shape == (1, 128, 128)
    ort_seg.views = torch_seg.views = 2  # the views run through either backend alike
    assert np.abs(ort_seg.predict(test_imgs) - torch_seg.predict(test_imgs)).max() < 1e-4


def test_refine_head_starts_as_the_network_and_trains_alone(tmp_path):
    base = _perturbed_statistics(_lite(3))
    net = TwoStreamNet(**LITE, refine=4)
    assert net.config["refine"] == 4
    net.load_state_dict({**net.state_dict(), **base.state_dict()})
    x = torch.rand(3, 3, 128, 128)
    with torch.no_grad():  # the head's last layer starts at zero: the paper's network unchanged
        assert torch.equal(net.eval()(x), base(x))
        assert torch.equal(net.paper_streams(x)[2], base.streams(x)[2])
    net.freeze_base()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert trainable and all(p.requires_grad == n.startswith("refine.") for n, p in net.named_parameters())
    net.train()
    assert not net.trunk[0][1].training and net.refine.body[1].training  # frozen BatchNorm keeps its statistics
    losses = _sgd_steps(net, 12, 0.05, params=trainable)
    assert losses[-1] < losses[0]
    after = net.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("refine.") for k in changed)
    with pytest.raises(ValueError, match="no refinement head"):
        _lite().freeze_base()
    # the head survives the file round trip and the ONNX export (what the add-on runs)
    net.eval()
    save_model(net, str(tmp_path / "r.pt"), {})
    loaded, _ = load_model(str(tmp_path / "r.pt"))
    assert loaded.config["refine"] == 4
    test_imgs, _ = _crops(3, seed=4)
    p_torch = Segmenter(net, device="cpu").predict(test_imgs)
    assert np.allclose(Segmenter(loaded, device="cpu").predict(test_imgs), p_torch, atol=1e-6)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        export_onnx(net, str(tmp_path / "r.onnx"), {})
        assert np.abs(Segmenter.load(str(tmp_path / "r.onnx"), threads=1).predict(test_imgs) - p_torch).max() < 1e-4
    folded = fold_batchnorm(net)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-4)


def test_two_views_average_the_crop_with_its_enlarged_mirrored_centre():
    seg = Segmenter(_lite(7).eval(), device="cpu")
    imgs, _ = _crops(3, seed=8)
    plain = seg.predict(imgs)
    zoomed = zoom_in(imgs)
    assert zoomed.shape == imgs.shape and zoomed.dtype == np.uint8
    centre = zoom_out(seg.predict(np.ascontiguousarray(zoomed[:, :, ::-1]))[:, :, ::-1])
    seg.views = 2
    both = seg.predict(imgs)
    assert both.shape == (3, 128, 128) and seg.predict(imgs[0]).shape == (128, 128)
    o, z = (128 - ZOOM_SIDE) // 2, ZOOM_SIDE
    inner = np.zeros((128, 128), bool)
    inner[o:o + z, o:o + z] = True
    np.testing.assert_allclose(both[:, ~inner], plain[:, ~inner], atol=1e-6)  # the border: the crop's view alone
    expected = (1 - ZOOM_WEIGHT) * plain[:, inner] + ZOOM_WEIGHT * centre.reshape(3, -1)  # the zoomed view counts more
    np.testing.assert_allclose(both[:, inner], expected, atol=1e-5)
    assert np.abs(both - plain).max() > 1e-3


def test_four_views_make_the_mask_of_a_mirrored_crop_the_mirrored_mask():
    seg = Segmenter(_lite(7).eval(), device="cpu")
    imgs, _ = _crops(3, seed=9)
    mirrored = np.ascontiguousarray(imgs[:, :, ::-1])
    assert np.abs(seg.predict(mirrored)[:, :, ::-1] - seg.predict(imgs)).max() > 1e-3  # not so with one view
    seg.views = 4
    four = seg.predict(imgs)
    np.testing.assert_allclose(seg.predict(mirrored), four[:, :, ::-1], atol=1e-5)
    assert np.all((four >= 0) & (four <= 1))
    seg.views = 3
    with pytest.raises(ValueError, match="views"):
        seg.predict(imgs)


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import sys, facecap_core.segment; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "False", out.stderr


def test_soup_averages_weights_and_refuses_other_networks(tmp_path, capsys):
    from facecap_core.segment.soup import main as soup

    a, b = _perturbed_statistics(_lite(1)), _perturbed_statistics(_lite(2))
    pa, pb = save_model(a, str(tmp_path / "a.pt")), save_model(b, str(tmp_path / "b.pt"))
    out = str(tmp_path / "soup.pt")
    assert soup([out, pa, pb, "--weights", "1,3"]) == 0
    mixed, meta = load_model(out)
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in mixed.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, 0.25 * sa[k] + 0.75 * sb[k], atol=1e-6), k
    assert "0.750" in meta["soup"] and os.path.isfile(str(tmp_path / "soup.onnx"))
    shipped = str(tmp_path / "ship.pt")  # a soup to ship carries its own recipe, not its first model's
    assert soup([shipped, pa, pb, "--recipe", "a and b, half each", "--iterations", "1234"]) == 0
    _, meta = load_model(shipped)
    assert meta["recipe"] == "a and b, half each" and meta["iterations"] == 1234 and len(meta["averaged"]) == 2
    other = save_model(TwoStreamNet(0.125, 512, channels=(8, 16, 32, 64, 128)), str(tmp_path / "c.pt"))
    assert soup([str(tmp_path / "bad.pt"), pa, other]) == 2
    assert "not the same network" in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "bad.pt"))
