"""Publishing: a model-driven backtest that passes the gates -> ``releases/<name>/``.

A release holds what the live job needs and nothing it must recompute: the model bundle, the
feature spec (and its hash, which the live job checks), the strategy rule and its chosen
threshold, the label definition, and the backtest metrics that justified it.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from deeptrade.config.compose import to_container
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io.artifacts import Artifact, ArtifactStore
from deeptrade.live.release import FEATURE_SPEC_HASH_KEY


def gate_failures(oos: dict[str, float], cfg: DeeptradeConfig) -> list[str]:
    rel = cfg.release
    fails = []
    if not oos.get("sharpe", float("-inf")) >= rel.min_oos_sharpe:
        fails.append(
            f"out-of-sample Sharpe {oos.get('sharpe')} < release.min_oos_sharpe={rel.min_oos_sharpe}"
        )
    if not oos.get("max_drawdown", float("inf")) <= rel.max_drawdown:
        fails.append(
            f"out-of-sample max drawdown {oos.get('max_drawdown')} > release.max_drawdown={rel.max_drawdown}"
        )
    if not oos.get("n_trades", 0) >= rel.min_trades:
        fails.append(
            f"{oos.get('n_trades')} out-of-sample trades < release.min_trades={rel.min_trades}"
        )
    return fails


def publish(cfg: DeeptradeConfig, store: ArtifactStore) -> dict[str, Any]:
    import pandas as pd

    from deeptrade.backtest.stage import artifact_name
    from deeptrade.train.stage import features_name, model_name

    if cfg.strategy.name != "predictions" or not cfg.symbol:
        raise ValueError(
            "publish needs a model-driven backtest of one symbol: strategy=model symbol=<SYM> "
            "(the same overrides the backtest ran with)"
        )
    bt_name = cfg.release.backtest.removeprefix("backtests/") or artifact_name(cfg)
    backtest = store.require("backtests", bt_name, hint="Run the backtest job first")
    model = store.require("models", model_name(cfg, [cfg.symbol]))
    feats = store.require("features", features_name(cfg))
    oos = backtest.manifest.meta["summary"]["oos"][cfg.symbol]
    fails = gate_failures(oos, cfg)
    if fails:
        raise ValueError(
            f"refusing to publish {backtest.ref}: "
            + "; ".join(fails)
            + ". Improve the model, or change the release.* gates deliberately."
        )
    windows = pd.read_parquet(backtest.path / "windows.parquet")
    last = windows[windows["symbol"] == cfg.symbol].iloc[-1]
    params = {
        c.removeprefix("param_"): float(last[c]) for c in windows.columns if c.startswith("param_")
    }
    strategy = {
        "name": cfg.strategy.name,
        "params": params,
        "mode": "threshold",
        "long_only": cfg.backtest.costs.direction == "long_only",
    }
    spec_hash = feats.manifest.meta["feature_spec_hash"]
    inputs = {a.ref: a.manifest.content_hash for a in (backtest, model, feats)}
    key = store.stage_key({"release": to_container(cfg.release), "strategy": strategy}, inputs)
    meta = {
        FEATURE_SPEC_HASH_KEY: spec_hash,
        "symbols": [cfg.symbol],
        "timeframe": cfg.timeframe,
        "strategy": strategy,
        "oos": oos,
        "backtest": backtest.ref,
        "model": model.ref,
    }
    with store.write(
        "releases", cfg.release.name, key=key, config=to_container(cfg), inputs=inputs, meta=meta
    ) as tmp:
        shutil.copytree(model.path / "bundle", tmp / "model")
        _dump(tmp / "feature_spec.json", {**feats.manifest.meta["feature_spec"], "hash": spec_hash})
        _dump(tmp / "strategy.json", strategy)
        _dump(
            tmp / "backtest.json",
            {
                "artifact": backtest.ref,
                "oos": oos,
                "pbo": backtest.manifest.meta["summary"].get("pbo", {}),
            },
        )
    return {"artifact": f"releases/{cfg.release.name}", "oos": oos, "strategy": strategy}


def up_to_date(cfg: DeeptradeConfig, store: ArtifactStore) -> bool:
    """The release exists and was made from exactly the current backtest, model and features."""
    from deeptrade.backtest.stage import artifact_name
    from deeptrade.train.stage import features_name, model_name

    rel = store.get("releases", cfg.release.name)
    if rel is None or not cfg.symbol:
        return False
    current = [
        store.get(
            "backtests", cfg.release.backtest.removeprefix("backtests/") or artifact_name(cfg)
        ),
        store.get("models", model_name(cfg, [cfg.symbol])),
        store.get("features", features_name(cfg)),
    ]
    if any(a is None for a in current):
        return False
    return rel.manifest.inputs == {a.ref: a.manifest.content_hash for a in current if a} and (
        rel.manifest.config.get("release") == to_container(cfg.release)
    )


def _dump(path: Any, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))


def release_artifact(store: ArtifactStore, name: str) -> Artifact:
    return store.require("releases", name, hint="Publish one first: deeptrade run publish ...")
