"""Shape-key naming schemes: which channel of a take drives which shape key of a user's character.

Five schemes are recognised (design §4 for the channels):

- ``arkit``: Apple's 52 camelCase names (``eyeBlinkLeft``, ``jawOpen``), exactly `take.ARKIT_NAMES`;
- ``livelink``: Epic Live Link Face, the same names in PascalCase (``EyeBlinkLeft``, ``JawOpen``);
- ``suffix_lr``: ARKit stems with a side suffix instead of Left/Right (``eyeBlink_L``, ``EyeBlink.R``, ``eyeBlink_l``);
- ``cc``: Reallusion Character Creator 4 ``A01_Brow_Inner_Up`` … ``A52_Tongue_Out``;
- ``fw46``: the rig's own 46 names (``EyeBlink_L``, ``BrowsU_C``, ``LipsTogether``).

The first four drive the same 52 ARKit channels and differ only in spelling, so matching goes through
`normalize`, which maps every spelling of a channel to one key (``eyeBlinkLeft``, ``EyeBlinkLeft``,
``eyeBlink_L``, ``A14_Eye_Blink_Left`` and fw46 ``EyeBlink_L`` all give ``"eyeblink.l"``).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ..rig.model import EXPRESSION_NAMES
from ..take import ARKIT_NAMES

ARKIT_STYLE_SCHEMES = ("arkit", "livelink", "suffix_lr", "cc")  # also the tie-break order of `detect_scheme`
SCHEMES = ARKIT_STYLE_SCHEMES + ("fw46",)

# Reallusion CC4 ARKit-compatible expression numbering (A01 … A52).
CC_NAMES = (
    "A01_Brow_Inner_Up A02_Brow_Down_Left A03_Brow_Down_Right A04_Brow_Outer_Up_Left A05_Brow_Outer_Up_Right "
    "A06_Eye_Look_Up_Left A07_Eye_Look_Up_Right A08_Eye_Look_Down_Left A09_Eye_Look_Down_Right "
    "A10_Eye_Look_Out_Left A11_Eye_Look_In_Left A12_Eye_Look_In_Right A13_Eye_Look_Out_Right A14_Eye_Blink_Left "
    "A15_Eye_Blink_Right A16_Eye_Squint_Left A17_Eye_Squint_Right A18_Eye_Wide_Left A19_Eye_Wide_Right "
    "A20_Cheek_Puff A21_Cheek_Squint_Left A22_Cheek_Squint_Right A23_Nose_Sneer_Left A24_Nose_Sneer_Right "
    "A25_Jaw_Open A26_Jaw_Forward A27_Jaw_Left A28_Jaw_Right A29_Mouth_Funnel A30_Mouth_Pucker A31_Mouth_Left "
    "A32_Mouth_Right A33_Mouth_Roll_Upper A34_Mouth_Roll_Lower A35_Mouth_Shrug_Upper A36_Mouth_Shrug_Lower "
    "A37_Mouth_Close A38_Mouth_Smile_Left A39_Mouth_Smile_Right A40_Mouth_Frown_Left A41_Mouth_Frown_Right "
    "A42_Mouth_Dimple_Left A43_Mouth_Dimple_Right A44_Mouth_Upper_Up_Left A45_Mouth_Upper_Up_Right "
    "A46_Mouth_Lower_Down_Left A47_Mouth_Lower_Down_Right A48_Mouth_Press_Left A49_Mouth_Press_Right "
    "A50_Mouth_Stretch_Left A51_Mouth_Stretch_Right A52_Tongue_Out"
).split()

# jawLeft/mouthLeft name a movement, not a side of the face: suffix_lr keeps them spelled out.
_DIRECTIONAL = {"jawLeft", "jawRight", "mouthLeft", "mouthRight"}

_SEPARATORS = re.compile(r"[._ \-]")
_CC_PREFIX = re.compile(r"^A\d\d[._ \-]")
_SIDE_RULES = (  # (pattern at the end of the name, group holding the side), tried in order
    re.compile(r"(?i)(left|right)$"),  # eyeBlinkLeft, Eye_Blink_Left, eyeblinkleft
    re.compile(r"[._ \-]([LlRr])$"),  # eyeBlink_L, eyeBlink.R, eyeBlink_l
    re.compile(r"(?<=[a-z0-9])([LR])$"),  # eyeBlinkL (camelCase letter, case-sensitive)
)
# Mesh/namespace prefixes dropped before "_" (head_jawOpen, head_geo_eyeBlinkLeft); "." and ":" end any prefix.
_WORD_PREFIX = re.compile(r"(?i)^(head|face|mesh|geo|body|char|character|bs|blendshapes?\d*|shapes?|keys?|morphs?)_")


def _key(name: str) -> str:
    """Canonical key of one spelling, no prefix guessing: lower-case stem without separators + ".l"/".r"."""
    name = _CC_PREFIX.sub("", name.strip())
    side = ""
    for rule in _SIDE_RULES:
        m = rule.search(name)
        if m:
            side = "." + m.group(1)[0].lower()
            name = name[:m.start()]
            break
    return _SEPARATORS.sub("", name).lower() + side


def _bare_candidates(name: str):
    """`name`, then `name` with ever more of a mesh/namespace prefix dropped (Key.…, blendShape1.…, head_…)."""
    yield name
    rest = name.rsplit(":", 1)[-1]  # Maya namespace
    while True:
        if rest != name:
            yield rest
        head, dot, tail = rest.partition(".")
        if dot and len(tail) > 1:  # "eyeBlink.L" keeps its one-letter side suffix
            rest = tail
            continue
        m = _WORD_PREFIX.match(rest)
        if m and len(rest) > m.end():
            rest = rest[m.end():]
            continue
        return


def _match(name: str) -> tuple[str, str]:
    """(bare spelling, key): the first prefix-stripped form whose key is a known channel; else the full name.
    Stripping only when it lands on a known channel keeps it unambiguous: "head_Fat" stays "headfat"."""
    for bare in _bare_candidates(name):
        key = _key(bare)
        if key in _KNOWN_KEYS:
            return bare, key
    return name, _key(name)


def normalize(name: str) -> str:
    """Canonical key of a shape-key name: every spelling of one channel in any scheme gives the same key.

    Lower-cases, drops separators (_ . - space), a CC ``Axx_`` prefix, and a mesh prefix (``Key.``,
    ``blendShape1.``, ``head_``) when what remains is a known channel; side tokens (Left/Right, _L/_R, .L/.R,
    _l/_r) become a ``.l``/``.r`` suffix. ``normalize("A14_Eye_Blink_Left") == normalize("eyeBlink_L") ==
    "eyeblink.l"``."""
    return _match(name)[1]


def spell(channel: str, scheme: str) -> str:
    """The canonical spelling of an ARKit channel (`take.ARKIT_NAMES`) in an ARKit-style scheme."""
    if scheme == "arkit":
        return channel
    if scheme == "livelink":
        return channel[0].upper() + channel[1:]
    if scheme == "suffix_lr":
        m = re.fullmatch(r"(.+?)(Left|Right)", channel)
        return channel if m is None or channel in _DIRECTIONAL else f"{m.group(1)}_{m.group(2)[0]}"
    if scheme == "cc":
        return _CC_BY_ARKIT[channel]
    raise ValueError(f"unknown ARKit-style scheme {scheme!r}; expected one of {ARKIT_STYLE_SCHEMES}")


def scheme_names(scheme: str) -> tuple[str, ...]:
    """All canonical target names of a scheme: 52 in Apple's order, or the 46 fw46 names."""
    if scheme == "fw46":
        return tuple(EXPRESSION_NAMES)
    return tuple(spell(c, scheme) for c in ARKIT_NAMES)


