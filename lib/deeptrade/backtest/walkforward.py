"""Walk-forward analysis: optimise in sample, trade the choice out of sample, stitch.

Window k (``make_windows``): the in-sample span ends at ``e_k = train + k * step`` (exclusive)
and starts at ``e_k - train`` (rolling) or 0 (anchored). Its last ``purge`` bars are dropped
(their labels, up to ``purge`` bars ahead, would overlap the test span) and the test span starts
``embargo`` bars after ``e_k``: ``[e_k + embargo, e_k + embargo + test)``. So ``purge +
embargo`` bars separate the last in-sample bar from the first out-of-sample bar.

Per window, ``walk_forward``

1. calls ``retrain(TrainSlice)`` if given, which returns a predictor (bars -> one prediction per
   row, causal); its predictions become the ``pred`` column strategies such as ``predictions``
   read,
2. sweeps the grid on ``bars[:train_end]`` only, simulating ``[train_start, train_end)``, and
   picks the best row by ``metric``,
3. runs the chosen parameters on ``bars[:test_end]`` over ``[test_start, test_end)``, starting
   flat with the equity the previous window ended with and liquidating at the window's last
   close, so the out-of-sample equity curves chain into one.

With ``retrain``, the in-sample predictions come from a model fit on those very bars, so
in-sample scores of model-driven strategies flatter them; only the out-of-sample part counts.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deeptrade.backtest.engine import BacktestConfig, simulate_arrays, validate_bars
from deeptrade.backtest.metrics import METRICS, S_LEN, run_metrics
from deeptrade.backtest.strategies import Strategy, as_arrays, get_strategy
from deeptrade.backtest.sweep import best_combo, best_params, sweep


@dataclass(frozen=True)
class Window:
    """Index boundaries of one walk-forward window (ends exclusive)."""

    index: int
    train_start: int
    train_end: int
    """First bar after the in-sample data actually used (after the purge)."""
    test_start: int
    test_end: int
    purge: int
    embargo: int


def _bars_for(
    timestamps: pd.DatetimeIndex | None, n: int, value: int | str | pd.Timedelta, name: str
) -> int | pd.Timedelta:
    if isinstance(value, (int, np.integer)):
        if value < 1:
            raise ValueError(f"make_windows: {name} must be >= 1 bar, got {value}")
        return int(value)
    if timestamps is None:
        raise ValueError(f"make_windows: {name}={value!r} is a duration; pass timestamps, not n")
    td = pd.Timedelta(value)
    if td <= pd.Timedelta(0):
        raise ValueError(f"make_windows: {name} must be a positive duration, got {value!r}")
    return td


def make_windows(
    bars: int | Sequence | pd.DatetimeIndex | pd.Series,
    train: int | str | pd.Timedelta,
    test: int | str | pd.Timedelta,
    step: int | str | pd.Timedelta | None = None,
    *,
    anchored: bool = False,
    purge: int = 0,
    embargo: int = 0,
) -> list[Window]:
    """Walk-forward windows over ``n`` bars or over ``timestamps``.

    ``train``/``test``/``step`` (default ``test``) are bar counts, or durations such as
    ``"365D"`` when timestamps are given (boundaries are then the first bar at or after each
    boundary time). ``purge``/``embargo`` are bar counts (the label horizon). The last test
    span may be shorter than ``test``; spans that would start past the end are dropped.
    """
    if isinstance(bars, (int, np.integer)):
        n, ts = int(bars), None
    else:
        ts = pd.DatetimeIndex(bars)
        n = len(ts)
        if not ts.is_monotonic_increasing:
            raise ValueError("make_windows: timestamps must be sorted ascending")
    if purge < 0 or embargo < 0:
        raise ValueError(f"make_windows: purge and embargo must be >= 0, got {purge}, {embargo}")
    step = test if step is None else step
    tr, te, st = (
        _bars_for(ts, n, v, k) for v, k in ((train, "train"), (test, "test"), (step, "step"))
    )
    kinds = {type(v) for v in (tr, te, st)}
    if len(kinds) > 1:
        raise ValueError("make_windows: give train, test and step all in bars or all as durations")
    windows: list[Window] = []
    k = 0
    while True:
        if isinstance(tr, int):
            e = tr + k * st
            s = 0 if anchored else e - tr
            t_end_raw = e + embargo + te
        else:
            assert ts is not None
            boundary = ts[0] + tr + k * st
            e = int(ts.searchsorted(boundary, "left"))
            s = 0 if anchored else int(ts.searchsorted(boundary - tr, "left"))
            t_end_raw = int(ts.searchsorted(boundary + te, "left")) + embargo
        test_start = e + embargo
        if test_start >= n:
            break
        train_end = e - purge
        if train_end - s < 2:
            raise ValueError(
                f"make_windows: window {k} keeps {train_end - s} in-sample bars after a purge of "
                f"{purge}; lengthen train or shorten purge"
            )
        windows.append(Window(k, s, train_end, test_start, min(t_end_raw, n), purge, embargo))
        k += 1
    if not windows:
        raise ValueError(
            f"make_windows: {n} bars leave no test span after train={train} (+embargo={embargo})"
        )
    return windows


@dataclass
class TrainSlice:
    """What a retraining callback gets: the window and its purged in-sample bars."""

    window: Window
    bars: pd.DataFrame
    """Rows ``[train_start, train_end)`` of the input bars (original index kept)."""


Predictor = Callable[[pd.DataFrame], np.ndarray]
"""Bars (history up to some t) -> one prediction per row; row t may use rows <= t only."""


@dataclass
class WalkForwardResult:
    windows: pd.DataFrame
    """One row per window: boundaries (bars and timestamps), chosen params (``param_*``), the
    in-sample score (``is_<metric>``) and out-of-sample metrics (``oos_*``)."""
    equity: pd.Series
    """Stitched out-of-sample equity, one value per test bar."""
    trades: pd.DataFrame
    """Out-of-sample trades with a ``window`` column."""
    metrics: dict[str, float]
    """``METRICS`` of the stitched out-of-sample run."""
    in_sample: list[pd.DataFrame]
    """Each window's in-sample sweep table (for heatmaps and overfitting statistics)."""


