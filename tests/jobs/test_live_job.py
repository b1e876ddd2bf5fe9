"""The live job on a real published release against the fake Alpaca broker (paper mode)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from deeptrade.config.compose import load
from deeptrade.data.sources import load_sample
from deeptrade.io import ArtifactStore
from deeptrade.launch.pipeline import run_pipeline
from deeptrade.live.run import build_engine, live_status
from tests.fakes.alpaca_trading import FakeAlpaca
from tests.fakes.server import FakeServer

PIPELINE = [
    "experiment=smoke",
    "symbol=AAPL",
    "strategy=model",
    "backtest.train_bars=60",
    "backtest.test_bars=30",
    "release.name=live",
    "release.min_oos_sharpe=-10",
    "release.max_drawdown=1",
    "release.min_trades=0",
]


def test_live_cycle_on_a_published_release(
    store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, rows = run_pipeline(PIPELINE)
    assert all(r["state"] == "COMPLETED" for r in rows), rows
    aapl = load_sample("daily")["AAPL"]
    bars = aapl[(aapl.timestamp >= "2011-06-01") & (aapl.timestamp < "2013-01-01")].reset_index(
        drop=True
    )
    bars["vwap"] = (bars["high"] + bars["low"] + bars["close"]) / 3  # Alpaca always sends these
    bars["trade_count"] = 1000
    now = (bars["timestamp"].iloc[-1] + dt.timedelta(days=1, hours=15)).to_pydatetime()
    monkeypatch.setenv("APCA_API_KEY_ID", "PKFAKEKEYID0123456789")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "fakeSecretKey/abcdefghijklmnopqrstuvwxyz01")
    with FakeServer() as srv:
        fake = FakeAlpaca(
            srv,
            key_id="PKFAKEKEYID0123456789",
            secret_key="fakeSecretKey/abcdefghijklmnopqrstuvwxyz01",
            prices={"AAPL": float(bars["close"].iloc[-1])},
            bars={"AAPL": bars},
            timeframe="1Day",
        )
        cfg = load(
            "live",
            [
                "live.release=live",
                f"live.broker.trading_url={srv.url}",
                f"live.broker.data_url={srv.url}",
                "live.fill_timeout_s=1",
                "live.poll_interval_s=0.01",
                "live.max_release_age_days=3650",
            ],
        )
        engine = build_engine(cfg, ArtifactStore(store_root))
        engine.reconcile()
        report = engine.run_cycle(now)
        engine.journal.close()
    assert report.status == "ok" and report.targets.keys() == {"AAPL"}, report
    assert report.preds["AAPL"] == report.preds["AAPL"]  # a real prediction, not NaN
    # One closed daily bar -> at most one order, for the release's symbol only.
    assert len(fake.accepted) <= 1 and all(o["symbol"] == "AAPL" for o in fake.accepted)
    status = live_status(ArtifactStore(store_root), "live")
    assert status["cycles"], status
