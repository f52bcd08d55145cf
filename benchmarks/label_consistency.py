"""How well do the segmentation labels agree with themselves? (A ceiling for the IOU any network can reach.)

The ground truth of `eval_segmentation.py` is the data engine's mask: the teacher's face oval refined by skin
(design §5). Here each held-out test photo is relabelled from scratch after a change that should not move the
face: mirrored (then the mask mirrored back), downscaled to 70 %, or re-encoded as JPEG at quality 70. The new
mask is compared with the original in the same 128×128 crop as the evaluation (IOU per image, then mean and
median). Needs the teacher (the `teacher` extra) and `../shared/faces`.

    python benchmarks/label_consistency.py [--limit N]
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from eval_segmentation import MARGIN, metrics  # noqa: E402

SCALE = 0.7
JPEG_QUALITY = 70


def changed(kind: str, image: np.ndarray) -> np.ndarray:
    if kind == "mirrored":
        return np.ascontiguousarray(image[:, ::-1])
    if kind == "downscaled":
        return cv2.resize(image, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def to_original(kind: str, points: np.ndarray, width: int) -> np.ndarray:
    """Teacher points found in the changed image → the original image's pixels."""
    p = np.asarray(points, np.float64)[:, :2].copy()
    if kind == "mirrored":
        p[:, 0] = width - 1 - p[:, 0]
    elif kind == "downscaled":
        p /= SCALE
    return p


def mask_to_original(kind: str, mask: np.ndarray, size) -> np.ndarray:
    if kind == "mirrored":
        return np.ascontiguousarray(mask[:, ::-1])
    if kind == "downscaled":
        return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return mask


def main(argv=None) -> int:
    from facecap_core.data import skinseg
    from facecap_core.data.build import crop_face
    from facecap_core.data.paths import CACHE, DEFAULT_FACES
    from facecap_core.data.real import load_real_labels, read_frame, real_sample
    from facecap_core.rig.model import load_rig
    from facecap_core.teacher import Teacher

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    labels = load_real_labels(DEFAULT_FACES, CACHE, load_rig(None), kinds=("image",))
    test = [lb for lb in labels if lb.split == "test"][:args.limit]
    teacher = Teacher("image", num_faces=4)
    kinds = ("mirrored", "downscaled", "jpeg")
    ious = {k: [] for k in kinds}
    lost = {k: 0 for k in kinds}
    for lb in test:
        image = read_frame(os.path.join(DEFAULT_FACES, lb.file), lb.frame)
        if image is None:
            continue
        h, w = image.shape[:2]
        sample = real_sample(lb, image)
        reference = crop_face(sample, 128, MARGIN).mask > 0
        centre = lb.teacher[:, :2].mean(0)
        for kind in kinds:
            image2 = changed(kind, image)
            faces = teacher.detect(image2)
            near = [f for f in faces if np.linalg.norm(to_original(kind, f.landmarks, w).mean(0) - centre)
                    < 0.25 * lb.iod]
            if not near:  # the teacher lost this face: a detection failure, not a label disagreement
                lost[kind] += 1
                continue
            mask = mask_to_original(kind, skinseg.face_mask(image2, near[0].landmarks), (w, h))
            again = crop_face(sample.copy(mask=mask.astype(np.uint8)), 128, MARGIN).mask > 0
            ious[kind].append(metrics(again, reference)[0])
    teacher.close()
    print(f"label self-agreement on {len(test)} held-out photos (teacher + skin-refined oval, 128×128 crops)\n")
    print(f"{'relabelled after':<26}{'faces':>6}{'IOU mean':>10}{'median':>8}{'p10':>7}{'teacher lost':>14}")
    for kind in kinds:
        v = np.array(ious[kind])
        name = {"mirrored": "mirroring", "downscaled": f"downscaling to {SCALE:.0%}",
                "jpeg": f"JPEG quality {JPEG_QUALITY}"}[kind]
        print(f"{name:<26}{len(v):>6}{v.mean():>10.3f}{np.median(v):>8.3f}{np.percentile(v, 10):>7.3f}"
              f"{lost[kind]:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
