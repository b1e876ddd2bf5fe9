"""Ingest from files and from the Alpaca API (a real alpaca-py client against a local fake)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from deeptrade.data.sources import load_sample
from deeptrade.io import MANIFEST, ArtifactStore
from deeptrade.io.tables import read_partition
from deeptrade.launch.task import run_job
from tests.fakes.alpaca_data import add_bars_routes
from tests.fakes.server import FakeServer


def _write_csv(path: Path, df: pd.DataFrame) -> Path:
    out = df.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)
    return path


def test_ingest_files_and_bad_file_leaves_store_untouched(store_root: Path, tmp_path: Path) -> None:
    aapl = load_sample("daily")["AAPL"].iloc[-300:].reset_index(drop=True)
    good = _write_csv(tmp_path / "aapl.csv", aapl)
    out = run_job(
        "ingest",
        [
            "data.source=files",
            f"data.files=[{good}]",
            "data.name=files",
            "data.validation.calendar=XNYS",
        ],
    )
    assert out["rows"] == {"1d/AAPL": 300}
    bars = ArtifactStore(store_root).require("bars", "files")

    bad = aapl.copy()
    bad.loc[120, "volume"] = -5.0
    bad_path = _write_csv(tmp_path / "msft.csv", bad)
    before = sorted(p.name for p in (store_root / "bars").iterdir())
    with pytest.raises(ValueError) as e:
        run_job(
            "ingest",
            [
                "data.source=files",
                f"data.files=[{bad_path}]",
                "data.name=bad",
                "data.validation.negative_volume=fail",
            ],
        )
    msg = str(e.value)
    assert "msft.csv" in msg and "negative_volume" in msg and "row 120" in msg
    assert "data.validation.negative_volume=drop" in msg
    assert sorted(p.name for p in (store_root / "bars").iterdir()) == before
    assert ArtifactStore(store_root).get("bars", "bad") is None
    assert ArtifactStore(store_root).require("bars", "files").manifest == bars.manifest

    truncated = tmp_path / "ibm.parquet"
    aapl.to_parquet(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"ibm\.parquet"):
        run_job("ingest", ["data.source=files", f"data.files=[{truncated}]", "data.name=trunc"])
    assert ArtifactStore(store_root).get("bars", "trunc") is None


def test_ingest_from_alpaca_fake_keeps_keys_out_of_artifacts(
    store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daily = load_sample("daily")
    frames = {
        s: daily[s][(daily[s].timestamp >= "2012-01-01") & (daily[s].timestamp < "2012-07-01")]
        for s in ("AAPL", "MSFT")
    }
    for f in frames.values():  # Alpaca always sends vwap and trade count
        f["vwap"] = (f["high"] + f["low"] + f["close"]) / 3
        f["trade_count"] = 1000
    monkeypatch.setenv("APCA_API_KEY_ID", "KEYID-SHOULD-NOT-LEAK")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "SECRET-SHOULD-NOT-LEAK")
    with FakeServer() as srv:
        add_bars_routes(
            srv,
            {s: f.reset_index(drop=True) for s, f in frames.items()},
            timeframe="1Day",
            max_page_size=40,
        )
        out = run_job(
            "ingest",
            [
                "data.source=alpaca",
                "data.name=alpaca",
                "data.symbols=[AAPL,MSFT]",
                "data.start=2012-01-01",
                "data.end=2012-07-01",
                "data.source_timeframe=1d",
                f"data.alpaca.url={srv.url}",
                "data.validation.calendar=XNYS",
            ],
        )
        pages = [r for r in srv.log if r.path == "/v2/stocks/bars"]
    assert out["rows"] == {"1d/AAPL": len(frames["AAPL"]), "1d/MSFT": len(frames["MSFT"])}
    assert len(pages) > 2  # paginated
    art = ArtifactStore(store_root).require("bars", "alpaca")
    got = read_partition(art.path, "1d", "AAPL")
    assert got["close"].tolist() == frames["AAPL"]["close"].tolist()
    for path in art.path.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert b"SHOULD-NOT-LEAK" not in blob, path
    assert "SHOULD-NOT-LEAK" not in (art.path / MANIFEST).read_text()
    assert os.environ["APCA_API_KEY_ID"]  # still only in the environment
