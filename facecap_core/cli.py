"""`facecap` command line (design §6).

    facecap rig info [--rig PATH]      summary of the face rig
    facecap demo [--out DIR] [--frames N] [--no-blend]
                                       render a sample clip, track it from its pixels, write a take, a preview
                                       video and a .blend with the animated rig
    facecap data build --out DIR [--seed 0] [--faces D] [--occluders D] [--backgrounds D] [--kinds K,K]
                       [--count-synthetic N] [--max-video-frames N] [--shard-size N] [--limit N] [--resume]
                                       build a versioned training dataset (facecap_core.data.build)
    facecap data show DIR [--kind K] [--split S] [--n 64] --out SHEET.png
                                       contact sheet: image, mask tint, landmarks (green visible, red occluded)
    facecap data info DIR              the dataset manifest's counts table
    facecap segment INPUT --out DIR [--no-graphcut | --graphcut-sigma S] [--views 1|2|4] [--overlay] [--resume]
                                    [--model PATH] [--device auto|cpu|cuda]
                                       one PNG face mask per frame (255 = face) of an image, a folder/glob of
                                       images or a video (facecap_core.segment.run)
    facecap track INPUT --out TAKE.json [--masks DIR] [--preview OUT.mp4] [--no-segmentation] [--device D]
                                       track a video, image folder/glob or camera:N; writes a take
                                       (facecap_core.capture)
    facecap bench INPUT [--frames N]   per-stage ms and end-to-end fps beside the teacher's (facecap_core.capture)
    facecap serve [--host H] [--port N] [--token T]
                                       the engine as a ZeroMQ service for remote clients (facecap_core.capture.remote)

Expected errors (missing or corrupt files, no bpy) print one line on stderr and exit with status 1; commands
that do not exist yet exit with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys

from .fileformat import make_output_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_TRACKER = os.path.join(ROOT, "models", "tracker_dde.npz")


class CliError(RuntimeError):
    """An expected error: printed as one line, exit status 1."""


# --------------------------------------------------------------------------------------------------- rig info
def rig_summary(rig, path: str) -> str:
    import numpy as np

    tri_mat = np.bincount(rig.triangle_material.astype(int), minlength=4)
    explained = float(np.sum(rig.identity_variance))
    lines = [
        f"rig {rig.name}: {path}",
        f"  vertices   {len(rig.neutral)}",
        f"  triangles  {len(rig.triangles)} (skin {tri_mat[0]}, mouth {tri_mat[1]}, eye {tri_mat[2]}, "
        f"iris {tri_mat[3]})",
        f"  size       {np.ptp(rig.neutral[:, 0]):.1f} × {np.ptp(rig.neutral[:, 1]):.1f} × "
        f"{np.ptp(rig.neutral[:, 2]):.1f} cm (x × y × z, model frame)",
        f"  landmarks  {len(rig.landmark_vertices)}",
        f"  identity   {rig.identity_basis.shape[0]} modes, variance explained {100 * explained:.1f}% "
        f"(first 5: {', '.join(f'{100 * v:.1f}%' for v in rig.identity_variance[:5])})",
        f"  expressions {len(rig.expression_names)}:",
    ]
    names = list(rig.expression_names)
    mags = np.linalg.norm(rig.expression_deltas, axis=2).max(axis=1)  # largest vertex displacement, cm
    for i in range(0, len(names), 4):
        lines.append("    " + "  ".join(f"{n:<15}{m:4.2f}cm" for n, m in zip(names[i:i + 4], mags[i:i + 4])))
    lines.append("  provenance:")
    for key, value in (rig.provenance or {}).items():
        text = value if isinstance(value, str) else repr(value)
        lines.append(f"    {key}: {text if len(text) <= 200 else text[:197] + '...'}")
    return "\n".join(lines)


def cmd_rig_info(args) -> int:
    from .rig.model import load_rig

    rig = load_rig(args.rig)
    print(rig_summary(rig, args.rig or "rigs/fw46.npz"))
    return 0


# ------------------------------------------------------------------------------------------------------ demo
def cmd_demo(args) -> int:
    from .demo import DemoError, run_demo
    from .rig.model import DEFAULT_RIG_PATH, load_rig

    from .segment import ModelFileError as SegmentModelError
    from .track.cascade import ModelFileError as TrackerModelError

    rig_path = os.path.abspath(args.rig or DEFAULT_RIG_PATH)
    try:
        run_demo(load_rig(rig_path), rig_path, os.path.abspath(args.out), args.frames, not args.no_blend, args.python)
    except (DemoError, SegmentModelError, TrackerModelError) as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_data_build(args) -> int:
    from .data.build import SEG_MARGIN, ProjectEngine, Recipe, build_dataset
    from .data.dataset import KINDS
    from .data.paths import DEFAULT_BACKGROUNDS, DEFAULT_FACES, DEFAULT_OCCLUDERS

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise CliError(f"unknown dataset kind {', '.join(bad) or repr(args.kinds)} (kinds: {', '.join(KINDS)})")
    folders = {}
    for name, value, default in (("faces", args.faces, DEFAULT_FACES), ("occluders", args.occluders,
                                                                         DEFAULT_OCCLUDERS),
                                 ("backgrounds", args.backgrounds, DEFAULT_BACKGROUNDS)):
        path = os.path.abspath(value or default)
        if value == "none":
            folders[name] = None
        elif not os.path.isdir(path):
            print(f"facecap data build: {name} folder not found: {path}; building without it")
            folders[name] = None
        else:
            folders[name] = path
    recipe = Recipe(kinds=kinds, shard_size=args.shard_size, count_synthetic=args.count_synthetic,
                    max_video_frames=args.max_video_frames, seg_perturbed=args.perturbed,
                    seg_rectangles=args.perturbed if args.rectangles is None else args.rectangles,
                    seg_hands=args.hands, seg_occluders=args.other_occluders, seg_size=args.seg_size,
                    seg_margin=args.seg_margin or SEG_MARGIN,
                    track_size=args.track_size,
                    reenact_per_photo=args.reenact if folders["faces"] else 0, max_real=args.max_real)
    engine = ProjectEngine(faces=folders["faces"], occluders=folders["occluders"],
                           backgrounds=folders["backgrounds"], rig_path=args.rig, cache_dir=args.cache,
                           image_size=args.render_size, label_missing=args.label_missing,
                           stale_labels=args.stale_labels, log=print)
    d = engine.describe()
    print(f"sources: {d['real_labels']} real labels ({d['real_identities']} identities), {d['textures']} "
          f"{d['texture_kind']} textures, {d['backgrounds_loaded'] or 'procedural'} backgrounds, occluder cut-outs "
          f"{sum(d['occluder_cutouts'].values()) or 'none (procedural only)'}")
    report = build_dataset(args.out, engine, recipe, seed=args.seed, resume=args.resume, limit=args.limit,
                           progress=not args.no_progress, log=print)
    from .data.dataset import Dataset, counts_table

    print(counts_table(Dataset(report.out).manifest))
    print(f"built {report.out}: {report.written} shards written, {report.skipped} kept; {report.samples} samples in "
          f"{report.seconds:.1f} s ({report.rate:.1f} samples/s)")
    return 0


def cmd_data_show(args) -> int:
    import cv2
    import numpy as np

    from .data.dataset import Dataset, contact_sheet, sample_batch

    view = Dataset(args.dataset).view(args.kind, args.split)
    rng = np.random.default_rng(args.seed) if args.seed is not None else None
    sheet = contact_sheet(sample_batch(view, args.n, rng), columns=args.columns)
    out = os.path.abspath(args.out)
    make_output_folder(os.path.dirname(out), "the contact sheet's folder", CliError)
    if not cv2.imwrite(out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise CliError(f"cannot write {out} (is the extension .png?)")
    print(f"contact sheet of {min(args.n, len(view))} {args.kind}/{args.split} samples → {out}")
    return 0


def cmd_data_info(args) -> int:
    from .data.dataset import Dataset, counts_table

    print(counts_table(Dataset(args.dataset).manifest))
    return 0


# --------------------------------------------------------------------------------------------------- segment
def cmd_segment(args) -> int:
    from .detect import DetectorError, FaceDetector
    from .segment import ModelFileError
    from .segment.graphcut import GraphCutRefiner
    from .segment.run import InputError, load_segmenter, open_source, segment_source

    sigma = {} if args.graphcut_sigma is None else {"sigma": args.graphcut_sigma}
    if sigma and not sigma["sigma"] > 0:
        raise CliError(f"--graphcut-sigma must be > 0 (got {args.graphcut_sigma}; 50 is the default, 5 the paper's)")
    try:
        source = open_source(args.input)
        if args.model is not None and not os.path.isfile(args.model):
            raise CliError(f"segmenter model not found: {args.model} (train one with python -m "
                           "facecap_core.segment.train, or pass --model PATH)")
        segmenter = load_segmenter(args.model, args.device)
        segmenter.views = args.views
        detector = FaceDetector()
        refiner = None if args.no_graphcut else GraphCutRefiner(**sigma)
        report = segment_source(source, args.out, segmenter, detector, refiner, progress=not args.no_progress,
                                overlay=args.overlay, resume=args.resume)
    except (InputError, ModelFileError, DetectorError) as exc:
        raise CliError(str(exc)) from exc
    held = f", {report.held} on the previous frame's box" if report.held else ""
    held += f", {report.kept} kept from an earlier run" if report.kept else ""
    overlays = f"; check images in {os.path.join(args.out, 'overlay')}" if args.overlay else ""
    ms = 1e3 * report.seconds / max(report.frames - report.kept, 1)
    print(f"facecap segment: {report.frames} masks → {args.out} (face found in {report.with_face}{held}; graph cut "
          f"{'off' if args.no_graphcut else 'on'}; {ms:.1f} ms/frame{overlays})")
    return 0


# ----------------------------------------------------------------------------------------------------- track
def engine_options(args):
    """EngineOptions from the engine options of `facecap track` / `facecap bench` / `facecap serve`."""
    from .capture.session import EngineOptions

    return EngineOptions(segmentation=not args.no_segmentation, segmenter_model=args.segmenter_model,
                         tracker_model=args.tracker_model, focal=args.focal, smoothing=smoothing_strength(args),
                         device=args.device, mirror=getattr(args, "mirror", False))


def _engine_for(args):
    """(source, rig, tracker, engine) for `facecap track` / `facecap bench` from their common options."""
    from .capture.run import open_frames
    from .capture.session import EngineError, build_engine
    from .segment.run import InputError

    try:
        source = open_frames(args.input, mirror=getattr(args, "mirror", False))
        rig, tracker, engine = build_engine(source, engine_options(args))
    except (InputError, EngineError) as exc:
        raise CliError(str(exc)) from exc
    return source, rig, tracker, engine


def smoothing_strength(args) -> float:
    """The tracker's smoothing argument from --smoothing / --no-smoothing (0 = off)."""
    s = 0.0 if getattr(args, "no_smoothing", False) else float(getattr(args, "smoothing", 1.0))
    if not (s >= 0 and s == s):
        raise CliError(f"--smoothing must be 0 (off) or a positive strength, not {s}")
    return s


