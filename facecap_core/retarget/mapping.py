"""An editable retarget mapping: which take channel drives which shape key, with gain/offset/clamp/mirror.

Sources are the 98 channels of a take frame: the 46 fw46 coefficients (``EyeBlink_L`` …) and the 52 ARKit
scores (``eyeBlinkLeft`` …, design §4's default preset); the two sets never share a string. A target's value is
``clip(gain · source + offset, clamp_min, clamp_max)``; ``mirror`` reads the other side's source, for a
performer or character that is mirrored relative to the other. Presets are JSON files (`save_preset`,
`load_preset`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..rig.model import EXPRESSION_NAMES, N_EXPRESSIONS
from ..fileformat import read_versioned_json, write_json_atomic
from ..take import ARKIT_NAMES, arkit_scores
from .schemes import Detection

PRESET_FORMAT = "facecap-retarget"
PRESET_VERSION = 1

SOURCE_CHANNELS = tuple(EXPRESSION_NAMES) + tuple(ARKIT_NAMES)  # columns of `source_matrix`
_SOURCE_INDEX = {name: i for i, name in enumerate(SOURCE_CHANNELS)}
_SIDE_SWAPS = (("Left", "Right"), ("Right", "Left"), ("_L", "_R"), ("_R", "_L"))


def _transfer(enabled: list[Channel], sources: np.ndarray) -> np.ndarray:
    """(…, K) source values of the enabled channels → (…, K) target values: the one place gain, offset and
    clamp are applied, shared by `Mapping.apply` and `Mapping.apply_array`."""
    gain, offset, lo, hi = (np.array([getattr(c, k) for c in enabled], np.float64)
                            for k in ("gain", "offset", "clamp_min", "clamp_max"))
    return np.clip(sources * gain + offset, lo, hi)


class PresetError(ValueError):
    """A retarget preset file is missing, unreadable, or not a facecap-retarget v1 file."""


def mirror_source(channel: str) -> str:
    """The same channel on the other side: eyeBlinkLeft ↔ eyeBlinkRight, EyeIn_L ↔ EyeIn_R, jawLeft ↔ jawRight
    (a mirrored performer's jaw moves the other way too); unsided channels are returned unchanged."""
    for this, other in _SIDE_SWAPS:
        if channel.endswith(this):
            return channel[:-len(this)] + other
    return channel


@dataclass
class Channel:
    """One driven shape key: target = clip(gain · source + offset, clamp_min, clamp_max)."""
    target: str
    source: str
    gain: float = 1.0
    offset: float = 0.0
    clamp_min: float = 0.0
    clamp_max: float = 1.0
    mirror: bool = False
    enabled: bool = True

    @property
    def effective_source(self) -> str:
        """The source channel actually read (the opposite side's when mirrored)."""
        return mirror_source(self.source) if self.mirror else self.source


def source_matrix(expression, arkit=None) -> np.ndarray:
    """(N, 46) fw46 coefficients [+ (N, 52) ARKit scores] → (N, 98) sources in SOURCE_CHANNELS order.
    Without `arkit` the scores come from `take.arkit_scores` (the default preset of design §4)."""
    expression = np.atleast_2d(np.asarray(expression, np.float64))
    if expression.shape[-1] != N_EXPRESSIONS:
        raise ValueError(f"expression must have {N_EXPRESSIONS} columns, got shape {expression.shape}")
    arkit = arkit_scores(expression) if arkit is None else np.atleast_2d(np.asarray(arkit, np.float64))
    return np.concatenate([expression, arkit], axis=-1)


def _frame_arrays(frame: dict) -> tuple[np.ndarray, np.ndarray]:
    """A tracked take frame's (46,) expression and (52,) ARKit scores (the recorded ones when present)."""
    if not frame.get("tracked", True) or frame.get("expression") is None:
        raise ValueError(f"take frame {frame.get('index')} is untracked: it has no expression to retarget")
    expression = np.asarray(frame["expression"], np.float64)
    recorded = frame.get("arkit")
    if isinstance(recorded, dict) and all(name in recorded for name in ARKIT_NAMES):
        return expression, np.array([recorded[name] for name in ARKIT_NAMES], np.float64)
    return expression, arkit_scores(expression)


def source_values(frame_or_expression) -> dict[str, float]:
    """Source channel → value for one take frame (a dict of design §6) or one (46,) expression vector."""
    if isinstance(frame_or_expression, dict):
        row = source_matrix(*_frame_arrays(frame_or_expression))[0]
    else:
        row = source_matrix(frame_or_expression)[0]
    return dict(zip(SOURCE_CHANNELS, row.tolist()))


@dataclass
class Mapping:
    """The channels driving one character; `scheme` records what `detect_scheme` found (informative only)."""
    channels: list[Channel] = field(default_factory=list)
    scheme: str | None = None

    source_values = staticmethod(source_values)

    @classmethod
    def from_detection(cls, detection: Detection) -> "Mapping":
        """Identity mapping (gain 1, offset 0, clamp 0..1) of every matched target to its source channel."""
        return cls([Channel(target, source) for target, source in detection.mapping.items()], detection.scheme)

    @property
    def targets(self) -> list[str]:
        """Names of the enabled targets, in the column order of `apply_array`."""
        return [c.target for c in self._enabled()]

    def _enabled(self) -> list[Channel]:
        enabled = [c for c in self.channels if c.enabled]
        seen = set()
        for c in enabled:
            if c.target in seen:
                raise ValueError(f"target {c.target!r} is driven by more than one enabled channel; "
                                 "disable or remove all but one")
            if c.effective_source not in _SOURCE_INDEX:
                raise ValueError(f"channel {c.target!r}: unknown source {c.effective_source!r}; "
                                 "use a fw46 or ARKit channel name")
            seen.add(c.target)
        return enabled

    def apply(self, source: dict[str, float]) -> dict[str, float]:
        """{source channel: value} (see `source_values`) → {target: value} for the enabled channels."""
        enabled = self._enabled()
        values = _transfer(enabled, np.array([source[c.effective_source] for c in enabled], np.float64))
        return dict(zip((c.target for c in enabled), values.tolist()))

    def apply_array(self, expression, arkit=None) -> tuple[list[str], np.ndarray]:
        """Bake many frames at once: (N, 46) expression [+ (N, 52) ARKit scores] → (targets, (N, K) float64)."""
        enabled = self._enabled()
        columns = [_SOURCE_INDEX[c.effective_source] for c in enabled]
        return [c.target for c in enabled], _transfer(enabled, source_matrix(expression, arkit)[:, columns])

    def bake(self, take: dict) -> tuple[np.ndarray, list[str], np.ndarray]:
        """A whole take: (frame indices (M,) int, targets, values (M, K)) over its tracked frames only."""
        tracked = [f for f in take["frames"] if f.get("tracked") and f.get("expression") is not None]
        if not tracked:
            names = self.targets
            return np.zeros(0, np.int64), names, np.zeros((0, len(names)))
        expression, arkit = (np.stack(a) for a in zip(*(_frame_arrays(f) for f in tracked)))
        names, values = self.apply_array(expression, arkit)
        return np.array([f["index"] for f in tracked], np.int64), names, values


# -- presets -------------------------------------------------------------------------------------------------
_CHANNEL_TYPES = {"target": str, "source": str, "gain": (int, float), "offset": (int, float),
                  "clamp_min": (int, float), "clamp_max": (int, float), "mirror": bool, "enabled": bool}
assert set(_CHANNEL_TYPES) == {f.name for f in fields(Channel)}


def save_preset(path: str, mapping: Mapping) -> None:
    """Write a facecap-retarget v1 JSON file atomically (temp file + os.replace)."""
    preset = {"format": PRESET_FORMAT, "version": PRESET_VERSION, "scheme": mapping.scheme,
              "channels": [asdict(c) for c in mapping.channels]}
    write_json_atomic(path, preset, indent=1)


def _channel_from_json(path: str, i: int, item) -> Channel:
    def fail(what: str):
        raise PresetError(f"retarget preset {path}: channel {i} {what}; fix the file or save the preset again")

    if not isinstance(item, dict):
        fail("is not an object")
    for key in ("target", "source"):
        if key not in item:
            fail(f"has no '{key}'")
    for key, value in item.items():
        kind = _CHANNEL_TYPES.get(key)
        if kind is None:
            fail(f"has an unknown field '{key}'")
        if not isinstance(value, kind) or (kind != bool and isinstance(value, bool)):
            fail(f"field '{key}' has the wrong type ({type(value).__name__})")
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"field '{key}' is not a finite number")
    if item["source"] not in _SOURCE_INDEX:
        fail(f"has unknown source '{item['source']}' (expected a fw46 or ARKit channel name)")
    return Channel(**item)


def load_preset(path: str) -> Mapping:
    """Read a facecap-retarget v1 file; raises PresetError (one line: the file and what to do) on a bad one."""
    preset = read_versioned_json(path, PRESET_FORMAT, PRESET_VERSION, PresetError, "retarget preset",
                                 "choose a retarget preset saved by facecap, or save it again")
    if not isinstance(preset.get("channels"), list):
        raise PresetError(f"retarget preset {path} has no 'channels' list; save the preset again")
    scheme = preset.get("scheme")
    return Mapping([_channel_from_json(path, i, item) for i, item in enumerate(preset["channels"])],
                   scheme if isinstance(scheme, str) else None)
