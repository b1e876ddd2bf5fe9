"""Aggregate trades into bars and bars into longer bars, never across a session break.

``resample_bars`` with a calendar anchors bins at every trading-segment start (the session
open, and the end of a lunch break where the exchange has one): on XNYS, 1h bars are
09:30-10:30, ..., 15:30-16:00 ET; the last, shorter bar of a session is kept (its label is its
start, 15:30). "1d" gives one bar per session, labelled by the session date at 00:00 UTC.

Without a calendar, bins are fixed-width and anchored at the Unix epoch in UTC (5m bars at
:00, :05, ...; 1h bars on the hour; 1d = the UTC date). A bin is exactly one target period
wide, so no bar can span a gap longer than the target. But a UTC day can hold the end of one
session and the start of the next (CME Globex reopens at 22:00 UTC): pass the calendar
('CMES') when daily bars must be sessions.

Aggregation: open = first, high = max, low = min, close = last, volume = sum, trade_count =
sum, vwap = volume-weighted mean of the source vwaps (the bar's close when its volume is 0).
A bin with no source bar produces no bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deeptrade.data.calendars import sessions_between
from deeptrade.data.schema import TIMESTAMP_DTYPE, check_bars, empty_bars, timeframe_delta

_DAY_NS = pd.Timedelta(days=1).value


def resample_bars(
    df: pd.DataFrame,
    target: str,
    *,
    calendar: str | None = None,
    source_timeframe: str = "1m",
) -> pd.DataFrame:
    """Resample validated ``source_timeframe`` bars to ``target`` (module doc for the rules).

    ``df`` must meet the bar contract (``validate_bars`` output). With a calendar, every
    source bar must lie inside that calendar's trading hours (validate with the same calendar
    and ``off_calendar=drop`` or ``quarantine`` first).
    """
    check_bars(df, where=f"resample_bars({target!r})")
    src, tgt = timeframe_delta(source_timeframe).value, timeframe_delta(target).value
    if source_timeframe == "1d" or tgt <= src or (target != "1d" and tgt % src):
        raise ValueError(
            f"cannot resample {source_timeframe} bars to {target}: the target must be a longer "
            "intraday multiple of the source, or 1d"
        )
    t = df["timestamp"].array.asi8
    if len(t) == 0:
        return df.iloc[0:0].reset_index(drop=True)
    if calendar is None:
        labels = t - t % (_DAY_NS if target == "1d" else tgt)
        bin_end = labels + (_DAY_NS if target == "1d" else tgt)
    else:
        labels, bin_end = _session_bins(df["timestamp"], t, src, tgt, target, calendar)
    outside = t + src > bin_end
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"resample to {target}: {int(outside.sum())} {source_timeframe} bar(s) do not fit "
            f"inside one {target} bin (first: {df['timestamp'].iloc[i]}); are the source bars "
            f"really {source_timeframe}, aligned to whole periods?"
        )
    cols = {c: df[c].to_numpy() for c in df.columns if c != "timestamp"}
    return _aggregate(labels, cols)


def _session_bins(
    ts: pd.Series, t: np.ndarray, src: int, tgt: int, target: str, calendar: str
) -> tuple[np.ndarray, np.ndarray]:
    """Bin label and bin end (int64 ns) for every source bar, anchored at segment starts."""
    s = sessions_between(calendar, ts.iloc[0], ts.iloc[-1])
    seg = np.searchsorted(s.seg_start, t, side="right") - 1
    seg_ok = np.clip(seg, 0, None)
    inside = (seg >= 0) & (t + src <= s.seg_end[seg_ok]) if len(s.seg_start) else t < t
    if not inside.all():
        i = int(np.flatnonzero(~inside)[0])
        raise ValueError(
            f"resample with calendar {calendar!r}: {int((~inside).sum())} bar(s) lie outside its "
            f"trading hours (first: {ts.iloc[i]}); validate with calendar={calendar!r} and "
            "off_calendar=drop (or quarantine) first, or resample with calendar=None"
        )
    if target == "1d":
        sess = s.seg_session[seg]
        labels = s.label[sess]
        late = s.close[sess] > labels + _DAY_NS
        if late.any():
            raise ValueError(
                f"calendar {calendar!r}: a session closes after 00:00 UTC of the day after its "
                "date, so its daily bar would be known before it ends; resample it without a "
                "calendar"
            )
        return labels, labels + _DAY_NS
    anchor = s.seg_start[seg]
    labels = anchor + (t - anchor) // tgt * tgt
    return labels, np.minimum(labels + tgt, s.seg_end[seg])


def _aggregate(labels: np.ndarray, cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """OHLCV aggregation of consecutive rows sharing a label (labels are non-decreasing)."""
    assert len(labels) and (np.diff(labels) >= 0).all(), "labels must be sorted"
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels)] - 1
    volume = np.add.reduceat(cols["volume"], starts)
    close = cols["close"][ends]
    out: dict[str, object] = {
        "timestamp": pd.DatetimeIndex(labels[starts].view("datetime64[ns]")).tz_localize("UTC"),
        "open": cols["open"][starts],
        "high": np.maximum.reduceat(cols["high"], starts),
        "low": np.minimum.reduceat(cols["low"], starts),
        "close": close,
        "volume": volume,
    }
    if "vwap" in cols:
        pv = np.add.reduceat(cols["vwap"] * cols["volume"], starts)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["vwap"] = np.where(volume > 0, pv / volume, close)
    if "trade_count" in cols:
        out["trade_count"] = np.add.reduceat(cols["trade_count"], starts).astype("int64")
    return pd.DataFrame(out)


def bars_from_trades(
    timestamps: pd.Series, price: np.ndarray, size: np.ndarray, timeframe: str = "1m"
) -> pd.DataFrame:
    """Trades (UTC times, prices, sizes) -> bars on UTC-anchored bins (no calendar).

    OHLC from trade prices, volume = summed size, vwap = size-weighted price, trade_count =
    number of trades. Unsorted trades are sorted (stably) first; minutes without a trade get
    no bar.
    """
    t = timestamps.astype(TIMESTAMP_DTYPE).array.asi8
    if len(t) == 0:
        return empty_bars(optional=("vwap", "trade_count"))
    price = np.asarray(price, dtype="float64")
    size = np.asarray(size, dtype="float64")
    if len(t) and (np.diff(t) < 0).any():
        order = np.argsort(t, kind="stable")
        t, price, size = t[order], price[order], size[order]
    step = _DAY_NS if timeframe == "1d" else timeframe_delta(timeframe).value
    cols = {
        "open": price,
        "high": price,
        "low": price,
        "close": price,
        "volume": size,
        "vwap": price,
        "trade_count": np.ones(len(t), dtype="int64"),
    }
    return _aggregate(t - t % step, cols)
