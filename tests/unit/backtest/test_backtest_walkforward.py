"""Walk-forward: explicit window boundaries, in-sample-only choices, stitched out-of-sample."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from deeptrade.backtest.engine import BacktestConfig
from deeptrade.backtest.sweep import param_grid
from deeptrade.backtest.walkforward import TrainSlice, Window, make_windows, walk_forward

CFG = BacktestConfig(commission_bps=5, direction="long_only")
GRID = param_grid("ma_cross", fast=[3, 10], slow=[20, 50])


def test_rolling_windows_with_purge_and_embargo_by_hand():
    wins = make_windows(100, train=40, test=20, purge=2, embargo=1)
    # e_k = 40 + 20k; train [e-40, e-2); test [e+1, e+21) clipped to 100
    assert wins == [
        Window(0, 0, 38, 41, 61, 2, 1),
        Window(1, 20, 58, 61, 81, 2, 1),
        Window(2, 40, 78, 81, 100, 2, 1),
    ]
    anchored = make_windows(100, train=40, test=20, step=30, anchored=True)
    assert [(w.train_start, w.train_end, w.test_start, w.test_end) for w in anchored] == [
        (0, 40, 40, 60),
        (0, 70, 70, 90),
    ]


def test_windows_from_timestamps_and_durations():
    ts = pd.bdate_range("2021-01-04", periods=60, tz="UTC")  # weekdays only
    wins = make_windows(ts, train="28D", test="14D")
    # boundaries at 2021-02-01, -15, -29, ... -> first bar at or after each
    assert ts[wins[0].test_start] == pd.Timestamp("2021-02-01", tz="UTC")
    assert ts[wins[0].test_end] == pd.Timestamp("2021-02-15", tz="UTC")
    assert ts[wins[1].train_start] == pd.Timestamp("2021-01-18", tz="UTC")
    assert make_windows(ts, 20, 10)[0] == make_windows(60, 20, 10)[0]


def test_window_errors():
    with pytest.raises(ValueError, match="all in bars or all as durations"):
        make_windows(pd.date_range("2021", periods=50, tz="UTC"), 20, "5D")
    with pytest.raises(ValueError, match="pass timestamps"):
        make_windows(50, "20D", "5D")
    with pytest.raises(ValueError, match="purge"):
        make_windows(50, 5, 5, purge=4)
    with pytest.raises(ValueError, match="no test span"):
        make_windows(50, 60, 5)


def test_walk_forward_records_windows_and_stitches(spx):
    wins = make_windows(len(spx), train=250, test=100, purge=5, embargo=2)
    wf = walk_forward(spx, "ma_cross", GRID, wins, CFG)
    assert wf.windows[["train_start", "train_end", "test_start", "test_end"]].values.tolist() == [
        [w.train_start, w.train_end, w.test_start, w.test_end] for w in wins
    ]
    assert {"param_fast", "param_slow", "is_sharpe", "oos_sharpe"} <= set(wf.windows.columns)
    ts = spx["timestamp"]
    expected_index = np.concatenate([ts.iloc[w.test_start : w.test_end] for w in wins])
    np.testing.assert_array_equal(
        wf.equity.index.to_numpy(), pd.DatetimeIndex(expected_index).to_numpy()
    )
    # each window starts flat with the equity the previous one ended with (fills at t+1's open)
    for prev, cur in itertools.pairwise(wins):
        assert wf.equity[ts[cur.test_start]] == wf.equity[ts[prev.test_end - 1]]
    assert wf.metrics["final_equity"] == wf.equity.iloc[-1]
    assert wf.metrics["n_trades"] == wf.windows["oos_n_trades"].sum()
    assert not wf.trades["is_open"].any()  # every window liquidates at its last close
    assert len(wf.in_sample) == len(wins) and len(wf.in_sample[0]) == len(GRID)


def test_out_of_sample_params_come_from_in_sample_data_only(spx):
    wins = make_windows(len(spx), train=200, test=100, purge=3)
    base = walk_forward(spx, "ma_cross", GRID, wins, CFG).windows
    cols = ["param_fast", "param_slow", "is_sharpe"]
    rng = np.random.default_rng(0)
    for w in wins:
        # scramble every bar from the first one the window may not see in sample
        changed = spx.copy()
        scale = np.r_[np.ones(w.train_end), rng.uniform(0.5, 1.5, len(spx) - w.train_end)]
        for col in ("open", "high", "low", "close"):
            changed[col] = changed[col] * scale
        again = walk_forward(changed, "ma_cross", GRID, wins, CFG).windows
        pd.testing.assert_frame_equal(again.loc[: w.index, cols], base.loc[: w.index, cols])


def test_retrain_hook_sees_only_purged_in_sample_rows(spx):
    wins = make_windows(len(spx), train=200, test=100, purge=4)
    seen: list[tuple[int, int]] = []
    calls: list[int] = []

    def retrain(ts: TrainSlice):
        seen.append((int(ts.bars.index[0]), int(ts.bars.index[-1]) + 1))

        def predictor(history: pd.DataFrame) -> np.ndarray:
            calls.append(len(history))
            # causal: the close's change over the last 3 bars (row t uses rows <= t)
            return history["close"].pct_change(3).to_numpy()

        return predictor

    grid = param_grid("predictions", threshold=[0.0, 0.01])
    wf = walk_forward(spx, "predictions", grid, wins, CFG, retrain=retrain)
    assert seen == [(w.train_start, w.train_end) for w in wins]
    # per window: the in-sample sweep gets rows < train_end, the test run rows < test_end
    assert calls == [n for w in wins for n in (w.train_end, w.test_end)]
    assert set(wf.windows["param_threshold"]) <= {0.0, 0.01}


def test_walk_forward_rejects_overlapping_tests_and_bad_metric(spx):
    wins = make_windows(len(spx), train=200, test=100, step=50)
    with pytest.raises(ValueError, match="overlap"):
        walk_forward(spx, "ma_cross", GRID, wins, CFG)
    with pytest.raises(ValueError, match="unknown metric"):
        walk_forward(spx, "ma_cross", GRID, make_windows(len(spx), 200, 100), CFG, metric="sharp")
