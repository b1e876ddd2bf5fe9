"""Submitting jobs and sweeps (one array per sweep) and collecting their state later.

A sweep (or a single job: a sweep of one) is described by a small JSON record under
``<root>/_launch/sweeps/<id>.json``; submitit's pickles and logs live in
``<root>/_launch/<id>/``. ``deeptrade status <id>`` needs nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deeptrade.config.schema import ClusterConfig
from deeptrade.io.atomic import atomic_write_text
from deeptrade.launch import scheduler

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "LOST"}


def launch_dir(root: Path) -> Path:
    return Path(root) / "_launch"


def new_id(job: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{job}-{stamp}-{uuid.uuid4().hex[:4]}"


@dataclass(kw_only=True)
class TaskRecord:
    index: int
    overrides: list[str]
    job_id: str | None = None
    """Slurm id (``123_4`` for array tasks); None for in-process runs."""
    state: str | None = None
    """Final state for in-process runs (Slurm tasks are looked up instead)."""
    result: Any = None


@dataclass(kw_only=True)
class SweepRecord:
    id: str
    job: str
    cluster: str
    root: str
    created_at: str
    tasks: list[TaskRecord] = field(default_factory=list)
    array_ids: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return launch_dir(Path(self.root)) / self.id

    @property
    def path(self) -> Path:
        return launch_dir(Path(self.root)) / "sweeps" / f"{self.id}.json"

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(asdict(self), indent=1, default=str))

    @classmethod
    def load(cls, root: Path, sweep_id: str) -> SweepRecord:
        path = launch_dir(root) / "sweeps" / f"{sweep_id}.json"
        if not path.is_file():
            known = sorted(p.stem for p in (launch_dir(root) / "sweeps").glob("*.json"))
            raise ValueError(
                f"No sweep '{sweep_id}' under {root}. Known: {', '.join(known[-10:]) or 'none'} "
                f"(set DEEPTRADE_ROOT or --root to the store the sweep was submitted to)"
            )
        data = json.loads(path.read_text())
        data["tasks"] = [TaskRecord(**t) for t in data["tasks"]]
        return cls(**data)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def submit_sweep(
    job: str,
    points: Sequence[Sequence[str]],
    cluster: ClusterConfig,
    root: Path,
    *,
    dependency: str | None = None,
    task: Any = None,
) -> SweepRecord:
    """Submit ``points`` (override lists) as one Slurm array (split above MaxArraySize).

    On ``cluster.executor == "local"`` the points run here, one after the other.
    """
    from deeptrade.launch.apptainer import check_python_version
    from deeptrade.launch.task import JobTask, run_job

    check_python_version(cluster)
    record = SweepRecord(
        id=new_id(job),
        job=job,
        cluster=cluster.name,
        root=str(root),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        tasks=[TaskRecord(index=i, overrides=list(p)) for i, p in enumerate(points)],
    )
    if cluster.executor == "local":
        record.save()
        for t in record.tasks:
            try:
                t.result = run_job(job, t.overrides)
                t.state = "COMPLETED"
            except Exception as e:
                t.state, t.result = "FAILED", f"{type(e).__name__}: {e}"
            record.save()
        return record

    from deeptrade.launch.executor import make_executor

    executor = make_executor(cluster, record.folder, job_name=f"dt-{job}")
    if dependency:
        executor.update_parameters(dependency=dependency)
    fn = task or JobTask(job, max_requeues=cluster.max_requeues)
    for chunk in _chunks(record.tasks, max(1, cluster.max_array_size)):
        if len(record.tasks) == 1:
            jobs = [executor.submit(fn, chunk[0].overrides)]
        else:
            jobs = executor.map_array(fn, [t.overrides for t in chunk])
        scheduler.CALLS["sbatch"] += 1
        for t, j in zip(chunk, jobs, strict=True):
            t.job_id = str(j.job_id)
        record.array_ids.append(str(jobs[0].job_id).split("_")[0])
    record.save()
    return record


@dataclass(kw_only=True)
class TaskStatus:
    index: int
    job_id: str | None
    state: str
    reason: str = ""
    overrides: list[str] = field(default_factory=list)
    result: Any = None


def sweep_status(record: SweepRecord, *, max_age_s: float = 5.0) -> list[TaskStatus]:
    """Per-task state: one ``squeue`` for the whole sweep, then submitit's result files."""
    if any(t.job_id for t in record.tasks):
        queue = scheduler.queue_snapshot(max_age_s=max_age_s)
    else:
        queue = {}
    out = []
    for t in record.tasks:
        if t.job_id is None:
            out.append(
                TaskStatus(
                    index=t.index,
                    job_id=None,
                    state=t.state or "PENDING",
                    overrides=t.overrides,
                    result=t.result,
                )
            )
            continue
        entry = queue.get(t.job_id)
        if entry is not None and entry.state not in TERMINAL:
            out.append(
                TaskStatus(
                    index=t.index,
                    job_id=t.job_id,
                    state=entry.state,
                    reason=entry.reason if entry.reason != "None" else "",
                    overrides=t.overrides,
                )
            )
            continue
        res = scheduler.read_result(record.folder, t.job_id)
        if res is not None:
            ok = res[0] == "success"
            result = res[1] if ok else str(res[1]).strip().splitlines()[-1:]
            out.append(
                TaskStatus(
                    index=t.index,
                    job_id=t.job_id,
                    state="COMPLETED" if ok else "FAILED",
                    overrides=t.overrides,
                    result=result if ok else " ".join(result),
                )
            )
        elif entry is not None:
            out.append(
                TaskStatus(
                    index=t.index,
                    job_id=t.job_id,
                    state=entry.state,
                    reason=entry.reason,
                    overrides=t.overrides,
                )
            )
        else:
            out.append(
                TaskStatus(
                    index=t.index,
                    job_id=t.job_id,
                    state="LOST",
                    reason="left the queue without a result (cancelled or killed)",
                    overrides=t.overrides,
                )
            )
    return out


