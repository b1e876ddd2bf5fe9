"""Admin views over the suite's jobs: ``deeptrade queue``, ``cancel``, ``retry --failed``.

A refresh costs one ``squeue`` (shared by every sweep and DAG shown) and at most one
``sacct`` (GPU-hours of finished work, when accounting is enabled) — never one call per job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from deeptrade.launch import scheduler
from deeptrade.launch.dag import DagRecord, dag_status
from deeptrade.launch.sweeps import SweepRecord, launch_dir, submit_sweep, sweep_status


@dataclass(kw_only=True)
class GroupRow:
    kind: str
    """sweep | dag"""
    id: str
    job: str
    counts: dict[str, int] = field(default_factory=dict)
    pending_reasons: dict[str, int] = field(default_factory=dict)
    max_elapsed_s: int = 0
    gpu_hours: float | None = None
    """Running GPU time from squeue plus finished GPU time from sacct (None: no accounting)."""


def _records(root: Path, limit: int) -> list[SweepRecord | DagRecord]:
    base = launch_dir(root)
    paths = sorted(
        [*(base / "sweeps").glob("*.json"), *(base / "dags").glob("*.json")],
        key=lambda p: p.stat().st_mtime,
    )[-limit:]
    out: list[SweepRecord | DagRecord] = []
    for p in paths:
        if "." in p.stem:  # "<id>.<stage>.failed.json" / "<id>.retry.json" side files
            continue
        if p.parent.name == "dags":
            out.append(DagRecord.load(p))
        else:
            out.append(SweepRecord.load(root, p.stem))
    return out


_REUSE = float("inf")


def queue_view(root: Path, *, limit: int = 20, max_age_s: float = 5.0) -> list[GroupRow]:
    queue = scheduler.queue_snapshot(max_age_s=max_age_s)
    rows: list[GroupRow] = []
    finished_ids: list[str] = []
    for rec in _records(root, limit):
        if isinstance(rec, SweepRecord):
            # The snapshot above is shared: inner lookups reuse it (max_age_s=inf), no new squeue.
            states = [(s.job_id, s.state, s.reason) for s in sweep_status(rec, max_age_s=_REUSE)]
            row = GroupRow(kind="sweep", id=rec.id, job=rec.job)
        else:
            states = [
                (r["job_id"], r["state"], r.get("why") or "")
                for r in dag_status(rec, max_age_s=_REUSE)
            ]
            row = GroupRow(kind="dag", id=rec.id, job="+".join(s.job for s in rec.stages))
        gpu_s = 0.0
        for job_id, state, reason in states:
            row.counts[state] = row.counts.get(state, 0) + 1
            if state == "PENDING" and reason:
                row.pending_reasons[reason] = row.pending_reasons.get(reason, 0) + 1
            entry = queue.get(job_id or "")
            if entry is not None and state == "RUNNING":
                secs = scheduler.elapsed_seconds(entry.elapsed)
                row.max_elapsed_s = max(row.max_elapsed_s, secs)
                gpu_s += secs * scheduler.gpus_of(entry.gres)
            elif job_id:
                finished_ids.append(job_id)
        row.gpu_hours = gpu_s / 3600
        rows.append(row)
    done = scheduler.sacct_gpu_seconds(finished_ids)
    if done is None:
        for row in rows:
            row.gpu_hours = None if row.gpu_hours == 0 else row.gpu_hours
    return rows


def format_queue(rows: list[GroupRow]) -> str:
    lines = [f"{'kind':<6} {'id':<36} {'job':<22} {'states':<40} {'elapsed':>8} {'GPU-h':>7}"]
    for r in rows:
        states = " ".join(f"{k}={v}" for k, v in sorted(r.counts.items()))
        gpu = "n/a" if r.gpu_hours is None else f"{r.gpu_hours:.2f}"
        lines.append(
            f"{r.kind:<6} {r.id:<36} {r.job:<22} {states:<40} {r.max_elapsed_s:>7}s {gpu:>7}"
        )
        for reason, n in sorted(r.pending_reasons.items()):
            lines.append(f"{'':<6} pending: {reason} x{n}")
    return "\n".join(lines)


def retry_failed(root: Path, sweep_id: str) -> SweepRecord | None:
    """Resubmit exactly the failed (or lost) tasks of a sweep as a new array."""
    from deeptrade.config.compose import load

    record = SweepRecord.load(root, sweep_id)
    failed = [
        s
        for s in sweep_status(record, max_age_s=0)
        if s.state in ("FAILED", "LOST", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")
    ]
    if not failed:
        return None
    overrides = list(failed[0].overrides)
    if not any(o.startswith("cluster=") for o in overrides):
        overrides.append(f"cluster={record.cluster}")
    cluster = load(record.job, overrides).cluster
    retry = submit_sweep(record.job, [s.overrides for s in failed], cluster, root)
    meta = launch_dir(root) / "sweeps" / f"{retry.id}.retry.json"
    meta.write_text(json.dumps({"retry_of": sweep_id, "tasks": [s.index for s in failed]}))
    return retry
