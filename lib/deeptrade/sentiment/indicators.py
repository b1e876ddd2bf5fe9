"""Twelve point-in-time sentiment indicators per symbol and bar.

The cut-off of a bar is ``bar_close - latency`` with ``bar_close = bar start + timeframe``. An
indicator at that bar uses only news with ``created_at <= cutoff`` (inclusive: an item stamped
exactly at the cut-off counts; one a nanosecond later does not). A window of width ``w`` is the
half-open interval ``(cutoff - w, cutoff]``. Per symbol the news times are sorted once, prefix
sums are built once, and every window of every bar is two ``searchsorted`` look-ups into them,
so look-ahead is impossible by construction: nothing after the cut-off is ever indexed.

Columns (all float64; "score" is p_positive - p_negative, one row per item and symbol):

=====================  =====================================================================
sent_mean_1h .. _7d    mean score over 1h, 4h, 1d, 3d, 7d windows; NaN when the window is empty
sent_count_1d          number of items in the 1d window
sent_pos_share_1d      share of 1d items labelled positive; NaN when empty
sent_neg_share_1d      share of 1d items labelled negative; NaN when empty
sent_decay             sum of scores of all items up to the cut-off, each weighted by
                       2 ** (-age / half_life); 0 when there was no news (a "sentiment stock":
                       grows with volume of news, fades with time)
sent_momentum          sent_mean_1d - sent_mean_7d; NaN when either is NaN
sent_dispersion_1d     sample standard deviation (ddof=1) of 1d scores; NaN below 2 items
sent_surprise          the 1d mean against its own 30-day history: with m_k the 1d mean over
                       (cutoff - (k+1) days, cutoff - k days] for k = 1..surprise_days (the same
                       time of day on each earlier day; empty days are left out), and mu, sigma
                       the mean and sample std (ddof=1) of those m_k,
                       surprise = (sent_mean_1d - mu) / sigma. NaN when sent_mean_1d is NaN,
                       fewer than surprise_min_days m_k exist, or sigma is 0.
=====================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd

FEATURE_NAMES = [
    "sent_mean_1h",
    "sent_mean_4h",
    "sent_mean_1d",
    "sent_mean_3d",
    "sent_mean_7d",
    "sent_count_1d",
    "sent_pos_share_1d",
    "sent_neg_share_1d",
    "sent_decay",
    "sent_momentum",
    "sent_dispersion_1d",
    "sent_surprise",
]
_MEAN_WINDOWS = {"sent_mean_1h": "1h", "sent_mean_4h": "4h", "sent_mean_1d": "1D"}
_MEAN_WINDOWS |= {"sent_mean_3d": "3D", "sent_mean_7d": "7D"}
_DAY = pd.Timedelta("1D").value


def sentiment_feature_names() -> list[str]:
    """The 12 indicator columns, in output order (part of the feature contract)."""
    return list(FEATURE_NAMES)


@dataclass(kw_only=True)
class IndicatorConfig:
    """Bar geometry and indicator parameters."""

    timeframe: str = "1h"
    """Bar length (pandas Timedelta string); a bar closes at its start + timeframe."""
    latency: str = "60s"
    """Time between a bar's close and the moment its features are used; news after
    close - latency is not seen by that bar."""
    half_life: str = "6h"
    """Half-life of sent_decay."""
    surprise_days: int = 30
    """Earlier days forming sent_surprise's baseline."""
    surprise_min_days: int = 5
    """Fewer earlier days with news than this makes sent_surprise NaN."""

    def __post_init__(self) -> None:
        for name in ("timeframe", "latency", "half_life"):
            try:
                pd.Timedelta(getattr(self, name))
            except ValueError:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not a duration (e.g. '1h', '60s')"
                ) from None
        if pd.Timedelta(self.timeframe) <= pd.Timedelta(0):
            raise ValueError(f"timeframe must be positive, got {self.timeframe!r}")
        if pd.Timedelta(self.latency) < pd.Timedelta(0):
            raise ValueError(f"latency must be >= 0, got {self.latency!r}")
        if pd.Timedelta(self.half_life) <= pd.Timedelta(0):
            raise ValueError(f"half_life must be positive, got {self.half_life!r}")
        if not 2 <= self.surprise_min_days <= self.surprise_days:
            raise ValueError(
                "need 2 <= surprise_min_days <= surprise_days, got "
                f"{self.surprise_min_days} and {self.surprise_days}"
            )


@numba.njit(cache=True)
def _decayed_sums(t: np.ndarray, s: np.ndarray, half_life_ns: float) -> np.ndarray:
    """Decayed sum of scores right after each (sorted) item: E_k = s_k + E_{k-1} 2^(-dt/h)."""
    out = np.empty(len(t))
    acc = 0.0
    for k in range(len(t)):
        if k > 0:
            acc *= 2.0 ** (-(t[k] - t[k - 1]) / half_life_ns)
        acc += s[k]
        out[k] = acc
    return out


def _prefix(x: np.ndarray) -> np.ndarray:
    return np.concatenate(([0.0], np.cumsum(x, dtype=np.float64)))


