"""Semantic check of the rig's 46 expressions against the teacher (design §4 "Semantic check").

    python benchmarks/rig_semantics.py [--rig rigs/fw46.npz] [--faces ../shared/faces] [--n 3]
                                       [--author] [--only JawOpen,EyeBlink_L] [--sheet out/rig_semantics]

For a few real, frontal, neutral-looking photos: the teacher's 478 landmarks give every rig vertex its position in
the photo, so the photo is the rig's texture (a piecewise-affine warp). The rig is fitted to the landmarks
(``rig.fit.fit_landmarks``, landmark set '478': pose, identity, expression, focal), then each shape at weight 1 is
added to the fitted mesh and rendered with the rasteriser: a pixel of a skin triangle samples the ORIGINAL photo at
the barycentric combination of the triangle's landmark positions; the rendered vertex positions are the fitted rig's
projection (weight 0 is the photo warped onto the fit, ~1-2 px RMS), so a shape acts on the rig's own lids and
lips rather than on top of what the fit left unexplained. The mouth interior is dark
red, the eye membrane is the photo's sclera colour with a round iris (the photo's own iris, moved with the rig's
iris ring) and the iris fans show the same iris. The render is composited over the photo and run through the
teacher again; the table gives, per shape, the mapped ARKit channel(s) (design §4; mean of a pair) at weight 0 and
1, the rise, and the unrelated channel that rose most, averaged over the photos.

The contact sheets (out/, gitignored) show real faces: look at them, never commit them. ``--author`` re-authors the
expressions from ``facecap_core/rig/build/expressions.py`` (keeping the rig file's neutral and identity) so that
shapes can be tuned without rebuilding the rig.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from facecap_core.render import rasterize  # noqa: E402
from facecap_core.rig import landmarks as L  # noqa: E402
from facecap_core.rig.model import (EXPRESSION_NAMES, MATERIAL_EYE, MATERIAL_IRIS, MATERIAL_MOUTH,  # noqa: E402
                                    load_rig)
from facecap_core.teacher import ARKIT_NAMES, Teacher, label_images, read_rgb  # noqa: E402

# design §4: the default retarget preset (fw46 → ARKit-52)
MAPPING = {
    "EyeBlink": ["eyeBlink"], "EyeSquint": ["eyeSquint"], "EyeDown": ["eyeLookDown"], "EyeIn": ["eyeLookIn"],
    "EyeOut": ["eyeLookOut"], "EyeUp": ["eyeLookUp"], "EyeOpen": ["eyeWide"], "BrowsD": ["browDown"],
    "BrowsU_C": ["browInnerUp"], "BrowsU": ["browOuterUp"], "JawOpen": ["jawOpen"], "JawFwd": ["jawForward"],
    "JawLeft": ["jawLeft"], "JawRight": ["jawRight"], "MouthLeft": ["mouthLeft"], "MouthRight": ["mouthRight"],
    "MouthSmile": ["mouthSmile"], "MouthFrown": ["mouthFrown"], "MouthDimple": ["mouthDimple"],
    "LipsStretch": ["mouthStretch"], "LipsUpperClose": ["mouthRollUpper"], "LipsLowerClose": ["mouthRollLower"],
    "LipsUpperUp": ["mouthUpperUpLeft", "mouthUpperUpRight"],
    "LipsLowerDown": ["mouthLowerDownLeft", "mouthLowerDownRight"], "LipsFunnel": ["mouthFunnel"],
    "LipsPucker": ["mouthPucker"], "ChinLowerRaise": ["mouthShrugLower"], "ChinUpperRaise": ["mouthShrugUpper"],
    "Sneer": ["noseSneerLeft", "noseSneerRight"], "Puff": ["cheekPuff"], "CheekSquint": ["cheekSquint"],
    "LipsTogether": ["mouthClose"],
}
MOUTH_RGB = np.array([45.0, 14.0, 16.0])  # teeth/tongue-ish dark red
ON_OPEN_JAW = ("LipsTogether",)  # shapes evaluated on top of JawOpen, compared with JawOpen alone
SCLERA_FALLBACK_RGB = np.array([205.0, 190.0, 180.0])


def mapped_channels(shape: str) -> list[str]:
    if shape in MAPPING:
        return MAPPING[shape]
    stem, side = shape.rsplit("_", 1)
    return [c + ("Left" if side == "L" else "Right") for c in MAPPING[stem]]


# ---- photos ---------------------------------------------------------------------------------------------
def select_photos(faces_dir: str, cache_dir: str, n: int, max_candidates: int = 400):
    """The n most frontal, most neutral single-face photos with a reasonably large face."""
    with open(os.path.join(faces_dir, "manifest.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "image" and r["faces_detected"] == "1"]
    paths = [os.path.join(faces_dir, r["file"]) for r in rows[:max_candidates]]
    labelled = label_images(paths, cache_dir)
    expressive = [i for i, nm in enumerate(ARKIT_NAMES) if not nm.startswith("eyeLook")]
    scored = []
    for item in labelled:
        if len(item["faces"]) != 1:
            continue
        face = item["faces"][0]
        if face.size < 110:  # inter-ocular distance in pixels
            continue
        yaw, pitch, roll = face.head_angles_deg()
        bs = face.blendshape_vector
        score = abs(yaw) + abs(pitch) + 0.5 * abs(roll) + 40.0 * float(bs[expressive].max()) + 20.0 * float(bs.sum())
        scored.append((score, item["path"], face))
    scored.sort(key=lambda s: s[0])
    return scored[:n]


# ---- textured render ------------------------------------------------------------------------------------
class PhotoTexture:
    def __init__(self, rgb: np.ndarray, landmarks: np.ndarray):
        import cv2  # noqa: PLC0415
        self.rgb = rgb
        self.h, self.w = rgb.shape[:2]
        self.lm = np.asarray(landmarks, np.float64)[:, :2]
        self.eyes = []
        yy, xx = np.mgrid[0:self.h, 0:self.w]
        for iris, up, lo in ((L.IRIS_R, L.EYE_R_UPPER, L.EYE_R_LOWER), (L.IRIS_L, L.EYE_L_UPPER, L.EYE_L_LOWER)):
            poly = np.r_[self.lm[list(up)], self.lm[list(lo)][::-1]].astype(np.int32)
            mask = np.zeros((self.h, self.w), np.uint8)
            cv2.fillPoly(mask, [poly], 1)
            mask = mask.astype(bool)
            c = self.lm[iris[0]]
            r = float(np.linalg.norm(self.lm[list(iris[1:])] - c, axis=1).mean())
            d = np.hypot(xx - c[0], yy - c[1])
            sclera = mask & (d > 1.15 * r)
            iris_px = mask & (d < 0.9 * r)
            # the brightest third of the visible white (the rest is lash shadow and lid)
            px = rgb[sclera].astype(np.float64)
            sc = np.median(px[px.sum(1) >= np.percentile(px.sum(1), 67)], 0) if len(px) >= 8 else SCLERA_FALLBACK_RGB
            ir = np.median(rgb[iris_px], 0) if iris_px.sum() >= 4 else np.array([60.0, 45.0, 35.0])
            self.eyes.append({"mask": mask, "c": c, "r": r, "sclera": np.asarray(sc, np.float64),
                              "iris": np.asarray(ir, np.float64)})

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Bilinear samples (P, 3) of the photo at pixel positions (x, y) (pixel centres at +0.5)."""
        x = np.clip(np.asarray(x, np.float64) - 0.5, 0, self.w - 1.001)
        y = np.clip(np.asarray(y, np.float64) - 0.5, 0, self.h - 1.001)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        im = self.rgb.astype(np.float64)
        return ((1 - fy) * ((1 - fx) * im[y0, x0] + fx * im[y0, x0 + 1])
                + fy * ((1 - fx) * im[y0 + 1, x0] + fx * im[y0 + 1, x0 + 1]))

    def render(self, xy: np.ndarray, depth: np.ndarray, triangles: np.ndarray, material: np.ndarray,
               tri_eye: np.ndarray) -> np.ndarray:
        """Composite of the mesh with vertices at image positions xy (478, 2) and depths over the photo."""
        res = rasterize(xy, depth, triangles, np.zeros((len(xy), 3)), (self.w, self.h), cull_backfaces=True)
        out = self.rgb.astype(np.float64).copy()
        ii, jj = np.nonzero(res.tri_id >= 0)
        t = res.tri_id[ii, jj]
        b = res.bary[ii, jj].astype(np.float64)
        src = np.einsum("pk,pkd->pd", b, self.lm[triangles[t]])
        col = self.sample(src[:, 0], src[:, 1])
        mat = material[t]
        col[mat == MATERIAL_MOUTH] = MOUTH_RGB
        # eye membrane and iris fans: sclera with a round iris carried by the rig's iris ring
        for e, eye in enumerate(self.eyes):
            sel = ((mat == MATERIAL_EYE) | (mat == MATERIAL_IRIS)) & (tri_eye[t] == e)
            if not sel.any():
                continue
            centre = xy[(L.IRIS_R, L.IRIS_L)[e][0]]
            off = np.c_[jj[sel] + 0.5, ii[sel] + 0.5] - centre
            inside = np.hypot(off[:, 0], off[:, 1]) < eye["r"]
            c = np.tile(eye["sclera"], (sel.sum(), 1))
            p = eye["c"] + off[inside]
            pi = np.clip(np.round(p).astype(int), 0, [self.w - 1, self.h - 1])
            seen = eye["mask"][pi[:, 1], pi[:, 0]]  # the photo's iris is visible there (not under a lid)
            ci = np.tile(eye["iris"], (inside.sum(), 1))
            ci[seen] = self.sample(p[seen, 0], p[seen, 1])
            c[inside] = ci
            col[sel] = c
        out[ii, jj] = col
        return np.clip(out, 0, 255).astype(np.uint8)


