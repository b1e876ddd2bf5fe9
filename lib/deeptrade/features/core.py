"""`compute_features`: one validated bar series in, one row of point-in-time features per bar out.

Every feature at bar t is a function of bars 0..t only (proved by the perturbation tests in
tests/unit/features). Rows before a feature's warm-up is complete hold NaN, never a filled
value, and are flagged in the boolean `warmup` column.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import pandas as pd
from numba import njit

from deeptrade.features.config import FeatureConfig
from deeptrade.features.pipeline import Block, Plan, advance
from deeptrade.features.spec import feature_names, warmup_bars

BACKENDS = ("cpu", "gpu")
REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")

BenchmarkLike: TypeAlias = pd.Series | np.ndarray | None


def compute_features(
    bars: pd.DataFrame,
    *,
    benchmark_close: BenchmarkLike = None,
    config: FeatureConfig | None = None,
    backend: str = "cpu",
) -> pd.DataFrame:
    """Features for one (symbol, timeframe) series; same row count and index as `bars`.

    Columns: `timestamp`, one float64 column per name in `feature_names(config)`, and bool
    `warmup` (true where any feature is still inside its warm-up window).

    benchmark_close: the benchmark's close, either a Series indexed by timestamp (aligned
    here; a missing timestamp gives NaN) or an array already aligned row by row with `bars`.
    Without it `rel_log_ret_1` is NaN.
    """
    config = config or FeatureConfig()
    if backend == "gpu":
        from deeptrade.features.gpu import compute_features_gpu

        return compute_features_gpu(bars, benchmark_close=benchmark_close, config=config)
    if backend != "cpu":
        raise ValueError(f"backend={backend!r}: use one of {BACKENDS}")
    block = to_block(bars, benchmark_close)
    plan = Plan.of(config)
    n = len(block.close)
    if plan.n_features * n * 8 <= ONE_BLOCK_BYTES:
        out: np.ndarray | dict[str, np.ndarray] = np.empty((plan.n_features, n))
    else:
        out = plan.alloc(n)
    if n:
        advance(block, plan.fresh_state(), plan, out)
    return assemble_frame(bars, out, config)


# Up to this size the output is one array (one DataFrame block, cheapest to build); above,
# one array per feature family (see Plan.alloc), joined without copying.
ONE_BLOCK_BYTES = 32 * 2**20


def assemble_frame(
    bars: pd.DataFrame, out: np.ndarray | dict[str, np.ndarray], config: FeatureConfig
) -> pd.DataFrame:
    """DataFrame from the output array(s), without copying them."""
    names = feature_names(config)
    if isinstance(out, np.ndarray):
        frame = pd.DataFrame(out.T, columns=names, index=bars.index, copy=False)
    else:
        parts, start = [], 0
        for block in out.values():  # family order = column order
            cols = names[start : start + block.shape[0]]
            parts.append(pd.DataFrame(block.T, columns=cols, index=bars.index, copy=False))
            start += block.shape[0]
        frame = pd.concat(parts, axis=1)
    frame.insert(0, "timestamp", bars["timestamp"].dt.as_unit("ns"))
    frame["warmup"] = np.arange(len(frame)) < warmup_bars(config)
    return frame


def to_block(bars: pd.DataFrame, benchmark_close: BenchmarkLike) -> Block:
    """Validate `bars` (the deeptrade.data.schema contract) and extract the kernel inputs."""
    missing = [c for c in REQUIRED if c not in bars.columns]
    if missing:
        raise ValueError(
            f"bars lack columns {missing}; expected {list(REQUIRED)} (+ optional vwap, "
            "trade_count) as in deeptrade.data.schema"
        )
    stamps = bars["timestamp"]
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype) or str(stamps.dtype.tz) != "UTC":
        raise ValueError(
            f"bars.timestamp has dtype {stamps.dtype}; it must be tz-aware UTC "
            "(e.g. pd.to_datetime(col, utc=True))"
        )
    ts = pd.DatetimeIndex(stamps).as_unit("ns").asi8
    row = _first_unsorted(ts)
    if row >= 0:
        raise ValueError(
            f"bars.timestamp is not strictly increasing at row {row} ({stamps.iloc[row]}); "
            "sort and de-duplicate the bars first"
        )
    arrays = {}
    for name in ("open", "high", "low", "close", "volume"):
        x = _float_column(bars, name)
        row = _first_invalid(x, name == "volume")
        if row >= 0:
            need = "finite and >= 0" if name == "volume" else "finite and > 0"
            raise ValueError(
                f"bars.{name} at row {row} ({stamps.iloc[row]}) is {x[row]!r}; values must be "
                f"{need}: drop or repair such bars before computing features"
            )
        arrays[name] = x
    if "vwap" in bars.columns:
        px = _float_column(bars, "vwap")
        if (px <= 0.0).any():
            row = int(np.argmax(px <= 0.0))
            raise ValueError(f"bars.vwap at row {row} is {px[row]!r}; use NaN for 'no vwap'")
    else:
        px = np.full(len(ts), np.nan)
    bench = align_benchmark(benchmark_close, stamps)
    return Block(**arrays, bar_price=px, bench=bench, ts_ns=ts)


def _float_column(bars: pd.DataFrame, name: str) -> np.ndarray:
    col = bars[name]
    if col.dtype == np.float64:  # the contract's dtype: no copy
        return np.ascontiguousarray(col.to_numpy())
    return np.ascontiguousarray(col.to_numpy(dtype=np.float64, na_value=np.nan))


@njit(cache=True)
def _first_unsorted(ts: np.ndarray) -> int:
    for i in range(1, ts.shape[0]):
        if ts[i] <= ts[i - 1]:
            return i
    return -1


@njit(cache=True)
def _first_invalid(x: np.ndarray, zero_ok: bool) -> int:
    """First row that is not finite, or not > 0 (>= 0 with zero_ok); -1 if none."""
    for i in range(x.shape[0]):
        v = x[i]
        if not (v > 0.0 or (zero_ok and v == 0.0)) or v == np.inf:
            return i
    return -1


def align_benchmark(benchmark_close: BenchmarkLike, stamps: pd.Series) -> np.ndarray:
    """The benchmark close per bar (NaN where unknown); see `compute_features`."""
    n = len(stamps)
    if benchmark_close is None:
        return np.full(n, np.nan)
    if isinstance(benchmark_close, pd.Series) and isinstance(
        benchmark_close.index, pd.DatetimeIndex
    ):
        if benchmark_close.index.tz is None:
            raise ValueError("benchmark_close is indexed by naive timestamps; localize to UTC")
        aligned = benchmark_close.reindex(pd.DatetimeIndex(stamps))
        values = aligned.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = np.asarray(benchmark_close, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(
                f"benchmark_close has shape {values.shape} but bars have {n} rows; pass an "
                "aligned array or a Series indexed by timestamp"
            )
    if (values <= 0.0).any():
        row = int(np.argmax(values <= 0.0))
        raise ValueError(f"benchmark_close at row {row} is {values[row]!r}; prices must be > 0")
    return np.ascontiguousarray(values)
