"""`compute_features`: one validated bar series in, one row of point-in-time features per bar out.

Every feature at bar t is a function of bars 0..t only (proved by the perturbation tests in
tests/unit/features). Rows before a feature's warm-up is complete hold NaN, never a filled
value, and are flagged in the boolean `warmup` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deeptrade.features.config import FeatureConfig
from deeptrade.features.pipeline import Block, Plan, advance
from deeptrade.features.spec import feature_names, warmup_bars

BACKENDS = ("cpu", "gpu")
REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")

BenchmarkLike = pd.Series | np.ndarray | None


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
    out = np.empty((plan.n_features, len(block.close)), dtype=np.float64)
    if len(block.close):
        advance(block, plan.fresh_state(), plan, out)
    return assemble_frame(bars, out, config)


def assemble_frame(bars: pd.DataFrame, out: np.ndarray, config: FeatureConfig) -> pd.DataFrame:
    """DataFrame from the (n_features, n) output array, without copying it."""
    frame = pd.DataFrame(out.T, columns=feature_names(config), index=bars.index, copy=False)
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
    if len(ts) > 1 and not (np.diff(ts) > 0).all():
        row = int(np.argmin(np.diff(ts) > 0)) + 1
        raise ValueError(
            f"bars.timestamp is not strictly increasing at row {row} ({stamps.iloc[row]}); "
            "sort and de-duplicate the bars first"
        )
    arrays = {}
    for name in ("open", "high", "low", "close", "volume"):
        x = _float_column(bars, name)
        bad = ~np.isfinite(x) | (x < 0.0 if name == "volume" else x <= 0.0)
        if bad.any():
            row = int(np.argmax(bad))
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
    return np.ascontiguousarray(bars[name].to_numpy(dtype=np.float64, na_value=np.nan))


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
