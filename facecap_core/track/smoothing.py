"""Temporal smoothing of the tracker's output: the One Euro filter (Casiez et al., CHI 2012).

A low-pass filter whose cut-off rises with the signal's speed: still faces get heavy smoothing (no jitter), fast
motion little (no lag). Applied per component to the landmarks, expression, rotation (as a quaternion kept in one
hemisphere) and translation; the raw values stay available for anyone who wants them.
"""
from __future__ import annotations

import numpy as np

from ..rig.geometry import matrix_to_quat, quat_to_matrix


class OneEuro:
    """Vector One Euro filter. min_cutoff (Hz): smoothing at rest; beta: how fast the cut-off rises with speed
    (per unit of the signal per second); d_cutoff (Hz): smoothing of the speed estimate."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x = self.dx = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def reset(self):
        self.x = self.dx = None

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or dt <= 0:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self.x) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        a = self._alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()


class PoseSmoother:
    """One Euro filters for a tracked frame's landmarks (px), expression, rotation and translation (cm)."""

    def __init__(self, landmarks=(1.5, 0.05), expression=(2.0, 2.0), rotation=(1.5, 3.0), translation=(1.5, 0.5),
                 strength: float = 1.0):
        """Each channel: (min_cutoff Hz, beta). `strength` scales all of them at once: the cut-offs at rest are
        divided by it and the speed terms too, so 2 is twice as smooth (and slower to follow), 0.5 half."""
        if not strength > 0:
            raise ValueError(f"smoothing strength must be > 0 (got {strength}); switch smoothing off instead")
        self.strength = float(strength)
        make = lambda c: OneEuro(c[0] / strength, c[1] / strength)  # noqa: E731
        self.lm, self.x, self.q, self.t = make(landmarks), make(expression), make(rotation), make(translation)
        self.last_q = None

    def reset(self):
        for f in (self.lm, self.x, self.q, self.t):
            f.reset()
        self.last_q = None

    def __call__(self, dt: float, landmarks, expression, rotation, translation):
        q = matrix_to_quat(rotation)
        if self.last_q is not None and np.dot(q, self.last_q) < 0:
            q = -q  # stay in one hemisphere so the filter never averages q with −q
        self.last_q = q
        qs = self.q(q, dt)
        return (self.lm(landmarks, dt), np.clip(self.x(expression, dt), 0.0, 1.0),
                quat_to_matrix(qs / np.linalg.norm(qs)), self.t(translation, dt))
