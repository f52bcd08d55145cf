"""The remote engine (the paper's GPU offload, design §6 `facecap serve`): frames in as JPEG, results out, over ZeroMQ.

Server: one ROUTER socket. Each client (a ZeroMQ DEALER, one per take) opens a session with
``{"op": "start", "width", "height", "fps", "smoothing", "live", "token"}``, then sends
``{"op": "frame", "index", "time"}`` + a JPEG part per frame and gets back the take frame (design §6) of each
frame, in order; ``{"op": "end"}`` closes the session and, after the last frame's answer, returns the identity and
focal length the key-frame solve found. Each session runs its own CaptureEngine on a thread (segmentation of one
frame beside the tracking of the one before, as in the local engine), fed from the socket, so a client that keeps
a few frames in flight gets the pipelined engine's rate; the socket itself is only touched by the serving loop. A
session that has been silent for `session_timeout` seconds (a client that disappeared) is closed and its engine
released. Bound to anything but loopback, the server requires the access token.

Client: :class:`RemoteSession.run` sends the frames of a source with up to `window` of them in flight and yields
their take frames in order. If no answer comes for `timeout` seconds (the server was restarted or is gone) it
reconnects with a fresh socket, opens the session again and sends the unanswered frames again, so a take goes on
after a server restart (the new session re-detects the face); after `retries` failed attempts in a row it raises
RemoteError.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from collections import OrderedDict

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


class _Take:
    """One client's take on the server: its CaptureEngine on a thread, fed through `inbox`; every answer goes to
    `outbox` as (client identity, reply) for the serving loop to send."""

    def __init__(self, ident: bytes, engine, outbox: queue.Queue):
        self.ident, self.engine, self.outbox = ident, engine, outbox
        self.inbox: queue.Queue = queue.Queue()
        self.seen = time.monotonic()
        self.answer_end = False  # the client said "end": answer with the identity once the last frame is out
        self.thread = threading.Thread(target=self._run, daemon=True, name="facecap-remote-take")
        self.thread.start()

    def _frames(self):
        while True:
            item = self.inbox.get()
            if item is None:
                return
            index, t, data = item
            try:
                image = _unjpeg(data)
            except ValueError as exc:
                self.outbox.put((self.ident, {"error": f"frame {index}: {exc}"}))
                continue
            yield index, t, image

    def _run(self) -> None:
        from .run import take_frame  # noqa: PLC0415

        tracker = self.engine.tracker
        try:
            for p in self.engine.run(self._frames()):  # never drops: the client's window bounds the backlog
                self.outbox.put((self.ident, {"frame": take_frame(p)}))
        except Exception as exc:  # noqa: BLE001 - a broken stage: tell the client, which keeps its frames so far
            self.outbox.put((self.ident, {"error": f"the engine failed: {type(exc).__name__}: {exc}"}))
        finally:
            if self.answer_end:
                self.outbox.put((self.ident, {"ok": True, "identity": np.asarray(tracker.identity).tolist(),
                                              "focal": float(tracker.focal)}))
            tracker.close()

    def close(self, answer: bool = False) -> None:
        self.answer_end = answer
        self.inbox.put(None)


class EngineServer:
    """`make_engine(width, height, fps, smoothing, live)` → a CaptureEngine (its `tracker` has `identity`, `focal`
    and `close()`), one per session."""

    def __init__(self, make_engine, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 session_timeout: float = 30.0):
        import zmq  # noqa: PLC0415

        if host not in LOOPBACK and not token:
            raise RemoteError(f"facecap serve on {host} needs an access token (--token) so that other machines on the "
                              "network cannot use the engine")
        self.make_engine = make_engine
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
        self.sessions: dict[bytes, _Take] = {}
        self.outbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()

    def _reply(self, ident: bytes, payload: dict) -> None:
        self.sock.send_multipart([ident, json.dumps(payload).encode()])

    def _handle(self, ident: bytes, parts: list) -> None:
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
                old.close()
            engine = self.make_engine(int(head["width"]), int(head["height"]), float(head.get("fps", 30.0)),
                                      float(head.get("smoothing", 1.0)), bool(head.get("live", False)))
            self.sessions[ident] = _Take(ident, engine, self.outbox)
            return self._reply(ident, {"ok": True})
        session = self.sessions.get(ident)
        if session is None:
            return self._reply(ident, {"error": "no session: send start first", "restart": True})
        session.seen = time.monotonic()
        if op == "frame":
            if len(parts) < 2:
                return self._reply(ident, {"error": f"frame {head.get('index')}: no image part"})
            session.inbox.put((int(head["index"]), float(head["time"]), parts[1]))
            return None
        if op == "end":
            self.sessions.pop(ident).close(answer=True)
            return None
        return self._reply(ident, {"error": f"unknown op {op!r}"})

    def _send_answers(self) -> None:
        while True:
            try:
                ident, payload = self.outbox.get_nowait()
            except queue.Empty:
                return
            self._reply(ident, payload)

    def serve_forever(self, poll_ms: int = 200) -> None:
        import zmq  # noqa: PLC0415

        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            # while takes run, wake every millisecond to send their answers as they come out
            busy = bool(self.sessions) or not self.outbox.empty()
            if poller.poll(1 if busy else poll_ms):
                ident, *parts = self.sock.recv_multipart()
                self._handle(ident, parts)
            self._send_answers()
            now = time.monotonic()
            for ident in [i for i, s in self.sessions.items() if now - s.seen > self.session_timeout]:
                self.sessions.pop(ident).close()  # the client went away mid-take

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for s in self.sessions.values():
            s.close()
        for s in self.sessions.values():
            s.thread.join(timeout=5)
        self.sessions.clear()
        self.sock.close(0)


class RemoteSession:
    """One take on a remote engine: `run(frames)` → take frame dicts in order (`track` for a single frame);
    `end()` → (identity, focal)."""

    def __init__(self, address: str, width: int, height: int, fps: float = 30.0, token: str | None = None,
                 timeout: float = 5.0, retries: int = 3, smoothing: float = 1.0, live: bool = False,
                 window: int = 4):
        import zmq  # noqa: PLC0415

        self.zmq, self.ctx = zmq, zmq.Context.instance()
        self.address, self.token, self.timeout, self.retries = address, token, timeout, retries
        self.window = max(1, int(window))
        self.start_msg = {"op": "start", "width": int(width), "height": int(height), "fps": float(fps),
                          "smoothing": float(smoothing), "live": bool(live), "token": token}
        self.sock = None
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
        self.sock = self.ctx.socket(self.zmq.DEALER)
        self.sock.setsockopt(self.zmq.LINGER, 0)
        self.sock.connect(self.address)
        self.sock.send_multipart([json.dumps(self.start_msg).encode()])
        reply = self._receive()
        if reply is None:
            raise RemoteError(f"no facecap engine answers at {self.address} (start one with `facecap serve`)")
        if "error" in reply:
            raise RemoteError(f"the engine at {self.address} refused the session: {reply['error']}")

    def _receive(self):
        if self.sock.poll(int(self.timeout * 1000)):
            return json.loads(self.sock.recv_multipart()[0])
        return None

    def run(self, frames):
        """Send (index, time s, RGB) frames, at most `window` unanswered at a time, and yield their take frames in
        order. Raises RemoteError when the engine fails on a frame or cannot be reached after `retries` tries."""
        pending: OrderedDict[int, list] = OrderedDict()  # sent, not yet answered: kept to send again
        source, exhausted, failures = iter(frames), False, 0
        while True:
            while not exhausted and len(pending) < self.window:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                index, time_s, rgb = item
                parts = [json.dumps({"op": "frame", "index": int(index), "time": float(time_s)}).encode(),
                         _jpeg(rgb)]
                pending[int(index)] = parts
                self.sock.send_multipart(parts)
            if not pending:
                return
            reply = self._receive()
            if reply is not None and "frame" in reply:
                failures = 0
                pending.pop(reply["frame"]["index"], None)
                yield reply["frame"]
                continue
            if reply is not None and not reply.get("restart"):
                raise RemoteError(f"the engine at {self.address} failed: {reply.get('error')}")
            # no answer, or the server lost our session (restarted): a fresh socket, a fresh session, and the
            # unanswered frames again
            failures += 1
            if failures > self.retries:
                raise RemoteError(f"the engine at {self.address} stopped answering (frame {next(iter(pending))}); "
                                  "the take keeps the frames so far")
            self.reconnects += 1
            try:
                self._connect()
            except RemoteError:
                continue
            for parts in pending.values():
                self.sock.send_multipart(parts)

    def track(self, index: int, time_s: float, rgb: np.ndarray) -> dict:
        """One frame, sent and answered on its own (no pipelining)."""
        return next(iter(self.run([(index, time_s, rgb)])))

    def end(self):
        """Close the session: (identity, focal) of the take, or (None, None) when the engine does not say."""
        self.sock.send_multipart([json.dumps({"op": "end"}).encode()])
        reply = self._receive()
        while reply is not None and "frame" in reply:  # answers to frames sent before a stop, nobody waits for
            reply = self._receive()
        self.sock.close(0)
        if reply is None or "identity" not in reply:
            return None, None
        return np.array(reply["identity"]), reply["focal"]
