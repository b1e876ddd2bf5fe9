"""Cluster profile -> submitit executor. The only place Slurm parameters are built."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from deeptrade.config.schema import ClusterConfig
from deeptrade.launch.apptainer import python_command


def slurm_parameters(cluster: ClusterConfig, *, job_name: str) -> dict[str, Any]:
    """Parameters for ``submitit.SlurmExecutor.update_parameters`` (and the sbatch snapshot)."""
    params: dict[str, Any] = {
        "job_name": job_name,
        "partition": cluster.partition,
        "qos": cluster.qos,
        "account": cluster.account,
        "gres": cluster.gres,
        "constraint": cluster.constraint,
        "nodes": cluster.nodes,
        "ntasks_per_node": cluster.tasks_per_node,
        "cpus_per_task": cluster.cpus_per_task,
        "mem": f"{max(1, math.ceil(cluster.mem_gb * 1024))}M",
        "time": cluster.time_min,
        "signal_delay_s": cluster.signal_delay_s,
        "array_parallelism": cluster.array_parallelism,
        "setup": list(cluster.setup),
        "exclusive": True if cluster.exclusive else None,
        "additional_parameters": {"requeue": True} if cluster.requeue else {"no-requeue": True},
    }
    return {k: v for k, v in params.items() if v is not None}


def make_executor(cluster: ClusterConfig, folder: Path, *, job_name: str) -> Any:
    """A submitit executor for the profile; ``local`` runs jobs as local subprocesses."""
    import submitit

    if cluster.executor == "slurm":
        slurm = submitit.SlurmExecutor(
            folder=folder, max_num_timeout=cluster.max_requeues, python=python_command(cluster)
        )
        slurm.update_parameters(**slurm_parameters(cluster, job_name=job_name))
        return slurm
    if cluster.executor == "local":
        local = submitit.LocalExecutor(folder=folder, max_num_timeout=cluster.max_requeues)
        local.update_parameters(timeout_min=cluster.time_min)
        return local
    raise ValueError(f"cluster.executor={cluster.executor!r} is not known; use 'local' or 'slurm'")


def sbatch_script(
    cluster: ClusterConfig, *, job_name: str, folder: Path, array: int | None = None
) -> str:
    """The exact sbatch script submitit would submit for this profile (snapshot-tested)."""
    from submitit.slurm import slurm

    params = slurm_parameters(cluster, job_name=job_name)
    python = python_command(cluster) or "python3"
    command = f"{python} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    if array is not None:
        params["map_count"] = array
    return slurm._make_sbatch_string(command=command, folder=folder, **params)
