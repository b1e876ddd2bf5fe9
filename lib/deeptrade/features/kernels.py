"""The CPU backend's sequential part: four small numba state machines, one per feature family.

Each kernel (`run_returns`, `run_close`, `run_range`, `run_volume`) advances its family's
state over a block of bars and writes its rows of the output. All the history a kernel needs
lives in its state (ring buffers of recent values, running window sums, the EMA and Wilder
recursions), so the batch path runs it once over a whole series from a fresh state and the
live path (`streaming.py`) runs the same compiled code one bar at a time: streaming equals
batch bit for bit. Elementwise arithmetic (logs, ratios, normalisation by close) is left to
the vectorized passes in `pipeline.py`; a kernel writes such a feature's raw ingredient (an
SMA, a lagged close) and the pass finishes it.

Cost per bar is O(1) except for fixed, small windows re-scanned on purpose: the CCI mean
deviation (TA-Lib's definition has no running form) and the skew/kurtosis moments (exact,
drift-free), each one pass over their window; and, occasionally, a rolling variance rebuilt
when its running form loses precision or a window extreme that leaves its window.

TA-Lib parity: the TA-Lib indicators follow TA-Lib 0.8's arithmetic step by step (same
seeding, running-sum order, flat-window guards, shifted-sum variance), so most agree bit for
bit; ATR, MACD's signal and CCI agree to a few ulp (TA-Lib's build fuses multiply-adds, and
the CCI window is summed with four accumulators here instead of one serial chain).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from deeptrade.features.config import FeatureConfig

NAN = np.nan
# TA-Lib 0.8's relative dead-zone (TA_IS_ZERO_SCALED): |v| <= 1e-14 * scale counts as zero.
TA_EPSILON = 1e-14

# Integer parameters (p), shared by all kernels.
P_RANGE_VOL, P_RSI, P_MACD_F, P_MACD_S, P_MACD_G, P_BB, P_ATR, P_ADX = 0, 1, 2, 3, 4, 5, 6, 7
P_FASTK, P_SLOWK, P_SLOWD, P_WILLR, P_CCI, P_MFI, P_OBVZ, P_ROC = 8, 9, 10, 11, 12, 13, 14, 15
P_VOLZ, P_VWAP, P_MOMENTS = 16, 17, 18
N_PARAMS = 19

I_T = 0  # every kernel: bars seen so far = absolute index of the next bar

# returns family: state (ints, scalars, rvol sums, rings)
RET_S_PARK, RET_S_GK = 0, 1
RET_R_C, RET_R_R, RET_R_PARK, RET_R_GK = 0, 1, 2, 3  # RET_R_R is mirrored (see _ring_size)

# close family: state (ints, scalars, (SMA running sum, EMA) per MA window, rings)
CL_I_BB_RESEED = 1
CL_S_MACD_SLOW, CL_S_MACD_FAST, CL_S_MACD_SUM, CL_S_MACD_SIG, CL_S_MACD_SIG_SUM = 0, 1, 2, 3, 4
CL_S_RSI_GAIN, CL_S_RSI_LOSS, CL_S_BB_SUM = 5, 6, 7
CL_S_BB_VAR = 8  # 4 slots: rolling variance state (see _rolling_var)
CL_R_C = 0

# range family: state (ints, scalars, rings)
RG_I_STOCH_HI, RG_I_STOCH_LO, RG_I_WILLR_HI, RG_I_WILLR_LO = 1, 2, 3, 4  # bar of an extreme
RG_S_PC, RG_S_PH, RG_S_PL, RG_S_ATR = 0, 1, 2, 3
RG_S_DM_PLUS, RG_S_DM_MINUS, RG_S_DM_TR, RG_S_ADX, RG_S_ADX_SUM = 4, 5, 6, 7, 8
RG_S_FASTK_SUM, RG_S_SLOWK_SUM = 9, 10
RG_S_STOCH_HH, RG_S_STOCH_LL, RG_S_WILLR_HH, RG_S_WILLR_LL = 11, 12, 13, 14
RG_R_H, RG_R_L, RG_R_FASTK, RG_R_SLOWK = 0, 1, 2, 3

# volume family: state (ints, scalars, rings)
VO_I_MFI_NULL, VO_I_VWAP_NULL, VO_I_OBV_RESEED, VO_I_VOL_RESEED = 1, 2, 3, 4
VO_S_PC, VO_S_PTP, VO_S_MFI_POS, VO_S_MFI_NEG, VO_S_OBV, VO_S_VWAP_PV, VO_S_VWAP_V = range(7)
VO_S_OBV_VAR, VO_S_VOL_VAR = 7, 11  # 4 slots each
VO_R_TP, VO_R_MFI_POS, VO_R_MFI_NEG, VO_R_OBV, VO_R_V, VO_R_PV = range(6)  # VO_R_TP mirrored


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


def _ring_size(config: FeatureConfig) -> int:
    """A power of two above every window + 1: bar t lives in column t & (size - 1).

    A mirrored ring row also stores bar t at column (t & mask) + size, so the last w bars are
    always the contiguous columns [(t & mask) + size - w + 1, (t & mask) + size].
    """
    return 1 << (max_lookback(config) + 2).bit_length()


def new_state(config: FeatureConfig) -> dict[str, tuple[np.ndarray, ...]]:
    """Fresh per-family states for one series (plus `prev`: previous close and benchmark)."""
    size = _ring_size(config)

    def ints(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)

    def floats(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float64)

    range_ints = ints(5)
    range_ints[RG_I_STOCH_HI:] = -1  # no extreme tracked yet: the first use rescans
    return {
        "prev": (np.full(2, np.nan),),
        "returns": (ints(1), floats(2), floats(len(config.rvol_windows), 2), floats(4, 2 * size)),
        "close": (ints(2), floats(12), floats(len(config.ma_windows), 2), floats(1, size)),
        "range": (range_ints, floats(15), floats(4, size)),
        "volume": (ints(5), floats(15), floats(6, 2 * size)),
    }


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
    """One bar of TA-Lib 0.8's VAR (var.c #118/#243/#434), bit for bit; bar t is in the ring.

    Deviations are summed against a shift near the window (sc[s:s+4]: shift, sum, sum of
    squares, peak of that since the last rebuild), so the variance never subtracts two
    ~level^2 quantities; the sums are rebuilt two-pass when the variance falls below 1e-6 of
    the peak mean square, or every 32 windows. A flat window gives exactly 0.
    Returns (population variance, newest value - window mean, reseed); NaNs before bar w-1.
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
    """Max of the last w values, tracking the bar it sits at; rescans only when it leaves."""
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
    """Min of the last w values, tracking the bar it sits at; rescans only when it leaves."""
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
def run_returns(inputs: tuple, state: tuple, params: tuple, out: np.ndarray) -> None:
    """Log returns, realised/range volatility, skew and kurtosis of returns.

    inputs = (close, r, park, gk): r = 1-bar log return, park = log(H/L)^2 and gk the
    Garman-Klass term, all from the elementwise pre-pass. Raw rows written for the post-pass:
    log_ret_k (k > 1) = the close k bars ago; rvol = variance; parkinson/gk = window sums.
    """
    cl, rr, pk, gkt = inputs
    ints, sc, rv, ring = state
    p, ret_h, rv_w, _, _, _ = params
    size = ring.shape[1] // 2
    mask = size - 1
    w_range, w_mom = p[P_RANGE_VOL], p[P_MOMENTS]
    n_ret, n_rv = ret_h.shape[0], rv_w.shape[0]
    mm = float(w_mom)  # bias corrections of skew and kurtosis
    skew_c = math.sqrt(mm * (mm - 1.0)) / (mm - 2.0)
    kurt_a = (mm + 1.0) * mm * (mm - 1.0) / ((mm - 2.0) * (mm - 3.0))
    kurt_b = 3.0 * (mm - 1.0) ** 2 / ((mm - 2.0) * (mm - 3.0))
    t = ints[I_T]
    park_sum, gk_sum = sc[RET_S_PARK], sc[RET_S_GK]
    row_rv = n_ret
    row_park = n_ret + n_rv
    for i in range(cl.shape[0]):
        k = t & mask
        c, r, park, gk = cl[i], rr[i], pk[i], gkt[i]
        ring[RET_R_C, k] = c
        ring[RET_R_R, k] = r
        ring[RET_R_R, k + size] = r
        ring[RET_R_PARK, k] = park
        ring[RET_R_GK, k] = gk

        for j in range(n_ret):
            lag = ret_h[j]
            if t < lag:
                out[j, i] = NAN
            else:
                out[j, i] = r if lag == 1 else ring[RET_R_C, (t - lag) & mask]

        for j in range(n_rv):  # running sums of r and r^2
            w = rv_w[j]
            s1, s2 = rv[j, 0], rv[j, 1]
            if t >= 1:
                s1 += r
                s2 += r * r
                if t > w:
                    r_old = ring[RET_R_R, (t - w) & mask]
                    s1 -= r_old
                    s2 -= r_old * r_old
                rv[j, 0], rv[j, 1] = s1, s2
            out[row_rv + j, i] = (s2 - s1 * s1 / w) / (w - 1) if t >= w else NAN

        park_sum += park
        gk_sum += gk
        if t >= w_range:
            park_sum -= ring[RET_R_PARK, (t - w_range) & mask]
            gk_sum -= ring[RET_R_GK, (t - w_range) & mask]
        out[row_park, i] = park_sum if t >= w_range - 1 else NAN
        out[row_park + 1, i] = gk_sum if t >= w_range - 1 else NAN

        # Skew/kurtosis: power sums around the newest return, one pass over the (contiguous,
        # mirrored) window, turned into central moments.
        if t >= w_mom:
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            s4 = 0.0
            for q in range(k + size - w_mom + 1, k + size + 1):
                y = ring[RET_R_R, q] - r
                y2 = y * y
                s1 += y
                s2 += y2
                s3 += y2 * y
                s4 += y2 * y2
            mu = s1 / w_mom
            m2 = s2 - mu * s1
            if m2 <= 1e-14 * s2:  # flat window (every return equal, up to rounding)
                out[row_park + 2, i] = 0.0
                out[row_park + 3, i] = 0.0
            else:
                m3 = s3 - 3.0 * mu * s2 + 2.0 * mu * mu * s1
                m4 = s4 - 4.0 * mu * s3 + 6.0 * mu * mu * s2 - 3.0 * mu * mu * mu * s1
                v2 = m2 / w_mom
                out[row_park + 2, i] = skew_c * (m3 / w_mom) / (v2 * math.sqrt(v2))
                out[row_park + 3, i] = kurt_a * m4 / (m2 * m2) - kurt_b
        else:
            out[row_park + 2, i] = NAN
            out[row_park + 3, i] = NAN
        t += 1
    ints[I_T] = t
    sc[RET_S_PARK], sc[RET_S_GK] = park_sum, gk_sum


