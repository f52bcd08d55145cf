"""The two-stream segmentation network of Saito, Li & Li (ECCV 2016), §3 / Fig. 3 (paper-notes "Segmentation network").

    input (N, 3, 128, 128) float32 RGB in [0, 1]
      │
    trunk (VGG-16):   conv1_1..1_2 → pool1 (64²)   conv2_x → pool2 (32²)   conv3_x → pool3 (16²)
                      conv4_x → pool4 (8²)         conv5_x → pool5 (4²)    (max-pools keep their switches)
                      fc6 = 4×4 convolution (4² → 1²), fc7 = 1×1 convolution
      ├─ DeconvNet stream: deconv6 (1² → 4²) → unpool5 (switches of pool5) → deconv5_x → unpool4 → deconv4_x
      │                    → unpool3 → deconv3_x → unpool2 → deconv2_x → unpool1 → deconv1_x → score (2, 128²)
      ├─ FCN-8s stream:    score_pool5 (4²) ─up×2→ + score_pool4 (8²) ─up×2→ + score_pool3 (16²) ─up×8→ (2, 128²)
      │                    (the coarsest prediction comes from pool5, not fc7, as in the paper)
      └─ fusion: concat(deconv score, fcn score) (4, 128²) → 1×1 conv → (2, 128²) → softmax

Every upsampling is a transposed convolution with kernel 2s, stride s and padding s/2, so output pixel centres
fall on the input grid's centres scaled by s: each upsampled map aligns with the pooling layer it meets, and no
cropping offsets (the original FCN's pad-100 trick) are needed. The upsamplers start as bilinear interpolation
and are learned. The DeconvNet stream's "deconvolution" layers at stride 1 are 3×3 convolutions (a stride-1
transposed 3×3 convolution is a 3×3 convolution with a flipped kernel: the same function class).

Changes from the paper, both because no ImageNet-pretrained VGG can be downloaded here and the network is trained
from scratch: BatchNorm after every convolution of the trunk and the DeconvNet stream (``batchnorm=True``; folded
into the convolutions by onnxruntime at export, so free at inference), and He-normal initialisation instead of
the paper's Gaussian/VGG init.

`width` scales every channel count (1.0 = the paper's 64-128-256-512-512) and `fc_width` is fc6/fc7's width
(paper: 4096), so the same class builds the full network and the small CPU one (`LITE`). `channels` (five
numbers, one per block) overrides `width` block by block: on the CPU a channel costs far more time in the
full-resolution blocks than in the 16² and 8² ones, so a CPU network can be narrow at the top and wider deep down.
`refine` (channels; 0 = none, the paper's network) adds `RefineHead`, beyond the paper: a correction of the fused
scores at full resolution from the crop itself (it did not improve the lite network: models/segmenter_lite_history.md,
"A full-resolution refinement head").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels, convolutions) per block
INPUT_SIZE = 128
NUM_CLASSES = 2  # 0 = non-face, 1 = face (design §5)
LOSS_WEIGHTS = (0.5, 0.5, 1.0)  # DeconvNet, FCN-8s, fused (paper)

FULL = {"width": 1.0, "fc_width": 4096}
LITE = {"width": 0.125, "fc_width": 256}  # chosen by measurement: benchmarks/bench_segment_net.py


def scaled_channels(channels: int, width: float) -> int:
    """`channels` × `width`, rounded to a multiple of 4 (at least 4)."""
    return max(4, int(round(channels * width / 4.0)) * 4)


def checked_channels(channels) -> list[int]:
    """Per-block channel counts as a list of ints; ValueError unless there is one positive count per VGG block."""
    channels = [int(c) for c in channels]
    if len(channels) != len(VGG_BLOCKS) or min(channels) < 1:
        raise ValueError(f"channels needs {len(VGG_BLOCKS)} positive counts (one per VGG block), got {channels}")
    return channels


def _conv_chain(channels: list[int], batchnorm: bool, dilations=None) -> nn.Sequential:
    """3×3 convolutions (+ BN) + ReLU through the channel list [c_in, c_1, ..., c_out], each at its dilation
    (default 1), the spatial size kept."""
    layers = []
    for c_in, c_out, d in zip(channels[:-1], channels[1:], dilations or [1] * (len(channels) - 1)):
        layers.append(nn.Conv2d(c_in, c_out, 3, padding=d, dilation=d, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv_block(c_in: int, c_out: int, n: int, batchnorm: bool) -> nn.Sequential:
    """A VGG block: n 3×3 convolutions, the first from c_in channels."""
    return _conv_chain([c_in] + [c_out] * n, batchnorm)


def _decoder_block(channels: list[int], batchnorm: bool) -> nn.Sequential:
    """3×3 'deconvolutions' (stride 1) + BN + ReLU through the channel list [c_in, c_1, ..., c_out]."""
    return _conv_chain(channels, batchnorm)


def max_unpool(y: torch.Tensor, switches: torch.Tensor) -> torch.Tensor:
    """2×2 max-unpooling by the pooling switches: y (N, C, H, W), switches (N, C, H, W) int64 flat indices into
    the (2H, 2W) plane (as returned by `nn.MaxPool2d(2, 2, return_indices=True)`) → (N, C, 2H, 2W), each value
    put back where its maximum came from, zeros elsewhere (= `F.max_unpool2d(y, switches, 2)`). Calls the aten op
    directly: `F.max_unpool2d`'s Python size check cannot be traced by the ONNX exporter; `export_onnx` maps the
    pair (max_pool2d_with_indices, max_unpool2d) to ONNX MaxPool/MaxUnpool."""
    return torch.ops.aten.max_unpool2d(y, switches, [y.shape[-2] * 2, y.shape[-1] * 2])


def face_probability(logits: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) logits → (N, H, W) softmax probability of class 1 (face), as sigmoid(l1 − l0): the same
    number as the 2-class softmax, cheaper (no reduction over channels)."""
    return torch.sigmoid(logits[:, 1].float() - logits[:, 0].float())


def upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Learned ×`factor` upsampling (kernel 2f, stride f, padding f/2: output size = input size × f, centres
    aligned), initialised to bilinear interpolation of each channel."""
    k = 2 * factor
    up = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=factor // 2, bias=False)
    centre = (k - 1) / 2.0
    og = torch.arange(k, dtype=torch.float32)
    filt1 = 1 - torch.abs(og - centre) / factor
    filt = filt1[:, None] * filt1[None, :]
    with torch.no_grad():
        up.weight.zero_()
        for c in range(channels):
            up.weight[c, c] = filt
    return up


class TwoStreamNet(nn.Module):
    """Saito et al.'s two-stream network (module docstring). forward(x (N, 3, 128, 128) float32 RGB in [0, 1]):
    training → (deconv, fcn, fused) logits, each (N, 2, 128, 128); eval → face probability (N, 128, 128)."""

    def __init__(self, width: float = 1.0, fc_width: int = 4096, *, batchnorm: bool = True,
                 num_classes: int = NUM_CLASSES, channels=None, refine: int = 0):
        super().__init__()
        self.config = {"width": float(width), "fc_width": int(fc_width), "batchnorm": bool(batchnorm),
                       "num_classes": int(num_classes)}
        if refine:
            self.config["refine"] = int(refine)
        if channels is not None:
            self.config["channels"] = checked_channels(channels)
            ch = list(self.config["channels"])
        else:
            ch = [scaled_channels(c, width) for c, _ in VGG_BLOCKS]
        self.channels = ch
        # ---- trunk
        blocks, c_in = [], 3
        for (_, n), c in zip(VGG_BLOCKS, ch):
            blocks.append(_conv_block(c_in, c, n, batchnorm))
            c_in = c
        self.trunk = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.fc6 = nn.Sequential(nn.Conv2d(ch[4], fc_width, 4), nn.ReLU(inplace=True))  # 4×4 "fully connected"
        self.fc7 = nn.Sequential(nn.Conv2d(fc_width, fc_width, 1), nn.ReLU(inplace=True))
        # ---- DeconvNet stream (mirror of the trunk)
        deconv6 = [nn.ConvTranspose2d(fc_width, ch[4], 4, bias=not batchnorm)]  # 1² → 4²
        if batchnorm:
            deconv6.append(nn.BatchNorm2d(ch[4]))
        self.deconv6 = nn.Sequential(*deconv6, nn.ReLU(inplace=True))
        dec = []
        for b in range(4, -1, -1):  # block 5 .. block 1: n convs, the last one maps to the previous block's width
            n = VGG_BLOCKS[b][1]
            c_out = ch[b - 1] if b > 0 else ch[0]
            dec.append(_decoder_block([ch[b]] * n + [c_out], batchnorm))
        self.decoder = nn.ModuleList(dec)
        self.score_deconv = nn.Conv2d(ch[0], num_classes, 1)
        # ---- FCN-8s stream (coarsest prediction from pool5)
        self.score_pool5 = nn.Conv2d(ch[4], num_classes, 1)
        self.score_pool4 = nn.Conv2d(ch[3], num_classes, 1)
        self.score_pool3 = nn.Conv2d(ch[2], num_classes, 1)
        self.up_pool5 = upsampler(num_classes, 2)  # 4² → 8² (meets pool4)
        self.up_pool4 = upsampler(num_classes, 2)  # 8² → 16² (meets pool3)
        self.up_final = upsampler(num_classes, 8)  # 16² → 128²
        # ---- fusion
        self.fuse = nn.Conv2d(2 * num_classes, num_classes, 1)
        self._init_weights()
        # ---- beyond the paper: the fused scores corrected at full resolution from the image (RefineHead)
        self.refine = RefineHead(int(refine), num_classes, batchnorm) if refine else None
        self.base_frozen = False

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.kaiming_normal_(self.deconv6[0].weight, mode="fan_in", nonlinearity="relu")
        for m in (self.score_deconv, self.score_pool5, self.score_pool4, self.score_pool3):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        # fusion starts as the average of the two streams' scores
        with torch.no_grad():
            self.fuse.weight.zero_()
            k = self.config["num_classes"]
            for c in range(k):
                self.fuse.weight[c, c] = 0.5
                self.fuse.weight[c, k + c] = 0.5
            self.fuse.bias.zero_()

    # ------------------------------------------------------------------------------------------------ parts
    def encode(self, x: torch.Tensor):
        """Trunk. x (N, 3, 128, 128) → (fc7 (N, F, 1, 1), pooled maps [pool1..pool5], switches [idx1..idx5],
        pre-pool sizes)."""
        x = (x - 0.5) * 4.0
        pooled, switches, sizes = [], [], []
        for block in self.trunk:
            x = block(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            pooled.append(x)
            switches.append(idx)
        f = self.fc7(self.fc6(x))
        return f, pooled, switches, sizes

    def deconv_stream(self, fc7, switches, sizes) -> torch.Tensor:
        y = self.deconv6(fc7)
        for i, block in enumerate(self.decoder):
            b = 4 - i
            y = max_unpool(y, switches[b])
            y = block(y)
        return self.score_deconv(y)

    def fcn_stream(self, pooled) -> torch.Tensor:
        s = self.up_pool5(self.score_pool5(pooled[4])) + self.score_pool4(pooled[3])
        s = self.up_pool4(s) + self.score_pool3(pooled[2])
        return self.up_final(s)

    def paper_streams(self, x: torch.Tensor):
        """The paper's network: logits of both streams and their fusion, (deconv, fcn, fused), each (N, 2, H, W)."""
        fc7, pooled, switches, sizes = self.encode(x)
        d = self.deconv_stream(fc7, switches, sizes)
        f = self.fcn_stream(pooled)
        fused = self.fuse(torch.cat([d, f], dim=1))
        return d, f, fused

    def streams(self, x: torch.Tensor):
        """(deconv, fcn, output) logits, each (N, 2, H, W): the output is the fusion, refined by the
        `RefineHead` when the network has one."""
        d, f, fused = self.paper_streams(x)
        if self.refine is not None:
            fused = self.refine(x, fused)
        return d, f, fused

    def freeze_base(self) -> None:
        """Train only the RefineHead: every other weight fixed, its BatchNorm statistics too (see `train`)."""
        if self.refine is None:
            raise ValueError("freeze_base: this network has no refinement head")
        self.base_frozen = True
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith("refine."))
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.base_frozen:
            for name, child in self.named_children():
                if name != "refine":
                    child.eval()
        return self

    def forward(self, x: torch.Tensor):
        d, f, fused = self.streams(x)
        if self.training:
            return d, f, fused
        return face_probability(fused)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class RefineHead(nn.Module):
    """Beyond the paper: a residual correction of the fused scores at full resolution, computed from the crop
    and the fused face probability. The paper's DeconvNet stream sees the image at 128² only through the pooling
    switches and its FCN stream upsamples from 16², so neither can place an outline to the pixel or draw the
    1–3-pixel slivers of face between fingers; the graph cut (Eq. 1) then follows image edges only where the
    network leaves it room. Four 3×3 convolutions (dilations 1, 2, 4, 1: a 17-pixel receptive field) of
    `channels` channels on (normalised RGB, face probability) → a 2-class correction added to the fused logits.
    The last layer starts at zero, so a head added to a trained network starts as that network."""

    def __init__(self, channels: int, num_classes: int = NUM_CLASSES, batchnorm: bool = True):
        super().__init__()
        self.body = _conv_chain([3 + 1] + [channels] * 3, batchnorm, dilations=(1, 2, 4))
        self.out = nn.Conv2d(channels, num_classes, 3, padding=1)
        for m in self.body.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        p = face_probability(fused).unsqueeze(1).to(x.dtype)
        features = torch.cat([(x - 0.5) * 4.0, (p - 0.5) * 4.0], dim=1)  # the trunk's input scaling
        return fused + self.out(self.body(features)).to(fused.dtype)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the crops that hold any face of 1 − soft IOU(face probability, target); 0 when none does.
    The metric (design §8) is an IOU per image, averaged: a face half hidden by a hand counts as much as a clean
    one although it has half the pixels, which a per-pixel cross-entropy weighs half as much."""
    return soft_iou_of_probability(face_probability(logits), target)


def soft_iou_of_probability(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`soft_iou_loss` of a face probability (N, H, W) rather than logits."""
    g = target.float()
    has_face = g.flatten(1).sum(1) > 0
    if not bool(has_face.any()):
        return p.sum() * 0.0
    inter = (p * g).flatten(1).sum(1)
    union = (p + g - p * g).flatten(1).sum(1)
    return (1.0 - inter / union.clamp_min(1e-6))[has_face].mean()


