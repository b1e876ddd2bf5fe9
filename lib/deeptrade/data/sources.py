"""Where bars come from: files, the samples that ship inside installed packages, and Alpaca.

Every source returns ``dict[str, pd.DataFrame]`` keyed by symbol. The frames are RAW: columns
are renamed to the contract's names (``deeptrade.data.schema``), timestamps are parsed to
``datetime64[ns, UTC]`` and numeric columns cast to float64 (``trade_count`` to int64), but no
row is dropped, reordered or repaired. Row-level problems (NaN, negative volume, unsorted or
duplicate timestamps, strings in price columns, ...) are ``validate_bars``'s job, so that every
problem is reported, quarantined or failed by one policy. Each frame's index labels the rows of
the input (for files: the 0-based data row, i.e. CSV line = row + 2), so validation errors can
point at the offending row. File-level problems (unreadable, empty, missing columns, time zone
unknown) raise ``ValueError`` here, naming the file and what to do.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deeptrade.data.resample import bars_from_trades
from deeptrade.data.schema import (
    COLUMN_DTYPES,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP_DTYPE,
    timeframe_delta,
)

log = logging.getLogger(__name__)

_CONTRACT_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)

# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def read_bars_file(
    path: str | Path,
    *,
    symbol: str | None = None,
    timestamp_col: str = "timestamp",
    tz: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Read bars from a CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``, ``.pq``) file.

    Column names are matched case-insensitively (``Open`` -> ``open``); columns outside the
    contract (e.g. ``Adj Close``) are not returned. A ``symbol`` column splits the file into
    one frame per symbol; ``symbol=`` selects one of them, or names the series of a file
    without that column.

    Timestamps: values with a UTC offset (``2024-01-02T14:30:00Z``) or a tz-aware Parquet
    column are converted to UTC. Values without one need ``tz=`` (the zone they were written
    in, e.g. ``"America/New_York"``): they are localised (ambiguous/nonexistent DST times raise)
    and converted to UTC. One exception: when every value is a bare date (00:00:00) and no
    ``tz`` is given, they are daily session dates and are labelled 00:00 UTC, the contract's
    daily label (``schema`` module doc).
    """
    path = Path(path)
    raw = _read_table(path)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    ts_name = timestamp_col.strip().lower()
    if ts_name != "timestamp" and "timestamp" in raw.columns:
        raw = raw.drop(columns="timestamp")
    raw = raw.rename(columns={ts_name: "timestamp"})
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        hint = "rename the columns" if missing != ["timestamp"] else "pass timestamp_col="
        raise ValueError(
            f"{path}: missing column(s) {missing} (found {list(raw.columns)}); a bars file needs "
            f"{[timestamp_col, *REQUIRED_COLUMNS[1:]]}: {hint}"
        )
    raw["timestamp"] = _parse_timestamps(raw["timestamp"], where=str(path), tz=tz)

    if "symbol" in raw.columns:
        symbols = raw["symbol"].astype("str")
        if symbol is not None:
            groups = {symbol: raw[symbols == symbol]}
            if groups[symbol].empty:
                raise ValueError(
                    f"{path}: no rows for symbol {symbol!r}; the file has "
                    f"{sorted(symbols.unique())[:20]}"
                )
        else:
            groups = {str(s): g for s, g in raw.groupby(symbols, sort=True)}
    elif symbol is None:
        raise ValueError(
            f"{path}: the file has no 'symbol' column, so its series needs a name: "
            "pass symbol='AAPL' (for example)"
        )
    else:
        groups = {symbol: raw}
    return {sym: _to_contract_columns(g) for sym, g in groups.items()}


def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes); re-export or re-download it")
    if name.endswith((".parquet", ".pq")):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            df = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(
                f"{path}: not a readable Parquet file, probably truncated or corrupt ({exc}); "
                "re-export or re-download it"
            ) from exc
    elif name.endswith((".csv", ".csv.gz")):
        try:
            df = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"{path}: the file has no header and no rows; re-export or re-download it"
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
            raise ValueError(
                f"{path}: not a readable CSV file ({exc}); fix or re-export it"
            ) from exc
    else:
        raise ValueError(f"{path}: unknown file type; bars files end in .csv, .csv.gz or .parquet")
    if df.empty:
        raise ValueError(f"{path}: the file has a header but no rows; re-export or re-download it")
    return df