def rig_placement(rig, face, image_size):
    from facecap_core.rig.fit import fit_landmarks  # noqa: PLC0415
    fit = fit_landmarks(face.landmarks[:, :2].astype(np.float64), image_size, rig, landmark_set="478")
    return fit


def evaluate(rig, deltas, photos, teacher, only=None, sheet_prefix=None, label=""):
    """scores[image][shape or 'neutral'] = (52,) teacher blendshapes of the composite."""
    names = list(EXPRESSION_NAMES) if not only else only
    tri_eye = (rig.neutral[rig.triangles, 0].mean(1) > 0).astype(int)  # 0 subject's right, 1 left
    all_scores = []
    for k, (_, path, face) in enumerate(photos):
        rgb = read_rgb(path)
        h, w = rgb.shape[:2]
        fit = rig_placement(rig, face, (w, h))
        R, t, f = fit.rotation, fit.translation, fit.focal
        c = np.array([w / 2.0, h / 2.0])
        base = rig.mesh(fit.identity, fit.expression)

        def project(V):
            cam = V @ R.T + t
            return f * cam[:, :2] / cam[:, 2:3] + c, cam[:, 2]

        tex = PhotoTexture(rgb, face.landmarks)
        scores, tiles = {}, []
        jaw = deltas[EXPRESSION_NAMES.index("JawOpen")]
        for nm in ["neutral"] + names + (["JawOpen"] if "LipsTogether" in names and "JawOpen" not in names else []):
            V = base if nm == "neutral" else base + deltas[EXPRESSION_NAMES.index(nm)]
            if nm in ON_OPEN_JAW:  # read on an open jaw (ARKit's mouthClose is "lips closed while the jaw is open")
                V = V + jaw
            p, z = project(V)
            # geometry: the fitted rig's own projection (so a shape acts on the rig's lids and lips, not on what
            # the fit left unexplained); texture: the photo at the teacher's landmarks
            img = tex.render(p, z, rig.triangles, rig.triangle_material, tri_eye)
            det = teacher.detect_one(img)
            scores[nm] = det.blendshape_vector if det is not None else np.full(52, np.nan, np.float32)
            if sheet_prefix:
                tiles.append((nm, img))
        all_scores.append(scores)
        if sheet_prefix:
            save_sheet(tiles, face, scores, f"{sheet_prefix}_{k}.png", label)
        print(f"  photo {k}: {os.path.basename(path)} fit rms {fit.rms:.2f} px", file=sys.stderr, flush=True)
    return all_scores


