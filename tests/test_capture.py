"""Capture engine and take recording (`facecap_core.capture`), with stand-in stages (no trained models needed)."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from facecap_core.capture.engine import CaptureEngine
from facecap_core.capture.recorder import TakeRecorder, recover_take
from facecap_core.take import TakeFileError, make_frame, read_take
from facecap_core.track.tracker import TrackResult


class FakeTracker:
    """Reports the frame's mean grey as expression[0]; tracked when it was given a mask with face pixels."""

    def __init__(self, delay=0.0):
        self.delay, self.detector, self.seen, self.detections = delay, FakeDetector(), [], []

    def track(self, image, mask=None, detection=None):
        time.sleep(self.delay)
        self.detections.append(detection)
        self.seen.append(int(image[0, 0, 0]))
        x = np.zeros(46)
        x[0] = image[0, 0, 0] / 255
        if hasattr(mask, "full"):  # the engine hands over the segmentation's CropMask
            mask = mask.full()
        ok = mask is None or bool((mask > 0).any())
        return TrackResult(ok, landmarks=np.full((73, 2), 20.0), rotation=np.eye(3), translation=np.zeros(3),
                           expression=x, bbox=(10, 10, 20, 20), face_visible=1.0, ms={"regress": 0.1}) \
            if ok else TrackResult(False, reason="no mask")

    def face_box(self):
        return np.array([8.0, 8.0, 24.0, 24.0])


class FakeDetector:
    def __init__(self):
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        return np.array([[8.0, 8.0, 24.0, 24.0]])


def fake_segmenter(crops):
    return np.full(crops.shape[:3], 0.9, np.float32)


def frames(n, size=48):
    for i in range(n):
        yield i, i / 30, np.full((size, size, 3), i % 256, np.uint8)


def test_engine_keeps_order_and_every_footage_frame():
    tracker = FakeTracker()
    engine = CaptureEngine(tracker, fake_segmenter, None, tracker.detector, queue_size=2)
    out = list(engine.run(frames(40)))
    assert [p.index for p in out] == list(range(40))
    assert tracker.seen == list(range(40))
    assert all(p.mask is not None and p.mask.shape == (48, 48) and p.mask.max() == 255 for p in out)
    assert all(p.result.tracked for p in out) and sum(p.dropped for p in out) == 0
    # one detection starts the take, and the tracker is handed it instead of scanning the frame again
    assert tracker.detector.calls == 1 and tracker.detections[0] is not None


def test_live_source_drops_old_frames_instead_of_queueing():
    tracker = FakeTracker(delay=0.02)  # a slow consumer

    def live(n):
        for i in range(n):
            time.sleep(0.002)  # the camera delivers faster than the engine works
            yield i, i / 30, np.full((32, 32, 3), i % 256, np.uint8)

    engine = CaptureEngine(tracker, None, queue_size=1)
    out = list(engine.run(live(120), live=True))
    idx = [p.index for p in out]
    assert idx == sorted(idx) and len(out) < 120
    assert len(out) + sum(p.dropped for p in out) <= 120
    assert idx[-1] >= 110  # it ends on (almost) the newest frame, not 40 frames behind


def test_engine_reraises_source_errors_after_the_good_frames():
    def broken():
        yield from frames(5)
        raise OSError("camera unplugged")

    engine = CaptureEngine(FakeTracker(), None)
    got = []
    with pytest.raises(OSError, match="unplugged"):
        for p in engine.run(broken()):
            got.append(p.index)
    assert got == list(range(5))


def test_recorder_journal_survives_a_crash_and_finishes_atomically(tmp_path):
    path = str(tmp_path / "take.json")
    rec = TakeRecorder(path, "clip.mp4", 30.0, 64, 48, 500.0, flush_seconds=0.0)
    for i in range(5):
        rec.add(make_frame(i, i / 30, expression=np.full(46, 0.1 * i), rotation=[1, 0, 0, 0],
                           translation=[0, 0, 50], landmarks=np.zeros((73, 2))))
    rec.add(make_frame(5, 5 / 30))  # an untracked frame
    rec.abort()  # "crash": no final take, the journal stays
    assert not os.path.exists(path) and os.path.exists(path + ".journal")
    with open(path + ".journal", "a") as f:
        f.write('{"index": 6, "time": 0.2, "tra')  # the line being written when the process died
    take = recover_take(path + ".journal", str(tmp_path / "recovered.json"))
    assert len(take["frames"]) == 6 and take["frames"][5]["tracked"] is False
    assert read_take(str(tmp_path / "recovered.json"))["frames"][3]["expression"][0] == pytest.approx(0.3)

    rec = TakeRecorder(path, "clip.mp4", 30.0, 64, 48, 500.0)
    rec.add(make_frame(0, 0.0))
    take = rec.finish(identity=np.ones(50), focal=480.0)
    assert not os.path.exists(path + ".journal")
    back = read_take(path)
    assert back["focal"] == 480.0 and back["identity"][0] == 1.0 and len(back["frames"]) == 1
    assert json.load(open(path)) == take


def test_recover_rejects_a_file_that_is_not_a_journal(tmp_path):
    bad = tmp_path / "x.journal"
    bad.write_text("hello\n")
    with pytest.raises(TakeFileError, match="not a facecap take journal"):
        recover_take(str(bad))


class FakeCamera:
    """cv2.VideoCapture stand-in: delivers `n` frames, then fails (the camera is unplugged)."""

    def __init__(self, index, n=5, opens=True):
        self.n, self.i, self.opens = n, 0, opens

    def isOpened(self):
        return self.opens

    def read(self):
        self.i += 1
        if self.i > self.n:
            return False, None
        return True, np.full((48, 64, 3), 30 * self.i % 256, np.uint8)

    def get(self, prop):
        return {3: 64.0, 4: 48.0, 5: 30.0}.get(prop, 0.0)

    def release(self):
        pass


def test_camera_unplugged_mid_take_keeps_the_frames(tmp_path, monkeypatch):
    import cv2

    from facecap_core.capture.run import open_frames, track_source

    monkeypatch.setattr(cv2, "VideoCapture", lambda index: FakeCamera(index, n=6))
    source = open_frames("camera:0")
    assert source.live and (source.width, source.height) == (64, 48)
    tracker = FakeTracker()
    path = str(tmp_path / "take.json")
    rec = TakeRecorder(path, "camera:0", source.fps, source.width, source.height, 500.0)
    report = track_source(source, path, CaptureEngine(tracker, None, queue_size=8), rec, progress=False)
    rec.finish()
    assert "stopped delivering frames" in report.error and report.frames >= 1
    assert len(read_take(path)["frames"]) == report.frames


def test_camera_that_will_not_open_is_one_clear_error(monkeypatch):
    import cv2

    from facecap_core.capture.run import open_frames
    from facecap_core.segment.run import InputError

    monkeypatch.setattr(cv2, "VideoCapture", lambda index: FakeCamera(index, opens=False))
    with pytest.raises(InputError, match="will not open"):
        open_frames("camera:3")
    with pytest.raises(InputError, match="bad camera"):
        open_frames("camera:x")
