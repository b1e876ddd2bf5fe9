"""The bar frame contract: what every (symbol, timeframe) series looks like after validation.

One series is a pandas DataFrame with a RangeIndex and these columns:

=============  =======================  ==================================================
column         dtype                    meaning
=============  =======================  ==================================================
timestamp      datetime64[ns, UTC]      bar START time (see below), sorted ascending, unique
open           float64                  first trade price in the bar
high           float64                  highest trade price
low            float64                  lowest trade price
close          float64                  last trade price
volume         float64                  shares/contracts traded (float: Alpaca sends floats)
vwap           float64 (optional)       volume-weighted average price
trade_count    int64 (optional)         number of trades
=============  =======================  ==================================================

Time convention (the one rule every later stage relies on for "no look-ahead"):

* ``timestamp`` is the bar's START, in UTC. Intraday bars (1m, 5m, 15m, 1h) cover
  ``[timestamp, timestamp + timeframe)``.
* A bar's values are known at its END, ``known_at = timestamp + TIMEFRAMES[timeframe]``. A
  strategy deciding at time t may use only bars with ``known_at <= t``. For the last, shorter
  bar of a session (e.g. 15:30-16:00 for 1h bars on XNYS) this is conservative: the bar really
  closes at 16:00 but is treated as known at 16:30.
* Daily bars ("1d") are labelled by their session DATE at 00:00 UTC (not the instant trading
  began, which for CME Globex is the previous evening). They are therefore known at 00:00 UTC
  the next day, which is after the close of every session of the US calendars we use (XNYS
  closes by 21:00 UTC, CMES by 22:00 UTC); ``resample_bars`` checks this for every session.

Prices are raw (not split- or dividend-adjusted) unless a source says otherwise: an unadjusted
split shows up as a single large return, which validation reports (``return_outlier``).
"""

from __future__ import annotations

import pandas as pd

TIMESTAMP_DTYPE = pd.DatetimeTZDtype(unit="ns", tz="UTC")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", *PRICE_COLUMNS, "volume")
OPTIONAL_COLUMNS: tuple[str, ...] = ("vwap", "trade_count")
COLUMN_DTYPES: dict[str, object] = {
    "timestamp": TIMESTAMP_DTYPE,
    **{c: "float64" for c in PRICE_COLUMNS},
    "volume": "float64",
    "vwap": "float64",
    "trade_count": "int64",
}

# Bar length per timeframe name. "1d" is one session, labelled by its date (see module doc).
TIMEFRAMES: dict[str, pd.Timedelta] = {
    "1m": pd.Timedelta(minutes=1),
    "5m": pd.Timedelta(minutes=5),
    "15m": pd.Timedelta(minutes=15),
    "1h": pd.Timedelta(hours=1),
    "1d": pd.Timedelta(days=1),
}
INTRADAY_TIMEFRAMES: tuple[str, ...] = ("1m", "5m", "15m", "1h")


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """The bar length of ``timeframe``; ValueError listing the valid names otherwise."""
    try:
        return TIMEFRAMES[timeframe]
    except KeyError:
        raise ValueError(
            f"unknown timeframe {timeframe!r}: use one of {list(TIMEFRAMES)}"
        ) from None


def known_at(timestamps: pd.Series, timeframe: str) -> pd.Series:
    """When each bar's values become known: its start plus the timeframe (module doc)."""
    return timestamps + timeframe_delta(timeframe)


def empty_bars(*, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    """A zero-row frame with the contract's columns and dtypes (plus the named optional ones)."""
    cols = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in optional)]
    return pd.DataFrame({c: pd.Series(dtype=COLUMN_DTYPES[c]) for c in cols})


def check_bars(df: pd.DataFrame, *, where: str = "bars") -> None:
    """Raise ValueError unless ``df`` meets the contract's columns, dtypes and ordering.

    Cheap (no per-row value checks: those are ``validate_bars``'s job). Meant for stages that
    receive bars, e.g. features, to fail early on a frame that skipped validation.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; bars need {list(REQUIRED_COLUMNS)}"
        )
    for col in (*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in df.columns)):
        want = COLUMN_DTYPES[col]
        if df[col].dtype != want:
            raise ValueError(
                f"{where}: column {col!r} has dtype {df[col].dtype}, the contract needs {want}; "
                "run the frame through deeptrade.data.validate.validate_bars"
            )
    ts = df["timestamp"]
    t = ts.array.asi8
    if ts.isna().any() or not (t[1:] > t[:-1]).all():
        raise ValueError(
            f"{where}: timestamps must be present, sorted ascending and unique; "
            "run the frame through deeptrade.data.validate.validate_bars"
        )
