"""The CPU backend: one fused numba pass over a bar series computes every kernel feature.

`run_bars` is a state machine. All the history it needs lives in the state tuple: ring
buffers of recent values, running window sums, and the EMA/Wilder recursions. The batch path
runs it once over a whole series from a fresh state; the live path (`streaming.py`) keeps the
state and runs it on one bar at a time. Both execute the same compiled code on the same
values, so streaming output equals batch output bit for bit.

Cost per bar is O(1) except for three fixed, small windows that are re-scanned on purpose:
the CCI mean deviation (TA-Lib's definition has no running form), the skew/kurtosis moments
(one pass over `moments_window` returns: exact and drift-free) and, occasionally, a rebuild
of a rolling variance or window extreme when its running form loses precision or its
extreme leaves the window.

TA-Lib parity: the TA-Lib indicators reproduce TA-Lib 0.8's arithmetic step by step (same
seeding, running-sum order, flat-window guards, and its shifted-sum variance), so most agree
bit for bit and the rest within a few ulp (TA-Lib's build fuses some multiply-adds).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from deeptrade.features.config import FeatureConfig

NAN = np.nan
LN2 = math.log(2.0)
# TA-Lib 0.8's relative dead-zone (TA_IS_ZERO_SCALED): |v| <= 1e-14 * scale counts as zero.
TA_EPSILON = 1e-14

# --- Integer state (ints).
I_T = 0  # bars seen so far = absolute index of the next bar
I_MFI_NULL = 1  # consecutive bars without money flow (TA-Lib resets the MFI sums after a period)
I_VWAP_NULL = 2  # consecutive zero-volume bars (resets the VWAP sums the same way)
I_BB_RESEED, I_OBV_RESEED, I_VOL_RESEED = 3, 4, 5  # bars until a variance rebuild
I_STOCH_HI, I_STOCH_LO, I_WILLR_HI, I_WILLR_LO = 6, 7, 8, 9  # bar index of a window extreme
N_INTS = 10

# --- Scalar float state (scalars).
S_PREV_C, S_PREV_H, S_PREV_L, S_PREV_TP, S_PREV_B = 0, 1, 2, 3, 4
S_PARK, S_GK = 5, 6  # running sums of the range-volatility terms
S_RSI_GAIN, S_RSI_LOSS = 7, 8
S_MACD_SLOW, S_MACD_FAST, S_MACD_SUM, S_MACD_SIG, S_MACD_SIG_SUM = 9, 10, 11, 12, 13
S_ATR = 14
S_DM_PLUS, S_DM_MINUS, S_DM_TR, S_ADX, S_ADX_SUM = 15, 16, 17, 18, 19
S_FASTK_SUM, S_SLOWK_SUM = 20, 21
S_STOCH_HH, S_STOCH_LL, S_WILLR_HH, S_WILLR_LL = 22, 23, 24, 25
S_MFI_POS, S_MFI_NEG = 26, 27
S_OBV = 28
S_VWAP_PV, S_VWAP_V = 29, 30
S_BB_SUM = 31
# Rolling variances (TA-Lib VAR): shift, sum of (x - shift), sum of (x - shift)^2, peak of it.
S_BB_VAR, S_OBV_VAR, S_VOL_VAR = 32, 36, 40  # each the first of 4 slots
N_SCALARS = 44

# --- Ring buffers (rows of one 2-D array; bar t lives in column t & mask).
R_C, R_R, R_H, R_L, R_PARK, R_GK, R_FASTK, R_SLOWK, R_TP = 0, 1, 2, 3, 4, 5, 6, 7, 8
R_MFI_POS, R_MFI_NEG, R_OBV, R_V, R_PV = 9, 10, 11, 12, 13
N_RINGS = 14

# --- Integer parameters.
P_RANGE_VOL, P_RSI, P_MACD_F, P_MACD_S, P_MACD_G, P_BB, P_ATR, P_ADX = 0, 1, 2, 3, 4, 5, 6, 7
P_FASTK, P_SLOWK, P_SLOWD, P_WILLR, P_CCI, P_MFI, P_OBVZ, P_ROC = 8, 9, 10, 11, 12, 13, 14, 15
P_VOLZ, P_VWAP, P_MOMENTS = 16, 17, 18
N_PARAMS = 19


def kernel_params(config: FeatureConfig) -> tuple:
    """The config as the arrays `run_bars` reads (a tuple: numba-friendly and picklable)."""
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
    )


def max_lookback(config: FeatureConfig) -> int:
    """The longest window any feature reads (bars)."""
    c = config
    return max(
        *c.return_horizons,
        *c.rvol_windows,
        *c.ma_windows,
        *c.momentum_periods,
        c.range_vol_window,
        c.macd_slow,
        c.bb_period,
        c.stoch_fastk,
        c.stoch_slowk,
        c.stoch_slowd,
        c.willr_period,
        c.cci_period,
        c.mfi_period,
        c.obv_z_window,
        c.roc_period,
        c.volume_z_window,
        c.vwap_window,
        c.moments_window,
    )


def new_state(config: FeatureConfig) -> tuple:
    """A fresh state for one series: (ints, scalars, ma, rvol, rings)."""
    size = 1 << (max_lookback(config) + 2).bit_length()  # power of two > every window + 1
    ints = np.zeros(N_INTS, dtype=np.int64)
    ints[I_STOCH_HI : I_WILLR_LO + 1] = -1  # no extreme tracked yet: the first use rescans
    scalars = np.zeros(N_SCALARS, dtype=np.float64)
    ma = np.zeros((len(config.ma_windows), 2), dtype=np.float64)  # (SMA running sum, EMA)
    rvol = np.zeros((len(config.rvol_windows), 2), dtype=np.float64)  # (sum r, sum r^2)
    rings = np.zeros((N_RINGS, size), dtype=np.float64)
    return ints, scalars, ma, rvol, rings


def copy_state(state: tuple) -> tuple:
    return tuple(a.copy() for a in state)


@njit(cache=True, inline="always")
def _is_flat(diff: float, scale: float) -> bool:
    # TA-Lib 0.8's TA_IS_ZERO_SCALED: a range within ~90 ulp of the prices is no range at all.
    return abs(diff) <= TA_EPSILON * scale


@njit(cache=True, inline="always")
def _shifted_sums(ring: np.ndarray, row: int, t: int, w: int, mask: int, shift: float):
    p1 = 0.0
    p2 = 0.0
    for q in range(t - w + 1, t + 1):
        d = ring[row, q & mask] - shift
        p1 += d
        p2 += d * d
    return p1, p2


@njit(cache=True, inline="always")
def _rolling_var(
    ring: np.ndarray, row: int, t: int, w: int, mask: int, sc: np.ndarray, s: int, reseed: int
):
    """One bar of TA-Lib 0.8's VAR (var.c #118/#243/#434), bit for bit.

    Deviations are summed against a shift near the window (sc[s]: shift, sum, sum of
    squares, peak of that since the last rebuild), so the variance never subtracts two
    ~level^2 quantities; the sums are rebuilt two-pass when the variance falls below 1e-6 of
    the peak mean square, or every 32 windows. A flat window gives exactly 0.
    Returns (population variance, newest value - window mean, reseed), NaNs before bar w-1.
    """
    x = ring[row, t & mask]
    if t == 0:
        sc[s] = x
        reseed = 32 * w
    shift = sc[s]
    d = x - shift
    p1 = sc[s + 1] + d
    p2 = sc[s + 2] + d * d
    if t < w - 1:
        sc[s + 1] = p1
        sc[s + 2] = p2
        sc[s + 3] = p2
        return NAN, NAN, reseed
    inv = 1.0 / w
    peak = max(sc[s + 3], p2)
    mean = p1 * inv
    var = p2 * inv - mean * mean
    dev = d - mean
    x_old = ring[row, (t - w + 1) & mask]
    d = x_old - shift
    p1 -= d
    p2 -= d * d
    reseed -= 1
    if var < 0.000001 * (peak * inv) or reseed <= 0:
        reseed = 32 * w
        total = 0.0
        for q in range(t - w + 1, t + 1):
            total += ring[row, q & mask]
        shift = total * inv
        p1, p2 = _shifted_sums(ring, row, t, w, mask, shift)
        mean = p1 * inv
        var = p2 * inv - mean * mean
        if var < 0.000001 * (p2 * inv):
            # Flat to the rounding of its mean: anchor on one of the window's own values.
            shift = x
            p1, p2 = _shifted_sums(ring, row, t, w, mask, shift)
            mean = p1 * inv
            var = p2 * inv - mean * mean
        peak = p2
        if var < 0.000000000001 * (p2 * inv):
            var = 0.0
        dev = (x - shift) - mean
        d = x_old - shift
        p1 -= d
        p2 -= d * d
    sc[s] = shift
    sc[s + 1] = p1
    sc[s + 2] = p2
    sc[s + 3] = peak
    return var, dev, reseed


@njit(cache=True, inline="always")
def _window_max(ring: np.ndarray, row: int, t: int, w: int, mask: int, best: float, at: int):
    """Max of the last w values, tracking where it sits; rescans only when it leaves."""
    start = t - w + 1
    x = ring[row, t & mask]
    if at < start:
        at = start
        best = ring[row, start & mask]
        for q in range(start + 1, t + 1):
            v = ring[row, q & mask]
            if v > best:
                best = v
                at = q
    elif x >= best:
        best = x
        at = t
    return best, at


@njit(cache=True, inline="always")
def _window_min(ring: np.ndarray, row: int, t: int, w: int, mask: int, best: float, at: int):
    """Min of the last w values, tracking where it sits; rescans only when it leaves."""
    start = t - w + 1
    x = ring[row, t & mask]
    if at < start:
        at = start
        best = ring[row, start & mask]
        for q in range(start + 1, t + 1):
            v = ring[row, q & mask]
            if v < best:
                best = v
                at = q
    elif x <= best:
        best = x
        at = t
    return best, at


@njit(cache=True)
def run_bars(inputs: tuple, state: tuple, params: tuple, out: np.ndarray) -> None:
    """Advance `state` over the bars in `inputs`, writing features to out[:, i] per bar i.

    inputs = (open, high, low, close, volume, bar_price, benchmark_close) float64 arrays of one
    length (bar_price NaN -> typical price; benchmark NaN -> rel_log_ret_1 NaN). Rows of `out`
    follow `spec.feature_layout` minus the trailing time features.
    """
    op, hi_, lo_, cl, vol, px, bench = inputs
    ints, sc, ma, rv, ring = state
    p, ret_h, rv_w, ma_w, mom_w, fp = params
    mask = ring.shape[1] - 1

    # Parameters and scalar state live in locals for the loop (registers, no aliasing with
    # `out`); the state arrays are written back at the end.
    w_range, n_rsi, n_atr, n_adx = p[P_RANGE_VOL], p[P_RSI], p[P_ATR], p[P_ADX]
    nf, ns, ng = p[P_MACD_F], p[P_MACD_S], p[P_MACD_G]
    w_bb, nbdev = p[P_BB], fp[0]
    nk, nsk, nsd, n_willr = p[P_FASTK], p[P_SLOWK], p[P_SLOWD], p[P_WILLR]
    n_cci, n_mfi, n_roc = p[P_CCI], p[P_MFI], p[P_ROC]
    w_obv, w_vol, w_vwap, w_mom = p[P_OBVZ], p[P_VOLZ], p[P_VWAP], p[P_MOMENTS]
    n_ma = ma_w.shape[0]
    inv_rsi = 1.0 / n_rsi
    atr_beta = (n_atr - 1) / n_atr
    atr_alpha = 1.0 - atr_beta
    k_slow, k_fast, k_sig = 2.0 / (ns + 1), 2.0 / (nf + 1), 2.0 / (ng + 1)
    park_scale = 1.0 / (w_range * 4.0 * LN2)
    gk_c = 2.0 * LN2 - 1.0
    sig_start = ns + ng - 2
    stoch_start = nk + nsk + nsd - 3
    mm = float(w_mom)  # skew/kurtosis bias corrections
    skew_c = math.sqrt(mm * (mm - 1.0)) / (mm - 2.0)
    kurt_a = (mm + 1.0) * mm * (mm - 1.0) / ((mm - 2.0) * (mm - 3.0))
    kurt_b = 3.0 * (mm - 1.0) ** 2 / ((mm - 2.0) * (mm - 3.0))

    t = ints[I_T]
    mfi_null, vwap_null = ints[I_MFI_NULL], ints[I_VWAP_NULL]
    bb_reseed, obv_reseed, vol_reseed = ints[I_BB_RESEED], ints[I_OBV_RESEED], ints[I_VOL_RESEED]
    stoch_hi, stoch_lo = ints[I_STOCH_HI], ints[I_STOCH_LO]
    willr_hi, willr_lo = ints[I_WILLR_HI], ints[I_WILLR_LO]
    pc, ph, pl, ptp, pb = sc[S_PREV_C], sc[S_PREV_H], sc[S_PREV_L], sc[S_PREV_TP], sc[S_PREV_B]
    park_sum, gk_sum = sc[S_PARK], sc[S_GK]
    rsi_gain, rsi_loss = sc[S_RSI_GAIN], sc[S_RSI_LOSS]
    macd_slow, macd_fast, macd_sum = sc[S_MACD_SLOW], sc[S_MACD_FAST], sc[S_MACD_SUM]
    macd_sig, macd_sig_sum = sc[S_MACD_SIG], sc[S_MACD_SIG_SUM]
    atr = sc[S_ATR]
    dm_plus, dm_minus, dm_tr = sc[S_DM_PLUS], sc[S_DM_MINUS], sc[S_DM_TR]
    adx, adx_sum = sc[S_ADX], sc[S_ADX_SUM]
    fastk_sum, slowk_sum = sc[S_FASTK_SUM], sc[S_SLOWK_SUM]
    stoch_hh, stoch_ll = sc[S_STOCH_HH], sc[S_STOCH_LL]
    willr_hh, willr_ll = sc[S_WILLR_HH], sc[S_WILLR_LL]
    mfi_pos, mfi_neg = sc[S_MFI_POS], sc[S_MFI_NEG]
    obv, vwap_pv, vwap_v, bb_sum = sc[S_OBV], sc[S_VWAP_PV], sc[S_VWAP_V], sc[S_BB_SUM]

    for i in range(cl.shape[0]):
        k = t & mask
        o, h, lo, c, v = op[i], hi_[i], lo_[i], cl[i], vol[i]
        ring[R_C, k] = c
        ring[R_H, k] = h
        ring[R_L, k] = lo
        r = math.log(c / pc) if t >= 1 else NAN
        ring[R_R, k] = r
        row = 0

        # --- log returns
        for j in range(ret_h.shape[0]):
            lag = ret_h[j]
            if t < lag:
                out[row, i] = NAN
            elif lag == 1:
                out[row, i] = r
            else:
                out[row, i] = math.log(c / ring[R_C, (t - lag) & mask])
            row += 1

        # --- realised volatility: running sums of r and r^2 over each window
        for j in range(rv_w.shape[0]):
            w = rv_w[j]
            s1, s2 = rv[j, 0], rv[j, 1]
            if t >= 1:
                s1 += r
                s2 += r * r
                if t > w:
                    r_old = ring[R_R, (t - w) & mask]
                    s1 -= r_old
                    s2 -= r_old * r_old
                rv[j, 0], rv[j, 1] = s1, s2
            if t >= w:
                var = (s2 - s1 * s1 / w) / (w - 1)
                out[row, i] = math.sqrt(var) if var > 0.0 else 0.0
            else:
                out[row, i] = NAN
            row += 1

        # --- Parkinson and Garman-Klass range volatility
        lhl = math.log(h / lo)
        lco = math.log(c / o)
        park = lhl * lhl
        gk = 0.5 * park - gk_c * lco * lco
        ring[R_PARK, k] = park
        ring[R_GK, k] = gk
        park_sum += park
        gk_sum += gk
        if t >= w_range:
            park_sum -= ring[R_PARK, (t - w_range) & mask]
            gk_sum -= ring[R_GK, (t - w_range) & mask]
        if t >= w_range - 1:
            out[row, i] = math.sqrt(max(park_sum, 0.0) * park_scale)
            out[row + 1, i] = math.sqrt(max(gk_sum / w_range, 0.0))
        else:
            out[row, i] = NAN
            out[row + 1, i] = NAN
        row += 2

        # --- SMA and EMA ratios (TA-Lib: SMA running sum; EMA seeded with the first SMA)
        for j in range(n_ma):
            w = ma_w[j]
            total = ma[j, 0] + c
            if t >= w - 1:
                sma = total / w
                total -= ring[R_C, (t - w + 1) & mask]
                ema = sma if t == w - 1 else ((c - ma[j, 1]) * (2.0 / (w + 1))) + ma[j, 1]
                ma[j, 1] = ema
                out[row + j, i] = c / sma - 1.0
                out[row + n_ma + j, i] = c / ema - 1.0
            else:
                out[row + j, i] = NAN
                out[row + n_ma + j, i] = NAN
            ma[j, 0] = total
        row += 2 * n_ma

        # --- RSI (Wilder; TA-Lib 0.8 scales by 1/n rather than dividing)
        if t >= 1:
            d = c - pc
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
            out[row, i] = 100.0 * (rsi_gain / tot) if tot > 0.0 else 0.0
        else:
            out[row, i] = NAN
        row += 1

        # --- MACD: both EMAs start at bar slow-1, the fast one seeded with the SMA of the
        # fast window ending there (TA-Lib aligns them so); the signal starts at slow+sig-2.
        out[row, i] = NAN
        out[row + 1, i] = NAN
        out[row + 2, i] = NAN
        if t < ns - 1:
            macd_sum += c
        elif t == ns - 1:
            macd_sum += c
            macd_slow = macd_sum / ns
            total = 0.0
            for q in range(t - nf + 1, t + 1):
                total += ring[R_C, q & mask]
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
                out[row, i] = m / c
                out[row + 1, i] = macd_sig / c
                out[row + 2, i] = (m - macd_sig) / c
        row += 3

        # --- Bollinger bands: SMA middle band, TA-Lib VAR deviation
        bb_sum += c
        var, _, bb_reseed = _rolling_var(ring, R_C, t, w_bb, mask, sc, S_BB_VAR, bb_reseed)
        if t >= w_bb - 1:
            mid = bb_sum / w_bb
            bb_sum -= ring[R_C, (t - w_bb + 1) & mask]
            dev = math.sqrt(var) * nbdev
            upper = mid + dev
            lower = mid - dev
            width = upper - lower
            out[row, i] = (c - lower) / width if width > 0.0 else 0.5
            out[row + 1, i] = width / mid
        else:
            out[row, i] = NAN
            out[row + 1, i] = NAN
        row += 2

        # --- true range and ATR (Wilder; TA-Lib 0.8's two-coefficient step)
        tr = 0.0
        out[row, i] = NAN
        if t >= 1:
            tr = h - lo
            tmp = abs(pc - h)
            if tmp > tr:
                tr = tmp
            tmp = abs(pc - lo)
            if tmp > tr:
                tr = tmp
            if t <= n_atr:
                atr += tr
                if t == n_atr:
                    atr /= n_atr
            else:
                atr = atr_alpha * tr + atr_beta * atr
            if t >= n_atr:
                out[row, i] = atr / c
        row += 1

        # --- directional movement: +DI/-DI from bar n, ADX from bar 2n-1 (Wilder)
        out[row, i] = NAN
        out[row + 1, i] = NAN
        out[row + 2, i] = NAN
        if t >= 1:
            diff_p = h - ph
            diff_m = pl - lo
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
                out[row + 1, i] = plus_di
                out[row + 2, i] = minus_di
                if t <= 2 * n_adx - 1:
                    if dx >= 0.0:
                        adx_sum += dx
                    if t == 2 * n_adx - 1:
                        adx = adx_sum / n_adx
                elif dx >= 0.0:
                    adx = (adx * (n_adx - 1) + dx) / n_adx
                if t >= 2 * n_adx - 1:
                    out[row, i] = adx
        row += 3

        # --- stochastic slow %K / %D (SMA smoothing of fast %K)
        out[row, i] = NAN
        out[row + 1, i] = NAN
        if t >= nk - 1:
            stoch_hh, stoch_hi = _window_max(ring, R_H, t, nk, mask, stoch_hh, stoch_hi)
            stoch_ll, stoch_lo = _window_min(ring, R_L, t, nk, mask, stoch_ll, stoch_lo)
            rng = stoch_hh - stoch_ll
            fastk = 0.0
            if not _is_flat(rng, abs(stoch_hh) + abs(stoch_ll)):
                fastk = ((c - stoch_ll) / rng) * 100.0
            ring[R_FASTK, k] = fastk
            fastk_sum += fastk
            if t >= nk + nsk - 2:
                slowk = fastk_sum / nsk
                fastk_sum -= ring[R_FASTK, (t - nsk + 1) & mask]
                ring[R_SLOWK, k] = slowk
                slowk_sum += slowk
                if t >= stoch_start:
                    out[row, i] = slowk
                    out[row + 1, i] = slowk_sum / nsd
                    slowk_sum -= ring[R_SLOWK, (t - nsd + 1) & mask]
        row += 2

        # --- Williams %R
        if t >= n_willr - 1:
            willr_hh, willr_hi = _window_max(ring, R_H, t, n_willr, mask, willr_hh, willr_hi)
            willr_ll, willr_lo = _window_min(ring, R_L, t, n_willr, mask, willr_ll, willr_lo)
            rng = willr_hh - willr_ll
            if _is_flat(rng, abs(willr_hh) + abs(willr_ll)):
                out[row, i] = 0.0
            else:
                out[row, i] = min(max(((willr_hh - c) / rng) * -100.0, -100.0), 0.0)
        else:
            out[row, i] = NAN
        row += 1

        # --- CCI; the window is summed in TA-Lib's circular-buffer order (slot = bar % n),
        # which keeps even a deviation close to zero bit-identical.
        tp = (h + lo + c) / 3
        ring[R_TP, k] = tp
        if t >= n_cci - 1:
            split = (t + 1) % n_cci  # slots [0, split) hold the newest bars, the rest the oldest
            avg = 0.0
            for q in range(t + 1 - split, t + 1):
                avg += ring[R_TP, q & mask]
            for q in range(t - n_cci + 1, t + 1 - split):
                avg += ring[R_TP, q & mask]
            avg /= n_cci
            mad = 0.0
            for q in range(t + 1 - split, t + 1):
                mad += abs(ring[R_TP, q & mask] - avg)
            for q in range(t - n_cci + 1, t + 1 - split):
                mad += abs(ring[R_TP, q & mask] - avg)
            mad /= n_cci
            dev = tp - avg
            scale = abs(avg)
            if _is_flat(dev, scale) or _is_flat(mad, scale):
                out[row, i] = 0.0
            else:
                out[row, i] = dev / (0.015 * mad)
        else:
            out[row, i] = NAN
        row += 1

        # --- MFI (TA-Lib 0.8: scaled dead-zone for "no move", empty-window reset, clamp)
        if t >= 1:
            d = tp - ptp
            money = 0.0 if _is_flat(d, abs(tp) + abs(ptp)) else tp * v
            pos = 0.0 if d < 0.0 else money
            neg = money if d < 0.0 else 0.0
            if t > n_mfi:
                mfi_pos -= ring[R_MFI_POS, (t - n_mfi) & mask]
                mfi_neg -= ring[R_MFI_NEG, (t - n_mfi) & mask]
            ring[R_MFI_POS, k] = pos
            ring[R_MFI_NEG, k] = neg
            mfi_pos += pos
            mfi_neg += neg
            mfi_null = mfi_null + 1 if money == 0.0 else 0
            if mfi_null >= n_mfi:
                mfi_null = n_mfi
                mfi_pos = 0.0
                mfi_neg = 0.0
        if t >= n_mfi:
            tot = mfi_pos + mfi_neg
            pos = min(max(mfi_pos, 0.0), tot)
            out[row, i] = 0.0 if tot <= 0.0 else 100.0 * (pos / tot)
        else:
            out[row, i] = NAN
        row += 1

        # --- OBV z-score (ddof=1)
        if t == 0:
            obv = v
        elif c > pc:
            obv += v
        elif c < pc:
            obv -= v
        ring[R_OBV, k] = obv
        var, dev, obv_reseed = _rolling_var(ring, R_OBV, t, w_obv, mask, sc, S_OBV_VAR, obv_reseed)
        if t >= w_obv - 1:
            out[row, i] = dev / math.sqrt(var * w_obv / (w_obv - 1)) if var > 0.0 else 0.0
        else:
            out[row, i] = NAN
        row += 1

        # --- ROC (percent) and momentum / close
        if t >= n_roc:
            c_old = ring[R_C, (t - n_roc) & mask]
            out[row, i] = ((c / c_old) - 1.0) * 100.0 if c_old != 0.0 else 0.0
        else:
            out[row, i] = NAN
        row += 1
        for j in range(mom_w.shape[0]):
            lag = mom_w[j]
            out[row, i] = (c - ring[R_C, (t - lag) & mask]) / c if t >= lag else NAN
            row += 1

        # --- volume z-score (ddof=1)
        ring[R_V, k] = v
        var, dev, vol_reseed = _rolling_var(ring, R_V, t, w_vol, mask, sc, S_VOL_VAR, vol_reseed)
        if t >= w_vol - 1:
            out[row, i] = dev / math.sqrt(var * w_vol / (w_vol - 1)) if var > 0.0 else 0.0
        else:
            out[row, i] = NAN
        row += 1

        # --- rolling VWAP deviation (running sums, reset after a window of zero volume)
        bar_px = px[i] if not math.isnan(px[i]) else tp
        pv = bar_px * v
        if t >= w_vwap:
            vwap_pv -= ring[R_PV, (t - w_vwap) & mask]
            vwap_v -= ring[R_V, (t - w_vwap) & mask]
        ring[R_PV, k] = pv
        vwap_pv += pv
        vwap_v += v
        vwap_null = vwap_null + 1 if v == 0.0 else 0
        if vwap_null >= w_vwap:
            vwap_null = w_vwap
            vwap_pv = 0.0
            vwap_v = 0.0
        if t >= w_vwap - 1:
            out[row, i] = c / (vwap_pv / vwap_v) - 1.0 if vwap_v > 0.0 else 0.0
        else:
            out[row, i] = NAN
        row += 1

        # --- skew and excess kurtosis of returns (bias-corrected, as pandas/scipy): one
        # pass of power sums around the newest return, turned into central moments
        if t >= w_mom:
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            s4 = 0.0
            for q in range(t - w_mom + 1, t + 1):
                y = ring[R_R, q & mask] - r
                y2 = y * y
                s1 += y
                s2 += y2
                s3 += y2 * y
                s4 += y2 * y2
            mu = s1 / w_mom
            m2 = s2 - mu * s1
            if m2 <= 1e-14 * s2:  # flat window (exactly: every return equal)
                out[row, i] = 0.0
                out[row + 1, i] = 0.0
            else:
                m3 = s3 - 3.0 * mu * s2 + 2.0 * mu * mu * s1
                m4 = s4 - 4.0 * mu * s3 + 6.0 * mu * mu * s2 - 3.0 * mu * mu * mu * s1
                v2 = m2 / w_mom
                out[row, i] = skew_c * (m3 / w_mom) / (v2 * math.sqrt(v2))
                out[row + 1, i] = kurt_a * m4 / (m2 * m2) - kurt_b
        else:
            out[row, i] = NAN
            out[row + 1, i] = NAN
        row += 2

        # --- bar range, gap, return relative to the benchmark
        b = bench[i]
        out[row, i] = (h - lo) / c
        out[row + 1, i] = o / pc - 1.0 if t >= 1 else NAN
        out[row + 2, i] = r - math.log(b / pb) if t >= 1 else NAN

        pc, ph, pl, ptp, pb = c, h, lo, tp, b
        t += 1

    ints[I_T] = t
    ints[I_MFI_NULL], ints[I_VWAP_NULL] = mfi_null, vwap_null
    ints[I_BB_RESEED], ints[I_OBV_RESEED], ints[I_VOL_RESEED] = bb_reseed, obv_reseed, vol_reseed
    ints[I_STOCH_HI], ints[I_STOCH_LO] = stoch_hi, stoch_lo
    ints[I_WILLR_HI], ints[I_WILLR_LO] = willr_hi, willr_lo
    sc[S_PREV_C], sc[S_PREV_H], sc[S_PREV_L], sc[S_PREV_TP], sc[S_PREV_B] = pc, ph, pl, ptp, pb
    sc[S_PARK], sc[S_GK] = park_sum, gk_sum
    sc[S_RSI_GAIN], sc[S_RSI_LOSS] = rsi_gain, rsi_loss
    sc[S_MACD_SLOW], sc[S_MACD_FAST], sc[S_MACD_SUM] = macd_slow, macd_fast, macd_sum
    sc[S_MACD_SIG], sc[S_MACD_SIG_SUM] = macd_sig, macd_sig_sum
    sc[S_ATR] = atr
    sc[S_DM_PLUS], sc[S_DM_MINUS], sc[S_DM_TR] = dm_plus, dm_minus, dm_tr
    sc[S_ADX], sc[S_ADX_SUM] = adx, adx_sum
    sc[S_FASTK_SUM], sc[S_SLOWK_SUM] = fastk_sum, slowk_sum
    sc[S_STOCH_HH], sc[S_STOCH_LL] = stoch_hh, stoch_ll
    sc[S_WILLR_HH], sc[S_WILLR_LL] = willr_hh, willr_ll
    sc[S_MFI_POS], sc[S_MFI_NEG] = mfi_pos, mfi_neg
    sc[S_OBV], sc[S_VWAP_PV], sc[S_VWAP_V], sc[S_BB_SUM] = obv, vwap_pv, vwap_v, bb_sum
