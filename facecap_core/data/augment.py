"""Augmentations of FaceSamples (paper §4 "Training" of the segmenter and §5 "Training" of the tracker).

Every function takes a FaceSample and an `np.random.Generator`, returns a *new* FaceSample with all labels kept
consistent (image, mask, landmarks, visible, crop_affine) and appends one record ``{"op": name, ...key
parameters}`` to ``sample.meta["augment"]``.

Label rules (design §5):
  * geometric warps move image, mask (nearest) and landmarks together and compose ``crop_affine``; a landmark
    that leaves the image becomes not visible;
  * an occluder layer (RGBA) sets the mask to 0 where its alpha > 0.5, and a landmark becomes not visible when the
    layer's alpha at its (nearest) pixel is > 0.5 — the same test, so a hidden landmark always sits on mask 0;
  * photometric transforms change only the image;
  * negatives have an all-zero mask, NaN landmarks, no visible landmark and params None.

Default proportions (`SegmentationPolicy`) follow the paper's data (8,021 faces → perturbed crops, as many again
with random rectangles and half as many with hands): every sample gets a perturbed crop, then one occlusion
choice: none 0.34, rectangles 0.30, hand 0.18, other occluder 0.18 (hair, glasses, objects, face masks — the
occluders the paper lacked), with an extra second occluder 15 % of the time; photometric changes are
independent (colour jitter 0.8, noise 0.3, JPEG 0.3, motion blur 0.15, defocus 0.1). Negatives are made
separately (`make_negative`), as many as positives for the fine-tuning stage.

Run ``python -m facecap_core.data.augment --out out/augment_sheet.png [--real]`` for a contact sheet.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..rig.geometry import matrix_to_quat, quat_to_matrix, rotvec_to_matrix
from .occluders import (Occluder, OccluderLibrary, _line_kernel, face_frame, face_skin_tone,
                        procedural_hand, procedural_object, random_rectangle)
from .types import FaceSample, ShapeParams

OCCLUDER_ALPHA = 0.5  # alpha above which an occluder hides the face (mask 0, landmark not visible)


def _record(sample: FaceSample, op: str, **params) -> FaceSample:
    sample.meta["augment"] = list(sample.meta.get("augment", [])) + [dict(op=op, **params)]
    return sample


def _size(sample):
    return sample.image.shape[1], sample.image.shape[0]


def _inside(lm, size):
    w, h = size
    with np.errstate(invalid="ignore"):
        return (lm[:, 0] >= -0.5) & (lm[:, 0] < w - 0.5) & (lm[:, 1] >= -0.5) & (lm[:, 1] < h - 0.5)


# --------------------------------------------------------------------------------------------------------------
# Geometric
# --------------------------------------------------------------------------------------------------------------

def warp_sample(sample: FaceSample, affine: np.ndarray, out_size: tuple[int, int] | None = None,
                background: np.ndarray | None = None) -> FaceSample:
    """Apply a (2, 3) affine (this sample's px → new px) to image (bilinear), mask (nearest) and landmarks;
    crop_affine becomes affine ∘ crop_affine. Pixels coming from outside the old image are taken from
    `background` ((H, W, 3) uint8 of out_size) when given, else replicated from the border. Landmarks that leave
    the image become not visible. out_size = (W, H), default: unchanged."""
    A = np.asarray(affine, np.float64)
    w, h = out_size or _size(sample)
    img = cv2.warpAffine(sample.image, A, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if background is not None:
        valid = cv2.warpAffine(np.full(sample.mask.shape, 255, np.uint8), A, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)[..., None] / 255
        img = (img * valid + background[:h, :w] * (1 - valid) + 0.5).astype(np.uint8)
    mask = cv2.warpAffine(sample.mask, A, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
    lm = (sample.landmarks.astype(np.float64) @ A[:, :2].T + A[:, 2]).astype(np.float32)
    vis = sample.visible & _inside(lm, (w, h))
    A3 = np.vstack([A, [0, 0, 1]])
    C3 = np.vstack([sample.crop_affine, [0, 0, 1]])
    return sample.copy(image=img, mask=mask, landmarks=lm, visible=vis, crop_affine=(A3 @ C3)[:2])


def random_crop_jitter(sample: FaceSample, rng: np.random.Generator, max_shift: float = 0.08,
                       max_rotation_deg: float = 15.0, scale_range: tuple[float, float] = (0.85, 1.15),
                       background: np.ndarray | None = None) -> FaceSample:
    """The paper's perturbed crop: rotate by U(±max_rotation_deg) and scale by U(scale_range) about the face
    centre, then translate by U(±max_shift) of the image size. Labels follow (see `warp_sample`)."""
    w, h = _size(sample)
    ff = face_frame(sample.landmarks if not sample.is_negative else None, (w, h))
    c = ff.centre if ff.has_face else np.array([(w - 1) / 2, (h - 1) / 2])
    ang = rng.uniform(-max_rotation_deg, max_rotation_deg)
    s = rng.uniform(*scale_range)
    t = rng.uniform(-max_shift, max_shift, 2) * [w, h]
    A = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(ang), float(s))
    A[:, 2] += t
    out = warp_sample(sample, A, background=background)
    return _record(out, "crop_jitter", rotation_deg=round(float(ang), 2), scale=round(float(s), 3),
                   shift_px=[round(float(v), 1) for v in t])


# --------------------------------------------------------------------------------------------------------------
# Occluders
# --------------------------------------------------------------------------------------------------------------

def paste_occluder(sample: FaceSample, layer_rgba: np.ndarray | Occluder, name: str | None = None,
                   threshold: float = OCCLUDER_ALPHA, **params) -> FaceSample:
    """Alpha-composite an (H, W, 4) uint8 RGBA layer (straight alpha, same size as the sample) over the image.
    mask := 0 where alpha > threshold; a landmark whose nearest pixel has alpha > threshold becomes not visible."""
    info = {}
    if isinstance(layer_rgba, Occluder):
        name = name or layer_rgba.kind
        info = dict(layer_rgba.info)
        layer_rgba = layer_rgba.rgba
    assert layer_rgba.shape[:2] == sample.image.shape[:2] and layer_rgba.shape[2] == 4
    a = layer_rgba[..., 3:].astype(np.float32) / 255
    img = (layer_rgba[..., :3] * a + sample.image * (1 - a) + 0.5).astype(np.uint8)
    covered = a[..., 0] > threshold
    mask = sample.mask.copy()
    mask[covered] = 0
    vis = sample.visible.copy()
    w, h = _size(sample)
    ok = np.isfinite(sample.landmarks).all(1)
    ij = np.round(np.nan_to_num(sample.landmarks)).astype(int)
    inb = ok & (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
    hidden = np.zeros(len(vis), bool)
    hidden[inb] = covered[ij[inb, 1], ij[inb, 0]]
    vis &= ~hidden
    out = sample.copy(image=img, mask=mask, visible=vis)
    return _record(out, name or "occluder", **info, **params, hidden_landmarks=int((hidden & sample.visible).sum()))


def add_random_rectangles(sample: FaceSample, rng: np.random.Generator, n: tuple[int, int] = (1, 2),
                          max_frac: float = 0.6) -> FaceSample:
    """The paper's random-size uniformly coloured rectangles (between n[0] and n[1] of them)."""
    lm = None if sample.is_negative else sample.landmarks
    for _ in range(int(rng.integers(n[0], n[1] + 1))):
        sample = paste_occluder(sample, random_rectangle(rng, _size(sample), lm, max_frac=max_frac))
    return sample


def add_hand(sample: FaceSample, rng: np.random.Generator, occluders: OccluderLibrary | None = None,
             pose: str | None = None) -> FaceSample:
    """A hand over / next to the face: a real cut-out (when the library has some) or a procedural hand whose
    skin tone is the face's own half the time."""
    lm = None if sample.is_negative else sample.landmarks
    tone = face_skin_tone(sample.image, sample.mask)
    if pose is not None or occluders is None:
        occ = procedural_hand(rng, _size(sample), lm, face_tone=tone, pose=pose)
    else:
        occ = occluders.hand(rng, _size(sample), lm, face_tone=tone)
    return paste_occluder(sample, occ)


def add_other_occluder(sample: FaceSample, rng: np.random.Generator, occluders: OccluderLibrary | None = None,
                       kind: str | None = None) -> FaceSample:
    """Hair, glasses, an object, a face mask or a sprite (kinds of `OccluderLibrary.other`)."""
    lib = occluders or OccluderLibrary()
    lm = None if sample.is_negative else sample.landmarks
    return paste_occluder(sample, lib.other(rng, _size(sample), lm, kind=kind))


# --------------------------------------------------------------------------------------------------------------
# Photometric (image only)
# --------------------------------------------------------------------------------------------------------------

def motion_blur(sample: FaceSample, rng: np.random.Generator, max_length: float = 9.0) -> FaceSample:
    """Blur along a random direction with a line kernel of length U(3, max_length) px."""
    length, ang = rng.uniform(3, max_length), rng.uniform(0, np.pi)
    img = cv2.filter2D(sample.image, -1, _line_kernel(length, ang), borderType=cv2.BORDER_REFLECT)
    return _record(sample.copy(image=img), "motion_blur", length=round(float(length), 1),
                   angle_deg=round(float(np.degrees(ang)), 1))


def gaussian_noise(sample: FaceSample, rng: np.random.Generator, max_sigma: float = 10.0) -> FaceSample:
    """Additive Gaussian noise with σ = U(1, max_sigma) grey levels (per channel)."""
    sigma = rng.uniform(1, max_sigma)
    img = np.clip(sample.image + rng.normal(0, sigma, sample.image.shape), 0, 255).astype(np.uint8)
    return _record(sample.copy(image=img), "noise", sigma=round(float(sigma), 2))


def jpeg_reencode(sample: FaceSample, rng: np.random.Generator, quality: tuple[int, int] = (20, 95)) -> FaceSample:
    """Encode / decode as JPEG at a random quality."""
    q = int(rng.integers(quality[0], quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return _record(sample.copy(image=img), "jpeg", quality=q)


def color_jitter(sample: FaceSample, rng: np.random.Generator, brightness: float = 0.25, contrast: float = 0.3,
                 saturation: float = 0.35, hue_deg: float = 8.0, gamma: tuple[float, float] = (0.7, 1.4)
                 ) -> FaceSample:
    """Brightness ×U(1±b), contrast about the mean ×U(1±c), saturation ×U(1±s), hue shift U(±hue_deg), gamma."""
    b, c, s = (1 + rng.uniform(-brightness, brightness), 1 + rng.uniform(-contrast, contrast),
               1 + rng.uniform(-saturation, saturation))
    hshift, g = rng.uniform(-hue_deg, hue_deg), np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1])))
    f = sample.image.astype(np.float32) / 255
    hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + hshift) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * s, 0, 1)
    f = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    f = (f - f.mean()) * c + f.mean()
    f = np.clip(f * b, 0, 1) ** g
    img = (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8)
    return _record(sample.copy(image=img), "color_jitter", brightness=round(float(b), 3), contrast=round(float(c), 3),
                   saturation=round(float(s), 3), hue_deg=round(float(hshift), 2), gamma=round(float(g), 3))


