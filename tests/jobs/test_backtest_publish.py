"""Backtest, publish and the live job's release check, end to end on real packaged data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from deeptrade.io import ArtifactStore
from deeptrade.launch.task import run_job

SMOKE = ["experiment=smoke"]
MODEL = [*SMOKE, "symbol=AAPL", "strategy=model", "backtest.train_bars=60", "backtest.test_bars=30"]


def test_walk_forward_and_chunked_sweep_merge(store_root: Path) -> None:
    run_job("ingest", SMOKE)
    out = run_job(
        "backtest", [*SMOKE, "symbol=SPX", "backtest.train_bars=250", "backtest.test_bars=60"]
    )
    store = ArtifactStore(store_root)
    art = store.require("backtests", "sample-ma_cross-default")
    windows = pd.read_parquet(art.path / "windows.parquet")
    assert len(windows) >= 5 and {"param_fast", "param_slow"} <= set(windows.columns)
    assert "SPX" in out["summary"]["oos"] and 0 <= out["summary"]["pbo"]["SPX"] <= 1
    html = (art.path / "report.html").read_text()
    assert "<img" in html and "data:image/png;base64" in html

    chunked = [*SMOKE, "backtest.chunks=3", "backtest.name=grid"]
    for i in range(3):
        run_job("backtest", [*chunked, f"backtest.chunk={i}"])
    merged = run_job("backtest", [*chunked, "backtest.merge=true"])
    table = pd.read_parquet(
        store.require("backtests", "sample-ma_cross-grid/merged").path / "table.parquet"
    )
    # conf/strategy/ma_cross.yaml: fast x slow, keeping fast < slow only
    combos = sum(f < s for f in (5, 10, 20, 30, 50) for s in (50, 100, 150, 200))
    assert merged["rows"] == len(table) == combos * 3  # x 3 smoke symbols
    assert "dsr" in table.columns and table["combo"].nunique() == combos


def test_publish_gates_and_the_live_job_refuses_a_tampered_release(store_root: Path) -> None:
    run_job("ingest", SMOKE)
    run_job("features", SMOKE)
    run_job("train", [*SMOKE, "symbol=AAPL"])
    run_job("backtest", MODEL)
    store = ArtifactStore(store_root)

    with pytest.raises(ValueError, match="refusing to publish"):
        run_job("publish", [*MODEL, "release.name=strict", "release.min_oos_sharpe=10"])
    assert store.get("releases", "strict") is None

    out = run_job(
        "publish",
        [
            *MODEL,
            "release.name=v1",
            "release.min_oos_sharpe=-10",
            "release.max_drawdown=1",
            "release.min_trades=0",
        ],
    )
    rel = store.require("releases", "v1")
    assert rel.manifest.meta["feature_spec_hash"] and out["strategy"]["name"] == "predictions"
    assert (rel.path / "model" / "bundle.json").is_file()

    (rel.path / "strategy.json").write_text('{"params": {"threshold": -1}}')
    with pytest.raises(ValueError, match=r"(?i)hash|modified|tamper"):
        run_job("live", ["live.release=v1", "live.broker.mode=dry_run"])
