"""Live == batch: StreamingFeatures fed bar by bar reproduces compute_features on real data,
every feature (bit for bit here; the contract is 1e-9 relative)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeptrade.features import FeatureConfig, StreamingFeatures, compute_features, feature_names
from deeptrade.features.spec import warmup_bars


def stream(sf: StreamingFeatures, bars: pd.DataFrame, bench: np.ndarray | None) -> pd.DataFrame:
    rows = []
    for i, bar in enumerate(bars.to_dict("records")):
        rows.append(sf.update(bar, None if bench is None else float(bench[i])))
    return pd.DataFrame(rows, index=bars.index)


def assert_same(live: pd.DataFrame, batch: pd.DataFrame, names: list[str]) -> None:
    a, b = live[names].to_numpy(), batch[names].to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    ("series", "n", "history"), [("SPX", 900, 300), ("MSFT", 700, 250), ("ES_1m", 1200, 400)]
)
def test_streaming_equals_batch(
    real_series: dict[str, pd.DataFrame], series: str, n: int, history: int
) -> None:
    bars = real_series[series].iloc[:n].reset_index(drop=True)
    bench = real_series["NDX"]["close"].to_numpy()[:n]
    batch = compute_features(bars, benchmark_close=bench)
    sf = StreamingFeatures.from_history(bars.iloc[:history], benchmark_close=bench[:history])
    assert sf.bars_seen == history and sf.ready
    live = stream(sf, bars.iloc[history:], bench[history:])
    assert_same(live, batch.iloc[history:], feature_names())


def test_streaming_from_first_bar_matches_warmup(real_series: dict[str, pd.DataFrame]) -> None:
    cfg = FeatureConfig(ma_windows=(5, 30))  # a non-default config streams the same way
    bars = real_series["AAPL"].iloc[:260].reset_index(drop=True)
    batch = compute_features(bars, config=cfg)
    sf = StreamingFeatures(cfg)
    assert not sf.ready
    live = stream(sf, bars, None)
    assert_same(live, batch, feature_names(cfg))
    assert sf.bars_seen == len(bars) and sf.ready == (len(bars) >= warmup_bars(cfg))
    assert np.isnan(live["rel_log_ret_1"]).all()  # no benchmark given


def test_streaming_rejects_bad_bars(real_series: dict[str, pd.DataFrame]) -> None:
    bars = real_series["IBM"].iloc[:50].reset_index(drop=True)
    sf = StreamingFeatures.from_history(bars.iloc[:40])
    with pytest.raises(ValueError, match="not after the previous bar"):
        sf.update(bars.iloc[39].to_dict())  # a repeat
    bad = bars.iloc[40].to_dict() | {"close": -1.0}
    with pytest.raises(ValueError, match="close"):
        sf.update(bad)
    with pytest.raises(ValueError, match="lacks"):
        sf.update({"timestamp": bars["timestamp"].iloc[40], "close": 1.0})
    with pytest.raises(ValueError, match="naive"):
        sf.update(bars.iloc[40].to_dict() | {"timestamp": pd.Timestamp("2030-01-01")})


def test_snapshot_restore_replays_identically(real_series: dict[str, pd.DataFrame]) -> None:
    bars = real_series["GOOG"].iloc[:300].reset_index(drop=True)
    sf = StreamingFeatures.from_history(bars.iloc[:250])
    snap = sf.snapshot()
    first = [sf.update(b) for b in bars.iloc[250:].to_dict("records")]
    sf.restore(snap)
    again = [sf.update(b) for b in bars.iloc[250:].to_dict("records")]
    assert pd.DataFrame(first).equals(pd.DataFrame(again))
