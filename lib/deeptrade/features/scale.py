"""Many partitions, bounded memory: `run_partitions` maps one task per partition over Dask.

Each task reads one input partition, computes, writes its output and returns something small
(row count, path), so a worker holds one partition at a time and memory stays bounded by
`n_workers x threads_per_worker x (one partition)` whatever the universe size. A failed task
does not stop the others: completed partitions are already written, and the error lists
every failed task so a rerun redoes only those.

`compute_partition_file` is a ready-made task for a plain Parquet file layout (used by the
tests and `bench/features.py`); the features job supplies its own over the artifact store.
Dask (and dask-cuda for `gpu=True`) are imported only when a cluster is started.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
SCHEDULERS = ("dask", "serial")
log = logging.getLogger(__name__)


class PartitionError(RuntimeError):
    """Some partitions failed; `failures` maps task index to (task, traceback text)."""

    def __init__(self, failures: dict[int, tuple[Any, str]], total: int) -> None:
        self.failures = failures
        first_idx, (first_task, first_tb) = next(iter(failures.items()))
        super().__init__(
            f"{len(failures)} of {total} partitions failed (completed ones are written; rerun "
            f"to redo only the failed ones). First failure, task {first_idx} = "
            f"{first_task!r}:\n{first_tb}"
        )


def run_partitions(
    tasks: Sequence[T],
    fn: Callable[[T], R],
    *,
    scheduler: str = "dask",
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int = "2GiB",
    progress: bool = True,
    gpu: bool = False,
) -> list[R]:
    """fn(task) for every task, results in task order; PartitionError if any failed.

    scheduler="dask" starts a local cluster of `n_workers` processes (dask_cuda's
    LocalCUDACluster, one worker per visible GPU, when gpu=True) and closes it afterwards;
    "serial" runs in this process (debugging, tiny inputs). `fn` and the tasks must be
    picklable (module-level function, plain data).
    """
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler={scheduler!r}: use one of {SCHEDULERS}")
    if n_workers < 1 or threads_per_worker < 1:
        raise ValueError("n_workers and threads_per_worker must be >= 1")
    tasks = list(tasks)
    if not tasks:
        return []
    if scheduler == "serial":
        return _run_serial(tasks, fn, progress)
    return _run_dask(tasks, fn, n_workers, threads_per_worker, memory_limit, progress, gpu)


def _progress_bar(total: int, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not progress, desc="partitions", unit="part")


def _run_serial(tasks: list[T], fn: Callable[[T], R], progress: bool) -> list[R]:
    results: list[Any] = [None] * len(tasks)
    failures: dict[int, tuple[Any, str]] = {}
    with _progress_bar(len(tasks), progress) as bar:
        for i, task in enumerate(tasks):
            try:
                results[i] = fn(task)
            except Exception:
                failures[i] = (task, traceback.format_exc())
            bar.update(1)
    if failures:
        raise PartitionError(failures, len(tasks))
    return results


def _run_dask(
    tasks: list[T],
    fn: Callable[[T], R],
    n_workers: int,
    threads_per_worker: int,
    memory_limit: str | int,
    progress: bool,
    gpu: bool,
) -> list[R]:
    from distributed import Client, LocalCluster, as_completed

    if gpu:
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(threads_per_worker=threads_per_worker, memory_limit=memory_limit)
    else:
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            processes=True,
            dashboard_address=":0",  # a free port: several clusters may run at once
        )
    results: list[Any] = [None] * len(tasks)
    failures: dict[int, tuple[Any, str]] = {}
    with cluster, Client(cluster) as client:
        futures = client.map(fn, tasks, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        with _progress_bar(len(tasks), progress) as bar:
            for future in as_completed(futures):
                i = index[future.key]
                if future.status == "finished":
                    results[i] = future.result()
                elif future.status == "error":
                    exc, tb = future.exception(), future.traceback()
                    text = "".join(traceback.format_exception(type(exc), exc, tb))
                    failures[i] = (tasks[i], text)
                else:
                    failures[i] = (tasks[i], f"future {future.status}")
                future.release()  # the result is ours now; let the worker drop it
                bar.update(1)
    if failures:
        raise PartitionError(failures, len(tasks))
    return results


@dataclass(frozen=True)
class PartitionFiles:
    """One partition of the plain-file layout: bars Parquet in, features Parquet out."""

    bars: Path
    out: Path
    benchmark: Path | None = None  # the benchmark's bars for the same timeframe
    config: Any = None  # FeatureConfig (None: defaults)
    backend: str = "cpu"


def compute_partition_file(task: PartitionFiles) -> int:
    """Read bars, compute features, write them atomically; returns the row count."""
    import io

    import pandas as pd

    from deeptrade.features.core import compute_features
    from deeptrade.io.atomic import atomic_write_bytes

    bars = pd.read_parquet(task.bars)
    bench = None
    if task.benchmark is not None:
        b = pd.read_parquet(task.benchmark, columns=["timestamp", "close"])
        bench = b.set_index("timestamp")["close"]
    feats = compute_features(bars, benchmark_close=bench, config=task.config, backend=task.backend)
    buf = io.BytesIO()
    feats.to_parquet(buf, index=False)
    atomic_write_bytes(task.out, buf.getvalue())
    return len(feats)