@njit(cache=True)
def run_close(inputs: tuple, state: tuple, params: tuple, out: np.ndarray) -> None:
    """SMA/EMA, RSI, MACD, Bollinger bands, ROC and momentum: everything driven by close.

    inputs = (close,). Raw rows for the post-pass: SMA and EMA values; MACD line, signal and
    histogram in price units; Bollinger middle band (pctb row) and nbdev * std (width row);
    the close roc_period bars ago (roc row); close minus the close k bars ago (mom rows).
    """
    (cl,) = inputs
    ints, sc, ma, ring = state
    p, _, _, ma_w, mom_w, fp = params
    mask = ring.shape[1] - 1
    n_rsi, w_bb, nbdev, n_roc = p[P_RSI], p[P_BB], fp[0], p[P_ROC]
    nf, ns, ng = p[P_MACD_F], p[P_MACD_S], p[P_MACD_G]
    n_ma, n_mom = ma_w.shape[0], mom_w.shape[0]
    inv_rsi = 1.0 / n_rsi
    k_slow, k_fast, k_sig = 2.0 / (ns + 1), 2.0 / (nf + 1), 2.0 / (ng + 1)
    sig_start = ns + ng - 2
    row_rsi = 2 * n_ma
    row_macd, row_bb, row_roc = row_rsi + 1, row_rsi + 4, row_rsi + 6

    t, bb_reseed = ints[I_T], ints[CL_I_BB_RESEED]
    macd_slow, macd_fast, macd_sum = sc[CL_S_MACD_SLOW], sc[CL_S_MACD_FAST], sc[CL_S_MACD_SUM]
    macd_sig, macd_sig_sum = sc[CL_S_MACD_SIG], sc[CL_S_MACD_SIG_SUM]
    rsi_gain, rsi_loss, bb_sum = sc[CL_S_RSI_GAIN], sc[CL_S_RSI_LOSS], sc[CL_S_BB_SUM]
    for i in range(cl.shape[0]):
        k = t & mask
        c = cl[i]
        pc = ring[CL_R_C, (t - 1) & mask]
        ring[CL_R_C, k] = c

        # SMA (TA-Lib running sum) and EMA (seeded with the first SMA)
        for j in range(n_ma):
            w = ma_w[j]
            total = ma[j, 0] + c
            if t >= w - 1:
                sma = total / w
                total -= ring[CL_R_C, (t - w + 1) & mask]
                ema = sma if t == w - 1 else ((c - ma[j, 1]) * (2.0 / (w + 1))) + ma[j, 1]
                ma[j, 1] = ema
                out[j, i] = sma
                out[n_ma + j, i] = ema
            else:
                out[j, i] = NAN
                out[n_ma + j, i] = NAN
            ma[j, 0] = total

        # RSI (Wilder; TA-Lib 0.8 scales by 1/n rather than dividing)
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
            for q in range(t - nf + 1, t + 1):
                total += ring[CL_R_C, q & mask]
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
                out[row_macd, i] = m
                out[row_macd + 1, i] = macd_sig
                out[row_macd + 2, i] = m - macd_sig

        # Bollinger bands: SMA middle band, TA-Lib VAR deviation
        bb_sum += c
        var, _, bb_reseed = _rolling_var(ring, CL_R_C, t, w_bb, mask, sc, CL_S_BB_VAR, bb_reseed)
        if t >= w_bb - 1:
            out[row_bb, i] = bb_sum / w_bb
            bb_sum -= ring[CL_R_C, (t - w_bb + 1) & mask]
            out[row_bb + 1, i] = math.sqrt(var) * nbdev
        else:
            out[row_bb, i] = NAN
            out[row_bb + 1, i] = NAN

        out[row_roc, i] = ring[CL_R_C, (t - n_roc) & mask] if t >= n_roc else NAN
        for j in range(n_mom):
            lag = mom_w[j]
            out[row_roc + 1 + j, i] = c - ring[CL_R_C, (t - lag) & mask] if t >= lag else NAN
        t += 1

    ints[I_T], ints[CL_I_BB_RESEED] = t, bb_reseed
    sc[CL_S_MACD_SLOW], sc[CL_S_MACD_FAST], sc[CL_S_MACD_SUM] = macd_slow, macd_fast, macd_sum
    sc[CL_S_MACD_SIG], sc[CL_S_MACD_SIG_SUM] = macd_sig, macd_sig_sum
    sc[CL_S_RSI_GAIN], sc[CL_S_RSI_LOSS], sc[CL_S_BB_SUM] = rsi_gain, rsi_loss, bb_sum


