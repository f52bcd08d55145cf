"""Occluder library: RGBA layers that cover part of a face (design §5: anything in front of the face is non-face).

Every generator returns an :class:`Occluder` whose `rgba` is an (H, W, 4) uint8 layer (straight, not
premultiplied alpha) of the *target sample's* size, already placed relative to the face through the sample's
73 landmarks (glasses on the eyes, hair from the top, hands next to / over the face). `augment.paste_occluder`
composites it: the face mask becomes 0 where alpha > 0.5 and landmarks under such pixels become not visible.

Sources:
  * procedural (always available, used by the tests): hands (`procedural_hand`), hair locks (`procedural_hair`),
    glasses (`procedural_glasses`), microphones / phones / cups / blobs (`procedural_object`) and the paper's
    uniformly coloured rectangles (`random_rectangle`);
  * real cut-outs from ``../shared/occluders`` (`OccluderLibrary.from_dir`): RGBA hand cut-outs, EgoHands frames
    cut out by their human masks, RGBA object cut-outs, sprites (glasses, hats, masks, beards) and surgical-mask
    photos (frame-filling: alpha = the photo with rounded corners, shaped to the jaw when placed). They are
    cached under ``cache/`` (gitignored) and never committed.

Held-out hands: the real hand cut-outs are split train / val / test by the photo they were cut from
(`cutout_split`), as the faces are by identity, so a held-out evaluation pastes hands the network never saw.
`OccluderLibrary.for_split(split)` keeps that split's hands (the other categories, too few to split, are shared).

Glasses lenses: clear or tinted lenses get alpha ≤ 0.45 so they never count as occluders (the eye is seen through
them, the mask stays face there); only the frame, bridge and temples (alpha 1) are occluders. Dark sunglasses
(alpha ≥ 0.85, 15 % of procedural glasses) hide the eye and therefore count as occluders.

Skin tones for hands: half the time the tone of the face being covered (median of its masked pixels, slightly
jittered: the hard case the paper targets), otherwise a tone from `skin_tone_palette()` (light to dark skin).

Coordinates: pixels, x right / y down, integer coordinates at pixel centres (OpenCV convention).
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from .paths import DEFAULT_OCCLUDERS as DEFAULT_OCCLUDER_ROOT


# Light to dark skin (sRGB), roughly the Monk skin-tone scale plus warm / olive variants.
_SKIN_PALETTE = np.array([
    (246, 237, 228), (243, 231, 219), (247, 234, 208), (234, 218, 186), (215, 189, 150), (160, 126, 86),
    (130, 92, 67), (96, 65, 52), (58, 49, 45), (41, 36, 32), (236, 200, 175), (224, 180, 150),
    (198, 150, 120), (175, 128, 95), (141, 97, 70), (110, 75, 55), (205, 160, 120), (185, 140, 100),
], np.uint8)

_HAIR_PALETTE = np.array([
    (20, 17, 15), (35, 28, 24), (60, 42, 30), (88, 60, 40), (120, 85, 55), (165, 125, 80), (205, 170, 120),
    (225, 200, 150), (140, 70, 40), (110, 50, 30), (170, 170, 170), (215, 215, 210),
], np.uint8)


@dataclass
class Occluder:
    """One occluder layer for a sample of the same size: rgba (H, W, 4) uint8, straight alpha."""
    rgba: np.ndarray
    kind: str  # "hand", "hair", "glasses", "object", "rectangle", "sprite", "face-mask", "real-hand", ...
    info: dict = field(default_factory=dict)  # key parameters, recorded in sample.meta["augment"]


# --------------------------------------------------------------------------------------------------------------
# Face frame from landmarks
# --------------------------------------------------------------------------------------------------------------

@dataclass
class FaceFrame:
    """Where the face is in a sample (pixels): centre, size, eye line, mouth, chin, forehead."""
    centre: np.ndarray
    width: float  # jaw 0 → 16 distance (or a guess)
    height: float  # forehead → chin
    eye_r: np.ndarray  # subject's right eye centre (image left)
    eye_l: np.ndarray
    mouth: np.ndarray
    chin: np.ndarray
    forehead: np.ndarray
    angle: float  # eye line angle (radians, image frame)
    has_face: bool


def face_frame(landmarks: np.ndarray | None, size: tuple[int, int]) -> FaceFrame:
    """FaceFrame from (73, 2) landmarks; a centred guess when they are missing / NaN. size = (W, H)."""
    w, h = size
    if landmarks is None or not np.all(np.isfinite(landmarks[[0, 8, 16, 36, 45, 48, 54, 70, 72]])):
        c = np.array([w / 2, h / 2])
        s = 0.55 * min(w, h)
        return FaceFrame(c, s, 1.25 * s, c + [-0.2 * s, -0.15 * s], c + [0.2 * s, -0.15 * s], c + [0, 0.3 * s],
                         c + [0, 0.6 * s], c + [0, -0.6 * s], 0.0, False)
    lm = np.asarray(landmarks, np.float64)
    eye_r, eye_l = lm[36:42].mean(0), lm[42:48].mean(0)
    forehead, chin = lm[70:73].mean(0), lm[8]
    width = float(np.linalg.norm(lm[16] - lm[0]))
    height = float(np.linalg.norm(chin - forehead))
    d = eye_l - eye_r
    return FaceFrame(0.5 * (forehead + chin), max(width, 1.0), max(height, 1.0), eye_r, eye_l,
                     lm[48:60].mean(0), chin, forehead, float(np.arctan2(d[1], d[0])), True)


# --------------------------------------------------------------------------------------------------------------
# Signed-distance primitives (analytic anti-aliasing) and shading
# --------------------------------------------------------------------------------------------------------------

def _grid(size):
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _sd_capsule(xs, ys, a, b, ra, rb=None):
    """Signed distance (px) to a (possibly tapered) capsule from a (radius ra) to b (radius rb); also the
    closest point's parameter t in [0, 1] and the local radius."""
    rb = ra if rb is None else rb
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy + 1e-9
    t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / l2, 0.0, 1.0)
    px, py = xs - (ax + t * dx), ys - (ay + t * dy)
    r = ra + (rb - ra) * t
    return np.sqrt(px * px + py * py) - r, r


