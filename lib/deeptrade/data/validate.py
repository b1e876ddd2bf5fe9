"""Validate one raw bar series into the contract (``deeptrade.data.schema``), rule by rule.

Every rule has a stable name (used in config and reports) and a policy:

* ``fail``: raise ``ValueError`` naming the source, symbol, first offending row (index label
  and timestamp), the rule, and how to fix it.
* ``drop``: remove the offending rows (counted in the report).
* ``quarantine``: remove them into ``ValidationResult.quarantined`` with ``rule`` and
  ``reason`` columns, so they can be stored and inspected.
* ``warn``: keep the rows, count them and list examples in the report.

Rules run in this order; a row removed by one rule is not seen by later ones:

====================  =======================  ================================================
rule                  policies                 what it flags
====================  =======================  ================================================
schema                fail drop quarantine     a missing column always fails; values that are
                                               not numbers (``"abc"`` in ``close``), fractional
                                               ``trade_count``, intraday timestamps not on a
                                               whole minute, daily ones not at 00:00 UTC
tz_naive              fail                     timestamps without a time zone (the zone cannot
                                               be guessed: see ``read_bars_file(tz=...)``)
nan                   fail drop quarantine     NaN, +-inf or missing timestamp in any column
unsorted              fail drop                timestamps going backwards; ``drop`` SORTS
                                               (stable), no row is lost
duplicate_timestamp   fail drop quarantine     a timestamp seen before; the first row in input
                                               order stays
non_positive_price    fail drop quarantine     open/high/low/close/vwap <= 0
negative_volume       fail drop quarantine     volume < 0 or trade_count < 0
ohlc_inconsistent     fail drop quarantine     not low <= min(open, close) <= max(open, close)
                                               <= high
off_calendar          fail drop quarantine     (with a calendar) daily bars on a non-session
                      warn                     date; intraday bars not starting on a session-
                                               anchored bin (pre/post-market, misaligned)
calendar_gap          fail warn                (with a calendar) sessions (1d) or bins
                                               (intraday) between the first and last bar that
                                               have no bar; rows cannot be removed for it
return_outlier        fail drop quarantine     close-to-close log return more than
                      warn                     ``outlier_sigma`` robust sigmas from the median
====================  =======================  ================================================

Return outliers use only past data: returns are cut into blocks of ``outlier_window``; a row is
judged against the median and MAD (x1.4826; mean absolute deviation x1.2533 where the MAD is
0) of the previous full block, and rows in the first block against all returns before them
(from ``outlier_min_periods`` on). Whether a row is flagged never depends on later data. A
single bad print flags its own row and the row after it (the return back); an unadjusted split
flags one row, and dropping it does not remove the jump: use adjusted prices for that.

Intraday gaps are normal for illiquid symbols (no trade, no 1-minute bar), hence ``warn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deeptrade.data.calendars import sessions_between, validate_calendar_name
from deeptrade.data.schema import (
    OPTIONAL_COLUMNS,
    PRICE_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP_DTYPE,
    timeframe_delta,
)

CONFIG_PREFIX = "data.validation"  # where these settings live in the job config (for messages)
POLICIES: tuple[str, ...] = ("fail", "drop", "quarantine", "warn")
_ROW_POLICIES = ("fail", "drop", "quarantine")
RULE_POLICIES: dict[str, tuple[str, ...]] = {
    "schema": _ROW_POLICIES,
    "tz_naive": ("fail",),
    "nan": _ROW_POLICIES,
    "unsorted": ("fail", "drop"),
    "duplicate_timestamp": _ROW_POLICIES,
    "non_positive_price": _ROW_POLICIES,
    "negative_volume": _ROW_POLICIES,
    "ohlc_inconsistent": _ROW_POLICIES,
    "off_calendar": POLICIES,
    "calendar_gap": ("fail", "warn"),
    "return_outlier": POLICIES,
}
RULES: tuple[str, ...] = tuple(RULE_POLICIES)

_FIX = {
    "schema": "Fix the file: numbers only in price/volume columns, whole trade counts, intraday "
    "times on whole minutes, daily bars labelled by date at 00:00 UTC.",
    "tz_naive": "Pass tz= (the zone the times were written in) to read_bars_file, or write "
    "timestamps with a UTC offset.",
    "nan": "Fill or remove the missing values at the source.",
    "unsorted": "Sort the file by timestamp.",
    "duplicate_timestamp": "Remove the repeated bars at the source.",
    "non_positive_price": "Fix the prices at the source.",
    "negative_volume": "Fix the volumes at the source.",
    "ohlc_inconsistent": "Fix the OHLC values at the source.",
    "off_calendar": "Check the calendar and the time zone of the file (bars shifted by hours "
    "land outside the sessions); Alpaca's 1h bars are clock-aligned: fetch 1m and resample.",
    "calendar_gap": "Fill the gaps at the source, or check that the calendar is right.",
    "return_outlier": "Check those prices (a bad print, or an unadjusted split).",
}
_ALTERNATIVE = {
    "fail": "",
    "drop": "drop to remove such rows",
    "quarantine": "quarantine to set them aside (stored and reported)",
    "warn": "warn to keep them and only report them",
}


@dataclass(kw_only=True)
class ValidationConfig:
    """Policy per rule (module doc) plus the parameters of the calendar and outlier rules."""

    schema: str = "fail"  # non-numeric values, fractional counts, misaligned timestamps
    tz_naive: str = "fail"  # timestamps without a zone; only "fail" (the zone is unknown)
    nan: str = "quarantine"  # NaN / inf / missing timestamp in any column
    unsorted: str = "drop"  # timestamps going backwards; "drop" sorts them (no row is lost)
    duplicate_timestamp: str = "quarantine"  # repeated timestamp; the first row stays
    non_positive_price: str = "quarantine"  # a price (or vwap) <= 0
    negative_volume: str = "quarantine"  # volume or trade_count < 0
    ohlc_inconsistent: str = "quarantine"  # low/high do not bracket open and close
    off_calendar: str = "quarantine"  # bar outside the calendar's sessions / bins
    calendar_gap: str = "warn"  # session or bin with no bar (reported; "fail" to fail)
    return_outlier: str = "warn"  # |log return - median| > outlier_sigma robust sigmas
    calendar: str | None = None  # exchange-calendars name (XNYS, XNAS, CMES...); None: no checks
    outlier_sigma: float = 20.0  # k: robust sigmas beyond which a return is an outlier
    outlier_window: int = 250  # returns per block for the robust sigma (module doc)
    outlier_min_periods: int = 20  # returns needed before the first row is judged
    max_removed_fraction: float = 0.1  # fail when drop/quarantine would remove more rows
    max_examples: int = 5  # offending rows listed per rule in the report

    def __post_init__(self) -> None:
        for rule, allowed in RULE_POLICIES.items():
            policy = getattr(self, rule)
            if policy not in allowed:
                raise ValueError(
                    f"{CONFIG_PREFIX}.{rule}={policy!r} is not valid: use one of {list(allowed)}"
                )
        if not self.outlier_sigma > 0:
            raise ValueError(f"{CONFIG_PREFIX}.outlier_sigma must be > 0, got {self.outlier_sigma}")
        if not 2 <= self.outlier_min_periods <= self.outlier_window:
            raise ValueError(
                f"{CONFIG_PREFIX}: need 2 <= outlier_min_periods <= outlier_window, got "
                f"{self.outlier_min_periods} and {self.outlier_window}"
            )
        if not 0 <= self.max_removed_fraction <= 1:
            raise ValueError(f"{CONFIG_PREFIX}.max_removed_fraction must be in [0, 1]")
        if self.max_examples < 0:
            raise ValueError(f"{CONFIG_PREFIX}.max_examples must be >= 0")
        validate_calendar_name(self.calendar)


@dataclass(kw_only=True)
class ValidationResult:
    clean: pd.DataFrame  # the series in the bar contract, RangeIndex
    quarantined: pd.DataFrame  # row, the input's contract columns, rule, reason
    report: dict[str, Any]  # JSON-serialisable summary (see validate_bars)


def validate_bars(
    df: pd.DataFrame,
    *,
    symbol: str,
    timeframe: str,
    source: str,
    config: ValidationConfig | None = None,
) -> ValidationResult:
    """Apply every rule (module doc) to one raw series; returns clean + quarantined + report.

    ``source`` names where the frame came from (a file path, "alpaca", "sample:daily") and
    appears in every error. Row numbers in errors and in ``quarantined.row`` are the input
    frame's index labels (``read_bars_file`` sets them to the 0-based data row of the file),
    or positions when the index is not unique integers.

    The report holds: symbol, timeframe, source, calendar, rows_in, rows_out, rows_dropped,
    rows_quarantined, sorted (whether rows were reordered), tz_converted_from, first/last
    timestamp, ``rules`` (per rule: policy, count, examples: [{row, timestamp, reason}]) and,
    with a calendar, ``gaps`` (expected, missing, runs, largest and first runs).
    """
    run = _Run(config or ValidationConfig(), symbol=symbol, timeframe=timeframe, source=source)
    timeframe_delta(timeframe)
    work = run.check_schema(df)
    work = run.row_rule("nan", _nan_mask(work), work, _nan_reason)
    work = run.check_order(work)
    work = run.row_rule("non_positive_price", _non_positive(work), work, _price_reason)
    work = run.row_rule("negative_volume", _negative_volume(work), work, _volume_reason)
    work = run.row_rule("ohlc_inconsistent", _ohlc_bad(work), work, _ohlc_reason)
    work = run.check_calendar(work)
    mask, reason = _outliers(work, run.cfg)
    work = run.row_rule("return_outlier", mask, work, reason)
    return run.finish(work)


# ---------------------------------------------------------------------------------------------


@dataclass
class _Run:
    cfg: ValidationConfig
    symbol: str
    timeframe: str
    source: str
    rows_in: int = 0
    dropped: int = 0
    quarantine: list[pd.DataFrame] = field(default_factory=list)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)

    # -- schema, time zone --------------------------------------------------------------------
    def check_schema(self, df: pd.DataFrame) -> pd.DataFrame:
        self.rows_in = len(df)
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(
                f"{self._where()}: rule 'schema': missing column(s) {missing} (found "
                f"{list(df.columns)}); bars need {list(REQUIRED_COLUMNS)}: rename the columns"
            )
        self.columns = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in df.columns)]
        idx = df.index
        labels = (
            idx.to_numpy("int64")
            if pd.api.types.is_integer_dtype(idx.dtype) and idx.is_unique
            else np.arange(len(df), dtype="int64")
        )
        work = pd.DataFrame({"row": labels}, index=pd.RangeIndex(len(df)))
        work["timestamp"] = self._timestamps(df["timestamp"])
        bad = np.zeros(len(df), dtype=bool)
        why = np.full(len(df), None, dtype=object)
        for col in self.columns[1:]:
            raw = df[col].reset_index(drop=True)
            if pd.api.types.is_bool_dtype(raw.dtype) or not pd.api.types.is_numeric_dtype(
                raw.dtype
            ):
                num = pd.to_numeric(raw.astype("object"), errors="coerce")
                num[raw.map(lambda v: isinstance(v, bool))] = np.nan  # True is not a price
                not_number = (num.isna() & raw.notna()).to_numpy()
                _note(bad, why, not_number, lambda i, c=col, r=raw: f"{c}={r[i]!r} is not a number")
                work[col] = num.astype("float64")
            else:
                work[col] = raw.astype("float64")
        if "trade_count" in work:
            tc = work["trade_count"].to_numpy()
            frac = np.isfinite(tc) & (tc != np.round(tc))
            _note(bad, why, frac, lambda i: f"trade_count={tc[i]} is not a whole number")
        ts = work["timestamp"]
        if self.timeframe == "1d":
            off = (ts.notna() & (ts != ts.dt.normalize())).to_numpy()
            reason = "daily bar at {} is not labelled 00:00 UTC (its session date)"
        else:
            off = (ts.notna() & (ts != ts.dt.floor("min"))).to_numpy()
            reason = "intraday bar at {} does not start on a whole minute"
        _note(bad, why, off, lambda i: reason.format(ts[i]))
        return self.row_rule("schema", bad, work, lambda w: why[w.index.to_numpy()])

    def _timestamps(self, ts: pd.Series) -> pd.Series:
        ts = ts.reset_index(drop=True)
        if isinstance(ts.dtype, pd.DatetimeTZDtype):
            if str(ts.dt.tz) != "UTC":
                self.extra["tz_converted_from"] = str(ts.dt.tz)
            return ts.dt.tz_convert("UTC").astype(TIMESTAMP_DTYPE)
        if pd.api.types.is_datetime64_dtype(ts.dtype):
            self.rules["tz_naive"] = {"policy": "fail", "count": len(ts), "examples": []}
            first = ts.dropna().iloc[0] if ts.notna().any() else None
            raise ValueError(
                f"{self._where()}: rule 'tz_naive': the timestamps have no time zone (row 0: "
                f"{first}); {_FIX['tz_naive']}"
            )
        raise ValueError(
            f"{self._where()}: rule 'schema': column 'timestamp' holds {ts.dtype} values, not "
            "datetimes; read files with deeptrade.data.sources.read_bars_file, or convert with "
            "pd.to_datetime(..., utc=True)"
        )

    # -- order and duplicates ------------------------------------------------------------------
    def check_order(self, work: pd.DataFrame) -> pd.DataFrame:
        t = work["timestamp"].array.asi8
        back = np.r_[False, t[1:] < t[:-1]]
        policy = self.cfg.unsorted
        self._record("unsorted", back, work, lambda w: _unsorted_reason(w, work))
        self.extra["sorted"] = bool(back.any())
        if back.any():
            if policy == "fail":
                self._fail("unsorted", back, work, lambda w: _unsorted_reason(w, work))
            work = work.iloc[np.argsort(t, kind="stable")].reset_index(drop=True)
            t = work["timestamp"].array.asi8
        dup = np.r_[False, t[1:] == t[:-1]]
        kept = np.maximum.accumulate(np.where(~dup, np.arange(len(t)), 0))
        return self.row_rule(
            "duplicate_timestamp", dup, work, lambda w: _duplicate_reason(w, work, kept)
        )

    # -- calendar ------------------------------------------------------------------------------
    def check_calendar(self, work: pd.DataFrame) -> pd.DataFrame:
        name = self.cfg.calendar
        self.extra["calendar"] = name
        if name is None or work.empty:
            return work
        ts = work["timestamp"]
        first, last = ts.iloc[0], ts.iloc[-1]
        t = ts.array.asi8
        if self.timeframe == "1d":
            s = sessions_between(name, first - pd.Timedelta(days=2), last + pd.Timedelta(days=2))
            expected = s.label[(s.label >= first.value) & (s.label <= last.value)]
            what = "not a session date"
        else:
            step = timeframe_delta(self.timeframe).value
            s = sessions_between(name, first, last)
            expected = _bin_starts(s.seg_start, s.seg_end, step)
            what = "not the start of a trading bin (outside trading hours, or misaligned)"
        on = _isin_sorted(t, expected)
        work = self.row_rule(
            "off_calendar", ~on, work, lambda w: [f"{x}: {what} of {name}" for x in w["timestamp"]]
        )
        t = work["timestamp"].array.asi8
        if len(t):
            expected = expected[(expected >= t[0]) & (expected <= t[-1])]
        missing = ~_isin_sorted(expected, t)
        self.extra["gaps"] = _gap_summary(expected, missing, max(1, self.cfg.max_examples))
        n = int(missing.sum())
        examples = [
            {
                "row": None,
                "timestamp": g["start"],
                "reason": f"{g['bars']} bar(s) missing to {g['end']}",
            }
            for g in self.extra["gaps"]["first"][: self.cfg.max_examples]
        ]
        self.rules["calendar_gap"] = {
            "policy": self.cfg.calendar_gap,
            "count": n,
            "examples": examples,
        }
        if n and self.cfg.calendar_gap == "fail":
            run = self.extra["gaps"]["first"][0]
            raise ValueError(
                f"{self._where()}: rule 'calendar_gap': {n} expected {self.timeframe} bar(s) of "
                f"{name} are missing, first from {run['start']} to {run['end']} ({run['bars']} "
                f"bars). {_FIX['calendar_gap']} Or set {CONFIG_PREFIX}.calendar_gap=warn to "
                "report gaps without failing."
            )
        return work

    # -- generic row rule ----------------------------------------------------------------------
    def row_rule(self, rule: str, mask: np.ndarray, work: pd.DataFrame, reason=None):
        """Apply ``rule``'s policy to the rows of ``work`` where ``mask`` is True."""
        mask = np.asarray(mask, dtype=bool)
        self._record(rule, mask, work, reason)
        if not mask.any():
            return work
        policy = getattr(self.cfg, rule)
        if policy == "fail":
            self._fail(rule, mask, work, reason)
        if policy == "warn":
            return work
        if policy == "quarantine":
            bad = work[mask].copy()
            bad["rule"] = rule
            bad["reason"] = [str(r) for r in reason(bad)]
            self.quarantine.append(bad)
        else:
            self.dropped += int(mask.sum())
        return work[~mask].reset_index(drop=True)

    def _record(self, rule: str, mask: np.ndarray, work: pd.DataFrame, reason) -> None:
        n = int(mask.sum())
        examples = []
        if n and self.cfg.max_examples:
            head = work[mask].head(self.cfg.max_examples)
            for (_, r), why in zip(head.iterrows(), reason(head), strict=True):
                examples.append(
                    {"row": int(r["row"]), "timestamp": _iso(r["timestamp"]), "reason": str(why)}
                )
        self.rules[rule] = {"policy": getattr(self.cfg, rule), "count": n, "examples": examples}

    def _fail(self, rule: str, mask: np.ndarray, work: pd.DataFrame, reason) -> None:
        n = int(mask.sum())
        first = work[mask].head(1)
        row, ts = int(first["row"].iloc[0]), _iso(first["timestamp"].iloc[0])
        options = [p for p in RULE_POLICIES[rule] if p != "fail"]
        alt = " or ".join(f"{CONFIG_PREFIX}.{rule}={_ALTERNATIVE[p]}" for p in options)
        raise ValueError(
            f"{self._where()}: rule '{rule}' failed for {n} row(s); first: row {row} "
            f"(timestamp {ts}): {reason(first)[0]}. {_FIX[rule]}"
            + (f" Or set {alt}." if alt else "")
        )

    def _where(self) -> str:
        return f"{self.source}: symbol {self.symbol} ({self.timeframe})"

    # -- result --------------------------------------------------------------------------------
    def finish(self, work: pd.DataFrame) -> ValidationResult:
        quarantined = _quarantine_frame(self.quarantine, self.columns)
        removed = self.dropped + len(quarantined)
        if self.rows_in and removed / self.rows_in > self.cfg.max_removed_fraction:
            counts = {r: v["count"] for r, v in self.rules.items() if v["count"]}
            raise ValueError(
                f"{self._where()}: validation would remove {removed} of {self.rows_in} rows "
                f"({removed / self.rows_in:.0%}), more than {CONFIG_PREFIX}.max_removed_fraction="
                f"{self.cfg.max_removed_fraction}; counts per rule: {counts}. The data or the "
                "settings (calendar, time zone, timeframe) are probably wrong; raise the limit "
                "only if the removals are expected."
            )
        clean = work[self.columns].reset_index(drop=True)
        if "trade_count" in clean:
            clean["trade_count"] = clean["trade_count"].astype("int64")
        ts = clean["timestamp"]
        report = {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "source": self.source,
            "calendar": self.extra.get("calendar"),
            "rows_in": self.rows_in,
            "rows_out": len(clean),
            "rows_dropped": self.dropped,
            "rows_quarantined": len(quarantined),
            "sorted": self.extra.get("sorted", False),
            "tz_converted_from": self.extra.get("tz_converted_from"),
            "first_timestamp": _iso(ts.iloc[0]) if len(ts) else None,
            "last_timestamp": _iso(ts.iloc[-1]) if len(ts) else None,
            "rules": {
                r: self.rules.get(r, {"policy": getattr(self.cfg, r), "count": 0, "examples": []})
                for r in RULES
            },
        }
        if "gaps" in self.extra:
            report["gaps"] = self.extra["gaps"]
        return ValidationResult(clean=clean, quarantined=quarantined, report=report)


