"""The engine as a child process: `python -m facecap_core.capture.worker SOURCE [options]`.

For front ends whose own Python cannot run the engine (Blender without the bundled wheels, or a CUDA torch that
lives in another environment): they start this in a Python that has facecap_core installed and read its
standard output, one JSON object per line:

    {"open": {"width", "height", "fps", "live", "total"}}     once the source is open
    {"frame": {...}}                                          a take frame (design §6), in order
    {"status": {"done", "tracked", "dropped", "fps"}}         about twice a second
    {"end": {"state", "error", "identity", "focal", "done"}}  last line; state "finished" or "failed"

A line "stop" on standard input ends the capture cleanly (and a parent that goes away breaks the output pipe,
which ends the worker); the exit status is 0 when it finished, 1 when it failed (the "end" line says why).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from .session import CaptureSession, EngineOptions


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m facecap_core.capture.worker", description=__doc__.split("\n")[0])
    ap.add_argument("source", help="video file, image folder/glob, or camera:N")
    ap.add_argument("--mirror", action="store_true")
    ap.add_argument("--smoothing", type=float, default=1.0)
    ap.add_argument("--no-segmentation", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--focal", type=float, default=None)
    ap.add_argument("--remote", default=None, help="tcp://HOST:PORT of a facecap serve engine")
    ap.add_argument("--token", default=None)
    ap.add_argument("--masks", default=None, metavar="DIR", help="write each frame's face mask there")
    return ap.parse_args(argv)


def _watch_stdin(session: CaptureSession) -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            session.stop()
            return
    # standard input closed (or never open): keep going; a parent that went away breaks our stdout instead


def main(argv=None) -> int:
    args = parse_args(argv)
    options = EngineOptions(segmentation=not args.no_segmentation, smoothing=args.smoothing, device=args.device,
                            focal=args.focal, mirror=args.mirror, remote=args.remote, token=args.token,
                            masks_dir=args.masks)
    out = sys.stdout

    def say(obj) -> None:
        out.write(json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n")
        out.flush()

    session = CaptureSession(args.source, options).start()
    threading.Thread(target=_watch_stdin, args=(session,), daemon=True).start()
    if session.width:
        say({"open": {"width": session.width, "height": session.height, "fps": session.source_fps,
                      "live": session.live, "total": session.total}})
    try:
        pump(session, say)
    except BrokenPipeError:  # the parent is gone: nobody to report to
        session.stop()
        session.join(5)
        return 1
    session.join(5)
    say({"end": {"state": session.state, "error": session.error, "identity": session.identity,
                 "focal": session.focal, "done": session.done}})
    return 0 if session.state == "finished" else 1


def pump(session: CaptureSession, say) -> None:
    """Relay frames and status lines until the session has ended and every frame is out."""
    last_status = time.monotonic()
    while True:
        finished = not session.running
        for frame in session.poll():
            say({"frame": frame})
        if time.monotonic() - last_status > 0.5:
            say({"status": {"done": session.done, "tracked": session.tracked, "dropped": session.dropped,
                            "fps": round(session.fps, 2)}})
            last_status = time.monotonic()
        if finished:  # drained after the session stopped: nothing more can come
            return
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
