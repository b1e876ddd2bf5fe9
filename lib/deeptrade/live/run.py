"""Assemble the live engine from a published release (what ``jobs/live.py`` runs)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, cast

from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io.artifacts import ArtifactStore

log = logging.getLogger(__name__)


class StreamingFeatureState:
    """The engine's per-bar feature seam over one ``StreamingFeatures`` per symbol.

    The streaming calculator equals the batch features the model was trained on, bar for bar.
    """

    def __init__(self, params: Any) -> None:
        self.params = params
        self._states: dict[str, Any] = {}

    def update(self, bar: Any) -> dict[str, float]:
        from deeptrade.features.streaming import StreamingFeatures

        state = self._states.get(bar.symbol)
        if state is None:
            state = self._states[bar.symbol] = StreamingFeatures(self.params)
        return state.update(
            {
                "timestamp": bar.timestamp,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
            }
        )


def journal_dir(store: ArtifactStore, release: str) -> Path:
    return store.root / "live" / release


def build_engine(cfg: DeeptradeConfig, store: ArtifactStore) -> Any:
    from omegaconf import OmegaConf

    from deeptrade.config.jobs import FeaturesConfig
    from deeptrade.live import (
        AlpacaKeys,
        Broker,
        EngineConfig,
        Journal,
        LiveEngine,
        PredictionPolicy,
        check_release,
        make_clients,
        release_id,
    )
    from deeptrade.train.bundle import load_bundle

    live = cfg.live
    art = store.require(
        "releases", live.release, hint="Publish one first: deeptrade run publish ..."
    )
    spec = json.loads((art.path / "feature_spec.json").read_text())
    manifest = check_release(
        art.path,
        expected_feature_spec_hash=spec["hash"],
        max_age=dt.timedelta(days=live.max_release_age_days),
    )
    strategy = manifest.meta["strategy"]
    # The features the model was trained with, rebuilt from the release's own config.
    features_cfg: Any = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(FeaturesConfig), manifest.config["features"])
    )
    keys = AlpacaKeys.from_file(live.keys_file) if live.keys_file else AlpacaKeys.from_env()
    broker = Broker(make_clients(live.broker, keys), live.broker)
    jdir = journal_dir(store, live.release)
    jdir.mkdir(parents=True, exist_ok=True)
    engine_cfg = EngineConfig(
        release_id=release_id(manifest),
        symbols=list(manifest.meta["symbols"]),
        timeframe=live.timeframe,
        journal_path=str(jdir / "journal.sqlite"),
        kill_switch_path=live.kill_switch or str(jdir / "KILL"),
        order_type=live.order_type,
        fill_timeout_s=live.fill_timeout_s,
        poll_interval_s=live.poll_interval_s,
        warmup_lookback_s=live.warmup_days * 86400.0,
    )
    policy = PredictionPolicy(
        mode="threshold",
        threshold=strategy["params"].get("threshold", 0.0),
        center=strategy["params"].get("center", 0.0),
        long_only=strategy["long_only"],
        notional_per_unit=live.notional_per_unit,
    )
    return LiveEngine(
        cfg=engine_cfg,
        risk=live.risk,
        broker=broker,
        journal=Journal(engine_cfg.journal_path),
        features=StreamingFeatureState(features_cfg.params),
        predictor=cast(Any, load_bundle(art.path / "model")),
        policy=policy,
    )


def run_live(cfg: DeeptradeConfig, store: ArtifactStore) -> dict[str, Any]:
    engine = build_engine(cfg, store)
    outcome = engine.run(max_cycles=cfg.live.max_cycles or None)
    return {"release": cfg.live.release, "outcome": outcome}


def live_status(store: ArtifactStore, release: str) -> dict[str, Any]:
    """What ``deeptrade live status`` prints: last cycles, recent orders and fills, rejections."""
    from deeptrade.live import Journal

    path = journal_dir(store, release) / "journal.sqlite"
    if not path.is_file():
        raise ValueError(f"No journal for release '{release}' at {path}: has the live job run?")
    j = Journal(str(path))
    try:
        return {
            "release": release,
            "journal": str(path),
            "cycles": j.cycles()[-5:],
            "fills": j.fills()[-10:],
            "rejections": j.rejections()[-10:],
            "intents": j.intents()[-10:],
        }
    finally:
        j.close()
