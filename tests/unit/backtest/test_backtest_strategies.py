"""Strategies and indicators: hand-written series, TA-Lib/pandas references, the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from deeptrade.backtest import indicators
from deeptrade.backtest.strategies import (
    STRATEGIES,
    Donchian,
    MACross,
    Momentum,
    Predictions,
    RSIReversion,
    get_strategy,
    positions_from_predictions,
)
from deeptrade.backtest.sweep import param_grid


def test_indicators_match_talib_and_pandas_on_real_data(spx):
    c = spx["close"].to_numpy()
    h, lo = spx["high"].to_numpy(), spx["low"].to_numpy()
    for w in (5, 30):
        np.testing.assert_allclose(
            indicators.sma(c, w), talib.SMA(c, w), rtol=1e-10, equal_nan=True
        )
        np.testing.assert_allclose(
            indicators.ema(c, w), talib.EMA(c, w), rtol=1e-10, equal_nan=True
        )
        np.testing.assert_allclose(
            indicators.wma(c, w), talib.WMA(c, w), rtol=1e-10, equal_nan=True
        )
    np.testing.assert_allclose(indicators.rsi(c, 14), talib.RSI(c, 14), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(
        indicators.atr(h, lo, c, 14), talib.ATR(h, lo, c, 14), rtol=1e-9, equal_nan=True
    )
    prior = pd.Series(h).rolling(20).max().shift(1).to_numpy()
    np.testing.assert_array_equal(indicators.prior_max(h, 20), prior)
    prior = pd.Series(lo).rolling(20).min().shift(1).to_numpy()
    np.testing.assert_array_equal(indicators.prior_min(lo, 20), prior)
    vol = pd.Series(np.log(c)).diff().rolling(20).std().to_numpy() * np.sqrt(252)
    np.testing.assert_allclose(
        indicators.realized_vol(c, 20, 252.0), vol, rtol=1e-9, equal_nan=True
    )


def test_ma_cross_by_hand():
    close = np.array([1, 2, 3, 4, 3, 2, 1, 2, 3, 4], dtype=float)
    # SMA(2) - SMA(3) from bar 2: 2.5-2, 3.5-3, 3.5-3.33, 2.5-3, 1.5-2, 1.5-1.67, 2.5-2, 3.5-3
    got = MACross.signals({"close": close}, fast=2, slow=3)
    np.testing.assert_array_equal(got, [0, 0, 1, 1, 1, -1, -1, -1, 1, 1])
    assert MACross.latest({"close": close}, fast=2, slow=3) == 1.0
    assert MACross.latest({"close": close[:7]}, fast=2, slow=3) == -1.0


def test_ma_cross_volume_filter_by_hand():
    close = np.array([1, 2, 3, 4, 5, 6, 7, 8], dtype=float)
    volume = np.array([10, 10, 10, 10, 10, 30, 10, 10], dtype=float)
    # fast > slow from bar 2 on; a new long needs volume > 1.5 x SMA(3) of volume, first at
    # bar 5 (30 > 1.5 x 16.67); once long it stays long without the volume.
    got = MACross.signals(
        {"close": close, "volume": volume}, fast=2, slow=3, volume_window=3, volume_mult=1.5
    )
    np.testing.assert_array_equal(got, [0, 0, 0, 0, 0, 1, 1, 1])


def test_ma_kinds_use_their_average(spx):
    c = spx["close"].to_numpy()
    for kind, ref in (("ema", talib.EMA), ("wma", talib.WMA)):
        f, s = ref(c, 8), ref(c, 21)
        want = np.where(np.isnan(s), 0.0, np.sign(f - s))
        np.testing.assert_array_equal(MACross.signals(spx, fast=8, slow=21, ma=kind), want)


def test_rsi_reversion_state_machine():
    rsi = np.array([np.nan, 50, 25, 40, 55, 75, 60, 45, 20], dtype=float)
    feats = {"close": np.ones(9)}
    # drive the fill through a hand-made RSI row (the features are only indicator rows)
    from deeptrade.backtest.strategies import K_RSI, fill_targets

    out = np.empty(9)
    fill_targets(K_RSI, np.vstack([feats["close"], rsi]), np.array([1.0, 30, 70, 50]), out)
    # long below 30 (bar 2), held until RSI >= 50 (bar 4); short above 70 (bar 5), held until
    # RSI <= 50 (bar 7); long again at 20.
    np.testing.assert_array_equal(out, [0, 0, 1, 1, 0, -1, -1, 0, 1])
    with pytest.raises(ValueError, match="lower <= exit <= upper"):
        RSIReversion.signals(feats, lower=60, upper=70, exit=50)


def test_donchian_breakout_by_hand():
    c = np.array([10, 11, 12, 13, 11, 9, 8, 10, 12], dtype=float)
    bars = {"close": c, "high": c, "low": c}
    # prior 3-bar high/low; exit on the prior 2-bar low (long) / high (short)
    got = Donchian.signals(bars, window=3, exit_window=2)
    # bar 3: 13 > max(10,11,12) -> long; bar 4: 11 < min(12,13)=12 -> exit; bar 5: 9 <
    # min(12,13,11) -> short; bar 7: 10 > max(9, 8) -> exit short; bar 8: 12 > max(9,8,10) -> long
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 0, -1, -1, 0, 1])


def test_momentum_and_predictions():
    c = np.array([100, 101, 103, 102, 99, 98], dtype=float)
    got = Momentum.signals({"close": c}, lookback=2, threshold=0.01)
    # 2-bar returns from bar 2: +3 %, +0.99 %, -3.88 %, -3.92 %
    np.testing.assert_array_equal(got, [0, 0, 1, 0, -1, -1])
    pred = np.array([0.2, 0.6, 0.45, np.nan, 0.8])
    got = Predictions.signals({"close": np.ones(5), "pred": pred}, threshold=0.1, center=0.5)
    np.testing.assert_array_equal(got, [-1, 0, 0, 0, 1])


def test_positions_from_predictions_threshold_and_rank():
    preds = np.array([[0.3, -0.2, 0.05, np.nan], [np.nan, np.nan, 0.1, -0.1]])
    np.testing.assert_array_equal(
        positions_from_predictions(preds, "threshold", threshold=0.1),
        [[1, -1, 0, 0], [0, 0, 0, 0]],
    )
    # rank: top 1 long and bottom 1 short among the valid values of each row
    np.testing.assert_array_equal(
        positions_from_predictions(preds, "rank", top_k=1), [[1, -1, 0, 0], [0, 0, 1, -1]]
    )
    # top 2 with 3 valid values long/short: both sides shrink to 1 (3 // 2), weight 1/2
    np.testing.assert_array_equal(
        positions_from_predictions(preds[:1], "rank", top_k=2), [[0.5, -0.5, 0, 0]]
    )
    np.testing.assert_array_equal(
        positions_from_predictions(preds[:1], "rank", top_k=2, long_only=True), [[0.5, 0, 0.5, 0]]
    )
    with pytest.raises(ValueError, match="mode"):
        positions_from_predictions(preds, "softmax")


def test_registry_and_parameter_errors():
    assert set(STRATEGIES) == {"ma_cross", "rsi", "donchian", "momentum", "predictions"}
    assert get_strategy("ma_cross") is MACross
    with pytest.raises(ValueError, match="Did you mean 'ma_cross'"):
        get_strategy("ma_crosss")
    with pytest.raises(ValueError, match="Did you mean 'slow'"):
        MACross.signals({"close": np.ones(5)}, fast=2, slwo=3)
    with pytest.raises(ValueError, match="fast < slow"):
        MACross.signals({"close": np.ones(5)}, fast=3, slow=3)
    with pytest.raises(ValueError, match="needs input column"):
        Donchian.signals({"close": np.ones(5)})
    grid = param_grid("ma_cross", fast=[2, 5, 10], slow=[5, 10])
    assert grid[["fast", "slow"]].values.tolist() == [[2, 5], [2, 10], [5, 10]]
    assert MACross.warmup(fast=5, slow=20) == 20


def test_latest_equals_signals_on_the_history(spx):
    for name, params in (
        ("ma_cross", {"fast": 5, "slow": 20, "ma": "ema"}),
        ("rsi", {"window": 10}),
        ("donchian", {"window": 15, "exit_window": 5}),
        ("momentum", {"lookback": 10}),
    ):
        strat = get_strategy(name)
        full = strat.signals(spx, **params)
        for t in (100, 250, len(spx) - 1):
            assert strat.latest(spx.iloc[: t + 1], **params) == full[t], (name, t)
