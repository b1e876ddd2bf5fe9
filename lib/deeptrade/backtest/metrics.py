"""Performance metrics, the deflated Sharpe ratio and the probability of backtest overfitting.

Conventions (all pure functions; numba code uses numpy's error model, so a division by zero
gives inf/NaN instead of raising):

- Returns are simple per-bar returns of the equity curve, the first one against the initial
  cash: ``r[0] = equity[0] / initial_cash - 1``.
- Sharpe = mean / std (ddof=1) x sqrt(periods_per_year), risk-free rate 0. Sortino uses the
  downside deviation sqrt(mean(min(r, 0)^2)) over all bars (target 0).
- ``max_drawdown`` is a positive fraction (0.25 = the equity fell 25 % from its peak; the
  initial cash counts as a peak). Calmar = CAGR / max_drawdown.
- CAGR uses ``len(equity) / periods_per_year`` years.
- Trade statistics count closed trades; a trade's pnl is net of its entry and exit fees.
- ``turnover`` is traded notional / mean equity per year; ``exposure`` the fraction of bars
  that ended with a position.
- ``skew`` and ``kurtosis`` (not excess: normal = 3) are population moments of the returns;
  ``sr_period`` is the non-annualised Sharpe the deflated Sharpe ratio works with.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
from numba import njit
from scipy.special import ndtr

# Run statistics the engine accumulates besides the equity curve (``stats`` vectors).
(S_NTRADES, S_NWINS, S_GROSS_PROFIT, S_GROSS_LOSS, S_SUM_PNL, S_SUM_TRADE_RET, S_NOTIONAL,
 S_EXPOSURE_BARS, S_NFILLS, S_LEN) = range(10)  # fmt: skip

METRICS = (
    "total_return",
    "cagr",
    "ann_vol",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "n_trades",
    "win_rate",
    "profit_factor",
    "avg_trade",
    "avg_trade_return",
    "turnover",
    "exposure",
    "final_equity",
    "sr_period",
    "skew",
    "kurtosis",
    "n_obs",
)
(M_TOTAL_RETURN, M_CAGR, M_ANN_VOL, M_SHARPE, M_SORTINO, M_MAX_DD, M_CALMAR, M_NTRADES,
 M_WIN_RATE, M_PROFIT_FACTOR, M_AVG_TRADE, M_AVG_TRADE_RET, M_TURNOVER, M_EXPOSURE,
 M_FINAL_EQUITY, M_SR_PERIOD, M_SKEW, M_KURT, M_NOBS) = range(len(METRICS))  # fmt: skip

# Metrics where a smaller value is better (for optimisation by a chosen metric).
LOWER_IS_BETTER = frozenset({"max_drawdown", "ann_vol", "turnover"})


class Fold(NamedTuple):
    """Running sums of an equity curve's metrics; the engine folds bars in as it simulates."""

    n: float
    prev: float
    s1: float  # sum of returns
    s2: float  # ... of squared returns (raw moments; see finish_metrics)
    s3: float
    s4: float
    down2: float  # sum of squared negative returns
    peak: float
    floor: float  # equity below this sets a new max drawdown (saves a division per bar)
    max_dd: float
    eq_sum: float


@njit(error_model="numpy", cache=True, inline="always")
def fold_start(initial_cash):
    return Fold(0.0, initial_cash, 0.0, 0.0, 0.0, 0.0, 0.0, initial_cash, initial_cash, 0.0, 0.0)


@njit(error_model="numpy", cache=True, inline="always")
def fold_bar(f, e):
    """Fold in one bar ending at equity ``e``."""
    x = e / f.prev - 1.0
    x2 = x * x
    peak, floor, max_dd = f.peak, f.floor, f.max_dd
    if e > peak:
        peak = e
        floor = peak * (1.0 - max_dd)
    elif e < floor:
        max_dd = 1.0 - e / peak
        floor = e
    return Fold(
        f.n + 1.0,
        e,
        f.s1 + x,
        f.s2 + x2,
        f.s3 + x2 * x,
        f.s4 + x2 * x2,
        f.down2 + (x2 if x < 0.0 else 0.0),
        peak,
        floor,
        max_dd,
        f.eq_sum + e,
    )


