"""The backtest stage: bars -> walk-forward results, a full-period sweep table and a report.

Per symbol, every walk-forward window optimises the grid in sample and trades the choice out
of sample; the stitched out-of-sample equity is what the strategy is judged by. The full-period
sweep gives the parameter heatmap, the deflated Sharpe of every combo and the probability of
backtest overfitting (CSCV). With ``backtest.chunks > 1`` each array task sweeps one chunk of
the grid into ``<name>/part-i-of-n``; ``backtest.merge=true`` then builds the one table.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from deeptrade.config.compose import to_container
from deeptrade.config.jobs import DeeptradeConfig
from deeptrade.io.artifacts import Artifact, ArtifactStore
from deeptrade.io.tables import list_partitions, read_partition, write_frame

log = logging.getLogger(__name__)
STAGE_VERSION = "1"


def artifact_name(cfg: DeeptradeConfig) -> str:
    return f"{cfg.data.name}-{cfg.strategy.name}-{cfg.backtest.name}"


def _grid(cfg: DeeptradeConfig) -> pd.DataFrame:
    from deeptrade.backtest.strategies import get_strategy
    from deeptrade.backtest.sweep import param_grid

    strategy = get_strategy(cfg.strategy.name)
    axes: dict[str, Any] = {k: list(v) for k, v in cfg.strategy.grid.items()}
    if not axes:  # the strategy's defaults, as a one-row grid
        axes = {k: [v] for k, v in strategy.params.items()}
    # Every parameter as a column (defaults filled in), so tables always name all of them.
    return pd.DataFrame(strategy.full_grid(param_grid(cfg.strategy.name, **axes)))


def _bars(cfg: DeeptradeConfig, bars: Artifact, store: ArtifactStore) -> dict[str, pd.DataFrame]:
    available = [s for tf, s in list_partitions(bars.path) if tf == cfg.timeframe]
    wanted = [cfg.symbol] if cfg.symbol else available
    if not wanted or any(s not in available for s in wanted):
        raise ValueError(
            f"backtest: no bars for {wanted} at timeframe={cfg.timeframe} in {bars.ref}; "
            f"available: {available}"
        )
    frames = {s: read_partition(bars.path, cfg.timeframe, s) for s in wanted}
    if cfg.strategy.name == "predictions":
        frames = {s: with_model_predictions(cfg, store, s, df) for s, df in frames.items()}
    return frames


def with_model_predictions(
    cfg: DeeptradeConfig, store: ArtifactStore, symbol: str, df: pd.DataFrame
) -> pd.DataFrame:
    """Bars after the model's training window, with its point-in-time predictions as ``pred``.

    Only bars after the last training timestamp are kept: scoring the model on data it was fit
    on would flatter it. ``pred[t]`` uses the feature window ending at t (``predict_frame``).
    """
    from deeptrade.train.bundle import load_bundle
    from deeptrade.train.stage import features_name, model_name

    model = store.require(
        "models",
        model_name(cfg, [symbol]),
        hint="Train it first: deeptrade run train symbol=" + symbol,
    )
    bundle = load_bundle(model.path / "bundle")
    feats = read_partition(
        store.require("features", features_name(cfg)).path, cfg.timeframe, symbol
    )
    pred = bundle.predict_frame(feats).reindex(pd.DatetimeIndex(df["timestamp"]))
    last = pd.Timestamp(bundle.meta["train_window"]["last"])
    keep = (df["timestamp"] > last).to_numpy()
    return df.assign(pred=pred.to_numpy())[keep].reset_index(drop=True)


def input_hashes(cfg: DeeptradeConfig, store: ArtifactStore, bars: Artifact) -> dict[str, str]:
    """Bars, plus for model-driven runs each symbol's model (a retrained model reruns it)."""
    inputs = {bars.ref: bars.manifest.content_hash}
    if cfg.strategy.name == "predictions":
        from deeptrade.train.stage import model_name

        for sym in [cfg.symbol] if cfg.symbol else []:
            model = store.get("models", model_name(cfg, [sym]))
            inputs[f"models/{model_name(cfg, [sym])}"] = (
                model.manifest.content_hash if model else ""
            )
    return inputs


def stage_key(store: ArtifactStore, cfg: DeeptradeConfig, inputs: dict[str, str]) -> str:
    section = {
        "strategy": to_container(cfg.strategy),
        "backtest": {k: v for k, v in to_container(cfg.backtest).items() if k != "threads"},
        "symbol": cfg.symbol,
        "timeframe": cfg.timeframe,
    }
    return store.stage_key(section, inputs, STAGE_VERSION)


def up_to_date(cfg: DeeptradeConfig, store: ArtifactStore) -> bool:
    bars = store.get("bars", cfg.data.name)
    if bars is None:
        return False
    key = stage_key(store, cfg, input_hashes(cfg, store, bars))
    return store.up_to_date("backtests", artifact_name(cfg), key) is not None


def _threads(cfg: DeeptradeConfig) -> int | None:
    return cfg.backtest.threads or None


