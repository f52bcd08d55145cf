"""The Blender extension under real Blender (bpy from PyPI, headless): built as a zip, installed into an isolated
user folder, enabled; then the capture, recording, retargeting and error paths, each in its own Blender process.

Timers do not fire in a headless bpy session, so the tests call the add-on's timer function (`capture_ops._tick`)
in a loop, as Blender's event loop would.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.blender

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXT = "bl_ext.user_default.facecap"

PRELUDE = """
import sys, json, time, importlib, os
import numpy as np
import bpy
res = bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default", enable_on_install=True)
assert res == {"FINISHED"}, res
ext = importlib.import_module("%s")
co = importlib.import_module("%s.capture_ops")
scene = bpy.context.scene

def drain(timeout=180):
    t0 = time.time()
    while co.Runtime.client is not None and time.time() - t0 < timeout:
        co._tick()
        time.sleep(0.02)
    assert co.Runtime.client is None, "capture did not end"

def run_op(op, **kw):
    '''(result, error message) of an operator: errors it reports come back as RuntimeError in background mode.'''
    try:
        return sorted(op(**kw)), ""
    except RuntimeError as exc:
        return ["ERROR"], str(exc).strip()
""" % (EXT, EXT)


def run_blender(python: str, zip_path: str, user_dir: str, code: str, *args: str) -> dict:
    """Run `code` in a fresh bpy process with the extension installed; the last stdout line must be JSON."""
    env = dict(os.environ, BLENDER_USER_RESOURCES=user_dir)
    # os._exit after the JSON line: bpy 4.2 as a Python module can crash in its own exit handlers, after the
    # checks are done (5.0 exits cleanly either way)
    proc = subprocess.run([python, "-c", PRELUDE + textwrap.dedent(code) + "\nsys.stdout.flush(); os._exit(0)\n",
                           zip_path, *args], capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory, rig_path):
    spec = importlib.util.spec_from_file_location("build_addon", os.path.join(ROOT, "build_addon.py"))
    build_addon = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_addon)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "build_addon.py"), "--no-wheels", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    zips = [f for f in os.listdir(out) if f.endswith(".zip")]
    assert len(zips) == 1
    return str(out / zips[0])


@pytest.fixture
def blender(bpy_python, extension_zip, tmp_path):
    def run(code, *args):
        return run_blender(bpy_python, extension_zip, str(tmp_path / "user"), code, *args)
    return run


def test_install_enable_disable_reenable_leaves_nothing_behind(blender):
    out = blender("""
    def state():
        return {"panels": sorted(n for n in dir(bpy.types) if n.startswith("FACECAP_")),
                "scene_props": [p for p in ("facecap", "facecap_retarget", "facecap_composite")
                                if hasattr(bpy.types.Scene, p)],
                "ops": sorted(n for n in dir(bpy.ops.facecap)),
                "timers": bpy.app.timers.is_registered(co._tick)}
    on = state()
    bpy.ops.preferences.addon_disable(module=%r)
    off = {"panels": sorted(n for n in dir(bpy.types) if n.startswith("FACECAP_")),
           "scene_props": [p for p in ("facecap", "facecap_retarget") if hasattr(bpy.types.Scene, p)]}
    bpy.ops.preferences.addon_enable(module=%r)
    again = state()
    print(json.dumps({"on": on, "off": off, "again": again}))
    """ % (EXT, EXT))
    on, off, again = out["on"], out["off"], out["again"]
    assert {"FACECAP_PT_main", "FACECAP_PT_live", "FACECAP_PT_record", "FACECAP_PT_retarget"} <= set(on["panels"])
    assert {"live_start", "live_stop", "record", "process_footage", "calibrate_neutral", "import_take",
            "export_take", "export_csv", "retarget_add", "import_face_rig"} <= set(on["ops"])
    assert on["scene_props"][:2] == ["facecap", "facecap_retarget"]
    assert off["panels"] == [] and off["scene_props"] == []
    assert again["panels"] == on["panels"] and not again["timers"]


PROCESS = """
bpy.ops.facecap.import_face_rig()
rig = scene.facecap.rig
# a character with ARKit-named shape keys (Basis + 52), a head empty
mesh = bpy.data.meshes.new("Char"); mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
char = bpy.data.objects.new("Char", mesh); scene.collection.objects.link(char)
char.shape_key_add(name="Basis")
names = importlib.import_module(%r + ".facecap_core.take").ARKIT_NAMES
for n in names:
    char.shape_key_add(name=n)
