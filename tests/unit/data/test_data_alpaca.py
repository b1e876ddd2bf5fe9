"""AlpacaBarsSource (real alpaca-py client) against a real local HTTP server (tests/fakes)."""

from __future__ import annotations

import logging
import math
import time

import pandas as pd
import pytest

from deeptrade.data.http_guard import DataSourceError
from deeptrade.data.sources import AlpacaBarsConfig, AlpacaBarsSource
from tests.fakes.alpaca_data import add_bars_routes
from tests.fakes.server import FakeServer, Fault

KEY, SECRET = "PKTESTKEY123", "s3cr3t-never-logged"


def _bars(symbol_seed: int, n: int, start: str, freq: str = "1min") -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC", unit="ns")
    base = 100.0 + symbol_seed + pd.Series(range(n), dtype="float64") / 100
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": base,
            "high": base + 0.5,
            "low": base - 0.5,
            "close": base + 0.1,
            "volume": pd.Series(range(1, n + 1), dtype="float64") * 10,
            "vwap": base + 0.05,
            "trade_count": pd.Series(range(1, n + 1), dtype="int64"),
        }
    )


BOOK = {
    "AAPL": _bars(1, 40, "2024-01-02 14:30"),
    "MSFT": _bars(2, 40, "2024-01-02 14:30"),
    "SPY": _bars(3, 37, "2024-01-02 14:45"),
}


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def _source(srv, sleeps=None, **cfg):
    config = AlpacaBarsConfig(url=srv.url, requests_per_minute=60_000, **cfg)
    sleep = sleeps.append if sleeps is not None else time.sleep
    return AlpacaBarsSource(api_key=KEY, secret_key=SECRET, config=config, sleep=sleep)


def _bar_requests(srv):
    return [r for r in srv.log if r.path == "/v2/stocks/bars"]


def test_pagination_returns_every_bar_exactly_once(server):
    add_bars_routes(server, BOOK, max_page_size=7, api_key=KEY, secret_key=SECRET)
    out = _source(server).fetch(
        ["AAPL", "MSFT", "SPY"], timeframe="1m", start="2024-01-02", end="2024-01-03"
    )
    assert sorted(out) == ["AAPL", "MSFT", "SPY"]
    for sym, df in BOOK.items():
        pd.testing.assert_frame_equal(out[sym], df)
    reqs = _bar_requests(server)
    assert len(reqs) == math.ceil(117 / 7)  # pages cut across symbols
    assert reqs[0].arg("page_token") is None and all(r.arg("page_token") for r in reqs[1:])
    assert {r.arg("feed") for r in reqs} == {"iex"} and {r.arg("timeframe") for r in reqs} == {
        "1Min"
    }


def test_windows_never_share_a_bar(server):
    # One bar every 6 hours, several exactly at the midnight window boundaries.
    book = {"AAPL": _bars(1, 16, "2024-01-01 00:00", freq="6h")}
    add_bars_routes(server, book, max_page_size=3)
    out = _source(server, window_days=1).fetch(
        ["AAPL"], timeframe="1m", start="2024-01-01", end="2024-01-05"
    )
    pd.testing.assert_frame_equal(out["AAPL"], book["AAPL"])
    # end is exclusive: a bar at exactly `end` is not returned
    out = _source(server, window_days=1).fetch(
        ["AAPL"], timeframe="1m", start="2024-01-01", end="2024-01-02"
    )
    assert out["AAPL"]["timestamp"].iloc[-1] == pd.Timestamp("2024-01-01 18:00", tz="UTC")


def test_daily_bars_are_relabelled_to_utc_dates(server):
    days = pd.bdate_range("2024-03-01", periods=10, tz="UTC").as_unit("ns")  # spans DST start
    book = _bars(1, 10, "2024-03-01", freq="1D")
    book["timestamp"] = days
    add_bars_routes(server, {"SPY": book}, timeframe="1Day")
    out = _source(server).fetch(["SPY"], timeframe="1d", start="2024-03-01", end="2024-03-20")
    pd.testing.assert_frame_equal(out["SPY"], book)
    assert _bar_requests(server)[0].arg("timeframe") == "1Day"


def test_symbols_without_bars_get_empty_frames(server):
    add_bars_routes(server, BOOK)
    out = _source(server).fetch(
        ["AAPL", "NOPE"], timeframe="1m", start="2024-01-02", end="2024-01-03"
    )
    assert len(out["AAPL"]) == 40 and out["NOPE"].empty
    assert list(out["NOPE"].columns) == list(BOOK["AAPL"].columns)