def run_backtest_stage(cfg: DeeptradeConfig, store: ArtifactStore) -> dict[str, Any]:
    from deeptrade.backtest.sweep import add_deflated_sharpe, grid_chunks, merge_results, sweep

    bt = cfg.backtest
    bars = store.require(
        "bars", cfg.data.name, hint="Run the ingest job first: deeptrade run ingest"
    )
    name = artifact_name(cfg)
    inputs = input_hashes(cfg, store, bars)
    key = stage_key(store, cfg, inputs)
    if not 0 <= bt.chunk < bt.chunks:
        raise ValueError(f"backtest.chunk={bt.chunk} must be in [0, backtest.chunks={bt.chunks})")
    if bt.chunks > 1 and not bt.merge:
        part = f"{name}/part-{bt.chunk}-of-{bt.chunks}"
        if not cfg.run.force and (art := store.up_to_date("backtests", part, key)):
            return {"artifact": art.ref, "skipped": True}
        grid = grid_chunks(_grid(cfg), bt.chunks)[bt.chunk]
        table = sweep(
            _bars(cfg, bars, store), cfg.strategy.name, grid, bt.costs, threads=_threads(cfg)
        ).table
        with store.write(
            "backtests",
            part,
            key=key,
            config=to_container(cfg),
            inputs=inputs,
            meta={"combos": len(grid), "rows": len(table)},
        ) as tmp:
            write_frame(tmp / "table.parquet", table)
        return {"artifact": f"backtests/{part}", "skipped": False, "rows": len(table)}
    if bt.merge:
        parts = [
            store.require(
                "backtests",
                f"{name}/part-{i}-of-{bt.chunks}",
                hint="Run the chunk array first (backtest.chunk=range(0,N))",
            )
            for i in range(bt.chunks)
        ]
        table = add_deflated_sharpe(
            merge_results([pd.read_parquet(p.path / "table.parquet") for p in parts])
        )
        with store.write(
            "backtests",
            f"{name}/merged",
            key=key,
            config=to_container(cfg),
            inputs={p.ref: p.manifest.content_hash for p in parts},
            meta={"rows": len(table)},
        ) as tmp:
            write_frame(tmp / "table.parquet", table)
        return {"artifact": f"backtests/{name}/merged", "skipped": False, "rows": len(table)}

    if not cfg.run.force and (art := store.up_to_date("backtests", name, key)):
        return {"artifact": art.ref, "skipped": True, "summary": art.manifest.meta.get("summary")}
    return _walk_forward(cfg, store, bars, name, key, inputs)


def _walk_forward(
    cfg: DeeptradeConfig,
    store: ArtifactStore,
    bars: Artifact,
    name: str,
    key: str,
    inputs: dict[str, str],
) -> dict[str, Any]:
    from deeptrade.backtest.metrics import pbo_cscv
    from deeptrade.backtest.report import write_report
    from deeptrade.backtest.sweep import add_deflated_sharpe, sweep
    from deeptrade.backtest.walkforward import make_windows, walk_forward

    bt = cfg.backtest
    grid = _grid(cfg)
    frames = _bars(cfg, bars, store)
    full = sweep(
        frames, cfg.strategy.name, grid, bt.costs, threads=_threads(cfg), keep_returns=True
    )
    table = add_deflated_sharpe(full.table)
    summary: dict[str, Any] = {"combos": len(grid), "symbols": sorted(frames), "oos": {}, "pbo": {}}
    windows, equity, trades, results = [], [], [], {}
    for sym, df in frames.items():
        wins = make_windows(
            len(df),
            bt.train_bars,
            bt.test_bars,
            bt.test_bars,
            anchored=bt.anchored,
            purge=bt.purge,
            embargo=bt.embargo,
        )
        if not wins:
            raise ValueError(
                f"backtest: {sym} has {len(df)} bars, too few for one window of "
                f"train_bars={bt.train_bars} + test_bars={bt.test_bars}; shorten them"
            )
        wf = walk_forward(
            df,
            cfg.strategy.name,
            grid,
            wins,
            bt.costs,
            metric=cfg.strategy.metric,
            threads=_threads(cfg),
        )
        results[sym] = wf
        windows.append(wf.windows.assign(symbol=sym))
        equity.append(
            pd.DataFrame(
                {"timestamp": wf.equity.index, "equity": wf.equity.to_numpy(), "symbol": sym}
            )
        )
        trades.append(wf.trades.assign(symbol=sym))
        summary["oos"][sym] = {k: float(v) for k, v in wf.metrics.items()}
        if full.returns is not None and len(grid) > 1:
            rets = full.returns[sym]
            if rets.shape[0] >= 16:
                summary["pbo"][sym] = float(
                    pbo_cscv(rets, n_blocks=min(16, rets.shape[0] // 2 * 2)).pbo
                )
    first = next(iter(results))
    with store.write(
        "backtests",
        name,
        key=key,
        config=to_container(cfg),
        inputs=inputs,
        meta={"summary": summary},
    ) as tmp:
        write_frame(tmp / "table.parquet", table)
        write_frame(tmp / "windows.parquet", pd.concat(windows, ignore_index=True))
        write_frame(tmp / "equity.parquet", pd.concat(equity, ignore_index=True))
        write_frame(tmp / "trades.parquet", pd.concat(trades, ignore_index=True))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
        axes = [c for c in grid.columns if grid[c].nunique() > 1]
        write_report(
            tmp / "report.html",
            title=f"Walk-forward {cfg.strategy.name} on {first}",
            walk_forward=results[first],
            sweep_table=table[table["symbol"] == first],
            heatmap=(axes[0], axes[1]) if len(axes) >= 2 else None,
            config=bt.costs,
            extra={"pbo": summary["pbo"].get(first, np.nan)},
        )
    return {"artifact": f"backtests/{name}", "skipped": False, "summary": summary}
