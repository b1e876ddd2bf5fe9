"""No look-ahead: changing every bar after t changes no target, fill, position or equity <= t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeptrade.backtest.engine import BacktestConfig, run_backtest
from deeptrade.backtest.strategies import get_strategy, positions_from_predictions

STRATEGIES = [
    ("ma_cross", {"fast": 5, "slow": 20, "ma": "wma", "volume_window": 10, "volume_mult": 0.8}),
    ("ma_cross", {"fast": 4, "slow": 12, "ma": "ema"}),
    ("rsi", {"window": 7, "lower": 40.0, "upper": 60.0}),
    ("donchian", {"window": 10, "exit_window": 4}),
    ("momentum", {"lookback": 5, "threshold": 0.005}),
    ("predictions", {"threshold": 0.001}),
]
CONFIGS = [
    BacktestConfig(fill="next_open", commission_bps=5, stop_loss=0.03, take_profit=0.04),
    BacktestConfig(
        fill="close", sizing="vol_target", max_leverage=2.0, slippage_atr=0.2, lot_size=1
    ),
]


def _perturb_after(bars: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = bars.copy()
    k = len(bars) - t - 1
    scale = rng.uniform(0.7, 1.3, k)
    for col in ("open", "high", "low", "close"):
        out.loc[t + 1 :, col] = out[col].to_numpy()[t + 1 :] * scale
    out.loc[t + 1 :, "volume"] = rng.uniform(0.1, 10.0, k) * out["volume"].to_numpy()[t + 1 :]
    out.loc[t + 1 :, "pred"] = rng.normal(0, 0.01, k)
    return out


def _with_pred(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.assign(pred=bars["close"].pct_change(2).to_numpy())  # a causal "model"


def _assert_same_up_to(a, b, t: int) -> None:
    np.testing.assert_array_equal(a.equity.to_numpy()[: t + 1], b.equity.to_numpy()[: t + 1])
    np.testing.assert_array_equal(a.positions.to_numpy()[: t + 1], b.positions.to_numpy()[: t + 1])
    pd.testing.assert_frame_equal(a.fills[a.fills["bar"] <= t], b.fills[b.fills["bar"] <= t])
    done_a = a.trades[(a.trades["exit_bar"] <= t) & ~a.trades["is_open"]]
    done_b = b.trades[(b.trades["exit_bar"] <= t) & ~b.trades["is_open"]]
    pd.testing.assert_frame_equal(done_a, done_b)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["next_open", "close"])
@pytest.mark.parametrize(
    ("name", "params"), STRATEGIES, ids=[s[0] + str(i) for i, s in enumerate(STRATEGIES)]
)
def test_future_changes_leave_the_past_alone(spx, name, params, cfg):
    bars = _with_pred(spx)
    strat = get_strategy(name)
    target = strat.signals(bars, **params)
    base = run_backtest(bars, target, cfg)
    assert len(base.fills) > 2  # the strategy trades, so the test has something to check
    for i, t in enumerate(np.random.default_rng(1).integers(60, len(bars) - 2, 4)):
        changed = _perturb_after(bars, int(t), seed=i)
        target2 = strat.signals(changed, **params)
        np.testing.assert_array_equal(target2[: t + 1], target[: t + 1])
        _assert_same_up_to(base, run_backtest(changed, target2, cfg), int(t))


@pytest.mark.parametrize("cfg", CONFIGS, ids=["next_open", "close"])
def test_portfolio_and_cross_sectional_ranks_have_no_look_ahead(spx, walk, cfg):
    a = _with_pred(spx.iloc[-len(walk) :].reset_index(drop=True))
    b = _with_pred(walk.assign(timestamp=a["timestamp"].to_numpy()))
    c = _with_pred(walk.assign(timestamp=a["timestamp"].to_numpy(), close=walk["close"] * 1.01))

    def run(frames):
        preds = np.column_stack([f["pred"].to_numpy() for f in frames.values()])
        target = positions_from_predictions(preds, "rank", top_k=1)
        return target, run_backtest(frames, target, cfg)

    target, base = run({"A": a, "B": b, "C": c})
    for i, t in enumerate((80, 200, 333)):
        frames = {
            k: _perturb_after(f, t, seed=10 * i + j)
            for j, (k, f) in enumerate({"A": a, "B": b, "C": c}.items())
        }
        target2, again = run(frames)
        np.testing.assert_array_equal(target2[: t + 1], target[: t + 1])
        _assert_same_up_to(base, again, t)


def test_the_check_catches_a_peeking_strategy(spx):
    """Control: a target that reads bar t+1 fails the same comparison at every t tried."""
    cfg = CONFIGS[1]  # fills at the close, so a changed target at t shows in bar t's book

    def peek(frame: pd.DataFrame) -> np.ndarray:
        c = frame["close"].to_numpy()
        return np.r_[np.sign(c[1:] - c[:-1]), 0.0]  # tomorrow's direction

    base = run_backtest(spx, peek(spx), cfg)
    for t in range(100, 500, 50):
        changed = spx.copy()
        c = spx["close"].to_numpy()
        # mirror the next return, so tomorrow's direction flips; the past is untouched
        changed.loc[t + 1 :, ["open", "high", "low", "close"]] *= (c[t] / c[t + 1]) ** 2
        with pytest.raises(AssertionError):
            _assert_same_up_to(base, run_backtest(changed, peek(changed), cfg), t)
