"""Helpers over the real Slurm CLI for tests in tests/slurm (imported as `devslurm`: this
directory is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Job states after which a job never runs again (scontrol spelling).
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
USABLE_NODE_STATES = ("idle", "mixed", "allocated", "completing")


def _run(args: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def cluster_problem() -> str | None:
    """Why the dev cluster is unusable, or None when sbatch/squeue/scontrol will work."""
    for tool in ("sbatch", "squeue", "scontrol", "sinfo"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (Slurm client tools are not installed)"
    try:
        ping = _run(["scontrol", "ping"])
    except subprocess.TimeoutExpired:
        return "`scontrol ping` timed out"
    if "is UP" not in ping.stdout:
        return f"controller not reachable: {(ping.stdout + ping.stderr).strip()}"
    states = _run(["sinfo", "-h", "-N", "-o", "%T"]).stdout.split()
    if not any(s.rstrip("*~#").startswith(USABLE_NODE_STATES) for s in states):
        return f"no usable node (sinfo node states: {states or 'none'})"
    return None


@dataclass(kw_only=True)
class SlurmCluster:
    """Thin helpers over the real Slurm CLI for tests; no state of its own."""

    poll_s: float = 0.5
    """Seconds between scheduler polls while waiting for jobs."""

    def sbatch(self, *args: str, cwd: Path | None = None) -> str:
        """Submit with `sbatch --parsable ARGS...` and return the job id."""
        out = subprocess.run(
            ["sbatch", "--parsable", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=cwd,
        )
        assert out.returncode == 0, f"sbatch {' '.join(args)} failed: {out.stderr.strip()}"
        return out.stdout.strip().split(";")[0]

    def job_states(self, job_id: str) -> dict[str, str]:
        """{job id (array tasks as `A_i`): state} for a job or a whole array, from scontrol."""
        out = _run(["scontrol", "show", "job", "-o", job_id])
        states: dict[str, str] = {}
        for line in out.stdout.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" not in fields:
                continue
            task = fields.get("ArrayTaskId")
            key = f"{fields['ArrayJobId']}_{task}" if task else fields["JobId"]
            states[key] = fields.get("JobState", "UNKNOWN")
        return states

    def wait(self, job_id: str, timeout: float = 60) -> dict[str, str]:
        """Wait until the job (every task of an array) is in a terminal state; return the states.

        MinJobAge keeps finished jobs in `scontrol show job` for two minutes, long enough here.
        """
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.job_states(job_id)
            # A not-yet-split array range ("A_5-9") is PENDING, so this also waits for it.
            if states and all(s in TERMINAL_STATES for s in states.values()):
                return states
            time.sleep(self.poll_s)
        pending = {k: v for k, v in states.items() if v not in TERMINAL_STATES}
        _run(["scancel", job_id])
        raise AssertionError(f"job {job_id} not finished after {timeout:.0f}s: {pending}")

    def config(self) -> dict[str, str]:
        """`scontrol show config` as {key: value}."""
        out = _run(["scontrol", "show", "config"]).stdout
        cfg: dict[str, str] = {}
        for line in out.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                cfg[key.strip()] = value.strip()
        return cfg
