"""`facecap segment INPUT --out DIR`: full-frame face masks of an image, an image folder or glob, or a video.

One PNG per frame (uint8, 255 = face, design §5/§6): `<image stem>.png` for images (a numeric suffix where two
inputs share a stem), `frame_000000.png` … for a video; with `--overlay`, a check image of each frame under
`DIR/overlay/<stem>.jpg` (face tinted green and outlined, crop square yellow, "no face" where none was found).
Each frame goes through `segment_frame` (Viola–Jones detection → crop → network → graph cut → paste-back); on a
video a frame where the detector finds nothing reuses the previous frame's box for up to `hold` frames (the
detector misses faces behind hands; the tracker will supply the box in `facecap track`). Files are written through
a rename, so `--resume` can keep an interrupted run's masks and segment only the rest.
"""
from __future__ import annotations

import glob
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..fileformat import make_output_folder


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class InputError(RuntimeError):
    """A missing or unreadable input (one line naming it)."""


@dataclass
class Source:
    """Frames to segment: `frames()` yields (output stem, RGB uint8 image); `count` (None if unknown)."""

    kind: str  # "images" or "video"
    spec: str
    files: list | None = None
    count: int | None = None
    fps: float = 0.0

    def frames(self):
        import cv2  # noqa: PLC0415

        if self.kind == "images":
            for stem, path in _unique_stems(self.files):
                bgr = cv2.imread(path, cv2.IMREAD_COLOR)
                if bgr is None:
                    raise InputError(f"cannot read image {path} (not an image, or corrupt)")
                yield stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            return
        cap = cv2.VideoCapture(self.spec)
        try:
            i = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield f"frame_{i:06d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                i += 1
        finally:
            cap.release()


def _unique_stems(files):
    seen = {}
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        k = seen.get(stem, 0)
        seen[stem] = k + 1
        yield (stem if k == 0 else f"{stem}_{k}"), path


def open_source(spec: str) -> Source:
    """An image file, a folder of images, a glob of images, or a video file → Source. Raises InputError."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own complaints would add lines to our error
    import cv2  # noqa: PLC0415

    if os.path.isdir(spec):
        files = sorted(os.path.join(spec, f) for f in os.listdir(spec) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {spec}")
        return Source("images", spec, files, len(files))
    if os.path.isfile(spec):
        if spec.lower().endswith(IMAGE_EXTENSIONS):
            return Source("images", spec, [spec], 1)
        cap = cv2.VideoCapture(spec)
        try:
            ok = cap.isOpened() and cap.read()[0]
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
            fps = float(cap.get(cv2.CAP_PROP_FPS)) if ok else 0.0
        finally:
            cap.release()
        if not ok:
            raise InputError(f"cannot read video {spec} (not a video OpenCV can decode, or no frames)")
        return Source("video", spec, None, n if n > 0 else None, fps)
    if glob.has_magic(spec):
        files = sorted(f for f in glob.glob(spec) if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(f))
        if not files:
            raise InputError(f"no images match {spec}")
        return Source("images", spec, files, len(files))
    raise InputError(f"input not found: {spec} (an image, a folder or glob of images, or a video file)")


def load_segmenter(path: str | None, device: str = "auto"):
    """The trained Segmenter of a model file, or the shipped one for the device when `path` is None (raises the
    segmenter's ModelFileError, one line)."""
    from .segmenter import Segmenter  # noqa: PLC0415

    return Segmenter.load_default(device) if path is None else Segmenter.load(path, device=device)


@dataclass
class SegmentReport:
    frames: int = 0
    with_face: int = 0
    held: int = 0
    kept: int = 0  # masks an earlier run had written (resume)
    seconds: float = 0.0


def write_image(path: str, image: np.ndarray, params=()) -> None:
    """cv2.imwrite through a temporary file and a rename, so an interrupted run never leaves a truncated mask
    that a resumed one would keep."""
    import cv2  # noqa: PLC0415

    root, ext = os.path.splitext(path)
    partial = root + ".partial" + ext
    if not cv2.imwrite(partial, image, list(params)):
        raise InputError(f"cannot write {path}")
    os.replace(partial, path)


def segment_source(source: Source, out_dir: str, segmenter, detector, refiner=None, hold: int = 10,
                   progress: bool = True, overlay: bool = False, resume: bool = False) -> SegmentReport:
    """Segment every frame of `source` and write `out_dir/<stem>.png` (255 = face); with `overlay`, also
    `out_dir/overlay/<stem>.jpg` (pipeline.mask_check_image). With `resume`, frames whose files are all there
    already (an interrupted run's) are kept as they are and not segmented again."""
    import cv2  # noqa: PLC0415

    from .pipeline import mask_check_image, segment_frame  # noqa: PLC0415

    overlay_dir = os.path.join(out_dir, "overlay")
    make_output_folder(out_dir, "the output folder", InputError)
    if overlay:
        make_output_folder(overlay_dir, "the check images' folder", InputError)
    report = SegmentReport()
    bar = None
    if progress and (source.kind == "video" or (source.count or 0) > 1):
        try:
            from tqdm import tqdm  # noqa: PLC0415

            bar = tqdm(total=source.count, unit="frame", desc="segment", file=sys.stderr, leave=False)
        except ImportError:
            bar = None
    t0 = time.perf_counter()
    last_box, since = None, 0
    try:
        for stem, image in source.frames():
            path = os.path.join(out_dir, stem + ".png")
            check_path = os.path.join(overlay_dir, stem + ".jpg")
            if resume and os.path.isfile(path) and (not overlay or os.path.isfile(check_path)):
                report.frames += 1
                report.kept += 1
                last_box = None  # no box to hold across frames this run did not look at
                if bar is not None:
                    bar.update(1)
                continue
            mask, info = segment_frame(image, detector, segmenter, refiner)
            if not info.face_found and source.kind == "video" and last_box is not None and since < hold:
                mask, info = segment_frame(image, None, segmenter, refiner, box=last_box)
                since += 1
                report.held += 1
            elif info.face_found:
                last_box, since = info.box, 0
            report.frames += 1
            report.with_face += int(info.face_found)
            if overlay:  # the check image first: a mask on disk means the frame is done
                check = cv2.cvtColor(mask_check_image(image, mask, info), cv2.COLOR_RGB2BGR)
                write_image(check_path, check, [cv2.IMWRITE_JPEG_QUALITY, 90])
            write_image(path, mask)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - t0
    return report