def cmd_track_remote(args) -> int:
    """`facecap track --remote ADDRESS`: the frames go to a `facecap serve` engine, the take is recorded here."""
    from .capture.recorder import TakeRecorder
    from .capture.remote import RemoteError, RemoteSession
    from .capture.run import open_frames
    from .segment.run import InputError

    if args.preview or args.masks:
        raise CliError("--preview and --masks need the local engine: leave out --remote")
    try:
        source = open_frames(args.input, mirror=args.mirror)
        session = RemoteSession(args.remote, source.width, source.height, source.fps, args.token,
                                smoothing=smoothing_strength(args), live=source.live)
    except (InputError, RemoteError) as exc:
        raise CliError(str(exc)) from exc
    recorder = TakeRecorder(args.out, args.input, source.fps, source.width, source.height, args.focal or 0.0)
    n = tracked = 0
    try:
        for frame in session.run(source.frames()):
            recorder.add(frame)
            n, tracked = n + 1, tracked + int(frame["tracked"])
    except (InputError, RemoteError) as exc:
        recorder.finish()
        raise CliError(f"{exc} (take {args.out} keeps {n} frames)") from exc
    except BaseException:
        recorder.abort()
        raise
    u, f = session.end()
    recorder.finish(identity=u, focal=f)
    print(f"facecap track: {n} frames → {args.out} via {args.remote} (face tracked in {tracked})")
    if tracked == 0:
        raise CliError(f"no face found in {args.input}: the take has only untracked frames")
    return 0


