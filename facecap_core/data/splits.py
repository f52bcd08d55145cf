"""Train / validation / test split **by identity** (never by frame or by file).

An identity key is a person's canonical name (``canonical_name``), optionally followed by ``#k`` for the k-th
face of a photo whose other faces are not that person (group photos, background faces). The split of a key is a
pure function of the key: SHA-1 of the salted *base* (the part before ``#``) mapped to [0, 1) and cut at
80 % / 90 %, so all faces of one group photo land in the same split, a person keeps their split whatever data is
added, and the assignment never depends on the order of the data. A compound base naming several people
(``"a; b"``, a couple photo) gets the split its people share, or ``"excluded"`` when they disagree (such samples
are used nowhere, so no test person is ever seen in training).

Test identities are for the final numbers only: never train or tune on them (``assert_no_leak`` checks a
train/val list against them).
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict

SPLITS = ("train", "val", "test")
EXCLUDED = "excluded"
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SALT = "facecap-identity-split-v1"

_QUALIFIERS = re.compile(r"\s*\((?:young|child|adult|child \+ adult|older|old photo)\)\s*", re.I)


def canonical_name(name: str) -> str:
    """Lower-case, whitespace-collapsed name with age qualifiers dropped ("Leonardo DiCaprio (young)" →
    "leonardo dicaprio"), so the same person from different sources shares one key."""
    s = _QUALIFIERS.sub(" ", str(name))
    s = re.sub(r"\s*\+\s*\d+\s*$", "", s)  # "X + 1": the named person and an anonymous other
    return re.sub(r"\s+", " ", s).strip().lower()


def base_of(key: str) -> str:
    return key.split("#", 1)[0]


def components(key: str) -> list[str]:
    """The people a key's base names ("a; b" → ["a", "b"])."""
    return [c.strip() for c in base_of(key).split(";") if c.strip()]


def _hash_unit(name: str, salt: str = SALT) -> float:
    h = hashlib.sha1(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def _split_of_name(name: str, fractions=DEFAULT_FRACTIONS, salt: str = SALT) -> str:
    u = _hash_unit(name, salt)
    a, b, _ = fractions
    return "train" if u < a else ("val" if u < a + b else "test")


def split_of(key: str, fractions=DEFAULT_FRACTIONS, salt: str = SALT) -> str:
    """"train", "val", "test" or "excluded" for an identity key (deterministic)."""
    comps = components(key)
    if not comps:
        raise ValueError(f"empty identity key {key!r}")
    got = {_split_of_name(c, fractions, salt) for c in comps}
    return got.pop() if len(got) == 1 else EXCLUDED


def split_items(items, key=lambda it: it.identity, fractions=DEFAULT_FRACTIONS, salt: str = SALT) -> dict:
    """{"train": [...], "val": [...], "test": [...], "excluded": [...]} of items by their identity key."""
    out = {s: [] for s in SPLITS + (EXCLUDED,)}
    for it in items:
        out[split_of(key(it), fractions, salt)].append(it)
    return out


def identities_by_split(keys, fractions=DEFAULT_FRACTIONS, salt: str = SALT) -> dict:
    """{split: sorted unique identity bases}."""
    out = defaultdict(set)
    for k in keys:
        out[split_of(k, fractions, salt)].add(base_of(k))
    return {s: sorted(out.get(s, ())) for s in SPLITS + (EXCLUDED,)}


def test_identities(keys, fractions=DEFAULT_FRACTIONS, salt: str = SALT) -> list[str]:
    """Sorted people (canonical names) of the test split among ``keys``: never train or tune on them."""
    people = set()
    for k in keys:
        if split_of(k, fractions, salt) == "test":
            people.update(components(k))
    return sorted(people)


def assert_no_leak(train_keys, test_keys) -> None:
    """Raise if a person of ``test_keys`` appears in ``train_keys``."""
    a = {c for k in train_keys for c in components(k)}
    b = {c for k in test_keys for c in components(k)}
    both = a & b
    if both:
        raise AssertionError(f"identities in both sets: {sorted(both)[:10]}")
