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


class _Clock:
    """Wall and process-CPU time of a block (CPU time is less disturbed by other processes on a shared machine)."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


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

    def row(name, clocks, rms="", mae=""):
        wall = [k.wall for k in clocks]
        cpu = [k.cpu for k in clocks]
        rows.append((name, *_stats(wall), np.median(cpu) * 1e3, rms, mae))

    K = np.array([[default_focal(T.SIZE), 0, 320], [0, default_focal(T.SIZE), 240], [0, 0, 1.0]])
    obj = fr.points(fr.landmark_vertices, np.zeros(46), np.zeros(50))
    clocks = []
    for s in samples:
        with _Clock() as k:
            cv2.solvePnP(obj, s["p"], K, None, flags=cv2.SOLVEPNP_ITERATIVE)
        clocks.append(k)
    row("reference: cv2.solvePnP (73 pts)", clocks)

    cases = (("Eq.4 u/f fixed, cold start", "fixed"), ("Eq.4 u/f fixed, warm (tracking)", "warm"),
             ("Eq.4 u/f free, cold start", "free"))
    for label, mode in cases:
        clocks, rms, mae = [], [], []
        for s in samples:
            kw = dict(u=s["u"], f=s["f"], fix_identity=True, fix_focal=True) if mode != "free" else {}
            if mode == "warm":  # previous frame: pose a degree and a few mm off, expression 0.1 off
                kw.update(x0=np.clip(s["x"] + rng.normal(0, 0.1, 46), 0, 1),
                          pose0=(s["R"] @ F.rotvec_to_matrix(rng.normal(0, np.radians(1), 3)),
                                 s["t"] + rng.normal(0, 0.3, 3)))
            with _Clock() as k:
                r = F.fit_landmarks(s["p"], T.SIZE, fr, **kw)
            clocks.append(k)
            rms.append(r.rms)
            mae.append(np.abs(r.expression - s["x"]).mean())
        row(label, clocks, f"{np.median(rms):.3f}", f"{np.median(mae):.4f}")

    clocks, ferr, rmss = [], [], []
    for _ in range(max(3, args.n // 5)):
        u_true = rng.normal(0, 0.5, 50)
        f_true = default_focal(T.SIZE) * 1.15
        kfs = []
        for _ in range(10):
            s = T._sample(fr, rng)
            verts, _ = fr.vertices_for("73")
            verts[:17] = F.silhouette_vertices(fr, s["R"], s["t"], f_true, T.SIZE, s["x"], u_true)
            p, _ = F._project(fr.points(verts, s["x"], u_true), s["R"], s["t"], f_true, T.C)
            kfs.append((p, s["R"], s["t"], s["x"]))
        with _Clock() as k:
            res = F.solve_identity_focal(kfs, T.SIZE, fr, np.zeros(50), default_focal(T.SIZE),
                                         refine_expression=False)
        clocks.append(k)
        ferr.append(abs(res.focal / f_true - 1))
        rmss.append(res.rms)
    row("Eq.3 10 key-frames (u, f, poses)", clocks, f"{np.median(rmss):.3f}", f"f err {np.median(ferr):.3f}")

    print(f"rig: {which}; {args.n} samples; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'case':34s} {'wall med ms':>11s} {'wall p90':>9s} {'CPU med ms':>10s} {'RMS px':>7s} {'expr MAE':>13s}")
    for name, med, p90, cpu, a, b in rows:
        print(f"{name:34s} {med:11.2f} {p90:9.2f} {cpu:10.2f} {a:>7s} {b:>13s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