def _sd_round_box(xs, ys, centre, half, angle, radius):
    """Signed distance to a rounded rectangle (half sizes `half`, corner radius) rotated by `angle`."""
    c, s = np.cos(angle), np.sin(angle)
    lx = (xs - centre[0]) * c + (ys - centre[1]) * s
    ly = -(xs - centre[0]) * s + (ys - centre[1]) * c
    radius = min(radius, half[0], half[1])
    qx = np.abs(lx) - half[0] + radius
    qy = np.abs(ly) - half[1] + radius
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0) - radius


def _sd_ellipse(xs, ys, centre, axes, angle):
    """Approximate signed distance to an ellipse (exact on the axes, good enough for anti-aliasing)."""
    c, s = np.cos(angle), np.sin(angle)
    lx = (xs - centre[0]) * c + (ys - centre[1]) * s
    ly = -(xs - centre[0]) * s + (ys - centre[1]) * c
    k = np.sqrt((lx / axes[0]) ** 2 + (ly / axes[1]) ** 2) + 1e-6
    g = np.sqrt((lx / axes[0] ** 2) ** 2 + (ly / axes[1] ** 2) ** 2) + 1e-6
    return (k - 1.0) * k / g


def _coverage(d, softness=1.0):
    """Anti-aliased coverage of a signed distance field: 1 inside, 0 outside, a ~1 px ramp at the edge."""
    return np.clip(0.5 - d / softness, 0.0, 1.0).astype(np.float32)


class _Layer:
    """Accumulates shaded primitives back-to-front into a premultiplied RGBA float layer."""

    def __init__(self, size):
        w, h = size
        self.size = size
        self.rgb = np.zeros((h, w, 3), np.float32)  # premultiplied
        self.a = np.zeros((h, w), np.float32)

    def over(self, cov, colour):
        """colour: (3,) or (H, W, 3) in [0, 1]; cov: (H, W) coverage."""
        cov = cov[..., None] if cov.ndim == 2 else cov
        self.rgb = colour * cov + self.rgb * (1 - cov)
        self.a = cov[..., 0] + self.a * (1 - cov[..., 0])

    def over_window(self, win, cov, colour):
        """`over` restricted to the window (y0, y1, x0, x1): cov / colour have the window's shape."""
        y0, y1, x0, x1 = win
        c3 = cov[..., None]
        self.rgb[y0:y1, x0:x1] = colour * c3 + self.rgb[y0:y1, x0:x1] * (1 - c3)
        self.a[y0:y1, x0:x1] = cov + self.a[y0:y1, x0:x1] * (1 - cov)

    def rgba(self):
        a = np.clip(self.a, 0, 1)
        rgb = np.where(a[..., None] > 1e-4, self.rgb / np.maximum(a[..., None], 1e-4), 0)
        out = np.concatenate([np.clip(rgb, 0, 1), a[..., None]], -1)
        return (out * 255 + 0.5).astype(np.uint8)

    def motion_blur(self, rng, length):
        k = _line_kernel(length, rng.uniform(0, np.pi))
        self.rgb = cv2.filter2D(self.rgb, -1, k, borderType=cv2.BORDER_CONSTANT)
        self.a = cv2.filter2D(self.a, -1, k, borderType=cv2.BORDER_CONSTANT)


def _line_kernel(length, angle):
    """Normalised motion-blur kernel: an anti-aliased line of `length` px at `angle` (radians)."""
    n = int(np.ceil(length)) | 1
    k = np.zeros((n * 4, n * 4), np.float32)
    c = (n * 4 - 1) / 2
    dx, dy = np.cos(angle) * (length * 2 - 1), np.sin(angle) * (length * 2 - 1)
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 2,
             cv2.LINE_AA)
    k = cv2.resize(k, (n, n), interpolation=cv2.INTER_AREA)
    return k / max(k.sum(), 1e-6)


def _shade(d, xs, ys, r, light, ambient=0.45):
    """Lambert shading of a rounded solid whose signed distance is d and whose rounding radius is r (px):
    the surface normal tilts outwards near the silhouette like a cylinder's."""
    t = np.clip(-d / np.maximum(r, 1e-3), 0, 1)
    nz = np.sqrt(np.clip(1 - (1 - t) ** 2, 0, 1))
    gy, gx = np.gradient(d)
    gn = np.sqrt(gx * gx + gy * gy) + 1e-6
    nxy = np.sqrt(1 - nz * nz)
    nx, ny = gx / gn * nxy, gy / gn * nxy
    lam = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    return (ambient + (1 - ambient) * lam).astype(np.float32)


def _random_light(rng):
    v = np.array([rng.normal(0, 0.6), rng.normal(-0.3, 0.5), 1.0])
    return v / np.linalg.norm(v)


# --------------------------------------------------------------------------------------------------------------
# Skin tones
# --------------------------------------------------------------------------------------------------------------