def defocus_blur(sample: FaceSample, rng: np.random.Generator, max_radius: float = 2.0) -> FaceSample:
    """Slight defocus: convolution with an anti-aliased disc of radius U(0.7, max_radius) px."""
    r = rng.uniform(0.7, max_radius)
    n = int(np.ceil(r)) * 2 + 1
    yy, xx = np.mgrid[:n, :n] - n // 2
    k = np.clip(r + 0.5 - np.sqrt(xx ** 2 + yy ** 2), 0, 1).astype(np.float32)
    img = cv2.filter2D(sample.image, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)
    return _record(sample.copy(image=img), "defocus", radius=round(float(r), 2))


# --------------------------------------------------------------------------------------------------------------
# Backgrounds and negatives
# --------------------------------------------------------------------------------------------------------------

def load_backgrounds(root: str | None = None, max_side: int = 320) -> list[np.ndarray]:
    """Real background photos (../shared/backgrounds/manifest.csv) as uint8 RGB, longest side ≤ max_side;
    [] when the folder is missing."""
    import csv
    import os
    from .occluders import DEFAULT_OCCLUDER_ROOT
    root = root or os.path.join(os.path.dirname(DEFAULT_OCCLUDER_ROOT), "backgrounds")
    man = os.path.join(root, "manifest.csv")
    if not os.path.exists(man):
        return []
    out = []
    with open(man, newline="") as f:
        for r in csv.DictReader(f):
            im = cv2.imread(os.path.join(root, r["file"]))
            if im is None or r.get("faces_detected", "0") not in ("0", ""):
                continue
            s = min(1.0, max_side / max(im.shape[:2]))
            if s < 1:
                im = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            out.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
    return out