def lovasz_hinge_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the crops that hold any face of the Lovász hinge of the face score l1 − l0 (Berman, Rannen
    Triki & Blaschko, CVPR 2018): the convex extension of 1 − IOU, evaluated on the hinge errors sorted from the
    worst; 0 when no crop has a face. Soft targets are cut at 0.5 (the surrogate needs a binary set)."""
    score = (logits[:, 1] - logits[:, 0]).float().flatten(1)
    g = (target >= 0.5 if target.is_floating_point() else target > 0).float().flatten(1)
    has_face = g.sum(1) > 0
    if not bool(has_face.any()):
        return score.sum() * 0.0
    score, g = score[has_face], g[has_face]
    errors = 1.0 - score * (2.0 * g - 1.0)
    errors, order = torch.sort(errors, dim=1, descending=True)
    g = torch.gather(g, 1, order)
    # Jaccard loss of the prefixes of the sorted pixels; its increments are the gradient of the extension
    total = g.sum(1, keepdim=True)
    jaccard = 1.0 - (total - g.cumsum(1)) / (total + (1.0 - g).cumsum(1))
    grad = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
    return (F.relu(errors) * grad).sum(1).mean()


IOU_SURROGATES = {"soft": soft_iou_loss, "lovasz": lovasz_hinge_loss}


def two_stream_loss(outputs, target: torch.Tensor, weights=LOSS_WEIGHTS, iou_weight: float = 0.0,
                    iou_surrogate: str = "soft"):
    """The paper's loss: Σ w_k · CE(logits_k, target) over (deconv, fcn, fused), w = (0.5, 0.5, 1.0), plus
    `iou_weight` · an IOU surrogate of the fused output (`IOU_SURROGATES`: soft IOU or Lovász hinge; weight 0 =
    the paper's loss). outputs: three (N, 2, H, W) logits; target (N, H, W) int64 class ids, or float face
    probabilities in [0, 1] (soft targets, as distillation makes).
    Returns (total, [ce_deconv, ce_fcn, ce_fused]) with the parts detached."""
    ce_target = torch.stack([1.0 - target, target], 1) if target.is_floating_point() else target
    parts = [F.cross_entropy(o.float(), ce_target) for o in outputs]
    total = sum(w * p for w, p in zip(weights, parts))
    if iou_weight:
        total = total + iou_weight * IOU_SURROGATES[iou_surrogate](outputs[2], target)
    return total, [p.detach() for p in parts]


def zoomed_mirrored_view(x: torch.Tensor, side: int) -> torch.Tensor:
    """(N, C, S, S) crops (or (N, S, S) integer labels, nearest) → their centre side × side window enlarged to
    S × S and mirrored: the second of `Segmenter.views = 2`, differentiable, for training."""
    size, o = x.shape[-1], (x.shape[-1] - side) // 2
    window = x[..., o:o + side, o:o + side]
    if x.is_floating_point():
        return F.interpolate(window, size=(size, size), mode="bilinear", align_corners=False).flip(-1)
    return F.interpolate(window[:, None].float(), size=(size, size), mode="nearest")[:, 0].to(x.dtype).flip(-1)


def two_view_probability(fused_crop: torch.Tensor, fused_zoomed: torch.Tensor, side: int,
                         zoom_weight: float) -> torch.Tensor:
    """The face probability (N, S, S) that `Segmenter.views = 2` gives, from the fused logits of the crop and of
    its zoomed_mirrored_view: inside the centre window their mean with the zoomed view weighing `zoom_weight`, the
    crop's alone outside it."""
    p_crop = face_probability(fused_crop)
    size, o = p_crop.shape[-1], (p_crop.shape[-1] - side) // 2
    p_zoom = F.interpolate(face_probability(fused_zoomed).flip(-1)[:, None], size=(side, side), mode="area")[:, 0]
    inside = torch.zeros(size, size, device=p_crop.device)
    inside[o:o + side, o:o + side] = zoom_weight
    return p_crop * (1 - inside) + F.pad(p_zoom, (o, size - side - o, o, size - side - o)) * inside


def two_view_loss(outputs, target: torch.Tensor, side: int, zoom_weight: float, iou_weight: float) -> torch.Tensor:
    """Cross-entropy + `iou_weight` · (1 − soft IOU) of the two-view probability, `outputs` being the network's
    three logits on the batch [crops; their zoomed_mirrored_view] (2N crops)."""
    n = len(target)
    p = two_view_probability(outputs[2][:n], outputs[2][n:], side, zoom_weight).clamp(1e-6, 1 - 1e-6)
    loss = F.binary_cross_entropy(p, target.float())
    return loss + iou_weight * soft_iou_of_probability(p, target) if iou_weight else loss


def uint8_to_input(crops: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB → (N, 3, H, W) float32 in [0, 1]."""
    return crops.permute(0, 3, 1, 2).float().div(255.0)


class UInt8Segmenter(nn.Module):
    """The exported graph: crops (N, 128, 128, 3) uint8 RGB → face probability (N, 128, 128) float32, so an
    onnxruntime client needs nothing but NumPy."""

    def __init__(self, net: TwoStreamNet):
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        d, f, fused = self.net.streams(uint8_to_input(crops))
        return face_probability(fused)


def fold_batchnorm(net: TwoStreamNet) -> TwoStreamNet:
    """A copy of `net` for inference with every BatchNorm folded into the (transposed) convolution before it
    (eval-mode statistics) and replaced by Identity: the same function, fewer passes over memory on the CPU
    (onnxruntime does this fold itself)."""
    import copy  # noqa: PLC0415

    net = copy.deepcopy(net).eval()
    with torch.no_grad():
        for seq in net.modules():
            if not isinstance(seq, nn.Sequential):
                continue
            for i in range(1, len(seq)):
                conv, bn = seq[i - 1], seq[i]
                if not isinstance(bn, nn.BatchNorm2d) or not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                    continue
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                if isinstance(conv, nn.ConvTranspose2d):  # weight (in, out, kh, kw)
                    conv.weight.mul_(scale[None, :, None, None])
                else:  # weight (out, in, kh, kw)
                    conv.weight.mul_(scale[:, None, None, None])
                conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
                seq[i] = nn.Identity()
    return net


def build(config: dict) -> TwoStreamNet:
    """A TwoStreamNet from a config dict (width, fc_width, batchnorm, num_classes, optional channels, refine)."""
    return TwoStreamNet(config.get("width", 1.0), config.get("fc_width", 4096),
                        batchnorm=config.get("batchnorm", True), num_classes=config.get("num_classes", NUM_CLASSES),
                        channels=config.get("channels"), refine=config.get("refine", 0))


def widen_state_dict(net: TwoStreamNet, old: dict, *, split: bool = False, noise: float = 0.0,
                     seed: int = 0) -> dict:
    """`net`'s state dict with a narrower network's weights `old` (same layer names, every dimension ≤) put into it
    so that `net` computes the same function as the narrow network at the start. Two ways (Net2WiderNet-style):

    - default: each tensor keeps `net`'s fresh initialisation outside the copied block and the weights that *read*
      a new channel are zeroed, so a new channel carries random activations but changes nothing until training
      gives it a use;
    - `split`: every new channel is a copy of an old one (chosen at random, each old channel at most once while
      there are unused ones), with its BatchNorm parameters and statistics, and every layer that reads a copied
      channel divides that channel's weights among its copies. The new channels start as trained features
      rather than noise; `noise` (relative to each weight tensor's standard deviation) is added to the copies'
      incoming weights, or the copies would receive identical gradients and never differ.

    Channel maps are keyed by (narrow size, wide size), so a map is shared by every tensor dimension of that
    pair: what produces a feature map and what reads it (and the max-unpooling switches, which pair encoder and
    decoder channels by index) stay consistent."""
    new = net.state_dict()
    modules = dict(net.named_modules())
    for name, t in new.items():
        if name not in old:
            raise ValueError(f"widen: the narrow network has no {name}")
        o = old[name]
        if o.dim() != t.dim() or any(a > b for a, b in zip(o.shape, t.shape)):
            raise ValueError(f"widen: {name} is {tuple(o.shape)} in the narrow network, {tuple(t.shape)} here")
    if split:
        return _split_widen(new, old, modules, noise, seed)
    out = {}
    for name, t in new.items():
        o = old[name]
        w = t.clone()
        if o.dim() == 0:
            w = o.clone()
        else:
            w[tuple(slice(0, n) for n in o.shape)] = o
        module = modules.get(name.rsplit(".", 1)[0])
        if name.endswith("weight") and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            in_dim = 0 if isinstance(module, nn.ConvTranspose2d) else 1
            index = [slice(None)] * w.dim()
            index[in_dim] = slice(o.shape[in_dim], None)
            w[tuple(index)] = 0.0
        out[name] = w
    return out


def _split_widen(new: dict, old: dict, modules: dict, noise: float, seed: int) -> dict:
    """widen_state_dict(split=True): see there."""
    gen = torch.Generator().manual_seed(seed)
    maps: dict[tuple[int, int], torch.Tensor] = {}  # (narrow, wide) → wide index → narrow index

    def channel_map(n_old: int, n_new: int) -> torch.Tensor:
        if (n_old, n_new) not in maps:
            extra = []
            while len(extra) < n_new - n_old:  # every old channel once before any twice
                extra += torch.randperm(n_old, generator=gen).tolist()
            maps[(n_old, n_new)] = torch.tensor(list(range(n_old)) + extra[:n_new - n_old])
        return maps[(n_old, n_new)]

    out = {}
    for name, t in new.items():
        o = old[name]
        if o.dim() == 0 or o.shape == t.shape:
            out[name] = o.clone()
            continue
        module = modules.get(name.rsplit(".", 1)[0])
        is_conv_weight = name.endswith("weight") and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
        out_dim, in_dim = (1, 0) if isinstance(module, nn.ConvTranspose2d) else (0, 1)
        w = o
        for dim in range(o.dim()):
            if o.shape[dim] == t.shape[dim]:
                continue
            src = channel_map(o.shape[dim], t.shape[dim])
            w = w.index_select(dim, src)
            if is_conv_weight and dim == in_dim:  # a reader shares each old channel's weight among its copies
                copies = torch.bincount(src, minlength=o.shape[dim]).to(w.dtype)[src]
                shape = [1] * w.dim()
                shape[dim] = -1
                w = w / copies.view(shape)
        if is_conv_weight and noise and o.shape[out_dim] != t.shape[out_dim]:
            fresh = torch.zeros(t.shape[out_dim], dtype=torch.bool)
            fresh[o.shape[out_dim]:] = True
            shape = [1] * w.dim()
            shape[out_dim] = -1
            jitter = torch.randn(w.shape, generator=gen) * (noise * float(o.float().std()))
            w = w + jitter * fresh.view(shape).to(w.dtype)
        out[name] = w.clone()
    return out


def prepare_for_device(net: TwoStreamNet, device: str | torch.device) -> TwoStreamNet:
    """Move to `device`; channels-last memory on CUDA (used with fp16 autocast, see `autocast`)."""
    device = torch.device(device)
    net = net.to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net


def autocast(device: str | torch.device):
    """fp16 autocast on CUDA, a no-op context on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", enabled=False)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def flops_estimate(net: TwoStreamNet, size: int = INPUT_SIZE) -> float:
    """Multiply-adds of one forward pass at `size`² (convolutions only), in GMAC."""
    total = 0
    hooks = []

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() // out.shape[0] * m.in_channels // m.groups * math.prod(m.kernel_size)
        elif isinstance(m, nn.ConvTranspose2d):
            total += inp[0].numel() // inp[0].shape[0] * m.out_channels * math.prod(m.kernel_size)

    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(hook))
    was = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    net.train(was)
    for h in hooks:
        h.remove()
    return total / 1e9
