"""Face textures in the rig's UV layout: real photos unwrapped through the teacher's 478 landmarks, and a procedural
generator for tests/CI.

Atlas convention: a texture is an (S, S, 3) uint8 RGB image; rig vertex k sits at atlas pixel
(x, y) = (uv[k, 0] · S, uv[k, 1] · S) (MediaPipe's canonical UVs put the forehead at small v, so the atlas looks like
an upright face). Texels outside the UV islands are filled (inpainted) so bilinear sampling at the face border is safe.

Unwrap (piecewise affine): rasterise the rig triangles in UV space; each texel samples the photo at the barycentric
combination of its triangle's teacher landmarks. Texels the photo does not see well (back-facing, occluded or strongly
foreshortened triangles on turned faces) are taken from the mirrored texel (``rig.mirror``) and blended smoothly;
what neither side sees is inpainted.

Real textures never leave ``cache/`` (design §7): :func:`build_library` writes one npz under the checkout's gitignored ``cache/``.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..render.raster import rasterize
from ..rig import landmarks as L
from ..rig.model import MATERIAL_SKIN, FaceRig
from .paths import CACHE, DEFAULT_FACES

ATLAS_SIZE = 256
LIBRARY_VERSION = 1
DEFAULT_CACHE = os.path.join(CACHE, "textures")

__all__ = ["TextureLibrary", "uv_raster", "texel_attribute", "unwrap_photo", "procedural_texture",
           "procedural_library", "build_library", "skin_tone"]


# ------------------------------------------------------------------------------------------------------------------
# UV-space rasterisation
# ------------------------------------------------------------------------------------------------------------------
_UV_CACHE: dict = {}


def uv_raster(rig: FaceRig, size: int = ATLAS_SIZE, skin_only: bool = False):
    """(tri_id (S, S) int32, bary (S, S, 3) float32) of the rig triangles drawn in the UV atlas; -1 outside.
    ``skin_only`` drops the eye/mouth/iris triangles (they overlap skin texels in MediaPipe's UV layout)."""
    key = (id(rig), size, skin_only, rig.uv.tobytes()[:64])
    if key not in _UV_CACHE:
        tris = rig.triangles
        keep = np.flatnonzero(rig.triangle_material == MATERIAL_SKIN) if skin_only else np.arange(len(tris))
        r = rasterize(rig.uv * size, np.ones(len(rig.uv)), tris[keep], np.zeros((len(rig.uv), 3)), (size, size),
                      perspective=False, background=None)
        tid = np.where(r.tri_id >= 0, keep[np.maximum(r.tri_id, 0)], -1).astype(np.int32)
        _UV_CACHE[key] = (tid, r.bary)
    return _UV_CACHE[key]


def texel_attribute(rig: FaceRig, attr: np.ndarray, size: int = ATLAS_SIZE, skin_only: bool = False,
                    fill=0.0) -> np.ndarray:
    """Per-vertex attribute (478, C) → per-texel (S, S, C) float32 by barycentric interpolation in the atlas."""
    tid, bary = uv_raster(rig, size, skin_only)
    attr = np.asarray(attr, np.float32)
    out = np.full((size, size, attr.shape[1]), fill, np.float32)
    m = tid >= 0
    corners = attr[rig.triangles[tid[m]]]  # (M, 3, C)
    out[m] = np.einsum("mk,mkc->mc", bary[m], corners)
    return out


def _fill_outside(tex: np.ndarray, known: np.ndarray, blur: int = 0) -> np.ndarray:
    """Inpaint texels where ``known`` is False (uint8 RGB in and out)."""
    holes = (~known).astype(np.uint8)
    if holes.any():
        small = cv2.resize(tex, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        hs = cv2.resize(holes, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
        filled = cv2.inpaint(small, hs, 3, cv2.INPAINT_TELEA)
        up = cv2.resize(filled, (tex.shape[1], tex.shape[0]), interpolation=cv2.INTER_LINEAR)
        tex = np.where(known[..., None], tex, up)
    if blur:
        b = cv2.GaussianBlur(tex, (0, 0), blur)
        tex = np.where(known[..., None], tex, b)
    return tex


def skin_tone(rig: FaceRig, texture: np.ndarray) -> np.ndarray:
    """(3,) float32 median RGB (0-1) of a texture's border skin: texels just inside the face oval on the cheeks and
    jaw (where the head/neck proxy meets the face), so the proxy continues the face's tone."""
    size = texture.shape[0]
    oval = np.asarray(rig.face_oval)
    centre = rig.uv[oval].mean(0)
    pts = []
    for k in oval[5:32]:  # temples, cheeks, jaw, chin (not the forehead, often under hair)
        x, y = (rig.uv[k] + 0.12 * (centre - rig.uv[k])) * size
        r = max(1, size // 64)
        pts.append(texture[max(0, int(y) - r):int(y) + r + 1, max(0, int(x) - r):int(x) + r + 1].reshape(-1, 3))
    return (np.median(np.concatenate(pts), 0) / 255.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------------------------
# unwrap a real photo
# ------------------------------------------------------------------------------------------------------------------
def unwrap_photo(rig: FaceRig, image: np.ndarray, landmarks478: np.ndarray, size: int = ATLAS_SIZE,
                 return_weight: bool = False):
    """Unwrap a photo into the rig's UV atlas through its 478 teacher landmarks.

    image: (H, W, 3) uint8 RGB; landmarks478: (478, 2 or 3) pixels (x right, y down; z optional, larger = further,
    scaled like x — the teacher's convention). Returns (S, S, 3) uint8 texture (and, with ``return_weight``, the
    (S, S) float32 weight of the photo's own texels: 1 = seen frontally, 0 = taken from the mirror side / filled).
    """
    lm = np.asarray(landmarks478, np.float64)
    tris = rig.triangles
    skin = rig.triangle_material == MATERIAL_SKIN
    p2 = lm[:, :2]
    # per-triangle facing weight in the photo: front faces have negative signed area (y down)
    a, b, c = p2[tris[:, 0]], p2[tris[:, 1]], p2[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    uv_pix = rig.uv * size
    ua, ub, uc = uv_pix[tris[:, 0]], uv_pix[tris[:, 1]], uv_pix[tris[:, 2]]
    uv_area = (ub[:, 0] - ua[:, 0]) * (uc[:, 1] - ua[:, 1]) - (uc[:, 0] - ua[:, 0]) * (ub[:, 1] - ua[:, 1])
    # foreshortening relative to the mesh's own frontal scale (median ratio of photo area to uv area)
    ratio = -area / np.where(np.abs(uv_area) > 1e-9, np.abs(uv_area), 1e-9)
    scale = np.median(ratio[skin & (ratio > 0)]) if np.any(skin & (ratio > 0)) else 1.0
    rel = ratio / max(scale, 1e-9)
    w_tri = np.clip((rel - 0.25) / 0.35, 0.0, 1.0)
    # occlusion: z-buffer the mesh in the photo; a triangle mostly hidden by another part (nose) gets weight 0
    if lm.shape[1] >= 3:
        h, w = image.shape[:2]
        r = rasterize(p2, lm[:, 2] - lm[:, 2].min() + 1.0, tris, np.zeros((len(lm), 3)), (w, h),
                      cull_backfaces=True, perspective=False, background=None)
        drawn = np.bincount(r.tri_id[r.tri_id >= 0].ravel(), minlength=len(tris))
        cover = drawn / np.maximum(-0.5 * area, 1e-9)  # area is twice the signed area
        w_tri = np.where((-area > 8.0) & (cover < 0.5), 0.0, w_tri)
    # per-vertex weight (min over incident skin triangles), interpolated per texel
    wv = np.ones(len(lm))
    np.minimum.at(wv, tris[skin].ravel(), np.repeat(w_tri[skin], 3))
    tid, bary = uv_raster(rig, size, skin_only=True)
    known = tid >= 0
    pos = texel_attribute(rig, np.c_[p2, wv, rig.uv[rig.mirror] * size], size, skin_only=True)
    own = cv2.remap(image, pos[..., 0], pos[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    wown = np.where(known, pos[..., 2], 0.0).astype(np.float32)
    mx, my = pos[..., 3], pos[..., 4]
    mir = cv2.remap(own, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    wmir = cv2.remap(wown, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a_ = wown
    b_ = (1.0 - wown) * wmir
    den = a_ + b_
    out = (own.astype(np.float32) * a_[..., None] + mir.astype(np.float32) * b_[..., None]) / np.maximum(den, 1e-6)[..., None]
    out = np.clip(out, 0, 255).astype(np.uint8)
    good = known & (den > 0.05)
    tex = _fill_outside(out, good, blur=2)
    if return_weight:
        return tex, wown
    return tex


# ------------------------------------------------------------------------------------------------------------------
# procedural textures (no real data needed)
# ------------------------------------------------------------------------------------------------------------------
def _poly(rig, idx, size):
    return np.round(rig.uv[list(idx)] * size * 16).astype(np.int32)  # 4 fractional bits for cv2 shift=4


def _noise(rng, size, cells):
    g = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)


def procedural_texture(rig: FaceRig, rng: np.random.Generator, size: int = ATLAS_SIZE) -> np.ndarray:
    """A random plausible face texture (S, S, 3) uint8 in the rig's UV layout: skin tone with blotches and pores,
    cheek redness, lips, brows, lash lines, optional stubble."""
    t = rng.uniform()
    light, dark = np.array([0.93, 0.78, 0.68]), np.array([0.33, 0.21, 0.15])
    base = light * (1 - t) + dark * t
    base = base * rng.uniform(0.92, 1.08, 3) ** 0.5
    tex = np.ones((size, size, 3), np.float32) * base
    tex *= (1.0 + 0.05 * _noise(rng, size, 6))[..., None]
    tex *= (1.0 + 0.025 * _noise(rng, size, 48))[..., None]
    lay = np.zeros((size, size), np.float32)
    sh = 4
    # cheek redness
    for k in (50, 280):
        x, y = rig.uv[k] * size
        cv2.circle(lay, (int(x * 16), int(y * 16)), int(size * 0.08 * 16), 1.0, -1, cv2.LINE_AA, shift=sh)
    lay = cv2.GaussianBlur(lay, (0, 0), size * 0.04)
    red = rng.uniform(0.0, 0.12)
    tex *= (1.0 + red * lay[..., None] * np.array([0.3, -0.5, -0.4]))
    # lips
    lips = np.zeros((size, size), np.float32)
    outer = list(L.LIPS_OUTER_UPPER) + list(L.LIPS_OUTER_LOWER[::-1])
    cv2.fillPoly(lips, [_poly(rig, outer, size)], 1.0, cv2.LINE_AA, shift=sh)
    lips = cv2.GaussianBlur(lips, (0, 0), 1.2)
    lip_col = base * np.array([0.95, 0.62, 0.62]) * rng.uniform(0.75, 1.0)
    tex = tex * (1 - lips[..., None]) + lip_col * lips[..., None]
    # brows
    hair = np.array([0.12, 0.08, 0.05]) * rng.uniform(0.5, 2.5)
    brows = np.zeros((size, size), np.float32)
    for up, lo in ((L.BROW_R_UPPER, L.BROW_R_LOWER), (L.BROW_L_UPPER, L.BROW_L_LOWER)):
        cv2.fillPoly(brows, [_poly(rig, list(up) + list(lo[::-1]), size)], 1.0, cv2.LINE_AA, shift=sh)
    brows = cv2.GaussianBlur(brows, (0, 0), 1.0) * np.clip(0.75 + 0.4 * _noise(rng, size, 64), 0, 1)
    brows *= rng.uniform(0.5, 0.95)
    tex = tex * (1 - brows[..., None]) + hair * brows[..., None]
    # lash lines / eye contour
    lash = np.zeros((size, size), np.float32)
    for lid in (L.EYE_R_UPPER, L.EYE_L_UPPER):
        cv2.polylines(lash, [_poly(rig, lid, size)], False, 1.0, max(1, size // 128), cv2.LINE_AA, shift=sh)
    for lid in (L.EYE_R_LOWER, L.EYE_L_LOWER):
        cv2.polylines(lash, [_poly(rig, lid, size)], False, 0.4, 1, cv2.LINE_AA, shift=sh)
    lash = cv2.GaussianBlur(lash, (0, 0), 0.7)
    tex = tex * (1 - 0.7 * lash[..., None]) + 0.7 * lash[..., None] * np.array([0.06, 0.04, 0.03])
    # eye sockets slightly darker, nostrils dark
    sock = np.zeros((size, size), np.float32)
    for k in (159, 386):
        x, y = rig.uv[k] * size
        cv2.circle(sock, (int(x * 16), int(y * 16)), int(size * 0.06 * 16), 1.0, -1, cv2.LINE_AA, shift=sh)
    for k in (79, 309):  # nostril openings
        x, y = rig.uv[k] * size
        cv2.circle(sock, (int(x * 16), int(y * 16)), int(size * 0.012 * 16), 3.0, -1, cv2.LINE_AA, shift=sh)
    sock = cv2.GaussianBlur(sock, (0, 0), size * 0.012)
    tex *= (1.0 - 0.12 * np.clip(sock, 0, 3)[..., None])
    # stubble
    if rng.uniform() < 0.2:
        yy = np.arange(size)[:, None] / size
        region = np.clip((yy - rig.uv[2, 1]) / 0.05, 0, 1) * np.ones((1, size))
        region *= np.clip(1 - lips * 3, 0, 1) * rng.uniform(0.2, 0.6)
        dots = cv2.GaussianBlur(np.clip(_noise(rng, size, 96), 0, None), (0, 0), 0.8)
        tex *= (1 - 0.3 * (region * dots)[..., None])
    return np.clip(tex * 255, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------------------
# the library
# ------------------------------------------------------------------------------------------------------------------
@dataclass
class TextureLibrary:
    """N face textures with their provenance. ``identities[i]`` is the identity key for the train/val/test split
    (``facecap_core.data.splits.split_of``); ``skin[i]`` the (3,) 0-1 skin albedo used for the head proxy."""
    textures: np.ndarray  # (N, S, S, 3) uint8
    identities: list = field(default_factory=list)
    sources: list = field(default_factory=list)  # file (real) or "procedural:<seed>:<i>"
    skin: np.ndarray | None = None  # (N, 3) float32

    def __len__(self):
        return len(self.textures)

    @property
    def size(self) -> int:
        return int(self.textures.shape[1])

    def subset(self, keep) -> "TextureLibrary":
        keep = np.asarray(keep)
        if keep.dtype == bool:
            keep = np.flatnonzero(keep)
        return TextureLibrary(self.textures[keep], [self.identities[i] for i in keep],
                              [self.sources[i] for i in keep], None if self.skin is None else self.skin[keep])

    def for_split(self, split: str) -> "TextureLibrary":
        """Only the textures whose identity belongs to ``split`` ('train', 'val', 'test'), by
        ``facecap_core.data.splits.split_of`` (imported lazily; procedural textures are always 'train')."""
        from . import splits  # noqa: PLC0415  (written by the data-engine split work)

        keep = [i for i, ident in enumerate(self.identities)
                if (split == "train" if ident.startswith("procedural") else splits.split_of(ident) == split)]
        return self.subset(np.asarray(keep, np.int64))

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, version=LIBRARY_VERSION, textures=self.textures, identities=np.array(self.identities),
                 sources=np.array(self.sources), skin=self.skin)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "TextureLibrary":
        with np.load(path, allow_pickle=False) as d:
            if int(d["version"]) != LIBRARY_VERSION:
                raise ValueError(f"{path}: texture library version {int(d['version'])}, expected {LIBRARY_VERSION}")
            return cls(d["textures"], [str(s) for s in d["identities"]], [str(s) for s in d["sources"]],
                       d["skin"].astype(np.float32))


def procedural_library(rig: FaceRig, n: int = 16, seed: int = 0, size: int = ATLAS_SIZE) -> TextureLibrary:
    """n procedural textures (deterministic from ``seed``); identity key 'procedural'."""
    rng = np.random.default_rng(seed)
    tex = np.stack([procedural_texture(rig, rng, size) for _ in range(n)])
    return TextureLibrary(tex, ["procedural"] * n, [f"procedural:{seed}:{i}" for i in range(n)],
                          np.stack([skin_tone(rig, t) for t in tex]))


def build_library(rig: FaceRig, faces_dir: str = DEFAULT_FACES, cache_path: str | None = None,
                  size: int = ATLAS_SIZE, max_yaw: float = 40.0, max_pitch: float = 30.0, min_iod: float = 45.0,
                  teacher_cache: str | None = None, progress: bool = False, rebuild: bool = False) -> TextureLibrary:
    """Unwrap every usable photo of ``faces_dir/manifest.csv`` (kind 'image'; one face found; |yaw| ≤ max_yaw,
    |pitch| ≤ max_pitch degrees; inter-ocular distance ≥ min_iod px) into a :class:`TextureLibrary`, cached as one npz
    (default ``cache/textures/real_<size>.npz``). The teacher labels come from ``label_images`` (cached)."""
    from ..teacher import label_images, read_rgb  # noqa: PLC0415

    root = os.path.dirname(DEFAULT_CACHE)
    cache_path = cache_path or os.path.join(DEFAULT_CACHE, f"real_{size}.npz")
    if os.path.exists(cache_path) and not rebuild:
        return TextureLibrary.load(cache_path)
    teacher_cache = teacher_cache or os.path.join(root, "teacher", "images")
    rows = [r for r in csv.DictReader(open(os.path.join(faces_dir, "manifest.csv"))) if r.get("kind", "image") == "image"]
    paths = [os.path.join(faces_dir, r["file"]) for r in rows]
    labels = label_images(paths, teacher_cache, progress=progress)
    tex, ids, srcs = [], [], []
    for row, lab in zip(rows, labels):
        if len(lab["faces"]) != 1:
            continue
        face = lab["faces"][0]
        yaw, pitch, _ = face.head_angles_deg()
        if abs(yaw) > max_yaw or abs(pitch) > max_pitch or face.size < min_iod:
            continue
        img = read_rgb(os.path.join(faces_dir, row["file"]))
        if img is None:
            continue
        tex.append(unwrap_photo(rig, img, face.landmarks, size))
        ids.append(row.get("identity") or row["file"])
        srcs.append(row["file"])
        if progress and len(tex) % 50 == 0:
            print(f"  textures: {len(tex)} unwrapped", flush=True)
    lib = TextureLibrary(np.stack(tex) if tex else np.zeros((0, size, size, 3), np.uint8), ids, srcs,
                         np.stack([skin_tone(rig, t) for t in tex]) if tex else np.zeros((0, 3), np.float32))
    lib.save(cache_path)
    return lib