def _with_predictions(bars: pd.DataFrame, predictor: Predictor | None) -> pd.DataFrame:
    if predictor is None:
        return bars
    pred = np.asarray(predictor(bars), dtype=np.float64)
    if pred.shape != (len(bars),):
        raise ValueError(
            f"walk_forward: the predictor returned shape {pred.shape} for {len(bars)} bars; "
            "it must return one prediction per row"
        )
    return bars.assign(pred=pred)


def walk_forward(
    bars: pd.DataFrame,
    strategy: str | type[Strategy],
    grid: pd.DataFrame,
    windows: Sequence[Window],
    cfg: BacktestConfig | None = None,
    *,
    metric: str = "sharpe",
    retrain: Callable[[TrainSlice], Predictor] | None = None,
    threads: int | None = None,
) -> WalkForwardResult:
    """Optimise ``grid`` in sample and trade the choice out of sample in every window.

    ``bars`` is one (symbol, timeframe) series; ``cfg`` applies to both halves (its
    ``close_at_end`` is forced on out of sample so that windows chain).
    """
    cfg = cfg or BacktestConfig()
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    validate_bars(bars)
    bars = bars.reset_index(drop=True)
    ts = pd.DatetimeIndex(bars["timestamp"])
    if metric not in METRICS:
        raise ValueError(f"walk_forward: unknown metric {metric!r}; use one of {list(METRICS)}")
    for a, b in itertools.pairwise(windows):
        if b.test_start < a.test_end:
            raise ValueError(
                f"walk_forward: test spans of windows {a.index} and {b.index} overlap; "
                "use step >= test so the out-of-sample curves can be stitched"
            )
    if windows[-1].test_end > len(bars):
        raise ValueError(
            "walk_forward: windows run past the end of bars; rebuild them for these bars"
        )
    strat.full_grid(grid)  # unknown parameter names fail here, before any work
    param_names = list(grid.columns)
    cash = cfg.initial_cash
    rows, curves, trade_parts, tables = [], [], [], []
    stats = np.zeros(S_LEN)
    for w in windows:
        predictor = None
        if retrain is not None:
            predictor = retrain(TrainSlice(w, bars.iloc[w.train_start : w.train_end]))
        in_sample = _with_predictions(bars.iloc[: w.train_end], predictor)
        table = sweep(in_sample, strat, grid, cfg, start=w.train_start, threads=threads).table
        table.insert(0, "window", w.index)
        tables.append(table)
        combo = best_combo(table, metric)
        chosen = best_params(table[table["combo"] == combo], metric, param_names)
        is_score = float(table.loc[table["combo"] == combo, metric].iloc[0])

        history = _with_predictions(bars.iloc[: w.test_end], predictor)
        target = strat.signals(history, **chosen)
        oos_cfg = dataclasses.replace(cfg, initial_cash=cash, close_at_end=True)
        raw = simulate_arrays(as_arrays(history), target, oos_cfg, start=w.test_start)
        m = run_metrics(raw["equity"], raw["stats"], cash, cfg.periods_per_year)
        stats += raw["stats"]
        curves.append(pd.Series(raw["equity"], index=ts[w.test_start : w.test_end]))
        trade_parts.append(_trades_frame(raw["trades"], ts, w.index))
        cash = float(raw["equity"][-1])
        rows.append(
            {
                "window": w.index,
                "train_start": w.train_start,
                "train_end": w.train_end,
                "test_start": w.test_start,
                "test_end": w.test_end,
                "train_start_time": ts[w.train_start],
                "train_last_time": ts[w.train_end - 1],
                "test_start_time": ts[w.test_start],
                "test_last_time": ts[w.test_end - 1],
                "purge": w.purge,
                "embargo": w.embargo,
                **{f"param_{k}": v for k, v in chosen.items()},
                f"is_{metric}": is_score,
                **{f"oos_{k}": v for k, v in m.items()},
            }
        )
    equity = pd.concat(curves).rename("equity")
    return WalkForwardResult(
        windows=pd.DataFrame(rows),
        equity=equity,
        trades=pd.concat(trade_parts, ignore_index=True),
        metrics=run_metrics(equity.to_numpy(), stats, cfg.initial_cash, cfg.periods_per_year),
        in_sample=tables,
    )


def _trades_frame(raw: np.ndarray, ts: pd.DatetimeIndex, window: int) -> pd.DataFrame:
    from deeptrade.backtest.engine import TRADE_COLUMNS

    df = pd.DataFrame(raw, columns=list(TRADE_COLUMNS)).drop(columns=["symbol"])
    df.insert(0, "window", window)
    for col in ("entry_bar", "exit_bar"):
        df[col] = df[col].astype(np.int64)
    df.insert(3, "entry_time", ts[df["entry_bar"].to_numpy()])
    df.insert(5, "exit_time", ts[df["exit_bar"].to_numpy()])
    df["is_open"] = df["is_open"].astype(bool)
    return df
