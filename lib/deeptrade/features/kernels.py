"""The recursive indicators: small numba state machines over "extended" arrays.

These are the features whose value depends on the whole past rather than a fixed window:
SMA running sums and the EMA/MACD/RSI recursions and TA-Lib's rolling variance for the
Bollinger bands (`run_trend`); Wilder's ATR/DI/ADX and the stochastic's SMA smoothing
(`run_wilder`); MFI's running flows and OBV (`run_flow`); and O(1) rolling standard
deviations / z-scores (`run_rolling_std`, TA-Lib's VAR recursion).

A kernel reads extended arrays (see `windows.py`): up to `history` older bars followed by
the block being computed, positions [s, len). It advances its small state (running sums,
recursion values) bar by bar and writes its outputs at position p - s. The batch path runs
a whole series as one block from a fresh state; the live path runs the same compiled code on
one-bar blocks with the state it kept, so live output equals batch output bit for bit.
The GPU backend compiles the same Python source for CUDA (see gpu.py).

TA-Lib parity: each kernel follows TA-Lib 0.8's arithmetic step by step (same seeding,
running-sum order, flat-window guards, shifted-sum variance), so most values agree bit for
bit; ATR and MACD's signal agree to a few ulp (TA-Lib's build fuses some multiply-adds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from deeptrade.features.config import FeatureConfig

NAN = np.nan
# TA-Lib 0.8's relative dead-zone (TA_IS_ZERO_SCALED): |v| <= 1e-14 * scale counts as zero.
TA_EPSILON = 1e-14

# Integer parameters (p).
P_RANGE_VOL, P_RSI, P_MACD_F, P_MACD_S, P_MACD_G, P_BB, P_ATR, P_ADX = 0, 1, 2, 3, 4, 5, 6, 7
P_FASTK, P_SLOWK, P_SLOWD, P_WILLR, P_CCI, P_MFI, P_OBVZ, P_ROC = 8, 9, 10, 11, 12, 13, 14, 15
P_VOLZ, P_VWAP, P_MOMENTS = 16, 17, 18
N_PARAMS = 19

# trend state: ints, scalars, and (SMA running sum, EMA) per MA window
TR_I_BB_RESEED = 0
TR_S_MACD_SLOW, TR_S_MACD_FAST, TR_S_MACD_SUM, TR_S_MACD_SIG, TR_S_MACD_SIG_SUM = 0, 1, 2, 3, 4
TR_S_RSI_GAIN, TR_S_RSI_LOSS, TR_S_BB_SUM = 5, 6, 7
TR_S_BB_VAR = 8  # 4 slots: rolling variance state (see _rolling_var)

# wilder state: scalars
WI_S_ATR, WI_S_DM_PLUS, WI_S_DM_MINUS, WI_S_DM_TR, WI_S_ADX, WI_S_ADX_SUM = range(6)
WI_S_FASTK_SUM, WI_S_SLOWK_SUM = 6, 7

# flow state: ints, scalars
FL_I_MFI_NULL = 0
FL_S_MFI_POS, FL_S_MFI_NEG = 0, 1


def kernel_params(config: FeatureConfig) -> tuple:
    """The config as the arrays the kernels read (a tuple: numba-friendly and picklable)."""
    c = config
    p = np.zeros(N_PARAMS, dtype=np.int64)
    p[P_RANGE_VOL], p[P_RSI] = c.range_vol_window, c.rsi_period
    p[P_MACD_F], p[P_MACD_S], p[P_MACD_G] = c.macd_fast, c.macd_slow, c.macd_signal
    p[P_BB], p[P_ATR], p[P_ADX] = c.bb_period, c.atr_period, c.adx_period
    p[P_FASTK], p[P_SLOWK], p[P_SLOWD] = c.stoch_fastk, c.stoch_slowk, c.stoch_slowd
    p[P_WILLR], p[P_CCI], p[P_MFI] = c.willr_period, c.cci_period, c.mfi_period
    p[P_OBVZ], p[P_ROC], p[P_VOLZ] = c.obv_z_window, c.roc_period, c.volume_z_window
    p[P_VWAP], p[P_MOMENTS] = c.vwap_window, c.moments_window
    return (
        p,
        np.asarray(c.return_horizons, dtype=np.int64),
        np.asarray(c.rvol_windows, dtype=np.int64),
        np.asarray(c.ma_windows, dtype=np.int64),
        np.asarray(c.momentum_periods, dtype=np.int64),
        np.array([c.bb_nbdev], dtype=np.float64),
        2.0 / (np.asarray(c.ma_windows, dtype=np.float64) + 1.0),  # EMA smoothing, TA-Lib's k
    )


def new_kernel_states(config: FeatureConfig) -> dict[str, Any]:
    """Fresh states of the three kernels for one series."""
    return {
        "trend": (
            np.zeros(1, dtype=np.int64),
            np.zeros(12),
            np.zeros((len(config.ma_windows), 2)),
        ),
        "wilder": (np.zeros(8),),
        "flow": (np.zeros(1, dtype=np.int64), np.zeros(2)),
        # one rolling variance per realised-vol window, then OBV and volume
        "var": np.zeros((len(config.rvol_windows) + 2, 5)),
    }


@njit(cache=True, error_model="numpy", inline="always")
def _is_flat(diff: float, scale: float) -> bool:
    # TA-Lib 0.8's TA_IS_ZERO_SCALED: a range within ~90 ulp of the prices is no range at all.
    return abs(diff) <= TA_EPSILON * scale


@njit(cache=True, error_model="numpy", inline="always")
def _shifted_sums(x: np.ndarray, p: int, w: int, shift: float):
    p1 = 0.0
    p2 = 0.0
    for q in range(p - w + 1, p + 1):
        d = x[q] - shift
        p1 += d
        p2 += d * d
    return p1, p2


@njit(cache=True, error_model="numpy", inline="always")
def _rolling_var(x: np.ndarray, p: int, t: int, w: int, v: tuple, reseed: int):
    """One bar of TA-Lib 0.8's VAR (var.c #118/#243/#434), bit for bit.

    x[p] is bar t; v = (shift, sum, sum of squares, peak of that since the last rebuild).
    Deviations are summed against a shift near the window, so the variance never subtracts
    two ~price^2 quantities; the sums are rebuilt two-pass when the variance falls below
    1e-6 of the peak mean square, or every 32 windows. A flat window gives exactly 0.
    Returns (population variance or NaN before bar w-1, x[p] - window mean, new v, reseed).
    """
    shift, p1, p2, peak = v
    xt = x[p]
    if t == 0:
        shift = xt
        reseed = 32 * w
    d = xt - shift
    p1 += d
    p2 += d * d
    if t < w - 1:
        return NAN, NAN, (shift, p1, p2, p2), reseed
    inv = 1.0 / w
    peak = max(peak, p2)
    mean = p1 * inv
    var = p2 * inv - mean * mean
    dev = d - mean
    x_old = x[p - w + 1]
    d = x_old - shift
    p1 -= d
    p2 -= d * d
    reseed -= 1
    if var < 0.000001 * (peak * inv) or reseed <= 0:
        reseed = 32 * w
        total = 0.0
        for q in range(p - w + 1, p + 1):
            total += x[q]
        shift = total * inv
        p1, p2 = _shifted_sums(x, p, w, shift)
        mean = p1 * inv
        var = p2 * inv - mean * mean
        if var < 0.000001 * (p2 * inv):
            # Flat to the rounding of its mean: anchor on one of the window's own values.
            shift = xt
            p1, p2 = _shifted_sums(x, p, w, shift)
            mean = p1 * inv
            var = p2 * inv - mean * mean
        peak = p2
        if var < 0.000000000001 * (p2 * inv):
            var = 0.0
        dev = (xt - shift) - mean
        d = x_old - shift
        p1 -= d
        p2 -= d * d
    return var, dev, (shift, p1, p2, peak), reseed


@njit(cache=True, error_model="numpy")
def run_rolling_std(
    x: np.ndarray,
    s: int,
    t0: int,
    first: int,
    w: int,
    state: np.ndarray,
    std: np.ndarray,
    z: np.ndarray,
) -> None:
    """Sample std (ddof=1) of the last w values and the z-score of the newest, O(1) per bar.

    Uses TA-Lib 0.8's VAR recursion (see _rolling_var): exact 0 on a flat window, where the
    z-score is 0. The series starts at bar `first` (1 for returns: bar 0 has none).
    state = [shift, sum, sum of squares, peak, bars until rebuild].
    """
    v = (state[0], state[1], state[2], state[3])
    reseed = int(state[4])
    scale = w / (w - 1.0)
    for i in range(x.shape[0] - s):
        t = t0 + i - first
        if t < 0:
            std[i] = NAN
            z[i] = NAN
            continue
        var, dev, v, reseed = _rolling_var(x, s + i, t, w, v, reseed)
        var *= scale
        std[i] = math.sqrt(var)
        z[i] = dev / std[i] if var > 0.0 else var  # 0 on a flat window, NaN in warm-up
    state[0], state[1], state[2], state[3] = v
    state[4] = reseed


@njit(cache=True, error_model="numpy")
def run_trend(cl: np.ndarray, s: int, t0: int, state: tuple, params: tuple, out: np.ndarray):
    """The close family's features (spec order) from close (extended array `cl`).

    close / SMA - 1 and close / EMA - 1 per MA window; RSI; MACD line, signal and histogram
    over close; Bollinger %b and width; ROC; momentum / close.
    """
    ints, sc, ma = state
    p, _, _, ma_w, mom_w, fp, k_ema = params
    n_rsi, w_bb, nbdev = p[P_RSI], p[P_BB], fp[0]
    nf, ns, ng = p[P_MACD_F], p[P_MACD_S], p[P_MACD_G]
    n_ma = ma_w.shape[0]
    inv_rsi = 1.0 / n_rsi
    k_slow, k_fast, k_sig = 2.0 / (ns + 1), 2.0 / (nf + 1), 2.0 / (ng + 1)
    sig_start = ns + ng - 2
    row_rsi = 2 * n_ma
    row_macd, row_bb, row_roc = row_rsi + 1, row_rsi + 4, row_rsi + 6
    n_roc, n_mom = p[P_ROC], mom_w.shape[0]

    bb_reseed = ints[TR_I_BB_RESEED]
    macd_slow, macd_fast, macd_sum = sc[TR_S_MACD_SLOW], sc[TR_S_MACD_FAST], sc[TR_S_MACD_SUM]
    macd_sig, macd_sig_sum = sc[TR_S_MACD_SIG], sc[TR_S_MACD_SIG_SUM]
    rsi_gain, rsi_loss, bb_sum = sc[TR_S_RSI_GAIN], sc[TR_S_RSI_LOSS], sc[TR_S_BB_SUM]
    b = TR_S_BB_VAR
    bb_var = (sc[b], sc[b + 1], sc[b + 2], sc[b + 3])
    for i in range(cl.shape[0] - s):
        x = s + i
        t = t0 + i
        c = cl[x]

        # SMA (TA-Lib running sum) and EMA (seeded with the first SMA)
        for j in range(n_ma):
            w = ma_w[j]
            total = ma[j, 0] + c
            if t >= w - 1:
                sma = total / w
                total -= cl[x - w + 1]
                ema = sma if t == w - 1 else ((c - ma[j, 1]) * k_ema[j]) + ma[j, 1]
                ma[j, 1] = ema
                out[j, i] = c / sma - 1.0
                out[n_ma + j, i] = c / ema - 1.0
            else:
                out[j, i] = NAN
                out[n_ma + j, i] = NAN
            ma[j, 0] = total

        # RSI (Wilder; TA-Lib 0.8 scales by 1/n rather than dividing)
        if t >= 1:
            d = c - cl[x - 1]
            if t <= n_rsi:
                if d < 0.0:
                    rsi_loss -= d
                else:
                    rsi_gain += d
                if t == n_rsi:
                    rsi_loss *= inv_rsi
                    rsi_gain *= inv_rsi
            else:
                rsi_loss *= n_rsi - 1
                rsi_gain *= n_rsi - 1
                if d < 0.0:
                    rsi_loss -= d
                else:
                    rsi_gain += d
                rsi_loss *= inv_rsi
                rsi_gain *= inv_rsi
        if t >= n_rsi:
            tot = rsi_gain + rsi_loss
            out[row_rsi, i] = 100.0 * (rsi_gain / tot) if tot > 0.0 else 0.0
        else:
            out[row_rsi, i] = NAN

        # MACD: both EMAs start at bar slow-1, the fast one seeded with the SMA of the fast
        # window ending there (TA-Lib aligns them so); the signal starts at slow+signal-2.
        out[row_macd, i] = NAN
        out[row_macd + 1, i] = NAN
        out[row_macd + 2, i] = NAN
        if t < ns - 1:
            macd_sum += c
        elif t == ns - 1:
            macd_sum += c
            macd_slow = macd_sum / ns
            total = 0.0
            for q in range(x - nf + 1, x + 1):
                total += cl[q]
            macd_fast = total / nf
        else:
            macd_slow = ((c - macd_slow) * k_slow) + macd_slow
            macd_fast = ((c - macd_fast) * k_fast) + macd_fast
        if t >= ns - 1:
            m = macd_fast - macd_slow
            if t < sig_start:
                macd_sig_sum += m
            else:
                if t == sig_start:
                    macd_sig_sum += m
                    macd_sig = macd_sig_sum / ng
                else:
                    macd_sig = ((m - macd_sig) * k_sig) + macd_sig
                out[row_macd, i] = m / c
                out[row_macd + 1, i] = macd_sig / c
                out[row_macd + 2, i] = (m - macd_sig) / c

        # Bollinger bands: SMA middle band, TA-Lib VAR deviation
        bb_sum += c
        var, _, bb_var, bb_reseed = _rolling_var(cl, x, t, w_bb, bb_var, bb_reseed)
        if t >= w_bb - 1:
            mid = bb_sum / w_bb
            bb_sum -= cl[x - w_bb + 1]
            dev = math.sqrt(var) * nbdev
            upper = mid + dev
            lower = mid - dev
            width = upper - lower
            out[row_bb, i] = (c - lower) / width if width > 0.0 else 0.5
            out[row_bb + 1, i] = width / mid
        else:
            out[row_bb, i] = NAN
            out[row_bb + 1, i] = NAN

        # ROC (TA-Lib, percent) and momentum / close
        out[row_roc, i] = ((c / cl[x - n_roc]) - 1.0) * 100.0 if t >= n_roc else NAN
        for j in range(n_mom):
            lag = mom_w[j]
            out[row_roc + 1 + j, i] = (c - cl[x - lag]) / c if t >= lag else NAN

    ints[TR_I_BB_RESEED] = bb_reseed
    sc[b], sc[b + 1], sc[b + 2], sc[b + 3] = bb_var
    sc[TR_S_MACD_SLOW], sc[TR_S_MACD_FAST], sc[TR_S_MACD_SUM] = macd_slow, macd_fast, macd_sum
    sc[TR_S_MACD_SIG], sc[TR_S_MACD_SIG_SUM] = macd_sig, macd_sig_sum
    sc[TR_S_RSI_GAIN], sc[TR_S_RSI_LOSS], sc[TR_S_BB_SUM] = rsi_gain, rsi_loss, bb_sum


@njit(cache=True, error_model="numpy")
def run_wilder(
    hi: np.ndarray,
    lo: np.ndarray,
    cl: np.ndarray,
    fastk: np.ndarray,
    slowk: np.ndarray,
    s: int,
    t0: int,
    state: tuple,
    params: tuple,
    out: np.ndarray,
):
    """ATR / close, ADX, +DI, -DI, and the stochastic's slow %K / %D.

    `fastk` holds fast %K from the window pass (NaN before it exists); the kernel writes slow
    %K into the extended array `slowk` (history for the %D running sum) and to its rows.
    """
    (sc,) = state
    p = params[0]
    n_atr, n_adx = p[P_ATR], p[P_ADX]
    nk, nsk, nsd = p[P_FASTK], p[P_SLOWK], p[P_SLOWD]
    atr_beta = (n_atr - 1) / n_atr  # TA-Lib 0.8's two-coefficient Wilder step
    atr_alpha = 1.0 - atr_beta
    slowk_start = nk + nsk - 2
    stoch_start = slowk_start + nsd - 1

    atr, adx, adx_sum = sc[WI_S_ATR], sc[WI_S_ADX], sc[WI_S_ADX_SUM]
    dm_plus, dm_minus, dm_tr = sc[WI_S_DM_PLUS], sc[WI_S_DM_MINUS], sc[WI_S_DM_TR]
    fastk_sum, slowk_sum = sc[WI_S_FASTK_SUM], sc[WI_S_SLOWK_SUM]
    for i in range(cl.shape[0] - s):
        x = s + i
        t = t0 + i
        h, low = hi[x], lo[x]
        out[0, i] = NAN
        out[1, i] = NAN
        out[2, i] = NAN
        out[3, i] = NAN
        if t >= 1:
            pc = cl[x - 1]
            tr = h - low
            tmp = abs(pc - h)
            if tmp > tr:
                tr = tmp
            tmp = abs(pc - low)
            if tmp > tr:
                tr = tmp
            if t <= n_atr:
                atr += tr
                if t == n_atr:
                    atr /= n_atr
            else:
                atr = atr_alpha * tr + atr_beta * atr
            if t >= n_atr:
                out[0, i] = atr / cl[x]

            # Directional movement: +DI/-DI from bar n, ADX from bar 2n-1 (Wilder).
            diff_p = h - hi[x - 1]
            diff_m = lo[x - 1] - low
            plus_dm = 0.0
            minus_dm = 0.0
            if diff_m > 0.0 and diff_p < diff_m:
                minus_dm = diff_m
            elif diff_p > 0.0 and diff_p > diff_m:
                plus_dm = diff_p
            if t < n_adx:
                dm_plus += plus_dm
                dm_minus += minus_dm
                dm_tr += tr
            else:
                dm_plus -= dm_plus / n_adx
                dm_minus -= dm_minus / n_adx
                dm_plus += plus_dm
                dm_minus += minus_dm
                dm_tr = dm_tr - dm_tr / n_adx + tr
                plus_di = 0.0
                minus_di = 0.0
                dx = -1.0  # no DX this bar: ADX is carried over
                if dm_tr != 0.0:
                    minus_di = 100.0 * (dm_minus / dm_tr)
                    plus_di = 100.0 * (dm_plus / dm_tr)
                    tot = minus_di + plus_di
                    if tot != 0.0:
                        dx = 100.0 * (abs(minus_di - plus_di) / tot)
                out[2, i] = plus_di
                out[3, i] = minus_di
                if t <= 2 * n_adx - 1:
                    if dx >= 0.0:
                        adx_sum += dx
                    if t == 2 * n_adx - 1:
                        adx = adx_sum / n_adx
                elif dx >= 0.0:
                    adx = (adx * (n_adx - 1) + dx) / n_adx
                if t >= 2 * n_adx - 1:
                    out[1, i] = adx

        # Stochastic: slow %K = SMA of fast %K, slow %D = SMA of slow %K (TA-Lib running sums)
        out[4, i] = NAN
        out[5, i] = NAN
        slowk[x] = NAN
        if t >= nk - 1:
            fastk_sum += fastk[x]
            if t >= slowk_start:
                k = fastk_sum / nsk
                fastk_sum -= fastk[x - nsk + 1]
                slowk[x] = k
                slowk_sum += k
                if t >= stoch_start:
                    out[4, i] = k
                    out[5, i] = slowk_sum / nsd
                    slowk_sum -= slowk[x - nsd + 1]

    sc[WI_S_ATR], sc[WI_S_ADX], sc[WI_S_ADX_SUM] = atr, adx, adx_sum
    sc[WI_S_DM_PLUS], sc[WI_S_DM_MINUS], sc[WI_S_DM_TR] = dm_plus, dm_minus, dm_tr
    sc[WI_S_FASTK_SUM], sc[WI_S_SLOWK_SUM] = fastk_sum, slowk_sum


@njit(cache=True, error_model="numpy")
def run_flow(
    tp: np.ndarray,
    vol: np.ndarray,
    cl: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    obv: np.ndarray,
    s: int,
    t0: int,
    state: tuple,
    params: tuple,
    out: np.ndarray,
):
    """MFI (row 0) and OBV (into the extended array `obv`, for its z-score window).

    TA-Lib 0.8 MFI: scaled dead-zone for "no move", running sums reset after a whole period
    without money flow, numerator clamped into [0, total]. `pos`/`neg` are the extended
    arrays of per-bar money flows (history for the running sums).
    """
    ints, sc = state
    n = params[0][P_MFI]
    null_run = ints[FL_I_MFI_NULL]
    pos_sum, neg_sum = sc[FL_S_MFI_POS], sc[FL_S_MFI_NEG]
    for i in range(cl.shape[0] - s):
        x = s + i
        t = t0 + i
        v = vol[x]
        if t == 0:
            obv[x] = v
            pos[x] = 0.0
            neg[x] = 0.0
        else:
            c, pc = cl[x], cl[x - 1]
            obv[x] = obv[x - 1] + v if c > pc else (obv[x - 1] - v if c < pc else obv[x - 1])
            d = tp[x] - tp[x - 1]
            money = 0.0 if _is_flat(d, abs(tp[x]) + abs(tp[x - 1])) else tp[x] * v
            pos[x] = 0.0 if d < 0.0 else money
            neg[x] = money if d < 0.0 else 0.0
            if t > n:
                pos_sum -= pos[x - n]
                neg_sum -= neg[x - n]
            pos_sum += pos[x]
            neg_sum += neg[x]
            null_run = null_run + 1 if money == 0.0 else 0
            if null_run >= n:
                null_run = n
                pos_sum = 0.0
                neg_sum = 0.0
        if t >= n:
            tot = pos_sum + neg_sum
            clamped = min(max(pos_sum, 0.0), tot)
            out[0, i] = 0.0 if tot <= 0.0 else 100.0 * (clamped / tot)
        else:
            out[0, i] = NAN
    ints[FL_I_MFI_NULL] = null_run
    sc[FL_S_MFI_POS], sc[FL_S_MFI_NEG] = pos_sum, neg_sum
