"""`Segmenter`: a trained two-stream network as a file, and face-probability maps from 128×128 crops.

Two file kinds, written side by side in `models/` (design §2):

* ``NAME.pt``: ``torch.save`` of a plain dict (no pickled classes; loaded with ``weights_only=True``):
  ``{"format": "facecap-segmenter", "version": 1, "config": {width, fc_width, batchnorm, num_classes},
  "input_size": 128, "state_dict": {...}, "meta": {...}}``.
* ``NAME.onnx``: the network with its pre- and post-processing (crops (N, 128, 128, 3) uint8 RGB → face
  probability (N, 128, 128) float32), metadata props ``format``/``version``/``config``; runs on onnxruntime's CPU
  provider with NumPy only: this is the backend the Blender extension bundles.

`Segmenter.load(path)` picks the backend from the extension. A missing, corrupt or wrong-version file raises
`ModelFileError` with one line naming the file. This module imports neither torch nor onnxruntime until needed.
"""
from __future__ import annotations

import json
import os

import numpy as np

FORMAT = "facecap-segmenter"
VERSION = 1
INPUT_SIZE = 128
# The zoomed views see the crop's centre ZOOM_SIDE × ZOOM_SIDE window enlarged to the input size (1.21×), 11 pixels
# cut on each side. Chosen on the validation identities among windows of 96–116 pixels (segmenter_lite_history.md).
ZOOM_SIDE = 106
# Inside that window the zoomed views' mean counts ZOOM_WEIGHT, the whole crop's views' mean 1 − ZOOM_WEIGHT: the
# network does better on the face it sees larger. Chosen on the validation identities among 0.4–0.7 (same notebook).
ZOOM_WEIGHT = 0.6
VIEWS = (1, 2, 4)
MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models")
DEFAULT_MODEL = os.path.join(MODELS_DIR, "segmenter_lite.pt")


class ModelFileError(RuntimeError):
    """A model file is missing, corrupt, or not the expected format/version (one-line message naming the file)."""


# ------------------------------------------------------------------------------------------------ torch files
def save_model(net, path: str, meta: dict | None = None) -> str:
    """Write `net` (a TwoStreamNet) to `path` (.pt) atomically. `meta`: JSON-able facts (data, iterations,
    metrics). Returns the path."""
    import torch  # noqa: PLC0415

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    blob = {"format": FORMAT, "version": VERSION, "config": dict(net.config), "input_size": INPUT_SIZE,
            "state_dict": state, "meta": json.dumps(meta or {})}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_model(path: str, device: str = "cpu"):
    """Read a .pt written by `save_model` → (TwoStreamNet in eval mode on `device`, meta dict)."""
    import torch  # noqa: PLC0415

    from .net import build, prepare_for_device  # noqa: PLC0415

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: segmenter model file not found (train one: python -m "
                             "facecap_core.segment.train, or use the shipped models/segmenter_lite.pt)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise ModelFileError(f"{path}: not a readable segmenter model file ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a facecap segmenter file (format {blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r})")
    if blob.get("version") != VERSION:
        raise ModelFileError(f"{path}: segmenter file version {blob.get('version')}, this facecap reads version "
                             f"{VERSION}: retrain or update facecap")
    if blob.get("input_size") != INPUT_SIZE:
        raise ModelFileError(f"{path}: input size {blob.get('input_size')}, expected {INPUT_SIZE}")
    try:
        net = build(blob["config"])
        net.load_state_dict(blob["state_dict"], strict=True)
    except Exception as exc:  # noqa: BLE001 - shape / key mismatch
        raise ModelFileError(f"{path}: weights do not match the network config {blob.get('config')} "
                             f"({str(exc).splitlines()[0][:160]})") from None
    try:
        meta = json.loads(blob.get("meta") or "{}")
    except json.JSONDecodeError:
        meta = {}
    net.eval()
    return prepare_for_device(net, device), meta


def export_onnx(net, path: str, meta: dict | None = None, opset: int = 17) -> str:
    """Export `net` (TwoStreamNet) with uint8 in / probability out (see module docstring) to `path` (.onnx),
    dynamic batch size, metadata props format/version/config/meta. Returns the path."""
    import copy  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    import onnx  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from .net import UInt8Segmenter  # noqa: PLC0415

    cpu = copy.deepcopy(net).float().cpu().to(memory_format=torch.contiguous_format).eval()
    wrapper = UInt8Segmenter(cpu).eval()
    x = torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3, dtype=torch.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    # Pool with switches → ONNX MaxPool with its Indices output, fed straight to MaxUnpool (both use ONNX's
    # flat indices). The exporter's own max_pool2d_with_indices converts to torch's per-plane indices with a
    # second full-resolution MaxPool, which cost a quarter of the lite net's time on onnxruntime.
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic  # noqa: PLC0415

    def pool_symbolic(g, x, kernel_size, stride, padding, dilation, ceil_mode):
        return g.op("MaxPool", x, kernel_shape_i=[2, 2], strides_i=[2, 2], outputs=2)

    def unpool_symbolic(g, y, switches, output_size):
        return g.op("MaxUnpool", y, switches, kernel_shape_i=[2, 2], strides_i=[2, 2])

    register_custom_op_symbolic("aten::max_pool2d_with_indices", pool_symbolic, opset)
    register_custom_op_symbolic("aten::max_unpool2d", unpool_symbolic, opset)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (x,), tmp, input_names=["crops"], output_names=["prob"],
                              dynamic_axes={"crops": {0: "n"}, "prob": {0: "n"}}, opset_version=opset,
                              dynamo=False)
    finally:
        unregister_custom_op_symbolic("aten::max_pool2d_with_indices", opset)
        unregister_custom_op_symbolic("aten::max_unpool2d", opset)
    model = onnx.load(tmp)
    props = {"format": FORMAT, "version": str(VERSION), "config": json.dumps(cpu.config),
             "input_size": str(INPUT_SIZE), "meta": json.dumps(meta or {})}
    for k, v in props.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, tmp)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------------ backends