head = bpy.data.objects.new("Head", None); scene.collection.objects.link(head)
# an armature with a head bone and two eye bones, bones pointing up (+Z) as usual
arm_data = bpy.data.armatures.new("Arm"); arm = bpy.data.objects.new("Arm", arm_data)
scene.collection.objects.link(arm); bpy.context.view_layer.objects.active = arm
bpy.ops.object.mode_set(mode="EDIT")
for name, head_pos in (("head", (0, 0, 0)), ("eye.L", (0.03, -0.08, 0.05)), ("eye.R", (-0.03, -0.08, 0.05))):
    b = arm_data.edit_bones.new(name); b.head = head_pos; b.tail = (head_pos[0], head_pos[1], head_pos[2] + 0.05)
bpy.ops.object.mode_set(mode="OBJECT")
for o in bpy.context.selected_objects: o.select_set(False)
char.select_set(True)
assert bpy.ops.facecap.retarget_add() == {"FINISHED"}
rt = scene.facecap_retarget
rt.head_object, rt.armature, rt.head_bone, rt.eye_bone_l, rt.eye_bone_r = head, arm, "head", "eye.L", "eye.R"
scene.facecap.source = "FILE"; scene.facecap.filepath = sys.argv[2]; scene.facecap.take_dir = sys.argv[3]
scene.render.fps = 30
scene.frame_start, scene.frame_end = 1, 24
prefs = bpy.context.preferences.addons[%r].preferences
result = {}
for mode in ("IN_PROCESS", "WORKER"):
    prefs.engine = mode; prefs.python = sys.executable
    assert bpy.ops.facecap.process_footage() == {"FINISHED"}
    drain()
    take = json.load(open(bpy.path.abspath(scene.facecap.last_take)))
    keys = rig.data.shape_keys
    fc = keys.animation_data.action and [f for f in co.keyframes._channel_container(keys) if
                                         f.data_path == 'key_blocks["JawOpen"].value'][0]
    co_rig = [list(p.co) for p in fc.keyframe_points]
    cfc = [f for f in co.keyframes._channel_container(char.data.shape_keys) if f.data_path == 'key_blocks["jawOpen"].value'][0]
    co_char = [list(p.co) for p in cfc.keyframe_points]
    sampled = []
    for f in (1, 6, 12):
        scene.frame_set(f)
        pb = arm.pose.bones["head"]  # its rotation relative to the rest pose, in armature space
        bone_world = (arm.matrix_world @ pb.matrix @ pb.bone.matrix_local.inverted()).to_quaternion()
        sampled.append({"head": list(head.rotation_quaternion), "rig": list(scene.facecap.head.rotation_quaternion),
                        "bone": list(bone_world), "rig_parent": rig.parent.name,
                        "eye_l": list(arm.pose.bones["eye.L"].rotation_quaternion)})
    exported = os.path.join(sys.argv[3], mode + "_export.json")
    assert bpy.ops.facecap.export_take(filepath=exported) == {"FINISHED"}
    masks = bpy.path.abspath(scene.facecap_composite.masks_dir)
    result[mode] = {"status": scene.facecap.status, "take": take, "rig_jaw": co_rig, "char_jaw": co_char,
                    "sampled": sampled, "exported": json.load(open(exported)),
                    "masks": sorted(os.listdir(masks)) if os.path.isdir(masks) else []}
    for o in (rig.data.shape_keys, char.data.shape_keys, head, rig, scene.facecap.head, arm):
        o.animation_data_clear()