@njit(error_model="numpy", cache=True, inline="always")
def fold_flat(f, count):
    """Fold in ``count`` more bars at the previous bar's equity (returns exactly 0).

    Equal to ``count`` x ``fold_bar(f, f.prev)`` except that ``eq_sum`` adds ``count * e``
    in one rounding.
    """
    return Fold(
        f.n + count,
        f.prev,
        f.s1,
        f.s2,
        f.s3,
        f.s4,
        f.down2,
        f.peak,
        f.floor,
        f.max_dd,
        f.eq_sum + count * f.prev,
    )


@njit(error_model="numpy", cache=True)
def finish_metrics(f, stats, initial_cash, periods_per_year, out):
    """Fill ``out`` (length ``len(METRICS)``) from a fold and the engine's run stats.

    Central moments come from raw sums; for per-bar returns (|mean| well below the standard
    deviation times 1e7) the cancellation costs far less than the metrics' own precision.
    """
    n = f.n
    nan = np.nan
    mean = f.s1 / n
    m2 = max(f.s2 - n * mean * mean, 0.0)  # sums of centred powers
    m3 = f.s3 - 3.0 * mean * f.s2 + 2.0 * n * mean**3
    m4 = f.s4 - 4.0 * mean * f.s3 + 6.0 * mean * mean * f.s2 - 3.0 * n * mean**4
    std = math.sqrt(m2 / (n - 1)) if n > 1 else nan
    ann = math.sqrt(periods_per_year)
    final = f.prev
    years = n / periods_per_year
    out[M_TOTAL_RETURN] = final / initial_cash - 1.0
    out[M_CAGR] = (final / initial_cash) ** (1.0 / years) - 1.0 if final > 0 else -1.0
    out[M_ANN_VOL] = std * ann
    out[M_SR_PERIOD] = mean / std if std > 0 else nan
    out[M_SHARPE] = out[M_SR_PERIOD] * ann
    dd_dev = math.sqrt(f.down2 / n)
    out[M_SORTINO] = mean / dd_dev * ann if dd_dev > 0 else nan
    out[M_MAX_DD] = f.max_dd
    out[M_CALMAR] = out[M_CAGR] / f.max_dd if f.max_dd > 0 else nan
    ntr = stats[S_NTRADES]
    out[M_NTRADES] = ntr
    out[M_WIN_RATE] = stats[S_NWINS] / ntr if ntr > 0 else nan
    if ntr == 0:
        out[M_PROFIT_FACTOR] = nan
    elif stats[S_GROSS_LOSS] > 0:
        out[M_PROFIT_FACTOR] = stats[S_GROSS_PROFIT] / stats[S_GROSS_LOSS]
    else:
        out[M_PROFIT_FACTOR] = np.inf if stats[S_GROSS_PROFIT] > 0 else nan
    out[M_AVG_TRADE] = stats[S_SUM_PNL] / ntr if ntr > 0 else nan
    out[M_AVG_TRADE_RET] = stats[S_SUM_TRADE_RET] / ntr if ntr > 0 else nan
    mean_equity = f.eq_sum / n
    out[M_TURNOVER] = stats[S_NOTIONAL] / mean_equity / years if mean_equity > 0 else nan
    out[M_EXPOSURE] = stats[S_EXPOSURE_BARS] / n
    out[M_FINAL_EQUITY] = final
    pm2 = m2 / n
    out[M_SKEW] = (m3 / n) / pm2**1.5 if pm2 > 0 else nan
    out[M_KURT] = (m4 / n) / (pm2 * pm2) if pm2 > 0 else nan
    out[M_NOBS] = n