class _TorchBackend:
    def __init__(self, net, device):
        self.net, self.device = net, device

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        import torch  # noqa: PLC0415

        from .net import autocast, uint8_to_input  # noqa: PLC0415

        x = uint8_to_input(torch.from_numpy(crops).to(self.device))
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device):
            prob = self.net(x)
        return prob.float().cpu().numpy()


class _OnnxBackend:
    def __init__(self, path: str, threads: int | None = None):
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError:
            raise ModelFileError(f"{path}: onnxruntime is not installed (pip install onnxruntime)") from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"{path}: not a readable ONNX segmenter ({type(exc).__name__})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a facecap segmenter ONNX file (format {props.get('format')!r})")
        if props.get("version") != str(VERSION):
            raise ModelFileError(f"{path}: segmenter file version {props.get('version')}, this facecap reads "
                                 f"version {VERSION}")
        self.config = json.loads(props.get("config", "{}"))
        try:
            self.meta = json.loads(props.get("meta", "{}"))
        except json.JSONDecodeError:
            self.meta = {}

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"crops": crops})[0]


def zoom_in(crops: np.ndarray, side: int = ZOOM_SIDE) -> np.ndarray:
    """(N, 128, 128, 3) crops → their centre side × side window enlarged to 128 × 128 (bilinear)."""
    import cv2  # noqa: PLC0415

    o = (INPUT_SIZE - side) // 2
    return np.stack([cv2.resize(c[o:o + side, o:o + side], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
                     for c in crops])


def zoom_out(maps: np.ndarray, side: int = ZOOM_SIDE) -> np.ndarray:
    """(N, 128, 128) maps of zoomed views → (N, side, side), the centre window they came from (area average)."""
    import cv2  # noqa: PLC0415

    return np.stack([cv2.resize(m, (side, side), interpolation=cv2.INTER_AREA) for m in maps])


class Segmenter:
    """Face probability from face crops: `predict(crops (N, 128, 128, 3) uint8 RGB) → (N, 128, 128) float32`
    in [0, 1] (1 = face, design §5). Build with `Segmenter.load(path)` (.pt → torch, CUDA fp16 when available;
    .onnx → onnxruntime CPU) or `Segmenter(net)` from an in-memory TwoStreamNet.

    `views` is how many views of each crop the network sees, in one batch, their probabilities averaged (the
    zoomed views weigh ZOOM_WEIGHT where they see the crop):
    1 (the crop; live capture), 2 (+ the mirror image of its centre enlarged 1.21×, ZOOM_SIDE) or 4 (+ the
    mirror image and the enlarged centre). More views give better masks on held-out faces, most under occluders,
    for 2× or 4× the network time (models/segmenter_lite.md)."""

    def __init__(self, net=None, *, device: str = "auto", backend=None, path: str | None = None,
                 meta: dict | None = None):
        self.path, self.meta = path, dict(meta or {})
        self.views = 1
        if backend is not None:
            self._run, self.backend = backend, "onnxruntime"
            self.device = "cpu"
            self.config = getattr(backend, "config", {})
            return
        from .net import fold_batchnorm, prepare_for_device, resolve_device  # noqa: PLC0415

        dev = resolve_device(device)
        net = prepare_for_device(fold_batchnorm(net.eval()), dev)
        self._run, self.backend, self.device, self.config = _TorchBackend(net, dev), "torch", str(dev), net.config
        self.net = net

    @classmethod
    def load_default(cls, device: str = "auto", threads: int | None = None) -> "Segmenter":
        """The shipped lite model: models/segmenter_lite.pt on CUDA (fp16), else models/segmenter_lite.onnx on
        onnxruntime when it is installed (about 2× faster than torch on the CPU), else the .pt on the CPU."""
        onnx_path = os.path.splitext(DEFAULT_MODEL)[0] + ".onnx"
        want_cuda = device == "cuda"
        if device == "auto":
            try:
                import torch  # noqa: PLC0415

                want_cuda = torch.cuda.is_available()
            except ImportError:
                want_cuda = False
        if not want_cuda and os.path.isfile(onnx_path):
            try:
                import onnxruntime  # noqa: F401, PLC0415

                return cls.load(onnx_path, threads=threads)
            except ImportError:
                pass
        return cls.load(DEFAULT_MODEL, device=device)

    @classmethod
    def load(cls, path: str = DEFAULT_MODEL, *, device: str = "auto", threads: int | None = None) -> "Segmenter":
        """Load a .pt (torch; `device` auto/cpu/cuda) or .onnx (onnxruntime CPU, `threads` intra-op threads)."""
        if not os.path.isfile(path):
            raise ModelFileError(f"{path}: segmenter model file not found")
        if path.endswith(".onnx"):
            be = _OnnxBackend(path, threads)
            return cls(backend=be, path=path, meta=be.meta)
        from .net import resolve_device  # noqa: PLC0415

        net, meta = load_model(path, "cpu")
        return cls(net, device=str(resolve_device(device)), path=path, meta=meta)

    def predict(self, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """crops (N, 128, 128, 3) or (128, 128, 3) uint8 RGB → face probability (N, 128, 128) float32."""
        crops = np.asarray(crops)
        single = crops.ndim == 3
        if single:
            crops = crops[None]
        if crops.dtype != np.uint8 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"crops must be (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) uint8, got {crops.shape} {crops.dtype}")
        out = [self._forward(crops[i:i + batch_size]) for i in range(0, len(crops), batch_size)]
        prob = np.concatenate(out, 0).astype(np.float32, copy=False) if out else np.zeros((0, INPUT_SIZE, INPUT_SIZE),
                                                                                         np.float32)
        return prob[0] if single else prob

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        if self.views not in VIEWS:
            raise ValueError(f"views must be one of {VIEWS}, got {self.views!r}")
        if self.views == 1:
            return self._run(np.ascontiguousarray(crops))
        # (image, mirrored) for each view; the zoomed views come last
        zoomed = zoom_in(crops)
        views = [(crops, False), (zoomed, True)] if self.views == 2 else \
            [(crops, False), (crops, True), (zoomed, False), (zoomed, True)]
        prob = self._run(np.ascontiguousarray(np.concatenate([v[:, :, ::-1] if m else v for v, m in views])))
        prob = [p[:, :, ::-1] if m else p for p, (_, m) in zip(np.split(prob, len(views)), views)]
        n_whole = 1 if self.views == 2 else 2
        # the zoomed views miss the crop's border: there the whole crop's views decide alone
        o = (INPUT_SIZE - ZOOM_SIDE) // 2
        out = np.mean(prob[:n_whole], 0)
        window = out[:, o:o + ZOOM_SIDE, o:o + ZOOM_SIDE]
        window *= 1 - ZOOM_WEIGHT
        window += ZOOM_WEIGHT * zoom_out(np.mean(prob[n_whole:], 0))
        return out

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.predict(crops)