print(json.dumps(result))
""" % (EXT, EXT)


@pytest.mark.slow
def test_process_footage_bakes_the_rig_a_character_and_the_head_in_process_and_in_a_worker(blender, face_clip,
                                                                                               tmp_path):
    from facecap_core.take import ARKIT_NAMES, arkit_scores

    path, _seq = face_clip
    out = blender(PROCESS, path, str(tmp_path / "takes"))
    jaw, arkit_jaw = 19, ARKIT_NAMES.index("jawOpen")
    for mode, r in out.items():
        frames = [f for f in r["take"]["frames"] if f["tracked"]]
        assert len(r["take"]["frames"]) == 24 and len(frames) >= 18, (mode, r["status"])
        assert r["masks"] == [f"frame_{i:06d}.png" for i in range(24)]  # for the compositor, either engine
        want_t = [1 + 30 * f["time"] for f in frames]
        rig = np.array(r["rig_jaw"])
        np.testing.assert_allclose(rig[:, 0], want_t, atol=1e-3)  # keys at the take's timestamps
        np.testing.assert_allclose(rig[:, 1], [f["expression"][jaw] for f in frames], atol=1e-5)
        char = np.array(r["char_jaw"])  # the ARKit character: the take's default ARKit mapping
        np.testing.assert_allclose(char[:, 1], arkit_scores(np.array([f["expression"] for f in frames]))[:, arkit_jaw],
                                   atol=1e-5)
        # the retarget head empty and head bone follow the take's rotation as the rig's own head empty does
        for s in r["sampled"]:
            assert s["rig_parent"].endswith("_Head")
            assert abs(abs(np.dot(s["head"], s["rig"])) - 1) < 1e-4
            assert abs(abs(np.dot(s["bone"], s["rig"])) - 1) < 1e-4
            assert abs(np.linalg.norm(s["eye_l"]) - 1) < 1e-4
        # export_take samples the rig back: at the keyed frames it gives the take's coefficients again
        exported = {f["index"]: f for f in r["exported"]["frames"]}
        for f in frames:
            i = int(round(30 * f["time"]))
            np.testing.assert_allclose(exported[i]["expression"], f["expression"], atol=1e-5)
            assert abs(abs(np.dot(exported[i]["rotation"], f["rotation"])) - 1) < 1e-5
    a, b = (np.array(out[m]["rig_jaw"]) for m in ("IN_PROCESS", "WORKER"))
    # the same engine either way, and footage is deterministic: the same take from both
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-6


def test_retarget_detects_every_naming_scheme_and_presets_round_trip(blender, tmp_path):
    from facecap_core.retarget import scheme_names

    schemes = {s: list(scheme_names(s)) for s in ("arkit", "livelink", "suffix_lr", "cc", "fw46")}
    out = blender("""
    schemes = json.loads(sys.argv[2])
    found = {}
    for scheme, names in schemes.items():
        mesh = bpy.data.meshes.new(scheme); mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
        obj = bpy.data.objects.new(scheme, mesh); scene.collection.objects.link(obj)
        obj.shape_key_add(name="Basis")
        for n in names + ["Fat", "MouthCorrective"]:
            obj.shape_key_add(name=n)
        for o in bpy.context.selected_objects: o.select_set(False)
        obj.select_set(True)
        bpy.ops.facecap.retarget_add()
        t = scene.facecap_retarget.targets[-1]
        found[scheme] = [t.scheme, len(t.channels)]
    s = scene.facecap_retarget
    t = s.targets[s.active_target]
    t.channels[0].gain, t.channels[0].mirror = 1.7, True
    preset = os.path.join(sys.argv[3], "preset.json")
    r_save = run_op(bpy.ops.facecap.retarget_save_preset, filepath=preset)
    t.channels[0].gain, t.channels[0].mirror = 1.0, False
    r_load = run_op(bpy.ops.facecap.retarget_load_preset, filepath=preset)
    open(os.path.join(sys.argv[3], "bad.json"), "w").write("{not json")
    r_bad = run_op(bpy.ops.facecap.retarget_load_preset, filepath=os.path.join(sys.argv[3], "bad.json"))
    print(json.dumps({"found": found, "save": r_save, "load": r_load, "bad": r_bad,
                      "restored": [t.channels[0].gain, t.channels[0].mirror], "n": len(t.channels)}))
    """, json.dumps(schemes), str(tmp_path))
    for scheme, names in schemes.items():
        assert out["found"][scheme] == [scheme, len(names)], scheme
    assert out["save"] == [["FINISHED"], ""] and out["load"] == [["FINISHED"], ""]
    assert out["restored"][0] == pytest.approx(1.7) and out["restored"][1] is True
    assert out["bad"][0] == ["ERROR"] and "bad.json" in out["bad"][1]


def test_bad_input_gives_a_blender_error_and_keeps_recorded_frames(blender, face_clip, tmp_path):
    from conftest import write_clip

    _, seq = face_clip  # five times as long, so that the engine is surely killed mid-take
    path = write_clip(str(tmp_path / "long.avi"), np.concatenate([seq.frames] * 5))
    out = blender("""
    res = {}
    # a camera that is not there: the engine fails on its thread; the timer reports it in one line
    scene.facecap.source = "CAMERA"; scene.facecap.camera_index = 7
    res["camera_op"] = run_op(bpy.ops.facecap.live_start)
    drain()
    res["camera_status"] = scene.facecap.status
    # a movie clip whose file was deleted
    import shutil
    gone = os.path.join(sys.argv[3], "gone.avi"); shutil.copy(sys.argv[2], gone)
    clip = bpy.data.movieclips.load(gone); os.remove(gone)
    scene.facecap.source = "CLIP"; scene.facecap.clip = clip
    res["clip"] = run_op(bpy.ops.facecap.process_footage)
    # a target without shape keys
    bpy.ops.mesh.primitive_cube_add()
    res["target"] = run_op(bpy.ops.facecap.retarget_add)
    # an engine that dies mid-take, while recording: the frames so far are kept and baked
    bpy.ops.facecap.import_face_rig()
    prefs = bpy.context.preferences.addons[%r].preferences
    prefs.engine = "WORKER"; prefs.python = sys.executable
    scene.facecap.source = "FILE"; scene.facecap.filepath = sys.argv[2]; scene.facecap.take_dir = sys.argv[3]
    res["live"] = run_op(bpy.ops.facecap.live_start)
    t0 = time.time()
    while co.Runtime.client.done < 3 and time.time() - t0 < 120:
        co._tick(); time.sleep(0.01)
    res["record"] = run_op(bpy.ops.facecap.record)
    recorded = 0
    while recorded < 3 and time.time() - t0 < 120:
        co._tick(); time.sleep(0.01)
        recorded = len(co.Runtime.recorder.frames) if co.Runtime.recorder else 99
    co.Runtime.client.proc.kill()
    drain()
    res["died_status"] = scene.facecap.status
    res["take"] = bpy.path.abspath(scene.facecap.last_take)
    print(json.dumps(res))
    """ % EXT, path, str(tmp_path))
    assert out["camera_op"] == [["FINISHED"], ""]
    assert "camera camera:7 will not open" in out["camera_status"]
    assert out["clip"][0] == ["ERROR"] and "missing" in out["clip"][1]
    assert out["target"][0] == ["ERROR"] and "no shape keys" in out["target"][1]
    assert out["live"] == [["FINISHED"], ""] and out["record"] == [["FINISHED"], ""]
    assert "ended unexpectedly" in out["died_status"] and "recorded" in out["died_status"]
    take = json.load(open(out["take"]))
    assert len(take["frames"]) >= 3 and take["frames"][0]["time"] == 0.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_live_capture_with_neutral_calibration_and_a_remote_engine(blender, face_clip, tmp_path):
    """Live: the rig follows the frames; Calibrate Neutral takes the current face; Record writes a take and the
    baked keys are the calibrated coefficients. Then the same footage through a `facecap serve` engine."""
    from conftest import write_clip

    _, seq = face_clip
    path = write_clip(str(tmp_path / "long.avi"), np.concatenate([seq.frames] * 3))
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "facecap_core.cli", "serve", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in server.stdout.readline()
        out = blender("""
        bpy.ops.facecap.import_face_rig()
        rig = scene.facecap.rig
        s = scene.facecap
        s.source = "FILE"; s.filepath = sys.argv[2]; s.take_dir = sys.argv[3]
        prefs = bpy.context.preferences.addons[%r].preferences
        res = {"live": run_op(bpy.ops.facecap.live_start)}
        t0 = time.time()
        while (co.Runtime.last_frame is None or co.Runtime.client.done < 5) and time.time() - t0 < 120:
            co._tick(); time.sleep(0.01)
        jaw_live = rig.data.shape_keys.key_blocks["JawOpen"].value
        res["jaw_live"] = [jaw_live, co.Runtime.last_frame["expression"][19]]
        res["calibrate"] = run_op(bpy.ops.facecap.calibrate_neutral)
        res["neutral"] = list(s.neutral)
        res["record"] = run_op(bpy.ops.facecap.record)
        drain()
        res["status"] = s.status
        res["take"] = json.load(open(bpy.path.abspath(s.last_take)))
        fc = [f for f in co.keyframes._channel_container(rig.data.shape_keys)
              if f.data_path == 'key_blocks["JawOpen"].value'][0]
        res["keys"] = [list(p.co) for p in fc.keyframe_points]
        # the remote engine
        rig.data.shape_keys.animation_data_clear()
        s.use_neutral = False
        prefs.engine = "REMOTE"; prefs.remote = "tcp://127.0.0.1:%d"
        res["remote_op"] = run_op(bpy.ops.facecap.process_footage)
        drain()
        res["remote_status"] = s.status
        res["remote_take"] = json.load(open(bpy.path.abspath(s.last_take)))
        print(json.dumps(res))
        """ % (EXT, port), path, str(tmp_path / "takes"))
    finally:
        server.terminate()
        server.wait(10)
    assert out["live"] == [["FINISHED"], ""] and out["calibrate"] == [["FINISHED"], ""]
    assert out["jaw_live"][0] == pytest.approx(out["jaw_live"][1], abs=1e-6)  # the rig follows the live frame
    assert out["record"] == [["FINISHED"], ""] and "recorded" in out["status"]
    n = np.clip(np.array(out["neutral"]), 0, 0.95)
    frames = [f for f in out["take"]["frames"] if f["tracked"]]
    assert 10 <= len(frames) < 72 and out["take"]["frames"][0]["time"] == 0.0
    want = np.clip((np.array([f["expression"][19] for f in frames]) - n[19]) / (1 - n[19]), 0, 1)
    np.testing.assert_allclose(np.array(out["keys"])[:, 1], want, atol=1e-5)  # baked = calibrated values
    assert out["remote_op"] == [["FINISHED"], ""] and "processed 72 frames" in out["remote_status"]
    assert sum(f["tracked"] for f in out["remote_take"]["frames"]) >= 54