def procedural_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 clutter without faces: a colour gradient, smooth noise and a few shaded shapes."""
    w, h = size
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, h)[:, None, None] * rng.uniform(0.3, 1) + np.linspace(0, 1, w)[None, :, None] * \
        rng.uniform(-0.5, 0.5)
    img = c0 * (1 - t) + c1 * t
    noise = cv2.resize(rng.normal(0, 1, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    img = img + noise * rng.uniform(5, 30)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        p = rng.integers(0, [w, h], (2,)), rng.integers(0, [w, h], (2,))
        if rng.random() < 0.5:
            cv2.rectangle(img, tuple(int(v) for v in p[0]), tuple(int(v) for v in p[1]), col, -1, cv2.LINE_AA)
        else:
            cv2.circle(img, tuple(int(v) for v in p[0]), int(rng.integers(3, max(4, w // 4))), col, -1, cv2.LINE_AA)
    return img


def random_background(rng: np.random.Generator, backgrounds: list[np.ndarray] | None, size: tuple[int, int]
                      ) -> np.ndarray:
    """A random crop (random scale, optional flip) of one of `backgrounds`, resized to size = (W, H); a
    procedural background when the list is empty or None."""
    w, h = size
    if not backgrounds:
        return procedural_background(rng, size)
    bg = backgrounds[rng.integers(len(backgrounds))]
    bh, bw = bg.shape[:2]
    frac = rng.uniform(0.3, 1.0)
    cw = max(8, int(min(bw, bh * w / h) * frac))
    ch = max(8, int(cw * h / w))
    x0, y0 = int(rng.integers(0, max(1, bw - cw + 1))), int(rng.integers(0, max(1, bh - ch + 1)))
    crop = bg[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_AREA)


def make_negative(rng: np.random.Generator, occluders: OccluderLibrary | None = None,
                  backgrounds: list[np.ndarray] | None = None, size: tuple[int, int] = (128, 128),
                  p_hands: float = 0.5, p_objects: float = 0.2) -> FaceSample:
    """A sample without a face (fine-tuning negatives): a background crop, with hands / arms alone over it
    (probability p_hands; 1-2 hands, large, skin tones from the palette) and sometimes an object. Mask all 0,
    landmarks NaN, visible all False, params None, source "negative"."""
    w, h = size
    img = random_background(rng, backgrounds, size)
    s = FaceSample(image=img, mask=np.zeros((h, w), np.uint8), landmarks=np.full((73, 2), np.nan, np.float32),
                   visible=np.zeros(73, bool), params=None, crop_affine=np.eye(2, 3), source="negative",
                   identity="negative", meta={"augment": [{"op": "negative_background",
                                                           "real": bool(backgrounds)}]})
    if rng.random() < p_hands:
        for _ in range(int(rng.integers(1, 3))):
            if occluders is not None and occluders.has("hand") and rng.random() < occluders.p_real:
                s = paste_occluder(s, occluders.hand(rng, size, None))
            else:
                s = paste_occluder(s, procedural_hand(rng, size, None))
    if rng.random() < p_objects:
        s = paste_occluder(s, procedural_object(rng, size, None))
    return s


# --------------------------------------------------------------------------------------------------------------
# Tracker (paper §5 "Training")
# --------------------------------------------------------------------------------------------------------------

@dataclass
class PerturbationRanges:
    """Standard deviations of the initial-estimate perturbations S* around the ground truth S."""
    rotation_deg: float = 6.0  # per axis (rotation vector), clipped at 3σ
    translation_xy_cm: float = 0.8  # sideways, cm: ≈ 6 % of the face's width whatever its distance
    translation_z: float = 0.05  # × t_z: ≈ 5 % change of the face's image size
    expression: float = 0.25  # additive on the active coefficients
    expression_replace: float = 0.5  # probability of taking x from `expression_pool` instead (when given)
    identity: float = 0.5  # additive, u ~ N(0, 1) over real faces
    focal_log: float = 0.15  # multiplicative: f × exp(N(0, σ))


def perturb_shape_params(params: ShapeParams, rng: np.random.Generator, n: int, kind: str,
                         ranges: PerturbationRanges | None = None, expression_pool: np.ndarray | None = None
                         ) -> list[ShapeParams]:
    """n perturbed copies of `params` (initial estimates S* for the DDE regressor). kind ∈ {"rotation",
    "translation", "pose" (both), "expression", "identity", "focal"}. Expression perturbations either take a
    random other training expression (expression_pool (M, 46)) or add noise to a random subset of the
    coefficients; x is always clipped to [0, 1]. Rotations stay unit quaternions; focal stays > 0."""
    r = ranges or PerturbationRanges()
    out = []
    tz = abs(float(params.translation[2])) or 50.0
    for _ in range(n):
        q, t, x, u, f = (params.rotation.copy(), params.translation.copy(), params.expression.copy(),
                         params.identity.copy(), float(params.focal))
        if kind in ("rotation", "pose"):
            rv = np.clip(rng.normal(0, np.radians(r.rotation_deg), 3), -3 * np.radians(r.rotation_deg),
                         3 * np.radians(r.rotation_deg))
            q = matrix_to_quat(rotvec_to_matrix(rv) @ quat_to_matrix(q))
        if kind in ("translation", "pose"):
            t = t + rng.normal(0, 1, 3) * np.array([r.translation_xy_cm, r.translation_xy_cm, r.translation_z * tz])
        if kind == "expression":
            if expression_pool is not None and len(expression_pool) and rng.random() < r.expression_replace:
                x = np.asarray(expression_pool[rng.integers(len(expression_pool))], np.float64).copy()
            else:
                active = rng.random(x.shape) < rng.uniform(0.1, 0.5)
                x = x + active * rng.normal(0, r.expression, x.shape)
        if kind == "identity":
            u = u + rng.normal(0, r.identity, u.shape)
        if kind == "focal":
            f = f * float(np.exp(np.clip(rng.normal(0, r.focal_log), -3 * r.focal_log, 3 * r.focal_log)))
        if kind not in ("rotation", "translation", "pose", "expression", "identity", "focal"):
            raise ValueError(f"unknown perturbation kind {kind!r}")
        out.append(ShapeParams(rotation=q, translation=t, expression=np.clip(x, 0.0, 1.0), identity=u, focal=f,
                               image_size=params.image_size))
    return out


def tracker_perturbation_set(params: ShapeParams, rng: np.random.Generator, n_expression: int = 15,
                             n_other: int = 5, ranges: PerturbationRanges | None = None,
                             expression_pool: np.ndarray | None = None) -> list[tuple[str, ShapeParams]]:
    """The paper's initial estimates for one training image: expressions 15×, and 5× each for rotation,
    translation, identity and focal. Returns [(kind, S*)], 15 + 4·5 = 35 by default."""
    out = []
    for kind, n in (("expression", n_expression), ("rotation", n_other), ("translation", n_other),
                    ("identity", n_other), ("focal", n_other)):
        out += [(kind, p) for p in perturb_shape_params(params, rng, n, kind, ranges, expression_pool)]
    return out


def face_box(sample: FaceSample) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the face: the mask's bounding box, else the visible landmarks'; None for negatives."""
    ys, xs = np.nonzero(sample.mask)
    if len(xs):
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    lm = sample.landmarks[sample.visible & np.isfinite(sample.landmarks).all(1)]
    if len(lm) < 2:
        return None
    return float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max())


