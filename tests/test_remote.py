"""The remote engine (`facecap serve`, capture/remote.py) over loopback, with a stand-in tracker."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from facecap_core.capture.engine import CaptureEngine  # noqa: E402
from facecap_core.capture.remote import EngineServer, RemoteError, RemoteSession  # noqa: E402
from facecap_core.track.tracker import TrackResult  # noqa: E402


class FakeTracker:
    closed = []

    def __init__(self, smoothing=1.0, live=False, delay=0.0):
        self.identity, self.focal, self.smoothing, self.live, self.delay = np.zeros(50), 500.0, smoothing, live, delay
        self.detector = object()

    def track(self, image, mask=None, detection=None):
        time.sleep(self.delay)
        x = np.zeros(46)
        x[0] = image.mean() / 255
        return TrackResult(True, landmarks=np.full((73, 2), 10.0), rotation=np.eye(3), translation=np.zeros(3),
                           expression=x, bbox=(0, 0, 5, 5), face_visible=1.0)

    def face_box(self):
        return None

    def close(self):
        FakeTracker.closed.append(self)


def fake_engine(w, h, fps, smoothing, live, delay=0.0):
    return CaptureEngine(FakeTracker(smoothing, live, delay))


def start_server(port=0, make_engine=fake_engine, **kw):
    server = EngineServer(make_engine, port=port, **kw)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    return server, th


def stop_server(server, th):
    server.stop()
    th.join(timeout=5)
    server.close()


def frame(v, size=48):
    return np.full((size, size, 3), v, np.uint8)


def test_frames_in_results_out():
    server, th = start_server()
    try:
        s = RemoteSession(server.address, 48, 48, token=None, timeout=5, smoothing=2.5, live=True)
        tracker = next(iter(server.sessions.values())).engine.tracker
        assert (tracker.smoothing, tracker.live) == (2.5, True)  # the client's settings reach the engine
        for i, v in enumerate((40, 120, 200)):
            f = s.track(i, i / 30, frame(v))
            assert f["tracked"] and f["index"] == i and abs(f["expression"][0] - v / 255) < 0.02
        u, focal = s.end()
        assert u.shape == (50,) and focal == 500.0 and not server.sessions
    finally:
        stop_server(server, th)


def test_a_client_that_disappears_mid_take_is_cleaned_up():
    server, th = start_server(session_timeout=0.5)
    try:
        s = RemoteSession(server.address, 48, 48, timeout=5)
        s.track(0, 0.0, frame(90))
        assert len(server.sessions) == 1
        tracker = next(iter(server.sessions.values())).engine.tracker
        s.sock.close(0)  # gone without saying "end"
        deadline = time.time() + 5
        while (server.sessions or tracker not in FakeTracker.closed) and time.time() < deadline:
            time.sleep(0.05)
        assert not server.sessions and tracker in FakeTracker.closed
    finally:
        stop_server(server, th)


def test_the_take_goes_on_after_a_server_restart():
    server, th = start_server()
    port = server.port
    s = RemoteSession(server.address, 48, 48, timeout=1.0, retries=5)
    assert s.track(0, 0.0, frame(60))["tracked"]
    stop_server(server, th)  # the engine restarts …
    server, th = start_server(port=port)
    try:
        got = s.track(1, 1 / 30, frame(70))  # … and the same client goes on
        assert got["tracked"] and got["index"] == 1 and s.reconnects >= 1
    finally:
        stop_server(server, th)


def test_frames_in_flight_come_back_in_order_and_overlap_the_engine():
    """A client with 4 frames in flight: every frame answered once, in order, and the client's own time per frame
    (10 ms of 'decoding') overlaps the engine's (20 ms of tracking) instead of adding to it. Timed against the same
    run with one frame in flight, in the same test, so a busy machine slows both."""
    server, th = start_server(make_engine=lambda *a: fake_engine(*a, delay=0.02))

    def decoded(first, count):
        for i in range(first, first + count):
            time.sleep(0.01)
            yield i, i / 30, frame(3 * i % 256)

    def timed(session):
        t0 = time.perf_counter()
        got = list(session.run(decoded(0, 40)))
        return got, time.perf_counter() - t0

    try:
        serial = RemoteSession(server.address, 48, 48, timeout=5, window=1)
        _, took_serial = timed(serial)
        serial.end()
        s = RemoteSession(server.address, 48, 48, timeout=5, window=4)
        got, took = timed(s)
        assert [f["index"] for f in got] == list(range(40))
        assert all(abs(f["expression"][0] - 3 * f["index"] / 255) < 0.02 for f in got)
        assert took < 0.85 * took_serial, (took, took_serial)  # about 40 × 20 ms against 40 × 30 ms
        # a client that stops with frames still in flight gets the take's identity all the same
        run = s.run(decoded(40, 40))
        next(run)
        run.close()
        u, focal = s.end()
        assert focal == 500.0
    finally:
        stop_server(server, th)


def test_a_bad_frame_is_a_clear_error(monkeypatch):
    import facecap_core.capture.remote as remote

    server, th = start_server()
    try:
        s = RemoteSession(server.address, 48, 48, timeout=5)
        monkeypatch.setattr(remote, "_jpeg", lambda rgb: b"not a jpeg")
        with pytest.raises(RemoteError, match="frame 0: the frame is not a readable JPEG"):
            list(s.run([(0, 0.0, frame(10))]))
    finally:
        stop_server(server, th)


def test_access_token():
    with pytest.raises(RemoteError, match="token"):
        EngineServer(fake_engine, host="0.0.0.0")
    server, th = start_server(token="s3cret")
    try:
        with pytest.raises(RemoteError, match="refused"):
            RemoteSession(server.address, 48, 48, token="wrong", timeout=2)
        assert RemoteSession(server.address, 48, 48, token="s3cret", timeout=2).track(0, 0.0, frame(10))["tracked"]
    finally:
        stop_server(server, th)


def test_no_server_is_a_clear_error():
    ctx_port = EngineServer(fake_engine)
    address = ctx_port.address
    ctx_port.close()  # nobody listens there now
    with pytest.raises(RemoteError, match="no facecap engine answers"):
        RemoteSession(address, 48, 48, timeout=0.5)


def test_cli_serve_and_track_remote(tmp_path):
    """`facecap serve` in its own process and `facecap track --remote` on a generated clip: a valid take."""
    import os
    import socket
    import subprocess
    import sys

    import cv2

    from facecap_core.take import read_take

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, "models", "tracker_dde_nomask.npz")):
        pytest.skip("no trained tracker in models/")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "facecap_core.cli", "serve", "--port", str(port),
                               "--no-segmentation"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert "listening" in server.stdout.readline()
        clip = str(tmp_path / "clip.avi")
        writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 64))
        for v in range(6):
            writer.write(np.full((64, 64, 3), 40 * v, np.uint8))
        writer.release()
        take_path = str(tmp_path / "t.json")
        proc = subprocess.run([sys.executable, "-m", "facecap_core.cli", "track", clip, "--out", take_path,
                               "--remote", f"tcp://127.0.0.1:{port}"], cwd=root, capture_output=True, text=True,
                              timeout=120)
        take = read_take(take_path)
        assert len(take["frames"]) == 6  # a clip with no face: every frame recorded, none tracked …
        assert not any(f["tracked"] for f in take["frames"])
        assert proc.returncode == 1 and "no face found" in proc.stderr  # … and the user is told
    finally:
        server.terminate()
        server.wait(timeout=10)