def indicators_for_symbol(
    news_ns: np.ndarray,
    scores: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    cutoff_ns: np.ndarray,
    config: IndicatorConfig,
) -> dict[str, np.ndarray]:
    """Kernel: one symbol's news (sorted int64 ns times, scores, 0/1 label flags) -> columns.

    ``cutoff_ns`` (int64 ns, any order) are the bars' cut-offs; results align with it.
    """
    assert np.all(np.diff(news_ns) >= 0), "news times must be sorted"
    cs, cs2 = _prefix(scores), _prefix(scores * scores)
    cpos, cneg = _prefix(positive), _prefix(negative)
    hi = np.searchsorted(news_ns, cutoff_ns, side="right")

    def window(
        end: np.ndarray, width: int, end_idx: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        top = np.searchsorted(news_ns, end, side="right") if end_idx is None else end_idx
        lo = np.searchsorted(news_ns, end - width, side="right")
        return lo, top, (top - lo).astype(np.float64)

    def mean(lo: np.ndarray, top: np.ndarray, n: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, (cs[top] - cs[lo]) / n, np.nan)

    out: dict[str, np.ndarray] = {}
    for name, width in _MEAN_WINDOWS.items():
        out[name] = mean(*window(cutoff_ns, pd.Timedelta(width).value, hi))

    lo, top, n = window(cutoff_ns, _DAY, hi)
    out["sent_count_1d"] = n
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sent_pos_share_1d"] = np.where(n > 0, (cpos[top] - cpos[lo]) / n, np.nan)
        out["sent_neg_share_1d"] = np.where(n > 0, (cneg[top] - cneg[lo]) / n, np.nan)
        s1, s2 = cs[top] - cs[lo], cs2[top] - cs2[lo]
        var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
        out["sent_dispersion_1d"] = np.where(n >= 2, np.sqrt(var), np.nan)

    half_life = float(pd.Timedelta(config.half_life).value)
    decayed = _decayed_sums(news_ns.astype(np.float64), scores.astype(np.float64), half_life)
    last = np.maximum(hi - 1, 0)
    if len(news_ns):
        age = (cutoff_ns - news_ns[last]).astype(np.float64)
        out["sent_decay"] = np.where(hi > 0, decayed[last] * np.exp2(-age / half_life), 0.0)
    else:
        out["sent_decay"] = np.zeros(len(cutoff_ns))

    out["sent_momentum"] = out["sent_mean_1d"] - out["sent_mean_7d"]

    # Two passes over the earlier days (mean, then squared deviations) instead of holding a
    # days x bars matrix; each pass is surprise_days pairs of searchsorted.
    days = range(1, config.surprise_days + 1)
    total, count = np.zeros(len(cutoff_ns)), np.zeros(len(cutoff_ns))
    for k in days:
        m = mean(*window(cutoff_ns - k * _DAY, _DAY))
        ok = ~np.isnan(m)
        total[ok] += m[ok]
        count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = total / count
    sq = np.zeros(len(cutoff_ns))
    for k in days:
        m = mean(*window(cutoff_ns - k * _DAY, _DAY))
        ok = ~np.isnan(m)
        sq[ok] += (m[ok] - mu[ok]) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(sq / (count - 1))
        z = (out["sent_mean_1d"] - mu) / sigma
    valid = (count >= config.surprise_min_days) & (sigma > 0) & ~np.isnan(out["sent_mean_1d"])
    out["sent_surprise"] = np.where(valid, z, np.nan)
    return {name: out[name] for name in FEATURE_NAMES}


def _utc_ns(values: pd.Series, what: str) -> np.ndarray:
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"{what} must be tz-aware UTC timestamps (dtype {values.dtype}); "
            "use pd.to_datetime(..., utc=True)"
        )
    return values.dt.tz_convert("UTC").dt.as_unit("ns").to_numpy("datetime64[ns]").view(np.int64)


def sentiment_indicators(
    scores: pd.DataFrame, bars: pd.DataFrame, config: IndicatorConfig
) -> pd.DataFrame:
    """Indicators for every bar: ``bars`` (symbol, timestamp = bar start, UTC) -> the same rows
    and order with ``symbol``, ``timestamp`` and the 12 ``sent_*`` columns.

    ``scores`` is the scorer's table (symbol, created_at, score, label); rows without a symbol
    are ignored, symbols without news get empty-window values (NaN, 0 for count and decay).
    """
    for frame, required, what in (
        (scores, ("symbol", "created_at", "score", "label"), "scores"),
        (bars, ("symbol", "timestamp"), "bars"),
    ):
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
    shift = pd.Timedelta(config.timeframe).value - pd.Timedelta(config.latency).value
    cutoff = _utc_ns(bars["timestamp"], "bars.timestamp") + shift
    news = scores[scores["symbol"].notna()]
    news_ns = _utc_ns(news["created_at"], "scores.created_at")
    score = news["score"].to_numpy(np.float64)
    label = news["label"].to_numpy(dtype=object)
    news_rows = _positions(news["symbol"].to_numpy(dtype=object))

    result = {name: np.empty(len(bars)) for name in FEATURE_NAMES}
    empty = np.empty(0, dtype=np.int64)
    for sym, rows in _positions(bars["symbol"].to_numpy(dtype=object)).items():
        idx = news_rows.get(sym, empty)
        idx = idx[np.argsort(news_ns[idx], kind="stable")]
        cols = indicators_for_symbol(
            news_ns[idx],
            score[idx],
            (label[idx] == "positive").astype(np.float64),
            (label[idx] == "negative").astype(np.float64),
            cutoff[rows],
            config,
        )
        for name in FEATURE_NAMES:
            result[name][rows] = cols[name]
    out = bars[["symbol", "timestamp"]].reset_index(drop=True)
    for name in FEATURE_NAMES:
        out[name] = result[name]
    return out


def _positions(values: np.ndarray) -> dict[object, np.ndarray]:
    """Row positions of each distinct value, in row order."""
    codes, uniques = pd.factorize(values)
    if (codes < 0).any():
        raise ValueError("bars.symbol has missing values")
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return {u: order[bounds[i] : bounds[i + 1]] for i, u in enumerate(uniques)}
