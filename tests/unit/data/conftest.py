"""Shared builders for the data tests: small, consistent bar frames in the contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_bars(
    n: int = 10,
    *,
    start: str = "2024-01-02 14:30",  # 09:30 New York: the XNYS open
    freq: str = "1min",
    seed: int = 0,
    price: float = 100.0,
    extras: bool = True,
) -> pd.DataFrame:
    """``n`` consistent bars (low <= open, close <= high) on a regular UTC grid."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.r_[price, close[:-1]]
    spread = np.abs(rng.normal(0, 5e-4, n)) * close
    df = pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq=freq, tz="UTC", unit="ns"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(1, 1000, n).astype("float64"),
        }
    )
    if extras:
        df["vwap"] = (df["high"] + df["low"] + df["close"]) / 3
        df["trade_count"] = rng.integers(1, 50, n).astype("int64")
    return df


@pytest.fixture
def bars():
    return make_bars
