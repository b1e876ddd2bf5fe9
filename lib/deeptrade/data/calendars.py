"""Exchange sessions from exchange-calendars (works offline), as plain UTC arrays.

Validation (gap and off-calendar checks) and session-aware resampling both need the same two
views of a calendar: the session dates, and the contiguous trading intervals ("segments": a
session, or its two halves when the exchange has a lunch break).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


def validate_calendar_name(name: str | None) -> None:
    """ValueError for a calendar name exchange-calendars does not know (None is fine)."""
    if name is None:
        return
    # Imported here: exchange_calendars costs ~0.5 s to import and many callers never need it.
    import exchange_calendars as xcals

    if name not in xcals.get_calendar_names(include_aliases=True):
        raise ValueError(
            f"unknown exchange calendar {name!r}: use an exchange-calendars name such as "
            "'XNYS' (NYSE), 'XNAS' (Nasdaq) or 'CMES' (CME Globex), or None for no calendar"
        )


@functools.lru_cache(maxsize=16)
def _calendar(name: str, first_year: int, last_year: int):  # -> ExchangeCalendar
    import exchange_calendars as xcals

    validate_calendar_name(name)
    with warnings.catch_warnings():
        # exchange-calendars 4.13 uses Series.values on tz-aware data, deprecated in pandas 3.1.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return xcals.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
        except ValueError as exc:
            raise ValueError(
                f"calendar {name!r} cannot cover {first_year}..{last_year} ({exc}); use "
                "calendar None for this series"
            ) from exc


@dataclass(kw_only=True, frozen=True)
class Sessions:
    """Sessions of one calendar overlapping a time range, all as int64 ns since epoch (UTC)."""

    label: np.ndarray  # session date at 00:00 UTC (the "1d" bar timestamp)
    open: np.ndarray
    close: np.ndarray
    seg_start: np.ndarray  # contiguous trading intervals: a session, or its halves around a break
    seg_end: np.ndarray
    seg_session: np.ndarray  # index into label/open/close for each segment


def sessions_between(name: str, first: pd.Timestamp, last: pd.Timestamp) -> Sessions:
    """Sessions whose trading hours overlap ``[first, last]`` (UTC timestamps, inclusive)."""
    # Pad by a few days: a session labelled on day D can open the evening before (CME Globex).
    cal = _calendar(name, (first - pd.Timedelta(days=7)).year, (last + pd.Timedelta(days=7)).year)
    sched = cal.schedule
    opens = _ns(sched["open"])
    closes = _ns(sched["close"])
    keep = (closes > first.value) & (opens <= last.value)
    sched = sched[keep]
    label = sched.index.tz_localize("UTC").as_unit("ns").asi8
    opens, closes = opens[keep], closes[keep]
    brk_start, brk_end = _ns(sched["break_start"]), _ns(sched["break_end"])
    has_break = (brk_start != _NAT) & (brk_end != _NAT)
    # Each session gives one segment, or two where it has a break; keep them in time order.
    idx = np.arange(len(opens))
    seg_session = np.concatenate([idx, idx[has_break]])
    seg_start = np.concatenate([opens, brk_end[has_break]])
    seg_end = np.concatenate([np.where(has_break, brk_start, closes), closes[has_break]])
    order = np.argsort(seg_start, kind="stable")
    return Sessions(
        label=label,
        open=opens,
        close=closes,
        seg_start=seg_start[order],
        seg_end=seg_end[order],
        seg_session=seg_session[order],
    )


_NAT = np.iinfo(np.int64).min


def _ns(col: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(col).tz_convert("UTC").as_unit("ns").asi8
