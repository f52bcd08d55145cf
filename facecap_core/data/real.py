"""Teacher-labelled real faces (design §7, paper Eq. 4): the ground truth that replaces the paper's hand labels.

For every photo and every video frame of a faces folder (``manifest.csv``: file, kind, identity, license …):

1. the teacher (MediaPipe FaceLandmarker, ``facecap_core.teacher``) gives 478 landmarks per face — photos in IMAGE
   mode (up to 4 faces), videos in VIDEO mode over **all** frames (one face); both cached per file;
2. the rig is fitted to the 478 points (Eq. 4, ``fit_landmarks(landmark_set='478')``):

   * photos: pose, expression, identity u and focal f all free;
   * videos, the paper's split: u and f solved once per clip (Eq. 3, ``solve_identity_focal``) on key-frames
     (the extreme yaw/pitch frames plus evenly spaced ones, each first fitted freely), then every frame fitted
     with u, f fixed, warm-started from the previous frame (cold restart when that is worse);

3. the 73 landmark labels are the teacher's own points at the rig's landmark vertices, the 17 jaw points taken at
   the fitted pose's silhouette vertices (``silhouette_vertices``) — the labels stay faithful to the image while
   following the design's sliding-jaw convention;
4. the fit residual is kept (RMS px over the 478 points, and normalised by the inter-ocular distance of the outer
   eye corners) and bad labels are rejected with a reason (:class:`RejectRules`, decided at load time from the
   cached numbers, so the thresholds can change without refitting).

One compact ``.npz`` per source file under ``cache_dir/real_labels/`` (keyed by the file's content, the rig's
arrays and :data:`LABEL_VERSION`), so a rerun is instant. Masks are not cached: :func:`real_sample` computes the
skin-refined oval mask (``skinseg.face_mask``) from the image and the cached teacher points.

Identity keys (``splits``): the manifest identity, canonicalised (``splits.canonical_name``), with aliases merged
(the same person named in a photo and a clip; "X (young)" = "X"); videos use the manifest identity too (two clips
of one news anchor share it; otherwise it is unique per clip, i.e. the file stem's person). In a photo with
several faces, face k ≥ 1 (and every face of a group / crowd / collage / couple photo) gets ``"<base>#k"``, so
bystanders are not mistaken for the named person while staying in the photo's split.

Training-time only; never commit anything this produces (the data's licences, design §7).
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from ..rig import landmarks as L
from ..rig.fit import FitRig, fit_landmarks, silhouette_vertices, solve_identity_focal
from ..rig.model import N_EXPRESSIONS, N_IDENTITY
from . import splits as SP
from .types import FaceSample, ShapeParams

LABEL_VERSION = "real-v1"
N_KEYFRAMES = 8


@dataclass(frozen=True)
class RejectRules:
    """When a teacher face does not become a label. Chosen from the residual distribution of all faces
    (see ``benchmarks/label_real_faces.py``):

    * ``min_iod_px``: outer-eye-corner distance below this is a tiny face (the face is < ~75 px wide; the teacher's
      points are mostly guesswork and a 128-px crop would upsample it ×2);
    * ``max_rms_iod``: RMS fit residual over the 478 points / IOD — the rig cannot explain the teacher's points
      (upside-down faces, near-profiles, broken tracking) so S would be a poor label. The teacher's mesh is itself
      a smooth 3D face, so residuals are small: on the 720 photo faces the median is 0.013 IOD, p99 0.023, and
      the few above 0.03 (≈ 2.3× the median) are the visible failures (upside-down children, a profile, a tiny
      crowd face); 0.03 is the cut;
    * ``max_outside``: fraction of the 478 points outside the image (a face cut by the frame border).
    """

    min_iod_px: float = 30.0
    max_rms_iod: float = 0.03
    max_outside: float = 0.25


DEFAULT_RULES = RejectRules()


@dataclass
class RealLabel:
    """One teacher-labelled face of a real photo or video frame."""

    file: str  # path relative to the faces folder
    kind: str  # "photo" or "video"
    frame: int  # frame index in the clip (-1 for photos)
    face_index: int  # 0 = largest face of the image
    n_faces: int  # faces the teacher found in this image
    identity: str  # identity key (splits)
    params: ShapeParams  # Eq. 4 fit
    landmarks: np.ndarray  # (73, 2) float32 pixels: the teacher's points at the rig's landmark (silhouette) vertices
    teacher: np.ndarray  # (478, 2) float32 pixels: the teacher's landmarks (mask polygon, skin model)
    blendshapes: np.ndarray  # (52,) float32 teacher ARKit scores
    rms_px: float  # fit residual, RMS over the 478 points, pixels
    iod: float  # inter-ocular distance (outer eye corners 33-263 of the teacher's points), pixels
    reason: str = ""  # "" = accepted, else why rejected: "tiny", "fit_residual", "out_of_frame", "fit_failed"
    license: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.reason == ""

    @property
    def rms_iod(self) -> float:
        return self.rms_px / max(self.iod, 1e-6)

    @property
    def source(self) -> str:
        return "real-photo" if self.kind == "photo" else "real-video"

    @property
    def split(self) -> str:
        return SP.split_of(self.identity)


# --------------------------------------------------------------------------------------------------------------
# identities
# --------------------------------------------------------------------------------------------------------------
_GROUP = re.compile(r"^(group|family group|crowd|pascal voc|masked people|two women|collage)\b", re.I)


class IdentityResolver:
    """Manifest identity → canonical person key, with aliases merged (union-find, representative = the smallest
    canonical name): "same person as videos/X" notes, LivePortrait driving photo/clip pairs (``driving_dN``)."""

    def __init__(self, rows):
        self.parent: dict[str, str] = {}
        by_file = {r["file"]: r for r in rows}
        for r in rows:
            self._find(self._name(r))
        for r in rows:
            m = re.search(r"same (?:person|identity) as (\S+)", r.get("notes", "") + " " + r.get("identity", ""))
            if m and m.group(1).rstrip(").,;") in by_file:
                self._union(self._name(r), self._name(by_file[m.group(1).rstrip(").,;")]))
            m = re.match(r"images/liveportrait__driving_(d\d+)\.\w+$", r["file"])
            if m:
                v = f"videos/liveportrait__driving_{m.group(1)}.mp4"
                if v in by_file:
                    self._union(self._name(r), self._name(by_file[v]))

    @staticmethod
    def _name(row) -> str:
        ident = row.get("identity", "").strip()
        ident = re.sub(r"\s*\(same (?:person|identity) as [^)]*\)", "", ident)
        if not ident:
            ident = os.path.splitext(os.path.basename(row["file"]))[0]
        m = re.match(r"^collage \((.*)\)$", ident, re.I)
        if m:  # a collage of named people: all of them
            return "; ".join(sorted(SP.canonical_name(p) for p in m.group(1).split(",")))
        return "; ".join(SP.canonical_name(p) for p in ident.split(";"))

    def _find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def _union(self, a: str, b: str) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo

    def key(self, row, face_index: int = 0, n_faces: int = 1) -> str:
        name = self._name(row)
        base = "; ".join(self._find(p) if p in self.parent else p for p in name.split("; ")) if ";" in name \
            else self._find(name)
        group = bool(_GROUP.match(row.get("identity", "").strip())) or ";" in base
        if row.get("kind") == "video":
            return base
        if group or (n_faces > 1 and face_index > 0):
            return f"{base}#{face_index}"
        return base


def read_manifest(faces_dir: str) -> list[dict]:
    with open(os.path.join(faces_dir, "manifest.csv"), newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------------------------
def _iod(p478: np.ndarray) -> float:
    return float(np.linalg.norm(p478[33, :2] - p478[263, :2]))


def labels73(p478: np.ndarray, fitrig: FitRig, R, t, f, image_size, x, u) -> np.ndarray:
    """(73, 2): the teacher's points at the rig's 73 landmark vertices, jaw at the fitted silhouette vertices."""
    v = np.asarray(fitrig.landmark_vertices, np.int64).copy()
    v[list(L.JAW)] = silhouette_vertices(fitrig, R, t, f, image_size, x, u)
    return np.asarray(p478, np.float32)[v, :2]


def _fit_row(p, size, fr, **kw):
    try:
        return fit_landmarks(p, size, fr, landmark_set="478", **kw)
    except (ValueError, np.linalg.LinAlgError):
        return None


def _empty_arrays():
    return dict(frame=[], face_index=[], n_faces=[], quat=[], trans=[], expr=[], ident=[], focal=[], lm73=[],
                teacher=[], blend=[], rms=[], fit_ok=[])


def _append(a, frame, k, n, fit, p478, blend, fr, size):
    a["frame"].append(frame), a["face_index"].append(k), a["n_faces"].append(n)
    a["teacher"].append(np.asarray(p478[:, :2], np.float32)), a["blend"].append(np.asarray(blend, np.float32))
    if fit is None:
        a["quat"].append(np.array([1.0, 0, 0, 0])), a["trans"].append(np.zeros(3))
        a["expr"].append(np.zeros(N_EXPRESSIONS)), a["ident"].append(np.zeros(N_IDENTITY))
        a["focal"].append(np.nan), a["rms"].append(np.inf), a["fit_ok"].append(False)
        a["lm73"].append(np.asarray(p478, np.float32)[fr.landmark_vertices, :2])
        return
    a["quat"].append(fit.quaternion), a["trans"].append(fit.translation), a["expr"].append(fit.expression)
    a["ident"].append(fit.identity), a["focal"].append(fit.focal), a["rms"].append(fit.rms), a["fit_ok"].append(True)
    a["lm73"].append(labels73(p478, fr, fit.rotation, fit.translation, fit.focal, size, fit.expression, fit.identity))


def _pack_arrays(a, **extra) -> dict:
    n = len(a["frame"])
    out = dict(frame=np.array(a["frame"], np.int32), face_index=np.array(a["face_index"], np.int16),
               n_faces=np.array(a["n_faces"], np.int16),
               quat=np.array(a["quat"], np.float32).reshape(n, 4), trans=np.array(a["trans"], np.float32).reshape(n, 3),
               expr=np.array(a["expr"], np.float32).reshape(n, N_EXPRESSIONS),
               ident=np.array(a["ident"], np.float32).reshape(n, N_IDENTITY), focal=np.array(a["focal"], np.float32),
               lm73=np.array(a["lm73"], np.float32).reshape(n, 73, 2),
               teacher=np.array(a["teacher"], np.float32).reshape(n, 478, 2),
               blend=np.array(a["blend"], np.float32).reshape(n, 52), rms=np.array(a["rms"], np.float32),
               fit_ok=np.array(a["fit_ok"], bool))
    out.update(extra)
    return out


def label_photo(path: str, teacher_cache: str, fitrig: FitRig) -> dict:
    """Arrays of the labels of one photo (all faces the teacher finds, up to 4), u and f free."""
    from ..teacher import label_images  # noqa: PLC0415

    res = label_images([path], teacher_cache)[0]
    h, w = res["shape"]
    a = _empty_arrays()
    n = len(res["faces"])
    for k, face in enumerate(res["faces"]):
        fit = _fit_row(face.landmarks[:, :2], (w, h), fitrig)
        _append(a, -1, k, n, fit, face.landmarks, face.blendshape_vector, fitrig, (w, h))
    return _pack_arrays(a, image_size=np.array([w, h], np.int32), n_frames=np.int32(1),
                        n_with_face=np.int32(n > 0))


def _video_size(path: str) -> tuple[int, int]:
    import cv2  # noqa: PLC0415

    cap = cv2.VideoCapture(path)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return w, h


def pick_keyframes(angles: np.ndarray, n: int = N_KEYFRAMES) -> list[int]:
    """Indices (into ``angles`` (F, 3) yaw, pitch, roll) of the key-frames: extreme yaw and pitch first (they
    constrain f and the depth shape), then evenly spaced frames."""
    F = len(angles)
    if F <= n:
        return list(range(F))
    pick = []
    for j in (0, 1):
        for i in (int(np.argmin(angles[:, j])), int(np.argmax(angles[:, j]))):
            if i not in pick:
                pick.append(i)
    for i in np.linspace(0, F - 1, n + 2)[1:-1].round().astype(int):
        if len(pick) >= n:
            break
        if int(i) not in pick:
            pick.append(int(i))
    return sorted(pick)


def label_clip(path: str, teacher_cache: str, fitrig: FitRig, n_keyframes: int = N_KEYFRAMES) -> dict:
    """Arrays of the labels of every frame of a clip (teacher VIDEO mode, one face); u, f per clip (Eq. 3 on
    key-frames), then per-frame Eq. 4 with u, f fixed."""
    from ..teacher import label_video  # noqa: PLC0415

    res = label_video(path, teacher_cache, stride=1)
    w, h = _video_size(path)
    size = (w, h)
    found = [r for r in res if r["faces"]]
    a = _empty_arrays()
    u = np.zeros(N_IDENTITY)
    f = None
    if found:
        angles = np.array([r["faces"][0].head_angles_deg() for r in found])
        kf = []
        for i in pick_keyframes(angles, n_keyframes):
            p = found[i]["faces"][0].landmarks[:, :2]
            fit = _fit_row(p, size, fitrig)
            if fit is not None and fit.rms < 0.08 * max(_iod(p), 1.0):
                kf.append((p, fit))
        if kf:
            u0 = np.median([k[1].identity for k in kf], 0)
            f0 = float(np.median([k[1].focal for k in kf]))
            try:
                sol = solve_identity_focal([(p, ft.rotation, ft.translation, ft.expression) for p, ft in kf], size,
                                           fitrig, u0=u0, f0=f0, landmark_set="478")
                u, f = sol.identity, sol.focal
                if not np.isfinite(f) or f <= 0:
                    u, f = u0, f0
            except (ValueError, np.linalg.LinAlgError):
                u, f = u0, f0
    prev = None
    for r in found:
        face = r["faces"][0]
        p = face.landmarks[:, :2]
        fit = None
        if prev is not None:  # warm start: one outer iteration, short polish (≈4× cheaper than a cold fit)
            fit = _fit_row(p, size, fitrig, u=u, f=f, fix_identity=True, fix_focal=True, x0=prev.expression,
                           pose0=(prev.rotation, prev.translation), outer_iterations=1, gn_iterations=6,
                           max_lbfgs_iterations=5)
        if fit is None or fit.rms > 0.025 * max(_iod(p), 1.0):
            cold = _fit_row(p, size, fitrig, u=u, f=f, fix_identity=True, fix_focal=True)
            if cold is not None and (fit is None or cold.rms < fit.rms):
                fit = cold
        _append(a, r["frame"], 0, 1, fit, face.landmarks, face.blendshape_vector, fitrig, size)
        prev = fit
    return _pack_arrays(a, image_size=np.array([w, h], np.int32), n_frames=np.int32(len(res)),
                        n_with_face=np.int32(len(found)), clip_identity=np.asarray(u, np.float32),
                        clip_focal=np.float32(np.nan if f is None else f))


# --------------------------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------------------------
def rig_digest(rig) -> str:
    h = hashlib.sha1()
    for name in ("neutral", "identity_basis", "expression_deltas", "landmark_vertices", "jaw_contour_candidates"):
        h.update(np.ascontiguousarray(getattr(rig, name)).tobytes())
    return h.hexdigest()[:16]


def _file_digest(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def cache_path(cache_dir: str, rel_file: str, file_digest: str, rig_key: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.splitext(os.path.basename(rel_file))[0])[:60]
    key = hashlib.sha1(f"{LABEL_VERSION}:{file_digest}:{rig_key}".encode()).hexdigest()[:16]
    return os.path.join(cache_dir, "real_labels", f"{stem}-{key}.npz")


def save_arrays(path: str, arrays: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_arrays(path: str) -> dict:
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def reject_reason(rms_px: float, iod: float, teacher: np.ndarray, image_size, fit_ok: bool,
                  rules: RejectRules = DEFAULT_RULES) -> str:
    if not fit_ok or not np.isfinite(rms_px):
        return "fit_failed"
    if iod < rules.min_iod_px:
        return "tiny"
    w, h = image_size
    out = np.mean((teacher[:, 0] < 0) | (teacher[:, 1] < 0) | (teacher[:, 0] >= w) | (teacher[:, 1] >= h))
    if out > rules.max_outside:
        return "out_of_frame"
    if rms_px / max(iod, 1e-6) > rules.max_rms_iod:
        return "fit_residual"
    return ""


def labels_from_arrays(arrays: dict, row: dict, resolver: IdentityResolver,
                       rules: RejectRules = DEFAULT_RULES) -> list[RealLabel]:
    """RealLabels of one source file from its cached arrays (acceptance decided here, from ``rules``)."""
    w, h = (int(v) for v in arrays["image_size"])
    kind = "video" if row.get("kind") == "video" else "photo"
    out = []
    for i in range(len(arrays["frame"])):
        t478 = arrays["teacher"][i]
        iod = _iod(t478)
        rms = float(arrays["rms"][i])
        ok = bool(arrays["fit_ok"][i])
        k, n = int(arrays["face_index"][i]), int(arrays["n_faces"][i])
        params = ShapeParams(rotation=arrays["quat"][i].astype(np.float64),
                             translation=arrays["trans"][i].astype(np.float64),
                             expression=arrays["expr"][i].astype(np.float64),
                             identity=arrays["ident"][i].astype(np.float64),
                             focal=float(arrays["focal"][i]), image_size=(w, h))
        out.append(RealLabel(file=row["file"], kind=kind, frame=int(arrays["frame"][i]), face_index=k, n_faces=n,
                             identity=resolver.key(row, k, n), params=params, landmarks=arrays["lm73"][i],
                             teacher=t478, blendshapes=arrays["blend"][i], rms_px=rms, iod=iod,
                             reason=reject_reason(rms, iod, t478, (w, h), ok, rules),
                             license=row.get("license", "")))
    return out


def label_file(faces_dir: str, row: dict, cache_dir: str, fitrig: FitRig, rig_key: str | None = None) -> dict:
    """Cached label arrays of one manifest row (computes and caches them when missing)."""
    path = os.path.join(faces_dir, row["file"])
    rig_key = rig_key or rig_digest(fitrig.rig)
    cpath = cache_path(cache_dir, row["file"], _file_digest(path), rig_key)
    if os.path.exists(cpath):
        return load_arrays(cpath)
    teacher_cache = os.path.join(cache_dir, "teacher")
    t0 = time.time()
    if row.get("kind") == "video":
        arrays = label_clip(path, teacher_cache, fitrig)
    else:
        arrays = label_photo(path, teacher_cache, fitrig)
    arrays["seconds"] = np.float32(time.time() - t0)
    save_arrays(cpath, arrays)
    return arrays


def load_real_labels(faces_dir: str, cache_dir: str, rig, accepted_only: bool = True,
                     rules: RejectRules = DEFAULT_RULES, progress: bool = False, stats: dict | None = None,
                     kinds=("image", "video")) -> list[RealLabel]:
    """All teacher-labelled faces of ``faces_dir`` (its manifest.csv), labelling and caching what is missing
    (needs the teacher then; reruns read the cache). ``rig`` a FaceRig or FitRig. ``stats`` (a dict), when
    given, is filled with per-kind counts of files, frames processed and frames with a face, and seconds."""
    fitrig = rig if isinstance(rig, FitRig) else FitRig(rig)
    rows = read_manifest(faces_dir)
    resolver = IdentityResolver(rows)
    rig_key = rig_digest(fitrig.rig)
    rows = [r for r in rows if r["kind"] in kinds]
    it = rows
    if progress:
        try:
            from tqdm import tqdm  # noqa: PLC0415

            it = tqdm(rows, desc="real labels", unit="file")
        except ImportError:
            pass
    out = []
    for row in it:
        arrays = label_file(faces_dir, row, cache_dir, fitrig, rig_key)
        if stats is not None:
            s = stats.setdefault(row["kind"], dict(files=0, frames=0, frames_with_face=0, seconds=0.0))
            s["files"] += 1
            s["frames"] += int(arrays["n_frames"])
            s["frames_with_face"] += int(arrays["n_with_face"])
            s["seconds"] += float(arrays.get("seconds", 0.0))
        labels = labels_from_arrays(arrays, row, resolver, rules)
        out.extend(lb for lb in labels if lb.accepted or not accepted_only)
    return out


# --------------------------------------------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------------------------------------------
def read_frame(path: str, frame: int) -> np.ndarray | None:
    """RGB image of a photo (frame < 0) or of one frame of a clip."""
    import cv2  # noqa: PLC0415

    if frame < 0:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    else:
        cap = cv2.VideoCapture(path)
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, bgr = cap.read()
        cap.release()
        bgr = bgr if ok else None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def landmark_visibility(landmarks: np.ndarray, mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """(N,) bool: inside the image and the mask is face within ``radius`` px (jaw points sit on the oval border)."""
    import cv2  # noqa: PLC0415

    h, w = mask.shape
    grown = cv2.dilate(mask, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) if radius > 0 else mask
    lm = np.asarray(landmarks, np.float64)
    ok = np.all(np.isfinite(lm), 1) & (lm[:, 0] >= 0) & (lm[:, 1] >= 0) & (lm[:, 0] < w) & (lm[:, 1] < h)
    vis = np.zeros(len(lm), bool)
    xi = np.clip(np.floor(lm[ok, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.floor(lm[ok, 1]).astype(int), 0, h - 1)
    vis[ok] = grown[yi, xi] > 0
    return vis


def real_sample(label: RealLabel, image: np.ndarray, others=(), seg_params=None) -> FaceSample:
    """FaceSample of a real label on its source image (uint8 RGB, the full photo/frame; crop_affine = identity).
    The mask is the skin-refined oval of this face (``skinseg.face_mask``), united with those of ``others`` (the
    other faces of the same image, so that a crop around one face does not call its neighbours non-face)."""
    from . import skinseg  # noqa: PLC0415

    img = np.ascontiguousarray(image)
    h, w = img.shape[:2]
    if (w, h) != tuple(label.params.image_size):
        raise ValueError(f"image is {w}x{h} but the label's camera is {label.params.image_size}")
    kw = {} if seg_params is None else {"params": seg_params}
    mask = skinseg.face_mask(img, label.teacher, **kw)
    for o in others:
        if o is not label:
            mask |= skinseg.face_mask(img, o.teacher, **kw)
    lm = np.asarray(label.landmarks, np.float32).copy()
    vis = landmark_visibility(lm, mask, radius=max(2, int(round(0.03 * label.iod))))
    return FaceSample(image=img, mask=mask.astype(np.uint8), landmarks=lm, visible=vis, params=label.params,
                      crop_affine=np.eye(2, 3), source=label.source, identity=label.identity,
                      meta=dict(file=label.file, frame=label.frame, face_index=label.face_index,
                                n_faces=label.n_faces, fit_rms_px=label.rms_px, fit_rms_iod=label.rms_iod,
                                license=label.license, split=label.split))
