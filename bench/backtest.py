"""MA-cross grid sweep: deeptrade vs vectorbt on one core, same data, fills and fees.

    NUMBA_NUM_THREADS=1 .venv/bin/python bench/backtest.py [--quick] [--vbt-combos N]

Data: the last 2,000 daily bars of the S&P 500 (``arch.data.sp500``). Grid: fast 5..50 x
slow 20..200 with fast < slow (7,830 combinations). Rules for both: long while SMA(fast) >
SMA(slow), flat otherwise; decided at the close, filled at the next open; all-in sizing with
10 bps commission per fill, fractional shares.

- vectorbt, its idiomatic vectorised path: ``vbt.MA.run`` over the (fast, slow) windows,
  ``ma_above`` entries/exits shifted one bar with ``price=open`` into one
  ``Portfolio.from_signals`` over all columns, then its metric accessors (total and annualised
  return, volatility, Sharpe, Sortino, max drawdown, Calmar, win rate, profit factor,
  expectancy, position coverage).
- deeptrade: ``sweep(..., threads=1)``, which returns the full ``METRICS`` row per combination
  (everything above plus turnover, skew, kurtosis) and the deflated Sharpe ratio.

JIT compilation is excluded for both: each library first runs a small grid to compile, then the
timed run repeats (vectorbt ``--repeats`` times, deeptrade five times as often since its runs are
short) and the best time counts. Rates use process CPU time (the machine may be shared; CPU time
leaves out the time the process waited for a core); wall-clock rates are printed as well. Both
run in this process, one after the other, on one thread (NUMBA_NUM_THREADS=1 and the BLAS thread
counts are forced before numba and numpy load). One JSON line per measurement; the last line is
the ratio. ``--vbt-combos`` times vectorbt on the first N combinations only (rates are compared
per combination) when the full grid is too big.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# One core for both libraries; must precede numba's and numpy's imports.
os.environ.update(
    {
        k: "1"
        for k in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    }
)

import numpy as np
import pandas as pd


def load_bars(n_bars: int) -> pd.DataFrame:
    from arch.data import sp500

    d = sp500.load().iloc[-n_bars:]
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(d.index).as_unit("ns").tz_localize("UTC"),
            "open": d["Open"].to_numpy(np.float64),
            "high": d["High"].to_numpy(np.float64),
            "low": d["Low"].to_numpy(np.float64),
            "close": d["Close"].to_numpy(np.float64),
            "volume": d["Volume"].to_numpy(np.float64),
        }
    )


def run_vectorbt(bars: pd.DataFrame, grid: pd.DataFrame, fees: float) -> pd.DataFrame:
    import vectorbt as vbt

    idx = pd.DatetimeIndex(bars["timestamp"]).tz_localize(None)
    close = pd.Series(bars["close"].to_numpy(), index=idx)
    open_ = pd.Series(bars["open"].to_numpy(), index=idx)
    fast = vbt.MA.run(close, window=grid["fast"].tolist(), short_name="fast")
    slow = vbt.MA.run(close, window=grid["slow"].tolist(), short_name="slow")
    above = fast.ma_above(slow)
    # Decided at the close of t, filled at the open of t+1.
    entries = above.vbt.signals.fshift(1)
    exits = (~above).vbt.signals.fshift(1)
    pf = vbt.Portfolio.from_signals(
        close, entries, exits, price=open_, fees=fees, init_cash=100_000.0, freq="1D"
    )
    trades = pf.trades
    out = {
        "total_return": pf.total_return(),
        "cagr": pf.annualized_return(),
        "ann_vol": pf.annualized_volatility(),
        "sharpe": pf.sharpe_ratio(),
        "sortino": pf.sortino_ratio(),
        "max_drawdown": pf.max_drawdown(),
        "calmar": pf.calmar_ratio(),
        "win_rate": trades.win_rate(),
        "profit_factor": trades.profit_factor(),
        "avg_trade": trades.expectancy(),
        "exposure": pf.position_coverage(),
        "final_equity": pf.final_value(),
    }
    return pd.DataFrame({k: np.asarray(v) for k, v in out.items()})


def run_deeptrade(bars: pd.DataFrame, grid: pd.DataFrame, fees: float) -> pd.DataFrame:
    from deeptrade.backtest.engine import BacktestConfig
    from deeptrade.backtest.sweep import sweep

    cfg = BacktestConfig(direction="long_only", commission_bps=fees * 1e4, fill="next_open")
    return sweep(bars, "ma_cross", grid, cfg, threads=1).table


def timed(fn, repeats: int) -> tuple[float, float, pd.DataFrame]:
    """Best wall and best CPU (process) seconds over ``repeats`` runs, and the last result."""
    wall, cpu, out = np.inf, np.inf, None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny grid and 500 bars")
    ap.add_argument("--bars", type=int, default=2000)
    ap.add_argument("--vbt-combos", type=int, default=0, help="time vectorbt on N combos (0=all)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from deeptrade.backtest.sweep import param_grid

    n_bars = 500 if args.quick else args.bars
    bars = load_bars(n_bars)
    if args.quick:
        grid = param_grid("ma_cross", fast=range(5, 15), slow=range(20, 60))
    else:
        grid = param_grid("ma_cross", fast=range(5, 51), slow=range(20, 201))
    fees = 0.001
    warm = grid.iloc[:8]
    run_vectorbt(bars, warm, fees)  # JIT compile, not timed
    run_deeptrade(bars, warm, fees)

    vgrid = grid.iloc[: args.vbt_combos] if args.vbt_combos else grid
    rows = []
    for name, fn, g, repeats in (
        ("vectorbt", run_vectorbt, vgrid, args.repeats),
        ("deeptrade", run_deeptrade, grid, args.repeats * 5),  # short runs: more samples
    ):
        wall, cpu, table = timed(lambda fn=fn, g=g: fn(bars, g, fees), repeats)
        rec = {
            "bench": "backtest_ma_cross_grid",
            "library": name,
            "combos": len(g),
            "bars": n_bars,
            "threads": 1,
            "repeats": repeats,
            "wall_s": round(wall, 4),
            "cpu_s": round(cpu, 4),
            "combos_per_s": len(g) / cpu,
            "bar_evals_per_s": len(g) * n_bars / cpu,
            "combos_per_s_wall": len(g) / wall,
            "metrics_per_combo": len([c for c in table.columns if c not in grid.columns]),
            "jit_compile_excluded": True,
        }
        rows.append((rec, table))
        print(json.dumps(rec), flush=True)

    (vrec, vtab), (drec, dtab) = rows
    n = len(vtab)
    rel = np.abs(dtab["final_equity"].to_numpy()[:n] / vtab["final_equity"].to_numpy() - 1)
    print(
        json.dumps(
            {
                "bench": "backtest_ma_cross_grid",
                "ratio_deeptrade_over_vectorbt_combos_per_s": drec["combos_per_s"]
                / vrec["combos_per_s"],
                "ratio_wall": drec["combos_per_s_wall"] / vrec["combos_per_s_wall"],
                "final_equity_max_rel_diff": float(rel.max()),
                "target_ratio": 100,
            }
        )
    )


if __name__ == "__main__":
    main()
