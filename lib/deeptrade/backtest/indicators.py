"""Causal indicators used by the strategies and the engine (numba, 1-D float64 in and out).

Every output at index t depends on inputs at indices <= t only; the warm-up is NaN. Conventions
follow TA-Lib where one exists (EMA seeded with the SMA of the first window, Wilder's RSI and
ATR), so the values can be checked against ``talib``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(error_model="numpy", cache=True)
def sma(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average; NaN until ``window`` values have been seen."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    # Kahan-compensated running sum: a plain running sum drifts over long minute series.
    s = 0.0
    comp = 0.0
    for t in range(n):
        y = x[t] - comp
        tmp = s + y
        comp = (tmp - s) - y
        s = tmp
        if t >= window:
            y = -x[t - window] - comp
            tmp = s + y
            comp = (tmp - s) - y
            s = tmp
        if t >= window - 1:
            out[t] = s / window
    return out


@njit(error_model="numpy", cache=True)
def ema(x: np.ndarray, window: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(window+1), seeded with the SMA of the first window."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    alpha = 2.0 / (window + 1.0)
    s = 0.0
    for t in range(window):
        s += x[t]
    v = s / window
    out[window - 1] = v
    for t in range(window, n):
        v = alpha * x[t] + (1.0 - alpha) * v
        out[t] = v
    return out


@njit(error_model="numpy", cache=True)
def wma(x: np.ndarray, window: int) -> np.ndarray:
    """Linearly weighted moving average (weights 1..window, newest heaviest)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    denom = window * (window + 1) / 2.0
    for t in range(window - 1, n):
        acc = 0.0
        for k in range(window):
            acc += (k + 1) * x[t - window + 1 + k]
        out[t] = acc / denom
    return out


@njit(error_model="numpy", cache=True)
def moving_average(x: np.ndarray, window: int, kind: int) -> np.ndarray:
    """``kind`` 0 = SMA, 1 = EMA, 2 = WMA (see ``MA_KINDS``)."""
    if kind == 0:
        return sma(x, window)
    if kind == 1:
        return ema(x, window)
    return wma(x, window)


@njit(error_model="numpy", cache=True)
def _smas(x: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """``sma`` for many windows in one pass over ``x``, bit-for-bit equal to ``sma``.

    The windows' Kahan sums are independent, so interleaving them over t lets the CPU overlap
    what is one long dependency chain per window (several times faster for a grid).
    """
    n = x.shape[0]
    k = windows.shape[0]
    out = np.full((k, n), np.nan)
    s = np.zeros(k)
    comp = np.zeros(k)
    for t in range(n):
        xt = x[t]
        for i in range(k):
            w = windows[i]
            if w < 1 or w > n:
                continue
            y = xt - comp[i]
            tmp = s[i] + y
            comp[i] = (tmp - s[i]) - y
            s[i] = tmp
            if t >= w:
                y = -x[t - w] - comp[i]
                tmp = s[i] + y
                comp[i] = (tmp - s[i]) - y
                s[i] = tmp
            if t >= w - 1:
                out[i, t] = s[i] / w
    return out


@njit(error_model="numpy", cache=True)
def moving_averages(x: np.ndarray, windows: np.ndarray, kind: int) -> np.ndarray:
    """``moving_average`` for each window, one row per window (one call for a whole grid)."""
    if kind == 0:
        return _smas(x, windows)
    out = np.empty((windows.shape[0], x.shape[0]))
    for i in range(windows.shape[0]):
        out[i] = moving_average(x, int(windows[i]), kind)
    return out


MA_KINDS = {"sma": 0, "ema": 1, "wma": 2}


@njit(error_model="numpy", cache=True)
def rsi(close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI (TA-Lib convention): first value at index ``window``."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window >= n:
        return out
    gain = 0.0
    loss = 0.0
    for t in range(1, window + 1):
        d = close[t] - close[t - 1]
        if d > 0:
            gain += d
        else:
            loss -= d
    gain /= window
    loss /= window
    out[window] = 100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss)
    for t in range(window + 1, n):
        d = close[t] - close[t - 1]
        g = d if d > 0 else 0.0
        lo = -d if d < 0 else 0.0
        gain = (gain * (window - 1) + g) / window
        loss = (loss * (window - 1) + lo) / window
        out[t] = 100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss)
    return out


@njit(error_model="numpy", cache=True)
def prior_max(x: np.ndarray, window: int) -> np.ndarray:
    """Max of the ``window`` values strictly before t (a Donchian channel that excludes bar t)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(window, n):
        m = x[t - window]
        for k in range(t - window + 1, t):
            if x[k] > m:
                m = x[k]
        out[t] = m
    return out


@njit(error_model="numpy", cache=True)
def prior_min(x: np.ndarray, window: int) -> np.ndarray:
    """Min of the ``window`` values strictly before t."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(window, n):
        m = x[t - window]
        for k in range(t - window + 1, t):
            if x[k] < m:
                m = x[k]
        out[t] = m
    return out


@njit(error_model="numpy", cache=True)
def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's average true range (TA-Lib convention): first value at index ``window``."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window >= n:
        return out
    s = 0.0
    for t in range(1, window + 1):
        s += max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
    v = s / window
    out[window] = v
    for t in range(window + 1, n):
        tr = max(high[t] - low[t], abs(high[t] - close[t - 1]), abs(low[t] - close[t - 1]))
        v = (v * (window - 1) + tr) / window
        out[t] = v
    return out


@njit(error_model="numpy", cache=True)
def realized_vol(close: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Annualised sample std (ddof=1) of the last ``window`` log returns ending at t."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if window < 2:
        return out
    r = np.full(n, np.nan)
    for t in range(1, n):
        r[t] = np.log(close[t] / close[t - 1])
    for t in range(window, n):
        m = 0.0
        for k in range(t - window + 1, t + 1):
            m += r[k]
        m /= window
        v = 0.0
        for k in range(t - window + 1, t + 1):
            v += (r[k] - m) ** 2
        out[t] = np.sqrt(v / (window - 1) * periods_per_year)
    return out
