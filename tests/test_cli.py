"""`facecap` command line: rig info, demo (without Blender), expected errors, and the take file."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from facecap_core.cli import main
from facecap_core.rig.model import EXPRESSION_NAMES
from facecap_core.take import ARKIT_NAMES, TakeFileError, arkit_scores, read_take, write_take

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facecap_core.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0]


def test_rig_info_prints_summary(rig_path, capsys):
    assert main(["rig", "info", "--rig", rig_path]) == 0
    out = capsys.readouterr().out
    assert "vertices   478" in out
    assert "variance explained" in out and "provenance:" in out
    for name in ("EyeBlink_L", "JawOpen", "LipsTogether"):
        assert name in out


def test_missing_rig_is_one_line_error(tmp_path):
    missing = str(tmp_path / "nope.npz")
    assert_one_line_error(run_cli("rig", "info", "--rig", missing), "rig file not found", missing)


def test_corrupt_rig_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert_one_line_error(run_cli("demo", "--rig", str(bad), "--out", str(tmp_path / "o")), "corrupt", str(bad))


def test_track_missing_input_is_one_line_error(tmp_path):
    missing = str(tmp_path / "nope.mp4")
    proc = run_cli("track", missing, "--out", str(tmp_path / "t.json"))
    assert_one_line_error(proc, "input not found", missing)
    assert not (tmp_path / "t.json").exists()


def test_unwritable_output_folders_are_one_line_errors(tmp_path):
    """A take path in a folder that cannot be made, --masks or a dataset naming a file: one line, before any
    frame or sample."""
    import cv2
    import numpy as np

    clip = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (96, 96))
    for _ in range(3):
        writer.write(np.full((96, 96, 3), 128, np.uint8))
    writer.release()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    take = str(a_file / "take.json")
    assert_one_line_error(run_cli("track", clip, "--out", take, "--no-segmentation", "--no-progress"),
                          "cannot write the take", take)
    masks = str(a_file)
    assert_one_line_error(run_cli("track", clip, "--out", str(tmp_path / "t.json"), "--masks", masks,
                                  "--no-segmentation", "--no-progress"), "cannot make the masks folder", masks)
    assert not (tmp_path / "t.json").exists()
    assert_one_line_error(run_cli("data", "build", "--out", masks, "--faces", "none", "--occluders", "none",
                                  "--backgrounds", "none", "--no-progress"), "cannot make the dataset folder", masks)


def test_unknown_command_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["juggle"])
    assert exc.value.code == 2


def test_demo_without_blend_writes_a_valid_take(rig_path, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--rig", rig_path, "--out", str(out), "--frames", "12", "--no-blend"]) == 0
    take = read_take(str(out / "take.json"))
    assert take["format"] == "facecap-take" and take["version"] == 1 and take["rig"] == "fw46"
    assert take["expression_names"] == list(EXPRESSION_NAMES)
    assert len(take["identity"]) == 50 and len(take["frames"]) == 12
    f = take["frames"][3]
    assert f["tracked"] and len(f["expression"]) == 46 and len(f["landmarks"]) == 73
    assert list(f["arkit"]) == list(ARKIT_NAMES)
    assert np.isclose(np.linalg.norm(f["rotation"]), 1.0)
    lm = np.load(out / "landmarks.npz")["landmarks"]
    assert lm.shape == (12, 73, 2)
    assert np.all((lm > 0) & (lm < [640, 480]))  # the face is in the picture
    assert not list(out.glob("*.tmp"))  # atomic write left no temp file
    assert "take →" in capsys.readouterr().out


def test_demo_without_bpy_is_one_line_error(rig_path, tmp_path):
    base = getattr(sys, "_base_executable", None)
    if not base or subprocess.run([base, "-c", "import bpy"], capture_output=True).returncode == 0:
        pytest.skip("no Python without bpy to try")
    proc = run_cli("demo", "--rig", rig_path, "--out", str(tmp_path / "o"), "--frames", "3", "--python", base)
    assert_one_line_error(proc, "bpy")


def test_arkit_mapping_follows_the_default_preset():
    x = np.zeros(46)
    x[EXPRESSION_NAMES.index("MouthSmile_L")] = 0.7
    x[EXPRESSION_NAMES.index("Sneer")] = 0.4
    x[EXPRESSION_NAMES.index("BrowsU_C")] = 1.0
    a = dict(zip(ARKIT_NAMES, arkit_scores(x)))
    assert a["mouthSmileLeft"] == pytest.approx(0.7) and a["mouthSmileRight"] == 0.0
    assert a["noseSneerLeft"] == pytest.approx(0.4) == a["noseSneerRight"]
    assert a["browInnerUp"] == 1.0 and a["tongueOut"] == 0.0 and a["mouthPressLeft"] == 0.0
    assert sum(v > 0 for v in a.values()) == 4


def test_take_reader_rejects_wrong_files(tmp_path):
    with pytest.raises(TakeFileError, match="not found"):
        read_take(str(tmp_path / "missing.json"))
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(TakeFileError, match="not readable JSON"):
        read_take(str(tmp_path / "junk.json"))
    write_take(str(tmp_path / "other.json"), {"format": "something-else", "version": 3})
    with pytest.raises(TakeFileError, match="not a facecap-take v1"):
        read_take(str(tmp_path / "other.json"))
    assert json.loads((tmp_path / "other.json").read_text())["version"] == 3


def test_track_a_generated_clip_end_to_end(rig_path, tmp_path):
    """`facecap track` on a clip the project renders itself (procedural texture): a valid take, mostly tracked,
    landmarks near the truth; the preview and masks are written."""
    import cv2
    import numpy as np

    from facecap_core.data.synth import SyntheticFaces
    from facecap_core.data.texture import procedural_library
    from facecap_core.rig.model import FaceRig
    from facecap_core.track.cascade import landmark_error
    from facecap_core.track.sequences import synthetic_sequence

    if not os.path.exists(os.path.join(ROOT, "models", "tracker_dde.npz")):
        pytest.skip("no trained tracker in models/")
    rig = FaceRig.load(rig_path)
    gen = SyntheticFaces(rig, procedural_library(rig, 2, size=128, seed=1), None, size=256)
    seq = synthetic_sequence(gen, np.random.default_rng(4), n_frames=20, yaw_amplitude=15)
    clip = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (256, 256))
    for f in seq.frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    take_path = str(tmp_path / "take.json")
    preview = tmp_path / "previews" / "p.mp4"  # a folder that does not exist yet: made like the take's
    proc = run_cli("track", clip, "--out", take_path, "--preview", str(preview), "--masks",
                   str(tmp_path / "m"), "--focal", str(seq.focal), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    take = read_take(take_path)
    assert len(take["frames"]) == 20 and take["width"] == 256
    tracked = [f for f in take["frames"] if f["tracked"]]
    assert len(tracked) >= 15
    err = [landmark_error(np.array(f["landmarks"])[None], seq.landmarks[f["index"]][None])[0] for f in tracked]
    assert np.median(err) < 10.0
    # smoothed by default, with the unfiltered values kept beside: equal at a (re)start, apart afterwards
    assert all(len(f["raw"]["expression"]) == 46 and len(f["raw"]["rotation"]) == 4 for f in tracked)
    assert any(f["raw"]["expression"] != f["expression"] for f in tracked)
    assert os.path.getsize(preview) > 1000 and len(os.listdir(tmp_path / "m")) == 20
    assert not os.path.exists(take_path + ".journal")


def test_bench_prints_stage_table_for_a_clip(tmp_path):
    """`facecap bench` on the demo's kind of clip: a per-stage table and the end-to-end rate."""
    import cv2
    import numpy as np

    from facecap_core.data.synth import SyntheticFaces
    from facecap_core.data.texture import procedural_library
    from facecap_core.rig.model import load_rig
    from facecap_core.track.sequences import synthetic_sequence

    if not os.path.exists(os.path.join(ROOT, "models", "tracker_dde.npz")):
        pytest.skip("no trained tracker in models/")
    rig = load_rig()
    gen = SyntheticFaces(rig, procedural_library(rig, 1, size=128, seed=2), None, size=256)
    seq = synthetic_sequence(gen, np.random.default_rng(5), n_frames=8)
    clip = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (256, 256))
    for f in seq.frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    proc = run_cli("bench", clip, "--frames", "8", "--no-teacher", "--no-segmentation")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DDE regression" in proc.stdout and "end to end (pipelined):" in proc.stdout