def save_sheet(tiles, face, scores, path, label=""):
    import cv2  # noqa: PLC0415
    x0, y0, x1, y1 = face.bbox
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, 0.62 * max(x1 - x0, y1 - y0)
    cells = []
    for nm, img in tiles:
        h, w = img.shape[:2]
        a, b = int(max(cy - s, 0)), int(min(cy + s, h))
        l, r = int(max(cx - s, 0)), int(min(cx + s, w))
        crop = cv2.resize(img[a:b, l:r], (200, 200))
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        txt = nm
        if nm != "neutral":
            ch = mapped_channels(nm)
            v = float(np.mean([scores[nm][ARKIT_NAMES.index(x)] for x in ch]))
            v0 = float(np.mean([scores["neutral"][ARKIT_NAMES.index(x)] for x in ch]))
            txt = f"{nm} {v0:.2f}>{v:.2f}"
        cv2.rectangle(crop, (0, 0), (200, 16), (255, 255, 255), -1)
        cv2.putText(crop, txt, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1)
        cells.append(crop)
    per_row = 8
    while len(cells) % per_row:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.concatenate(cells[i:i + per_row], 1) for i in range(0, len(cells), per_row)]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cv2.imwrite(path, np.concatenate(rows, 0))


def table(all_scores, names, pass_rise=0.3, pass_level=0.5):
    """Rows (shape, channels, w0, w1, rise, top unrelated channel, its rise, ok)."""
    rows = []
    for nm in names:
        ch = mapped_channels(nm)
        idx = [ARKIT_NAMES.index(x) for x in ch]
        ref = "JawOpen" if nm in ON_OPEN_JAW else "neutral"
        s0 = np.nanmean([s[ref] for s in all_scores], 0)
        s1 = np.nanmean([s[nm] for s in all_scores], 0)
        w0, w1 = float(s0[idx].mean()), float(s1[idx].mean())
        rise = s1 - s0
        other = [i for i in range(52) if i not in idx]
        j = other[int(np.argmax(rise[other]))]
        ok = (w1 - w0 >= pass_rise or w1 > pass_level) and w1 > w0
        rows.append((nm, "+".join(ch), w0, w1, w1 - w0, ARKIT_NAMES[j], float(rise[j]), ok))
    return rows


