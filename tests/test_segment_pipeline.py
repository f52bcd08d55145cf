"""Segmentation refinement and the per-frame path: the graph cut of Eq. 1 on hand-made maps, the crop/paste-back
round trip, segment_frame, and `facecap segment` on generated images and videos (stand-in segmenter: no trained
model, no shared data)."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facecap_core.cli import main
from facecap_core.detect import FaceDetector, crop_affine, crop_box, crop_image, paste_back
from facecap_core.segment import run as segment_run
from facecap_core.segment.graphcut import PAPER_LAMBDA, PAPER_SIGMA, SIGMA, GraphCutRefiner, potts_energy
from facecap_core.segment.pipeline import CropMask, segment_frame, segment_frame_in_crop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def noisy_image(rng, shape, value, noise=1.0):
    return np.clip(np.asarray(value, np.float32) + rng.normal(0, noise, shape + (3,)), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------ graph cut
def test_graph_cut_is_the_exact_minimum_of_the_reference_energy():
    rng = np.random.default_rng(0)
    for (lam, sigma), _ in itertools.product([(PAPER_LAMBDA, SIGMA), (PAPER_LAMBDA, PAPER_SIGMA)], range(6)):
        p = rng.uniform(0.02, 0.98, (3, 4))
        im = rng.integers(100, 108, (3, 4, 3)).astype(np.uint8)

        def energy(labels):
            return potts_energy(p, im, labels, lam, sigma)

        got = energy(GraphCutRefiner(lam, sigma).refine(p, im))
        best = min(energy(np.array(lab).reshape(3, 4)) for lab in itertools.product([0, 1], repeat=12))
        assert got == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_isolated_hole_in_a_confident_face_is_filled():
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[:128, :128]
    face = (xs - 64) ** 2 / 40 ** 2 + (ys - 64) ** 2 / 50 ** 2 <= 1
    p = np.where(face, 0.95, 0.03)
    p[60:64, 50:54] = 0.15  # a 4×4 'uncertainty' hole on the cheek
    p[80, 70] = 0.01  # and a single dead pixel
    image = noisy_image(rng, (128, 128), (60, 70, 90), noise=1.0)
    image[face] = noisy_image(rng, (128, 128), (190, 150, 130), noise=1.0)[face]
    mask = GraphCutRefiner().refine(p, image)
    assert not (p > 0.5)[60:64, 50:54].any()  # thresholding keeps the hole
    assert mask[60:64, 50:54].all() and mask[80, 70]
    assert np.array_equal(mask, face)  # nothing else moves (the face's outline is an image edge)
    ref = GraphCutRefiner()
    assert potts_energy(p, image, mask) < potts_energy(p, image, p > 0.5)
    assert ref.lam == PAPER_LAMBDA and ref.sigma == SIGMA


def test_a_faint_shading_step_is_smoothed_over_and_the_papers_sigma_cuts_at_it():
    """σ = 50 (ours) against the paper's 5: a 5-level shading step inside the face (d² = 75) stops the paper's cut
    and leaves a slightly doubtful band (p = 0.45) out, while ours carries the face across it to the real edge."""
    rng = np.random.default_rng(5)
    image = noisy_image(rng, (32, 96), (60, 70, 90), noise=0.5)
    image[:, :40] = noisy_image(rng, (32, 40), (200, 160, 140), noise=0.5)
    image[:, 40:60] = noisy_image(rng, (32, 20), (195, 155, 135), noise=0.5)  # the shaded side of the cheek
    p = np.full((32, 96), 0.02)
    p[:, :40], p[:, 40:60] = 0.95, 0.45
    ours = GraphCutRefiner().refine(p, image)
    paper = GraphCutRefiner(PAPER_LAMBDA, PAPER_SIGMA).refine(p, image)
    assert ours[:, :60].all() and not ours[:, 60:].any()
    assert paper[:, :40].all() and not paper[:, 40:].any()


@pytest.mark.parametrize("edge", [52, 64, 76])
def test_strong_image_edge_is_followed_where_probability_is_ambiguous(edge):
    rng = np.random.default_rng(2)
    image = noisy_image(rng, (64, 128), (200, 160, 140), noise=1.0)
    image[:, edge:] = noisy_image(rng, (64, 128 - edge), (60, 70, 90), noise=1.0)
    p = np.full((64, 128), 0.05)
    p[:, :40] = 0.95
    p[:, 40:90] = 0.52  # ambiguous band: thresholding calls all of it face
    mask = GraphCutRefiner().refine(p, image)
    expected = np.zeros_like(mask)
    expected[:, :edge] = True
    assert np.array_equal(mask, expected)
    assert (p > 0.5)[:, edge:90].all()


def test_lambda_zero_is_thresholding_at_one_half():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, (128, 128))
    p[np.abs(p - 0.5) < 1e-6] = 0.4
    image = rng.integers(0, 256, (128, 128, 3)).astype(np.uint8)
    assert np.array_equal(GraphCutRefiner(lam=0.0).refine(p, image), p > 0.5)
    # the same through the max-flow path: a vanishing λ
    assert np.array_equal(GraphCutRefiner(lam=1e-12).refine(p, image), p > 0.5)


def test_sigma_on_the_0_255_scale_keeps_thin_structures_that_the_0_1_scale_erases():
    """Why I is read in 0–255 (graphcut.py docstring): on the 0–1 scale θ_ij ≈ 1 everywhere and λ = 10 shaves off
    a confident 3-px strip that has its own colour; on 0–255 its edges are free to cut."""
    rng = np.random.default_rng(4)
    image = noisy_image(rng, (64, 64), (80, 80, 80), noise=1.0)
    image[:, 30:33] = (220, 180, 160)
    p = np.full((64, 64), 0.02)
    p[:, 30:33] = 0.99
    gc = GraphCutRefiner()
    assert gc.refine(p, image)[:, 30:33].all()
    assert not gc.refine(p, image.astype(np.float32) / 255.0).any()


def test_graph_cut_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        GraphCutRefiner().refine(np.zeros((8, 8)), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError):
        GraphCutRefiner(lam=-1)


# ------------------------------------------------------------------------------------------- crop and paste
def test_crop_box_and_affine_put_the_face_box_in_the_middle():
    box = (100.0, 80.0, 60.0, 60.0)
    sq = crop_box(box, (320, 240), margin=2.0, shift_y=0.0)
    assert np.allclose(sq, [130, 110, 120])
    A = crop_affine(sq, 128)
    corners = np.array([[100, 80], [160, 140]], float) @ A[:, :2].T + A[:, 2]
    assert np.allclose(corners.mean(0), 63.5)
    assert np.allclose(corners[1] - corners[0], 64)


def test_crop_image_samples_the_right_pixels():
    image = np.zeros((240, 320, 3), np.uint8)
    image[150, 200] = 255
    A = crop_affine(crop_box((150, 100, 100, 100), (320, 240), margin=1.28, shift_y=0.0))  # scale exactly 1
    assert np.isclose(A[0, 0], 1.0)
    crop = crop_image(image, A)[..., 0].astype(float)  # the dot lands between 4 crop pixels (bilinear)
    ys, xs = np.mgrid[:128, :128]
    centroid = np.array([np.sum(xs * crop), np.sum(ys * crop)]) / crop.sum()
    assert np.allclose(centroid, A @ [200, 150, 1], atol=0.05)


@pytest.mark.parametrize("box,image_size", [((140, 60, 90, 90), (320, 240)), ((10, 5, 200, 200), (640, 360)),
                                            ((400, 200, 37, 37), (480, 270))])
def test_paste_back_round_trip_lands_within_one_pixel(box, image_size):
    W, H = image_size
    A = crop_affine(crop_box(box, image_size))
    yy, xx = np.mgrid[:128, :128]
    disk = (xx - 60.0) ** 2 + (yy - 70.0) ** 2 <= 40.0 ** 2
    full = paste_back(disk, A, image_size)
    assert full.shape == (H, W) and full.dtype == np.uint8 and set(np.unique(full)) <= {0, 255}
    s = A[0, 0]
    centre = np.linalg.solve(A[:, :2], np.array([60.0, 70.0]) - A[:, 2])
    r = 40.0 / s
    Y, X = np.mgrid[:H, :W]
    dist = np.hypot(X - centre[0], Y - centre[1])
    tol = max(1.0, 1.0 / s)  # one pixel at the coarser of the two resolutions (the crop's raster of the disk)
    assert (full[dist <= r - tol] == 255).all()
    assert (full[dist >= r + tol] == 0).all()
    # and back: cropping the pasted mask gives the disk again (within a pixel of its boundary)
    again = crop_image(np.repeat(full[..., None], 3, 2), A)[..., 0] > 127
    ring = np.abs(np.hypot(xx - 60.0, yy - 70.0) - 40.0) <= 1.0 + s
    src = np.stack([xx, yy], -1).reshape(-1, 2) - A[:, 2]
    src = np.linalg.solve(A[:, :2], src.T).T.reshape(128, 128, 2)  # crop px → frame px
    inside = (src[..., 0] >= 1) & (src[..., 0] <= W - 2) & (src[..., 1] >= 1) & (src[..., 1] <= H - 2)
    keep = inside & ~ring
    assert keep.sum() > 1000
    assert np.array_equal(again[keep], disk[keep])


# ---------------------------------------------------------------------------------------------- the frame
class EllipseSegmenter:
    """Stand-in network: a face-probability ellipse in the middle of every crop (noisy, with a hole)."""

    def predict(self, crops):
        n = len(crops)
        yy, xx = np.mgrid[:128, :128]
        r2 = (xx - 63.5) ** 2 / 36 ** 2 + (yy - 66) ** 2 / 46 ** 2
        p = 1 / (1 + np.exp(8 * (r2 - 1)))
        p[60:63, 60:63] = 0.2
        return np.repeat(p[None].astype(np.float32), n, 0)


class FixedDetector:
    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, float).reshape(-1, 4)

    def detect(self, image):
        return self.boxes


def test_segment_frame_with_a_box_and_without_a_face():
    image = np.full((240, 320, 3), 128, np.uint8)
    mask, info = segment_frame(image, FixedDetector([(120, 60, 80, 80)]), EllipseSegmenter(), GraphCutRefiner())
    assert info.face_found and mask.shape == (240, 320) and mask.dtype == np.uint8
    assert mask[110, 160] == 255 and mask[5, 5] == 0
    assert info.crop_mask[61, 61]  # the hole is filled by the cut
    assert set(info.ms) >= {"detect", "net", "graphcut", "paste"}
    empty, info = segment_frame(image, FixedDetector([]), EllipseSegmenter(), GraphCutRefiner())
    assert not info.face_found and not empty.any() and empty.shape == (240, 320)
    given, info = segment_frame(image, None, EllipseSegmenter(), None, box=(120, 60, 80, 80))
    assert info.face_found and (given > 0).sum() > 0.5 * (mask > 0).sum()


def test_crop_mask_maps_into_another_crop_as_the_full_frame_mask_does():
    """The engine's shortcut (segmentation crop → tracker crop, no full-frame paste) agrees with pasting the mask
    into the frame and cutting the other crop from it, except within a pixel of the boundary."""
    image = np.full((240, 320, 3), 128, np.uint8)
    held, info = segment_frame_in_crop(image, None, EllipseSegmenter(), GraphCutRefiner(), box=(120, 60, 80, 80))
    full, _ = segment_frame(image, None, EllipseSegmenter(), GraphCutRefiner(), box=(120, 60, 80, 80))
    assert np.array_equal(held.full(), full)
    other = crop_affine(crop_box((110, 70, 90, 90), (320, 240)), 160)  # a larger, shifted crop
    direct = held.to_crop(other, 160)
    via_frame = cv2.warpAffine(full, other, (160, 160), flags=cv2.INTER_NEAREST, borderValue=0)
    assert direct.shape == (160, 160) and direct.dtype == np.uint8 and direct.max() == 255
    boundary = cv2.dilate(cv2.Canny(via_frame, 50, 150), np.ones((5, 5), np.uint8)) > 0
    assert np.array_equal(direct[~boundary], via_frame[~boundary])
    assert np.mean(direct != via_frame) < 0.02
    nothing = CropMask.empty((320, 240))
    assert not nothing.full().any() and nothing.full().shape == (240, 320) and not nothing.to_crop(other, 160).any()


def test_detector_loads_the_cascade_and_finds_nothing_in_a_blank_image():
    det = FaceDetector()
    boxes = det.detect(np.full((240, 320, 3), 90, np.uint8))
    assert boxes.shape == (0, 4)


# ------------------------------------------------------------------------------------------------- the CLI
def write_images(folder, n, size=(320, 240)):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        img = rng.integers(0, 256, (size[1], size[0], 3)).astype(np.uint8)
        assert cv2.imwrite(os.path.join(folder, f"img{i:02d}.png"), img)
    return folder


def write_video(path, n, size=(160, 120)):
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert vw.isOpened()
    for i in range(n):
        frame = np.full((size[1], size[0], 3), 40 + 10 * i, np.uint8)
        cv2.circle(frame, (size[0] // 2, size[1] // 2), 30, (120, 140, 200), -1)
        vw.write(frame)
    vw.release()
    return path


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """A model file that exists and a load_segmenter that returns the stand-in network."""
    model = tmp_path / "standin.pt"
    model.write_bytes(b"stand-in")
    monkeypatch.setattr(segment_run, "load_segmenter", lambda path, device="auto": EllipseSegmenter())
    return str(model)


def test_cli_segment_image_folder(standin, tmp_path, monkeypatch, capsys):
    src = write_images(str(tmp_path / "in"), 3)
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: np.array([[110.0, 70.0, 100.0, 100.0]]))
    out = str(tmp_path / "masks")
    assert main(["segment", src, "--out", out, "--model", standin, "--no-progress"]) == 0
    files = sorted(os.listdir(out))
    assert files == ["img00.png", "img01.png", "img02.png"]
    for f in files:
        m = cv2.imread(os.path.join(out, f), cv2.IMREAD_UNCHANGED)
        assert m.shape == (240, 320) and m.dtype == np.uint8 and set(np.unique(m)) == {0, 255}
    assert "3 masks" in capsys.readouterr().out


def test_cli_segment_glob_and_single_image_no_graphcut(standin, tmp_path):
    src = write_images(str(tmp_path / "in"), 2, size=(200, 150))
    out = str(tmp_path / "g")
    assert main(["segment", os.path.join(src, "*.png"), "--out", out, "--model", standin, "--no-graphcut"]) == 0
    assert len(os.listdir(out)) == 2
    out1 = str(tmp_path / "one")
    assert main(["segment", os.path.join(src, "img01.png"), "--out", out1, "--model", standin]) == 0
    m = cv2.imread(os.path.join(out1, "img01.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == (150, 200) and not m.any()  # random noise: no face detected → all-zero mask


def test_cli_segment_graphcut_sigma(standin, tmp_path, monkeypatch):
    """--graphcut-sigma reaches the refiner (5 = the paper's Eq. 1); a σ that is not positive is one clear error."""
    src = write_images(str(tmp_path / "in"), 1)
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: np.array([[110.0, 70.0, 100.0, 100.0]]))
    used = []
    monkeypatch.setattr(GraphCutRefiner, "refine", lambda self, p, image: used.append(self.sigma) or p > 0.5)
    assert main(["segment", src, "--out", str(tmp_path / "a"), "--model", standin, "--no-progress"]) == 0
    assert main(["segment", src, "--out", str(tmp_path / "b"), "--model", standin, "--no-progress",
                 "--graphcut-sigma", "5"]) == 0
    assert used == [SIGMA, PAPER_SIGMA]
    assert_one_line_error(run_cli("segment", src, "--out", str(tmp_path / "c"), "--graphcut-sigma", "0"),
                          "--graphcut-sigma must be > 0")


