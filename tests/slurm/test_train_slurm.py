"""Training on the dev cluster: ranks from Slurm tasks, and a 100-config sweep as one array."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deeptrade.config.compose import load
from deeptrade.io import ArtifactStore
from deeptrade.launch.sweeps import SweepRecord, results_table, submit_sweep, wait
from deeptrade.launch.task import run_job
from tests.conftest import REPO

pytestmark = pytest.mark.slurm
DATA = ["experiment=smoke", "data.symbols=[AAPL,MSFT,IBM,SPX,NDX]"]


def test_two_task_job_trains_with_ranks_from_slurm(slurm_cluster: None, store_root: Path) -> None:
    run_job("ingest", DATA)
    run_job("features", DATA)
    overrides = [
        *DATA,
        "symbol=MSFT",
        "cluster.tasks_per_node=2",
        "trainer.engine=ddp",
        f"paths.root={store_root}",
    ]
    cluster = load("train", [*overrides, "cluster=devslurm"]).cluster
    record = submit_sweep("train", [overrides], cluster, store_root)
    assert [s.state for s in wait(record, timeout_s=600)] == ["COMPLETED"]
    art = ArtifactStore(store_root).require("models", "sample-default/1d-MSFT-lstm")
    assert art.manifest.meta["world_size"] == 2
    assert art.manifest.slurm_job_id == record.tasks[0].job_id


def test_100_config_sweep_is_one_array_with_a_results_table(
    slurm_cluster: None, store_root: Path
) -> None:
    run_job("ingest", DATA)
    run_job("features", DATA)
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "deeptrade"),
            "submit",
            "train",
            "-m",
            *DATA,
            "cluster=devslurm",
            "cluster.array_parallelism=16",
            "model=xgboost",
            "model.xgboost.n_estimators=5",
            "model.xgboost.n_jobs=1",
            "symbol=AAPL,MSFT,IBM,SPX,NDX",
            "model.xgboost.max_depth=1,2,3,4",
            "run.seed=0,1,2,3,4",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweep_id = (
        next(ln for ln in out.stdout.splitlines() if ln.startswith("sweep ")).split()[1].rstrip(":")
    )
    record = SweepRecord.load(store_root, sweep_id)
    assert len(record.tasks) == 100 and len(record.array_ids) == 1
    status = wait(record, timeout_s=900, poll_s=5)
    table = results_table(record, status)
    assert len(table) == 100 and (table["state"] == "COMPLETED").all(), table[
        table.state != "COMPLETED"
    ]
    assert {"symbol", "model.xgboost.max_depth", "run.seed", "metrics.test.ic"} <= set(
        table.columns
    )
    assert table.groupby("symbol").size().to_dict() == dict.fromkeys(
        ["AAPL", "IBM", "MSFT", "NDX", "SPX"], 20
    )
