"""Parameter-grid sweeps: every (symbol, combination) simulated with full metrics.

The work is one numba ``prange`` over runs (a plain loop with ``threads=1``, the single-core
mode benchmarks use); each run fills its targets from shared feature rows (``Strategy.features``),
runs the kernel ``run_backtest`` uses (``engine.simulate_single``, recording nothing) and writes
one metrics row.

For Slurm arrays: ``grid_chunks(grid, n)`` gives n slices of the grid (row labels are the combo
ids), each task runs ``sweep`` on its slice, and ``merge_results(parts)`` concatenates the tables
and recomputes the deflated Sharpe ratio over all trials.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd
from numba import njit, prange

from deeptrade.backtest.engine import (
    C_CASH,
    FILL_COLUMNS,
    OHLC,
    S_LEN,
    TRADE_COLUMNS,
    BacktestConfig,
    aux_arrays,
    config_vector,
    simulate_single,
    validate_bars,
)
from deeptrade.backtest.metrics import (
    LOWER_IS_BETTER,
    METRICS,
    expected_max_sharpe,
    probabilistic_sharpe_ratio_array,
)
from deeptrade.backtest.strategies import Strategy, as_arrays, fill_targets, get_strategy

# numba's thread pool size (set by NUMBA_NUM_THREADS before numba starts)
_MAX_THREADS: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]


def param_grid(
    strategy: str | type[Strategy] | None = None,
    where: Callable[[pd.DataFrame], np.ndarray] | None = None,
    **axes: Sequence[Any],
) -> pd.DataFrame:
    """Cartesian product of ``axes`` as a DataFrame, one row per combination.

    Rows the strategy rejects (e.g. ``ma_cross`` with fast >= slow) and rows where ``where``
    is False are dropped; the index is then renumbered 0..N-1 (the combo ids).
    """
    if not axes:
        raise ValueError("param_grid: give at least one axis, e.g. fast=range(5, 51)")
    names = list(axes)
    grid = pd.DataFrame(list(itertools.product(*(list(v) for v in axes.values()))), columns=names)
    if strategy is not None:
        strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
        strat.resolve(dict.fromkeys(names))  # unknown axis names fail here
        grid = grid[strat.valid(grid)]
    if where is not None:
        grid = grid[np.asarray(where(grid), dtype=bool)]
    return grid.reset_index(drop=True)


def grid_chunks(grid: pd.DataFrame, n_chunks: int) -> list[pd.DataFrame]:
    """Split a grid into ``n_chunks`` contiguous, near-equal slices; labels (combo ids) kept."""
    if n_chunks < 1:
        raise ValueError(f"grid_chunks: n_chunks must be >= 1, got {n_chunks}")
    bounds = np.linspace(0, len(grid), n_chunks + 1).round().astype(int)
    return [grid.iloc[a:b] for a, b in itertools.pairwise(bounds)]


@njit(error_model="numpy", cache=True)
def _sweep_run(r, kind, feats, pm, bars, offsets, starts, ends, cfg, out, keep, ret, ret_off, tgt):
    """Run ``r`` = (symbol r // n_combos, combo r % n_combos): targets, engine, metrics row.

    ``bars`` stacks open, high, low, close, vol, atr of all symbols (6, total bars); ``tgt``
    is scratch space for the targets.
    """
    s = r // pm.shape[0]
    k = r % pm.shape[0]
    a = offsets[s]
    b = offsets[s + 1]
    tgt = tgt[: b - a]
    fill_targets(kind, feats[:, a:b], pm[k], tgt)
    eq = np.empty(ends[s] - starts[s] if keep else 0)  # the curve only when returns are kept
    simulate_single(
        bars[0, a:b], bars[1, a:b], bars[2, a:b], bars[3, a:b], bars[4, a:b], bars[5, a:b], tgt,
        starts[s], ends[s], cfg, False, eq, np.zeros(1), np.zeros((0, len(FILL_COLUMNS))),
        np.zeros((0, len(TRADE_COLUMNS))), np.zeros(S_LEN), out[r],
    )  # fmt: skip
    if keep:
        prev = cfg[C_CASH]
        for t in range(eq.shape[0]):
            ret[ret_off[s] + t, k] = eq[t] / prev - 1.0
            prev = eq[t]


@njit(parallel=True, error_model="numpy", cache=True)
def _sweep_parallel(kind, feats, pm, bars, offsets, starts, ends, cfg, out, keep, ret, ret_off):
    longest = np.max(offsets[1:] - offsets[:-1])
    for r in prange(out.shape[0]):
        tgt = np.empty(longest)
        _sweep_run(r, kind, feats, pm, bars, offsets, starts, ends, cfg, out, keep, ret, ret_off,
                   tgt)  # fmt: skip


@njit(error_model="numpy", cache=True)
def _sweep_serial(kind, feats, pm, bars, offsets, starts, ends, cfg, out, keep, ret, ret_off):
    # The single-core mode: a plain loop (the parallel runtime costs ~10 % per run) and one
    # scratch buffer for all runs.
    tgt = np.empty(np.max(offsets[1:] - offsets[:-1]))
    for r in range(out.shape[0]):
        _sweep_run(r, kind, feats, pm, bars, offsets, starts, ends, cfg, out, keep, ret, ret_off,
                   tgt)  # fmt: skip


@dataclass
class SweepResult:
    table: pd.DataFrame
    """One row per (symbol, combo): symbol, combo, the parameters, ``METRICS``, ``dsr``."""
    returns: dict[str, np.ndarray] | None
    """With ``keep_returns``: per symbol the (bars, combos) per-bar returns (for ``pbo_cscv``)."""


def _as_series_map(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
) -> dict[str, pd.DataFrame]:
    if isinstance(bars, pd.DataFrame):
        return {"asset": bars}
    if not bars:
        raise ValueError("sweep: no symbols given")
    return dict(bars)


def sweep(
    bars: pd.DataFrame | Mapping[str, pd.DataFrame],
    strategy: str | type[Strategy],
    grid: pd.DataFrame,
    cfg: BacktestConfig | None = None,
    *,
    start: int = 0,
    end: int | None = None,
    threads: int | None = None,
    keep_returns: bool = False,
) -> SweepResult:
    """Backtest every grid row on every symbol (each symbol on its own; bars may differ).

    ``bars``: one bar DataFrame or ``{symbol: DataFrame}``; extra columns (e.g. ``pred``) reach
    the strategy. ``[start, end)`` is the simulated span in every series (bars before ``start``
    warm the indicators up); ``end=None`` means each series' end. ``threads`` caps numba's
    threads for this call (1 = single core).
    """
    cfg = cfg or BacktestConfig()
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    series = _as_series_map(bars)
    feats_list, arrays_list = [], []
    pm = None
    for sym, df in series.items():
        validate_bars(df, f"bars[{sym!r}]")
        arrays = as_arrays(df)
        feats, pm = strat.features(arrays, grid)
        feats_list.append(feats)
        arrays_list.append(arrays)
    assert pm is not None
    lengths = np.array([len(a["close"]) for a in arrays_list])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ends = np.array([n if end is None else min(end, n) for n in lengths], dtype=np.int64)
    starts = np.full(len(lengths), start, dtype=np.int64)
    if start < 0 or np.any(starts >= ends):
        raise ValueError(
            f"sweep: start={start} leaves no bars to simulate (series lengths {lengths})"
        )
    vol, atr = _aux(arrays_list, cfg)
    ohlc = [np.concatenate([a[k] for a in arrays_list]) for k in OHLC]
    bars6 = np.ascontiguousarray(np.vstack([*ohlc, vol, atr]))
    feats = np.ascontiguousarray(np.hstack(feats_list))
    n_runs = len(lengths) * len(pm)
    out = np.empty((n_runs, len(METRICS)))
    spans = ends - starts
    ret_off = np.concatenate([[0], np.cumsum(spans)]).astype(np.int64)
    ret = np.empty((ret_off[-1], len(pm)) if keep_returns else (0, 0))
    args = (strat.kind, feats, pm, bars6, offsets, starts, ends, config_vector(cfg), out,
            keep_returns, ret, ret_off)  # fmt: skip
    if threads == 1 or _MAX_THREADS == 1:
        _sweep_serial(*args)
    else:
        previous = numba.get_num_threads()
        if threads is not None:
            numba.set_num_threads(max(1, min(threads, _MAX_THREADS)))
        try:
            _sweep_parallel(*args)
        finally:
            numba.set_num_threads(previous)
    symbols = list(series)
    columns: dict[str, Any] = {
        # numpy unicode arrays become pandas strings far faster than object arrays
        "symbol": np.repeat(np.asarray(symbols, dtype=str), len(pm)),
        "combo": np.tile(grid.index.to_numpy(), len(symbols)),
    }
    for name in grid.columns:
        values = grid[name].to_numpy()
        if pd.api.types.is_string_dtype(grid[name]):
            values = values.astype(str)
        columns[name] = np.tile(values, len(symbols))
    for i, name in enumerate(METRICS):
        columns[name] = out[:, i]
    columns["dsr"] = _dsr_column(columns)
    table = pd.DataFrame(columns)
    returns = None
    if keep_returns:
        returns = {sym: ret[ret_off[i] : ret_off[i + 1]] for i, sym in enumerate(symbols)}
    return SweepResult(table, returns)


def _aux(arrays_list: list[dict[str, np.ndarray]], cfg: BacktestConfig):
    """vol/atr per symbol (indicators must not run across the seam between two series)."""
    vols, atrs = [], []
    for a in arrays_list:
        v, t = aux_arrays(a["high"][:, None], a["low"][:, None], a["close"][:, None], cfg)
        vols.append(v)
        atrs.append(t)
    return np.concatenate(vols)[:, 0].copy(), np.concatenate(atrs)[:, 0].copy()


def add_deflated_sharpe(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``dsr``: each row's PSR against the expected max Sharpe of its symbol's trials.

    The trials are the rows of the same symbol with a finite ``sr_period``; with fewer than two
    the column is NaN. (Grid neighbours are correlated, so N overstates the independent trials
    and the DSR is conservative.)
    """
    cols = {k: table[k].to_numpy() for k in ("symbol", "sr_period", "n_obs", "skew", "kurtosis")}
    return table.assign(dsr=_dsr_column(cols))


def _dsr_column(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    sr = np.asarray(cols["sr_period"], dtype=np.float64)
    symbols = cols["symbol"]
    dsr = np.full(len(sr), np.nan)
    for sym in pd.unique(symbols):
        rows = np.flatnonzero(symbols == sym)
        ok = np.isfinite(sr[rows])
        if ok.sum() < 2:
            continue
        sr0 = expected_max_sharpe(int(ok.sum()), float(np.var(sr[rows][ok], ddof=1)))
        dsr[rows] = probabilistic_sharpe_ratio_array(
            sr[rows], sr0, cols["n_obs"][rows], cols["skew"][rows], cols["kurtosis"][rows]
        )
    return dsr


def merge_results(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate the tables of grid chunks and recompute ``dsr`` over all trials."""
    if not parts:
        raise ValueError("merge_results: no parts given")
    table = pd.concat(list(parts), ignore_index=True)
    dupes = table.duplicated(["symbol", "combo"])
    if dupes.any():
        raise ValueError(
            f"merge_results: {int(dupes.sum())} (symbol, combo) rows appear twice; "
            "were the same chunks passed twice?"
        )
    table = table.sort_values(["symbol", "combo"], kind="stable").reset_index(drop=True)
    return add_deflated_sharpe(table.drop(columns=["dsr"], errors="ignore"))


def best_combo(table: pd.DataFrame, metric: str = "sharpe") -> int:
    """Combo id of the best grid row by ``metric``; with several symbols, by the mean over them.

    NaN ranks last; metrics in ``LOWER_IS_BETTER`` (e.g. ``max_drawdown``) are minimised; ties
    go to the lowest combo id.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {list(METRICS)}")
    score = table.groupby("combo", sort=True)[metric].mean()
    values = score.to_numpy(np.float64)
    if metric in LOWER_IS_BETTER:
        values = -values
    values = np.where(np.isnan(values), -np.inf, values)
    return int(score.index[int(np.argmax(values))])


def best_params(
    table: pd.DataFrame, metric: str = "sharpe", param_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Parameters of ``best_combo(table, metric)`` as plain Python values."""
    names = list(param_names) if param_names is not None else _param_columns(table)
    row = table[table["combo"] == best_combo(table, metric)].iloc[0]
    return {k: _py(row[k]) for k in names}


def _param_columns(table: pd.DataFrame) -> list[str]:
    skip = {"symbol", "combo", "dsr", "window", *METRICS}
    return [c for c in table.columns if c not in skip]


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x