def _spelling_style(bare: str) -> str:
    """Which ARKit-style scheme a matched spelling looks like (unsided names vote arkit/livelink)."""
    if _CC_PREFIX.match(bare):
        return "cc"
    if _SIDE_RULES[1].search(bare):
        return "suffix_lr"
    return "arkit" if bare[:1].islower() else "livelink"


@dataclass(frozen=True)
class Detection:
    """What `detect_scheme` found on a character.

    scheme: one of SCHEMES, or None when no name matched. mapping: target name → source channel (an ARKit name
    for the ARKit-style schemes, a fw46 name for fw46), in the order the names were given. coverage: fraction of
    the scheme's source channels (52 or 46) driven by some target. unmatched: target names left undriven."""
    scheme: str | None
    mapping: dict[str, str]
    coverage: float
    unmatched: tuple[str, ...]


def detect_scheme(target_names) -> Detection:
    """Match a character's shape-key names to take channels and name the scheme they follow.

    Extra keys ("Basis", "Fat", correctives) end up in `unmatched`. The ARKit-style schemes share their 52
    channels, so they are scored together and the scheme reported is the majority spelling of the matched names.
    fw46 and suffix_lr spell 17 channels identically (``EyeBlink_L``, ``JawOpen``): fw46 wins only when a
    fw46-only name (``BrowsU_C``, ``LipsTogether``, ``Puff`` …) is present and its coverage is strictly higher."""
    names = list(dict.fromkeys(target_names))
    matched = {name: _match(name) for name in names}
    arkit = {n: ARKIT_BY_KEY[k] for n, (_, k) in matched.items() if k in ARKIT_BY_KEY}
    fw46 = {n: FW46_BY_KEY[k] for n, (_, k) in matched.items() if k in FW46_BY_KEY}
    arkit_coverage = len(set(arkit.values())) / len(ARKIT_NAMES)
    fw46_coverage = len(set(fw46.values())) / len(EXPRESSION_NAMES)
    has_fw46_only = any(k in FW46_ONLY_KEYS for _, k in matched.values())
    if has_fw46_only and fw46_coverage > arkit_coverage:
        scheme, mapping, coverage = "fw46", fw46, fw46_coverage
    elif arkit:
        votes = Counter(_spelling_style(matched[n][0]) for n in arkit)
        scheme = max(ARKIT_STYLE_SCHEMES, key=lambda s: (votes[s], -ARKIT_STYLE_SCHEMES.index(s)))
        mapping, coverage = arkit, arkit_coverage
    else:
        scheme, mapping, coverage = None, {}, 0.0
    return Detection(scheme, mapping, coverage, tuple(n for n in names if n not in mapping))


def _by_key(channels) -> dict[str, str]:
    table = {_key(c): c for c in channels}
    assert len(table) == len(channels), "two channels share a normalised key"
    return table


ARKIT_BY_KEY = _by_key(ARKIT_NAMES)  # normalised key → ARKit channel
FW46_BY_KEY = _by_key(EXPRESSION_NAMES)  # normalised key → fw46 channel
FW46_ONLY_KEYS = frozenset(FW46_BY_KEY) - frozenset(ARKIT_BY_KEY)
_KNOWN_KEYS = frozenset(ARKIT_BY_KEY) | frozenset(FW46_BY_KEY)
_CC_BY_ARKIT = {ARKIT_BY_KEY[_key(cc)]: cc for cc in CC_NAMES}
assert len(_CC_BY_ARKIT) == len(ARKIT_NAMES), "CC_NAMES must cover the 52 ARKit channels"
