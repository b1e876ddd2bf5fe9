"""One block of bars through every feature: shared by the batch and the live paths.

`advance(block, state, plan, out)` extends each input series with the history kept in
`state` (the last `plan.history` bars), then runs:

1. elementwise logs of bar ratios with numpy's vectorized log (one-bar arrays give the same
   bits as long ones, so live equals batch);
2. the rolling-window features (`windows.py`) and the recursive kernels (`kernels.py`);
3. the bar features (range, gap, benchmark-relative return) and the time features;

and keeps the new history. Computing a series in one block or bar by bar gives identical
output: the batch path is one call from a fresh state, the live path one call per bar.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from deeptrade.features import windows as win
from deeptrade.features.config import FeatureConfig
from deeptrade.features.kernels import (
    kernel_params,
    new_kernel_states,
    run_flow,
    run_rolling_std,
    run_trend,
    run_wilder,
)
from deeptrade.features.spec import FAMILIES, family_rows, feature_names

GK_C = 2.0 * math.log(2.0) - 1.0
NS_PER_DAY = 86_400 * 1_000_000_000
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0
# Time features by table (no trigonometry per bar): time of day at one-second resolution,
# day of week.
_TOD_ANGLE = 2.0 * np.pi * np.arange(86_400) / 86_400.0
TOD_SIN, TOD_COS = np.sin(_TOD_ANGLE), np.cos(_TOD_ANGLE)
_DOW_ANGLE = 2.0 * np.pi * np.arange(7) / 7.0
DOW_SIN, DOW_COS = np.sin(_DOW_ANGLE), np.cos(_DOW_ANGLE)
# Per-bar series kept as history between blocks (inputs and derived ones the windows read).
SERIES = ("c", "h", "l", "v", "r", "tp", "park", "gk", "pv", "fastk", "slowk", "pos", "neg", "obv")


@dataclass(frozen=True)
class Block:
    """Bars as contiguous float64 arrays (bar_price/bench NaN where unknown), UTC ns stamps."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    bar_price: np.ndarray
    bench: np.ndarray
    ts_ns: np.ndarray