def skin_tone_palette() -> np.ndarray:
    """(N, 3) uint8 sRGB skin tones, light to dark. Taken from `facecap_core.data.texture` (real face textures)
    when that module provides `SKIN_TONES` or `skin_tones()`, else a built-in palette."""
    try:
        from . import texture  # noqa: PLC0415  (optional: written by the synthetic-data part)
        tones = getattr(texture, "SKIN_TONES", None)
        if tones is None and callable(getattr(texture, "skin_tones", None)):
            tones = texture.skin_tones()
        tones = np.asarray(tones, np.float64)
        if tones.ndim == 2 and tones.shape[1] == 3 and len(tones) >= 3:
            return np.clip(tones * (255.0 if tones.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    except Exception:  # noqa: BLE001  (missing module / unexpected shape: fall back to the palette)
        pass
    return _SKIN_PALETTE.copy()


def face_skin_tone(image: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """Median RGB (3,) uint8 of the face pixels (mask == 1) of a sample, None when there are too few."""
    if mask is None or mask.sum() < 30:
        return None
    er = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    px = image[er > 0] if er.sum() >= 30 else image[mask > 0]
    lum = px.astype(np.float32).mean(1)
    lo, hi = np.percentile(lum, [25, 90])  # drop eyes, brows, nostrils and highlights
    sel = px[(lum >= lo) & (lum <= hi)]
    return np.median(sel if len(sel) else px, 0).astype(np.uint8)


def pick_skin_tone(rng: np.random.Generator, face_tone: np.ndarray | None = None, p_same: float = 0.5
                   ) -> tuple[np.ndarray, str]:
    """A hand's skin tone (3,) float in [0, 1]: the face's own tone with probability p_same, else the palette."""
    if face_tone is not None and rng.random() < p_same:
        tone, src = np.asarray(face_tone, np.float32) / 255.0, "face"
    else:
        pal = skin_tone_palette()
        tone, src = pal[rng.integers(len(pal))].astype(np.float32) / 255.0, "palette"
    tone = np.clip(tone * rng.uniform(0.9, 1.1) + rng.normal(0, 0.015, 3), 0.03, 1.0)
    return tone.astype(np.float32), src


# --------------------------------------------------------------------------------------------------------------
# Procedural hand
# --------------------------------------------------------------------------------------------------------------

HAND_POSES = ("open", "fist", "pointing", "cheek", "chin", "cover-mouth", "relaxed")


def _hand_parts(pose, rng, palm_w, handed):
    """Hand skeleton in a local frame (pixels): palm centre at the origin, fingers towards −y, forearm towards
    +y; built for a hand whose thumb is on the −x side, then mirrored when handed = −1. Returns capsules
    (a, b, ra, rb, part) for the forearm, the four fingers and the thumb, and the palm's half sizes."""
    s = palm_w
    half = np.array([0.5 * s, 0.55 * s])
    fingers_len = np.array([0.78, 0.88, 0.82, 0.64]) * s * rng.uniform(0.9, 1.1)
    finger_r = np.array([0.105, 0.11, 0.105, 0.09]) * s
    base_x = np.array([-0.36, -0.12, 0.12, 0.35]) * s
    curl = {"open": 0.0, "relaxed": 0.35, "cheek": 0.15, "chin": 0.9, "cover-mouth": 0.1, "fist": 1.0,
            "pointing": 1.0}[pose]
    spread = {"open": 0.16, "relaxed": 0.06, "cheek": 0.05, "chin": 0.03, "cover-mouth": 0.05, "fist": 0.0,
              "pointing": 0.0}[pose] * rng.uniform(0.5, 1.5)
    arm_len = rng.uniform(2.2, 3.2) * s
    arm = [((0.0, 0.45 * s), (rng.normal(0, 0.15) * s, 0.45 * s + arm_len), 0.36 * s, 0.47 * s, "arm")]
    fing = []
    for i in range(4):
        c = 0.0 if (pose == "pointing" and i == 0) else curl
        c = float(np.clip(c + rng.normal(0, 0.08), 0, 1))
        ang = -np.pi / 2 + (i - 1.5) * spread + rng.normal(0, 0.03)
        p = np.array([base_x[i], -half[1] + 0.08 * s])
        r = finger_r[i]
        if c > 0.75:  # folded: the proximal phalanges lie over the top of the palm, knuckles show
            a = p + [0, 0.05 * s]
            fing.append((tuple(a), tuple(a + [0, 0.42 * s]), r * 1.1, r, "finger"))
            continue
        for k, frac in enumerate((0.45, 0.3, 0.25)):
            length = fingers_len[i] * frac * (1 - 0.65 * c * (k + 1) / 3)  # bending towards the camera
            q = p + length * np.array([np.cos(ang), np.sin(ang)])
            fing.append((tuple(p), tuple(q), r * (1 - 0.08 * k), r * (1 - 0.08 * (k + 1)), "finger"))
            p = q
    t_open = {"open": 0.9, "relaxed": 0.6, "pointing": 0.3}.get(pose, 0.45) * rng.uniform(0.8, 1.2)
    p = np.array([-0.42 * s, 0.15 * s])
    tr = 0.14 * s
    thumb = []
    for k, ln in enumerate((0.38 * s, 0.3 * s)):
        if pose == "fist":  # thumb across the folded fingers
            ang = -np.pi / 2 + 0.9 + 0.4 * k
        else:  # out and up, the tip bending back towards the fingers
            ang = -np.pi / 2 - t_open + 0.35 * k
        q = p + ln * np.array([np.cos(ang), np.sin(ang)])
        thumb.append((tuple(p), tuple(q), tr * (1 - 0.1 * k), tr * (1 - 0.1 * (k + 1)), "thumb"))
        p = q

    def mirror(lst):
        return [((handed * a[0], a[1]), (handed * b[0], b[1]), ra, rb, n) for a, b, ra, rb, n in lst]
    return mirror(arm), half, mirror(fing), mirror(thumb)


def procedural_hand(rng: np.random.Generator, size: tuple[int, int], landmarks: np.ndarray | None = None,
                    tone: np.ndarray | None = None, pose: str | None = None, face_tone: np.ndarray | None = None,
                    p_motion_blur: float = 0.2) -> Occluder:
    """A shaded hand (palm, 4 fingers, thumb, forearm) in a random pose, placed relative to the face.

    size = (W, H) of the target sample; landmarks (73, 2) of that sample or None (then the hand goes anywhere).
    tone: RGB in [0, 1] or None (then `pick_skin_tone` with the face's own tone `face_tone` half the time).
    pose ∈ HAND_POSES or None (random). Returns an Occluder with rgba (H, W, 4) uint8.
    """
    w, h = size
    ff = face_frame(landmarks, size)
    pose = pose or HAND_POSES[rng.choice(len(HAND_POSES), p=[0.2, 0.12, 0.12, 0.16, 0.12, 0.16, 0.12])]
    tone_src = "given"
    if tone is None:
        tone, tone_src = pick_skin_tone(rng, face_tone)
    handed = 1.0 if rng.random() < 0.5 else -1.0
    palm_w = ff.width * rng.uniform(0.45, 0.62)
    up = np.array([np.sin(ff.angle), -np.cos(ff.angle)])  # face "up" in the image
    right = np.array([np.cos(ff.angle), np.sin(ff.angle)])
    side = 1.0 if rng.random() < 0.5 else -1.0
    # placement: palm centre and the direction the fingers point (image angle, radians)
    if pose == "cheek":
        centre = ff.centre + side * right * ff.width * rng.uniform(0.3, 0.5) + up * ff.height * rng.uniform(
            -0.2, 0.05)
        finger_dir = np.arctan2(up[1], up[0]) - side * rng.uniform(0.0, 0.5)
    elif pose == "chin":
        centre = ff.chin + up * ff.height * rng.uniform(-0.2, 0.05) + right * rng.normal(0, 0.1) * ff.width
        finger_dir = np.arctan2(up[1], up[0]) + side * rng.uniform(0.9, 1.6)
    elif pose == "cover-mouth":
        centre = ff.mouth + right * rng.normal(0, 0.12) * ff.width + up * rng.normal(0, 0.06) * ff.height
        finger_dir = np.arctan2(side * right[1], side * right[0]) - side * rng.uniform(0.0, 0.7)
    else:
        if ff.has_face:
            centre = ff.centre + rng.normal(0, 0.35, 2) * [ff.width, ff.height]
        else:
            centre = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h])
        finger_dir = rng.uniform(-np.pi, np.pi)
        away = centre - ff.centre
        if np.linalg.norm(away) > 1:  # fingers roughly towards the face, arm away from it
            finger_dir = np.arctan2(-away[1], -away[0]) + rng.normal(0, 0.6)
    rot = finger_dir + np.pi / 2  # local −y → finger_dir
    caps, half, fing, thumb = _hand_parts(pose, rng, palm_w, handed)
    thumb_front = pose in ("fist", "chin") or rng.random() < 0.3
    c, s_ = np.cos(rot), np.sin(rot)

    def tf(p):
        return (centre[0] + p[0] * c - p[1] * s_, centre[1] + p[0] * s_ + p[1] * c)

    xs, ys = _grid(size)
    layer = _Layer(size)
    light = _random_light(rng)
    # colour: tone, a gradient across the hand, a little redness at the fingertips/knuckles
    g_dir = rng.normal(0, 1, 2)
    g_dir /= np.linalg.norm(g_dir) + 1e-9
    grad = 1 + rng.uniform(0.05, 0.2) * ((xs - centre[0]) * g_dir[0] + (ys - centre[1]) * g_dir[1]) / (palm_w * 2)
    base = tone[None, None, :] * grad[..., None]
    red = np.array([1.04, 0.95, 0.93], np.float32)

    def window(pts, rad):
        pts = np.asarray(pts, np.float64)
        x0, y0 = np.floor(pts.min(0) - rad - 3).astype(int)
        x1, y1 = np.ceil(pts.max(0) + rad + 4).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        return (y0, y1, x0, x1) if x1 - x0 > 2 and y1 - y0 > 2 else None

    def draw(win, d, r, tint=1.0):
        y0, y1, x0, x1 = win
        sh = _shade(d, xs[y0:y1, x0:x1], ys[y0:y1, x0:x1], r, light)
        col = np.clip(base[y0:y1, x0:x1] * sh[..., None] * tint, 0, 1)
        layer.over_window(win, _coverage(d), col)

    def draw_caps(lst, tint=1.0):  # each primitive is evaluated only in its bounding window
        for a, b, ra, rb, _ in lst:
            win = window([tf(a), tf(b)], max(ra, rb))
            if win is None:
                continue
            y0, y1, x0, x1 = win
            d, r = _sd_capsule(xs[y0:y1, x0:x1], ys[y0:y1, x0:x1], tf(a), tf(b), ra, rb)
            draw(win, d, r, tint)

    arm_tint = np.ones(3, np.float32)
    if rng.random() < 0.35:  # a sleeve over the forearm
        arm_tint = rng.uniform(0.1, 1.0, 3).astype(np.float32) / np.maximum(tone, 0.05)
    draw_caps(caps, arm_tint)
    if not thumb_front:
        draw_caps(thumb)
    win = window([tf((0, 0))], float(np.linalg.norm(half)))
    if win is not None:
        y0, y1, x0, x1 = win
        d_palm = _sd_round_box(xs[y0:y1, x0:x1], ys[y0:y1, x0:x1], tf((0, 0)), half, rot, 0.35 * palm_w)
        draw(win, d_palm, np.full_like(d_palm, 0.4 * palm_w))
    draw_caps(fing, red)
    if thumb_front:
        draw_caps(thumb, red)
    blur = 0.0
    if rng.random() < p_motion_blur:
        blur = float(rng.uniform(2, max(3, 0.08 * min(w, h))))
        layer.motion_blur(rng, blur)
    info = {"pose": pose, "tone": [round(float(v) * 255) for v in tone], "tone_source": tone_src,
            "palm_px": round(float(palm_w), 1), "centre": [round(float(v), 1) for v in centre],
            "motion_blur": round(blur, 1)}
    return Occluder(layer.rgba(), "hand", info)


# --------------------------------------------------------------------------------------------------------------
# Hair, glasses, objects, rectangles
# --------------------------------------------------------------------------------------------------------------

def _bezier(p0, p1, p2, p3, n=24):
    t = np.linspace(0, 1, n)[:, None]
    return ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * p1 + 3 * (1 - t) * t * t * p2 + t ** 3 * p3


def procedural_hair(rng: np.random.Generator, size: tuple[int, int], landmarks: np.ndarray | None = None,
                    colour: np.ndarray | None = None) -> Occluder:
    """1-3 locks of hair (bunches of cubic Bézier strands) falling from above the forehead over the forehead
    and eyes. Rendered at 3× and area-downsampled, so thin strands get fractional alpha (and only dense parts of
    a lock reach the occluder threshold 0.5)."""
    w, h = size
    ff = face_frame(landmarks, size)
    ss = 3
    col = np.asarray(colour, np.float32) if colour is not None else \
        _HAIR_PALETTE[rng.integers(len(_HAIR_PALETTE))].astype(np.float32)
    canvas = np.empty((h * ss, w * ss, 3), np.uint8)
    canvas[:] = col.astype(np.uint8)
    alpha = np.zeros((h * ss, w * ss), np.uint8)
    up = np.array([np.sin(ff.angle), -np.cos(ff.angle)])
    right = np.array([np.cos(ff.angle), np.sin(ff.angle)])
    n_locks = int(rng.integers(1, 4))
    locks = []
    for _ in range(n_locks):
        root = ff.forehead + up * ff.height * rng.uniform(0.1, 0.35) + right * ff.width * rng.uniform(-0.45, 0.45)
        drop = ff.height * rng.uniform(0.35, 0.9)
        sweep = ff.width * rng.uniform(-0.45, 0.45)
        width = ff.width * rng.uniform(0.08, 0.3)
        n = int(rng.integers(25, 90))
        thick = rng.uniform(0.6, 1.4)
        locks.append({"strands": n, "drop": round(float(drop / ff.height), 2)})
        for _ in range(n):
            o = rng.normal(0, 0.5) * width
            p0 = root + right * o
            end = p0 - up * drop * rng.uniform(0.7, 1.05) + right * (sweep + rng.normal(0, 0.15) * width)
            p1 = p0 - up * drop * 0.3 + right * (o * 0.3 + rng.normal(0, 0.1) * width)
            p2 = end + up * drop * 0.35 + right * rng.normal(0, 0.2) * width
            pts = _bezier(p0, p1, p2, end) * ss
            shade = np.clip(col * rng.uniform(0.75, 1.3) + rng.normal(0, 6), 0, 255)
            t = max(1, int(round(thick * ss * rng.uniform(0.6, 1.3))))
            pl = [np.round(pts).astype(np.int32).reshape(-1, 1, 2)]
            cv2.polylines(canvas, pl, False, tuple(float(v) for v in shade), t, cv2.LINE_AA)
            cv2.polylines(alpha, pl, False, 255, t, cv2.LINE_AA)
    rgb = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    return Occluder(np.dstack([rgb, a]), "hair", {"colour": [int(v) for v in col], "locks": locks})


def procedural_glasses(rng: np.random.Generator, size: tuple[int, int], landmarks: np.ndarray | None = None
                       ) -> Occluder:
    """Glasses on the eyes: two rounded-rectangle / elliptic frames, a bridge, temples towards the ears,
    optionally tinted lenses (alpha ≤ 0.45: see-through, not an occluder) or dark sunglasses (alpha ≥ 0.85)."""
    ff = face_frame(landmarks, size)
    xs, ys = _grid(size)
    layer = _Layer(size)
    D = float(np.linalg.norm(ff.eye_l - ff.eye_r))
    ang = ff.angle
    right = np.array([np.cos(ang), np.sin(ang)])
    up = np.array([np.sin(ang), -np.cos(ang)])
    hw = D * rng.uniform(0.38, 0.47)
    hh = D * rng.uniform(0.22, 0.36)
    corner = rng.uniform(0.15, 1.0) * hh
    thick = max(0.8, D * rng.uniform(0.025, 0.09))
    style = rng.choice(["black", "brown", "tortoise", "metal", "colour"], p=[0.35, 0.2, 0.15, 0.2, 0.1])
    fcol = {"black": (0.05, 0.05, 0.06), "brown": (0.25, 0.15, 0.08), "tortoise": (0.35, 0.2, 0.1),
            "metal": (0.75, 0.72, 0.65), "colour": tuple(rng.uniform(0, 1, 3))}[style]
    fcol = np.array(fcol, np.float32)
    if style == "metal":
        thick = max(0.7, thick * 0.5)
    lens = rng.choice(["clear", "tint", "sun"], p=[0.55, 0.3, 0.15])
    lens_alpha = {"clear": 0.0, "tint": rng.uniform(0.1, 0.45), "sun": rng.uniform(0.85, 0.97)}[lens]
    lens_col = rng.uniform(0.0, 0.35, 3).astype(np.float32) if lens != "clear" else np.zeros(3, np.float32)
    off = up * rng.uniform(-0.05, 0.12) * hh
    centres = [ff.eye_r + off, ff.eye_l + off]
    light = _random_light(rng)
    for cc in centres:
        d = _sd_round_box(xs, ys, cc, (hw, hh), ang, corner)
        if lens_alpha > 0:
            gl = np.clip(lens_col * (0.8 + 0.4 * (ys - cc[1])[..., None] / (2 * hh)), 0, 1)
            layer.over(_coverage(d) * lens_alpha, gl)
        ring = np.abs(d) - thick / 2
        layer.over(_coverage(ring), np.clip(fcol * _shade(ring, xs, ys, thick / 2, light, 0.6)[..., None], 0, 1))
    inner_r = centres[0] + right * (hw - thick * 0.3) + up * hh * 0.25
    inner_l = centres[1] - right * (hw - thick * 0.3) + up * hh * 0.25
    d, _ = _sd_capsule(xs, ys, inner_r, inner_l, thick * 0.45)
    layer.over(_coverage(d), fcol)
    for k, cc in enumerate(centres):  # temples: from the outer top of each frame towards the ear
        sgn = -1 if k == 0 else 1
        a = cc + sgn * right * hw + up * hh * 0.4
        b = a + sgn * right * D * rng.uniform(0.15, 0.45) + up * hh * rng.uniform(-0.1, 0.3)
        d, _ = _sd_capsule(xs, ys, a, b, thick * 0.4)
        layer.over(_coverage(d), fcol)
    return Occluder(layer.rgba(), "glasses", {"style": str(style), "lens": str(lens),
                                              "lens_alpha": round(float(lens_alpha), 2)})


def procedural_object(rng: np.random.Generator, size: tuple[int, int], landmarks: np.ndarray | None = None,
                      kind: str | None = None) -> Occluder:
    """A simple shaded object in front of the face: "microphone" (ball head + handle, in front of the mouth),
    "phone", "cup" (rounded boxes), "pen" (thin capsule) or "blob" (a random shaded ellipse)."""
    w, h = size
    ff = face_frame(landmarks, size)
    kind = kind or str(rng.choice(["microphone", "phone", "cup", "pen", "blob"], p=[0.35, 0.2, 0.15, 0.15, 0.15]))
    xs, ys = _grid(size)
    layer = _Layer(size)
    light = _random_light(rng)
    S = ff.width
    col = rng.uniform(0.02, 0.95, 3).astype(np.float32)
    if kind == "microphone":
        head = ff.mouth + rng.normal(0, [0.25 * S, 0.12 * S])
        hr = S * rng.uniform(0.12, 0.22)
        ang = rng.uniform(np.pi / 2 - 0.8, np.pi / 2 + 0.8)  # handle goes down
        tail = head + np.array([np.cos(ang), np.sin(ang)]) * S * rng.uniform(1.0, 2.0)
        hcol = np.array([0.08, 0.08, 0.09], np.float32) * rng.uniform(0.5, 3.0)
        d, r = _sd_capsule(xs, ys, head, tail, hr * 0.3, hr * 0.45)
        layer.over(_coverage(d), np.clip(hcol * _shade(d, xs, ys, r, light)[..., None], 0, 1))
        d = np.sqrt((xs - head[0]) ** 2 + (ys - head[1]) ** 2) - hr
        grille = 0.75 + 0.25 * (np.sin(xs * 2.2) * np.sin(ys * 2.2) > 0)
        mcol = np.full(3, rng.uniform(0.15, 0.7), np.float32)
        layer.over(_coverage(d), np.clip(mcol * (_shade(d, xs, ys, np.full_like(d, hr), light) * grille)[..., None],
                                          0, 1))
    elif kind in ("phone", "cup"):
        c = ff.centre + rng.normal(0, 0.3, 2) * S
        half = (S * rng.uniform(0.2, 0.32), S * rng.uniform(0.35, 0.6)) if kind == "phone" else \
            (S * rng.uniform(0.2, 0.3), S * rng.uniform(0.25, 0.35))
        ang = rng.normal(0, 0.4)
        d = _sd_round_box(xs, ys, c, half, ang, 0.2 * min(half))
        layer.over(_coverage(d), np.clip(col * _shade(d, xs, ys, np.full_like(d, 0.3 * min(half)), light)[..., None],
                                         0, 1))
        if kind == "phone":  # screen
            d2 = _sd_round_box(xs, ys, c, (half[0] * 0.88, half[1] * 0.9), ang, 0.1 * min(half))
            layer.over(_coverage(d2), np.full(3, rng.uniform(0.02, 0.5), np.float32))
        else:  # handle
            hc = c + np.array([np.cos(ang), np.sin(ang)]) * half[0] * 1.05
            d2 = np.abs(np.sqrt((xs - hc[0]) ** 2 + (ys - hc[1]) ** 2) - half[1] * 0.45) - half[0] * 0.12
            layer.over(_coverage(d2), np.clip(col * 0.85, 0, 1))
    elif kind == "pen":
        a = ff.centre + rng.normal(0, 0.3, 2) * S
        ang = rng.uniform(0, np.pi)
        b = a + np.array([np.cos(ang), np.sin(ang)]) * S * rng.uniform(0.6, 1.2)
        d, r = _sd_capsule(xs, ys, a, b, S * rng.uniform(0.025, 0.05))
        layer.over(_coverage(d), np.clip(col * _shade(d, xs, ys, r, light)[..., None], 0, 1))
    else:
        c = ff.centre + rng.normal(0, 0.35, 2) * S
        axes = S * rng.uniform(0.12, 0.45, 2)
        d = _sd_ellipse(xs, ys, c, axes, rng.uniform(0, np.pi))
        tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2) * 0.3
        cc = np.clip(col * (_shade(d, xs, ys, np.full_like(d, min(axes)), light) + tex)[..., None], 0, 1)
        layer.over(_coverage(d), cc)
    return Occluder(layer.rgba(), "object", {"object": kind})


