"""A capture running in the background: a source → the engine (local, or a `facecap serve` engine) → take frames to
poll. One class for every front end that must not block: the Blender add-on's in-process engine (its main thread
polls from a timer), the worker process (`python -m facecap_core.capture.worker`, which prints what it polls), and
the remote engine (frames read here, tracked there).

    session = CaptureSession("camera:0", EngineOptions(smoothing=1.0, mirror=True))
    session.start()
    ...                                   # each tick:
    for frame in session.poll(): ...      # take frames (design §6), in order
    session.stop(); session.join()
    session.state, session.error, session.fps, session.done, session.total

`build_engine` is also what `facecap track` / `facecap bench` use, so every front end runs the same engine.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SEGMENTER = os.path.join(ROOT, "models", "segmenter_lite.onnx")
DEFAULT_TRACKER = os.path.join(ROOT, "models", "tracker_dde.npz")
DEFAULT_TRACKER_NOMASK = os.path.join(ROOT, "models", "tracker_dde_nomask.npz")


class EngineError(RuntimeError):
    """The engine cannot start (a model file, the source, a missing dependency): one line for the user."""


@dataclass
class EngineOptions:
    segmentation: bool = True
    segmenter_model: str = DEFAULT_SEGMENTER
    views: int | None = None  # views of each crop the segmenter averages, 1, 2 or 4 (None: the segmenter's own, 1)
    tracker_model: str = DEFAULT_TRACKER
    focal: float | None = None
    smoothing: float = 1.0  # One Euro strength, 0 = off (PoseSmoother)
    device: str = "auto"
    mirror: bool = False  # mirror a live camera image (selfie view)
    remote: str | None = None  # tcp://HOST:PORT of a `facecap serve` engine
    token: str | None = None
    masks_dir: str | None = None  # write each frame's face mask there (frame_000000.png …; local engine only)
    keep_latest: bool = False  # keep the newest (index, RGB image, mask) for a live composite preview


def build_engine(source, options: EngineOptions):
    """(rig, tracker, engine) for a FrameSource. Raises EngineError (one line) for a missing or corrupt model."""
    from ..detect import DetectorError, FaceDetector  # noqa: PLC0415
    from ..rig.model import load_rig  # noqa: PLC0415
    from ..segment import ModelFileError as SegmentModelError  # noqa: PLC0415
    from ..segment.graphcut import GraphCutRefiner  # noqa: PLC0415
    from ..segment.run import load_segmenter  # noqa: PLC0415
    from ..track.cascade import ModelFileError as TrackerModelError  # noqa: PLC0415
    from ..track.cascade import Regressor  # noqa: PLC0415
    from ..track.tracker import FaceTracker  # noqa: PLC0415
    from .engine import CaptureEngine  # noqa: PLC0415

    if options.segmentation and not os.path.isfile(options.segmenter_model):
        raise EngineError(f"segmenter model not found: {options.segmenter_model} (pass another model, or track "
                          "without segmentation)")
    model_path = options.tracker_model
    if not options.segmentation and model_path == DEFAULT_TRACKER:
        model_path = DEFAULT_TRACKER_NOMASK  # trained blind to masks: the masked one needs a segmentation
    try:
        regressor = Regressor.load(model_path)
        rig = load_rig()
        detector = FaceDetector()
        # footage solves Eq. 3 in step with the frames, so the same clip always gives the same take (a batch job
        # is reproducible); live sources keep it on its own thread, never waited for
        tracker = FaceTracker(regressor, rig, image_size=(source.width, source.height), focal=options.focal,
                              detector=detector, smoothing=options.smoothing, fps=source.fps,
                              threaded_keyframes=source.live)
        segmenter = None
        if options.segmentation and options.segmenter_model == DEFAULT_SEGMENTER:
            from ..segment.segmenter import Segmenter  # noqa: PLC0415

            # the .pt on CUDA (fp16), else the .onnx with one thread: the engine's own threads use the cores
            segmenter = Segmenter.load_default(options.device, threads=1)
        elif options.segmentation:
            segmenter = load_segmenter(options.segmenter_model, options.device)
        if segmenter is not None and options.views is not None:
            segmenter.views = options.views
    except (SegmentModelError, TrackerModelError, DetectorError) as exc:
        raise EngineError(str(exc)) from exc
    engine = CaptureEngine(tracker, segmenter, GraphCutRefiner() if options.segmentation else None, detector)
    return rig, tracker, engine


class CaptureSession:
    """A source tracked on a background thread. States: "starting" → "running" → "finished" (the source ended
    or stop() was called) or "failed" (`error` holds one line; the frames tracked before it stay pollable)."""

    def __init__(self, spec: str, options: EngineOptions | None = None, max_queue: int = 10000):
        self.spec, self.options = spec, options or EngineOptions()
        self.state, self.error = "starting", ""
        self.width = self.height = 0
        self.source_fps, self.live, self.total = 30.0, False, None
        self.done = self.tracked = self.dropped = 0
        self.fps = 0.0  # frames per second over the last second or so
        self.identity, self.focal = None, None
        self.latest = None  # (frame index, RGB image, face mask uint8 0/255 or None) with keep_latest
        self._frames: queue.Queue = queue.Queue(max_queue)
        self._stop = threading.Event()
        self._thread = None
        self._opened = threading.Event()

    # -------------------------------------------------------------------------------------------- control
    def start(self, wait_open: float | None = 30.0) -> "CaptureSession":
        """Start the thread; with wait_open, block until the source is open (its size known) or failed."""
        self._thread = threading.Thread(target=self._run, name="facecap-session", daemon=True)
        self._thread.start()
        if wait_open:
            self._opened.wait(wait_open)
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    def poll(self, max_frames: int | None = None) -> list[dict]:
        """The take frames tracked since the last poll (never blocks)."""
        out = []
        while max_frames is None or len(out) < max_frames:
            try:
                out.append(self._frames.get_nowait())
            except queue.Empty:
                break
        return out

    # ------------------------------------------------------------------------------------------- the thread
    def _run(self) -> None:
        from ..segment.run import InputError  # noqa: PLC0415
        from .run import open_frames  # noqa: PLC0415

        try:
            source = open_frames(self.spec, mirror=self.options.mirror)
            self.width, self.height, self.source_fps = source.width, source.height, source.fps
            self.live, self.total = source.live, source.count
            self._opened.set()
            if self.options.remote:
                self._run_remote(source)
            else:
                self._run_local(source)
            self.state = "finished"
        except (InputError, EngineError) as exc:
            self.error, self.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - a broken stage: report it, keep the frames so far
            self.error, self.state = f"the engine failed: {type(exc).__name__}: {exc}", "failed"
        finally:
            self._opened.set()

    def _emit(self, frame: dict, rate: list) -> None:
        self._frames.put(frame)
        self.done += 1
        self.tracked += int(frame["tracked"])
        now = time.perf_counter()
        rate.append(now)
        while rate and now - rate[0] > 1.0:
            rate.pop(0)
        if len(rate) > 1:
            self.fps = (len(rate) - 1) / max(rate[-1] - rate[0], 1e-9)

    def _run_local(self, source) -> None:
        from .run import take_frame  # noqa: PLC0415

        _rig, tracker, engine = build_engine(source, self.options)
        masks_dir = self.options.masks_dir
        if masks_dir:
            import cv2  # noqa: PLC0415

            os.makedirs(masks_dir, exist_ok=True)
        self.state, rate = "running", []
        try:
            for p in engine.run(self._until_stopped(source.frames()), live=source.live):
                self.dropped += p.dropped
                if masks_dir and p.mask is not None:
                    cv2.imwrite(os.path.join(masks_dir, f"frame_{p.index:06d}.png"), p.mask)
                if self.options.keep_latest:
                    self.latest = (p.index, p.image, p.mask)
                self._emit(take_frame(p), rate)
        finally:
            self.identity, self.focal = [float(v) for v in tracker.identity], float(tracker.focal)
            tracker.close()

    def _run_remote(self, source) -> None:
        from .remote import RemoteError, RemoteSession  # noqa: PLC0415

        try:
            remote = RemoteSession(self.options.remote, source.width, source.height, source.fps, self.options.token,
                                   smoothing=self.options.smoothing, live=source.live)
        except RemoteError as exc:
            raise EngineError(str(exc)) from exc
        self.state, rate = "running", []
        try:
            for frame in remote.run(self._until_stopped(source.frames())):
                self._emit(frame, rate)
        except RemoteError as exc:
            raise EngineError(str(exc)) from exc
        finally:
            identity, focal = remote.end()
            if identity is not None:
                self.identity, self.focal = [float(v) for v in identity], float(focal)

    def _until_stopped(self, frames):
        for item in frames:
            if self._stop.is_set():
                return
            yield item
