"""Random ferns for one cascade stage (paper §5; Cao et al. 2012/2014 two-level boosted regression).

A fern thresholds F feature differences f[m_b] − f[n_b] into an F-bit bin index and stores one update per bin.
Stage training (the second level of boosting, on fixed features):

1. the regression residual Y (N, d) is in the stage's PCA coordinates (see cascade.py), so a fern's bin outputs
   are small r-vectors (stored as float16) and the shipped model stays small;
2. each of the F pairs is the one whose difference correlates best with a random projection Y·v of the residual,
   from the feature covariance computed once per stage (corr(y, f_m − f_n) needs only cov(y, f), var(f), cov(f));
3. each threshold is a random quantile (25–75 %) of that difference, so bits split the data;
4. each bin stores Σ Y / (|bin| + β) — the mean with shrinkage β (few samples → smaller update);
5. the residual is reduced by the fern's output before the next fern is fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass
class Ferns:
    """K ferns of depth F: pairs (K, F, 2) feature indices, thresholds (K, F), outputs (K, 2^F, r)."""
    pairs: np.ndarray
    thresholds: np.ndarray
    outputs: np.ndarray

    @property
    def depth(self) -> int:
        return self.pairs.shape[1]


@numba.njit(cache=True, nogil=True, inline="always")
def _bin(features, i, pairs_k, thr_k):
    """The bin of estimate i in one fern: bit d set when f[m_d] − f[n_d] > threshold_d."""
    b = 0
    for d in range(pairs_k.shape[0]):
        if features[i, pairs_k[d, 0]] - features[i, pairs_k[d, 1]] > thr_k[d]:
            b |= 1 << d
    return b


@numba.njit(cache=True, nogil=True)
def fern_sum(features, pairs, thresholds, outputs, out):
    """out (N, r) += Σ_k outputs[k, bin_k] (the run-time path: no bin array kept)."""
    for i in range(features.shape[0]):
        for k in range(pairs.shape[0]):
            b = _bin(features, i, pairs[k], thresholds[k])
            for j in range(outputs.shape[2]):
                out[i, j] += outputs[k, b, j]


@numba.njit(cache=True, nogil=True)
def _bin_of(features, pairs_k, thr_k, out):
    for i in range(features.shape[0]):
        out[i] = _bin(features, i, pairs_k, thr_k)


@numba.njit(cache=True, nogil=True)
def _fit_bins(residual, bins, n_bins, beta, out_sum, counts):
    for i in range(residual.shape[0]):
        b = bins[i]
        counts[b] += 1
        for j in range(residual.shape[1]):
            out_sum[b, j] += residual[i, j]
    for b in range(n_bins):
        for j in range(residual.shape[1]):
            out_sum[b, j] /= counts[b] + beta
    for i in range(residual.shape[0]):
        b = bins[i]
        for j in range(residual.shape[1]):
            residual[i, j] -= out_sum[b, j]


class StageStatistics:
    """Per-stage feature statistics used to choose pairs: centred features on a subsample, their variances and
    covariance."""

    def __init__(self, features: np.ndarray, rng: np.random.Generator, max_samples: int = 40000):
        n = len(features)
        self.rows = np.sort(rng.choice(n, min(n, max_samples), replace=False))
        F = features[self.rows].astype(np.float32)
        self.mean = F.mean(0)
        self.centred = F - self.mean
        cov = (self.centred.T @ self.centred) / len(F)
        self.cov = cov.astype(np.float64)
        self.var = np.diag(self.cov).copy()
        # var(f_m − f_n) for every pair, floored so constant features never win
        self.pair_var = np.maximum(self.var[:, None] + self.var[None, :] - 2 * self.cov, 1e-6)


def choose_pairs(stats: StageStatistics, residual: np.ndarray, depth: int, rng: np.random.Generator):
    """F feature pairs (F, 2) best correlated with random projections of the residual, and their thresholds (F,)."""
    Y = residual[stats.rows]
    V = rng.normal(size=(Y.shape[1], depth))
    V /= np.linalg.norm(V, axis=0, keepdims=True)
    y = Y @ V  # (n, F)
    y -= y.mean(0)
    cov_yf = (stats.centred.T @ y.astype(np.float32)).astype(np.float64) / len(y)  # (P, F)
    var_y = np.maximum((y ** 2).mean(0), 1e-12)
    pairs = np.empty((depth, 2), np.int32)
    thresholds = np.empty(depth, np.float32)
    for b in range(depth):
        c = cov_yf[:, b]
        corr = np.abs(c[:, None] - c[None, :]) / np.sqrt(var_y[b] * stats.pair_var)
        np.fill_diagonal(corr, -1.0)
        m, n = np.unravel_index(int(np.argmax(corr)), corr.shape)
        pairs[b] = m, n
        diff = stats.centred[:, m] - stats.centred[:, n] + (stats.mean[m] - stats.mean[n])
        thresholds[b] = np.quantile(diff, rng.uniform(0.25, 0.75))
    return pairs, thresholds


def fit_ferns(features: np.ndarray, residual: np.ndarray, n_ferns: int, depth: int, beta: float,
              rng: np.random.Generator, progress=None) -> Ferns:
    """Fit K ferns greedily to `residual` (N, r) on `features` (N, P); the residual is reduced in place."""
    features = np.ascontiguousarray(features, np.float32)
    stats = StageStatistics(features, rng)
    n_bins = 1 << depth
    pairs = np.empty((n_ferns, depth, 2), np.int32)
    thresholds = np.empty((n_ferns, depth), np.float32)
    outputs = np.empty((n_ferns, n_bins, residual.shape[1]), np.float32)
    bins = np.empty(len(features), np.int32)
    for k in range(n_ferns):
        pairs[k], thresholds[k] = choose_pairs(stats, residual, depth, rng)
        _bin_of(features, pairs[k], thresholds[k], bins)
        out_sum = np.zeros((n_bins, residual.shape[1]))
        _fit_bins(residual, bins, n_bins, float(beta), out_sum, np.zeros(n_bins, np.int64))
        outputs[k] = out_sum
        if progress is not None:
            progress(k)
    return Ferns(pairs=pairs, thresholds=thresholds, outputs=outputs)
