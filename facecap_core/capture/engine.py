"""The capture engine (design §1, paper Fig. 1): detection → segmentation → masked DDE tracking, pipelined.

    engine = CaptureEngine(tracker, segmenter, refiner)
    for out in engine.run(frames):           # frames: iterable of (index, time s, RGB uint8)
        out.result                           # TrackResult (pose, expression, landmarks …), out.mask (H, W) 0/255

Three threads and two bounded queues: a reader pulls frames from the source; the segmentation thread crops each
frame around the face the tracker saw last (a Viola-Jones detection when it has none; on footage, exactly the one
it saw two frames earlier, so that a clip always gives the same take) and runs the network; the
caller's thread runs the graph cut and the regressor on the frame and its mask. So the network works on frame
t+1 while the regressor works on frame t (onnxruntime and the numba kernels release the GIL). The mask stays in
the 128×128 crop: the tracker maps it into its own crop, and the full-frame mask is pasted only on demand. Queues hold at most
`queue_size` frames, so memory stays flat on long takes. Footage never drops a frame (the reader waits); a live
source (`live=True`) drops the oldest waiting frame instead, so the engine always works on the newest one.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

_END = object()
BOX_LAG = 2  # footage: frame t is cropped where the tracker saw the face in frame t − 2 (see CaptureEngine)


@dataclass
class Processed:
    index: int
    time: float
    image: np.ndarray
    held_mask: object  # the segmentation's CropMask, None without segmentation
    result: object  # TrackResult
    ms: dict = field(default_factory=dict)
    dropped: int = 0  # live frames dropped before this one

    @property
    def mask(self) -> np.ndarray | None:
        """(H, W) uint8 0/255 face mask of the frame, pasted back on first use; None without segmentation."""
        return None if self.held_mask is None else self.held_mask.full()


class _Failure:
    def __init__(self, exc):
        self.exc = exc


class CaptureEngine:
    def __init__(self, tracker, segmenter=None, refiner=None, detector=None, queue_size: int = 2):
        self.tracker, self.segmenter, self.refiner = tracker, segmenter, refiner
        self.detector = detector or getattr(tracker, "detector", None)
        if self.segmenter is not None and self.detector is None:
            from ..detect.viola_jones import FaceDetector  # noqa: PLC0415

            self.detector = FaceDetector()
            tracker.detector = self.detector
        self.queue_size = queue_size
        # where the segmentation thread crops: the face box (x, y, w, h) of the last tracked frame; and while the
        # tracker has not yet seen the frame of the segmentation thread's own last detection, that detection
        # (so a start or a loss costs one Viola-Jones scan, not one per frame already in the queue)
        self._box = None
        self._tracked_upto = -1  # index of the last frame the tracker has finished
        self._detection = None  # (frame index, box) of the segmentation thread's last detection
        self._box_lock = threading.Condition()
        # footage: frame t is cropped at the box the tracker had after frame t − BOX_LAG, exactly, so that the same
        # clip always gives the same masks and take (a live source takes the newest box instead: no waiting)
        self._boxes: dict[int, object] = {}
        self._live = False
        self.dropped = 0

    # ------------------------------------------------------------------------------------------------ threads
    def _reader(self, frames, q_in: queue.Queue, live: bool, stop: threading.Event):
        try:
            for item in frames:
                if stop.is_set():
                    return
                if live:
                    while True:
                        try:
                            q_in.put_nowait(item)
                            break
                        except queue.Full:
                            try:
                                q_in.get_nowait()
                                self.dropped += 1
                            except queue.Empty:
                                pass
                else:
                    while not stop.is_set():
                        try:
                            q_in.put(item, timeout=0.2)
                            break
                        except queue.Full:
                            continue
        except Exception as exc:  # a source that fails mid-take (camera unplugged, truncated file)
            q_in.put(_Failure(exc))
        finally:
            q_in.put(_END)

    def _segmentation(self, q_in: queue.Queue, q_mid: queue.Queue, stop: threading.Event):
        from ..segment.pipeline import segment_frame_in_crop  # noqa: PLC0415

        while not stop.is_set():
            item = q_in.get()
            if item is _END or isinstance(item, _Failure):
                q_mid.put(item)
                if item is _END:
                    return
                continue
            index, t, image = item
            ms, mask, detection, cut_input = {}, None, None, None
            try:
                if self.segmenter is not None:
                    box, detection = self._crop_box(index, stop)
                    # the graph cut runs on the tracking thread: the network alone is about as long as the
                    # cut and the regression together, so the two threads stay balanced
                    mask, info = segment_frame_in_crop(image, self.detector if box is None else None, self.segmenter,
                                                       None, box=box)
                    ms = dict(info.ms)
                    ms.pop("threshold", None)
                    cut_input = (info.prob, info.crop) if info.face_found and self.refiner is not None else None
                    if box is None:
                        detection = info.box if info.face_found else None
                        with self._box_lock:
                            self._detection = None if detection is None else (index, detection)
            except Exception as exc:
                q_mid.put(_Failure(exc))
                continue
            while not stop.is_set():
                try:
                    q_mid.put((index, t, image, mask, cut_input, ms, detection), timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _crop_box(self, index: int, stop: threading.Event):
        """(box to crop frame `index` at or None to detect, the detection that box comes from or None)."""
        with self._box_lock:
            if self._live:
                box, seen = self._box, self._tracked_upto
            else:
                while self._tracked_upto < index - BOX_LAG and not stop.is_set():
                    self._box_lock.wait(0.2)
                box, seen = self._boxes.get(index - BOX_LAG), index - BOX_LAG
            if box is not None:
                return box, None
            # the tracker has no face (yet): the segmentation thread's own detection, while the tracker has not
            # had its say on it, else a new scan
            if self._detection is not None and self._detection[0] > seen:
                return self._detection[1], self._detection[1]
            return None, None

    def run(self, frames, live: bool = False):
        """Yield a Processed per frame, in order. Exceptions of the source or a stage are re-raised here, after
        every frame before them has been yielded."""
        q_in, q_mid = queue.Queue(self.queue_size), queue.Queue(self.queue_size)
        self._live, self._boxes, self._tracked_upto, self._box, self._detection = live, {}, -1, None, None
        stop = threading.Event()
        threads = [threading.Thread(target=self._reader, args=(frames, q_in, live, stop), daemon=True,
                                    name="facecap-reader"),
                   threading.Thread(target=self._segmentation, args=(q_in, q_mid, stop), daemon=True,
                                    name="facecap-segment")]
        for th in threads:
            th.start()
        dropped_seen = 0
        try:
            while True:
                item = q_mid.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                index, t, image, mask, cut_input, ms, detection = item
                if cut_input is not None:
                    t0 = time.perf_counter()
                    mask = mask.refined(self.refiner, *cut_input)
                    ms["graphcut"] = (time.perf_counter() - t0) * 1000
                t0 = time.perf_counter()
                result = self.tracker.track(image, mask, detection=detection)
                ms.update({f"track_{k}": v for k, v in result.ms.items()})
                ms["track"] = (time.perf_counter() - t0) * 1000
                with self._box_lock:
                    self._box = self.tracker.face_box()  # None once lost; held while the face is hidden
                    self._boxes[index] = self._box
                    self._boxes.pop(index - 4 * BOX_LAG, None)
                    self._tracked_upto = index
                    self._box_lock.notify_all()
                dropped, dropped_seen = self.dropped - dropped_seen, self.dropped
                yield Processed(index, t, image, mask, result, ms, dropped)
        finally:
            stop.set()
            for q in (q_in, q_mid):  # unblock producers waiting on a full queue
                try:
                    while True:
                        q.get_nowait()
                except queue.Empty:
                    pass
            for th in threads:
                th.join(timeout=2)
