"""Label every real photo and video frame with the teacher + Eq. 4 fit, print the summary table, and write
contact sheets (to a gitignored folder: they show real faces, never commit them).

    .venv/bin/python benchmarks/label_real_faces.py [--faces ../shared/faces] [--cache cache] [--out out]

* ``out/real_masks_sheet.png``: skin-refined face masks (green = face, red = inside the oval but cut out as
  non-face) on hard cases (glasses, hair over the forehead, hands, turned heads, face masks) and a random draw;
* ``out/real_worst_fits.png``: the worst-residual faces with the teacher's points (white) and the 73 labels (yellow).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter, defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from facecap_core.data import real as R  # noqa: E402
from facecap_core.data import splits as SP  # noqa: E402
from facecap_core.rig.model import load_rig  # noqa: E402

HARD = ("deca__exp_0", "deca__exp_1", "deca__exp_6", "insightface__emotion_happy", "insightface__bulk_mask",
        "insightface__crop_crop_mask", "insightface__pose_left_face", "yale__01_glasses", "musetalk__video1_video1",
        "3ddfa_v2__inputs_JianzhuGuo", "insightface__pose_right_face", "deca__exp_2", "retalking__face_5")


def _overlay(img, mask, oval):
    vis = img.astype(np.float32)
    cut = (oval > 0) & (mask == 0)
    vis[mask > 0] = vis[mask > 0] * 0.55 + np.array([0, 255, 0]) * 0.45
    vis[cut] = vis[cut] * 0.45 + np.array([255, 0, 0]) * 0.55
    return vis.astype(np.uint8)


def _tile(img, lab, size=192):
    import cv2  # noqa: PLC0415

    x0, y0 = lab.teacher.min(0)
    x1, y1 = lab.teacher.max(0)
    c = (np.array([x0 + x1, y0 + y1]) / 2)
    s = max(x1 - x0, y1 - y0) * 0.75
    M = np.array([[size / (2 * s), 0, size / 2 - c[0] * size / (2 * s)],
                  [0, size / (2 * s), size / 2 - c[1] * size / (2 * s)]])
    return cv2.warpAffine(img, M, (size, size), flags=cv2.INTER_AREA, borderValue=(40, 40, 40)), M


def _sheet(tiles, cols, path):
    import cv2  # noqa: PLC0415

    if not tiles:
        return
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


def main(argv=None):
    import cv2  # noqa: PLC0415

    from facecap_core.data import skinseg  # noqa: PLC0415

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", default=os.path.join(os.path.dirname(root), "shared", "faces"))
    ap.add_argument("--cache", default=os.path.join(root, "cache"))
    ap.add_argument("--out", default=os.path.join(root, "out"))
    ap.add_argument("--random-tiles", type=int, default=23)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.time()
    stats: dict = {}
    labels = R.load_real_labels(args.faces, args.cache, load_rig(), accepted_only=False, progress=True, stats=stats)
    t_label = time.time() - t0
    acc = [lb for lb in labels if lb.accepted]

    print(f"\n{'':14s}{'files':>7s}{'frames':>8s}{'w/ face':>9s}{'faces':>7s}{'accepted':>10s}  rejected by reason")
    for kind, lk in (("image", "photo"), ("video", "video")):
        s = stats.get(kind, dict(files=0, frames=0, frames_with_face=0))
        ls = [lb for lb in labels if lb.kind == lk]
        rej = Counter(lb.reason for lb in ls if not lb.accepted)
        print(f"{kind:14s}{s['files']:7d}{s['frames']:8d}{s['frames_with_face']:9d}{len(ls):7d}"
              f"{sum(lb.accepted for lb in ls):10d}  {dict(rej)}")
    rms = np.array([lb.rms_iod for lb in labels if lb.reason != "fit_failed"])
    rpx = np.array([lb.rms_px for lb in labels if lb.reason != "fit_failed"])
    print("\nfit residual / IOD, all fitted faces: " + ", ".join(
        f"p{q}={np.percentile(rms, q):.4f}" for q in (10, 50, 90, 95, 98, 99, 100)))
    for lk in ("photo", "video"):
        a = [lb for lb in acc if lb.kind == lk]
        if a:
            print(f"accepted {lk}s: median residual {np.median([lb.rms_px for lb in a]):.2f} px, "
                  f"{np.median([lb.rms_iod for lb in a]):.4f} IOD; median IOD {np.median([lb.iod for lb in a]):.0f} px")
    print(f"median residual, all fitted: {np.median(rpx):.2f} px")
    print("\nworst fits (rms/IOD, reason, file, frame, face):")
    worst = sorted((lb for lb in labels if lb.reason != "fit_failed"), key=lambda lb: -lb.rms_iod)[:12]
    for lb in worst:
        print(f"  {lb.rms_iod:.4f} {lb.rms_px:6.2f}px iod {lb.iod:5.0f} {lb.reason or 'ok':13s} {lb.file} "
              f"{lb.frame} #{lb.face_index}")

    by = SP.split_items(acc)
    ids = SP.identities_by_split([lb.identity for lb in acc])
    print(f"\n{'split':10s}{'identities':>11s}{'faces':>7s}{'photos':>8s}{'frames':>8s}")
    for s in SP.SPLITS + (SP.EXCLUDED,):
        print(f"{s:10s}{len(ids[s]):11d}{len(by[s]):7d}{sum(lb.kind == 'photo' for lb in by[s]):8d}"
              f"{sum(lb.kind == 'video' for lb in by[s]):8d}")
    SP.assert_no_leak([lb.identity for lb in by["train"] + by["val"]], [lb.identity for lb in by["test"]])
    print(f"test people ({len(SP.test_identities([lb.identity for lb in acc]))}): never train or tune on them")
    print(f"\nlabelling: {t_label:.1f} s this run (cached work: "
          f"{sum(s.get('seconds', 0.0) for s in stats.values()):.0f} s of fitting when first computed)")

    # ---- contact sheets
    t1 = time.time()
    rng = random.Random(args.seed)
    by_file = defaultdict(list)
    for lb in acc:
        by_file[(lb.file, lb.frame)].append(lb)
    chosen = []
    for stem in HARD:
        for (f, fr), ls in by_file.items():
            if os.path.splitext(os.path.basename(f))[0] == stem:
                chosen.append(ls[0])
                break
    keys = sorted(by_file)
    rng.shuffle(keys)
    chosen += [by_file[k][0] for k in keys[:args.random_tiles]]
    tiles, mtimes = [], []
    for lb in chosen:
        img = R.read_frame(os.path.join(args.faces, lb.file), lb.frame)
        if img is None:
            continue
        ts = time.time()
        mask = skinseg.face_mask(img, lb.teacher)
        mtimes.append(time.time() - ts)
        oval = skinseg.oval_mask(img.shape, lb.teacher)
        vis = _overlay(img, mask, oval)
        t, _ = _tile(vis, lb)
        a, _ = _tile(img, lb)
        tiles.append(np.concatenate([a, t], 1))
    _sheet(tiles, 4, os.path.join(args.out, "real_masks_sheet.png"))
    wt = []
    for lb in worst[:12]:
        img = R.read_frame(os.path.join(args.faces, lb.file), lb.frame)
        if img is None:
            continue
        t, M = _tile(img, lb)
        for pts, col, r in ((lb.teacher, (255, 255, 255), 1), (lb.landmarks, (255, 255, 0), 2)):
            q = pts @ M[:, :2].T + M[:, 2]
            for x, y in q:
                cv2.circle(t, (int(x), int(y)), r, col, -1)
        cv2.putText(t, f"{lb.rms_iod:.3f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 80, 80), 1)
        wt.append(t)
    _sheet(wt, 6, os.path.join(args.out, "real_worst_fits.png"))
    print(f"contact sheets: {len(tiles)} mask tiles ({1000 * np.mean(mtimes):.0f} ms/mask), {len(wt)} worst fits "
          f"→ {args.out}/real_masks_sheet.png, real_worst_fits.png ({time.time() - t1:.1f} s)")


if __name__ == "__main__":
    main()
