"""Real market data for the feature tests (shipped inside installed packages, no network)."""

from __future__ import annotations

import pandas as pd
import pytest

from deeptrade.data.sources import load_sample


@pytest.fixture(scope="session")
def daily() -> dict[str, pd.DataFrame]:
    """S&P 500 and Nasdaq 100 (arch, 1999-2018) and AAPL/IBM/MSFT/GOOG (bokeh) daily bars."""
    return load_sample("daily")


@pytest.fixture(scope="session")
def intraday() -> pd.DataFrame:
    """E-mini S&P 1-minute bars (with vwap) from mlfinpy's bundled tick sample."""
    return load_sample("intraday")["ES"]


@pytest.fixture(scope="session")
def real_series(daily: dict[str, pd.DataFrame], intraday: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {**daily, "ES_1m": intraday}
