"""Take → Live Link Face style CSV (facecap_core/export.py) and the head-angle decomposition it uses."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from facecap_core.export import livelink_header, timecode, write_livelink_csv
from facecap_core.rig.geometry import euler_to_matrix, matrix_to_euler, matrix_to_quat
from facecap_core.rig.model import EXPRESSION_NAMES
from facecap_core.take import make_frame, make_take


@pytest.mark.parametrize("angles", [(0.3, -0.2, 0.1), (-0.9, 0.5, -0.4), (0.0, 0.0, 0.0)])
def test_matrix_to_euler_inverts_euler_to_matrix(angles):
    assert np.allclose(matrix_to_euler(euler_to_matrix(*angles)), angles)


def test_timecode_counts_frames_and_fractions():
    assert timecode(0.0, 30) == "00:00:00:00.000"
    assert timecode(61.5, 30) == "00:01:01:15.000"
    assert timecode(1 / 60, 30) == "00:00:00:00.500"
    assert timecode(3725.0, 24) == "01:02:05:00.000"


def test_livelink_csv_rows(tmp_path):
    x = np.zeros(46)
    x[EXPRESSION_NAMES.index("JawOpen")] = 0.6
    x[EXPRESSION_NAMES.index("EyeOut_L")] = 0.5  # left eye looks to the subject's left
    q = matrix_to_quat(euler_to_matrix(0.25, -0.1, 0.05))
    frames = [make_frame(0, 0.0, expression=x, rotation=q, translation=[0, 0, 50], landmarks=np.zeros((73, 2))),
              make_frame(1, 1 / 30)]  # untracked
    path = str(tmp_path / "take.csv")
    assert write_livelink_csv(make_take("t", 30.0, 640, 480, 600.0, frames), path) == 2
    rows = list(csv.reader(open(path)))
    header = rows[0]
    assert header == livelink_header() and len(header) == 2 + 52 + 9
    assert header[2] == "EyeBlinkLeft" and header[-1] == "RightEyeRoll"
    first = dict(zip(header, rows[1]))
    assert first["BlendShapeCount"] == "61" and float(first["JawOpen"]) == pytest.approx(0.6)
    assert (float(first["HeadYaw"]), float(first["HeadPitch"]), float(first["HeadRoll"])) == \
        pytest.approx((0.25, -0.1, 0.05), abs=1e-5)
    assert float(first["LeftEyeYaw"]) > 0 and float(first["RightEyeYaw"]) == 0.0
    assert all(float(v) == 0.0 for v in rows[2][2:]) and rows[2][0] == "00:00:00:01.000"
