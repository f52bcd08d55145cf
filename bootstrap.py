"""Set up facecap in a local virtual environment and run it: the only two commands a newcomer needs.

    python3 bootstrap.py demo     # create .venv if missing, install facecap, run `facecap demo`
    python3 bootstrap.py test     # same set-up, then run the full test suite (`python -m pytest -q`)

Extra arguments after the command are passed on (e.g. `python3 bootstrap.py test -k cli`).
Standard library only (Python 3.11; bpy 5.0 exists for 3.11 only). The install step runs again only when
pyproject.toml (or this file's install recipe) changed: a stamp file in .venv holds their hash.

Environment:
  FACECAP_TORCH_INDEX  an index URL for torch alone, e.g. https://download.pytorch.org/whl/cpu to get the
                       CPU-only wheel on Linux instead of PyPI's CUDA build (several GB of nvidia packages).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
STAMP = os.path.join(VENV, ".facecap-install-stamp")
PYTHON_VERSION = (3, 11)
TORCH_PIN = "torch==2.13.0"  # keep equal to pyproject.toml; a looser pin pulls GBs of CUDA packages
RECIPE = "v1: pip install torch pin, then pip install -e .[test]"  # bump to force a reinstall


def venv_python() -> str:
    if os.name == "nt":
        return os.path.join(VENV, "Scripts", "python.exe")
    return os.path.join(VENV, "bin", "python")


def base_python() -> str:
    """A Python 3.11 interpreter to create the venv with: this one, or python3.11 on PATH."""
    if sys.version_info[:2] == PYTHON_VERSION:
        return sys.executable
    other = shutil.which("python%d.%d" % PYTHON_VERSION)
    if other:
        return other
    sys.exit("bootstrap: facecap needs Python %d.%d (bpy 5.0 is built for it only); found %s and no python%d.%d "
             "on PATH: install Python 3.11 and run `python3.11 bootstrap.py ...`"
             % (PYTHON_VERSION + (sys.version.split()[0],) + PYTHON_VERSION))


def install_hash() -> str:
    h = hashlib.sha256(RECIPE.encode())
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        h.update(f.read())
    h.update(os.environ.get("FACECAP_TORCH_INDEX", "").encode())
    return h.hexdigest()


def run(cmd: list[str]) -> None:
    print("bootstrap: $ " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        sys.exit(f"bootstrap: command failed with exit status {rc}: {' '.join(cmd)}")


def ensure_env() -> None:
    t0 = time.time()
    if not os.path.exists(venv_python()):
        run([base_python(), "-m", "venv", VENV])
    wanted = install_hash()
    try:
        with open(STAMP) as f:
            if f.read().strip() == wanted:
                return  # up to date: nothing to install
    except OSError:
        pass
    py = venv_python()
    torch_cmd = [py, "-m", "pip", "install", TORCH_PIN]
    if os.environ.get("FACECAP_TORCH_INDEX"):
        torch_cmd += ["--index-url", os.environ["FACECAP_TORCH_INDEX"]]
    run(torch_cmd)
    run([py, "-m", "pip", "install", "-e", ".[test]"])
    tmp = STAMP + ".tmp"
    with open(tmp, "w") as f:
        f.write(wanted + "\n")
    os.replace(tmp, STAMP)
    print(f"bootstrap: environment ready in {time.time() - t0:.0f} s ({VENV})", flush=True)


def main(argv: list[str]) -> int:
    commands = {"demo": [venv_python(), "-m", "facecap_core.cli", "demo"],
                "test": [venv_python(), "-m", "pytest", "-q"]}
    if not argv or argv[0] not in commands:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    ensure_env()
    cmd = commands[argv[0]] + argv[1:]
    print("bootstrap: $ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