@dataclass(frozen=True)
class Plan:
    """What `advance` needs from the config, derived once."""

    config: FeatureConfig
    params: tuple
    rows: dict[str, slice]
    n_features: int
    history: int  # bars of history any window or lag reads

    @classmethod
    def of(cls, config: FeatureConfig) -> Plan:
        return cls(
            config,
            kernel_params(config),
            family_rows(config),
            len(feature_names(config)),
            max_lookback(config),
        )

    def split(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """Per family, its rows of an (n_features, n) output array (views)."""
        return {fam: out[rows] for fam, rows in self.rows.items()}

    def alloc(self, n: int, families: Collection[str] = FAMILIES) -> dict[str, np.ndarray]:
        """Output arrays for n bars, one per family.

        Separate arrays rather than one (n_features, n) block: above 32 MiB glibc maps
        fresh pages for every allocation (~1.4 ns per value on first touch here), below it
        reuses freed memory.
        """
        return {f: np.empty((r.stop - r.start, n)) for f, r in self.rows.items() if f in families}

    def fresh_state(self) -> dict:
        """State before the first bar of a series."""
        return {
            "t": 0,
            "prev_bench": np.nan,
            "hist": np.empty((len(SERIES), 0)),
            **new_kernel_states(self.config),
        }


def max_lookback(config: FeatureConfig) -> int:
    """The longest window or lag any feature reads (bars)."""
    c = config
    return max(
        *c.return_horizons,
        *c.rvol_windows,
        *c.ma_windows,
        *c.momentum_periods,
        c.range_vol_window,
        c.macd_slow,
        c.bb_period,
        c.stoch_fastk + c.stoch_slowk + c.stoch_slowd,
        c.willr_period,
        c.cci_period,
        c.mfi_period,
        c.obv_z_window,
        c.roc_period,
        c.volume_z_window,
        c.vwap_window,
        c.moments_window,
    )


def advance(
    block: Block,
    state: dict,
    plan: Plan,
    out: np.ndarray | Mapping[str, np.ndarray],
    families: Collection[str] = FAMILIES,
) -> None:
    """Compute features for `block` into `out`, advancing `state`.

    out: (n_features, n), or per family its (features, n) rows (see `Plan.alloc`).

    `families` (default: all) restricts the work to those feature families (see spec); the
    other rows of `out` are left untouched and the state is then good for nothing more, so
    a subset is for one-shot use (benchmarks), never for a live calculator.
    """
    cfg = plan.config
    fam_out = plan.split(out) if isinstance(out, np.ndarray) else out
    n = block.close.shape[0]
    hist = state["hist"]
    s = hist.shape[1]  # bars of history before the block
    inputs = {"c": block.close, "h": block.high, "l": block.low, "v": block.volume}
    if s == 0:  # a series' first block: the inputs themselves, no copies
        x = {name: inputs[name] if name in inputs else np.empty(n) for name in SERIES}
    else:
        ext = np.empty((len(SERIES), s + n))
        ext[:, :s] = hist
        x = dict(zip(SERIES, ext, strict=True))
        for name, values in inputs.items():
            x[name][s:] = values
    cb = x["c"][s:]
    prev_c = np.empty(n)
    win.lagged(x["c"], 1, s, prev_c)
    if "returns" in families or "bar" in families:
        np.log(cb / prev_c, out=x["r"][s:])
    _price_terms(block.high, block.low, cb, block.volume, block.bar_price, x["tp"][s:], x["pv"][s:])

    if "returns" in families:
        lhl = np.log(block.high / block.low)
        lco = np.log(cb / block.open)
        _range_terms(lhl, lco, x["park"][s:], x["gk"][s:])
        _returns(x, s, state, plan, fam_out["returns"])
    if "close" in families:
        _close(x, s, state, plan, fam_out["close"])
    if "range" in families:
        _range(x, s, state, plan, fam_out["range"])
    if "volume" in families:
        _volume(x, s, state, plan, fam_out["volume"])
    if "bar" in families:
        o = fam_out["bar"]
        o[0] = (block.high - block.low) / cb
        o[1] = block.open / prev_c - 1.0
        prev_b = np.concatenate(([state["prev_bench"]], block.bench[:-1]))
        o[2] = x["r"][s:] - np.log(block.bench / prev_b)
    if "time" in families:
        time_features(block.ts_ns, cfg.session_tz, fam_out["time"])

    keep = min(plan.history, s + n)
    state["hist"] = np.stack([x[name][s + n - keep :] for name in SERIES])
    state["t"] += n
    state["prev_bench"] = block.bench[-1]


def _returns(x: dict, s: int, state: dict, plan: Plan, o: np.ndarray) -> None:
    cfg, c, r = plan.config, x["c"], x["r"]
    row = 0
    for k in cfg.return_horizons:
        if k == 1:
            o[row] = r[s:]
        else:
            win.lagged(c, k, s, o[row])
            o[row] = np.log(c[s:] / o[row])
        row += 1
    scratch = np.empty(c.shape[0] - s)
    for j, w in enumerate(cfg.rvol_windows):
        run_rolling_std(r, s, state["t"], 1, w, state["var"][j], o[row], scratch)
        row += 1
    win.range_vol(x["park"], x["gk"], cfg.range_vol_window, s, o[row], o[row + 1])
    win.window_skew_kurt(r, cfg.moments_window, s, o[row + 2], o[row + 3])


def _close(x: dict, s: int, state: dict, plan: Plan, o: np.ndarray) -> None:
    run_trend(x["c"], s, state["t"], state["trend"], plan.params, o)


def _range(x: dict, s: int, state: dict, plan: Plan, o: np.ndarray) -> None:
    cfg, c, h, lo, fastk = plan.config, x["c"], x["h"], x["l"], x["fastk"]
    win.stochastic_fast_k(h, lo, c, cfg.stoch_fastk, s, fastk[s:])
    run_wilder(h, lo, c, fastk, x["slowk"], s, state["t"], state["wilder"], plan.params, o)
    win.williams_r(h, lo, c, cfg.willr_period, s, o[6])


def _volume(x: dict, s: int, state: dict, plan: Plan, o: np.ndarray) -> None:
    cfg, c, v, tp, t0 = plan.config, x["c"], x["v"], x["tp"], state["t"]
    win.window_cci(tp, cfg.cci_period, s, o[0])
    run_flow(tp, v, c, x["pos"], x["neg"], x["obv"], s, t0, state["flow"], plan.params, o[1:2])
    k = len(cfg.rvol_windows)
    scratch = np.empty(c.shape[0] - s)
    run_rolling_std(x["obv"], s, t0, 0, cfg.obv_z_window, state["var"][k], scratch, o[2])
    run_rolling_std(v, s, t0, 0, cfg.volume_z_window, state["var"][k + 1], scratch, o[3])
    win.vwap_deviation(x["pv"], v, c, cfg.vwap_window, s, o[4])


@njit(cache=True, error_model="numpy")
def _price_terms(hi, lo, cl, vol, bar_price, tp, pv) -> None:
    """Typical price, and the VWAP weight: bar price (vwap if known, else typical) x volume."""
    for i in range(cl.shape[0]):
        tp[i] = (hi[i] + lo[i] + cl[i]) / 3
        pv[i] = (tp[i] if math.isnan(bar_price[i]) else bar_price[i]) * vol[i]


@njit(cache=True, error_model="numpy")
def _range_terms(lhl, lco, park, gk) -> None:
    """Per-bar Parkinson (log(H/L)^2) and Garman-Klass terms."""
    for i in range(lhl.shape[0]):
        park[i] = lhl[i] * lhl[i]
        gk[i] = 0.5 * (lhl[i] * lhl[i]) - GK_C * (lco[i] * lco[i])


def time_features(ts_ns: np.ndarray, tz: str, out: np.ndarray) -> None:
    """out (4, n): sin/cos of the time of day and of the weekday, in zone `tz`."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    if tz != "UTC":
        wall = pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
        ts_ns = wall.tz_localize(None).as_unit("ns").asi8
    second, weekday = _day_parts(ts_ns)
    np.take(TOD_SIN, second, out=out[0])
    np.take(TOD_COS, second, out=out[1])
    np.take(DOW_SIN, weekday, out=out[2])
    np.take(DOW_COS, weekday, out=out[3])


@njit(cache=True, error_model="numpy")
def _day_parts(ts_ns: np.ndarray):
    """(second of the day, weekday with Monday = 0) of nanosecond timestamps."""
    second = np.empty(ts_ns.shape[0], dtype=np.int64)
    weekday = np.empty(ts_ns.shape[0], dtype=np.int64)
    for i in range(ts_ns.shape[0]):
        day = ts_ns[i] // NS_PER_DAY
        second[i] = (ts_ns[i] - day * NS_PER_DAY) // 1_000_000_000
        weekday[i] = (day + EPOCH_WEEKDAY) % 7
    return second, weekday
