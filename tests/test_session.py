"""Background capture sessions (capture/session.py) and the worker process (capture/worker.py): the two ways the
Blender add-on runs the engine without blocking its main thread. Real models on a clip the project renders."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from facecap_core.capture.session import CaptureSession, EngineOptions
from facecap_core.take import read_take

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "models", "tracker_dde.npz")),
                                reason="no trained tracker in models/")


def drain(session, timeout=120.0):
    frames, t0 = [], time.monotonic()
    while session.running and time.monotonic() - t0 < timeout:
        frames += session.poll()
        time.sleep(0.02)
    session.join(10)
    return frames + session.poll()


def test_session_tracks_a_clip_in_the_background(face_clip, tmp_path):
    path, seq = face_clip
    session = CaptureSession(path, EngineOptions(focal=float(seq.focal), masks_dir=str(tmp_path / "m"),
                                                 keep_latest=True)).start()
    assert (session.width, session.height) == (256, 256) and session.total == 24 and not session.live
    frames = drain(session)
    assert session.state == "finished" and not session.error
    assert [f["index"] for f in frames] == list(range(24))
    tracked = [f for f in frames if f["tracked"]]
    assert len(tracked) >= 18 and all(len(f["arkit"]) == 52 and "raw" in f for f in tracked)
    assert len(session.identity) == 50 and session.focal > 0
    assert len(os.listdir(tmp_path / "m")) == 24  # a mask per frame, for the compositor
    index, image, mask = session.latest
    assert index == 23 and image.shape == (256, 256, 3) and mask.shape == (256, 256) and mask.max() == 255


def test_footage_gives_the_same_take_every_time(face_clip):
    """Footage is deterministic (the crop box lags exactly two frames, Eq. 3 runs every second of footage in
    step): a batch job is reproducible, whatever the threads' timing."""
    path, seq = face_clip
    takes = []
    for _ in range(2):
        session = CaptureSession(path, EngineOptions(focal=float(seq.focal))).start()
        takes.append(drain(session))
    a, b = ([f["expression"] for f in t if f["tracked"]] for t in takes)
    assert len(a) == len(b) >= 18 and np.array_equal(np.array(a), np.array(b))


def test_session_stops_early_and_keeps_what_it_tracked(face_clip):
    path, _ = face_clip
    session = CaptureSession(path, EngineOptions(segmentation=False)).start()
    got = []
    while len(got) < 3 and session.running:
        got += session.poll()
        time.sleep(0.005)
    session.stop()
    got += drain(session)
    assert session.state == "finished" and 3 <= len(got) < 24
    assert [f["index"] for f in got] == list(range(len(got)))


def test_session_reports_a_bad_source_in_one_line(tmp_path):
    session = CaptureSession(str(tmp_path / "missing.mp4")).start()
    session.join(30)
    assert session.state == "failed" and "not found" in session.error and "\n" not in session.error
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    session = CaptureSession(str(broken)).start()
    session.join(30)
    assert session.state == "failed" and session.error


def worker(*args, stdin=subprocess.DEVNULL):
    return subprocess.Popen([sys.executable, "-m", "facecap_core.capture.worker", *args], cwd=ROOT, text=True,
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_worker_streams_take_frames_as_json_lines(face_clip, tmp_path):
    path, _ = face_clip
    proc = worker(path, "--smoothing", "0")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(ln) for ln in out.splitlines()]
    assert next(iter(lines[0])) == "open" and lines[0]["open"]["width"] == 256
    frames = [ln["frame"] for ln in lines if "frame" in ln]
    assert [f["index"] for f in frames] == list(range(24))
    assert all("raw" not in f for f in frames)  # smoothing off: nothing to keep beside
    end = lines[-1]["end"]
    assert end["state"] == "finished" and end["done"] == 24
    # the frames make a valid take
    from facecap_core.take import make_take, write_take

    write_take(str(tmp_path / "t.json"), make_take(path, 30.0, 256, 256, end["focal"], frames, end["identity"]))
    assert len(read_take(str(tmp_path / "t.json"))["frames"]) == 24


def test_worker_stops_on_request_and_fails_with_one_line(face_clip, tmp_path):
    path, _ = face_clip
    proc = worker(path, stdin=subprocess.PIPE)
    first = proc.stdout.readline()
    assert "open" in json.loads(first)
    proc.stdin.write("stop\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=120)
    end = json.loads(out.splitlines()[-1])["end"]
    assert proc.returncode == 0 and end["state"] == "finished" and end["done"] < 24
    bad = worker(str(tmp_path / "missing.mp4"))
    out, _ = bad.communicate(timeout=60)
    end = json.loads(out.splitlines()[-1])["end"]
    assert bad.returncode == 1 and end["state"] == "failed" and "not found" in end["error"]
    assert np.isfinite(end["done"])


def test_a_face_that_leaves_and_comes_back_is_found_again(face_clip, tmp_path):
    from conftest import write_clip

    _, seq = face_clip
    frames = np.array(seq.frames)
    frames[8:14] = 90  # the face is gone for six frames (an empty grey view)
    path = write_clip(str(tmp_path / "away.avi"), frames)
    session = CaptureSession(path, EngineOptions(focal=float(seq.focal))).start()
    got = {f["index"]: f["tracked"] for f in drain(session)}
    assert session.state == "finished" and sorted(got) == list(range(24))  # every frame recorded
    assert sum(got[i] for i in range(8)) >= 6
    assert not any(got[i] for i in range(9, 14))  # lost while away (the first blank frame may still hold on)
    assert sum(got[i] for i in range(14, 24)) >= 7  # re-detected and tracked again


def test_track_a_clip_without_a_face_is_an_error_that_keeps_the_take(tmp_path):
    from conftest import write_clip

    path = write_clip(str(tmp_path / "empty.avi"), np.full((6, 120, 160, 3), 70, np.uint8))
    take = str(tmp_path / "t.json")
    proc = subprocess.run([sys.executable, "-m", "facecap_core.cli", "track", path, "--out", take, "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "no face found" in proc.stderr and "Traceback" not in proc.stderr
    frames = read_take(take)["frames"]
    assert len(frames) == 6 and not any(f["tracked"] for f in frames)


def test_the_periodic_check_replaces_a_drifted_track_only(face_clip):
    """An occluder can leave the regressor in a wrong pose over the right face, which a detection box alone does
    not see: the periodic check compares the track with a fresh estimate from the detection and takes that one
    when they disagree by more than DRIFT_IOD, and keeps a good track."""
    from facecap_core.detect import FaceDetector
    from facecap_core.track.cascade import landmark_error
    from facecap_core.track.tracker import FaceTracker

    _, seq = face_clip
    tracker = FaceTracker.load_default(image_size=(256, 256), focal=float(seq.focal), threaded_keyframes=False)
    frame, truth = seq.frames[0], seq.landmarks[0].astype(np.float64)
    box = FaceDetector().detect(frame)[0]
    mask = seq.masks[0] * 255
    assert tracker._verify(frame, mask, box, truth) is None  # a good track is kept
    centre = truth.mean(0)
    c, s_ = np.cos(0.6), np.sin(0.6)  # the same face box, the landmarks turned 34° in the image
    wrong = (truth - centre) @ np.array([[c, -s_], [s_, c]]).T + centre
    fresh = tracker._verify(frame, mask, box, wrong)
    tracker.close()
    assert fresh is not None
    assert landmark_error(fresh[0][None], truth[None])[0] < 0.5 * landmark_error(wrong[None], truth[None])[0]
