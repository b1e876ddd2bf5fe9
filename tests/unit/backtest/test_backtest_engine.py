"""Engine: fills, costs, sizing and stops against hand-computed books."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from _backtest_data import bars_from_close, synthetic_bars

from deeptrade.backtest.engine import BacktestConfig, run_backtest, simulate_arrays

CLOSE = [10.0, 11.0, 12.0, 11.0, 13.0]
OPEN = [10.0, 10.5, 11.5, 12.0, 12.0]


def test_next_open_fill_by_hand():
    bars = bars_from_close(CLOSE, OPEN)
    cfg = BacktestConfig(initial_cash=1000.0, commission_bps=10, direction="long_only")
    res = run_backtest(bars, [1, 1, 0, 0, 0], cfg)
    # bar 0 decides long -> fills at bar 1's open 10.5, all in: shares * 10.5 * 1.001 = 1000
    sh = 1000 / (10.5 * 1.001)
    cash1 = 1000 - sh * 10.5 - sh * 10.5 * 0.001  # ~0
    # bar 2 decides flat -> sells at bar 3's open 12
    cash3 = cash1 + sh * 12 - sh * 12 * 0.001
    expected = [1000, cash1 + sh * 11, cash1 + sh * 12, cash3, cash3]
    np.testing.assert_allclose(res.equity.to_numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(res.positions["asset"].to_numpy(), [0, sh, sh, 0, 0], rtol=1e-12)
    assert list(res.fills["bar"]) == [1, 3]
    assert list(res.fills["side"]) == ["buy", "sell"]
    np.testing.assert_allclose(res.fills["price"], [10.5, 12.0])
    np.testing.assert_allclose(res.fills["fee"], [sh * 10.5e-3, sh * 12e-3], rtol=1e-12)
    (t,) = res.trades.itertuples()
    assert (t.entry_bar, t.exit_bar, t.direction, t.is_open) == (1, 3, 1.0, False)
    assert t.entry_time == bars["timestamp"][1] and t.exit_time == bars["timestamp"][3]
    assert t.pnl == pytest.approx(sh * (12 - 10.5) - sh * 10.5e-3 - sh * 12e-3, rel=1e-12)
    assert t.fees == pytest.approx(sh * 22.5e-3, rel=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(cash3, rel=1e-12)
    assert res.metrics["n_trades"] == 1 and res.metrics["exposure"] == pytest.approx(2 / 5)


def test_close_fill_by_hand():
    bars = bars_from_close(CLOSE, OPEN)
    cfg = BacktestConfig(initial_cash=1000.0, commission_bps=10, fill="close")
    res = run_backtest(bars, [1, 1, 0, 0, 0], cfg)
    sh = 1000 / (10 * 1.001)  # bought at bar 0's close
    cash0 = 1000 - sh * 10 * 1.001
    cash2 = cash0 + sh * 12 * (1 - 0.001)  # sold at bar 2's close
    np.testing.assert_allclose(
        res.equity.to_numpy(), [cash0 + sh * 10, cash0 + sh * 11, cash2, cash2, cash2], rtol=1e-12
    )
    assert list(res.fills["bar"]) == [0, 2]


def test_short_and_reversal_by_hand():
    bars = bars_from_close([10, 10, 8, 8, 9, 9], [10, 10, 10, 8, 8, 9])
    cfg = BacktestConfig(initial_cash=1000.0)
    res = run_backtest(bars, [-1, -1, 1, 1, 1, 1], cfg)
    # short 100 at bar 1's open 10 (cash 2000); at bar 3's open 8 cover (+20% -> equity 1200)
    # and go long 1200/8 = 150 shares; bar 5 close 9 -> 1350.
    np.testing.assert_allclose(res.equity.to_numpy(), [1000, 1000, 1200, 1200, 1350, 1350])
    assert list(res.fills["qty"]) == [-100.0, 100.0, 150.0]
    assert list(res.trades["direction"]) == [-1.0, 1.0]
    assert res.trades["pnl"].iloc[0] == pytest.approx(200.0)
    assert bool(res.trades["is_open"].iloc[1]) and res.trades["pnl"].iloc[1] == pytest.approx(150.0)
    long_only = run_backtest(
        bars, [-1, -1, 1, 1, 1, 1], BacktestConfig(initial_cash=1000.0, direction="long_only")
    )
    assert list(long_only.fills["qty"]) == [125.0]  # 1000 / 8 at bar 3's open


def test_whole_shares_minimum_fee_and_per_share_fee():
    bars = bars_from_close([30.0, 30.0, 30.0])
    cfg = BacktestConfig(
        initial_cash=1000.0, fill="close", lot_size=1, fee_per_share=0.01, min_fee=1.0
    )
    res = run_backtest(bars, [1, 1, 1], cfg)
    # budget 1000 - 1 (minimum fee reserved) over 30 + 0.01 per share -> 33.28 -> 33 shares;
    # the fee is max(33 x 0.01, 1) = 1
    assert res.fills["qty"].tolist() == [33.0]
    assert res.fills["fee"].tolist() == [1.0]
    assert res.equity.iloc[-1] == pytest.approx(1000 - 1)


def test_slippage_in_bps_and_atr():
    bars = bars_from_close([100.0] * 30, [100.0] * 30)
    bars["high"] = 101.0
    bars["low"] = 99.0  # true range 2 every bar, so ATR = 2
    tgt = np.r_[np.zeros(20), np.ones(5), np.zeros(5)]
    cfg = BacktestConfig(initial_cash=1e4, slippage_bps=10, slippage_atr=0.5, atr_window=5)
    res = run_backtest(bars, tgt, cfg)
    buy, sell = res.fills["price"].tolist()
    assert buy == pytest.approx(100 * 1.001 + 0.5 * 2)
    assert sell == pytest.approx(100 * 0.999 - 0.5 * 2)


def test_stop_loss_take_profit_and_gaps_by_hand():
    o = [100, 100, 97, 100, 100, 100, 93]
    c = [100, 100, 98, 100, 100, 100, 95]
    bars = bars_from_close(c, o)
    bars.loc[2, "low"] = 94.0  # inside bar 2: the 5 % stop at 95 is hit
    cfg = BacktestConfig(initial_cash=1000.0, stop_loss=0.05, take_profit=0.10)
    res = run_backtest(bars, [1, 1, 1, 0, 1, 1, 1], cfg)
    assert res.fills[["bar", "price", "reason"]].values.tolist() == [
        [1, 100.0, "signal"],
        [2, 95.0, "stop_loss"],  # stop price, not the low
        [5, 100.0, "signal"],  # re-entry only after the target left and came back
        [6, 93.0, "stop_loss"],  # gapped through 95: filled at the open
    ]
    # both levels inside one bar -> the stop is assumed first
    bars2 = bars_from_close([100, 100, 100], [100, 100, 100])
    bars2.loc[2, ["low", "high"]] = [90.0, 115.0]
    res2 = run_backtest(bars2, [1, 1, 1], cfg)
    assert res2.fills["reason"].tolist() == ["signal", "stop_loss"]
    bars2.loc[2, "low"] = 99.0
    res3 = run_backtest(bars2, [1, 1, 1], cfg)
    assert res3.fills["reason"].tolist()[1] == "take_profit"
    assert res3.fills["price"].iloc[1] == pytest.approx(100 * 1.10)


def test_vol_target_sizing_and_leverage_cap():
    bars = synthetic_bars(80, seed=3)
    cfg = BacktestConfig(
        sizing="vol_target", vol_target=0.10, vol_window=20, max_leverage=2.0, fill="close"
    )
    tgt = np.r_[np.zeros(40), np.ones(40)]
    res = run_backtest(bars, tgt, cfg)
    r = np.log(bars["close"].to_numpy()[21:41] / bars["close"].to_numpy()[20:40])
    vol = r.std(ddof=1) * math.sqrt(252)
    w = min(0.10 / vol, 2.0)
    fill = res.fills.iloc[0]
    assert fill["bar"] == 40
    assert fill["qty"] * fill["price"] == pytest.approx(w * cfg.initial_cash, rel=1e-9)
    # no volatility estimate yet -> flat, and it enters once there is one
    early = run_backtest(bars, np.ones(80), cfg)
    assert early.fills["bar"].iloc[0] == 20


def test_portfolio_shares_cash_and_caps_gross_leverage():
    a = synthetic_bars(50, seed=1)
    b = synthetic_bars(50, seed=2)
    cfg = BacktestConfig(fill="close", max_leverage=1.0)
    res = run_backtest({"A": a, "B": b}, np.ones((50, 2)), cfg)
    first = res.fills[res.fills["bar"] == 0]
    notional = (first["qty"] * first["price"]).to_numpy()
    np.testing.assert_allclose(notional, [0.5e5, 0.5e5], rtol=1e-12)  # 1 + 1 scaled to 0.5 each
    assert set(res.positions.columns) == {"A", "B"}


def test_bankrupt_book_is_liquidated_and_stops_trading():
    bars = bars_from_close([10, 10, 25, 30, 5, 5], [10, 10, 25, 30, 5, 5])
    res = run_backtest(bars, [-1] * 3 + [1] * 3, BacktestConfig(initial_cash=1000.0))
    # short 100 at 10 -> at 25 equity = 2000 - 2500 = -500: liquidated, nothing after
    assert res.fills["reason"].tolist() == ["signal", "end"]
    np.testing.assert_allclose(res.equity.to_numpy()[2:], -500.0)


def test_close_at_end_and_start_span():
    bars = bars_from_close([10, 11, 12, 13])
    res = run_backtest(bars, [1, 1, 1, 1], BacktestConfig(close_at_end=True, fill="close"))
    assert res.fills["reason"].tolist() == ["signal", "end"]
    assert not res.trades["is_open"].any()
    later = run_backtest(bars, [1, 1, 1, 1], BacktestConfig(fill="close"), start=2)
    assert len(later.equity) == 2 and later.fills["bar"].tolist() == [2]


def test_single_and_portfolio_kernels_agree_bit_for_bit():
    bars = synthetic_bars(240, seed=11)
    arrays = {k: bars[k].to_numpy() for k in ("open", "high", "low", "close")}
    rng = np.random.default_rng(5)
    grid = itertools.product(
        ["next_open", "close"],
        ["long_short", "long_only"],
        ["fixed_fraction", "vol_target"],
        [None, 0.03],
        [0, 1],
        [False, True],
    )
    for fill, direction, sizing, sl, lot, end in grid:
        cfg = BacktestConfig(
            fill=fill,
            direction=direction,
            sizing=sizing,
            stop_loss=sl,
            take_profit=0.06,
            lot_size=lot,
            close_at_end=end,
            commission_bps=5,
            fee_per_share=0.005,
            min_fee=1.0,
            slippage_bps=2,
            slippage_atr=0.1,
            max_leverage=1.5,
            fraction=0.8,
        )
        tgt = np.repeat(np.clip(np.round(rng.uniform(-1.4, 1.4, 40) * 2) / 2, -1, 1), 6)
        tgt[rng.integers(0, 240, 10)] = np.nan
        one = simulate_arrays(arrays, tgt, cfg, kernel="single", start=15)
        many = simulate_arrays(arrays, tgt, cfg, kernel="portfolio", start=15)
        for key in ("equity", "positions", "fills", "trades", "stats"):
            np.testing.assert_array_equal(one[key], many[key], err_msg=f"{key} {cfg}")
        for key, value in one["metrics"].items():
            assert value == pytest.approx(many["metrics"][key], rel=1e-12, nan_ok=True), key


def test_validation_messages():
    bars = bars_from_close([10, 11, 12])
    with pytest.raises(ValueError, match="fill"):
        BacktestConfig(fill="open")
    with pytest.raises(ValueError, match="exceeds max_leverage"):
        BacktestConfig(fraction=2.0)
    with pytest.raises(ValueError, match="stop_loss"):
        BacktestConfig(stop_loss=1.5)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        run_backtest(bars, [0, 2, 0])
    with pytest.raises(ValueError, match="shape"):
        run_backtest(bars, [0, 1])
    bad = bars.copy()
    bad.loc[1, "close"] = np.nan
    with pytest.raises(ValueError, match=r"close .* row 1"):
        run_backtest(bad, [0, 0, 0])
    with pytest.raises(ValueError, match="strictly increasing"):
        run_backtest(bars.iloc[::-1].reset_index(drop=True), [0, 0, 0])
    naive = bars.assign(timestamp=bars["timestamp"].dt.tz_localize(None))
    with pytest.raises(ValueError, match="UTC"):
        run_backtest(naive, [0, 0, 0])
    with pytest.raises(ValueError, match="missing columns"):
        run_backtest(bars.drop(columns=["volume"]), [0, 0, 0])


def test_portfolio_needs_shared_timestamps():
    a = synthetic_bars(10, seed=1)
    b = synthetic_bars(10, seed=2)
    b["timestamp"] = b["timestamp"] + pd.Timedelta(days=100)
    with pytest.raises(ValueError, match="share no timestamp"):
        run_backtest({"A": a, "B": b}, np.zeros((10, 2)))