def random_rectangle(rng: np.random.Generator, size: tuple[int, int], landmarks: np.ndarray | None = None,
                     min_frac: float = 0.1, max_frac: float = 0.6) -> Occluder:
    """The paper's occluder: an axis-aligned, uniformly coloured rectangle of random size (each side a uniform
    fraction in [min_frac, max_frac] of the image side), centred uniformly over the face box (the image when
    there is no face). Hard edges, alpha 1."""
    w, h = size
    ff = face_frame(landmarks, size)
    rw, rh = rng.uniform(min_frac, max_frac) * w, rng.uniform(min_frac, max_frac) * h
    if ff.has_face:
        cx = ff.centre[0] + rng.uniform(-0.6, 0.6) * ff.width
        cy = ff.centre[1] + rng.uniform(-0.6, 0.6) * ff.height
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    x0, x1 = int(np.clip(round(cx - rw / 2), 0, w)), int(np.clip(round(cx + rw / 2), 0, w))
    y0, y1 = int(np.clip(round(cy - rh / 2), 0, h)), int(np.clip(round(cy + rh / 2), 0, h))
    col = rng.integers(0, 256, 3)
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[y0:y1, x0:x1, :3] = col
    rgba[y0:y1, x0:x1, 3] = 255
    return Occluder(rgba, "rectangle", {"box": [x0, y0, x1, y1], "colour": [int(v) for v in col]})