def test_cli_segment_views_reach_the_segmenter(standin, tmp_path, monkeypatch):
    """`facecap segment` averages two views of each crop by default (offline footage), `--views 1` runs the crop
    alone as live capture does, and a count the segmenter does not know is refused by argparse."""
    src = write_images(str(tmp_path / "in"), 1)
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: np.array([[110.0, 70.0, 100.0, 100.0]]))
    used = []
    monkeypatch.setattr(EllipseSegmenter, "predict", lambda self, crops: used.append(self.views) or
                        np.full((len(crops), 128, 128), 0.9, np.float32))
    assert main(["segment", src, "--out", str(tmp_path / "a"), "--model", standin, "--no-progress"]) == 0
    assert main(["segment", src, "--out", str(tmp_path / "b"), "--model", standin, "--no-progress",
                 "--views", "1"]) == 0
    assert used == [2, 1]
    assert run_cli("segment", src, "--out", str(tmp_path / "c"), "--views", "3").returncode != 0


def test_cli_segment_overlay(standin, tmp_path, monkeypatch, capsys):
    """--overlay writes one check image per frame beside the masks: face pixels tinted towards green, the rest of
    the frame unchanged away from the drawings, "no face" frames left untinted."""
    src = write_images(str(tmp_path / "in"), 2)
    boxes = iter([np.array([[110.0, 70.0, 100.0, 100.0]]), np.zeros((0, 4))])
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: next(boxes))
    out = str(tmp_path / "o")
    assert main(["segment", src, "--out", out, "--model", standin, "--no-progress", "--overlay"]) == 0
    assert sorted(os.listdir(os.path.join(out, "overlay"))) == ["img00.jpg", "img01.jpg"]
    assert os.path.join(out, "overlay") in capsys.readouterr().out
    image = cv2.imread(os.path.join(src, "img00.png")).astype(np.float32)
    check = cv2.imread(os.path.join(out, "overlay", "img00.jpg")).astype(np.float32)
    mask = cv2.imread(os.path.join(out, "img00.png"), cv2.IMREAD_UNCHANGED) > 0
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    outer = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    outer[60:230, 90:230] = False  # around the crop square's outline
    assert inner.sum() > 500 and outer.sum() > 20000
    green_gain = (check[..., 1] - image[..., 1]) - (check[..., 2] - image[..., 2])  # BGR: G up, R down
    assert green_gain[inner].mean() > 60 and abs(green_gain[outer].mean()) < 3
    image = cv2.imread(os.path.join(src, "img01.png")).astype(np.float32)  # no face found: no tint anywhere
    check = cv2.imread(os.path.join(out, "overlay", "img01.jpg")).astype(np.float32)
    green_gain = (check[..., 1] - image[..., 1]) - (check[..., 2] - image[..., 2])
    assert abs(green_gain[40:].mean()) < 3  # below the "no face" caption
    assert not cv2.imread(os.path.join(out, "img01.png"), cv2.IMREAD_UNCHANGED).any()


