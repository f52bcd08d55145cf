"""Takes in other formats: a Live Link Face style CSV (Epic's iPhone app writes this layout; many DCC importers
read it).

    n_rows = write_livelink_csv(take, "take.csv")

Columns: Timecode (HH:MM:SS:FF.mmm at the take's fps), BlendShapeCount (61), the 52 ARKit values in Apple's
order spelled in PascalCase (EyeBlinkLeft …), then HeadYaw, HeadPitch, HeadRoll and Left/RightEye Yaw, Pitch, Roll
in radians. Untracked frames are written as zeros (the CSV has no notion of a missing frame).
"""
from __future__ import annotations

import csv
import os

import numpy as np

from .rig.geometry import matrix_to_euler, quat_to_matrix
from .take import ARKIT_NAMES, arkit_scores

POSE_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw",
                "RightEyePitch", "RightEyeRoll")


def livelink_header() -> list[str]:
    return ["Timecode", "BlendShapeCount"] + [n[0].upper() + n[1:] for n in ARKIT_NAMES] + list(POSE_COLUMNS)


def timecode(seconds: float, fps: float) -> str:
    """HH:MM:SS:FF.mmm (frames at `fps`, then the fraction of a frame)."""
    frames_total = seconds * fps
    whole = int(np.floor(frames_total + 1e-9))
    frac = frames_total - whole
    ff = whole % int(round(fps))
    s = whole // int(round(fps))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}.{int(round(frac * 1000)) % 1000:03d}"


def livelink_rows(take: dict) -> list[list]:
    from .retarget.head import gaze_angles  # noqa: PLC0415

    rows = []
    for f in take["frames"]:
        row = [timecode(f["time"], take["fps"]), len(ARKIT_NAMES) + len(POSE_COLUMNS)]
        if not f.get("tracked"):
            rows.append(row + [0.0] * (len(ARKIT_NAMES) + len(POSE_COLUMNS)))
            continue
        x = np.asarray(f["expression"], np.float64)
        yaw, pitch, roll = matrix_to_euler(quat_to_matrix(np.asarray(f["rotation"], np.float64)))
        eyes = np.asarray(gaze_angles(x), np.float64)  # (2 eyes: left, right; yaw, pitch)
        row += [round(float(v), 6) for v in arkit_scores(x)]
        row += [round(v, 6) for v in (yaw, pitch, roll)]
        for e in range(2):
            row += [round(float(eyes[e, 0]), 6), round(float(eyes[e, 1]), 6), 0.0]
        rows.append(row)
    return rows


def write_livelink_csv(take: dict, path: str) -> int:
    """Write the CSV atomically; returns the number of rows (frames)."""
    rows = livelink_rows(take)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(livelink_header())
        w.writerows(rows)
    os.replace(tmp, path)
    return len(rows)
