"""Test helpers for the feature tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_bars(n: int, *, seed: int = 0, start: str = "2024-01-02 14:30") -> pd.DataFrame:
    """A random-walk 1-minute series in the bar contract (for scale tests only)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.0005, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.0008, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.0008, n)))
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq="1min", tz="UTC").as_unit("ns"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.lognormal(8.0, 1.0, n).round(),
        }
    )
