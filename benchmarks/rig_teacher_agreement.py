"""Do the rig's 46 shapes mean what the teacher means? Agreement on real footage (design §4, §8).

    python benchmarks/rig_teacher_agreement.py [--faces ../shared/faces] [--kinds video]

Every accepted teacher-labelled real frame carries two readings of the same face: the Eq. 4 fit of the rig to
the teacher's 478 landmarks (our 46 coefficients x) and the teacher's own 52 ARKit blendshape scores. For each
rig shape this prints the Pearson correlation over frames between x_j and its mapped ARKit channel(s) (design §4
mapping; a multi-channel target is averaged), and the ARKit channel x_j correlates with best. A shape whose
geometry matches its meaning correlates with its own channel; a shape that is wrong or never used does not.
Complements `rig_semantics.py` (renders read by the teacher), which cannot test channels MediaPipe reads from
texture. Needs the cached real labels (`facecap data build` or `benchmarks/label_real_faces.py` make them).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from facecap_core.data.real import load_real_labels  # noqa: E402
from facecap_core.rig.model import EXPRESSION_NAMES, load_rig  # noqa: E402
from facecap_core.take import ARKIT_NAMES, ARKIT_PRESET  # noqa: E402
from facecap_core.teacher import ARKIT_NAMES as TEACHER_NAMES  # noqa: E402


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correlation of each column of a (N, J) with each column of b (N, K) → (J, K); 0 where constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0))[:, None] * np.sqrt((b * b).sum(0))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.T @ b) / den
    return np.nan_to_num(r)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", default=os.path.join(ROOT, "..", "shared", "faces"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "cache", "real_labels"))
    ap.add_argument("--kinds", default="video,image", help="which sources: video, image or both")
    args = ap.parse_args(argv)
    assert tuple(TEACHER_NAMES) == tuple(ARKIT_NAMES), "teacher and take disagree on the ARKit order"

    t0 = time.perf_counter()
    labels = load_real_labels(args.faces, args.cache, load_rig(),
                              kinds=tuple("image" if k == "image" else "video" for k in args.kinds.split(",")))
    if not labels:
        print("no real labels found: run `facecap data build` or benchmarks/label_real_faces.py first")
        return 1
    x = np.stack([lb.params.expression for lb in labels])
    scores = np.stack([lb.blendshapes for lb in labels]).astype(np.float64)
    r = pearson(x, scores)
    print(f"rig ↔ teacher agreement over {len(labels)} accepted real frames/photos "
          f"({len({lb.identity for lb in labels})} identities), {time.perf_counter() - t0:.1f} s")
    print("| shape | ARKit target | r (own channel) | best channel | r (best) | mean x | frames x>0.1 |")
    print("|---|---|---|---|---|---|---|")
    good = 0
    own_rs = []
    for j, name in enumerate(EXPRESSION_NAMES):
        targets = [ARKIT_NAMES.index(a) for a, _ in ARKIT_PRESET[name]]
        own = float(pearson(x[:, j:j + 1], scores[:, targets].mean(1, keepdims=True))[0, 0])
        best = int(np.argmax(r[j]))
        own_rs.append(own)
        good += own >= 0.3
        print(f"| {name} | {'+'.join(ARKIT_NAMES[t] for t in targets)} | {own:+.2f} | {ARKIT_NAMES[best]} | "
              f"{r[j, best]:+.2f} | {x[:, j].mean():.3f} | {(x[:, j] > 0.1).mean() * 100:.0f}% |")
    print(f"shapes with r ≥ 0.3 against their own channel: {good}/46; median r {np.median(own_rs):+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
