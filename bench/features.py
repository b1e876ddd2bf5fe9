"""Feature throughput on ONE core: deeptrade's CPU backend vs TA-Lib (the anchor), same run.

Default: 10M rows = 100 synthetic series x 100k 1-minute bars (generated one series at a
time, so memory stays ~100 MB); `--quick`: 100k rows (10 x 10k). Prints JSON lines:

- impl=talib: the indicator set TA-Lib has (SMA x4, EMA x4, RSI, MACD, BBANDS, ATR, ADX,
  PLUS_DI, MINUS_DI, STOCH, WILLR, CCI, MFI, OBV, ROC, MOM x2), one call per indicator;
- impl=deeptrade, set=talib: the feature families holding those 27 features (close, range,
  volume: also volume z-score and VWAP deviation), including their finishing transforms;
- impl=deeptrade, set=all: `compute_features`, all 45 features plus the DataFrame;
- the ratios deeptrade / TA-Lib in rows per second.

Numba compile time is excluded: every path is warmed up on a small series first (and numba
caches compiled code on disk). Single-threaded: NUMBA_NUM_THREADS=1, BLAS/OpenMP threads 1,
and the process is pinned to one CPU. Each series is timed `--repeat` times per
implementation, interleaved, keeping the fastest (this machine is shared).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import talib  # noqa: E402

from deeptrade.features import FeatureConfig, compute_features  # noqa: E402
from deeptrade.features.core import to_block  # noqa: E402
from deeptrade.features.pipeline import Plan, advance  # noqa: E402

TALIB_FAMILIES = ("close", "range", "volume")


def synthetic(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.0003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.0005, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.0005, n)))
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-02", periods=n, freq="1min", tz="UTC").as_unit(
                "ns"
            ),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.lognormal(8.0, 1.0, n).round(),
        }
    )


def talib_set(bars: pd.DataFrame, cfg: FeatureConfig) -> None:
    h, lo, c, v = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    for w in cfg.ma_windows:
        talib.SMA(c, w)
        talib.EMA(c, w)
    talib.RSI(c, cfg.rsi_period)
    talib.MACD(c, cfg.macd_fast, cfg.macd_slow, cfg.macd_signal)
    talib.BBANDS(c, cfg.bb_period, cfg.bb_nbdev, cfg.bb_nbdev, 0)
    talib.ATR(h, lo, c, cfg.atr_period)
    talib.ADX(h, lo, c, cfg.adx_period)
    talib.PLUS_DI(h, lo, c, cfg.adx_period)
    talib.MINUS_DI(h, lo, c, cfg.adx_period)
    talib.STOCH(h, lo, c, cfg.stoch_fastk, cfg.stoch_slowk, 0, cfg.stoch_slowd, 0)
    talib.WILLR(h, lo, c, cfg.willr_period)
    talib.CCI(h, lo, c, cfg.cci_period)
    talib.MFI(h, lo, c, v, cfg.mfi_period)
    talib.OBV(c, v)
    talib.ROC(c, cfg.roc_period)
    for k in cfg.momentum_periods:
        talib.MOM(c, k)


def deeptrade_talib_set(bars: pd.DataFrame, plan: Plan) -> None:
    block = to_block(bars, None)
    out = plan.alloc(len(bars), TALIB_FAMILIES)
    advance(block, plan.fresh_state(), plan, out, families=TALIB_FAMILIES)


def deeptrade_all(bars: pd.DataFrame, cfg: FeatureConfig) -> None:
    compute_features(bars, config=cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k rows instead of 10M")
    ap.add_argument("--series", type=int, help="number of series (default 100, quick 10)")
    ap.add_argument("--bars", type=int, help="bars per series (default 100k, quick 10k)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per series and impl (min)")
    args = ap.parse_args()
    n_series = args.series or (10 if args.quick else 100)
    n_bars = args.bars or (10_000 if args.quick else 100_000)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    cfg = FeatureConfig()
    plan = Plan.of(cfg)
    impls = {
        "talib": lambda b: talib_set(b, cfg),
        "deeptrade/talib": lambda b: deeptrade_talib_set(b, plan),
        "deeptrade/all": lambda b: deeptrade_all(b, cfg),
    }
    warm = synthetic(2_000, seed=-1 % 2**32)
    for fn in impls.values():  # compile/load numba code; not timed
        fn(warm)

    seconds = dict.fromkeys(impls, 0.0)
    for i in range(n_series):
        bars = synthetic(n_bars, seed=i)
        best = dict.fromkeys(impls, float("inf"))
        for _ in range(args.repeat):
            for name, fn in impls.items():
                t = time.perf_counter()
                fn(bars)
                best[name] = min(best[name], time.perf_counter() - t)
        for name in impls:
            seconds[name] += best[name]

    rows = n_series * n_bars
    common = {"bench": "features", "rows": rows, "series": n_series, "bars_per_series": n_bars,
              "threads": 1, "cpu": platform.processor() or platform.machine()}  # fmt: skip
    rate = {name: rows / s for name, s in seconds.items()}
    sets = {"talib": "talib", "deeptrade/talib": "talib", "deeptrade/all": "all"}
    for name, s in seconds.items():
        print(json.dumps({**common, "impl": name.split("/")[0], "set": sets[name],
                          "seconds": round(s, 4), "rows_per_s": round(rate[name])}))  # fmt: skip
    print(json.dumps({**common, "metric": "ratio_same_set",
                      "value": round(rate["deeptrade/talib"] / rate["talib"], 3),
                      "target": 2.0}))  # fmt: skip
    print(json.dumps({**common, "metric": "ratio_all_features_vs_talib_set",
                      "value": round(rate["deeptrade/all"] / rate["talib"], 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
