"""Metrics against arithmetic written out by hand (never the function under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from deeptrade.backtest.metrics import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    summary,
)

# Equity 100 -> 110 -> 99 -> 121 -> 121 (initial cash 100), 4 bars a "year".
EQUITY = [110.0, 99.0, 121.0, 121.0]
R = [110 / 100 - 1, 99 / 110 - 1, 121 / 99 - 1, 121 / 121 - 1]  # 0.1, -0.1, 0.2222, 0


@pytest.fixture
def m():
    return summary(
        np.array(EQUITY),
        initial_cash=100.0,
        periods_per_year=4.0,
        trade_pnls=[10.0, -5.0, 20.0],
        trade_returns=[0.1, -0.05, 0.2],
        traded_notional=400.0,
        exposed=np.array([True, True, False, True]),
    )


def test_returns_based_metrics_by_hand(m):
    mean = (0.1 - 0.1 + 2 / 9 + 0.0) / 4  # = 1/18
    dev = [0.1 - mean, -0.1 - mean, 2 / 9 - mean, 0.0 - mean]
    var = sum(d * d for d in dev) / 3  # = 462/8100/3
    assert var == pytest.approx(462 / 8100 / 3, rel=1e-12)
    std = math.sqrt(var)
    assert m["total_return"] == pytest.approx(0.21, rel=1e-12)
    assert m["cagr"] == pytest.approx(0.21, rel=1e-12)  # exactly one year
    assert m["ann_vol"] == pytest.approx(std * 2, rel=1e-12)  # sqrt(4)
    assert m["sr_period"] == pytest.approx(mean / std, rel=1e-12)
    assert m["sharpe"] == pytest.approx(mean / std * 2, rel=1e-12)
    downside = math.sqrt((0.1**2) / 4)  # only -0.1 is negative, over all 4 bars = 0.05
    assert m["sortino"] == pytest.approx(mean / downside * 2, rel=1e-12)  # 2.2222
    assert m["max_drawdown"] == pytest.approx(1 - 99 / 110, rel=1e-12)  # 0.1
    assert m["calmar"] == pytest.approx(0.21 / 0.1, rel=1e-12)
    m2 = sum(d**2 for d in dev) / 4
    assert m["skew"] == pytest.approx(sum(d**3 for d in dev) / 4 / m2**1.5, rel=1e-9)
    assert m["kurtosis"] == pytest.approx(sum(d**4 for d in dev) / 4 / m2**2, rel=1e-9)
    assert m["final_equity"] == 121.0
    assert m["n_obs"] == 4


def test_trade_metrics_by_hand(m):
    assert m["n_trades"] == 3
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx((10 + 20) / 5)
    assert m["avg_trade"] == pytest.approx(25 / 3)
    assert m["avg_trade_return"] == pytest.approx(0.25 / 3)
    mean_equity = (110 + 99 + 121 + 121) / 4  # 112.75
    assert m["turnover"] == pytest.approx(400 / mean_equity / 1.0)
    assert m["exposure"] == pytest.approx(0.75)


def test_no_trades_and_flat_equity_are_nan_not_errors():
    m = summary(np.full(5, 100.0), initial_cash=100.0)
    assert m["total_return"] == 0 and m["max_drawdown"] == 0
    for k in ("sharpe", "sortino", "win_rate", "profit_factor", "avg_trade", "calmar"):
        assert math.isnan(m[k]), k
    m = summary(np.array([101.0, 102.0]), initial_cash=100.0, trade_pnls=[2.0])
    assert m["profit_factor"] == math.inf


def test_deflated_sharpe_matches_the_papers_example():
    # Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example:
    # N = 100 trials, Var[SR_n] = 1/2 (annualised), best SR = 2.5 annualised over 5 years of
    # daily data (T = 1250), skew -3, kurtosis 10 -> DSR ~ 0.9004.
    g = 0.5772156649015329
    sr0_annual = math.sqrt(0.5) * (
        (1 - g) * norm.ppf(1 - 1 / 100) + g * norm.ppf(1 - 1 / (100 * math.e))
    )
    assert sr0_annual == pytest.approx(1.7894, abs=1e-4)
    sr0 = sr0_annual / math.sqrt(250)  # per day
    sr = 2.5 / math.sqrt(250)
    z = (sr - sr0) * math.sqrt(1250 - 1) / math.sqrt(1 - (-3) * sr + (10 - 1) / 4 * sr**2)
    expected = norm.cdf(z)
    assert expected == pytest.approx(0.9004, abs=1e-4)
    assert expected_max_sharpe(100, 0.5) == pytest.approx(sr0_annual, rel=1e-9)
    got = deflated_sharpe_ratio(
        sr, n_trials=100, var_sharpe=0.5 / 250, n_obs=1250, skew=-3, kurtosis=10
    )
    assert got == pytest.approx(expected, rel=1e-9)


def test_probabilistic_sharpe_normal_returns_by_hand():
    # Normal returns (skew 0, kurtosis 3): z = (0.1 - 0) * sqrt(99) / sqrt(1 + 2/4 * 0.01)
    z = 0.1 * math.sqrt(99) / math.sqrt(1 + 0.5 * 0.01)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 100, 0.0, 3.0) == pytest.approx(
        norm.cdf(z), rel=1e-12
    )
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(1, 0.1)


def test_pbo_by_hand_4_strategies_8_periods_4_blocks():
    # Block means (blocks x strategies A..D); each block is two equal rows, metric = mean.
    blocks = np.array([[1, 8, 2, 3], [4, 2, 5, 6], [7, 5, 8, 3], [4, 8, 2, 5]], dtype=float)
    returns = np.repeat(blocks, 2, axis=0)  # 8 periods x 4 strategies
    # The C(4,2) = 6 in-sample block pairs, itertools order; IS mean of each strategy, its best,
    # the out-of-sample means, the best's OOS rank (1 = worst of 4) and w = rank / 5:
    #  IS {0,1}: A 2.5 B 5.0 C 3.5 D 4.5 -> B; OOS {2,3}: A 5.5 B 6.5 C 5.0 D 4.0 -> B rank 4
    #  IS {0,2}: A 4.0 B 6.5 C 5.0 D 3.0 -> B; OOS {1,3}: A 4.0 B 5.0 C 3.5 D 5.5 -> B rank 3
    #  IS {0,3}: A 2.5 B 8.0 C 2.0 D 4.0 -> B; OOS {1,2}: A 5.5 B 3.5 C 6.5 D 4.5 -> B rank 1
    #  IS {1,2}: A 5.5 B 3.5 C 6.5 D 4.5 -> C; OOS {0,3}: A 2.5 B 8.0 C 2.0 D 4.0 -> C rank 1
    #  IS {1,3}: A 4.0 B 5.0 C 3.5 D 5.5 -> D; OOS {0,2}: A 4.0 B 6.5 C 5.0 D 3.0 -> D rank 1
    #  IS {2,3}: A 5.5 B 6.5 C 5.0 D 4.0 -> B; OOS {0,1}: A 2.5 B 5.0 C 3.5 D 4.5 -> B rank 4
    ranks = [4, 3, 1, 1, 1, 4]
    logits = [math.log((r / 5) / (1 - r / 5)) for r in ranks]  # 1.386, 0.405, -1.386 x3, 1.386
    res = pbo_cscv(returns, n_blocks=4, metric="mean")
    assert res.splits == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert list(res.is_best) == [1, 1, 1, 2, 3, 1]
    assert list(res.oos_rank) == ranks
    np.testing.assert_allclose(res.logits, logits, rtol=1e-12)
    assert res.pbo == pytest.approx(3 / 6)  # three logits <= 0


def test_pbo_sharpe_metric_by_hand_two_blocks():
    x = [0.01, 0.03, 0.02, -0.02]
    y = [0.02, 0.00, -0.01, 0.03]
    # Block 0 = rows 0-1, block 1 = rows 2-3. Sharpe = mean / std(ddof=1):
    # block 0: X 0.02 / 0.014142 = 1.414, Y 0.01 / 0.014142 = 0.707 -> X best in sample;
    # block 1: X 0.00 / 0.028284 = 0.000, Y 0.01 / 0.028284 = 0.354 -> X ranks 1 of 2.
    # Split IS={0}: X best, OOS rank 1 -> w = 1/3; split IS={1}: Y best, OOS rank 1 -> w = 1/3.
    res = pbo_cscv(np.column_stack([x, y]), n_blocks=2, metric="sharpe")
    assert list(res.is_best) == [0, 1]
    assert list(res.oos_rank) == [1, 1]
    np.testing.assert_allclose(res.logits, [math.log(0.5)] * 2, rtol=1e-12)
    assert res.pbo == 1.0


def test_pbo_rejects_bad_input():
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(np.zeros((8, 3)), n_blocks=3)
    with pytest.raises(ValueError, match="too few"):
        pbo_cscv(np.zeros((3, 3)), n_blocks=4)
    with pytest.raises(ValueError, match="N>=2"):
        pbo_cscv(np.zeros(8), n_blocks=2)
