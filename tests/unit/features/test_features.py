"""compute_features: the data contract (names, dtypes, warm-up, spec hash), input
validation, and independent references for the features TA-Lib does not have."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deeptrade.features import (
    FEATURE_NAMES,
    FeatureConfig,
    compute_features,
    feature_names,
    feature_spec,
    feature_spec_hash,
    warmup_bars,
)
from deeptrade.features.spec import feature_layout


@pytest.fixture(scope="module")
def spx(daily: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return daily["SPX"].iloc[:1500].reset_index(drop=True)


def test_contract_columns_dtypes_and_warmup(spx: pd.DataFrame) -> None:
    feats = compute_features(spx, benchmark_close=spx["close"].to_numpy() * 2.0)
    assert len(FEATURE_NAMES) >= 35
    assert list(feats.columns) == ["timestamp", *FEATURE_NAMES, "warmup"]
    assert feats.index.equals(spx.index)
    assert str(feats["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert (feats["timestamp"] == spx["timestamp"]).all()
    assert (feats[list(FEATURE_NAMES)].dtypes == np.float64).all()
    assert feats["warmup"].dtype == bool
    w = warmup_bars()
    assert w == 199  # SMA/EMA 200
    assert feats["warmup"].to_numpy().tolist() == [True] * w + [False] * (len(spx) - w)
    for name, first in feature_layout(FeatureConfig()):
        col = feats[name].to_numpy()
        assert np.isnan(col[:first]).all(), f"{name} not NaN before bar {first}"
        assert np.isfinite(col[first:]).all(), f"{name} not finite from bar {first}"
    # The benchmark is the same series scaled: relative returns are exactly zero.
    assert (feats["rel_log_ret_1"].iloc[1:] == 0.0).all()


def test_spec_and_hash() -> None:
    spec = feature_spec()
    assert spec["names"] == list(FEATURE_NAMES)
    assert spec["warmup_bars"] == warmup_bars()
    assert set(spec["docs"]) == set(FEATURE_NAMES)
    h = feature_spec_hash()
    assert len(h) == 64 and h == feature_spec_hash(FeatureConfig())
    assert feature_spec_hash(FeatureConfig(rsi_period=10)) != h
    assert feature_spec_hash(FeatureConfig(benchmark_symbol="QQQ")) != h
    assert "rsi_10" in feature_names(FeatureConfig(rsi_period=10))
    # Lists from YAML are accepted and hash like tuples.
    assert feature_spec_hash(FeatureConfig(ma_windows=[10, 20, 50, 200])) == h


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="macd_fast"):
        FeatureConfig(macd_fast=30, macd_slow=26)
    with pytest.raises(ValueError, match="ma_windows"):
        FeatureConfig(ma_windows=(10, 10))
    with pytest.raises(ValueError, match="moments_window"):
        FeatureConfig(moments_window=3)
    with pytest.raises(ValueError, match="session_tz"):
        FeatureConfig(session_tz="Mars/Olympus")
    with pytest.raises(ValueError, match="rsi_period"):
        FeatureConfig(rsi_period=0)
    with pytest.raises(TypeError):
        FeatureConfig(rsi=14)  # type: ignore[call-arg]


def test_input_validation(spx: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="lack columns"):
        compute_features(spx.drop(columns=["volume"]))
    shuffled = spx.iloc[[0, 2, 1, 3]].reset_index(drop=True)
    with pytest.raises(ValueError, match="not strictly increasing at row 2"):
        compute_features(shuffled)
    bad = spx.copy()
    bad.loc[7, "low"] = np.nan
    with pytest.raises(ValueError, match=r"bars.low at row 7"):
        compute_features(bad)
    naive = spx.assign(timestamp=spx["timestamp"].dt.tz_localize(None))
    with pytest.raises(ValueError, match="tz-aware UTC"):
        compute_features(naive)
    with pytest.raises(ValueError, match="backend"):
        compute_features(spx, backend="tpu")
    with pytest.raises(ValueError, match="shape"):
        compute_features(spx, benchmark_close=np.ones(3))


def test_short_and_empty_series(spx: pd.DataFrame) -> None:
    short = compute_features(spx.iloc[:5])
    assert short["warmup"].all() and np.isnan(short["rsi_14"]).all()
    assert np.isfinite(short["hl_range"]).all()
    empty = compute_features(spx.iloc[:0])
    assert len(empty) == 0 and list(empty.columns) == ["timestamp", *FEATURE_NAMES, "warmup"]


def test_benchmark_series_aligned_by_timestamp(spx: pd.DataFrame) -> None:
    bench = pd.Series(spx["close"].to_numpy() * 0.5, index=pd.DatetimeIndex(spx["timestamp"]))
    bench = bench.drop(bench.index[[10, 11]])  # a gap in the benchmark
    feats = compute_features(spx, benchmark_close=bench)
    rel = feats["rel_log_ret_1"].to_numpy()
    assert np.isnan(rel[[0, 10, 11, 12]]).all()  # no benchmark return across the gap
    assert (rel[13:] == 0.0).all() and (rel[1:10] == 0.0).all()


def test_non_talib_features_against_references(spx: pd.DataFrame) -> None:
    cfg = FeatureConfig()
    f = compute_features(spx, config=cfg)
    o, h, lo, c, v = (spx[k] for k in ("open", "high", "low", "close", "volume"))
    r = np.log(c / c.shift(1))

    def check(name: str, ref: pd.Series, rtol: float = 1e-9, atol: float = 1e-13) -> None:
        np.testing.assert_allclose(f[name], ref, rtol=rtol, atol=atol, err_msg=name)

    for k in cfg.return_horizons:
        check(f"log_ret_{k}", np.log(c / c.shift(k)))
    for w in cfg.rvol_windows:
        ref = r.rolling(w).std()
        ref.iloc[:w] = np.nan
        check(f"rvol_{w}", ref)
    w = cfg.range_vol_window
    lhl2 = np.log(h / lo) ** 2
    check(f"parkinson_vol_{w}", np.sqrt(lhl2.rolling(w).mean() / (4 * np.log(2))))
    gk = 0.5 * lhl2 - (2 * np.log(2) - 1) * np.log(c / o) ** 2
    check(f"gk_vol_{w}", np.sqrt(gk.rolling(w).mean().clip(lower=0)))
    w = cfg.moments_window
    win = np.lib.stride_tricks.sliding_window_view(r.to_numpy()[1:], w)
    pad = np.full(w, np.nan)
    check(f"ret_skew_{w}", np.r_[pad, stats.skew(win, axis=1, bias=False)], atol=1e-11)
    check(f"ret_kurt_{w}", np.r_[pad, stats.kurtosis(win, axis=1, bias=False)], atol=1e-11)
    w = cfg.volume_z_window
    check(f"volume_z_{w}", (v - v.rolling(w).mean()) / v.rolling(w).std(), atol=1e-11)
    w = cfg.vwap_window
    tp = (h + lo + c) / 3
    check(f"vwap_dev_{w}", c / ((tp * v).rolling(w).sum() / v.rolling(w).sum()) - 1, atol=1e-12)
    check("hl_range", (h - lo) / c)
    check("gap", o / c.shift(1) - 1)
    assert np.isnan(f["rel_log_ret_1"]).all()


def test_vwap_column_is_used_when_present(intraday: pd.DataFrame) -> None:
    bars = intraday.iloc[:500].reset_index(drop=True)
    with_vwap = compute_features(bars)["vwap_dev_20"]
    without = compute_features(bars.drop(columns=["vwap"]))["vwap_dev_20"]
    c, v = bars["close"], bars["volume"]
    ref = c / ((bars["vwap"] * v).rolling(20).sum() / v.rolling(20).sum()) - 1
    np.testing.assert_allclose(with_vwap, ref, rtol=1e-9, atol=1e-12)
    assert not np.allclose(with_vwap[19:], without[19:])


def test_time_features_and_session_tz() -> None:
    # Monday 2024-01-08 14:30 UTC = 09:30 New York (EST); Sunday 2024-07-07 00:00 UTC.
    ts = pd.to_datetime(["2024-01-08 14:30", "2024-07-07 00:00"]).tz_localize("UTC")
    bars = pd.DataFrame({"timestamp": ts, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
                         "volume": 1.0})  # fmt: skip
    utc = compute_features(bars)
    day = 2 * np.pi * (14.5 / 24)
    np.testing.assert_allclose(utc[["tod_sin", "tod_cos"]].iloc[0], [np.sin(day), np.cos(day)])
    np.testing.assert_allclose(utc[["dow_sin", "dow_cos"]].iloc[0], [0.0, 1.0], atol=1e-15)
    sunday = 2 * np.pi * 6 / 7
    np.testing.assert_allclose(
        utc[["dow_sin", "dow_cos"]].iloc[1], [np.sin(sunday), np.cos(sunday)]
    )
    ny = compute_features(bars, config=FeatureConfig(session_tz="America/New_York"))
    day = 2 * np.pi * (9.5 / 24)
    np.testing.assert_allclose(ny[["tod_sin", "tod_cos"]].iloc[0], [np.sin(day), np.cos(day)])
    saturday = 2 * np.pi * 5 / 7  # 20:00 on Saturday in New York
    np.testing.assert_allclose(ny["dow_sin"].iloc[1], np.sin(saturday))


def test_import_is_light() -> None:
    code = (
        "import sys, deeptrade.features, deeptrade.features.scale;"
        "bad = [m for m in ('cudf', 'cupy', 'dask', 'distributed', 'dask_cuda') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


GOLDEN_SPEC_HASH = "7b47a4e1180ad2f469f957efaadbb3d71d63cdcb9a8ac597423b0f658413a4c2"


def test_default_spec_hash_is_pinned() -> None:
    # The live job refuses a model whose spec hash differs: any change of names, order,
    # parameters or warm-up must be deliberate. If it is, bump FEATURE_SET_VERSION when a
    # definition changed, and paste the new hash here.
    assert feature_spec_hash() == GOLDEN_SPEC_HASH, feature_spec_hash()


def test_large_outputs_are_built_per_family(spx: pd.DataFrame, monkeypatch) -> None:
    # Above ONE_BLOCK_BYTES the output is one array per family, joined without copying.
    from deeptrade.features import core

    whole = compute_features(spx)
    monkeypatch.setattr(core, "ONE_BLOCK_BYTES", 0)
    split = compute_features(spx)
    pd.testing.assert_frame_equal(split, whole)
