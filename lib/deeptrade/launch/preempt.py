"""Preemption and time limits: checkpoint at a clean step, then requeue.

Slurm sends USR2 ``signal_delay_s`` before the time limit or on preemption. submitit's own
handler checkpoints from inside the signal handler and exits at once, which would interrupt an
optimizer step half-way. Long jobs instead take ``PREEMPT`` (set by our handler), finish the
current step, write a complete checkpoint and return ``{"status": "preempted"}``; the task
wrapper then asks Slurm to requeue the same job, which resumes from that checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from typing import Any

log = logging.getLogger(__name__)

PREEMPT = threading.Event()
"""Set when this process was told to stop soon (USR2)."""


def _on_usr2(signum: int, frame: Any) -> None:
    log.warning(
        "received %s: checkpointing at the next step, then requeueing", signal.Signals(signum).name
    )
    PREEMPT.set()


def install_handler() -> None:
    """Route USR2 to ``PREEMPT`` (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR2, _on_usr2)


def restart_count() -> int:
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


def requeue_self(max_requeues: int) -> None:
    """Requeue this Slurm job (rank 0 only) and leave without writing a result.

    ``SystemExit`` is not an ``Exception``: submitit then writes no result file, and the
    requeued job runs the same pickled call again, which resumes from the checkpoint.
    """
    if restart_count() >= max_requeues:
        raise RuntimeError(
            f"preempted again after {restart_count()} requeue(s), the limit "
            f"(cluster.max_requeues={max_requeues}); resubmit to continue from the checkpoint"
        )
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job_id = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ["SLURM_JOB_ID"]
    if os.environ.get("SLURM_PROCID", "0") == "0":
        log.warning("requeueing Slurm job %s (restart %d)", job_id, restart_count() + 1)
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
    raise SystemExit(-1)