# -- masks and reasons (vectorised; reasons only for flagged rows) ------------------------------


def _note(bad: np.ndarray, why: np.ndarray, mask: np.ndarray, reason) -> None:
    """Flag ``mask`` rows, keeping the first reason found for each row."""
    for i in np.flatnonzero(mask & ~bad):
        why[i] = reason(i)
    bad |= mask


def _value_cols(work: pd.DataFrame) -> list[str]:
    return [c for c in (*PRICE_COLUMNS, "volume", *OPTIONAL_COLUMNS) if c in work]


def _nan_mask(work: pd.DataFrame) -> np.ndarray:
    vals = work[_value_cols(work)].to_numpy("float64")
    return ~np.isfinite(vals).all(axis=1) | work["timestamp"].isna().to_numpy()


def _nan_reason(w: pd.DataFrame) -> list[str]:
    cols = _value_cols(w)
    out = []
    for _, r in w.iterrows():
        bad = [c for c in cols if not np.isfinite(r[c])]
        if pd.isna(r["timestamp"]):
            bad.insert(0, "timestamp")
        out.append("missing/non-finite " + ", ".join(f"{c}={r[c]}" for c in bad))
    return out


def _unsorted_reason(w: pd.DataFrame, work: pd.DataFrame) -> list[str]:
    prev = work["timestamp"].shift(1)
    return [
        f"timestamp {r['timestamp']} is before the previous row's {prev[i]}"
        for i, r in w.iterrows()
    ]


