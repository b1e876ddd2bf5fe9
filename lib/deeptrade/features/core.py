"""`compute_features`: one validated bar series in, one row of point-in-time features per bar out.

Every feature at bar t is a function of bars 0..t only (proved by the perturbation tests in
tests/unit/features). Rows before a feature's warm-up is complete hold NaN, never a filled
value, and are flagged in the boolean `warmup` column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deeptrade.features.config import FeatureConfig
from deeptrade.features.kernels import kernel_params, new_state, run_bars
from deeptrade.features.spec import TIME_FEATURES, feature_names, warmup_bars

BACKENDS = ("cpu", "gpu")
REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")
NS_PER_DAY = 86_400 * 1_000_000_000
# 1970-01-01 was a Thursday; with Monday = 0 that is weekday 3.
EPOCH_WEEKDAY = 3

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
    inputs, ts = prepare_inputs(bars, benchmark_close)
    out = np.empty((len(feature_names(config)), len(ts)), dtype=np.float64)
    run_bars(inputs, new_state(config), kernel_params(config), out[: -len(TIME_FEATURES)])
    out[-len(TIME_FEATURES) :] = time_features(ts, config.session_tz)
    return assemble_frame(bars, out, config)


def assemble_frame(bars: pd.DataFrame, out: np.ndarray, config: FeatureConfig) -> pd.DataFrame:
    """DataFrame from the (n_features, n) output array, without copying it."""
    frame = pd.DataFrame(out.T, columns=feature_names(config), index=bars.index, copy=False)
    frame.insert(0, "timestamp", bars["timestamp"].to_numpy())
    frame["warmup"] = np.arange(len(frame)) < warmup_bars(config)
    return frame


def prepare_inputs(bars: pd.DataFrame, benchmark_close: BenchmarkLike) -> tuple[tuple, np.ndarray]:
    """Validate `bars` and return the kernel inputs plus UTC timestamps as int64 ns."""
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
    inputs = (arrays["open"], arrays["high"], arrays["low"], arrays["close"], arrays["volume"])
    return (*inputs, px, bench), ts


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


def time_features(ts_ns: np.ndarray, tz: str) -> np.ndarray:
    """(4, n) array: sin/cos of the time of day and of the weekday, in zone `tz`."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    if tz == "UTC":
        local = ts_ns
    else:
        wall = pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
        local = wall.tz_localize(None).as_unit("ns").asi8
    day_angle = (2.0 * np.pi / NS_PER_DAY) * (local % NS_PER_DAY).astype(np.float64)
    week_angle = (2.0 * np.pi / 7.0) * ((local // NS_PER_DAY + EPOCH_WEEKDAY) % 7).astype(
        np.float64
    )
    return np.stack([np.sin(day_angle), np.cos(day_angle), np.sin(week_angle), np.cos(week_angle)])
