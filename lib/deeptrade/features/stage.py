"""The features stage: bars artifact -> features (+ forward-return label) per partition.

Partitions are computed one at a time (or in parallel with Dask) into a staging directory
next to the final artifact; each finished partition is written atomically there, so a
preempted or crashed run resumes with the partitions it has not done yet. When all are done,
the staging directory is committed as one artifact (manifest last).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from deeptrade.config.compose import to_container
from deeptrade.config.jobs import DataConfig, FeaturesConfig
from deeptrade.io.artifacts import ArtifactStore
from deeptrade.io.atomic import atomic_write_bytes
from deeptrade.io.tables import (
    PART_FILE,
    list_partitions,
    partition_dir,
    read_partition,
    write_frame,
)

log = logging.getLogger(__name__)
STAGE_VERSION = "1"
LABEL_COLUMN = "label"


def artifact_name(data: DataConfig, features: FeaturesConfig) -> str:
    return f"{data.name}-{features.name}"


def stage_key(store: ArtifactStore, bars_hash: str, features: FeaturesConfig) -> str:
    from deeptrade.features.spec import feature_spec_hash

    cfg = {
        k: v
        for k, v in to_container(features).items()
        if k not in ("scheduler", "workers", "params", "shard", "shards")
    }
    spec = feature_spec_hash(features.params)
    return store.stage_key({"features": cfg, "spec": spec}, {"bars": bars_hash}, STAGE_VERSION)


def up_to_date(data: DataConfig, features: FeaturesConfig, store: ArtifactStore) -> bool:
    bars = store.get("bars", data.name)
    if bars is None:
        return False
    key = stage_key(store, bars.manifest.content_hash, features)
    return store.up_to_date("features", artifact_name(data, features), key) is not None


def compute_partition(
    bars_dir: Path, out_path: Path, timeframe: str, symbol: str, features: FeaturesConfig
) -> int:
    """Read one partition, compute features + label, write it atomically. Returns rows."""
    from deeptrade.features.core import compute_features
    from deeptrade.features.labels import LabelSpec, make_labels

    bars = read_partition(bars_dir, timeframe, symbol)
    bench = None
    if features.benchmark:
        try:
            bench_bars = read_partition(bars_dir, timeframe, features.benchmark)
        except ValueError:
            raise ValueError(
                f"features.benchmark={features.benchmark!r} has no bars for timeframe {timeframe} "
                f"in {bars_dir}; ingest it too (add it to data.symbols) or set features.benchmark=null"
            ) from None
        # Align by timestamp; a missing benchmark bar gives NaN, never a later value.
        bench = bench_bars.set_index("timestamp")["close"].reindex(bars["timestamp"]).to_numpy()
    out = compute_features(
        bars, benchmark_close=bench, config=features.params, backend=features.backend
    )
    out[LABEL_COLUMN] = make_labels(
        bars, LabelSpec(kind="forward_return", horizon=features.label_horizon)
    )
    out.insert(1, "close", bars["close"].to_numpy())
    tmp = out_path.with_suffix(".writing")
    write_frame(tmp, out)
    atomic_write_bytes(out_path, tmp.read_bytes())
    tmp.unlink()
    return len(out)


def run_features(
    data: DataConfig,
    features: FeaturesConfig,
    store: ArtifactStore,
    *,
    force: bool = False,
    progress: bool = False,
    preempt: threading.Event | None = None,
) -> dict[str, Any]:
    """Compute this shard's partitions, then commit the artifact if every partition is done.

    Returns ``status``: ``partial`` (other shards still running), ``preempted`` (stopped
    between partitions; rerun resumes) or the committed artifact.
    """
    from deeptrade.features.spec import feature_spec, feature_spec_hash

    bars = store.require("bars", data.name, hint="Run the ingest job first: deeptrade run ingest")
    name = artifact_name(data, features)
    key = stage_key(store, bars.manifest.content_hash, features)
    if not force and (art := store.up_to_date("features", name, key)):
        log.info("features/%s is up to date (manifest key matches); skipping", name)
        return {"artifact": art.ref, "skipped": True}

    if not 0 <= features.shard < features.shards:
        raise ValueError(
            f"features.shard={features.shard} must be in [0, features.shards={features.shards})"
        )
    staging = store.path("features", name).parent / f".staging-{name}-{key[:16]}"
    parts = list_partitions(bars.path)
    todo = []
    for tf, sym in parts[features.shard :: features.shards]:
        out_path = partition_dir(staging, tf, sym) / PART_FILE
        if out_path.is_file():
            continue  # done before a preemption/crash: resume skips it
        out_path.parent.mkdir(parents=True, exist_ok=True)
        todo.append((tf, sym, out_path))
    log.info("features/%s: %d partitions, %d to compute", name, len(parts), len(todo))
    if features.scheduler == "dask" and todo:
        from deeptrade.features.scale import run_partitions

        run_partitions(
            [(bars.path, p, tf, sym, features) for tf, sym, p in todo],
            _partition_task,
            scheduler="dask",
            n_workers=features.workers,
            progress=progress,
        )
    else:
        from tqdm import tqdm

        for tf, sym, out_path in tqdm(todo, disable=not progress, desc="features"):
            if preempt is not None and preempt.is_set():
                return {"artifact": f"features/{name}", "status": "preempted"}
            compute_partition(bars.path, out_path, tf, sym, features)

    # With several shards, the last one to finish commits (one commit, guarded by a lock file).
    done = [p for p in parts if (partition_dir(staging, *p) / PART_FILE).is_file()]
    if len(done) < len(parts):
        return {
            "artifact": f"features/{name}",
            "status": "partial",
            "done": len(done),
            "partitions": len(parts),
        }
    try:
        os.close(os.open(staging / ".commit.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return {"artifact": f"features/{name}", "status": "committed_by_another_shard"}

    spec = feature_spec(features.params)
    meta = {
        "label_horizon": features.label_horizon,
        "label_column": LABEL_COLUMN,
        "feature_spec": spec,
        "feature_spec_hash": feature_spec_hash(features.params),
        "partitions": [f"{tf}/{s}" for tf, s in parts],
    }
    with store.write(
        "features",
        name,
        key=key,
        config={"features": to_container(features)},
        inputs={bars.ref: bars.manifest.content_hash},
        meta=meta,
    ) as tmp:
        for item in staging.iterdir():
            if not item.name.startswith("."):
                shutil.move(str(item), tmp / item.name)
    shutil.rmtree(staging, ignore_errors=True)
    art = store.require("features", name)
    return {"artifact": art.ref, "skipped": False, "partitions": len(parts)}


def _partition_task(task: tuple[Path, Path, str, str, FeaturesConfig]) -> int:
    bars_dir, out_path, tf, sym, features = task
    return compute_partition(bars_dir, out_path, tf, sym, features)


def load_features(store: ArtifactStore, name: str, timeframe: str, symbol: str) -> pd.DataFrame:
    art = store.require("features", name, hint="Run the features job first: deeptrade run features")
    return read_partition(art.path, timeframe, symbol)
