from __future__ import annotations

import pandas as pd
import pytest
from _backtest_data import spx_bars, synthetic_bars


@pytest.fixture(scope="session")
def spx() -> pd.DataFrame:
    """The last 600 S&P 500 daily bars (real data, small enough for fast tests)."""
    return spx_bars(600)


@pytest.fixture(scope="session")
def walk() -> pd.DataFrame:
    return synthetic_bars(400, seed=7)
