"""Grid sweeps: every row equals a single run; chunks merge back to the full table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _backtest_data import stock_bars, synthetic_bars

from deeptrade.backtest.engine import BacktestConfig, run_backtest
from deeptrade.backtest.metrics import METRICS, deflated_sharpe_ratio
from deeptrade.backtest.strategies import get_strategy
from deeptrade.backtest.sweep import (
    best_combo,
    best_params,
    grid_chunks,
    merge_results,
    param_grid,
    sweep,
)

CFG = BacktestConfig(commission_bps=5, min_fee=1.0, slippage_bps=1, stop_loss=0.08)


def _assert_rows_equal_runs(bars, strategy, grid, cfg, table, start=0):
    for row in table.itertuples(index=False):
        params = {k: getattr(row, k) for k in grid.columns}
        target = get_strategy(strategy).signals(bars, **params)
        single = run_backtest(bars, target, cfg, start=start)
        for k in METRICS:
            a, b = getattr(row, k), single.metrics[k]
            assert a == b or (math.isnan(a) and math.isnan(b)), (params, k, a, b)


@pytest.mark.parametrize(
    ("strategy", "axes"),
    [
        ("ma_cross", {"fast": [3, 8], "slow": [10, 30], "ma": ["sma", "ema", "wma"]}),
        ("rsi", {"window": [5, 14], "lower": [25.0, 35.0]}),
        ("donchian", {"window": [10, 20], "exit_window": [5]}),
        ("momentum", {"lookback": [5, 20], "threshold": [0.0, 0.02]}),
    ],
)
def test_each_sweep_row_equals_a_single_backtest(spx, strategy, axes):
    grid = param_grid(strategy, **axes)
    table = sweep(spx, strategy, grid, CFG).table
    assert len(table) == len(grid) and list(table["combo"]) == list(range(len(grid)))
    _assert_rows_equal_runs(spx, strategy, grid, CFG, table)


def test_span_many_symbols_and_thread_counts(spx):
    grid = param_grid("ma_cross", fast=[5, 10], slow=[20, 40])
    msft = stock_bars("MSFT").iloc[-400:].reset_index(drop=True)
    both = sweep({"SPX": spx, "MSFT": msft}, "ma_cross", grid, CFG, start=100).table
    assert list(both["symbol"].unique()) == ["SPX", "MSFT"]
    for sym, bars in (("SPX", spx), ("MSFT", msft)):
        part = both[both["symbol"] == sym].reset_index(drop=True)
        _assert_rows_equal_runs(bars, "ma_cross", grid, CFG, part, start=100)
    one = sweep({"SPX": spx, "MSFT": msft}, "ma_cross", grid, CFG, start=100, threads=1).table
    pd.testing.assert_frame_equal(one, both)


def test_chunks_merge_back_to_the_full_table(walk):
    grid = param_grid("ma_cross", fast=range(3, 9), slow=range(10, 30, 4))
    full = sweep(walk, "ma_cross", grid, CFG).table
    chunks = grid_chunks(grid, 4)
    assert sum(len(c) for c in chunks) == len(grid)
    assert [c.index[0] for c in chunks] == sorted(c.index[0] for c in chunks)
    parts = [sweep(walk, "ma_cross", c, CFG).table for c in reversed(chunks)]
    merged = merge_results(parts)
    pd.testing.assert_frame_equal(merged, full)
    with pytest.raises(ValueError, match="appear twice"):
        merge_results(parts + parts[:1])


def test_deflated_sharpe_column_by_hand(walk):
    grid = param_grid("ma_cross", fast=range(3, 9), slow=range(10, 30, 4))
    table = sweep(walk, "ma_cross", grid, CFG).table
    sr = table["sr_period"].to_numpy()
    best = table.iloc[int(np.nanargmax(sr))]
    want = deflated_sharpe_ratio(
        best["sr_period"],
        n_trials=int(np.isfinite(sr).sum()),
        var_sharpe=float(np.nanvar(sr, ddof=1)),
        n_obs=int(best["n_obs"]),
        skew=best["skew"],
        kurtosis=best["kurtosis"],
    )
    assert best["dsr"] == pytest.approx(want, rel=1e-12)
    assert table["dsr"].between(0, 1).all()


def test_keep_returns_rebuild_the_equity(walk):
    grid = param_grid("ma_cross", fast=[3, 5], slow=[12, 20])
    res = sweep(walk, "ma_cross", grid, CFG, keep_returns=True, start=50)
    rets = res.returns["asset"]
    assert rets.shape == (len(walk) - 50, len(grid))
    final = CFG.initial_cash * np.prod(1 + rets, axis=0)
    np.testing.assert_allclose(final, res.table["final_equity"], rtol=1e-10)


def test_best_params_and_combo():
    table = pd.DataFrame(
        {
            "symbol": ["a"] * 3,
            "combo": [0, 1, 2],
            "fast": [1, 2, 3],
            "sharpe": [0.5, np.nan, 0.7],
            "max_drawdown": [0.2, 0.1, 0.3],
        }
    )
    assert best_combo(table, "sharpe") == 2
    assert best_combo(table, "max_drawdown") == 1  # lower is better
    assert best_params(table, "sharpe", ["fast"]) == {"fast": 3}
    with pytest.raises(ValueError, match="unknown metric"):
        best_combo(table, "sharp")


def test_sweep_errors():
    bars = synthetic_bars(50)
    with pytest.raises(ValueError, match="leaves no bars"):
        sweep(bars, "ma_cross", param_grid("ma_cross", fast=[2], slow=[5]), start=60)
    with pytest.raises(ValueError, match="breaks the rule"):
        sweep(bars, "ma_cross", pd.DataFrame({"fast": [5], "slow": [2]}))
    with pytest.raises(ValueError, match="unknown parameter"):
        param_grid("ma_cross", fats=[1])
