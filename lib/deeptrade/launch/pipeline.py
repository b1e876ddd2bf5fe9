"""The research pipeline as a stage DAG: ingest -> features -> train -> backtest -> publish.

Before submitting anything, each stage is planned against the store: a stage whose upstream
stages are all up to date and whose own manifest key matches is skipped. With no change at all,
nothing is submitted and the summary says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeptrade.config.compose import load
from deeptrade.io import ArtifactStore
from deeptrade.launch.dag import DagRecord, Stage, dag_status, submit_dag


def _ingest_current(cfg: Any, store: ArtifactStore) -> bool:
    from deeptrade.data.stage import up_to_date

    return up_to_date(cfg.data, store)


def _features_current(cfg: Any, store: ArtifactStore) -> bool:
    from deeptrade.features.stage import up_to_date

    return up_to_date(cfg.data, cfg.features, store)


def _train_current(cfg: Any, store: ArtifactStore) -> bool:
    from deeptrade.train.stage import up_to_date

    return up_to_date(cfg, store)


def _backtest_current(cfg: Any, store: ArtifactStore) -> bool:
    from deeptrade.backtest.stage import up_to_date

    return up_to_date(cfg, store)


def _publish_current(cfg: Any, store: ArtifactStore) -> bool:
    from deeptrade.live.publish import up_to_date

    return up_to_date(cfg, store)


@dataclass(kw_only=True)
class PipelineStage:
    name: str
    job: str
    after: list[str]
    current: Callable[[Any, ArtifactStore], bool]


PIPELINE = [
    PipelineStage(name="ingest", job="ingest", after=[], current=_ingest_current),
    PipelineStage(name="features", job="features", after=["ingest"], current=_features_current),
    PipelineStage(name="train", job="train", after=["features"], current=_train_current),
    PipelineStage(name="backtest", job="backtest", after=["train"], current=_backtest_current),
    PipelineStage(name="publish", job="publish", after=["backtest"], current=_publish_current),
]


def plan(overrides: Sequence[str]) -> tuple[Any, list[Stage]]:
    cfg = load(PIPELINE[0].job, overrides)
    root = Path(cfg.paths.root).expanduser().resolve()
    store = ArtifactStore(root)
    stages: list[Stage] = []
    stale: set[str] = set()
    for ps in PIPELINE:
        stage_cfg = load(ps.job, overrides)
        skipped = (
            not cfg.run.force
            and not any(a in stale for a in ps.after)
            and ps.current(stage_cfg, store)
        )
        if not skipped:
            stale.add(ps.name)
        stages.append(
            Stage(
                name=ps.name,
                job=ps.job,
                after=list(ps.after),
                overrides=[*overrides, f"paths.root={root}"],
                skipped=skipped,
            )
        )
    return cfg, stages


def run_pipeline(
    overrides: Sequence[str], *, wait: bool = False
) -> tuple[DagRecord | None, list[dict[str, Any]]]:
    cfg, stages = plan(overrides)
    if all(s.skipped for s in stages):
        return None, [{"stage": s.name, "state": "SKIPPED", "why": "up to date"} for s in stages]
    root = Path(cfg.paths.root).expanduser().resolve()
    record = submit_dag(stages, cfg.cluster, root)
    if wait and cfg.cluster.executor == "slurm":
        from deeptrade.launch.dag import wait_dag

        return record, wait_dag(record)
    return record, dag_status(record)
