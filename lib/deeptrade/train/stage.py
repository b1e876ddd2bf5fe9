"""The train stage: a features artifact -> a model bundle artifact (``models/<name>``).

Every rank calls ``run_train``: ranks come from the Slurm task environment (or torchrun), all
ranks train, rank 0 alone commits the artifact. Checkpoints live under
``<root>/_checkpoints/<model name>-<key>`` on the shared filesystem, so a requeued job resumes
from the latest complete one; a preemption signal makes the trainer checkpoint at the next
step and return ``status == "preempted"``, which the launch layer turns into a requeue.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from deeptrade.config.compose import to_container
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io.artifacts import ArtifactStore
from deeptrade.io.tables import list_partitions, read_partition

log = logging.getLogger(__name__)
STAGE_VERSION = "1"


def features_name(cfg: DeeptradeConfig) -> str:
    from deeptrade.features.stage import artifact_name

    return artifact_name(cfg.data, cfg.features)


def symbols_for(cfg: DeeptradeConfig, features_dir: Path) -> list[str]:
    available = [s for tf, s in list_partitions(features_dir) if tf == cfg.timeframe]
    wanted = list(cfg.train.symbols) or ([cfg.symbol] if cfg.symbol else available)
    missing = sorted(set(wanted) - set(available))
    if missing or not wanted:
        raise ValueError(
            f"train: no features for {missing or wanted} at timeframe={cfg.timeframe} in "
            f"{features_dir}; available: {available}. Ingest and build features for them first."
        )
    return wanted


def model_name(cfg: DeeptradeConfig, symbols: list[str]) -> str:
    who = cfg.symbol or (symbols[0] if len(symbols) == 1 else f"{len(symbols)}sym")
    tag = f"-{cfg.train.tag}" if cfg.train.tag else ""
    return f"{features_name(cfg)}/{cfg.timeframe}-{who}-{cfg.model.name}{tag}"


def _model_params(cfg: DeeptradeConfig) -> dict[str, Any]:
    section = "ensemble" if cfg.model.name.startswith("ensemble") else cfg.model.name
    return to_container(getattr(cfg.model, section))


def train_spec(cfg: DeeptradeConfig, horizon: int) -> Any:
    from deeptrade.train.api import TrainSpec

    return TrainSpec(
        model=cfg.model.name,
        params=_model_params(cfg),
        head=cfg.model.head,
        window=cfg.model.window,
        horizon=horizon,
        fractions=list(cfg.train.fractions),
        embargo=cfg.train.embargo,
        scale_label=cfg.train.scale_label,
        trainer=cfg.trainer,
    )


def stage_key(
    store: ArtifactStore, cfg: DeeptradeConfig, features_hash: str, symbols: list[str]
) -> str:
    section = {
        "model": {
            "name": cfg.model.name,
            "head": cfg.model.head,
            "window": cfg.model.window,
            "params": _model_params(cfg),
        },
        "trainer": {k: v for k, v in to_container(cfg.trainer).items() if k not in ("device",)},
        "train": to_container(cfg.train),
        "symbols": symbols,
        "timeframe": cfg.timeframe,
        "seed": cfg.run.seed,
    }
    return store.stage_key(section, {"features": features_hash}, STAGE_VERSION)


def up_to_date(cfg: DeeptradeConfig, store: ArtifactStore) -> bool:
    feats = store.get("features", features_name(cfg))
    if feats is None:
        return False
    symbols = symbols_for(cfg, feats.path)
    key = stage_key(store, cfg, feats.manifest.content_hash, symbols)
    return store.up_to_date("models", model_name(cfg, symbols), key) is not None


def run_train(
    cfg: DeeptradeConfig, store: ArtifactStore, *, preempt: threading.Event | None = None
) -> dict[str, Any]:
    from deeptrade.features.spec import BENCHMARK_FEATURE
    from deeptrade.train.api import train_model
    from deeptrade.train.dist import DistEnv

    feats = store.require(
        "features", features_name(cfg), hint="Run the features job first: deeptrade run features"
    )
    symbols = symbols_for(cfg, feats.path)
    name = model_name(cfg, symbols)
    key = stage_key(store, cfg, feats.manifest.content_hash, symbols)
    if not cfg.run.force and (art := store.up_to_date("models", name, key)):
        log.info("models/%s is up to date (manifest key matches); skipping", name)
        return {"artifact": art.ref, "skipped": True, "metrics": art.manifest.meta.get("metrics")}

    import torch

    # One intra-op thread per allocated CPU: no oversubscription on shared nodes, and the same
    # thread count (hence the same floating-point reduction order) wherever the job resumes.
    torch.set_num_threads(max(1, cfg.cluster.cpus_per_task))
    horizon = int(feats.manifest.meta["label_horizon"])
    # Without a benchmark the relative-return feature is NaN everywhere: leave it out.
    drop = ["close"] + ([] if cfg.features.benchmark else [BENCHMARK_FEATURE])
    frames = [read_partition(feats.path, cfg.timeframe, s).drop(columns=drop) for s in symbols]
    work = store.root / "_checkpoints" / f"{name.replace('/', '__')}-{key[:12]}"
    env = DistEnv()
    result = train_model(
        train_spec(cfg, horizon),
        frames,
        None,
        work / "out",
        checkpoint_dir=work / "ckpt",
        feature_spec_hash=feats.manifest.meta["feature_spec_hash"],
        env=env,
        preempt=preempt,
    )
    if result["status"] == "preempted" or not env.is_main:
        return {"artifact": f"models/{name}", "status": result["status"], "rank": env.rank}
    meta = {
        "metrics": result.get("metrics"),
        "status": result["status"],
        "symbols": symbols,
        "timeframe": cfg.timeframe,
        "label_horizon": horizon,
        "window": cfg.model.window,
        "model": cfg.model.name,
        "feature_spec_hash": feats.manifest.meta["feature_spec_hash"],
        "steps": result.get("steps"),
        "world_size": env.world_size,
    }
    # Run-specific facts (absolute paths, where it resumed from) go to the manifest, not the
    # content: the same training must give the same content hash on any host.
    meta["resumed_from"] = result.get("resumed_from")
    res_path = work / "out" / "result.json"
    if res_path.is_file():
        saved = json.loads(res_path.read_text())
        for run_specific in ("resumed_from", "bundle"):
            saved.pop(run_specific, None)
        res_path.write_text(json.dumps(saved, indent=1, sort_keys=True))
    with store.write(
        "models",
        name,
        key=key,
        config=to_container(cfg),
        meta=meta,
        inputs={feats.ref: feats.manifest.content_hash},
    ) as tmp:
        for item in (work / "out").iterdir():
            shutil.move(str(item), tmp / item.name)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "artifact": f"models/{name}",
        "skipped": False,
        "status": result["status"],
        "metrics": result.get("metrics"),
        "resumed_from": meta["resumed_from"],
    }