def test_cli_segment_resume_keeps_finished_masks(standin, tmp_path, monkeypatch, capsys):
    """--resume segments only the frames without a mask (an interrupted run), leaves the others' files as they were,
    and no temporary file stays behind."""
    src = write_images(str(tmp_path / "in"), 4)
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: np.array([[110.0, 70.0, 100.0, 100.0]]))
    out = str(tmp_path / "m")
    assert main(["segment", src, "--out", out, "--model", standin, "--no-progress"]) == 0
    os.remove(os.path.join(out, "img02.png"))
    before = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in os.listdir(out)}
    seen = []
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: seen.append(1) or np.array([[110.0, 70.0, 100.0,
                                                                                                  100.0]]))
    capsys.readouterr()
    assert main(["segment", src, "--out", out, "--model", standin, "--no-progress", "--resume"]) == 0
    assert len(seen) == 1 and "3 kept from an earlier run" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["img00.png", "img01.png", "img02.png", "img03.png"]
    assert all(os.stat(os.path.join(out, f)).st_mtime_ns == t for f, t in before.items())
    m = cv2.imread(os.path.join(out, "img02.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == (240, 320) and m.any()


def test_readme_python_segmentation_example_runs(tmp_path, monkeypatch):
    """The README's Python snippet for segmentation, run as written on a generated frame."""
    from facecap_core.segment.segmenter import DEFAULT_MODEL

    if not os.path.isfile(os.path.splitext(DEFAULT_MODEL)[0] + ".onnx"):
        pytest.skip("no shipped segmenter in models/")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    snippet = readme.split("From Python (a batch script", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    write_images(str(tmp_path), 1)
    os.rename(tmp_path / "img00.png", tmp_path / "frame.png")
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert scope["mask"].shape == (240, 320) and scope["mask"].dtype == np.uint8
    assert "detect" in scope["info"].ms


def test_default_segmenter_on_the_cpu_is_the_shipped_onnx():
    """No --model: the shipped network on onnxruntime on the CPU (about 2× faster than torch there); the .pt's
    torch network gives the same mask."""
    from facecap_core.segment.segmenter import DEFAULT_MODEL, Segmenter

    onnx_path = os.path.splitext(DEFAULT_MODEL)[0] + ".onnx"
    if not (os.path.isfile(DEFAULT_MODEL) and os.path.isfile(onnx_path)):
        pytest.skip("no shipped segmenter in models/")
    seg = segment_run.load_segmenter(None, "cpu")
    assert seg.backend == "onnxruntime" and os.path.samefile(seg.path, onnx_path)
    crop = np.full((1, 128, 128, 3), 90, np.uint8)
    cv2.ellipse(crop[0], (64, 68), (30, 38), 0, 0, 360, (200, 160, 140), -1)
    torch_seg = Segmenter.load(DEFAULT_MODEL, device="cpu")
    assert np.mean((seg.predict(crop) > 0.5) == (torch_seg.predict(crop) > 0.5)) > 0.995


def test_cli_segment_video(standin, tmp_path, monkeypatch):
    video = write_video(str(tmp_path / "clip.avi"), 6)
    calls = iter([np.array([[50.0, 30.0, 60.0, 60.0]])] + [np.zeros((0, 4))] * 10)
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: next(calls))
    out = str(tmp_path / "v")
    assert main(["segment", video, "--out", out, "--model", standin, "--device", "cpu"]) == 0
    files = sorted(os.listdir(out))
    assert files == [f"frame_{i:06d}.png" for i in range(6)]
    for f in files:  # frames after the first reuse its box (the detector 'misses' them)
        m = cv2.imread(os.path.join(out, f), cv2.IMREAD_UNCHANGED)
        assert m.shape == (120, 160) and m[60, 80] == 255


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "facecap_core.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_cli_segment_bad_inputs_are_one_line_errors(tmp_path):
    img_dir = write_images(str(tmp_path / "in"), 1)
    out = str(tmp_path / "o")
    missing = str(tmp_path / "nope.mp4")
    assert_one_line_error(run_cli("segment", missing, "--out", out), "input not found", missing)
    bad_video = tmp_path / "broken.mp4"
    bad_video.write_bytes(b"\x00not a video" * 100)
    assert_one_line_error(run_cli("segment", str(bad_video), "--out", out), "cannot read video", str(bad_video))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("segment", str(empty), "--out", out), "no images")
    assert_one_line_error(run_cli("segment", str(tmp_path / "*.jpg"), "--out", out), "no images match")
    no_model = str(tmp_path / "none.pt")
    assert_one_line_error(run_cli("segment", img_dir, "--out", out, "--model", no_model), "model not found", no_model)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"garbage, not a torch file")
    assert_one_line_error(run_cli("segment", img_dir, "--out", out, "--model", str(corrupt)), str(corrupt))
    assert not os.path.exists(out) or not os.listdir(out)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    assert_one_line_error(run_cli("segment", img_dir, "--out", str(a_file)), "cannot make the output folder",
                          str(a_file))
