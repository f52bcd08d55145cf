"""Eye gaze angles from the fw46 gaze coefficients (pure math; the camera → Blender change is the add-on's).

Angles are per eye in the head's own frame: yaw > 0 turns the eye towards the **subject's left** (design §3),
pitch > 0 turns it up. So EyeIn_L (left eye towards the nose) gives a negative left yaw and EyeIn_R a positive
right yaw; a glance to the subject's left (EyeOut_L + EyeIn_R) turns both eyes the same way.
"""
from __future__ import annotations

import math

import numpy as np

from ..rig.model import EXPRESSION_NAMES

# Gaze at coefficient 1: about what the rig's gaze shapes show (the iris moves ~0.52 cm horizontally and ~0.38 cm
# vertically on a ~1.1 cm eyeball radius) and within the human oculomotor range. The angle is taken linear in
# the coefficient: the rig's iris translates linearly, and at 30° arc and chord differ by under 5 %.
MAX_GAZE_YAW = math.radians(30.0)
MAX_GAZE_PITCH = math.radians(25.0)

_i = EXPRESSION_NAMES.index
# Per eye (left, right): the coefficient turning it towards the subject's left, the one turning it to the right.
_TO_SUBJECT_LEFT = [_i("EyeOut_L"), _i("EyeIn_R")]
_TO_SUBJECT_RIGHT = [_i("EyeIn_L"), _i("EyeOut_R")]
_UP = [_i("EyeUp_L"), _i("EyeUp_R")]
_DOWN = [_i("EyeDown_L"), _i("EyeDown_R")]


def gaze_angles(expression) -> np.ndarray:
    """(..., 46) fw46 coefficients → (..., 2, 2) float64 radians: [eye (left, right), (yaw, pitch)]."""
    x = np.asarray(expression, np.float64)
    yaw = MAX_GAZE_YAW * (x[..., _TO_SUBJECT_LEFT] - x[..., _TO_SUBJECT_RIGHT])
    pitch = MAX_GAZE_PITCH * (x[..., _UP] - x[..., _DOWN])
    return np.stack([yaw, pitch], axis=-1)