# --------------------------------------------------------------------------------------------------------------
# Real cut-outs
# --------------------------------------------------------------------------------------------------------------

def _trim(rgba):
    ys, xs = np.nonzero(rgba[..., 3] > 8)
    if len(xs) == 0:
        return None
    return rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _limit(rgba, max_side):
    s = max_side / max(rgba.shape[:2])
    if s < 1:
        rgba = _premul_resize(rgba, (max(1, round(rgba.shape[1] * s)), max(1, round(rgba.shape[0] * s))))
    return rgba


def _premul_resize(rgba, wh):
    f = rgba.astype(np.float32) / 255
    f[..., :3] *= f[..., 3:]
    f = cv2.resize(f, wh, interpolation=cv2.INTER_AREA)
    return _unpremul(f)


def _unpremul(f):
    a = np.clip(f[..., 3:], 0, 1)
    rgb = np.where(a > 1e-4, f[..., :3] / np.maximum(a, 1e-4), 0)
    return (np.clip(np.concatenate([rgb, a], -1), 0, 1) * 255 + 0.5).astype(np.uint8)


def face_mask_cutout(rgb: np.ndarray) -> np.ndarray:
    """RGBA for a surgical-mask photo. The shared photos are frame-filling (the mask fabric covers all but a thin
    border of plain background, which colour keying cannot separate for a white mask on white), so the alpha is
    the image inset by 4 % with rounded, anti-aliased corners; `OccluderLibrary` then shapes it to the lower face
    with the jaw polygon when it places it."""
    h, w = rgb.shape[:2]
    xs, ys = _grid((w, h))
    d = _sd_round_box(xs, ys, ((w - 1) / 2, (h - 1) / 2), (0.46 * w, 0.46 * h), 0.0, 0.2 * h)
    return np.dstack([rgb, (_coverage(d) * 255).astype(np.uint8)])


