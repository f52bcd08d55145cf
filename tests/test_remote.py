"""The remote engine (`facecap serve`, capture/remote.py) over loopback, with a stand-in tracker."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from facecap_core.capture.remote import EngineServer, RemoteError, RemoteSession  # noqa: E402
from facecap_core.track.tracker import TrackResult  # noqa: E402


class FakeTracker:
    closed = []

    def __init__(self, smoothing=1.0):
        self.identity, self.focal, self.smoothing = np.zeros(50), 500.0, smoothing

    def track(self, image, mask=None):
        x = np.zeros(46)
        x[0] = image.mean() / 255
        return TrackResult(True, landmarks=np.full((73, 2), 10.0), rotation=np.eye(3), translation=np.zeros(3),
                           expression=x, bbox=(0, 0, 5, 5), face_visible=1.0)

    def close(self):
        FakeTracker.closed.append(self)


def start_server(port=0, **kw):
    server = EngineServer(lambda w, h, fps, smoothing: FakeTracker(smoothing), port=port, **kw)
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
        s = RemoteSession(server.address, 48, 48, token=None, timeout=5, smoothing=2.5)
        assert [s_["tracker"].smoothing for s_ in server.sessions.values()] == [2.5]  # the client's setting reaches the engine
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
        tracker = next(iter(server.sessions.values()))["tracker"]
        s.sock.close(0)  # gone without saying "end"
        deadline = time.time() + 5
        while server.sessions and time.time() < deadline:
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


def test_access_token():
    with pytest.raises(RemoteError, match="token"):
        EngineServer(lambda w, h, fps: FakeTracker(), host="0.0.0.0")
    server, th = start_server(token="s3cret")
    try:
        with pytest.raises(RemoteError, match="refused"):
            RemoteSession(server.address, 48, 48, token="wrong", timeout=2)
        assert RemoteSession(server.address, 48, 48, token="s3cret", timeout=2).track(0, 0.0, frame(10))["tracked"]
    finally:
        stop_server(server, th)


def test_no_server_is_a_clear_error():
    ctx_port = EngineServer(lambda w, h, fps: FakeTracker())
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
