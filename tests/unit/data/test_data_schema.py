"""The bar contract's constants and cheap checks."""

from __future__ import annotations

import pandas as pd
import pytest

from deeptrade.data.schema import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TIMEFRAMES,
    check_bars,
    empty_bars,
    known_at,
    timeframe_delta,
)


def test_constants():
    assert REQUIRED_COLUMNS == ("timestamp", "open", "high", "low", "close", "volume")
    assert OPTIONAL_COLUMNS == ("vwap", "trade_count")
    assert set(TIMEFRAMES) == {"1m", "5m", "15m", "1h", "1d"}
    assert timeframe_delta("1h") == pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match=r"unknown timeframe '1w': use one of \['1m', '5m'"):
        timeframe_delta("1w")


def test_known_at_is_bar_end(bars):
    df = bars(3)
    assert (known_at(df["timestamp"], "5m") == df["timestamp"] + pd.Timedelta(minutes=5)).all()


def test_empty_bars_meets_the_contract():
    df = empty_bars(optional=("vwap",))
    check_bars(df)
    assert list(df.columns) == [*REQUIRED_COLUMNS, "vwap"]


def test_check_bars_names_the_problem(bars):
    check_bars(bars())
    with pytest.raises(ValueError, match=r"features: missing column\(s\) \['volume'\]"):
        check_bars(bars().drop(columns="volume"), where="features")
    bad = bars()
    bad["close"] = bad["close"].astype("float32")
    with pytest.raises(ValueError, match=r"column .close. has dtype float32.*validate_bars"):
        check_bars(bad)
    bad = bars()
    bad["timestamp"] = bad["timestamp"].astype("datetime64[us, UTC]")
    with pytest.raises(ValueError, match="column 'timestamp' has dtype datetime64\\[us, UTC\\]"):
        check_bars(bad)
    with pytest.raises(ValueError, match="sorted ascending and unique"):
        check_bars(bars().iloc[::-1])