def _cutouts_from_frame(rgb, mask, min_area=400):
    """RGBA cut-outs of the connected components of a binary hand mask over its frame."""
    out = []
    n, lab, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8))
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area < min_area:
            continue
        a = (lab[y:y + bh, x:x + bw] == i).astype(np.float32)
        a = cv2.GaussianBlur(a, (0, 0), 0.7)
        out.append(np.dstack([rgb[y:y + bh, x:x + bw], (a * 255).astype(np.uint8)]))
    return out


def cutout_split(name: str) -> str:
    """train / val / test (about 70 / 15 / 15 %) of a real cut-out, by the photo it was cut from (its name up to
    `_hand` or `_c`: 'egohands_07_hand2' and 'egohands_07_c1' are both cut from 'egohands_07'), stable across
    runs and machines."""
    photo = name.split("_hand")[0].split("_c")[0]
    bucket = int(hashlib.sha1(photo.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 70 else "val" if bucket < 85 else "test"


@dataclass
class OccluderLibrary:
    """Real RGBA cut-outs by category ("hand", "object", "glasses", "hat", "mask", "beard", "face-mask") plus
    the procedural generators. `sample(rng, kind, size, landmarks, face_tone)` gives an Occluder for a sample.
    An empty library (`OccluderLibrary()`) uses the procedural generators only."""
    cutouts: dict = field(default_factory=dict)  # category → list of (rgba uint8, name)
    p_real: float = 0.5  # probability of a real cut-out when both exist
    _by_split: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # for_split's results

    @classmethod
    def from_dir(cls, root: str | None = None, cache_dir: str | None = None, max_side: int = 256
                 ) -> "OccluderLibrary":
        """Load ../shared/occluders (manifest.csv) when it exists; the result is cached as one .npz under
        cache_dir (gitignored; derived from the shared data, never committed). Missing folder → empty library."""
        root = root or DEFAULT_OCCLUDER_ROOT
        man = os.path.join(root, "manifest.csv")
        if not os.path.exists(man):
            return cls()
        cache = None
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
            cache = os.path.join(cache_dir, f"occluders_{max_side}.npz")
            if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(man):
                z = np.load(cache, allow_pickle=False)
                cut: dict = {}
                for key in z.files:
                    cat, name = key.split("/", 1)
                    cut.setdefault(cat, []).append((z[key], name))
                return cls(cut)
        with open(man, newline="") as f:
            rows = list(csv.DictReader(f))
        cut = {}

        def add(cat, rgba, name):
            rgba = _trim(rgba)
            if rgba is not None and min(rgba.shape[:2]) >= 8:
                cut.setdefault(cat, []).append((_limit(rgba, max_side), name))

        files = {r["file"]: r for r in rows}
        cut_frames = {os.path.basename(f).split("_hand")[0] for f in files if "/cutouts/" in f}
        for path, r in files.items():
            full = os.path.join(root, path)
            if not os.path.exists(full):
                continue
            typ, name = r["type"], os.path.splitext(os.path.basename(path))[0]
            if typ.endswith("(RGBA)"):
                im = cv2.imread(full, cv2.IMREAD_UNCHANGED)
                if im is None or im.ndim != 3 or im.shape[2] != 4:
                    continue
                rgba = cv2.cvtColor(im, cv2.COLOR_BGRA2RGBA)
                if typ.startswith("hand"):
                    cat = "hand"
                elif typ.startswith("object"):
                    cat = "object"
                else:
                    n = name.lower()
                    cat = "glasses" if "glasses" in n else "hat" if "hat" in n else "beard" if "beard" in n \
                        else "mask"
                add(cat, rgba, name)
            elif typ == "face-mask photo":
                bgr = cv2.imread(full)
                if bgr is None:
                    continue
                s = min(1.0, 400 / max(bgr.shape[:2]))
                bgr = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else bgr
                add("face-mask", face_mask_cutout(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), name)
            elif typ.startswith("hand frame") and name not in cut_frames:
                mpath = full.replace(".jpg", "_mask.png")
                im, m = cv2.imread(full), cv2.imread(mpath, cv2.IMREAD_GRAYSCALE)
                if im is None or m is None:
                    continue
                for k, rgba in enumerate(_cutouts_from_frame(cv2.cvtColor(im, cv2.COLOR_BGR2RGB), m)):
                    add("hand", rgba, f"{name}_c{k}")
        if cache:
            np.savez(cache + ".tmp.npz", **{f"{cat}/{n}": a for cat, lst in cut.items() for a, n in lst})
            os.replace(cache + ".tmp.npz", cache)
        return cls(cut)

    def counts(self) -> dict:
        return {k: len(v) for k, v in self.cutouts.items()}

    def for_split(self, split: str | None) -> "OccluderLibrary":
        """The library with only `split`'s real hands (`cutout_split`; None: all of them). Made once per split:
        the dataset build asks for it on every sample."""
        if split is None:
            return self
        if split not in self._by_split:
            cut = dict(self.cutouts)
            if "hand" in cut:
                cut["hand"] = [(a, n) for a, n in cut["hand"] if cutout_split(n) == split]
            self._by_split[split] = OccluderLibrary(cut, self.p_real)
        return self._by_split[split]

    def has(self, cat: str) -> bool:
        return bool(self.cutouts.get(cat))

    # -- sampling -----------------------------------------------------------------------------------------
    def hand(self, rng, size, landmarks=None, face_tone=None) -> Occluder:
        if self.has("hand") and rng.random() < self.p_real:
            return self._place_real(rng, "hand", size, landmarks)
        return procedural_hand(rng, size, landmarks, face_tone=face_tone)

    def other(self, rng, size, landmarks=None, face_tone=None, kind=None) -> Occluder:
        """A non-hand occluder: hair, glasses, object, face mask or sprite (real when available)."""
        kinds = ["hair", "glasses", "object", "face-mask", "sprite", "real-object"]
        p = np.array([0.3, 0.25, 0.25, 0.08, 0.07, 0.05])
        avail = np.array([True, True, True, self.has("face-mask"),
                          any(self.has(c) for c in ("glasses", "hat", "mask", "beard")), self.has("object")])
        p = p * avail
        kind = kind or kinds[rng.choice(len(kinds), p=p / p.sum())]
        if kind == "hair":
            return procedural_hair(rng, size, landmarks)
        if kind == "glasses":
            if self.has("glasses") and rng.random() < 0.3:
                return self._place_real(rng, "glasses", size, landmarks)
            return procedural_glasses(rng, size, landmarks)
        if kind == "object":
            return procedural_object(rng, size, landmarks)
        if kind == "face-mask":
            return self._place_real(rng, "face-mask", size, landmarks)
        if kind == "sprite":
            cats = [c for c in ("glasses", "hat", "mask", "beard") if self.has(c)]
            return self._place_real(rng, cats[rng.integers(len(cats))], size, landmarks)
        return self._place_real(rng, "object", size, landmarks)

    def _place_real(self, rng, cat, size, landmarks) -> Occluder:
        """Scale, rotate and place a real cut-out relative to the face (category-specific anchor)."""
        lst = self.cutouts[cat]
        rgba, name = lst[rng.integers(len(lst))]
        w, h = size
        ff = face_frame(landmarks, size)
        sh, sw = rgba.shape[:2]
        up = np.array([np.sin(ff.angle), -np.cos(ff.angle)])
        ang = ff.angle
        if cat == "glasses":
            width = np.linalg.norm(ff.eye_l - ff.eye_r) * rng.uniform(2.0, 2.3)
            centre = 0.5 * (ff.eye_l + ff.eye_r) - up * 0.05 * ff.height
        elif cat == "hat":
            width = ff.width * rng.uniform(1.2, 1.5)
            centre = ff.forehead + up * (width * sh / sw * 0.5 - 0.12 * ff.height)
        elif cat == "beard":
            width = ff.width * rng.uniform(1.0, 1.2)
            centre = ff.mouth + up * (-width * sh / sw * 0.5 + 0.12 * ff.height)
        elif cat == "mask":
            width = ff.width * rng.uniform(1.0, 1.15)
            centre = ff.centre
        elif cat == "face-mask":  # from the middle of the nose bridge to below the chin, following the jaw
            width = ff.width * rng.uniform(0.95, 1.1)
            top = np.asarray(landmarks[28], np.float64) if ff.has_face else ff.centre - up * 0.1 * ff.height
            bottom = ff.chin - up * 0.1 * ff.height
            centre = 0.5 * (top + bottom)
            sh = int(round(sw * np.linalg.norm(bottom - top) / width))  # stretch the photo to cover
            rgba = _premul_resize(rgba, (sw, max(sh, 2)))
        elif cat == "hand":
            width = ff.width * rng.uniform(0.5, 1.1)
            centre = ff.centre + rng.normal(0, 0.35, 2) * [ff.width, ff.height]
            ang = rng.uniform(-np.pi, np.pi)
        else:
            width = ff.width * rng.uniform(0.4, 1.2)
            centre = ff.centre + rng.normal(0, 0.4, 2) * [ff.width, ff.height]
            ang = rng.normal(0, 0.3)
        if cat != "hand":
            ang += rng.normal(0, 0.05)
        if rng.random() < 0.5 and cat in ("hand", "object"):
            rgba = rgba[:, ::-1]
        s = width / sw
        c, si = np.cos(ang) * s, np.sin(ang) * s
        src_c = np.array([(sw - 1) / 2, (sh - 1) / 2])
        A = np.array([[c, -si, 0], [si, c, 0]])
        A[:, 2] = centre - A[:, :2] @ src_c
        f = rgba.astype(np.float32) / 255
        f[..., :3] *= f[..., 3:]
        out = cv2.warpAffine(f, A, (w, h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if cat == "face-mask" and ff.has_face and landmarks is not None:
            out[..., 3] *= _below_jaw_clip(landmarks, size)
            out[..., :3] *= _below_jaw_clip(landmarks, size)[..., None]
        return Occluder(_unpremul(out), "real-" + cat, {"file": name, "width_px": round(float(width), 1),
                                                       "angle": round(float(np.degrees(ang)), 1)})


def _below_jaw_clip(landmarks, size):
    """Soft (H, W) weight that keeps a face mask inside a slightly dilated jaw polygon (so it follows the chin
    instead of ending in a straight edge)."""
    w, h = size
    ss = 4
    jaw = np.asarray(landmarks[:17], np.float64)
    centre = jaw.mean(0)
    jaw = centre + (jaw - centre) * 1.06
    top = np.asarray(landmarks[27], np.float64)
    poly = np.vstack([jaw, [jaw[-1][0], top[1] - 0.5 * abs(jaw[-1][0] - jaw[0][0])],
                      [jaw[0][0], top[1] - 0.5 * abs(jaw[-1][0] - jaw[0][0])]])
    m = np.zeros((h * ss, w * ss), np.uint8)
    cv2.fillPoly(m, [np.round(poly * ss).astype(np.int32)], 255, cv2.LINE_AA)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
