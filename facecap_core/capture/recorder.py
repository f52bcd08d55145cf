"""Recording a take safely (design §6): frames are journaled as they come, the take is written atomically at the end.

While recording, `TAKE.json.journal` holds one JSON line per frame after a header line with the take's metadata; it
is flushed and fsync'ed at least every `flush_seconds` (so a crash loses at most that much), and removed once the
finished take has been written (temp file + rename). :func:`recover_take` turns a journal left by a crash back into
a take.
"""
from __future__ import annotations

import json
import os
import time

from ..take import TakeFileError, make_take, write_take

JOURNAL_SUFFIX = ".journal"


class TakeRecorder:
    def __init__(self, path: str, source: str, fps: float, width: int, height: int, focal: float,
                 flush_seconds: float = 1.0, rig: str = "fw46"):
        self.path = path
        self.journal_path = path + JOURNAL_SUFFIX
        self.header = {"source": source, "fps": float(fps), "width": int(width), "height": int(height),
                       "focal": float(focal), "rig": rig}
        self.frames: list[dict] = []
        self.flush_seconds = flush_seconds
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
            self._fh = open(self.journal_path, "w")
        except OSError as exc:  # before any frame is captured: nothing is lost yet
            raise TakeFileError(f"cannot write the take {path}: {exc.strerror} (choose a writable folder)") from exc
        self._fh.write(json.dumps({"facecap-take-journal": 1, **self.header}) + "\n")
        self._sync()

    def _sync(self):
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._last_sync = time.monotonic()

    def add(self, frame: dict) -> None:
        self.frames.append(frame)
        self._fh.write(json.dumps(frame, separators=(",", ":"), allow_nan=False) + "\n")
        if time.monotonic() - self._last_sync >= self.flush_seconds:
            self._sync()

    def finish(self, identity=None, focal: float | None = None) -> dict:
        """Write the take (atomically) and drop the journal; returns the take."""
        h = self.header
        take = make_take(h["source"], h["fps"], h["width"], h["height"], focal if focal is not None else h["focal"],
                         self.frames, identity=identity, rig=h["rig"])
        self._sync()
        write_take(self.path, take)
        self._fh.close()
        os.remove(self.journal_path)
        return take

    def abort(self) -> None:
        """Stop without a final take: the journal stays (recover_take reads it)."""
        if not self._fh.closed:
            self._sync()
            self._fh.close()


def recover_take(journal_path: str, out_path: str | None = None) -> dict:
    """The take recorded up to a crash, from its journal (a truncated last line is dropped)."""
    try:
        with open(journal_path) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise TakeFileError(f"cannot read take journal {journal_path} ({exc.strerror})") from None
    try:
        head = json.loads(lines[0])
        assert head.get("facecap-take-journal") == 1
    except Exception:
        raise TakeFileError(f"{journal_path} is not a facecap take journal") from None
    frames = []
    for line in lines[1:]:
        try:
            frames.append(json.loads(line))
        except ValueError:
            break  # the line being written when the process died
    take = make_take(head["source"], head["fps"], head["width"], head["height"], head["focal"], frames,
                     rig=head.get("rig", "fw46"))
    if out_path:
        write_take(out_path, take)
    return take