def test_429_500_and_dropped_connections_are_retried(server):
    add_bars_routes(server, BOOK, max_page_size=50)
    server.fault("GET", "/v2/stocks/bars", Fault(status=429))
    server.fault("GET", "/v2/stocks/bars", Fault(status=500))
    server.fault("GET", "/v2/stocks/bars", Fault(drop=True))
    server.fault("GET", "/v2/stocks/bars", Fault(status=503))
    sleeps: list[float] = []
    out = _source(server, sleeps, backoff_initial_s=1.0, backoff_max_s=5.0).fetch(
        ["AAPL", "MSFT", "SPY"], timeframe="1m", start="2024-01-02", end="2024-01-03"
    )
    assert sum(map(len, out.values())) == 117
    assert len(_bar_requests(server)) == 4 + 3  # 4 failed attempts + 3 pages
    # exponential backoff with jitter in [0.5, 1] x (1, 2, 4, 8) capped at 5
    for delay, base in zip(sleeps, (1, 2, 4, 5), strict=True):
        assert base * 0.5 <= delay <= base


def test_retries_are_bounded(server):
    add_bars_routes(server, BOOK)
    server.fault("GET", "/v2/stocks/bars", Fault(status=503, times=100))
    sleeps: list[float] = []
    with pytest.raises(DataSourceError, match=r"failed after 3 attempt\(s\): last answer HTTP 503"):
        _source(server, sleeps, max_retries=2).fetch(
            ["AAPL"], timeframe="1m", start="2024-01-02", end="2024-01-03"
        )
    assert len(sleeps) == 2 and len(_bar_requests(server)) == 3


def test_a_stalled_server_times_out_quickly(server):
    add_bars_routes(server, BOOK)
    server.fault("GET", "/v2/stocks/bars", Fault(stall_s=5.0, times=2))
    t0 = time.monotonic()
    with pytest.raises(DataSourceError, match=r"failed after 2 attempt\(s\): ReadTimeout"):
        _source(server, read_timeout_s=0.3, max_retries=1, backoff_initial_s=0.05).fetch(
            ["AAPL"], timeframe="1m", start="2024-01-02", end="2024-01-03"
        )
    assert time.monotonic() - t0 < 2.0


def test_rate_limiter_spaces_requests(server):
    add_bars_routes(server, BOOK, max_page_size=30)
    config = AlpacaBarsConfig(url=server.url, requests_per_minute=600)  # one per 0.1 s
    source = AlpacaBarsSource(api_key=KEY, secret_key=SECRET, config=config)
    t0 = time.monotonic()
    source.fetch(["AAPL", "MSFT", "SPY"], timeframe="1m", start="2024-01-02", end="2024-01-03")
    elapsed = time.monotonic() - t0
    assert len(_bar_requests(server)) == 4
    assert elapsed >= 0.3 - 0.02  # first request at once, then three 0.1 s waits


def test_keys_are_never_logged_or_shown(server, caplog):
    add_bars_routes(server, BOOK, api_key=KEY, secret_key="the-right-secret")
    caplog.set_level(logging.DEBUG)
    source = _source(server)
    assert SECRET not in repr(source) and KEY not in repr(source)
    with pytest.raises(ValueError, match=r"Alpaca refused.*HTTP 401.*check the API keys") as err:
        source.fetch(["AAPL"], timeframe="1m", start="2024-01-02", end="2024-01-03")
    assert SECRET not in str(err.value) and SECRET not in caplog.text
    assert server.log[0].headers["apca-api-secret-key"] == SECRET  # it was sent, only there


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="api_key and secret_key are both required"):
        AlpacaBarsSource(api_key="", secret_key="x")
    with pytest.raises(ValueError, match="alpaca feed 'nasdaq'"):
        AlpacaBarsConfig(feed="nasdaq")
    source = AlpacaBarsSource(
        api_key=KEY, secret_key=SECRET, config=AlpacaBarsConfig(url="http://127.0.0.1:9")
    )
    with pytest.raises(ValueError, match="symbols must be a list"):
        source.fetch("AAPL", timeframe="1m", start="2024-01-02", end="2024-01-03")
    with pytest.raises(ValueError, match="unknown timeframe '2m'"):
        source.fetch(["AAPL"], timeframe="2m", start="2024-01-02", end="2024-01-03")
    with pytest.raises(ValueError, match="must be before end"):
        source.fetch(["AAPL"], timeframe="1m", start="2024-01-03", end="2024-01-02")


def test_fake_bars_parse_into_alpaca_models(server):
    """The fake's JSON matches alpaca-py's own models (not only our raw-data path)."""
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

    add_bars_routes(server, BOOK, max_page_size=25)
    client = StockHistoricalDataClient(KEY, SECRET, url_override=server.url)
    barset = client.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["AAPL", "SPY"],
            timeframe=TimeFrame.Minute,
            start=pd.Timestamp("2024-01-02", tz="UTC").to_pydatetime(),
        )
    )
    assert len(barset.data["AAPL"]) == 40 and len(barset.data["SPY"]) == 37
    bar = barset.data["SPY"][0]
    assert bar.timestamp == pd.Timestamp("2024-01-02 14:45", tz="UTC")
    assert bar.vwap == BOOK["SPY"]["vwap"].iloc[0] and bar.trade_count == 1