def print_table(rows, header=""):
    print(header)
    print(f"| {'shape':15s} | {'ARKit channel(s)':40s} | w=0  | w=1  | rise  | top unrelated rise      | ok |")
    print(f"|{'-' * 17}|{'-' * 42}|------|------|-------|-------------------------|----|")
    for nm, ch, w0, w1, d, oth, od, ok in rows:
        print(f"| {nm:15s} | {ch:40s} | {w0:.2f} | {w1:.2f} | {d:+.2f} | {oth:17s} {od:+.2f} | {'✓' if ok else '✗'}  |")
    print(f"passed {sum(r[-1] for r in rows)}/{len(rows)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rig", default=os.path.join(ROOT, "rigs", "fw46.npz"))
    ap.add_argument("--faces", default=os.path.join(ROOT, "..", "shared", "faces"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "cache", "teacher", "images"))
    ap.add_argument("--n", type=int, default=3, help="number of photos")
    ap.add_argument("--author", action="store_true", help="re-author the expressions from the source")
    ap.add_argument("--only", default=None, help="comma-separated shapes (default all 46)")
    ap.add_argument("--sheet", default=os.path.join(ROOT, "out", "rig_semantics"),
                    help="contact sheet path prefix (real faces: keep out of git); '' for none")
    args = ap.parse_args(argv)
    t0 = time.time()
    rig = load_rig(args.rig)
    deltas = rig.expression_deltas
    if args.author:
        from facecap_core.rig.build.base import build_base  # noqa: PLC0415
        from facecap_core.rig.build.expressions import author_expressions  # noqa: PLC0415
        from facecap_core.rig.topology import load_canonical_mesh  # noqa: PLC0415
        base = build_base(load_canonical_mesh())
        deltas, _ = author_expressions(base)
    photos = select_photos(args.faces, args.cache, args.n)
    only = args.only.split(",") if args.only else None
    with Teacher("image") as teacher:
        scores = evaluate(rig, deltas, photos, teacher, only, args.sheet or None)
    names = only or list(EXPRESSION_NAMES)
    print_table(table(scores, names),
                f"rig semantics: {args.rig}{' (re-authored expressions)' if args.author else ''}, "
                f"{len(photos)} photos ({', '.join(os.path.basename(p) for _, p, _ in photos)}), teacher = "
                f"MediaPipe FaceLandmarker blendshapes; mean over photos; ok: rise ≥ 0.3 or w=1 > 0.5; "
                f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