def cmd_track(args) -> int:
    from .capture.recorder import TakeRecorder
    from .capture.run import PreviewWriter, track_source
    from .segment.run import InputError

    if args.remote:
        return cmd_track_remote(args)
    source, rig, tracker, engine = _engine_for(args)
    try:
        preview = PreviewWriter(args.preview, source.fps, (source.width, source.height), rig, tracker) \
            if args.preview else None
    except InputError as exc:
        raise CliError(str(exc)) from exc
    if args.masks:
        make_output_folder(args.masks, "the masks folder", CliError)
    recorder = TakeRecorder(args.out, args.input, source.fps, source.width, source.height, tracker.focal)
    try:
        report = track_source(source, args.out, engine, recorder, preview, args.masks,
                              progress=not args.no_progress)
    except BaseException:
        recorder.abort()  # the journal keeps every frame so far
        tracker.close()
        raise
    tracker.close()
    recorder.finish(identity=tracker.identity, focal=tracker.focal)
    ms = 1e3 * report.seconds / max(report.frames, 1)
    print(f"facecap track: {report.frames} frames → {args.out} (face tracked in {report.tracked}"
          f"{f', {report.dropped} live frames dropped' if report.dropped else ''}; {ms:.1f} ms/frame, "
          f"{1e3 / max(ms, 1e-9):.1f} fps)")
    if report.error:
        raise CliError(report.error)
    if report.tracked == 0:
        raise CliError(f"no face found in {args.input}: the take has only untracked frames (is the face frontal "
                       "and large enough at the start?)")
    return 0


