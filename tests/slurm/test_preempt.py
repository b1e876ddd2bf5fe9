"""Preemption on the real dev cluster: USR2 mid-run -> checkpoint -> requeue -> same weights."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

import pytest
import torch

from deeptrade.config.compose import load
from deeptrade.io import ArtifactStore
from deeptrade.launch.sweeps import submit_sweep, wait
from deeptrade.launch.task import run_job

pytestmark = pytest.mark.slurm
SMOKE = ["experiment=smoke", "symbol=AAPL", "trainer.epochs=12"]


def _weights(store: ArtifactStore, name: str) -> dict[str, torch.Tensor]:
    art = store.require("models", name)
    return torch.load(art.path / "bundle" / "weights.pt", map_location="cpu", weights_only=True)


def test_usr2_mid_run_requeues_and_resumes_to_identical_weights(
    slurm_cluster: None, store_root: Path
) -> None:
    run_job("ingest", ["experiment=smoke"])
    run_job("features", ["experiment=smoke"])
    store = ArtifactStore(store_root)

    cluster = load("train", [*SMOKE, "cluster=devslurm"]).cluster
    record = submit_sweep(
        "train", [[*SMOKE, "train.tag=preempted", f"paths.root={store_root}"]], cluster, store_root
    )
    job_id = record.tasks[0].job_id
    assert job_id is not None
    # Wait until a random number of epochs is done, then signal like Slurm does on preemption.
    target = random.Random().randint(1, 4)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = list(store_root.glob("_checkpoints/*preempted*/out/metrics.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= target:
            break
        time.sleep(0.2)
    else:
        pytest.fail("training never reached the epoch to preempt at")
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)

    status = wait(record, timeout_s=600)
    assert status[0].state == "COMPLETED", status
    art = store.require("models", "sample-default/1d-AAPL-lstm-preempted")
    assert art.manifest.meta["resumed_from"] is not None, "the job did not resume from a checkpoint"
    show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
    if show.returncode == 0:  # still known to the controller: it was requeued once
        assert "Restarts=1" in show.stdout

    # The same training, uninterrupted, in this process.
    run_job("train", [*SMOKE, "train.tag=straight"])
    a = _weights(store, "sample-default/1d-AAPL-lstm-preempted")
    b = _weights(store, "sample-default/1d-AAPL-lstm-straight")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), (
        "resumed weights differ from an uninterrupted run"
    )
    history = [json.loads(x) for x in (art.path / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == sorted({h["epoch"] for h in history})
