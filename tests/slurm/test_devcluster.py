"""The dev Slurm cluster does what the launch layer relies on: batch jobs, arrays, partitions,
and cancelling the dependents of a failed stage."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from devslurm import SlurmCluster  # tests/slurm/devslurm.py

pytestmark = pytest.mark.slurm


def test_batch_job_runs_and_writes_output(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "job-%j.out"
    job = slurm_cluster.sbatch(
        "--job-name=dt-wrap", f"--output={out}", "--wrap", "echo hello-$SLURM_JOB_ID"
    )
    assert slurm_cluster.wait(job) == {job: "COMPLETED"}
    assert (tmp_path / f"job-{job}.out").read_text().strip() == f"hello-{job}"


def test_array_job_runs_every_task(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    n = 20
    job = slurm_cluster.sbatch(
        "--job-name=dt-array",
        f"--array=0-{n - 1}%8",
        f"--output={tmp_path}/task-%A_%a.out",
        "--wrap",
        "echo $SLURM_ARRAY_TASK_ID",
    )
    states = slurm_cluster.wait(job, timeout=90)
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(n)}
    for i in range(n):
        assert (tmp_path / f"task-{job}_{i}.out").read_text().strip() == str(i)


@pytest.mark.parametrize("partition", ["dev", "v100", "gh200", "live"])
def test_profile_partitions_accept_jobs(
    slurm_cluster: SlurmCluster, tmp_path: Path, partition: str
) -> None:
    job = slurm_cluster.sbatch(
        f"--partition={partition}",
        f"--output={tmp_path}/p.out",
        "--wrap",
        "echo $SLURM_JOB_PARTITION",
    )
    assert slurm_cluster.wait(job) == {job: "COMPLETED"}
    assert (tmp_path / "p.out").read_text().strip() == partition


def test_config_has_settings_the_launch_layer_relies_on(slurm_cluster: SlurmCluster) -> None:
    cfg = slurm_cluster.config()
    assert "kill_invalid_depend" in cfg["DependencyParameters"]
    assert int(cfg["MaxArraySize"]) > 1001
    assert cfg["JobRequeue"] == "1"


def test_failed_afterok_dependency_cancels_dependent(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "dependent-ran"
    failing = slurm_cluster.sbatch(f"--output={tmp_path}/fail.out", "--wrap", "exit 3")
    dependent = slurm_cluster.sbatch(
        f"--dependency=afterok:{failing}",
        f"--output={tmp_path}/dep.out",
        "--wrap",
        f"touch {marker}",
    )
    assert slurm_cluster.wait(failing) == {failing: "FAILED"}
    assert slurm_cluster.wait(dependent, timeout=30) == {dependent: "CANCELLED"}
    assert not marker.exists()


def test_afterok_dependent_runs_after_success(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    first = slurm_cluster.sbatch(f"--output={tmp_path}/a.out", "--wrap", "echo a")
    second = slurm_cluster.sbatch(
        f"--dependency=afterok:{first}", f"--output={tmp_path}/b.out", "--wrap", "echo b"
    )
    assert slurm_cluster.wait(second) == {second: "COMPLETED"}
    assert (tmp_path / "b.out").read_text().strip() == "b"


def test_sacct_matches_accounting_mode(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """With `up --accounting`, sacct records jobs (submitit's watcher reads it); without, sacct
    says accounting is disabled, and squeue/scontrol are the only source of job states."""
    job = slurm_cluster.sbatch(f"--output={tmp_path}/s.out", "--wrap", "true")
    assert slurm_cluster.wait(job) == {job: "COMPLETED"}
    enabled = slurm_cluster.config()["AccountingStorageType"] != "accounting_storage/none"
    deadline = time.monotonic() + 20
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if not enabled or f"{job}|COMPLETED" in out.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if enabled:
        assert f"{job}|COMPLETED" in out.stdout, out.stdout + out.stderr
    else:
        assert out.returncode != 0
        assert "accounting storage is disabled" in out.stderr.lower()
