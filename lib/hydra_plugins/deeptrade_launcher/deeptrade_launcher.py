"""Hydra launcher: a ``-m`` sweep becomes one Slurm job array (one ``sbatch``).

Unlike hydra-submitit-launcher it returns at once by default (fire-and-forget) with a sweep
id; ``deeptrade status <id>`` collects states and results later, and
``hydra.launcher.wait=true`` blocks. The cluster profile comes from the job's own
``cluster`` config group, so ``-m ... cluster=devslurm`` is all a researcher types.
submitit and the launch layer are imported lazily to keep Hydra's plugin discovery fast.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class DeeptradeLauncherConf:
    _target_: str = "hydra_plugins.deeptrade_launcher.deeptrade_launcher.DeeptradeLauncher"
    wait: bool = False
    """Block until every task of the sweep has finished."""


ConfigStore.instance().store(
    group="hydra/launcher", name="deeptrade", node=DeeptradeLauncherConf, provider="deeptrade"
)


class DeeptradeLauncher(Launcher):
    def __init__(self, wait: bool = False) -> None:
        self.wait = wait
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config = config

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from deeptrade.launch.sweeps import format_status, submit_sweep, wait

        assert self.config is not None, "setup() was not called"
        job = str(self.config.hydra.job.name)
        profiles = {o for point in job_overrides for o in point if o.split("=", 1)[0] == "cluster"}
        if len(profiles) > 1:
            raise ValueError(
                "Sweeping over 'cluster' is not supported: submit one sweep per profile"
            )
        cluster = OmegaConf.to_object(self.config.cluster)
        root = Path(str(self.config.paths.root)).expanduser().resolve()
        # The node must write where the submitter looks, whatever its working directory.
        points = [[*p, f"paths.root={root}"] for p in job_overrides]
        record = submit_sweep(job, points, cluster, root)  # type: ignore[arg-type]
        print(
            f"sweep {record.id}: {len(points)} task(s) of '{job}' on {record.cluster}"
            + (f" (array {', '.join(record.array_ids)})" if record.array_ids else "")
        )
        print(f"  follow it with: deeptrade status {record.id}")
        status = None
        if self.wait and record.array_ids:
            status = wait(record)
            print(format_status(record, status))
        returns = []
        for i, point in enumerate(job_overrides):
            ret = JobReturn(overrides=list(point), task_name=job, status=JobStatus.COMPLETED)
            ret.return_value = {
                "sweep_id": record.id,
                "job_id": record.tasks[i].job_id,
                "state": status[i].state if status else record.tasks[i].state,
            }
            returns.append(ret)
        return returns