def cutout_rectangle(sample: FaceSample, rng: np.random.Generator, max_frac: float = 0.8,
                     centre_sigma: float = 0.25, fill: str | np.ndarray = "auto") -> FaceSample:
    """The tracker's extra copy: a rectangle cut out of the segmented face. Centre ~ N(face-box centre,
    centre_sigma × box size), width/height U(0.1, max_frac) × the face box; mask := 0 inside; landmarks inside
    become not visible; the image inside is filled with `fill`: an (H, W, 3) background image, "neutral"
    (a random grey) or "auto" (the image's own pixels blurred heavily with noise, half the time, else neutral)."""
    box = face_box(sample)
    if box is None:
        return _record(sample.copy(), "cutout_rectangle", skipped=True)
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    cx = rng.normal((x0 + x1) / 2, centre_sigma * bw)
    cy = rng.normal((y0 + y1) / 2, centre_sigma * bh)
    rw, rh = rng.uniform(0.1, max_frac) * bw, rng.uniform(0.1, max_frac) * bh
    w, h = _size(sample)
    rx0, rx1 = int(np.clip(np.floor(cx - rw / 2), 0, w)), int(np.clip(np.floor(cx - rw / 2) + int(rw), 0, w))
    ry0, ry1 = int(np.clip(np.floor(cy - rh / 2), 0, h)), int(np.clip(np.floor(cy - rh / 2) + int(rh), 0, h))
    img, mask = sample.image.copy(), sample.mask.copy()
    if isinstance(fill, np.ndarray):
        patch, how = fill[ry0:ry1, rx0:rx1], "background"
    elif fill == "neutral" or (fill == "auto" and rng.random() < 0.5):
        patch, how = np.full((ry1 - ry0, rx1 - rx0, 3), int(rng.integers(60, 200)), np.uint8), "neutral"
    else:
        tex = cv2.GaussianBlur(sample.image, (0, 0), max(2.0, 0.1 * w)).astype(np.float32)
        tex = tex[ry0:ry1, rx0:rx1] + rng.normal(0, 8, (ry1 - ry0, rx1 - rx0, 3))
        patch, how = np.clip(tex, 0, 255).astype(np.uint8), "texture"
    img[ry0:ry1, rx0:rx1] = patch
    mask[ry0:ry1, rx0:rx1] = 0
    lm = np.nan_to_num(sample.landmarks, nan=-1e9)
    ij = np.round(lm)
    inside = (ij[:, 0] >= rx0) & (ij[:, 0] < rx1) & (ij[:, 1] >= ry0) & (ij[:, 1] < ry1)
    out = sample.copy(image=img, mask=mask, visible=sample.visible & ~inside)
    return _record(out, "cutout_rectangle", box=[rx0, ry0, rx1, ry1], face_box=[round(v, 1) for v in box],
                   fill=how)


