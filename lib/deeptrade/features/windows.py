"""Rolling-window primitives for features that depend on a fixed window only (no recursion).

Each primitive reads an "extended" array `x` (up to `history` older bars, then the block being
computed) and writes one output per position p in [s, len(x)): the value for the window
x[p-w+1 .. p], or NaN when p < w-1 (not enough bars yet). The live path calls the same code
with the last bars it kept as history, so its output equals the batch output bit for bit.

Every window is summed in the same fixed order (newest first) for every position, and the
work is done in blocks of positions held in small local arrays, so the inner loops run over
contiguous memory across positions: they vectorize and stay in L1. All results are exact
window computations (no running sums, hence no drift) and an all-equal window gives
exactly zero spread.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

BLOCK = 256
NAN = np.nan
# TA-Lib 0.8's relative dead-zone (TA_IS_ZERO_SCALED).
TA_EPSILON = 1e-14


@njit(cache=True, error_model="numpy")
def window_sum(x: np.ndarray, w: int, s: int, out: np.ndarray) -> None:
    """out[p - s] = sum of x[p-w+1 .. p]."""
    m = x.shape[0]
    acc = np.empty(BLOCK)
    for b0 in range(s, m, BLOCK):
        nb = min(BLOCK, m - b0)
        lo = min(max(b0, w - 1) - b0, nb)  # first position with a full window
        a = acc[lo:nb]
        a[:] = 0.0
        for q in range(w):
            # Slices keep every index provably non-negative: the loops vectorize.
            src = x[b0 + lo - q : b0 + nb - q]
            for p in range(nb - lo):
                a[p] += src[p]
        _emit(acc, lo, nb, out[b0 - s : b0 - s + nb])


@njit(cache=True, error_model="numpy", inline="always")
def _emit(acc: np.ndarray, lo: int, nb: int, out: np.ndarray) -> None:
    for p in range(nb):
        out[p] = acc[p] if p >= lo else NAN


@njit(cache=True, error_model="numpy")
def window_mean_ss(x: np.ndarray, w: int, s: int, mean: np.ndarray, ss: np.ndarray) -> None:
    """Two-pass moments of the window around its newest value x[p].

    mean[p - s] = mean of (x[p-q] - x[p]); ss[p - s] = sum of squared deviations from the
    window mean. Shifting by the newest value keeps precision for large levels (OBV) and
    makes a flat window exactly 0. The z-score of the newest value is -mean / sqrt(ss/(w-1)).
    """
    m = x.shape[0]
    acc = np.empty(BLOCK)
    acc2 = np.empty(BLOCK)
    inv = 1.0 / w
    for b0 in range(s, m, BLOCK):
        nb = min(BLOCK, m - b0)
        lo = min(max(b0, w - 1) - b0, nb)
        a = acc[lo:nb]
        a2 = acc2[lo:nb]
        newest = x[b0 + lo : b0 + nb]
        a[:] = 0.0
        a2[:] = 0.0
        for q in range(w):
            src = x[b0 + lo - q : b0 + nb - q]
            for p in range(nb - lo):
                a[p] += src[p] - newest[p]
        for p in range(nb - lo):
            a[p] *= inv
        for q in range(w):
            src = x[b0 + lo - q : b0 + nb - q]
            for p in range(nb - lo):
                d = src[p] - newest[p] - a[p]
                a2[p] += d * d
        _emit(acc, lo, nb, mean[b0 - s : b0 - s + nb])
        _emit(acc2, lo, nb, ss[b0 - s : b0 - s + nb])


@njit(cache=True, error_model="numpy")
def window_max(x: np.ndarray, w: int, s: int, out: np.ndarray) -> None:
    m = x.shape[0]
    acc = np.empty(BLOCK)
    for b0 in range(s, m, BLOCK):
        nb = min(BLOCK, m - b0)
        lo = min(max(b0, w - 1) - b0, nb)
        a = acc[lo:nb]
        a[:] = x[b0 + lo : b0 + nb]
        for q in range(1, w):
            src = x[b0 + lo - q : b0 + nb - q]
            for p in range(nb - lo):
                a[p] = max(a[p], src[p])
        _emit(acc, lo, nb, out[b0 - s : b0 - s + nb])


@njit(cache=True, error_model="numpy")
def window_min(x: np.ndarray, w: int, s: int, out: np.ndarray) -> None:
    m = x.shape[0]
    acc = np.empty(BLOCK)
    for b0 in range(s, m, BLOCK):
        nb = min(BLOCK, m - b0)
        lo = min(max(b0, w - 1) - b0, nb)
        a = acc[lo:nb]
        a[:] = x[b0 + lo : b0 + nb]
        for q in range(1, w):
            src = x[b0 + lo - q : b0 + nb - q]
            for p in range(nb - lo):
                a[p] = min(a[p], src[p])
        _emit(acc, lo, nb, out[b0 - s : b0 - s + nb])


@njit(cache=True, error_model="numpy")
def window_skew_kurt(r: np.ndarray, w: int, s: int, skew: np.ndarray, kurt: np.ndarray) -> None:
    """Bias-corrected skew (G1) and excess kurtosis (G2), as pandas/scipy; 0 on a flat window.

    Two passes: the mean, then the central power sums. A NaN return in the window (the first
    bar has none) gives NaN.
    """
    m = r.shape[0]
    mu_ = np.empty(BLOCK)
    m2_ = np.empty(BLOCK)
    m3_ = np.empty(BLOCK)
    m4_ = np.empty(BLOCK)
    n = float(w)
    skew_c = math.sqrt(n * (n - 1.0)) / (n - 2.0)
    kurt_a = (n + 1.0) * n * (n - 1.0) / ((n - 2.0) * (n - 3.0))
    kurt_b = 3.0 * (n - 1.0) ** 2 / ((n - 2.0) * (n - 3.0))
    for b0 in range(s, m, BLOCK):
        nb = min(BLOCK, m - b0)
        lo = min(max(b0, w - 1) - b0, nb)
        k = nb - lo
        mu, m2, m3, m4 = mu_[:k], m2_[:k], m3_[:k], m4_[:k]
        mu[:] = 0.0
        m2[:] = 0.0
        m3[:] = 0.0
        m4[:] = 0.0
        for q in range(w):
            src = r[b0 + lo - q : b0 + nb - q]
            for p in range(k):
                mu[p] += src[p]
        for p in range(k):
            mu[p] /= n
        for q in range(w):
            src = r[b0 + lo - q : b0 + nb - q]
            for p in range(k):
                d = src[p] - mu[p]
                d2 = d * d
                m2[p] += d2
                m3[p] += d2 * d
                m4[p] += d2 * d2
        base = b0 - s
        for p in range(lo):
            skew[base + p] = NAN
            kurt[base + p] = NAN
        for p in range(k):
            i = base + lo + p
            if m2[p] <= 1e-28 * mu[p] * mu[p] * n:
                # Flat: every return equal (up to the rounding of their mean).
                skew[i] = 0.0
                kurt[i] = 0.0
            else:
                v2 = m2[p] / n
                skew[i] = skew_c * (m3[p] / n) / (v2 * math.sqrt(v2))
                kurt[i] = kurt_a * m4[p] / (m2[p] * m2[p]) - kurt_b


@njit(cache=True, error_model="numpy")
def window_cci(tp: np.ndarray, w: int, s: int, out: np.ndarray) -> None:
    """TA-Lib CCI: (tp - mean) / (0.015 * mean absolute deviation); 0 on a flat window.

    TA-Lib sums its window in circular-buffer order; the fixed newest-first order here agrees
    with it to a few ulp of the mean.
    """
    m = tp.shape[0]
    avg_ = np.empty(BLOCK)
    mad_ = np.empty(BLOCK)
    inv = 1.0 / w
    for b0 in range(s, m, BLOCK):
        nb = min(BLOCK, m - b0)
        lo = min(max(b0, w - 1) - b0, nb)
        k = nb - lo
        avg, mad = avg_[:k], mad_[:k]
        avg[:] = 0.0
        mad[:] = 0.0
        for q in range(w):
            src = tp[b0 + lo - q : b0 + nb - q]
            for p in range(k):
                avg[p] += src[p]
        for p in range(k):
            avg[p] *= inv
        for q in range(w):
            src = tp[b0 + lo - q : b0 + nb - q]
            for p in range(k):
                mad[p] += abs(src[p] - avg[p])
        base = b0 - s
        for p in range(lo):
            out[base + p] = NAN
        newest = tp[b0 + lo : b0 + nb]
        for p in range(k):
            a = avg[p]
            md = mad[p] * inv
            dev = newest[p] - a
            scale = TA_EPSILON * abs(a)
            out[base + lo + p] = dev / (0.015 * md) if abs(dev) > scale and abs(md) > scale else 0.0


# --- Feature functions built on the primitives (same extended-array convention).


@njit(cache=True, error_model="numpy")
def range_vol(
    park: np.ndarray, gk: np.ndarray, w: int, s: int, out_park: np.ndarray, out_gk: np.ndarray
) -> None:
    """Parkinson and Garman-Klass volatility from the per-bar terms (see pipeline)."""
    window_sum(park, w, s, out_park)
    window_sum(gk, w, s, out_gk)
    scale = 1.0 / (w * 4.0 * math.log(2.0))
    for i in range(out_park.shape[0]):
        out_park[i] = math.sqrt(max(out_park[i], 0.0) * scale)
        out_gk[i] = math.sqrt(max(out_gk[i] / w, 0.0))


@njit(cache=True, error_model="numpy")
def stochastic_fast_k(
    hi: np.ndarray, lo: np.ndarray, cl: np.ndarray, w: int, s: int, out: np.ndarray
) -> None:
    """TA-Lib fast %K: 100 (close - lowest low) / (highest high - lowest low); 0 if flat."""
    n = cl.shape[0] - s
    hh = np.empty(n)
    ll = np.empty(n)
    window_max(hi, w, s, hh)
    window_min(lo, w, s, ll)
    for i in range(n):
        rng = hh[i] - ll[i]
        if abs(rng) <= TA_EPSILON * (abs(hh[i]) + abs(ll[i])):
            out[i] = 0.0
        else:
            out[i] = ((cl[s + i] - ll[i]) / rng) * 100.0  # NaN during warm-up


@njit(cache=True, error_model="numpy")
def williams_r(hi: np.ndarray, lo: np.ndarray, cl: np.ndarray, w: int, s: int, out: np.ndarray):
    """TA-Lib 0.8 WILLR: -100 (highest - close) / (highest - lowest), clamped; 0 if flat."""
    n = cl.shape[0] - s
    hh = np.empty(n)
    ll = np.empty(n)
    window_max(hi, w, s, hh)
    window_min(lo, w, s, ll)
    for i in range(n):
        rng = hh[i] - ll[i]
        if abs(rng) <= TA_EPSILON * (abs(hh[i]) + abs(ll[i])):
            out[i] = 0.0
        else:
            v = ((hh[i] - cl[s + i]) / rng) * -100.0
            out[i] = min(max(v, -100.0), 0.0) if v == v else NAN


@njit(cache=True, error_model="numpy")
def vwap_deviation(
    pv: np.ndarray, vol: np.ndarray, cl: np.ndarray, w: int, s: int, out: np.ndarray
) -> None:
    """close / (sum of price*volume / sum of volume) - 1 over the window; 0 without volume."""
    n = cl.shape[0] - s
    spv = np.empty(n)
    sv = np.empty(n)
    window_sum(pv, w, s, spv)
    window_sum(vol, w, s, sv)
    for i in range(n):
        if sv[i] > 0.0:
            out[i] = cl[s + i] / (spv[i] / sv[i]) - 1.0
        else:
            out[i] = sv[i]  # 0 without volume, NaN during warm-up


@njit(cache=True, error_model="numpy")
def lagged(x: np.ndarray, k: int, s: int, out: np.ndarray) -> None:
    """out[p - s] = x[p - k], NaN where that bar does not exist."""
    for i in range(x.shape[0] - s):
        out[i] = x[s + i - k] if s + i >= k else NAN
