"""No look-ahead: rewriting every bar after t (prices, volume, vwap, benchmark) must leave
every feature at bars <= t bit-identical, for all features, several real series, random t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeptrade.features import compute_features, feature_names


def scramble_after(bars: pd.DataFrame, t: int, rng: np.random.Generator) -> pd.DataFrame:
    """A copy whose rows > t are replaced by a different, still valid, random walk."""
    out = bars.copy()
    m = len(bars) - t - 1
    last = float(bars["close"].iloc[t])
    close = last * np.exp(np.cumsum(rng.normal(0.0, 0.03, m)))
    open_ = close * np.exp(rng.normal(0.0, 0.01, m))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, m)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, m)))
    rows = slice(t + 1, None)
    for col, values in (("open", open_), ("high", high), ("low", low), ("close", close)):
        out.loc[out.index[rows], col] = values
    out.loc[out.index[rows], "volume"] = rng.lognormal(10.0, 2.0, m)
    if "vwap" in out.columns:
        out.loc[out.index[rows], "vwap"] = (high + low) / 2
    return out


@pytest.mark.parametrize("series", ["SPX", "AAPL", "GOOG", "ES_1m"])
def test_future_bars_do_not_change_past_features(
    real_series: dict[str, pd.DataFrame], series: str
) -> None:
    bars = real_series[series].iloc[:1200].reset_index(drop=True)
    bench = real_series["NDX" if series != "ES_1m" else "SPX"]
    rng = np.random.default_rng(abs(hash(series)) % 2**32)
    bench_values = bench["close"].to_numpy()[: len(bars)] * 1.0
    base = compute_features(bars, benchmark_close=bench_values)
    names = feature_names()
    for t in sorted(rng.choice(np.arange(1, len(bars) - 2), size=4, replace=False)):
        t = int(t)
        changed = scramble_after(bars, t, rng)
        bench_changed = bench_values.copy()
        bench_changed[t + 1 :] *= np.exp(rng.normal(0.0, 0.05, len(bars) - t - 1))
        other = compute_features(changed, benchmark_close=bench_changed)
        past_a = base.loc[:t, names].to_numpy()
        past_b = other.loc[:t, names].to_numpy()
        np.testing.assert_array_equal(past_a, past_b, err_msg=f"{series}: t={t}")
        assert (base["warmup"] == other["warmup"]).all()
        # The perturbation is real: the future did change.
        future_a = base.loc[t + 1 :, names].to_numpy()
        future_b = other.loc[t + 1 :, names].to_numpy()
        assert not np.array_equal(future_a, future_b, equal_nan=True)