# --------------------------------------------------------------------------------------------------------------
# Composed policy
# --------------------------------------------------------------------------------------------------------------

@dataclass
class SegmentationPolicy:
    """Probabilities of `augment_for_segmentation` (see the module docstring for where they come from)."""
    p_crop_jitter: float = 1.0
    occlusion: dict = field(default_factory=lambda: {"none": 0.34, "rectangles": 0.30, "hand": 0.18,
                                                     "other": 0.18})
    p_second_occluder: float = 0.15
    p_color_jitter: float = 0.8
    p_noise: float = 0.3
    p_jpeg: float = 0.3
    p_motion_blur: float = 0.15
    p_defocus: float = 0.1


def augment_for_segmentation(sample: FaceSample, rng: np.random.Generator,
                             occluders: OccluderLibrary | None = None,
                             backgrounds: list[np.ndarray] | None = None,
                             p: SegmentationPolicy | None = None) -> FaceSample:
    """Perturbed crop → one occlusion choice (none / rectangles / hand / other) [+ a second occluder] →
    photometric changes. Occluders come from `occluders` (procedural only when None); out-of-image pixels of
    the perturbed crop come from a random background (procedural when `backgrounds` is empty / None)."""
    p = p or SegmentationPolicy()
    lib = occluders or OccluderLibrary()
    size = _size(sample)
    if rng.random() < p.p_crop_jitter:
        sample = random_crop_jitter(sample, rng, background=random_background(rng, backgrounds, size))

    def occlude(s, choice):
        if choice == "rectangles":
            return add_random_rectangles(s, rng)
        if choice == "hand":
            return add_hand(s, rng, lib)
        if choice == "other":
            return add_other_occluder(s, rng, lib)
        return s

    names = list(p.occlusion)
    probs = np.array([p.occlusion[k] for k in names], np.float64)
    choice = names[rng.choice(len(names), p=probs / probs.sum())]
    sample = occlude(sample, choice)
    if choice != "none" and rng.random() < p.p_second_occluder:
        sample = occlude(sample, ("hand", "other", "rectangles")[rng.integers(3)])
    if rng.random() < p.p_motion_blur:
        sample = motion_blur(sample, rng)
    if rng.random() < p.p_defocus:
        sample = defocus_blur(sample, rng)
    if rng.random() < p.p_color_jitter:
        sample = color_jitter(sample, rng)
    if rng.random() < p.p_noise:
        sample = gaussian_noise(sample, rng)
    if rng.random() < p.p_jpeg:
        sample = jpeg_reencode(sample, rng)
    return sample


