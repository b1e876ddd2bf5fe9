"""Bar fixtures for the backtest tests: real daily bars from packaged data, and small synthetic
series for property tests. All follow the bar contract (``timestamp`` UTC, float64 OHLCV)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _frame(index, o, h, lo, c, v) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(index).as_unit("ns").tz_localize("UTC"),
            "open": np.asarray(o, dtype=np.float64),
            "high": np.asarray(h, dtype=np.float64),
            "low": np.asarray(lo, dtype=np.float64),
            "close": np.asarray(c, dtype=np.float64),
            "volume": np.asarray(v, dtype=np.float64),
        }
    )


def spx_bars(n: int | None = None) -> pd.DataFrame:
    """S&P 500 daily bars 1999-2018 (``arch.data.sp500``); the last ``n`` when given."""
    from arch.data import sp500

    d = sp500.load()
    if n is not None:
        d = d.iloc[-n:]
    return _frame(d.index, d["Open"], d["High"], d["Low"], d["Close"], d["Volume"])


def stock_bars(symbol: str = "MSFT") -> pd.DataFrame:
    """Daily bars of one ``bokeh_sampledata.stocks`` ticker (2000-2013)."""
    from bokeh_sampledata import stocks

    d = getattr(stocks, symbol)
    idx = pd.to_datetime(d["date"])
    return _frame(idx, d["open"], d["high"], d["low"], d["close"], d["volume"])


def synthetic_bars(n: int = 300, seed: int = 0, vol: float = 0.02) -> pd.DataFrame:
    """A random walk with consistent OHLC (open/high/low around the closes)."""
    rng = np.random.default_rng(seed)
    c = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    o = np.r_[c[0], c[:-1]] * (1 + rng.normal(0.0, vol / 4, n))
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0.0, vol / 2, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0.0, vol / 2, n)))
    v = rng.lognormal(10.0, 0.5, n)
    return _frame(pd.date_range("2020-01-01", periods=n, freq="D"), o, h, lo, c, v)


def bars_from_close(close, open_=None) -> pd.DataFrame:
    """Hand-written fixtures: high/low envelope the open and close exactly."""
    c = np.asarray(close, dtype=np.float64)
    o = c if open_ is None else np.asarray(open_, dtype=np.float64)
    return _frame(
        pd.date_range("2021-01-01", periods=len(c), freq="D"),
        o,
        np.maximum(o, c),
        np.minimum(o, c),
        c,
        np.full(len(c), 1000.0),
    )
