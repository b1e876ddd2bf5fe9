"""run_partitions: a synthetic universe through a real Dask LocalCluster, one partition per
task, results in order; failures are collected, not fatal to the other partitions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from deeptrade.features import compute_features
from deeptrade.features.scale import (
    PartitionError,
    PartitionFiles,
    compute_partition_file,
    run_partitions,
)
from tests.unit.features.helpers import synthetic_bars


def write_universe(
    root: Path, symbols: int, timeframes: tuple[str, ...], n: int
) -> list[PartitionFiles]:
    tasks = []
    for tf_i, tf in enumerate(timeframes):
        for s in range(symbols):
            bars = synthetic_bars(n, seed=1000 * tf_i + s)
            src = root / "bars" / f"timeframe={tf}" / f"symbol=S{s:02d}" / "part.parquet"
            src.parent.mkdir(parents=True)
            bars.to_parquet(src, index=False)
            out = root / "features" / f"timeframe={tf}" / f"symbol=S{s:02d}" / "part.parquet"
            tasks.append(PartitionFiles(bars=src, out=out))
    return tasks


def test_dask_universe_20_symbols_2_timeframes(tmp_path: Path) -> None:
    tasks = write_universe(tmp_path, 20, ("1m", "5m"), 400)
    rows = run_partitions(
        tasks, compute_partition_file, scheduler="dask", n_workers=2, progress=False
    )
    assert rows == [400] * 40
    for task in (tasks[0], tasks[-1]):
        got = pd.read_parquet(task.out)
        want = compute_features(pd.read_parquet(task.bars))
        pd.testing.assert_frame_equal(got, want)


def _fail_on_odd(x: int) -> int:
    if x % 2:
        raise RuntimeError(f"bad partition {x}")
    return x * 10


def test_failures_are_collected_serial_and_dask() -> None:
    assert run_partitions([0, 2], _fail_on_odd, scheduler="serial", progress=False) == [0, 20]
    for scheduler in ("serial", "dask"):
        with pytest.raises(PartitionError, match="2 of 5 partitions failed") as err:
            run_partitions(range(5), _fail_on_odd, scheduler=scheduler, n_workers=1, progress=False)
        assert sorted(err.value.failures) == [1, 3]
        assert "bad partition 1" in err.value.failures[1][1]
    with pytest.raises(ValueError, match="scheduler"):
        run_partitions([1], _fail_on_odd, scheduler="ray")
