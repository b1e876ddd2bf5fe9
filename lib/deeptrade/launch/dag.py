"""A stage DAG: each stage a job, submitted with ``afterok`` on the stages it needs.

A failed stage must never let its dependents run on stale inputs. Slurm's
``kill_invalid_depend`` cancels them where the site enables it; we do not rely on that: the
failing task itself ``scancel``s every transitive dependent and records why, so the status
view can say "cancelled because stage X failed: <error>".
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from deeptrade.config.schema import ClusterConfig
from deeptrade.io.atomic import atomic_write_text
from deeptrade.launch import scheduler
from deeptrade.launch.sweeps import TERMINAL, launch_dir, new_id


@dataclass(kw_only=True)
class Stage:
    name: str
    job: str
    overrides: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    """Names of stages that must succeed first."""
    job_id: str | None = None
    state: str | None = None
    """Final state for in-process runs."""
    skipped: bool = False
    """Up to date: nothing was submitted for it."""
    result: Any = None


@dataclass(kw_only=True)
class DagRecord:
    id: str
    root: str
    cluster: str
    created_at: str
    stages: list[Stage]

    @property
    def folder(self) -> Path:
        return launch_dir(Path(self.root)) / self.id

    @property
    def path(self) -> Path:
        return launch_dir(Path(self.root)) / "dags" / f"{self.id}.json"

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(asdict(self), indent=1, default=str))

    @classmethod
    def load(cls, path: str | Path) -> DagRecord:
        data = json.loads(Path(path).read_text())
        data["stages"] = [Stage(**s) for s in data["stages"]]
        return cls(**data)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise ValueError(f"No stage '{name}' in DAG {self.id}: {[s.name for s in self.stages]}")

    def dependents(self, name: str) -> list[Stage]:
        """Every stage that (transitively) needs ``name``."""
        found: list[Stage] = []
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for s in self.stages:
                if current in s.after and s not in found:
                    found.append(s)
                    frontier.append(s.name)
        return found


def _validate(stages: Sequence[Stage]) -> None:
    seen: set[str] = set()
    for s in stages:
        if s.name in seen:
            raise ValueError(f"Duplicate stage name '{s.name}'")
        missing = [a for a in s.after if a not in seen]
        if missing:
            raise ValueError(
                f"Stage '{s.name}' runs after {missing}, which are not defined before it; "
                f"list stages in dependency order"
            )
        seen.add(s.name)


def _failure_path(record_path: Path, stage: str) -> Path:
    return record_path.with_name(f"{record_path.stem}.{stage}.failed.json")


def cancel_dependents(record_path: str | Path, stage: str, *, reason: str) -> list[str]:
    """Called by a failing stage's task: cancel its dependents and record why."""
    record = DagRecord.load(record_path)
    deps = [s for s in record.dependents(stage) if s.job_id]
    scheduler.scancel([s.job_id for s in deps if s.job_id])
    payload = {"stage": stage, "reason": reason, "cancelled": [s.name for s in deps]}
    atomic_write_text(_failure_path(Path(record_path), stage), json.dumps(payload))
    return [s.name for s in deps]


def submit_dag(
    stages: Sequence[Stage], cluster: ClusterConfig, root: Path, *, dag_id: str | None = None
) -> DagRecord:
    """Submit every stage (Slurm: dependent jobs; local: run here in order)."""
    from deeptrade.launch.task import JobTask, run_job

    _validate(stages)
    record = DagRecord(
        id=dag_id or new_id("dag"),
        root=str(root),
        cluster=cluster.name,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        stages=list(stages),
    )
    record.save()
    if cluster.executor == "local":
        failed: dict[str, str] = {}
        for s in record.stages:
            if s.skipped:
                s.state = "SKIPPED"
                continue
            blockers = [a for a in s.after if a in failed]
            if blockers:
                s.state = "CANCELLED"
                s.result = f"cancelled because stage '{blockers[0]}' failed: {failed[blockers[0]]}"
                failed[s.name] = s.result
                continue
            try:
                s.result = run_job(s.job, s.overrides)
                s.state = "COMPLETED"
            except Exception as e:
                s.state = "FAILED"
                s.result = failed[s.name] = f"{type(e).__name__}: {e}"
            record.save()
        record.save()
        return record

    from deeptrade.launch.apptainer import check_python_version
    from deeptrade.launch.executor import make_executor

    check_python_version(cluster)
    for s in record.stages:
        if s.skipped:
            continue
        ex = make_executor(cluster, record.folder, job_name=f"dt-{s.name}")
        deps = [record.stage(a).job_id for a in s.after if record.stage(a).job_id]
        if deps:
            ex.update_parameters(dependency="afterok:" + ":".join(str(d) for d in deps))
        task = JobTask(
            s.job, max_requeues=cluster.max_requeues, dag_record=str(record.path), stage=s.name
        )
        job = ex.submit(task, s.overrides)
        scheduler.CALLS["sbatch"] += 1
        s.job_id = str(job.job_id)
        record.save()  # dependents' ids must be on disk before a stage can fail and cancel them
    return record


def dag_status(record: DagRecord, *, max_age_s: float = 5.0) -> list[dict[str, Any]]:
    """Per stage: state and why (a cancelled stage names the failed stage and its error)."""
    failures = {}
    for s in record.stages:
        p = _failure_path(record.path, s.name)
        if p.is_file():
            failures[s.name] = json.loads(p.read_text())
    cancelled_by = {c: f for f in failures.values() for c in f["cancelled"]}
    queue = (
        scheduler.queue_snapshot(max_age_s=max_age_s)
        if any(s.job_id for s in record.stages)
        else {}
    )
    rows = []
    for s in record.stages:
        row: dict[str, Any] = {"stage": s.name, "job": s.job, "job_id": s.job_id}
        if s.skipped:
            row.update(state="SKIPPED", why="up to date (manifest matches)")
        elif s.job_id is None:
            row.update(state=s.state or "PENDING", why=s.result if s.state != "COMPLETED" else "")
        else:
            entry = queue.get(s.job_id)
            res = scheduler.read_result(record.folder, s.job_id)
            if s.name in cancelled_by:
                f = cancelled_by[s.name]
                row.update(
                    state="CANCELLED",
                    why=f"cancelled because stage '{f['stage']}' failed: {f['reason']}",
                )
            elif entry is not None and entry.state not in TERMINAL:
                row.update(state=entry.state, why=entry.reason)
            elif res is not None:
                ok = res[0] == "success"
                row.update(
                    state="COMPLETED" if ok else "FAILED",
                    why="" if ok else str(res[1]).strip().splitlines()[-1],
                )
            else:
                row.update(state=entry.state if entry else "LOST", why="no result file")
        rows.append(row)
    return rows


def wait_dag(
    record: DagRecord, *, poll_s: float = 2.0, timeout_s: float = 600
) -> list[dict[str, Any]]:
    import time

    start = time.monotonic()
    while True:
        rows = dag_status(record, max_age_s=0)
        if all(r["state"] in TERMINAL | {"SKIPPED"} for r in rows):
            return rows
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"DAG {record.id} not finished after {timeout_s} s: {rows}")
        time.sleep(poll_s)
