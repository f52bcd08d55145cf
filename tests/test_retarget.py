"""facecap_core.retarget: naming-scheme detection, the editable mapping, JSON presets, gaze angles."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from facecap_core.retarget import (MAX_GAZE_PITCH, MAX_GAZE_YAW, SCHEMES, Channel, Mapping, PresetError,
                                   detect_scheme, gaze_angles, load_preset, mirror_source, normalize, save_preset,
                                   scheme_names, source_values, spell)
from facecap_core.rig.model import EXPRESSION_NAMES, RigFileError, load_rig
from facecap_core.take import ARKIT_NAMES, make_frame, make_take

JUNK = ["Basis", "Fat", "MouthCorrective"]
ARKIT_STYLE = [s for s in SCHEMES if s != "fw46"]


def frame_of(expression, index: int = 0) -> dict:
    return make_frame(index, index / 30.0, expression, rotation=[1, 0, 0, 0], translation=[0, 0, 50],
                      landmarks=np.zeros((73, 2)))


def random_expressions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, len(EXPRESSION_NAMES)))


# -- schemes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_detects_each_full_scheme_among_junk_keys(scheme):
    names = list(scheme_names(scheme))
    targets = JUNK[:1] + names[::-1] + JUNK[1:]
    d = detect_scheme(targets)
    assert d.scheme == scheme
    assert d.coverage == 1.0
    assert d.unmatched == tuple(JUNK)
    sources = EXPRESSION_NAMES if scheme == "fw46" else ARKIT_NAMES
    assert d.mapping == dict(zip(names, sources)) and list(d.mapping) == names[::-1]


def test_scheme_spellings_are_the_documented_ones():
    assert scheme_names("arkit") == tuple(ARKIT_NAMES)
    assert spell("eyeBlinkLeft", "livelink") == "EyeBlinkLeft" and spell("tongueOut", "livelink") == "TongueOut"
    assert spell("mouthSmileRight", "suffix_lr") == "mouthSmile_R" and spell("jawOpen", "suffix_lr") == "jawOpen"
    assert spell("browInnerUp", "cc") == "A01_Brow_Inner_Up"
    assert spell("eyeLookOutRight", "cc") == "A13_Eye_Look_Out_Right"
    assert spell("eyeBlinkLeft", "cc") == "A14_Eye_Blink_Left" and spell("tongueOut", "cc") == "A52_Tongue_Out"
    assert sorted(int(n[1:3]) for n in scheme_names("cc")) == list(range(1, 53))


@pytest.mark.parametrize("scheme", ARKIT_STYLE)
def test_partial_set_of_twenty_shapes(scheme):
    chosen = ARKIT_NAMES[5:25]
    targets = [spell(c, scheme) for c in chosen] + JUNK
    d = detect_scheme(targets)
    assert d.scheme == scheme
    assert d.coverage == pytest.approx(20 / 52)
    assert d.mapping == {spell(c, scheme): c for c in chosen}
    assert d.unmatched == tuple(JUNK)


def test_suffix_lr_accepts_mixed_side_suffixes_and_prefixed_names():
    targets = ["Basis", "eyeBlink.L", "eyeBlink.R", "EyeSquint_l", "EyeSquint_r", "Key.mouthSmile_L",
               "blendShape1.mouthSmile_R", "head_jawOpen", "char:browDown_L"]
    d = detect_scheme(targets)
    assert d.scheme == "suffix_lr"
    assert d.mapping == {"eyeBlink.L": "eyeBlinkLeft", "eyeBlink.R": "eyeBlinkRight",
                         "EyeSquint_l": "eyeSquintLeft", "EyeSquint_r": "eyeSquintRight",
                         "Key.mouthSmile_L": "mouthSmileLeft", "blendShape1.mouthSmile_R": "mouthSmileRight",
                         "head_jawOpen": "jawOpen", "char:browDown_L": "browDownLeft"}
    assert d.unmatched == ("Basis",)


def test_no_face_keys_detects_nothing():
    d = detect_scheme(JUNK + ["Smile", "Blink"])
    assert (d.scheme, d.mapping, d.coverage, d.unmatched) == (None, {}, 0.0, tuple(JUNK + ["Smile", "Blink"]))


def test_all_spellings_of_a_channel_normalise_to_one_key():
    keys = {}
    for channel in ARKIT_NAMES:
        spellings = {spell(channel, s) for s in ARKIT_STYLE}
        stem_side = spell(channel, "suffix_lr")
        if stem_side.endswith(("_L", "_R")):
            spellings |= {stem_side[:-2] + "." + stem_side[-1], stem_side.lower(), stem_side[0].upper() + stem_side[1:]}
        spellings |= {"Key." + channel, "blendShape1." + channel, "head_" + channel, channel.lower()}
        found = {normalize(s) for s in spellings}
        assert len(found) == 1, (channel, {s: normalize(s) for s in spellings})
        keys[channel] = found.pop()
    assert len(set(keys.values())) == 52  # and no two channels collide
    assert keys["eyeBlinkLeft"] == "eyeblink.l" == normalize("EyeBlink_L")  # the fw46 spelling too
    assert keys["mouthDimpleRight"] == normalize("MouthDimple_R")
    assert len({normalize(n) for n in EXPRESSION_NAMES}) == 46


def test_prefixes_are_dropped_only_onto_known_channels():
    assert normalize("Key.eyeBlink.L") == "eyeblink.l"  # the dot of ".L" is a side, not a prefix
    assert normalize("head_Fat") != normalize("Fat")  # not a channel: the name stays as it is
    assert normalize("A14_Eye_Blink_Left") == normalize("Key.A14_Eye_Blink_Left")
    assert normalize("jawLeft") != normalize("jawOpen") and normalize("jawLeft") == normalize("Jaw_L")


def test_fw46_vs_suffix_lr_ambiguity():
    shared = ["EyeBlink_L", "EyeBlink_R", "JawOpen", "MouthSmile_L", "MouthDimple_R"]
    d = detect_scheme(shared + JUNK)  # spelled the same in both: the ARKit reading
    assert d.scheme == "suffix_lr"
    assert d.mapping == {"EyeBlink_L": "eyeBlinkLeft", "EyeBlink_R": "eyeBlinkRight", "JawOpen": "jawOpen",
                         "MouthSmile_L": "mouthSmileLeft", "MouthDimple_R": "mouthDimpleRight"}
    d = detect_scheme(shared + ["BrowsU_C", "LipsTogether", "Puff"] + JUNK)  # fw46-only names present
    assert d.scheme == "fw46"
    assert d.mapping == {n: n for n in shared + ["BrowsU_C", "LipsTogether", "Puff"]}
    # a full ARKit character with one stray fw46-like corrective stays ARKit
    d = detect_scheme(list(scheme_names("suffix_lr")) + ["Puff"])
    assert d.scheme == "suffix_lr" and d.coverage == 1.0 and d.unmatched == ("Puff",)


# -- mapping ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ARKIT_STYLE)
def test_default_mapping_reproduces_the_takes_arkit_values(scheme):
    frame = frame_of(random_expressions(1, seed=3)[0])
    mapping = Mapping.from_detection(detect_scheme(JUNK + list(scheme_names(scheme))))
    assert mapping.scheme == scheme
    values = mapping.apply(source_values(frame))
    assert set(values) == set(scheme_names(scheme))
    for channel in ARKIT_NAMES:
        assert values[spell(channel, scheme)] == pytest.approx(frame["arkit"][channel], abs=1e-12)


def test_fw46_default_mapping_passes_the_expression_through():
    x = random_expressions(1, seed=4)[0]
    mapping = Mapping.from_detection(detect_scheme(EXPRESSION_NAMES))
    values = mapping.apply(Mapping.source_values(x))
    assert [values[n] for n in EXPRESSION_NAMES] == pytest.approx(x.tolist())


def test_source_values_hold_fw46_and_arkit_channels():
    x = np.zeros(46)
    x[EXPRESSION_NAMES.index("Sneer")] = 0.7
    src = source_values(x)
    assert len(src) == 98
    assert src["Sneer"] == 0.7 and src["noseSneerLeft"] == src["noseSneerRight"] == pytest.approx(0.7)
    assert src["tongueOut"] == 0.0
    with pytest.raises(ValueError, match="untracked"):
        source_values(make_frame(3, 0.1))


def test_gain_offset_clamp_and_enabled():
    src = source_values(np.zeros(46)) | {"jawOpen": 0.3, "mouthClose": 0.8}
    mapping = Mapping([Channel("a", "jawOpen", gain=2.0, offset=-0.1),  # 0.5
                       Channel("b", "mouthClose", gain=2.0),  # 1.6 → 1
                       Channel("c", "jawOpen", gain=-1.0),  # -0.3 → 0
                       Channel("d", "jawOpen", gain=-1.0, clamp_min=-1.0),  # -0.3
                       Channel("e", "mouthClose", clamp_max=0.5),  # 0.5
                       Channel("f", "jawOpen", enabled=False)])
    assert mapping.apply(src) == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.0, "d": -0.3, "e": 0.5})
    assert mapping.targets == ["a", "b", "c", "d", "e"]


def test_mirror_reads_the_other_side():
    assert mirror_source("eyeBlinkLeft") == "eyeBlinkRight" and mirror_source("EyeIn_R") == "EyeIn_L"
    assert mirror_source("jawLeft") == "jawRight" and mirror_source("MouthRight") == "MouthLeft"
    assert mirror_source("jawOpen") == "jawOpen" and mirror_source("BrowsU_C") == "BrowsU_C"
    x = np.zeros(46)
    x[EXPRESSION_NAMES.index("EyeBlink_R")] = 0.9
    x[EXPRESSION_NAMES.index("JawOpen")] = 0.4
    mapping = Mapping([Channel("blinkL", "eyeBlinkLeft", mirror=True), Channel("blinkR", "eyeBlinkRight", mirror=True),
                       Channel("fwL", "EyeBlink_L", mirror=True), Channel("jaw", "jawOpen", mirror=True),
                       Channel("plainL", "eyeBlinkLeft")])
    assert mapping.apply(source_values(x)) == pytest.approx(
        {"blinkL": 0.9, "blinkR": 0.0, "fwL": 0.9, "jaw": 0.4, "plainL": 0.0})


def test_bad_channels_are_refused_with_a_reason():
    src = source_values(np.zeros(46))
    with pytest.raises(ValueError, match="more than one enabled channel"):
        Mapping([Channel("a", "jawOpen"), Channel("a", "mouthClose")]).apply(src)
    Mapping([Channel("a", "jawOpen"), Channel("a", "mouthClose", enabled=False)]).apply(src)  # fine
    with pytest.raises(ValueError, match="unknown source 'jawOpn'"):
        Mapping([Channel("a", "jawOpn")]).apply_array(np.zeros((2, 46)))


def test_apply_array_equals_per_frame_apply_and_bake_skips_untracked_frames():
    xs = random_expressions(7, seed=1) * 1.2 - 0.1  # some out of [0, 1] to exercise the clamps
    mapping = Mapping.from_detection(detect_scheme(scheme_names("cc")))
    mapping.channels[0].gain, mapping.channels[1].offset, mapping.channels[2].mirror = 1.7, -0.2, True
    mapping.channels[3].clamp_min, mapping.channels[3].gain = -1.0, -1.0
    mapping.channels[4].enabled = False
    mapping.channels += [Channel("fw_in", "EyeIn_L", mirror=True, gain=0.5), Channel("fw_jaw", "JawOpen")]
    names, values = mapping.apply_array(xs)
    assert values.shape == (7, 53) and names == mapping.targets
    for x, row in zip(xs, values):
        per_frame = mapping.apply(source_values(x))
        assert list(per_frame) == names
        np.testing.assert_allclose(row, list(per_frame.values()), atol=1e-12)

    frames = [frame_of(x, i) for i, x in enumerate(xs)]
    frames[2] = make_frame(2, 2 / 30.0)  # lost the face
    indices, baked_names, baked = mapping.bake(make_take("clip.mp4", 30.0, 640, 480, 500.0, frames))
    assert indices.tolist() == [0, 1, 3, 4, 5, 6] and baked_names == names
    np.testing.assert_allclose(baked, np.delete(values, 2, axis=0), atol=1e-12)


# -- presets ------------------------------------------------------------------------------------------------------
def test_preset_round_trip(tmp_path):
    mapping = Mapping.from_detection(detect_scheme(JUNK + list(scheme_names("livelink"))))
    mapping.channels[0].gain, mapping.channels[5].mirror, mapping.channels[7].enabled = 1.5, True, False
    mapping.channels.append(Channel("Extra", "Puff", offset=0.25, clamp_min=-0.5, clamp_max=0.75))
    path = str(tmp_path / "presets" / "hero.json")
    save_preset(path, mapping)
    assert os.listdir(tmp_path / "presets") == ["hero.json"]  # no temp file left behind
    with open(path) as f:
        raw = json.load(f)
    assert (raw["format"], raw["version"], raw["scheme"]) == ("facecap-retarget", 1, "livelink")
    assert raw["channels"][0] == {"target": "EyeBlinkLeft", "source": "eyeBlinkLeft", "gain": 1.5, "offset": 0.0,
                                  "clamp_min": 0.0, "clamp_max": 1.0, "mirror": False, "enabled": True}
    assert load_preset(path) == mapping


def _write(path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def _channel_json(**override) -> dict:
    return {"target": "jawOpen", "source": "jawOpen", "gain": 1.0, "offset": 0.0, "clamp_min": 0.0,
            "clamp_max": 1.0, "mirror": False, "enabled": True} | override


@pytest.mark.parametrize("content, words", [
    (None, ["not found"]),
    ("{\"format\": \"facecap-retarget\", ", ["not readable JSON"]),
    (json.dumps({"format": "facecap-take", "version": 1, "frames": []}), ["not a facecap-retarget v1", "facecap-take"]),
    (json.dumps({"format": "facecap-retarget", "version": 2, "channels": []}), ["not a facecap-retarget v1"]),
    (json.dumps([1, 2]), ["not a facecap-retarget v1"]),
    (json.dumps({"format": "facecap-retarget", "version": 1}), ["no 'channels' list"]),
    (json.dumps({"format": "facecap-retarget", "version": 1, "channels": [_channel_json(source="jawOpn")]}),
     ["channel 0", "unknown source 'jawOpn'"]),
    (json.dumps({"format": "facecap-retarget", "version": 1, "channels": [_channel_json(gain="2")]}),
     ["channel 0", "'gain'", "wrong type"]),
    (json.dumps({"format": "facecap-retarget", "version": 1, "channels": [_channel_json(mirror=1)]}),
     ["'mirror'", "wrong type"]),
    (json.dumps({"format": "facecap-retarget", "version": 1, "channels": [_channel_json(), {"target": "x"}]}),
     ["channel 1", "no 'source'"]),
    (json.dumps({"format": "facecap-retarget", "version": 1, "channels": [_channel_json(weight=1.0)]}),
     ["unknown field 'weight'"]),
    ('{"format": "facecap-retarget", "version": 1, "channels": [{"target": "a", "source": "jawOpen", "gain": NaN}]}',
     ["'gain'", "not a finite number"]),
])
def test_bad_preset_files_raise_preset_error(tmp_path, content, words):
    path = str(tmp_path / "bad.json") if content is None else _write(tmp_path / "bad.json", content)
    with pytest.raises(PresetError) as info:
        load_preset(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and path in message
    for w in words:
        assert w in message


# -- gaze ---------------------------------------------------------------------------------------------------------
def one_hot(*names: str) -> np.ndarray:
    x = np.zeros(46)
    for n in names:
        x[EXPRESSION_NAMES.index(n)] = 1.0
    return x


@pytest.mark.parametrize("shape, eye, yaw_sign, pitch_sign", [
    ("EyeIn_L", 0, -1, 0), ("EyeOut_L", 0, +1, 0), ("EyeIn_R", 1, +1, 0), ("EyeOut_R", 1, -1, 0),
    ("EyeUp_L", 0, 0, +1), ("EyeDown_L", 0, 0, -1), ("EyeUp_R", 1, 0, +1), ("EyeDown_R", 1, 0, -1),
])
def test_gaze_signs_per_shape(shape, eye, yaw_sign, pitch_sign):
    angles = gaze_angles(one_hot(shape))
    assert angles.shape == (2, 2)
    assert angles[eye].tolist() == pytest.approx([yaw_sign * MAX_GAZE_YAW, pitch_sign * MAX_GAZE_PITCH])
    assert angles[1 - eye].tolist() == [0.0, 0.0]  # the other eye does not move


def test_gaze_conjugate_glance_and_batches():
    # looking to the subject's left: the left eye turns out, the right eye in; both yaw the same way
    angles = gaze_angles(0.5 * one_hot("EyeOut_L", "EyeIn_R"))
    assert angles[0, 0] == angles[1, 0] == pytest.approx(0.5 * MAX_GAZE_YAW) and np.all(angles[:, 1] == 0)
    assert gaze_angles(one_hot("EyeIn_L", "EyeOut_L")).tolist() == [[0.0, 0.0], [0.0, 0.0]]  # opposing shapes cancel
    xs = random_expressions(6, seed=2).reshape(2, 3, 46)
    batched = gaze_angles(xs)
    assert batched.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(batched[1, 2], gaze_angles(xs[1, 2]))
    assert np.radians(20) < MAX_GAZE_PITCH < MAX_GAZE_YAW <= np.radians(35)


def test_gaze_signs_agree_with_the_rigs_iris_motion():
    """Model frame x points to the subject's left, y down: each gaze shape's iris displacement must have the sign
    of the yaw (x) and of minus the pitch (y) that gaze_angles gives it."""
    try:
        rig = load_rig()
    except RigFileError as exc:
        pytest.skip(f"no rig: {exc}")
    iris = np.arange(468, 478)
    for shape in ("EyeIn_L", "EyeOut_L", "EyeIn_R", "EyeOut_R", "EyeUp_L", "EyeDown_L", "EyeUp_R", "EyeDown_R"):
        delta = rig.expression_deltas[EXPRESSION_NAMES.index(shape)][iris]
        moved = np.abs(delta).sum(1) > 1e-6
        if not moved.any():
            pytest.skip("rig has no gaze shapes (stand-in)")
        centre = rig.neutral[iris[moved]].mean(0)
        eye = int(np.argmin(np.linalg.norm(rig.eyeball_centres[::-1] - centre, axis=1)))  # 0 left, 1 right
        dx, dy = np.round(delta[moved, :2].mean(0), 3)  # cm; ignore sub-0.01 mm drift
        yaw, pitch = gaze_angles(one_hot(shape))[eye]
        assert np.sign(dx) == np.sign(np.round(yaw, 6)) and np.sign(-dy) == np.sign(np.round(pitch, 6)), shape
