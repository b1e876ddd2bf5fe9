"""Ingest and features jobs end to end on real packaged data (smoke-sized)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from deeptrade.io import ArtifactStore
from deeptrade.io.tables import list_partitions, read_partition
from deeptrade.launch.pipeline import run_pipeline
from deeptrade.launch.task import run_job
from tests.conftest import REPO

SMOKE = ["experiment=smoke"]


def test_ingest_then_features_write_artifacts_and_skip_when_unchanged(store_root: Path) -> None:
    first = run_job("ingest", SMOKE)
    assert first["skipped"] is False
    store = ArtifactStore(store_root)
    bars = store.require("bars", "sample")
    assert list_partitions(bars.path) == [("1d", "AAPL"), ("1d", "MSFT"), ("1d", "SPX")]
    df = read_partition(bars.path, "1d", "AAPL")
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["timestamp"].min().year == 2010 and df["timestamp"].max().year == 2012
    assert run_job("ingest", SMOKE)["skipped"] is True
    assert run_job("ingest", [*SMOKE, "run.force=true"])["skipped"] is False

    out = run_job("features", [*SMOKE, "features.benchmark=SPX", "features.label_horizon=5"])
    feats = store.require("features", "sample-default")
    assert out["artifact"] == "features/sample-default"
    assert feats.manifest.meta["label_horizon"] == 5
    assert feats.manifest.inputs == {"bars/sample": bars.manifest.content_hash}
    f = read_partition(feats.path, "1d", "MSFT")
    assert len(f) == len(read_partition(bars.path, "1d", "MSFT"))
    assert f["label"].isna().sum() == 5  # the last h bars have no forward return
    assert f["warmup"].iloc[0] and not f["warmup"].iloc[-1]
    assert np.isfinite(
        f.loc[~f["warmup"]].drop(columns=["timestamp", "warmup", "label"]).to_numpy()
    ).all()
    feats.verify()


PIPELINE = [
    *SMOKE,
    "symbol=AAPL",
    "strategy=model",
    "backtest.train_bars=60",
    "backtest.test_bars=30",
    "release.name=smoke",
    "release.min_oos_sharpe=-10",
    "release.max_drawdown=1",
    "release.min_trades=0",
]


def test_pipeline_runs_every_stage_and_a_rerun_submits_nothing(store_root: Path) -> None:
    record, rows = run_pipeline(PIPELINE)
    assert record is not None
    assert [r["stage"] for r in rows] == ["ingest", "features", "train", "backtest", "publish"]
    assert all(r["state"] == "COMPLETED" for r in rows), rows
    assert ArtifactStore(store_root).get("releases", "smoke") is not None
    record, rows = run_pipeline(PIPELINE)
    assert record is None and all(r["state"] == "SKIPPED" for r in rows)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "deeptrade"), "pipeline", *PIPELINE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "nothing submitted" in out.stdout, out.stdout + out.stderr
    # A change downstream reruns only that stage and what depends on it.
    _, rows = run_pipeline([*PIPELINE, "backtest.test_bars=40"])
    assert [r["state"] for r in rows] == ["SKIPPED", "SKIPPED", "SKIPPED", "COMPLETED", "COMPLETED"]


def test_bad_benchmark_fails_with_how_to_fix(store_root: Path) -> None:
    run_job("ingest", SMOKE)
    try:
        run_job("features", [*SMOKE, "features.benchmark=NOPE"])
    except ValueError as e:
        assert "features.benchmark='NOPE'" in str(e) and "data.symbols" in str(e)
    else:
        raise AssertionError("expected a ValueError")
    assert ArtifactStore(store_root).get("features", "sample-default") is None