def _duplicate_reason(w: pd.DataFrame, work: pd.DataFrame, kept: np.ndarray) -> list[str]:
    cols = [c for c in work.columns if c != "row"]
    out = []
    for i, r in w.iterrows():
        k = work.iloc[kept[i]]
        same = all(r[c] == k[c] for c in cols)
        out.append(
            f"timestamp {r['timestamp']} repeats row {int(k['row'])}"
            + (" (identical bar)" if same else " (different values; the first row is kept)")
        )
    return out


def _non_positive(work: pd.DataFrame) -> np.ndarray:
    cols = [c for c in (*PRICE_COLUMNS, "vwap") if c in work]
    return (work[cols].to_numpy() <= 0).any(axis=1)


def _price_reason(w: pd.DataFrame) -> list[str]:
    cols = [c for c in (*PRICE_COLUMNS, "vwap") if c in w]
    return [", ".join(f"{c}={r[c]}" for c in cols if r[c] <= 0) + " <= 0" for _, r in w.iterrows()]


def _negative_volume(work: pd.DataFrame) -> np.ndarray:
    cols = [c for c in ("volume", "trade_count") if c in work]
    return (work[cols].to_numpy() < 0).any(axis=1)


def _volume_reason(w: pd.DataFrame) -> list[str]:
    cols = [c for c in ("volume", "trade_count") if c in w]
    return [", ".join(f"{c}={r[c]}" for c in cols if r[c] < 0) + " < 0" for _, r in w.iterrows()]


