"""The packaged samples: documented symbols and dates, and they validate cleanly by default."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from deeptrade.data.schema import check_bars
from deeptrade.data.sources import SAMPLES, load_sample
from deeptrade.data.validate import ValidationConfig, validate_bars


@pytest.fixture(scope="module")
def daily():
    return load_sample("daily")


@pytest.fixture(scope="module")
def intraday():
    return load_sample("intraday")


DAILY_SPANS = {
    "SPX": ("1999-01-04", "2018-12-31", 5031),
    "NDX": ("1999-01-04", "2018-12-31", 5031),
    "AAPL": ("2000-03-01", "2013-03-01", 3270),
    "IBM": ("2000-03-01", "2013-03-01", 3270),
    "MSFT": ("2000-03-01", "2013-03-01", 3270),
    "GOOG": ("2004-08-19", "2013-03-01", 2148),
}


def test_daily_symbols_and_dates(daily):
    assert tuple(daily) == SAMPLES["daily"].symbols
    for sym, (first, last, n) in DAILY_SPANS.items():
        df = daily[sym]
        assert df["timestamp"].iloc[0] == pd.Timestamp(first, tz="UTC"), sym
        assert df["timestamp"].iloc[-1] == pd.Timestamp(last, tz="UTC"), sym
        assert len(df) == n, sym
        assert list(df.columns) == ["timestamp", "open", "high", "low", "close", "volume"]


def test_daily_prices_are_raw_ohlc(daily):
    # 2013-03-01 AAPL: unadjusted close 430.47 (adj_close would be ~57).
    aapl = daily["AAPL"].set_index("timestamp")
    assert aapl.loc[pd.Timestamp("2013-03-01", tz="UTC"), "close"] == pytest.approx(430.47)


# Golden numbers taken from arch.data.sp500.load() / nasdaq.load() (arch 8): the sample reads
# the same files directly, because importing arch takes seconds.
ARCH_GOLDEN = {
    "SPX": (1228.099976, 2506.850098, 1003.349976, 7524192.980267999, 14865656850000),
    "NDX": (2208.050049, 6635.279785, 1844.25, 16141030.725326002, 9425797200000),
}


def test_index_sample_equals_arch_loader(daily):
    for sym, (first, last, crash, close_sum, volume_sum) in ARCH_GOLDEN.items():
        df = daily[sym].set_index("timestamp")
        assert df["close"].iloc[0] == first and df["close"].iloc[-1] == last
        assert df.loc[pd.Timestamp("2008-10-13", tz="UTC"), "close"] == crash
        assert df["close"].sum() == pytest.approx(close_sum, rel=1e-12)
        assert df["volume"].sum() == volume_sum


def test_daily_sample_validates_without_losing_a_row(daily):
    cfg = ValidationConfig(calendar=SAMPLES["daily"].calendar)
    outliers = {}
    for sym, df in daily.items():
        res = validate_bars(df, symbol=sym, timeframe="1d", source="sample:daily", config=cfg)
        rep = res.report
        json.dumps(rep)
        check_bars(res.clean)
        assert rep["rows_out"] == rep["rows_in"] == len(df), sym
        assert rep["gaps"]["missing"] == 0, sym  # every XNYS session is present
        counts = {r: v["count"] for r, v in rep["rules"].items() if v["count"]}
        outliers[sym] = [e["timestamp"][:10] for e in rep["rules"]["return_outlier"]["examples"]]
        assert set(counts) <= {"return_outlier"}, (sym, counts)
    # Unadjusted 2:1 splits are the only returns beyond 20 robust sigmas: reported, kept.
    assert outliers == {
        "SPX": [],
        "NDX": [],
        "AAPL": ["2005-02-28"],
        "IBM": [],
        "MSFT": ["2003-02-18"],
        "GOOG": [],
    }


def test_intraday_sample_bars(intraday):
    es = intraday["ES"]
    assert tuple(intraday) == ("ES",)
    assert es["timestamp"].iloc[0] == pd.Timestamp("2013-09-01 22:00", tz="UTC")  # 17:00 CT
    assert es["timestamp"].iloc[-1] == pd.Timestamp("2013-09-03 18:51", tz="UTC")
    assert len(es) == 2264
    assert es["trade_count"].sum() == 500_000
    assert es["volume"].sum() == 1_844_058.0
    assert ((es["low"] <= es["vwap"]) & (es["vwap"] <= es["high"])).all()


def test_intraday_sample_validates_with_gaps_reported(intraday):
    es = intraday["ES"]
    res = validate_bars(
        es,
        symbol="ES",
        timeframe="1m",
        source="sample:intraday",
        config=ValidationConfig(calendar=SAMPLES["intraday"].calendar),
    )
    rep = res.report
    assert rep["rows_out"] == rep["rows_in"] == 2264
    assert {r for r, v in rep["rules"].items() if v["count"]} == {"calendar_gap"}
    assert rep["gaps"]["missing"] == 128
    # Labor Day: CMES says the session runs to 12:00 CT, the last trade is at 10:29 CT.
    assert rep["gaps"]["largest"][0] == {
        "start": "2013-09-02T15:30:00+00:00",
        "end": "2013-09-02T16:59:00+00:00",
        "bars": 90,
    }
    # The default config (no calendar) has nothing to report.
    plain = validate_bars(es, symbol="ES", timeframe="1m", source="sample:intraday", config=None)
    assert all(v["count"] == 0 for v in plain.report["rules"].values())


def test_unknown_sample():
    with pytest.raises(
        ValueError, match=r"unknown sample dataset 'hourly'.*\['daily', 'intraday'\]"
    ):
        load_sample("hourly")
