"""Timing and accuracy of the Eq. 4 single-frame fit and the Eq. 3 key-frame solve on this CPU.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fit.py [--n 30]

Targets: ≤ 20 ms per single-frame fit (73 points), ≤ 50 ms for Eq. 3 over 10 key-frames. A plain cv2.solvePnP call
is timed in the same run as a reference for the machine's speed. Uses rigs/fw46.npz when present, else the tests'
stand-in rig. Small problems: run with single-threaded BLAS (threaded BLAS on a busy 2-core machine is far slower).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from facecap_core.rig import fit as F  # noqa: E402
from facecap_core.rig.geometry import default_focal  # noqa: E402


def _stats(ts):
    a = np.array(ts) * 1e3
    return np.median(a), np.percentile(a, 90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    args = ap.parse_args(argv)
    import test_fit as T  # the synthetic sampler and stand-in rig

    path = os.path.join(ROOT, "rigs", "fw46.npz")
    if os.path.exists(path):
        from facecap_core.rig.model import load_rig
        rig, which = load_rig(path), "rigs/fw46.npz"
    else:
        rig, which = T._standin_rig(), "stand-in rig"
    fr = F.FitRig(rig)
    rng = np.random.default_rng(0)
    samples = [T._sample(fr, rng) for _ in range(args.n)]
    rows = []

    ts = []
    K = np.array([[default_focal(T.SIZE), 0, 320], [0, default_focal(T.SIZE), 240], [0, 0, 1.0]])
    obj = fr.points(fr.landmark_vertices, np.zeros(46), np.zeros(50))
    for s in samples:
        t0 = time.perf_counter()
        cv2.solvePnP(obj, s["p"], K, None, flags=cv2.SOLVEPNP_ITERATIVE)
        ts.append(time.perf_counter() - t0)
    rows.append(("reference: cv2.solvePnP (73 pts)", *_stats(ts), "", ""))

    for label, free in (("Eq.4 fit, u/f fixed (tracking)", False), ("Eq.4 fit, u/f free", True)):
        ts, rms, mae = [], [], []
        for s in samples:
            kw = {} if free else dict(u=s["u"], f=s["f"], fix_identity=True, fix_focal=True)
            t0 = time.perf_counter()
            r = F.fit_landmarks(s["p"], T.SIZE, fr, **kw)
            ts.append(time.perf_counter() - t0)
            rms.append(r.rms)
            mae.append(np.abs(r.expression - s["x"]).mean())
        rows.append((label, *_stats(ts), f"{np.median(rms):.3f}", f"{np.median(mae):.4f}"))

    ts, ferr = [], []
    for rep in range(max(3, args.n // 5)):
        u_true = rng.normal(0, 0.5, 50)
        f_true = default_focal(T.SIZE) * 1.15
        kfs = []
        for _ in range(10):
            s = T._sample(fr, rng)
            verts, _ = fr.vertices_for("73")
            verts[:17] = F.silhouette_vertices(fr, s["R"], s["t"], f_true, T.SIZE, s["x"], u_true)
            p, _ = F._project(fr.points(verts, s["x"], u_true), s["R"], s["t"], f_true, T.C)
            kfs.append((p, s["R"], s["t"], s["x"]))
        t0 = time.perf_counter()
        res = F.solve_identity_focal(kfs, T.SIZE, fr, np.zeros(50), default_focal(T.SIZE), refine_expression=False)
        ts.append(time.perf_counter() - t0)
        ferr.append(abs(res.focal / f_true - 1))
    rows.append(("Eq.3 over 10 key-frames", *_stats(ts), f"{res.rms:.3f}", f"f err {np.median(ferr):.3f}"))

    print(f"rig: {which}; {args.n} samples; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    print(f"{'case':36s} {'median ms':>10s} {'p90 ms':>8s} {'RMS px':>8s} {'expr MAE':>14s}")
    for name, med, p90, a, b in rows:
        print(f"{name:36s} {med:10.2f} {p90:8.2f} {a:>8s} {b:>14s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
