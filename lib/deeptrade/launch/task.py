"""What runs on the node: compose the job's config there and call the job's ``run``.

Only the job name and its overrides travel in the submitit pickle — never a resolved config
(so no secret can end up in it) — and the node composes exactly what the submitter validated.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import submitit

log = logging.getLogger(__name__)

JOBS = ("ingest", "features", "sentiment", "train", "backtest", "publish", "live")


def job_module(job: str) -> Any:
    if job not in JOBS:
        raise ValueError(f"Unknown job '{job}'; valid jobs: {', '.join(JOBS)}")
    return importlib.import_module(f"jobs.{job}")


def run_job(job: str, overrides: Sequence[str] = ()) -> Any:
    """Compose, validate and run one job in this process; returns the job's result."""
    from deeptrade.config.compose import load

    cfg = load(job, overrides)
    return job_module(job).run(cfg)


class JobTask(submitit.helpers.Checkpointable):
    """A submitit callable: ``JobTask("train", dag=...)(overrides)``.

    On Slurm, USR2 (preemption or the time limit) sets ``preempt.PREEMPT``: long jobs
    checkpoint at their next clean step and return ``status == "preempted"``, and we requeue
    the job (``preempt.requeue_self``). Jobs persist progress as they go and resume from their
    latest complete checkpoint, so the requeued job reruns the same call. Before our handler is
    installed, submitit's calls ``checkpoint``, which resubmits the same call too. Requeues are
    bounded by ``max_requeues`` (submitit only bounds the timed-out case, not preemptions).
    """

    def __init__(
        self,
        job: str,
        *,
        max_requeues: int = 3,
        dag_record: str | None = None,
        stage: str | None = None,
    ) -> None:
        self.job = job
        self.max_requeues = max_requeues
        self.requeues = 0
        self.dag_record = dag_record
        self.stage = stage

    def __call__(self, overrides: Sequence[str] = ()) -> Any:
        from deeptrade.launch import preempt

        os.environ.setdefault("DEEPTRADE_JOB", self.job)
        on_slurm = os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
        if on_slurm:
            preempt.install_handler()
        try:
            result = run_job(self.job, overrides)
        except Exception as exc:
            if self.dag_record and self.stage:
                from deeptrade.launch.dag import cancel_dependents

                cancel_dependents(
                    self.dag_record, self.stage, reason=f"{type(exc).__name__}: {exc}"
                )
            raise
        if on_slurm and isinstance(result, dict) and result.get("status") == "preempted":
            preempt.requeue_self(self.max_requeues)
        return result

    def checkpoint(self, overrides: Sequence[str] = ()) -> Any:
        if self.requeues >= self.max_requeues:
            log.warning("not requeuing %s: already requeued %d times", self.job, self.requeues)
            return None
        self.requeues += 1
        log.warning("requeuing %s (requeue %d/%d)", self.job, self.requeues, self.max_requeues)
        return submitit.helpers.DelayedSubmission(self, overrides)