def _parse_timestamps(col: pd.Series, *, where: str, tz: str | None) -> pd.Series:
    """Parse to datetime64[ns, UTC] under the rules in ``read_bars_file``'s docstring."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    if not pd.api.types.is_datetime64_dtype(col.dtype):
        if pd.api.types.is_numeric_dtype(col.dtype):
            raise ValueError(
                f"{where}: timestamps are numbers ({col.iloc[0]!r}); write them as ISO-8601 text "
                "with a UTC offset, e.g. 2024-01-02T14:30:00Z"
            )
        col = _parse_text_timestamps(col.astype("str").where(col.notna()), where=where)
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            return col.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
    # Naive datetimes from here on.
    if tz is not None:
        try:
            return (
                col.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
                .dt.tz_convert("UTC")
                .astype(TIMESTAMP_DTYPE)
            )
        except ValueError as exc:
            raise ValueError(
                f"{where}: cannot place the timestamps in {tz!r} ({exc}); times that a DST change "
                "makes ambiguous or nonexistent need an explicit UTC offset in the file"
            ) from exc
    valid = col.dropna()
    if len(valid) and (valid == valid.dt.normalize()).all():
        return col.dt.tz_localize("UTC").astype(TIMESTAMP_DTYPE)  # session dates (docstring)
    first = valid.iloc[0] if len(valid) else None
    raise ValueError(
        f"{where}: the timestamps have no time zone (row {valid.index[0]}: {first}); pass tz= "
        "with the zone they were written in (e.g. tz='America/New_York'), or write them with "
        "a UTC offset (2024-01-02T14:30:00Z)"
    )


def _parse_text_timestamps(text: pd.Series, *, where: str) -> pd.Series:
    try:
        return pd.to_datetime(text, format="ISO8601")
    except ValueError as exc:
        if "Mixed timezones" not in str(exc):
            bad = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True).isna()
            bad &= text.notna()
            row = bad.idxmax() if bad.any() else text.index[0]
            raise ValueError(
                f"{where}: row {row}: cannot parse timestamp {text.get(row)!r}; timestamps must "
                "be ISO-8601, e.g. 2024-01-02T14:30:00Z"
            ) from None
    # Offsets differ (e.g. -05:00 and -04:00 across DST): fine, unless some values have none.
    has_offset = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})\s*$", regex=True, na=True)
    if not has_offset.all():
        row = has_offset.idxmin()
        raise ValueError(
            f"{where}: row {row}: timestamp {text[row]!r} has no UTC offset while others have "
            "one; write every timestamp with an offset"
        )
    return pd.to_datetime(text, format="ISO8601", utc=True)


def _to_contract_columns(df: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for col in _CONTRACT_COLUMNS:
        if col not in df.columns:
            continue
        s = df[col]
        if col == "timestamp":
            out[col] = s
        elif col == "trade_count" and pd.api.types.is_integer_dtype(s.dtype):
            out[col] = s.astype("int64")
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            out[col] = s.astype("float64")
        else:
            out[col] = s  # strings, NaN-holding counts: left for validate_bars to report
    return pd.DataFrame(out, index=df.index)


# ---------------------------------------------------------------------------------------------
# Samples shipped inside installed packages (no network)
# ---------------------------------------------------------------------------------------------


@dataclass(kw_only=True, frozen=True)
class SampleInfo:
    timeframe: str  # bar timeframe of every series in the sample
    calendar: str | None  # the exchange calendar to validate/resample it against
    symbols: tuple[str, ...]
    description: str


SAMPLES: dict[str, SampleInfo] = {
    "daily": SampleInfo(
        timeframe="1d",
        calendar="XNYS",
        symbols=("SPX", "NDX", "AAPL", "IBM", "MSFT", "GOOG"),
        description=(
            "Daily bars, raw (unadjusted) OHLC and volume. SPX and NDX: S&P 500 and NASDAQ "
            "Composite 1999-01-04..2018-12-31 from arch.data. AAPL, IBM, MSFT: 2000-03-01.."
            "2013-03-01, GOOG: 2004-08-19..2013-03-01, from bokeh_sampledata.stocks (Quandl "
            "WIKI, public domain). Unadjusted splits (AAPL 2000-06-21, 2005-02-28; MSFT "
            "2003-02-18) appear as large returns that validation reports."
        ),
    ),
    "intraday": SampleInfo(
        timeframe="1m",
        calendar="CMES",
        symbols=("ES",),
        description=(
            "1-minute bars of E-mini S&P 500 futures, 2013-09-01 22:00 UTC..2013-09-03 18:51 "
            "UTC (Labor Day session included), aggregated from the 500,000-trade tick sample "
            "bundled with mlfinpy (times there are US/Central). Minutes without trades have no "
            "bar."
        ),
    ),
}


def load_sample(dataset: str) -> dict[str, pd.DataFrame]:
    """Real market data that ships inside installed packages: ``"daily"`` or ``"intraday"``.

    See ``SAMPLES[dataset]`` for symbols, timeframe, calendar and provenance. Frames are raw
    (module doc); with the sample's calendar they pass ``validate_bars`` under the default
    ``ValidationConfig`` without losing a row.
    """
    if dataset == "daily":
        return {**_load_arch_indices(), **_load_bokeh_stocks()}
    if dataset == "intraday":
        return {"ES": _load_mlfinpy_es()}
    raise ValueError(f"unknown sample dataset {dataset!r}: use one of {sorted(SAMPLES)}")


def _daily_frame(dates: pd.Series | pd.Index, ohlcv: dict[str, np.ndarray]) -> pd.DataFrame:
    ts = pd.DatetimeIndex(pd.to_datetime(dates)).normalize().tz_localize("UTC")
    out = {"timestamp": pd.Series(ts, dtype=TIMESTAMP_DTYPE)}
    for col in ("open", "high", "low", "close", "volume"):
        out[col] = pd.Series(np.asarray(ohlcv[col], dtype="float64"))
    return pd.DataFrame(out)


def _load_arch_indices() -> dict[str, pd.DataFrame]:
    # The files behind arch.data.sp500.load() / nasdaq.load(), read directly: importing arch
    # costs ~2.5 s (it pulls in its whole modelling stack) and we only want the CSVs.
    out = {}
    for sym, name in (("SPX", "sp500"), ("NDX", "nasdaq")):
        raw = pd.read_csv(_package_file("arch", "data", name, f"{name}.csv.gz"))
        out[sym] = _daily_frame(raw["Date"], {c: raw[c.capitalize()].to_numpy() for c in _OHLCV})
    return out


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"sample data needs the {package!r} package installed (pip install {package})"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise ValueError(f"{path}: not found; the installed {package!r} lacks its bundled data")
    return path


_OHLCV = ("open", "high", "low", "close", "volume")


def _load_bokeh_stocks() -> dict[str, pd.DataFrame]:
    from bokeh_sampledata import stocks

    return {
        sym: _daily_frame(pd.Index(getattr(stocks, sym)["date"]), getattr(stocks, sym))
        for sym in ("AAPL", "IBM", "MSFT", "GOOG")
    }


def _load_mlfinpy_es() -> pd.DataFrame:
    # Read the CSV directly: mlfinpy's modules are not needed (and target older numpy/pandas);
    # it is installed with `pip install --no-deps mlfinpy==0.1.2`.
    ticks = pd.read_csv(
        _package_file("mlfinpy", "dataset", "data", "tick_data.csv"), engine="pyarrow"
    )
    # CME Globex opens Sunday 17:00 US/Central; the sample's first trade is at 17:00:00.083.
    ts = ticks["DateTime"].dt.tz_localize("America/Chicago").dt.tz_convert("UTC")
    return bars_from_trades(
        ts, ticks["Price"].to_numpy("float64"), ticks["Volume"].to_numpy("float64"), "1m"
    )


# ---------------------------------------------------------------------------------------------
# Alpaca market data
# ---------------------------------------------------------------------------------------------

_ALPACA_TIMEFRAMES = {
    "1m": (1, "Min"),
    "5m": (5, "Min"),
    "15m": (15, "Min"),
    "1h": (1, "Hour"),
    "1d": (1, "Day"),
}
_ALPACA_FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
_ALPACA_ADJUSTMENTS = ("raw", "split", "dividend", "all")
# Days per request window: bounds the Python objects one window's pages hold at once.
_DEFAULT_WINDOW_DAYS = {"1m": 10, "5m": 30, "15m": 90, "1h": 365, "1d": 3650}


@dataclass(kw_only=True)
class AlpacaBarsConfig:
    """How AlpacaBarsSource talks to the Alpaca market data API. Keys are not part of it."""

    url: str | None = None  # base URL; None = https://data.alpaca.markets (tests: a fake server)
    feed: str = "iex"  # iex (free plan) | sip (paid: all US exchanges) | delayed_sip | ...
    adjustment: str = "raw"  # raw | split | dividend | all (corporate-action adjustment)
    connect_timeout_s: float = 5.0  # TCP connect timeout per attempt
    read_timeout_s: float = 30.0  # max wait for response bytes per attempt (a stall fails here)
    requests_per_minute: float = 180.0  # per process; Alpaca allows 200/min per account
    burst: int = 1  # requests allowed back to back before spacing kicks in
    max_retries: int = 5  # extra attempts after 429, 5xx, timeouts and connection errors
    backoff_initial_s: float = 1.0  # first retry delay; doubles per attempt (with jitter)
    backoff_max_s: float = 60.0  # cap on one retry delay, Retry-After included
    window_days: int | None = None  # days per request window; None = per-timeframe default

    def __post_init__(self) -> None:
        if self.feed not in _ALPACA_FEEDS:
            raise ValueError(f"alpaca feed {self.feed!r}: use one of {list(_ALPACA_FEEDS)}")
        if self.adjustment not in _ALPACA_ADJUSTMENTS:
            raise ValueError(
                f"alpaca adjustment {self.adjustment!r}: use one of {list(_ALPACA_ADJUSTMENTS)}"
            )
        for name in ("connect_timeout_s", "read_timeout_s", "requests_per_minute"):
            if not getattr(self, name) > 0:
                raise ValueError(f"alpaca {name} must be > 0, got {getattr(self, name)}")
        if self.burst < 1 or self.max_retries < 0:
            raise ValueError("alpaca burst must be >= 1 and max_retries >= 0")
        if self.window_days is not None and self.window_days < 1:
            raise ValueError(f"alpaca window_days must be >= 1 or None, got {self.window_days}")


class AlpacaBarsSource:
    """Historical stock bars from Alpaca via alpaca-py's ``StockHistoricalDataClient``.

    alpaca-py follows ``next_page_token`` itself (``RESTClient._get_marketdata``) but sends
    requests with no timeout and retries only 429/504 with a fixed 3 s sleep; this source
    swaps the client's ``requests`` session for a ``GuardedSession`` that adds timeouts, a
    token-bucket rate limit and bounded exponential backoff (``deeptrade.data.http_guard``).

    The API keys go straight into the client; they are never logged, stored on this object
    or shown in its repr.
    """

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        config: AlpacaBarsConfig | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        with warnings.catch_warnings():  # alpaca.data imports websockets.legacy (deprecated)
            warnings.simplefilter("ignore", DeprecationWarning)
            from alpaca.data.historical import StockHistoricalDataClient

        from deeptrade.data.http_guard import RetryPolicy, TokenBucket, harden_client

        if not api_key or not secret_key:
            raise ValueError(
                "Alpaca api_key and secret_key are both required (from the environment or a "
                "0600 key file)"
            )
        self.config = config or AlpacaBarsConfig()
        cfg = self.config
        client = StockHistoricalDataClient(api_key, secret_key, raw_data=True, url_override=cfg.url)
        self._client = harden_client(
            client,
            timeout=(cfg.connect_timeout_s, cfg.read_timeout_s),
            limiter=TokenBucket(
                rate_per_minute=cfg.requests_per_minute, burst=cfg.burst, sleep=sleep
            ),
            retry=RetryPolicy(
                max_retries=cfg.max_retries,
                backoff_initial_s=cfg.backoff_initial_s,
                backoff_max_s=cfg.backoff_max_s,
            ),
            sleep=sleep,
        )

    def __repr__(self) -> str:
        cfg = self.config
        return f"AlpacaBarsSource(url={cfg.url!r}, feed={cfg.feed!r}, keys=<hidden>)"

    def fetch(
        self,
        symbols: Sequence[str],
        *,
        timeframe: str,
        start: str | dt.datetime | pd.Timestamp,
        end: str | dt.datetime | pd.Timestamp,
    ) -> dict[str, pd.DataFrame]:
        """Bars with ``start <= timestamp < end`` for each symbol (naive times mean UTC).

        Every requested symbol gets a frame (empty when Alpaca has no bars). Daily bars, which
        Alpaca stamps at 00:00 America/New_York, are relabelled to their date at 00:00 UTC
        (contract). Alpaca aligns 1h bars to clock hours (09:00-10:00 ET includes pre-market);
        for session-anchored hours fetch 1m and use ``resample_bars``.
        """
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        if isinstance(symbols, str):
            raise ValueError(f"symbols must be a list, got the string {symbols!r}")
        timeframe_delta(timeframe)
        start_ts, end_ts = _utc(start, "start"), _utc(end, "end")
        if not start_ts < end_ts:
            raise ValueError(f"alpaca fetch: start {start_ts} must be before end {end_ts}")
        amount, unit = _ALPACA_TIMEFRAMES[timeframe]
        tf = TimeFrame(amount, TimeFrameUnit(unit))
        window = pd.Timedelta(days=self.config.window_days or _DEFAULT_WINDOW_DAYS[timeframe])

        raw: dict[str, list[dict]] = {s: [] for s in symbols}
        w0 = start_ts
        while w0 < end_ts:
            w1 = min(w0 + window, end_ts)
            request = StockBarsRequest(
                symbol_or_symbols=list(symbols),
                timeframe=tf,
                start=w0.to_pydatetime(),
                # Alpaca's end is inclusive; stop 1 us short so windows never share a bar.
                end=(w1 - pd.Timedelta(microseconds=1)).to_pydatetime(),
                feed=DataFeed(self.config.feed),
                adjustment=Adjustment(self.config.adjustment),
            )
            try:
                page = self._client.get_stock_bars(request)
            except APIError as exc:
                raise ValueError(
                    f"Alpaca refused the bars request for {list(symbols)[:5]} {timeframe} "
                    f"{w0}..{w1} (HTTP {exc.status_code}: {exc}); check the API keys, the symbols "
                    f"and that feed {self.config.feed!r} is in the account's subscription"
                ) from exc
            page = page or {}
            for sym, bars in page.items():
                raw.setdefault(sym, []).extend(bars)
            log.info("alpaca bars %s %s..%s: %d", timeframe, w0, w1, sum(map(len, page.values())))
            w0 = w1
        return {sym: _alpaca_frame(bars, timeframe) for sym, bars in raw.items()}


def _utc(value: str | dt.datetime | pd.Timestamp, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise ValueError(f"alpaca fetch: cannot parse {name}={value!r} ({exc})") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


_ALPACA_COLUMNS = {
    "t": "timestamp",
    "o": "open",
    "h": "high",
    "l": "low",
    "c": "close",
    "v": "volume",
    "vw": "vwap",
    "n": "trade_count",
}


def _alpaca_frame(bars: list[dict], timeframe: str) -> pd.DataFrame:
    df = pd.DataFrame.from_records(bars, columns=list(_ALPACA_COLUMNS)).rename(
        columns=_ALPACA_COLUMNS
    )
    ts = pd.to_datetime(df["timestamp"], format="ISO8601", utc=True)
    if timeframe == "1d":
        ts = ts.dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
        ts = ts.dt.tz_localize("UTC")
    df["timestamp"] = ts.astype(TIMESTAMP_DTYPE)
    for col in ("open", "high", "low", "close", "volume", "vwap"):
        df[col] = df[col].astype("float64")
    if df["trade_count"].notna().all():
        df["trade_count"] = df["trade_count"].astype(COLUMN_DTYPES["trade_count"])
    return df
