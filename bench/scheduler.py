"""Scheduler load of a 1,000-task sweep on the dev cluster: submit time and calls per refresh.

    .venv/bin/python bench/scheduler.py [--tasks 1000]

Prints JSON lines. The anchor is the naive pattern (one ``squeue -j`` per task per refresh),
whose call count is simply the number of tasks; ours is one ``squeue`` for all of them. The
sweep is cancelled as soon as it has been measured (its tasks would only burn the CPU here).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from deeptrade.config.compose import load
from deeptrade.launch import scheduler
from deeptrade.launch.sweeps import submit_sweep, sweep_status


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--refreshes", type=int, default=5)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dt-bench-sched-"))
    cluster = load("features", ["cluster=devslurm", "cluster.array_parallelism=2"]).cluster
    points = [
        ["experiment=smoke", f"features.name=b{i}", f"paths.root={root}"] for i in range(args.tasks)
    ]
    t0 = time.perf_counter()
    record = submit_sweep("features", points, cluster, root)
    submit_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "bench": "scheduler",
                "metric": "submit_seconds",
                "tasks": args.tasks,
                "value": round(submit_s, 3),
                "sbatch_calls": len(record.array_ids),
            }
        )
    )
    timings = []
    for _ in range(args.refreshes):
        before = dict(scheduler.CALLS)
        t0 = time.perf_counter()
        status = sweep_status(record, max_age_s=0)
        timings.append(time.perf_counter() - t0)
        calls = {k: scheduler.CALLS[k] - before.get(k, 0) for k in scheduler.CALLS}
        time.sleep(0.5)
    print(
        json.dumps(
            {
                "bench": "scheduler",
                "metric": "calls_per_refresh",
                "tasks": len(status),
                "ours": calls.get("squeue", 0) + calls.get("sacct", 0),
                "naive_per_task": args.tasks,
                "ratio": args.tasks / max(1, calls.get("squeue", 0) + calls.get("sacct", 0)),
                "refresh_seconds_median": round(sorted(timings)[len(timings) // 2], 4),
            }
        )
    )
    scheduler.scancel(record.array_ids)


if __name__ == "__main__":
    main()