def _ohlc_bad(work: pd.DataFrame) -> np.ndarray:
    o, h, lo, c = (work[k].to_numpy() for k in PRICE_COLUMNS)
    return (lo > np.minimum(o, c)) | (np.maximum(o, c) > h) | (lo > h)


def _ohlc_reason(w: pd.DataFrame) -> list[str]:
    return [
        f"open={r['open']} high={r['high']} low={r['low']} close={r['close']}: need low <= "
        "min(open, close) and max(open, close) <= high"
        for _, r in w.iterrows()
    ]


def _outliers(work: pd.DataFrame, cfg: ValidationConfig):
    close = work["close"].to_numpy()
    mask = np.zeros(len(close), dtype=bool)
    if len(close) < 2:
        return mask, lambda w: []
    r = np.diff(np.log(close))
    med, sigma = _causal_robust_stats(r, cfg.outlier_window, cfg.outlier_min_periods)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(r - med) / sigma
    mask[1:] = z > cfg.outlier_sigma  # NaN (not enough history, zero spread) compares False
    zr = np.r_[np.nan, z]
    rr = np.r_[np.nan, r]

    def reason(w: pd.DataFrame) -> list[str]:
        return [
            f"log return {rr[i]:+.4f} is {zr[i]:.1f} robust sigmas from the median "
            f"(> {cfg.outlier_sigma})"
            for i in w.index
        ]

    return mask, reason