def wait(
    record: SweepRecord, *, poll_s: float = 2.0, timeout_s: float | None = None
) -> list[TaskStatus]:
    start = time.monotonic()
    while True:
        status = sweep_status(record, max_age_s=0)
        if all(s.state in TERMINAL for s in status):
            return status
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"sweep {record.id} not finished after {timeout_s} s")
        time.sleep(poll_s)


def format_status(record: SweepRecord, status: list[TaskStatus]) -> str:
    counts: dict[str, int] = {}
    for s in status:
        counts[s.state] = counts.get(s.state, 0) + 1
    lines = [
        f"sweep {record.id}  job={record.job}  cluster={record.cluster}  tasks={len(status)}  "
        + "  ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    ]
    for s in status:
        extra = s.reason or ("" if s.result is None else json.dumps(s.result, default=str)[:120])
        lines.append(
            f"  [{s.index:>4}] {s.job_id or '-':<14} {s.state:<10} "
            f"{' '.join(s.overrides):<40} {extra}"
        )
    return "\n".join(lines)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, int | float | str | bool) or value is None:
        out[prefix] = value


def results_table(record: SweepRecord, status: list[TaskStatus] | None = None) -> Any:
    """One row per task: its overrides as columns, then its state and flattened result.

    Swept keys become columns (``model.name``, ``symbol`` ...), so the table pivots directly.
    """
    import pandas as pd

    status = status if status is not None else sweep_status(record)
    rows = []
    for s in status:
        row: dict[str, Any] = {"task": s.index, "job_id": s.job_id, "state": s.state}
        for o in s.overrides:
            key, _, value = o.partition("=")
            if key != "paths.root":
                row[key.lstrip("+~")] = value
        if isinstance(s.result, dict):
            _flatten("", s.result, row)
        elif s.result is not None:
            row["error"] = str(s.result)
        rows.append(row)
    return pd.DataFrame(rows)
