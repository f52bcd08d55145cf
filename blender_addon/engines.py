"""Where the capture engine runs, behind one client interface (no bpy here: these objects live on the main thread
but their work happens on threads or in a child process, and only the main thread's timer touches Blender).

    client = start_client(mode, spec, options, python=...)   # mode: "IN_PROCESS", "WORKER" (remote = options.remote)
    client.poll() -> [take frames]        # main thread, never blocks
    client.stop(); client.state ("starting", "running", "finished", "failed"); client.error (one line)
    client.done, client.total, client.fps, client.width, client.height, client.source_fps, client.identity, client.focal

* in Blender's process: facecap_core's CaptureSession on a background thread (needs the bundled wheels);
* worker: `python -m facecap_core.capture.worker` in an external Python that has facecap_core's dependencies
  (e.g. one with CUDA torch), read line by line on a thread;
* remote: either of the two with `options.remote` set: frames are read here and tracked by `facecap serve`.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading

ENGINE_MODULES = ("cv2", "scipy.optimize", "numba", "maxflow", "onnxruntime")


def core():
    """The facecap_core package: the copy inside the extension, or an installed one in a source checkout."""
    try:
        from . import facecap_core  # type: ignore[attr-defined]  # noqa: PLC0415 - inside the extension zip
    except ImportError:
        import facecap_core  # noqa: PLC0415
    return facecap_core


def core_module(name: str):
    """A submodule of facecap_core, e.g. core_module("capture.session")."""
    import importlib  # noqa: PLC0415

    return importlib.import_module(f"{core().__name__}.{name}")


def core_root() -> str:
    """The folder that holds facecap_core/ and models/ (the extension's own folder, or the checkout)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(core().__file__)))


def in_process_status() -> tuple[bool, str]:
    """(whether the engine can run inside Blender, why not / what is used)."""
    import importlib  # noqa: PLC0415

    missing = []
    for name in ENGINE_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an ImportError, or a wheel that fails to load
            missing.append(name.split(".")[0])
    if missing:
        return False, (f"missing in Blender's Python: {', '.join(missing)} (install the platform build of the "
                       "extension, or use an external Python / a remote engine)")
    return True, "in Blender's process (bundled wheels, onnxruntime on the CPU)"


def worker_status(python: str) -> tuple[bool, str]:
    """(whether `python` can run the worker, why not)."""
    if not python:
        return False, "no external Python set (Preferences → Add-ons → Facecap)"
    exe = shutil.which(python) or (python if os.path.isfile(python) else None)
    if exe is None:
        return False, f"external Python not found: {python}"
    probe = "import " + ", ".join(m.split(".")[0] for m in ENGINE_MODULES) + "; import facecap_core"
    try:
        proc = subprocess.run([exe, "-c", probe], capture_output=True, text=True, timeout=60, env=_worker_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"external Python {python} does not run ({type(exc).__name__})"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        return False, f"external Python {python} cannot run the engine: {last}"
    return True, f"external Python {exe} (worker process)"


def _worker_env() -> dict:
    """The worker finds facecap_core (and models/) in the extension when its Python has no installed copy."""
    env = dict(os.environ)
    env["PYTHONPATH"] = core_root() + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONHOME", None)  # Blender's own, which would break another Python
    return env


class InProcessClient:
    """facecap_core's CaptureSession: the same attributes, plus the client interface."""

    def __init__(self, spec: str, options):
        self.session = core_module("capture.session").CaptureSession(spec, options)

    def start(self):
        self.session.start()
        return self

    def __getattr__(self, name):  # state, error, done, total, fps, width, height, … of the session
        return getattr(self.session, name)

    def poll(self):
        return self.session.poll()

    def stop(self):
        self.session.stop()

    def close(self, timeout: float = 5.0):
        self.session.stop()
        self.session.join(timeout)


class WorkerClient:
    """The worker process: JSON lines read on a thread; its death mid-take is a "failed" state, one line."""

    def __init__(self, python: str, spec: str, options):
        self.python, self.spec, self.options = python, spec, options
        self.state, self.error = "starting", ""
        self.done = self.tracked = self.dropped = 0
        self.total, self.fps, self.live = None, 0.0, False
        self.width = self.height = 0
        self.source_fps = 30.0
        self.identity = self.focal = None
        self.proc = None
        self._frames: queue.Queue = queue.Queue()
        self._stderr_tail: list[str] = []

    def command(self) -> list[str]:
        o = self.options
        cmd = [self.python, "-u", "-m", "facecap_core.capture.worker", self.spec, "--smoothing", str(o.smoothing),
               "--device", o.device]
        if o.mirror:
            cmd.append("--mirror")
        if not o.segmentation:
            cmd.append("--no-segmentation")
        if o.focal:
            cmd += ["--focal", str(o.focal)]
        if o.remote:
            cmd += ["--remote", o.remote] + (["--token", o.token] if o.token else [])
        if o.masks_dir:
            cmd += ["--masks", o.masks_dir]
        return cmd

    def start(self):
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=_worker_env(), bufsize=1)
        except OSError as exc:
            self.state, self.error = "failed", f"cannot start the external Python {self.python}: {exc}"
            return self
        threading.Thread(target=self._read, daemon=True, name="facecap-worker-out").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="facecap-worker-err").start()
        return self

    def _read(self):
        ended = False
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # a stray print of a library: not ours
            if "frame" in msg:
                self._frames.put(msg["frame"])
                self.done += 1
                self.tracked += int(msg["frame"].get("tracked", False))
            elif "open" in msg:
                o = msg["open"]
                self.width, self.height, self.source_fps = o["width"], o["height"], o["fps"]
                self.total, self.live, self.state = o.get("total"), o.get("live", False), "running"
            elif "status" in msg:
                self.fps, self.dropped = msg["status"]["fps"], msg["status"]["dropped"]
            elif "end" in msg:
                e, ended = msg["end"], True
                self.identity, self.focal = e.get("identity"), e.get("focal")
                self.error = e.get("error") or ""
                self.state = e.get("state", "finished")
        code = self.proc.wait()
        if not ended:  # killed, crashed, or a Python without the engine: keep the frames, say why in one line
            tail = self._stderr_tail[-1] if self._stderr_tail else f"exit status {code}"
            self.state, self.error = "failed", f"the engine process ended unexpectedly ({tail})"

    def _read_stderr(self):
        for line in self.proc.stderr:
            if line.strip():
                self._stderr_tail = (self._stderr_tail + [line.strip()])[-20:]

    def poll(self):
        out = []
        while True:
            try:
                out.append(self._frames.get_nowait())
            except queue.Empty:
                return out

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass

    def close(self, timeout: float = 5.0):
        self.stop()
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_client(mode: str, spec: str, options, python: str = ""):
    """A started client of the chosen kind ("IN_PROCESS" or "WORKER")."""
    if mode == "WORKER":
        return WorkerClient(python or sys.executable, spec, options).start()
    return InProcessClient(spec, options).start()