@njit(error_model="numpy", cache=True)
def metrics_into(equity, stats, initial_cash, periods_per_year, out):
    """Fill ``out`` (length ``len(METRICS)``) from an equity curve and run stats."""
    f = fold_start(initial_cash)
    for t in range(equity.shape[0]):
        f = fold_bar(f, equity[t])
    finish_metrics(f, stats, initial_cash, periods_per_year, out)


def run_metrics(
    equity: np.ndarray, stats: np.ndarray, initial_cash: float, periods_per_year: float
) -> dict[str, float]:
    """All of ``METRICS`` for one run (``stats`` as the engine kernel returns it)."""
    out = np.empty(len(METRICS))
    metrics_into(np.asarray(equity, dtype=np.float64), stats, initial_cash, periods_per_year, out)
    return dict(zip(METRICS, out.tolist(), strict=True))


def summary(
    equity: np.ndarray,
    *,
    initial_cash: float,
    periods_per_year: float = 252.0,
    trade_pnls: np.ndarray | None = None,
    trade_returns: np.ndarray | None = None,
    traded_notional: float = 0.0,
    exposed: np.ndarray | None = None,
) -> dict[str, float]:
    """``METRICS`` from an equity curve and optional closed-trade pnls/returns (net of fees).

    ``exposed`` is a boolean per bar (a position was held at its close).
    """
    pnls = np.asarray(trade_pnls if trade_pnls is not None else [], dtype=np.float64)
    rets = np.asarray(trade_returns if trade_returns is not None else [], dtype=np.float64)
    stats = np.zeros(S_LEN)
    stats[S_NTRADES] = pnls.size
    stats[S_NWINS] = (pnls > 0).sum()
    stats[S_GROSS_PROFIT] = pnls[pnls > 0].sum()
    stats[S_GROSS_LOSS] = -pnls[pnls <= 0].sum()
    stats[S_SUM_PNL] = pnls.sum()
    stats[S_SUM_TRADE_RET] = rets.sum()
    stats[S_NOTIONAL] = traded_notional
    stats[S_EXPOSURE_BARS] = 0 if exposed is None else np.count_nonzero(exposed)
    return run_metrics(equity, stats, initial_cash, periods_per_year)


# ---------------------------------------------------------------------------------------------
# Deflated Sharpe ratio (Bailey & López de Prado, 2014)

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """E[max SR] of ``n_trials`` independent trials with true SR 0 and Var[SR] ``var_sharpe``.

    SR0 = sqrt(V) ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))), g = Euler-Mascheroni.
    """
    if n_trials < 2:
        raise ValueError(f"expected_max_sharpe needs n_trials >= 2, got {n_trials}")
    g = EULER_GAMMA
    z1 = _N.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sharpe) * ((1.0 - g) * z1 + g * z2)


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """P[true SR > sr_benchmark] given a per-period SR estimate over ``n_obs`` returns.

    ``kurtosis`` is the non-excess kurtosis (3 for normal returns).
    """
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if denom <= 0 or n_obs < 2:
        return math.nan
    return _N.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def probabilistic_sharpe_ratio_array(
    sr: np.ndarray, sr_benchmark: float, n_obs: np.ndarray, skew: np.ndarray, kurtosis: np.ndarray
) -> np.ndarray:
    """Vectorised ``probabilistic_sharpe_ratio`` (NaN where it is undefined)."""
    sr = np.asarray(sr, dtype=np.float64)
    denom = 1.0 - skew * sr + (np.asarray(kurtosis) - 1.0) / 4.0 * sr * sr
    n_obs = np.asarray(n_obs, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (sr - sr_benchmark) * np.sqrt(n_obs - 1.0) / np.sqrt(denom)
    z = np.where((denom > 0) & (n_obs >= 2), z, np.nan)
    return ndtr(z)


def deflated_sharpe_ratio(
    sr: float,
    *,
    n_trials: int,
    var_sharpe: float,
    n_obs: int,
    skew: float,
    kurtosis: float,
) -> float:
    """PSR of the selected strategy against the expected maximum SR of ``n_trials`` trials.

    All Sharpe ratios per period (not annualised); ``var_sharpe`` is the variance of the SR
    estimates across the trials.
    """
    sr0 = expected_max_sharpe(n_trials, var_sharpe)
    return probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurtosis)