# --------------------------------------------------------------------------------------------------------------
# A toy face and previews (tests, contact sheets)
# --------------------------------------------------------------------------------------------------------------

def toy_face_sample(rng: np.random.Generator, size: int = 128, tone: np.ndarray | None = None,
                    background: np.ndarray | None = None) -> FaceSample:
    """A generated FaceSample for tests and previews (no rig, no shared data): a shaded elliptic face with eyes,
    brows, nose and mouth drawn where its 73 landmarks are, the mask = the face ellipse, all landmarks visible,
    params = a frontal pose at 50 cm."""
    from ..rig.model import N_EXPRESSIONS, N_IDENTITY
    from .occluders import skin_tone_palette
    w = h = size
    img = background.copy() if background is not None else procedural_background(rng, (w, h))
    cx, cy = w / 2 + rng.normal(0, 0.03) * w, h / 2 + rng.normal(0, 0.03) * h
    a, b = w * rng.uniform(0.26, 0.32), h * rng.uniform(0.34, 0.4)
    if tone is None:
        pal = skin_tone_palette()
        tone = pal[rng.integers(len(pal))]
    tone = np.asarray(tone, np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2
    shade = np.clip(1.05 - 0.35 * r2 - 0.1 * (xs - cx) / a, 0.4, 1.2)
    face = np.clip(tone * shade[..., None], 0, 255)
    cov = np.clip((1 - np.sqrt(r2)) * min(a, b) + 0.5, 0, 1)[..., None]
    img = (face * cov + img * (1 - cov)).astype(np.uint8)
    mask = (r2 <= 1).astype(np.uint8)
    lm = np.zeros((73, 2), np.float32)
    lm[:17, 0] = cx - 0.92 * a * np.cos(np.linspace(0, np.pi, 17))  # jaw, image left → right
    lm[:17, 1] = cy + 0.05 * b + 0.86 * b * np.sin(np.linspace(0, np.pi, 17))
    ey = cy - 0.22 * b
    ew, eh = 0.2 * a, 0.07 * b
    for side, e0, br, pupil in ((-1, 36, 17, 68), (1, 42, 22, 69)):
        ex = cx + side * 0.42 * a
        # 36-41: outer, top, top, inner, bottom, bottom; 42-47: inner, top, top, outer, bottom, bottom —
        # both start at the eye's image-left corner and go clockwise.
        lm[e0:e0 + 6] = [(ex - ew, ey), (ex - ew * 0.35, ey - eh), (ex + ew * 0.35, ey - eh), (ex + ew, ey),
                         (ex + ew * 0.35, ey + eh), (ex - ew * 0.35, ey + eh)]
        lm[pupil] = (ex, ey)
        bx = np.linspace(-1, 1, 5)  # brows: 17-21 outer → inner, 22-26 inner → outer: image left → right
        lm[br:br + 5] = np.stack([ex + bx * 0.28 * a, ey - 0.16 * b - 0.05 * b * (1 - bx ** 2)], 1)
    lm[27:31] = np.stack([np.full(4, cx), np.linspace(ey, cy + 0.12 * b, 4)], 1)
    lm[31:36] = np.stack([cx + np.linspace(-0.16, 0.16, 5) * a, np.full(5, cy + 0.17 * b)], 1)
    my, mw = cy + 0.42 * b, 0.36 * a
    ang = np.linspace(np.pi, 0, 7)
    lm[48:55] = np.stack([cx + mw * np.cos(ang), my - 0.08 * b * np.sin(ang)], 1)
    ang = np.linspace(0, np.pi, 7)[1:-1]
    lm[55:60] = np.stack([cx + mw * np.cos(ang), my + 0.1 * b * np.sin(ang)], 1)
    lm[60:65] = np.stack([cx + 0.7 * mw * np.cos(np.linspace(np.pi, 0, 5)), my - 0.02 * b * np.sin(
        np.linspace(np.pi, 0, 5))], 1)
    lm[65:68] = np.stack([cx + 0.5 * mw * np.cos(np.linspace(0.5, np.pi - 0.5, 3)), np.full(3, my + 0.02 * b)], 1)
    lm[70:73] = np.stack([cx + np.array([-0.45, 0, 0.45]) * a, cy - b * np.array([0.82, 0.93, 0.82])], 1)
    # draw the features where the landmarks are
    dark = tuple(float(v) for v in np.clip(tone * 0.35, 0, 255))
    for e0 in (36, 42):
        cv2.fillPoly(img, [np.round(lm[e0:e0 + 6] * 16).astype(np.int32)], (235, 235, 235), cv2.LINE_AA, 4)
    for k in (68, 69):
        cv2.circle(img, tuple(np.round(lm[k] * 16).astype(int)), int(0.055 * b * 16), (40, 30, 25), -1,
                   cv2.LINE_AA, 4)
    for br in (17, 22):
        cv2.polylines(img, [np.round(lm[br:br + 5] * 16).astype(np.int32)], False, dark, max(1, int(0.03 * b)) * 16 // 8,
                      cv2.LINE_AA, 4)
    cv2.polylines(img, [np.round(lm[27:31] * 16).astype(np.int32)], False, dark, 16, cv2.LINE_AA, 4)
    cv2.polylines(img, [np.round(lm[31:36] * 16).astype(np.int32)], False, dark, 16, cv2.LINE_AA, 4)
    lips = tuple(float(v) for v in np.clip(tone * [0.75, 0.45, 0.45], 0, 255))
    cv2.fillPoly(img, [np.round(np.vstack([lm[48:55], lm[55:60]]) * 16).astype(np.int32)], lips, cv2.LINE_AA, 4)
    params = ShapeParams(rotation=np.array([1.0, 0, 0, 0]), translation=np.array([0.0, 0.0, 50.0]),
                         expression=np.clip(rng.normal(0.1, 0.1, N_EXPRESSIONS), 0, 1),
                         identity=rng.normal(0, 1, N_IDENTITY), focal=float(size), image_size=(w, h))
    return FaceSample(image=img, mask=mask, landmarks=lm, visible=np.ones(73, bool), params=params,
                      crop_affine=np.eye(2, 3), source="synthetic", identity="toy", meta={})


def draw_overlay(sample: FaceSample, scale: int = 2) -> np.ndarray:
    """RGB preview: the image with the face mask tinted blue (outline in yellow), visible landmarks green,
    occluded ones red; upscaled by `scale`."""
    img = cv2.resize(sample.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST).astype(np.float32)
    m = cv2.resize(sample.mask, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST).astype(bool)
    img[m] = img[m] * 0.85 + np.array([40, 80, 255]) * 0.15
    out = img.astype(np.uint8)
    cnts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, cnts, -1, (255, 230, 0), 1)
    for (x, y), v in zip(sample.landmarks, sample.visible):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(out, (int(round(x * scale)), int(round(y * scale))), 2, (0, 230, 0) if v else (255, 0, 0), -1)
    return out