@njit(cache=True)
def run_range(inputs: tuple, state: tuple, params: tuple, out: np.ndarray) -> None:
    """ATR, +DI/-DI/ADX, stochastic %K/%D and Williams %R: everything driven by the bar range.

    inputs = (high, low, close). Raw row for the post-pass: ATR in price units.
    """
    hi_, lo_, cl = inputs
    ints, sc, ring = state
    p = params[0]
    mask = ring.shape[1] - 1
    n_atr, n_adx, n_willr = p[P_ATR], p[P_ADX], p[P_WILLR]
    nk, nsk, nsd = p[P_FASTK], p[P_SLOWK], p[P_SLOWD]
    atr_beta = (n_atr - 1) / n_atr  # TA-Lib 0.8's two-coefficient Wilder step
    atr_alpha = 1.0 - atr_beta
    stoch_start = nk + nsk + nsd - 3

    t = ints[I_T]
    stoch_hi, stoch_lo = ints[RG_I_STOCH_HI], ints[RG_I_STOCH_LO]
    willr_hi, willr_lo = ints[RG_I_WILLR_HI], ints[RG_I_WILLR_LO]
    pc, ph, pl, atr = sc[RG_S_PC], sc[RG_S_PH], sc[RG_S_PL], sc[RG_S_ATR]
    dm_plus, dm_minus, dm_tr = sc[RG_S_DM_PLUS], sc[RG_S_DM_MINUS], sc[RG_S_DM_TR]
    adx, adx_sum = sc[RG_S_ADX], sc[RG_S_ADX_SUM]
    fastk_sum, slowk_sum = sc[RG_S_FASTK_SUM], sc[RG_S_SLOWK_SUM]
    stoch_hh, stoch_ll = sc[RG_S_STOCH_HH], sc[RG_S_STOCH_LL]
    willr_hh, willr_ll = sc[RG_S_WILLR_HH], sc[RG_S_WILLR_LL]
    for i in range(cl.shape[0]):
        k = t & mask
        h, lo, c = hi_[i], lo_[i], cl[i]
        ring[RG_R_H, k] = h
        ring[RG_R_L, k] = lo
        for row in range(4):
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
                out[0, i] = atr

            # Directional movement: +DI/-DI from bar n, ADX from bar 2n-1 (Wilder).
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

        # Stochastic slow %K / %D: SMA smoothing (TA-Lib running sums) of fast %K.
        out[4, i] = NAN
        out[5, i] = NAN
        if t >= nk - 1:
            stoch_hh, stoch_hi = _window_max(ring, RG_R_H, t, nk, mask, stoch_hh, stoch_hi)
            stoch_ll, stoch_lo = _window_min(ring, RG_R_L, t, nk, mask, stoch_ll, stoch_lo)
            rng = stoch_hh - stoch_ll
            fastk = 0.0
            if not _is_flat(rng, abs(stoch_hh) + abs(stoch_ll)):
                fastk = ((c - stoch_ll) / rng) * 100.0
            ring[RG_R_FASTK, k] = fastk
            fastk_sum += fastk
            if t >= nk + nsk - 2:
                slowk = fastk_sum / nsk
                fastk_sum -= ring[RG_R_FASTK, (t - nsk + 1) & mask]
                ring[RG_R_SLOWK, k] = slowk
                slowk_sum += slowk
                if t >= stoch_start:
                    out[4, i] = slowk
                    out[5, i] = slowk_sum / nsd
                    slowk_sum -= ring[RG_R_SLOWK, (t - nsd + 1) & mask]

        if t >= n_willr - 1:
            willr_hh, willr_hi = _window_max(ring, RG_R_H, t, n_willr, mask, willr_hh, willr_hi)
            willr_ll, willr_lo = _window_min(ring, RG_R_L, t, n_willr, mask, willr_ll, willr_lo)
            rng = willr_hh - willr_ll
            if _is_flat(rng, abs(willr_hh) + abs(willr_ll)):
                out[6, i] = 0.0
            else:
                out[6, i] = min(max(((willr_hh - c) / rng) * -100.0, -100.0), 0.0)
        else:
            out[6, i] = NAN
        pc, ph, pl = c, h, lo
        t += 1

    ints[I_T] = t
    ints[RG_I_STOCH_HI], ints[RG_I_STOCH_LO] = stoch_hi, stoch_lo
    ints[RG_I_WILLR_HI], ints[RG_I_WILLR_LO] = willr_hi, willr_lo
    sc[RG_S_PC], sc[RG_S_PH], sc[RG_S_PL], sc[RG_S_ATR] = pc, ph, pl, atr
    sc[RG_S_DM_PLUS], sc[RG_S_DM_MINUS], sc[RG_S_DM_TR] = dm_plus, dm_minus, dm_tr
    sc[RG_S_ADX], sc[RG_S_ADX_SUM] = adx, adx_sum
    sc[RG_S_FASTK_SUM], sc[RG_S_SLOWK_SUM] = fastk_sum, slowk_sum
    sc[RG_S_STOCH_HH], sc[RG_S_STOCH_LL] = stoch_hh, stoch_ll
    sc[RG_S_WILLR_HH], sc[RG_S_WILLR_LL] = willr_hh, willr_ll