# ---------------------------------------------------------------------------------------------
# Probability of backtest overfitting via CSCV (Bailey, Borwein, López de Prado & Zhu)


@dataclass
class PBOResult:
    pbo: float
    """Share of IS/OOS splits where the in-sample best ranks at or below the OOS median."""
    logits: np.ndarray
    """lambda = log(w / (1 - w)) per split, w = OOS rank of the IS best / (N + 1)."""
    is_best: np.ndarray
    """Index of the in-sample best strategy per split."""
    oos_rank: np.ndarray
    """Its OOS rank (1 = worst, N = best; ties share their average rank)."""
    splits: list[tuple[int, ...]]
    """The in-sample block indices of each split (in ``itertools.combinations`` order)."""


def _block_perf(block_sums: np.ndarray, blocks: tuple[int, ...], rows: int, metric: str):
    """Performance of every strategy on the union of ``blocks`` from per-block sums."""
    s1 = block_sums[0, list(blocks)].sum(axis=0)
    s2 = block_sums[1, list(blocks)].sum(axis=0)
    n = rows * len(blocks)
    mean = s1 / n
    if metric == "mean":
        return mean
    var = (s2 - n * mean * mean) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, mean / np.sqrt(np.maximum(var, 0)), -np.inf)


def _average_rank(values: np.ndarray, k: int) -> float:
    """1-based ascending rank of ``values[k]``, ties sharing the average rank."""
    v = values[k]
    return float((values < v).sum() + ((values == v).sum() + 1) / 2.0)


def pbo_cscv(returns: np.ndarray, n_blocks: int = 16, metric: str = "sharpe") -> PBOResult:
    """Probability of backtest overfitting of N strategies from their (T, N) per-bar returns.

    The T rows are cut into ``n_blocks`` (even) contiguous blocks of T // n_blocks rows (the
    first T % n_blocks rows are dropped); every one of the C(S, S/2) choices of S/2 blocks is
    an in-sample set with the rest out of sample. ``metric``: 'sharpe' (mean/std) or 'mean'.
    PBO counts logits <= 0, as the paper's integral over (-inf, 0].
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"pbo_cscv needs (T, N>=2) returns, got shape {r.shape}")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"pbo_cscv: n_blocks must be even and >= 2, got {n_blocks}")
    if metric not in ("sharpe", "mean"):
        raise ValueError(f"pbo_cscv: metric must be 'sharpe' or 'mean', got {metric!r}")
    rows = r.shape[0] // n_blocks
    if rows < 1 or rows * n_blocks // 2 < 2:
        raise ValueError(
            f"pbo_cscv: {r.shape[0]} rows are too few for {n_blocks} blocks (each half needs "
            "at least 2 rows); use fewer blocks"
        )
    r = r[r.shape[0] - rows * n_blocks :].reshape(n_blocks, rows, r.shape[1])
    block_sums = np.stack([r.sum(axis=1), (r * r).sum(axis=1)])  # (2, S, N)
    n = r.shape[2]
    all_blocks = range(n_blocks)
    splits = list(itertools.combinations(all_blocks, n_blocks // 2))
    logits = np.empty(len(splits))
    best = np.empty(len(splits), dtype=np.int64)
    ranks = np.empty(len(splits))
    for i, is_blocks in enumerate(splits):
        oos_blocks = tuple(b for b in all_blocks if b not in is_blocks)
        perf_is = _block_perf(block_sums, is_blocks, rows, metric)
        perf_oos = _block_perf(block_sums, oos_blocks, rows, metric)
        k = int(np.argmax(perf_is))
        rank = _average_rank(perf_oos, k)
        w = rank / (n + 1.0)
        best[i] = k
        ranks[i] = rank
        logits[i] = math.log(w / (1.0 - w))
    return PBOResult(float((logits <= 0).mean()), logits, best, ranks, splits)
