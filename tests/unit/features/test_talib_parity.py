"""TA-Lib parity on real data: every TA-Lib-backed feature equals the same transform of
TA-Lib 0.8's output within 1e-9 relative (most are bit-identical), NaN exactly in warm-up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from deeptrade.features import FeatureConfig, compute_features

SERIES = ("SPX", "NDX", "AAPL", "IBM", "MSFT", "GOOG", "ES_1m")
RTOL = 1e-9


def talib_features(bars: pd.DataFrame, cfg: FeatureConfig) -> dict[str, tuple[np.ndarray, float]]:
    """Feature name -> (the transform of TA-Lib's output, the feature's natural scale).

    The scale floors the relative error for values that cross zero (a ratio such as
    close / SMA - 1 is a difference of numbers near 1; 0..100 oscillators near 0).
    """
    h, lo, c, v = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    ref: dict[str, tuple[np.ndarray, float]] = {}
    for w in cfg.ma_windows:
        ref[f"sma_ratio_{w}"] = (c / talib.SMA(c, w) - 1.0, 1e-3)
        ref[f"ema_ratio_{w}"] = (c / talib.EMA(c, w) - 1.0, 1e-3)
    ref[f"rsi_{cfg.rsi_period}"] = (talib.RSI(c, cfg.rsi_period), 1.0)
    macd, signal, hist = talib.MACD(c, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
    ref["macd"] = (macd / c, 1e-3)
    ref["macd_signal"] = (signal / c, 1e-3)
    ref["macd_hist"] = (hist / c, 1e-3)
    upper, mid, lower = talib.BBANDS(c, cfg.bb_period, cfg.bb_nbdev, cfg.bb_nbdev, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pctb = np.where(upper - lower > 0, (c - lower) / (upper - lower), 0.5)
    pctb[np.isnan(upper)] = np.nan
    ref[f"bb_pctb_{cfg.bb_period}"] = (pctb, 1e-3)
    ref[f"bb_width_{cfg.bb_period}"] = ((upper - lower) / mid, 1e-3)
    ref[f"roc_{cfg.roc_period}"] = (talib.ROC(c, cfg.roc_period), 1e-1)
    for k in cfg.momentum_periods:
        ref[f"mom_{k}"] = (talib.MOM(c, k) / c, 1e-3)
    ref[f"atr_norm_{cfg.atr_period}"] = (talib.ATR(h, lo, c, cfg.atr_period) / c, 1e-3)
    n = cfg.adx_period
    ref[f"adx_{n}"] = (talib.ADX(h, lo, c, n), 1.0)
    ref[f"plus_di_{n}"] = (talib.PLUS_DI(h, lo, c, n), 1.0)
    ref[f"minus_di_{n}"] = (talib.MINUS_DI(h, lo, c, n), 1.0)
    slowk, slowd = talib.STOCH(
        h, lo, c, cfg.stoch_fastk, cfg.stoch_slowk, 0, cfg.stoch_slowd, 0
    )  # SMA smoothing, TA-Lib's defaults
    ref["stoch_k"] = (slowk, 1.0)
    ref["stoch_d"] = (slowd, 1.0)
    ref[f"willr_{cfg.willr_period}"] = (talib.WILLR(h, lo, c, cfg.willr_period), 1.0)
    ref[f"cci_{cfg.cci_period}"] = (talib.CCI(h, lo, c, cfg.cci_period), 1.0)
    ref[f"mfi_{cfg.mfi_period}"] = (talib.MFI(h, lo, c, v, cfg.mfi_period), 1.0)
    obv = talib.OBV(c, v)
    ref[f"obv_z_{cfg.obv_z_window}"] = (_zscore(obv, cfg.obv_z_window), 1e-3)
    return ref


def _zscore(x: np.ndarray, w: int) -> np.ndarray:
    """Exact rolling z-score (ddof=1) of the newest value; 0 on a flat window."""
    win = np.lib.stride_tricks.sliding_window_view(x, w)
    mean = win.mean(axis=1)
    std = win.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (x[w - 1 :] - mean) / std, 0.0)
    return np.concatenate([np.full(w - 1, np.nan), z])


def assert_parity(ours: np.ndarray, ref: np.ndarray, scale: float, name: str) -> None:
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{name}: NaN mask")
    ok = ~np.isnan(ref)
    err = np.abs(ours[ok] - ref[ok])
    bound = RTOL * np.maximum(np.abs(ref[ok]), scale)
    worst = int(np.argmax(err / bound)) if err.size else 0
    assert (err <= bound).all(), (
        f"{name}: |ours - talib| = {err[worst]:.3g} at value {ref[ok][worst]:.6g} exceeds "
        f"{RTOL:g} relative (scale {scale:g})"
    )


@pytest.mark.parametrize("series", SERIES)
def test_talib_parity(real_series: dict[str, pd.DataFrame], series: str) -> None:
    bars = real_series[series]
    cfg = FeatureConfig()
    feats = compute_features(bars, config=cfg)
    refs = talib_features(bars, cfg)
    assert len(refs) == 27  # every TA-Lib-backed feature
    for name, (ref, scale) in refs.items():
        assert_parity(feats[name].to_numpy(), ref, scale, f"{series}/{name}")


def test_talib_parity_nondefault_periods(real_series: dict[str, pd.DataFrame]) -> None:
    # Other periods exercise the seeding/alignment arithmetic, not just TA-Lib's defaults.
    cfg = FeatureConfig(
        ma_windows=(5, 30),
        rsi_period=9,
        macd_fast=5,
        macd_slow=35,
        macd_signal=5,
        bb_period=10,
        bb_nbdev=1.5,
        atr_period=7,
        adx_period=9,
        stoch_fastk=14,
        stoch_slowk=5,
        stoch_slowd=4,
        willr_period=7,
        cci_period=14,
        mfi_period=10,
        obv_z_window=10,
        roc_period=3,
        momentum_periods=(3,),
    )
    for series in ("SPX", "ES_1m"):
        bars = real_series[series]
        feats = compute_features(bars, config=cfg)
        for name, (ref, scale) in talib_features(bars, cfg).items():
            assert_parity(feats[name].to_numpy(), ref, scale, f"{series}/{name}")


def test_talib_parity_flat_stretches() -> None:
    # Flat windows hit every guard (zero range, zero true range, no money flow, zero variance).
    n = 400
    rng = np.random.default_rng(3)
    steps = rng.normal(0, 0.5, n) * (rng.random(n) < 0.3)  # 70% of bars do not move
    c = 50.0 + np.cumsum(steps)
    spread = np.where(rng.random(n) < 0.5, 0.0, rng.random(n) * 0.2)
    bars = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-02", periods=n, freq="1min", tz="UTC"),
            "open": c,
            "high": c + spread,
            "low": c - spread,
            "close": c,
            "volume": np.where(rng.random(n) < 0.2, 0.0, 100.0),
        }
    )
    bars.loc[100:140, ["open", "high", "low", "close"]] = 60.0  # a long flat stretch
    cfg = FeatureConfig()
    feats = compute_features(bars, config=cfg)
    for name, (ref, scale) in talib_features(bars, cfg).items():
        assert_parity(feats[name].to_numpy(), ref, scale, f"flat/{name}")