@njit(cache=True)
def run_volume(inputs: tuple, state: tuple, params: tuple, out: np.ndarray) -> None:
    """CCI, MFI, OBV and volume z-scores, rolling-VWAP deviation: typical price and volume.

    inputs = (high, low, close, volume, bar_price); bar_price NaN -> typical price.
    All rows are final.
    """
    hi_, lo_, cl, vol, px = inputs
    ints, sc, ring = state
    p = params[0]
    size = ring.shape[1] // 2
    mask = size - 1
    n_cci, n_mfi, w_obv, w_vol, w_vwap = p[P_CCI], p[P_MFI], p[P_OBVZ], p[P_VOLZ], p[P_VWAP]
    inv_cci = 1.0 / n_cci

    t = ints[I_T]
    mfi_null, vwap_null = ints[VO_I_MFI_NULL], ints[VO_I_VWAP_NULL]
    obv_reseed, vol_reseed = ints[VO_I_OBV_RESEED], ints[VO_I_VOL_RESEED]
    pc, ptp, obv = sc[VO_S_PC], sc[VO_S_PTP], sc[VO_S_OBV]
    mfi_pos, mfi_neg = sc[VO_S_MFI_POS], sc[VO_S_MFI_NEG]
    vwap_pv, vwap_v = sc[VO_S_VWAP_PV], sc[VO_S_VWAP_V]
    for i in range(cl.shape[0]):
        k = t & mask
        h, lo, c, v = hi_[i], lo_[i], cl[i], vol[i]
        tp = (h + lo + c) / 3
        ring[VO_R_TP, k] = tp
        ring[VO_R_TP, k + size] = tp

        # CCI: TA-Lib's definition, the window summed with four accumulators (contiguous,
        # mirrored ring) to break the serial add chain; within a few ulp of TA-Lib.
        if t >= n_cci - 1:
            lo_q = k + size - n_cci + 1
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            q = lo_q
            while q + 3 <= k + size:
                a0 += ring[VO_R_TP, q]
                a1 += ring[VO_R_TP, q + 1]
                a2 += ring[VO_R_TP, q + 2]
                a3 += ring[VO_R_TP, q + 3]
                q += 4
            while q <= k + size:
                a0 += ring[VO_R_TP, q]
                q += 1
            avg = ((a0 + a1) + (a2 + a3)) * inv_cci
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            q = lo_q
            while q + 3 <= k + size:
                a0 += abs(ring[VO_R_TP, q] - avg)
                a1 += abs(ring[VO_R_TP, q + 1] - avg)
                a2 += abs(ring[VO_R_TP, q + 2] - avg)
                a3 += abs(ring[VO_R_TP, q + 3] - avg)
                q += 4
            while q <= k + size:
                a0 += abs(ring[VO_R_TP, q] - avg)
                q += 1
            mad = ((a0 + a1) + (a2 + a3)) * inv_cci
            dev = tp - avg
            scale = abs(avg)
            if _is_flat(dev, scale) or _is_flat(mad, scale):
                out[0, i] = 0.0
            else:
                out[0, i] = dev / (0.015 * mad)
        else:
            out[0, i] = NAN

        # MFI (TA-Lib 0.8: scaled dead-zone for "no move", empty-window reset, clamp)
        if t >= 1:
            d = tp - ptp
            money = 0.0 if _is_flat(d, abs(tp) + abs(ptp)) else tp * v
            pos = 0.0 if d < 0.0 else money
            neg = money if d < 0.0 else 0.0
            if t > n_mfi:
                mfi_pos -= ring[VO_R_MFI_POS, (t - n_mfi) & mask]
                mfi_neg -= ring[VO_R_MFI_NEG, (t - n_mfi) & mask]
            ring[VO_R_MFI_POS, k] = pos
            ring[VO_R_MFI_NEG, k] = neg
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
            out[1, i] = 0.0 if tot <= 0.0 else 100.0 * (pos / tot)
        else:
            out[1, i] = NAN

        # OBV and volume z-scores (ddof=1) over TA-Lib VAR rolling variances
        if t == 0:
            obv = v
        elif c > pc:
            obv += v
        elif c < pc:
            obv -= v
        ring[VO_R_OBV, k] = obv
        var, dev, obv_reseed = _rolling_var(
            ring, VO_R_OBV, t, w_obv, mask, sc, VO_S_OBV_VAR, obv_reseed
        )
        if t >= w_obv - 1:
            out[2, i] = dev / math.sqrt(var * w_obv / (w_obv - 1)) if var > 0.0 else 0.0
        else:
            out[2, i] = NAN
        ring[VO_R_V, k] = v
        var, dev, vol_reseed = _rolling_var(
            ring, VO_R_V, t, w_vol, mask, sc, VO_S_VOL_VAR, vol_reseed
        )
        if t >= w_vol - 1:
            out[3, i] = dev / math.sqrt(var * w_vol / (w_vol - 1)) if var > 0.0 else 0.0
        else:
            out[3, i] = NAN

        # Rolling VWAP: running sums, reset after a whole window without volume.
        pv = (px[i] if not math.isnan(px[i]) else tp) * v
        if t >= w_vwap:
            vwap_pv -= ring[VO_R_PV, (t - w_vwap) & mask]
            vwap_v -= ring[VO_R_V, (t - w_vwap) & mask]
        ring[VO_R_PV, k] = pv
        vwap_pv += pv
        vwap_v += v
        vwap_null = vwap_null + 1 if v == 0.0 else 0
        if vwap_null >= w_vwap:
            vwap_null = w_vwap
            vwap_pv = 0.0
            vwap_v = 0.0
        if t >= w_vwap - 1:
            out[4, i] = c / (vwap_pv / vwap_v) - 1.0 if vwap_v > 0.0 else 0.0
        else:
            out[4, i] = NAN
        pc, ptp = c, tp
        t += 1

    ints[I_T], ints[VO_I_MFI_NULL], ints[VO_I_VWAP_NULL] = t, mfi_null, vwap_null
    ints[VO_I_OBV_RESEED], ints[VO_I_VOL_RESEED] = obv_reseed, vol_reseed
    sc[VO_S_PC], sc[VO_S_PTP], sc[VO_S_OBV] = pc, ptp, obv
    sc[VO_S_MFI_POS], sc[VO_S_MFI_NEG] = mfi_pos, mfi_neg
    sc[VO_S_VWAP_PV], sc[VO_S_VWAP_V] = vwap_pv, vwap_v
