"""Admin tools on the real dev cluster: queue view, cancel a sweep, retry only failed tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeptrade.config.compose import load
from deeptrade.launch import scheduler
from deeptrade.launch.queue import format_queue, queue_view, retry_failed
from deeptrade.launch.sweeps import submit_sweep, sweep_status, wait
from deeptrade.launch.task import run_job

pytestmark = pytest.mark.slurm
SMOKE = ["experiment=smoke"]


def _points(root: Path, values: list[str], key: str = "features.benchmark") -> list[list[str]]:
    return [
        [*SMOKE, f"{key}={v}", f"features.name=b{i}", f"paths.root={root}"]
        for i, v in enumerate(values)
    ]


def test_queue_shows_sweep_and_cancel_hits_only_that_sweep(
    slurm_cluster: None, store_root: Path
) -> None:
    run_job("ingest", SMOKE)
    cluster = load("features", [*SMOKE, "cluster=devslurm", "cluster.array_parallelism=1"]).cluster
    keep = submit_sweep("features", _points(store_root, ["SPX"]), cluster, store_root)
    victim = submit_sweep("features", _points(store_root, ["SPX"] * 6), cluster, store_root)

    before = scheduler.CALLS["squeue"]
    rows = {r.id: r for r in queue_view(store_root, max_age_s=0)}
    assert scheduler.CALLS["squeue"] == before + 1, "one squeue per refresh for every sweep"
    shown = rows[victim.id]
    assert sum(shown.counts.values()) == 6
    assert shown.counts.get("PENDING", 0) >= 4  # %1 throttle: at most one task runs
    assert "JobArrayTaskLimit" in shown.pending_reasons or shown.counts.get("PENDING") == 6
    assert victim.id in format_queue(list(rows.values()))

    from deeptrade.cli import main

    assert main(["cancel", victim.id, "--root", str(store_root)]) == 0
    states = [s.state for s in wait(victim, timeout_s=120)]
    assert all(s in ("CANCELLED", "LOST") or s == "COMPLETED" for s in states)
    assert sum(s != "COMPLETED" for s in states) >= 4
    assert [s.state for s in wait(keep, timeout_s=120)] == ["COMPLETED"]


def test_retry_failed_reruns_exactly_the_failed_tasks(
    slurm_cluster: None, store_root: Path
) -> None:
    run_job("ingest", SMOKE)
    cluster = load("features", [*SMOKE, "cluster=devslurm"]).cluster
    record = submit_sweep(
        "features", _points(store_root, ["SPX", "NDX", "MSFT", "NDX"]), cluster, store_root
    )
    states = [s.state for s in wait(record, timeout_s=180)]
    assert states == ["COMPLETED", "FAILED", "COMPLETED", "FAILED"]

    # Fix the cause (NDX bars were missing), then retry only what failed.
    run_job("ingest", [*SMOKE, "data.symbols=[AAPL,MSFT,SPX,NDX]"])
    retry = retry_failed(store_root, record.id)
    assert retry is not None
    assert [t.overrides for t in retry.tasks] == [
        record.tasks[1].overrides,
        record.tasks[3].overrides,
    ]
    assert [s.state for s in wait(retry, timeout_s=180)] == ["COMPLETED", "COMPLETED"]
    assert retry_failed(store_root, retry.id) is None
    assert [s.state for s in sweep_status(record, max_age_s=0)].count("FAILED") == 2