def _causal_robust_stats(r: np.ndarray, window: int, min_periods: int):
    """Median and robust sigma for each return, from returns strictly before it (module doc)."""
    n = len(r)
    med = np.full(n, np.nan)
    sig = np.full(n, np.nan)
    # First block: expanding over the returns before each one.
    for i in range(min_periods, min(window, n)):
        med[i], sig[i] = _robust(r[:i])
    nb = n // window
    if nb:
        blocks = r[: nb * window].reshape(nb, window)
        bmed = np.median(blocks, axis=1)
        dev = np.abs(blocks - bmed[:, None])
        bsig = 1.4826 * np.median(dev, axis=1)
        bsig = np.where(bsig > 0, bsig, 1.2533 * dev.mean(axis=1))
        # Returns in block b (and the tail after the last full block) use block b - 1.
        owner = np.arange(window, n) // window - 1
        med[window:] = bmed[owner]
        sig[window:] = bsig[owner]
    sig[sig == 0] = np.nan
    return med, sig


def _robust(x: np.ndarray) -> tuple[float, float]:
    m = float(np.median(x))
    dev = np.abs(x - m)
    s = 1.4826 * float(np.median(dev))
    return m, s if s > 0 else 1.2533 * float(dev.mean())


# -- calendar helpers ---------------------------------------------------------------------------


