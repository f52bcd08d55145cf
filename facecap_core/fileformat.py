"""Reading facecap's own JSON files (takes, retarget presets): present, valid JSON, the right format and version,
else one line that names the file, what is wrong and what to do."""
from __future__ import annotations

import json
import os


def read_versioned_json(path: str, fmt: str, version: int, error: type[Exception], what: str,
                        remedy: str) -> dict:
    """The JSON object in `path`, checked to be a `fmt` v`version` file. Raises `error` (one line) when the file
    is missing, not JSON, or another format; `what` names the kind of file, `remedy` says how to get a good one."""
    if not os.path.exists(path):
        raise error(f"{what} not found: {path}; check the path")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise error(f"{what} {path} is not readable JSON ({exc.__class__.__name__}); {remedy}") from exc
    if not isinstance(data, dict) or data.get("format") != fmt or data.get("version") != version:
        found = (data.get("format"), data.get("version")) if isinstance(data, dict) else type(data).__name__
        raise error(f"{path} is not a {fmt} v{version} file (found {found}); {remedy}")
    return data


def make_output_folder(path: str, what: str, error: type[Exception]) -> None:
    """Create an output folder (and its parents), or raise `error` with one line naming `what` and `path` (a file in
    the way, no permission, a path that cannot exist)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot make {what} {path}: {exc.strerror} (choose a writable folder)") from exc


def write_json_atomic(path: str, data, **dump_options) -> None:
    """Write `data` as JSON so that a crash leaves either the old file or the new one, never half of one (temp file
    in the same folder, fsync, rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, allow_nan=False, **dump_options)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
