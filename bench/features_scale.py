"""Features over a synthetic universe through Dask: wall time and peak memory (RSS).

Default: 1000 symbols x 10 timeframes = 10,000 partitions of 2,000 bars each (20M bars),
2 worker processes x 1 thread, 2 GiB memory limit each. Each partition is one task: read
its bars Parquet, compute the features, write the features Parquet (atomically). Peak RSS
is the largest sum over this process and all its children (Dask nannies and workers),
sampled every 0.1 s. Target: < 4 GiB. The universe is written to (and removed from) a
temporary directory: ~1 GB of bars, ~7.5 GB of features.

There is no anchor library for this measurement: it checks a bound, not a speed ratio.
`--quick`: 50 symbols x 2 timeframes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

from deeptrade.features.scale import PartitionFiles, compute_partition_file, run_partitions

TIMEFRAMES = ("1m", "2m", "3m", "5m", "10m", "15m", "30m", "1h", "2h", "1d")


def write_bars(task: tuple[Path, int, int]) -> int:
    """Generate one synthetic partition (seeded) and write it as Parquet."""
    import numpy as np
    import pandas as pd

    path, n, seed = task
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.0005, n))
    bars = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-02", periods=n, freq="1min", tz="UTC").as_unit(
                "ns"
            ),
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 8e-4, n))),
            "low": np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 8e-4, n))),
            "close": close,
            "volume": rng.lognormal(8.0, 1.0, n).round(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    bars.to_parquet(path, index=False)
    return n


class PeakRSS:
    """Samples the RSS of this process plus all its descendants in a background thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a process that just exited
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 symbols x 2 timeframes")
    ap.add_argument("--symbols", type=int, help="default 1000 (quick: 50)")
    ap.add_argument("--timeframes", type=int, help="default 10 (quick: 2)")
    ap.add_argument("--bars", type=int, default=2_000, help="bars per partition")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GiB", help="per Dask worker")
    args = ap.parse_args()
    n_sym = args.symbols or (50 if args.quick else 1000)
    n_tf = args.timeframes or (2 if args.quick else 10)

    root = Path(tempfile.mkdtemp(prefix="deeptrade-features-scale-"))
    try:
        inputs, tasks = [], []
        for tf in TIMEFRAMES[:n_tf]:
            for s in range(n_sym):
                part = Path(f"timeframe={tf}") / f"symbol=S{s:04d}" / "part.parquet"
                inputs.append((root / "bars" / part, args.bars, len(inputs)))
                tasks.append(
                    PartitionFiles(bars=root / "bars" / part, out=root / "features" / part)
                )
        kw = {"n_workers": args.workers, "memory_limit": args.memory_limit, "progress": False}
        t0 = time.perf_counter()
        run_partitions(inputs, write_bars, **kw)
        t_gen = time.perf_counter() - t0
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            rows = run_partitions(tasks, compute_partition_file, **kw)
            seconds = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "bench": "features_scale",
                    "partitions": len(tasks),
                    "symbols": n_sym,
                    "timeframes": n_tf,
                    "bars_per_partition": args.bars,
                    "rows": sum(rows),
                    "workers": args.workers,
                    "threads_per_worker": 1,
                    "memory_limit": args.memory_limit,
                    "seconds": round(seconds, 2),
                    "rows_per_s": round(sum(rows) / seconds),
                    "peak_rss_gib": round(rss.peak / 2**30, 3),
                    "target_peak_rss_gib": 4.0,
                    "ok": rss.peak < 4 * 2**30,
                    "input_generation_seconds": round(t_gen, 2),
                }
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