def cmd_bench(args) -> int:
    from .capture.bench import run_bench
    from .segment.run import InputError

    source, _rig, tracker, engine = _engine_for(args)
    try:
        print(run_bench(source, engine, tracker, args.frames, teacher=not args.no_teacher))
    except (InputError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        tracker.close()
    return 0


def cmd_serve(args) -> int:
    import dataclasses
    from types import SimpleNamespace

    from .capture.remote import EngineServer, RemoteError
    from .capture.session import EngineError, build_engine

    options = engine_options(args)

    def make_engine(width, height, fps, smoothing, live):
        source = SimpleNamespace(width=width, height=height, fps=fps, live=live)
        return build_engine(source, dataclasses.replace(options, smoothing=smoothing))[2]

    try:
        make_engine(640, 480, 30.0, 1.0, False).tracker.close()  # a missing or corrupt model: say so now
        server = EngineServer(make_engine, args.host, args.port, args.token)
    except (EngineError, RemoteError) as exc:
        raise CliError(str(exc)) from exc
    print(f"facecap serve: engine listening on {server.address} "
          f"({'token required' if args.token else 'loopback, no token'}); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    finally:
        server.close()
    return 0


# ---------------------------------------------------------------------------------------------------- parser
def _engine_options(p) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-segmentation", action="store_true")
    p.add_argument("--tracker-model", default=DEFAULT_TRACKER,
                   help="DDE regressor (default: models/tracker_dde.npz; with --no-segmentation "
                        "models/tracker_dde_nomask.npz)")
    p.add_argument("--segmenter-model", default=os.path.join(ROOT, "models", "segmenter_lite.onnx"),
                   help="segmenter model, .onnx (CPU, onnxruntime) or .pt (default: models/segmenter_lite.onnx)")
    p.add_argument("--focal", type=float, default=None, help="focal length in px if known (else a 60° guess, "
                                                               "refined on key-frames; the regression then works "
                                                               "through an 8× longer lens, as the teacher's "
                                                               "labels do, and reports poses in the guess's camera)")



def _margin_range(text: str) -> tuple:
    """'LO,HI' with 1 <= LO <= HI: a crop side as a multiple of the landmark box's side."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. 1.5,2.0), got {text!r}") from None
    if not 1.0 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI (a crop at least as large as the face), got {text!r}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facecap", description="Real-time facial performance capture from RGB video.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("track", help="track a video, image folder/glob or camera:N; writes a take")
    p.add_argument("input")
    p.add_argument("--out", required=True, metavar="TAKE.json")
    p.add_argument("--masks", metavar="DIR")
    p.add_argument("--preview", metavar="OUT.mp4")
    _engine_options(p)
    p.add_argument("--mirror", action="store_true", help="mirror a live camera image")
    p.add_argument("--smoothing", type=float, default=1.0, metavar="S",
                   help="One Euro smoothing strength of pose and expressions: 1 the default, 2 twice as smooth at "
                        "rest (and slower to follow), 0 off. Smoothed takes keep the unfiltered values too, under "
                        "each frame's 'raw'")
    p.add_argument("--no-smoothing", action="store_true", help="the same as --smoothing 0")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--remote", metavar="tcp://HOST:PORT", help="use a `facecap serve` engine instead of this one")
    p.add_argument("--token", default=None, help="the remote engine's access token")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("segment", help="write one PNG face mask per frame (255 = face)")
    p.add_argument("input", help="an image, a folder or glob of images, or a video file")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", default=None,
                   help="segmenter model, .pt or .onnx (default: the shipped lite model, models/segmenter_lite.onnx "
                        "on onnxruntime on the CPU, about 2× faster than torch there; the .pt on CUDA)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-graphcut", action="store_true", help="threshold the network's probability at 0.5 instead")
    p.add_argument("--graphcut-sigma", type=float, default=None, metavar="S",
                   help="the graph cut's colour scale σ (default 50, tuned on validation faces; 5 = the paper's)")
    p.add_argument("--views", type=int, choices=(1, 2, 4), default=2,
                   help="views of each crop the network sees, probabilities averaged: 1 = the crop (as live "
                        "capture), 2 = + its centre enlarged 1.21× and mirrored (default; better masks, most "
                        "under occluders), 4 = + the mirrored crop and the enlarged centre (4× network time)")
    p.add_argument("--overlay", action="store_true",
                   help="also write DIR/overlay/<stem>.jpg: the frame with the face tinted green and outlined, the "
                        "crop square in yellow (to check the masks by eye)")
    p.add_argument("--resume", action="store_true",
                   help="keep the masks already in DIR and segment only the frames without one (an interrupted "
                        "run goes on where it stopped; use the same options)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("serve", help="run the engine as a service for a remote client")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=None, help="access token clients must send (required off loopback)")
    _engine_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="per-stage timings and end-to-end fps")
    p.add_argument("input")
    p.add_argument("--frames", type=int, default=150, help="at most this many frames (default 150)")
    p.add_argument("--no-teacher", action="store_true", help="skip the MediaPipe reference")
    _engine_options(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="render a sample clip, track it, write a take, a preview and a .blend")
    p.add_argument("--rig", default=None, help="rig file (default: rigs/fw46.npz)")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--frames", type=int, default=60, help="number of frames at 30 fps (default: 60)")
    p.add_argument("--no-blend", action="store_true", help="skip the .blend (no bpy needed)")
    p.add_argument("--python", default=None, help="Python with bpy for the .blend (default: this one)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("data", help="training datasets: build, show, info")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_sub.required = True
    q = data_sub.add_parser("build", help="build a versioned dataset (deterministic from --seed, resumable)")
    q.add_argument("--out", default="out/dataset", help="output folder (default: out/dataset)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--faces", default=None, help="real faces folder with manifest.csv (default: ../shared/faces; "
                                                 "'none' to skip)")
    q.add_argument("--occluders", default=None, help="occluders folder (default: ../shared/occluders; 'none')")
    q.add_argument("--backgrounds", default=None, help="backgrounds folder (default: ../shared/backgrounds; 'none')")
    q.add_argument("--kinds", default="segmentation,tracking", help="comma-separated: segmentation,tracking")
    q.add_argument("--count-synthetic", type=int, default=2000, help="synthetic base renders, all splits")
    q.add_argument("--max-video-frames", type=int, default=30, help="labelled frames kept per clip")
    q.add_argument("--perturbed", type=int, default=1,
                   help="perturbed copies (and rectangle copies) per base sample (paper: ≈10)")
    q.add_argument("--rectangles", type=int, default=None,
                   help="rectangle-occluded copies per base sample (default: as --perturbed)")
    q.add_argument("--hands", type=float, default=0.5, help="hand-occluded copies per base sample (may be fractional)")
    q.add_argument("--other-occluders", type=float, default=0.5,
                   help="copies with hair, glasses, objects or worn masks per base sample (may be fractional)")
    q.add_argument("--shard-size", type=int, default=512)
    q.add_argument("--limit", type=int, default=None, help="at most N samples per kind and split (quick builds)")
    q.add_argument("--seg-size", type=int, default=128)
    q.add_argument("--seg-margin", type=_margin_range, default=None, metavar="LO,HI",
                   help="segmentation crops of real faces: side / landmark-box side, drawn uniformly from LO-HI "
                        "(default: data.build.SEG_MARGIN, 1.25-2.3; the pipeline crops at 1.75)")
    q.add_argument("--track-size", type=int, default=160)
    q.add_argument("--render-size", type=int, default=160, help="synthetic render size before cropping")
    q.add_argument("--reenact", type=int, default=1, help="re-enactment renders per single-face real photo")
    q.add_argument("--max-real", type=int, default=None, help="at most N real base samples per split")
    q.add_argument("--label-missing", action="store_true",
                   help="run the teacher on faces without cached labels (slow; default: use cached labels only)")
    q.add_argument("--stale-labels", action="store_true",
                   help="where the current rig has no cached labels, use those cached for another rig version")
    q.add_argument("--rig", default=None, help="rig file (default: rigs/fw46.npz)")
    q.add_argument("--cache", default=os.path.join(ROOT, "cache"),
                   help="cache folder (real_labels/, teacher/, textures/, occluders/; default: cache)")
    q.add_argument("--resume", action="store_true", help="keep the complete shards already in --out")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_data_build)
    q = data_sub.add_parser("show", help="write a contact sheet PNG of a dataset")
    q.add_argument("dataset", metavar="DIR")
    q.add_argument("--kind", default="segmentation")
    q.add_argument("--split", default="train")
    q.add_argument("--n", type=int, default=64)
    q.add_argument("--columns", type=int, default=8)
    q.add_argument("--seed", type=int, default=None, help="random samples (default: evenly spaced)")
    q.add_argument("--out", required=True, metavar="SHEET.png")
    q.set_defaults(func=cmd_data_show)
    q = data_sub.add_parser("info", help="print the dataset manifest's counts")
    q.add_argument("dataset", metavar="DIR")
    q.set_defaults(func=cmd_data_info)

    p = sub.add_parser("rig", help="face rig tools")
    rig_sub = p.add_subparsers(dest="rig_command", metavar="RIG_COMMAND")
    rig_sub.required = True
    q = rig_sub.add_parser("info", help="print the rig summary")
    q.add_argument("--rig", default=None, help="rig file (default: rigs/fw46.npz)")
    q.set_defaults(func=cmd_rig_info)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("track", "bench", "demo") and "numpy" not in sys.modules:
        # the engine runs its stages on threads of its own: multi-threaded BLAS under them only oversubscribes
        # the cores (measured: an Eq. 3 solve 60× slower on 2 cores while tracking)
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    from .data.dataset import DatasetError
    from .rig.model import RigFileError
    from .take import TakeFileError

    try:
        return int(args.func(args) or 0)
    except (CliError, RigFileError, TakeFileError, DatasetError) as exc:
        print(f"facecap: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("facecap: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