def _bin_starts(seg_start: np.ndarray, seg_end: np.ndarray, step: int) -> np.ndarray:
    """Start of every session-anchored bin of width ``step`` in every segment, sorted."""
    counts = -(-(seg_end - seg_start) // step)  # ceil: the last bin may be shorter
    total = int(counts.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(seg_start, counts) + offsets * step


def _isin_sorted(values: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    if len(sorted_ref) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.clip(np.searchsorted(sorted_ref, values), 0, len(sorted_ref) - 1)
    return sorted_ref[pos] == values


def _gap_summary(expected: np.ndarray, missing: np.ndarray, n_show: int) -> dict[str, Any]:
    """Missing bins grouped into runs of consecutive expected bins: counts, first and largest."""
    idx = np.flatnonzero(missing)
    summary: dict[str, Any] = {"expected": len(expected), "missing": len(idx), "runs": 0}
    summary |= {"largest": [], "first": []}
    if not len(idx):
        return summary
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    sizes = ends - starts + 1

    def run(k: int) -> dict[str, Any]:
        return {
            "start": _iso(pd.Timestamp(expected[starts[k]], tz="UTC")),
            "end": _iso(pd.Timestamp(expected[ends[k]], tz="UTC")),
            "bars": int(sizes[k]),
        }

    summary["runs"] = len(starts)
    summary["largest"] = [run(k) for k in np.argsort(-sizes, kind="stable")[:n_show]]
    summary["first"] = [run(k) for k in range(min(n_show, len(starts)))]
    return summary


def _quarantine_frame(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    cols = ["row", *columns, "rule", "reason"]
    if not parts:
        empty = {
            "row": pd.Series(dtype="int64"),
            "timestamp": pd.Series(dtype=TIMESTAMP_DTYPE),
            **{c: pd.Series(dtype="float64") for c in columns[1:]},
            "rule": pd.Series(dtype="str"),
            "reason": pd.Series(dtype="str"),
        }
        return pd.DataFrame(empty)[cols]
    out = pd.concat(parts, ignore_index=True)[cols]
    return out.astype({"rule": "str", "reason": "str", "row": "int64"})


def _iso(ts: Any) -> str | None:
    return None if pd.isna(ts) else pd.Timestamp(ts).isoformat()
