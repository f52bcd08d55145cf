"""The remote engine (the paper's GPU offload, design §6 `facecap serve`): frames in as JPEG, results out, over ZeroMQ.

Server: one ROUTER socket. Each client (a ZeroMQ DEALER, one per take) opens a session with
``{"op": "start", "width", "height", "fps", "smoothing", "token"}``, then sends ``{"op": "frame", "index", "time"}`` + a JPEG
part per frame and gets back the take frame (design §6) of that frame; ``{"op": "end"}`` closes the session and
returns the identity and focal length the key-frame thread solved. A session that has been silent for
`session_timeout` seconds (a client that disappeared) is closed and its tracker released. Bound to anything but
loopback, the server requires the access token.

Client: :class:`RemoteSession` sends a frame and waits `timeout` seconds for its answer. If none comes (the server
was restarted or is gone) it reconnects with a fresh socket and opens the session again, so a take goes on after a
server restart (the new session re-detects the face); after `retries` failed attempts it raises RemoteError.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RemoteError(RuntimeError):
    """The remote engine cannot be reached or refused the session: one line saying what to do."""


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    import cv2  # noqa: PLC0415

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RemoteError("cannot encode the frame as JPEG")
    return buf.tobytes()


def _unjpeg(data: bytes) -> np.ndarray:
    import cv2  # noqa: PLC0415

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("the frame is not a readable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class EngineServer:
    """`make_tracker(width, height, fps, smoothing)` → a tracker-like object (`track(frame, mask)`, `close()`, `identity`,
    `focal`); `segment(frame, tracker)` → mask or None (the segmentation stage; None to track without masks)."""

    def __init__(self, make_tracker, segment=None, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 session_timeout: float = 30.0):
        import zmq  # noqa: PLC0415

        if host not in LOOPBACK and not token:
            raise RemoteError(f"facecap serve on {host} needs an access token (--token) so that other machines on the "
                              "network cannot use the engine")
        self.make_tracker, self.segment = make_tracker, segment
        self.token, self.session_timeout = token, session_timeout
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if port:
            for attempt in range(30):  # a restarted server: the old socket may hold the port for a moment
                try:
                    self.sock.bind(f"tcp://{host}:{port}")
                    break
                except zmq.ZMQError as exc:
                    if attempt == 29:
                        raise RemoteError(f"cannot listen on {host}:{port} ({exc}): is another facecap serve "
                                          "running there?") from None
                    time.sleep(0.1)
            self.port = port
        else:
            self.port = self.sock.bind_to_random_port(f"tcp://{host}")
        self.address = f"tcp://{'127.0.0.1' if host in LOOPBACK else host}:{self.port}"
        self.sessions: dict[bytes, dict] = {}
        self._stop = threading.Event()

    def _reply(self, ident: bytes, payload: dict) -> None:
        self.sock.send_multipart([ident, json.dumps(payload).encode()])

    def _handle(self, ident: bytes, parts: list) -> None:
        from .run import take_frame  # noqa: PLC0415
        from .engine import Processed  # noqa: PLC0415

        try:
            head = json.loads(parts[0])
        except (ValueError, IndexError):
            return self._reply(ident, {"error": "bad request: the first part must be a JSON header"})
        op = head.get("op")
        if op == "start":
            if self.token and head.get("token") != self.token:
                return self._reply(ident, {"error": "wrong or missing access token"})
            old = self.sessions.pop(ident, None)
            if old:
                old["tracker"].close()
            tracker = self.make_tracker(int(head["width"]), int(head["height"]), float(head.get("fps", 30.0)),
                                        float(head.get("smoothing", 1.0)))
            self.sessions[ident] = {"tracker": tracker, "seen": time.monotonic()}
            return self._reply(ident, {"ok": True})
        session = self.sessions.get(ident)
        if session is None:
            return self._reply(ident, {"error": "no session: send start first", "restart": True})
        session["seen"] = time.monotonic()
        if op == "frame":
            try:
                image = _unjpeg(parts[1])
            except (ValueError, IndexError) as exc:
                return self._reply(ident, {"error": str(exc)})
            tracker = session["tracker"]
            mask = self.segment(image, tracker) if self.segment is not None else None
            result = tracker.track(image, mask)
            p = Processed(int(head["index"]), float(head["time"]), image, mask, result)
            return self._reply(ident, {"frame": take_frame(p)})
        if op == "end":
            self.sessions.pop(ident)["tracker"].close()
            t = session["tracker"]
            return self._reply(ident, {"ok": True, "identity": np.asarray(t.identity).tolist(),
                                       "focal": float(t.focal)})
        return self._reply(ident, {"error": f"unknown op {op!r}"})

    def serve_forever(self, poll_ms: int = 200) -> None:
        import zmq  # noqa: PLC0415

        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            if poller.poll(poll_ms):
                ident, *parts = self.sock.recv_multipart()
                self._handle(ident, parts)
            now = time.monotonic()
            for ident in [i for i, s in self.sessions.items() if now - s["seen"] > self.session_timeout]:
                self.sessions.pop(ident)["tracker"].close()  # the client went away mid-take

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for s in self.sessions.values():
            s["tracker"].close()
        self.sessions.clear()
        self.sock.close(0)


class RemoteSession:
    """One take on a remote engine: `track(index, time, rgb)` → take frame dict; `end()` → (identity, focal)."""

    def __init__(self, address: str, width: int, height: int, fps: float = 30.0, token: str | None = None,
                 timeout: float = 5.0, retries: int = 3, smoothing: float = 1.0):
        import zmq  # noqa: PLC0415

        self.zmq, self.ctx = zmq, zmq.Context.instance()
        self.address, self.token, self.timeout, self.retries = address, token, timeout, retries
        self.start_msg = {"op": "start", "width": int(width), "height": int(height), "fps": float(fps),
                          "smoothing": float(smoothing), "token": token}
        self.sock = None
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
        self.sock = self.ctx.socket(self.zmq.DEALER)
        self.sock.setsockopt(self.zmq.LINGER, 0)
        self.sock.connect(self.address)
        reply = self._request([json.dumps(self.start_msg).encode()])
        if reply is None:
            raise RemoteError(f"no facecap engine answers at {self.address} (start one with `facecap serve`)")
        if "error" in reply:
            raise RemoteError(f"the engine at {self.address} refused the session: {reply['error']}")

    def _request(self, parts: list):
        self.sock.send_multipart(parts)
        if self.sock.poll(int(self.timeout * 1000)):
            return json.loads(self.sock.recv_multipart()[0])
        return None

    def track(self, index: int, time_s: float, rgb: np.ndarray) -> dict:
        parts = [json.dumps({"op": "frame", "index": int(index), "time": float(time_s)}).encode(), _jpeg(rgb)]
        for _attempt in range(self.retries):
            reply = self._request(parts)
            if reply is not None and "frame" in reply:
                return reply["frame"]
            if reply is not None and not reply.get("restart"):
                raise RemoteError(f"the engine at {self.address} failed on frame {index}: {reply.get('error')}")
            # no answer, or the server lost our session (restarted): a fresh socket and a fresh session
            self.reconnects += 1
            try:
                self._connect()
            except RemoteError:
                continue
        raise RemoteError(f"the engine at {self.address} stopped answering (frame {index}); the take keeps the "
                          f"frames so far")

    def end(self):
        reply = self._request([json.dumps({"op": "end"}).encode()])
        self.sock.close(0)
        if reply is None or "error" in reply:
            return None, None
        return np.array(reply["identity"]), reply["focal"]
