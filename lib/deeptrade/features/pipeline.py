"""One block of bars through every feature family: shared by the batch and the live paths.

`advance(block, state, plan, out)` runs, in order:

1. the elementwise pre-pass: logs of bar ratios (numpy's vectorized log, which gives the
   same bits for a one-bar array as inside a long one, so live equals batch);
2. the four sequential kernels (`kernels.py`), each over its own state;
3. the elementwise finish (`_finish`, numba): ratios to close, square roots, Bollinger
   %b/width; plus the lagged-close logs of the multi-bar returns (numpy again);
4. the time features.

The state carries everything between blocks, so calling `advance` on a series in one block or
bar by bar gives identical output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from deeptrade.features.config import FeatureConfig
from deeptrade.features.kernels import (
    kernel_params,
    new_state,
    run_close,
    run_range,
    run_returns,
    run_volume,
)
from deeptrade.features.spec import family_rows, feature_names

LN2 = math.log(2.0)
GK_C = 2.0 * LN2 - 1.0
NS_PER_DAY = 86_400 * 1_000_000_000
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday = 0


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

    @classmethod
    def of(cls, config: FeatureConfig) -> Plan:
        return cls(config, kernel_params(config), family_rows(config), len(feature_names(config)))

    def fresh_state(self) -> dict[str, tuple[np.ndarray, ...]]:
        return new_state(self.config)


def advance(block: Block, state: dict, plan: Plan, out: np.ndarray) -> None:
    """Compute features for `block` into out (n_features, n), advancing `state`."""
    c, h, lo, o, b = block.close, block.high, block.low, block.open, block.bench
    prev = state["prev"][0]  # (close, benchmark close) of the bar before this block
    prev_c = np.concatenate((prev[:1], c[:-1]))
    prev_b = np.concatenate((prev[1:], b[:-1]))
    r = np.log(c / prev_c)
    lhl = np.log(h / lo)
    lco = np.log(c / o)
    park = lhl * lhl
    gk = 0.5 * park - GK_C * (lco * lco)
    bench_r = np.log(b / prev_b)

    rows, params = plan.rows, plan.params
    run_returns((c, r, park, gk), state["returns"], params, out[rows["returns"]])
    run_close((c,), state["close"], params, out[rows["close"]])
    run_range((h, lo, c), state["range"], params, out[rows["range"]])
    run_volume((h, lo, c, block.volume, block.bar_price), state["volume"], params, out[rows["volume"]])
    _finish(c, o, h, lo, prev_c, r, bench_r, params, out, rows["returns"].start,
            rows["close"].start, rows["range"].start, rows["bar"].start)  # fmt: skip
    # Multi-bar log returns: the kernel left the lagged close in the row.
    start = rows["returns"].start
    for j, lag in enumerate(plan.config.return_horizons):
        if lag > 1:
            out[start + j] = np.log(c / out[start + j])
    out[rows["time"]] = time_features(block.ts_ns, plan.config.session_tz)
    prev[0], prev[1] = c[-1], b[-1]


@njit(cache=True)
def _finish(c, o, h, lo, prev_c, r, bench_r, params, out, r_ret, r_close, r_range, r_bar):
    """Elementwise completion of the rows the kernels left raw (see each kernel's doc)."""
    p, ret_h, rv_w, ma_w, mom_w, _ = params
    n_ret, n_rv, n_ma, n_mom = ret_h.shape[0], rv_w.shape[0], ma_w.shape[0], mom_w.shape[0]
    w_range = p[0]
    park_scale = 1.0 / (w_range * 4.0 * LN2)
    r_park = r_ret + n_ret + n_rv
    r_macd = r_close + 2 * n_ma + 1
    r_bb = r_macd + 3
    for i in range(c.shape[0]):
        ci = c[i]
        for j in range(n_rv):
            out[r_ret + n_ret + j, i] = math.sqrt(max(out[r_ret + n_ret + j, i], 0.0))
        out[r_park, i] = math.sqrt(max(out[r_park, i], 0.0) * park_scale)
        out[r_park + 1, i] = math.sqrt(max(out[r_park + 1, i] / w_range, 0.0))
        for j in range(2 * n_ma):
            out[r_close + j, i] = ci / out[r_close + j, i] - 1.0
        for j in range(3):
            out[r_macd + j, i] = out[r_macd + j, i] / ci
        mid = out[r_bb, i]
        dev = out[r_bb + 1, i]
        upper = mid + dev
        lower = mid - dev
        width = upper - lower
        out[r_bb, i] = (ci - lower) / width if not width <= 0.0 else 0.5  # NaN stays NaN
        out[r_bb + 1, i] = width / mid
        out[r_bb + 2, i] = ((ci / out[r_bb + 2, i]) - 1.0) * 100.0
        for j in range(n_mom):
            out[r_bb + 3 + j, i] = out[r_bb + 3 + j, i] / ci
        out[r_range, i] = out[r_range, i] / ci
        out[r_bar, i] = (h[i] - lo[i]) / ci
        out[r_bar + 1, i] = o[i] / prev_c[i] - 1.0
        out[r_bar + 2, i] = r[i] - bench_r[i]


def time_features(ts_ns: np.ndarray, tz: str) -> np.ndarray:
    """(4, n) array: sin/cos of the time of day and of the weekday, in zone `tz`."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    if tz == "UTC":
        local = ts_ns
    else:
        wall = pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
        local = wall.tz_localize(None).as_unit("ns").asi8
    day_angle = (2.0 * np.pi / NS_PER_DAY) * (local % NS_PER_DAY).astype(np.float64)
    weekday = ((local // NS_PER_DAY + EPOCH_WEEKDAY) % 7).astype(np.float64)
    week_angle = (2.0 * np.pi / 7.0) * weekday
    return np.stack([np.sin(day_angle), np.cos(day_angle), np.sin(week_angle), np.cos(week_angle)])
