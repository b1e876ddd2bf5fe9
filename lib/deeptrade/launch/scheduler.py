"""Talking to the scheduler sparingly: one ``squeue`` per refresh for every job we track.

Per-job polling (what naive launchers do) costs one scheduler RPC per job per interval; with a
1,000-task sweep that hurts the controller. Here a refresh is one ``squeue`` for all of the
user's jobs, cached for ``max_age_s``; tasks that have left the queue are resolved from the
result files submitit writes, so accounting (``sacct``) is not required.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CALLS = {"squeue": 0, "scancel": 0, "sbatch": 0}
"""How many scheduler commands this process ran (benchmarks and tests read it)."""

_cache: tuple[float, dict[str, QueueEntry]] | None = None


@dataclass(kw_only=True)
class QueueEntry:
    job_id: str
    """``123`` or ``123_4`` for array tasks."""
    state: str
    reason: str
    elapsed: str
    name: str = ""
    gres: str = ""


def have_slurm() -> bool:
    return shutil.which("squeue") is not None and shutil.which("sbatch") is not None


def queue_snapshot(*, max_age_s: float = 5.0) -> dict[str, QueueEntry]:
    """All of this user's jobs in the queue, array tasks expanded: ``{job_id: entry}``."""
    global _cache
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < max_age_s:
        return _cache[1]
    CALLS["squeue"] += 1
    out = subprocess.run(
        ["squeue", "--me", "-h", "-r", "-o", "%i|%T|%r|%M|%j|%b"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"squeue failed: {out.stderr.strip()}")
    entries = {}
    for line in out.stdout.splitlines():
        job_id, state, reason, elapsed, name, gres = line.strip().split("|", 5)
        entries[job_id] = QueueEntry(
            job_id=job_id, state=state, reason=reason, elapsed=elapsed, name=name, gres=gres
        )
    _cache = (now, entries)
    return entries


def elapsed_seconds(elapsed: str) -> int:
    """squeue's ``[days-]hours:minutes:seconds`` (or ``minutes:seconds``) as seconds."""
    days, _, rest = elapsed.rpartition("-")
    parts = [int(p) for p in rest.split(":") if p.isdigit()]
    secs = 0
    for p in parts:
        secs = secs * 60 + p
    return secs + int(days or 0) * 86400


def gpus_of(gres: str) -> int:
    """GPUs in a gres/tres string like ``gpu:4``, ``gres/gpu:v100:2`` or ``N/A``."""
    total = 0
    for item in gres.split(","):
        if "gpu" in item:
            last = item.rsplit(":", 1)[-1]
            total += int(last) if last.isdigit() else 1
    return total


def sacct_gpu_seconds(job_ids: list[str]) -> dict[str, float] | None:
    """GPU-seconds per job from accounting (one ``sacct`` call); None without accounting."""
    if not job_ids or shutil.which("sacct") is None:
        return None
    CALLS["sacct"] = CALLS.get("sacct", 0) + 1
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobID,ElapsedRaw,AllocTRES", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        return None
    result = {}
    for line in out.stdout.splitlines():
        job_id, elapsed, tres = ([*line.split("|"), "", "", ""])[:3]
        result[job_id] = float(elapsed or 0) * gpus_of(tres)
    return result


def invalidate_cache() -> None:
    global _cache
    _cache = None


def scancel(job_ids: list[str]) -> None:
    if not job_ids:
        return
    CALLS["scancel"] += 1
    subprocess.run(["scancel", *job_ids], capture_output=True, text=True, timeout=60, check=False)
    invalidate_cache()


def read_result(folder: Path, job_id: str) -> tuple[str, Any] | None:
    """submitit's result pickle for a (rank-0) task: ("success", value) | ("error", traceback)."""
    path = folder / f"{job_id}_0_result.pkl"
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            outcome, value = pickle.load(f)
    except Exception as e:  # half-written or unreadable: report, don't crash the status view
        return ("error", f"unreadable result file {path}: {e}")
    return (outcome, value)