def contact_sheet(tiles: list[np.ndarray], cols: int = 8, labels: list[str] | None = None) -> np.ndarray:
    """Grid of equally sized RGB tiles (optionally captioned)."""
    th, tw = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.full((rows * (th + 14), cols * tw, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * (th + 14):r * (th + 14) + th, c * tw:(c + 1) * tw] = t
        if labels:
            cv2.putText(sheet, labels[i][:32], (c * tw + 2, r * (th + 14) + th + 11), cv2.FONT_HERSHEY_PLAIN, 0.8,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def _label(sample):
    ops = [a["op"] for a in sample.meta.get("augment", [])]
    keep = [o for o in ops if o not in ("crop_jitter", "color_jitter", "noise", "jpeg")]
    txt = " ".join(keep) or "-"
    for a in sample.meta.get("augment", []):
        if a["op"] in ("hand", "real-hand") and "pose" in a:
            txt += f":{a['pose']}"
        if a["op"] == "object":
            txt += f":{a['object']}"
    return txt.replace("negative_background", "NEG")


def main(argv=None):
    import argparse
    import os
    ap = argparse.ArgumentParser(description="contact sheet of augmented samples")
    ap.add_argument("--out", default="out/augment_sheet.png")
    ap.add_argument("--real", action="store_true", help="use ../shared occluders and backgrounds (cached)")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="force one occlusion: rectangles, hand, other, none")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    lib, bgs = OccluderLibrary(), []
    if a.real:
        lib = OccluderLibrary.from_dir(cache_dir="cache/occluders")
        bgs = load_backgrounds()
        print("occluders:", lib.counts(), "backgrounds:", len(bgs))
    pol = SegmentationPolicy()
    if a.only:
        pol.occlusion = {a.only: 1.0}
    tiles, labels = [], []
    for i in range(a.n):
        if i % 8 == 7:
            s = make_negative(rng, lib, bgs, (128, 128))
        else:
            bg = random_background(rng, bgs, (128, 128))
            s = augment_for_segmentation(toy_face_sample(rng, 128, background=bg), rng, lib, bgs, pol)
        tiles.append(draw_overlay(s))
        labels.append(_label(s))
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    cv2.imwrite(a.out, cv2.cvtColor(contact_sheet(tiles, 8, labels), cv2.COLOR_RGB2BGR))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
