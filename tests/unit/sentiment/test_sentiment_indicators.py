"""Indicators: hand-computed values, the inclusive cut-off, perturbation, and a brute-force twin."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deeptrade.sentiment.indicators import (
    FEATURE_NAMES,
    IndicatorConfig,
    sentiment_feature_names,
    sentiment_indicators,
)

UTC = "UTC"
CFG = IndicatorConfig(timeframe="1h", latency="60s", half_life="6h")


def _scores(rows: list[tuple[str, str | None, float, str]]) -> pd.DataFrame:
    """(created_at, symbol, score, label) -> a scores table as the scorer writes it."""
    return pd.DataFrame(
        {
            "id": [f"n{i}" for i in range(len(rows))],
            "created_at": pd.to_datetime([r[0] for r in rows], utc=True),
            "symbol": pd.Series([r[1] for r in rows], dtype="str"),
            "score": [r[2] for r in rows],
            "label": [r[3] for r in rows],
        }
    )


def _bars(symbol: str, starts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "timestamp": pd.to_datetime(starts, utc=True)})


NEWS = _scores(
    [
        ("2024-03-01T10:00:00Z", "AAPL", -0.9, "negative"),  # inside 7d, outside 3d
        ("2024-03-04T09:00:00Z", "AAPL", 0.5, "positive"),
        ("2024-03-04T12:00:00Z", "AAPL", -0.4, "negative"),
        ("2024-03-04T13:30:00Z", "AAPL", 0.1, "neutral"),
        ("2024-03-04T13:30:00Z", None, 0.9, "positive"),  # no symbol: never joined
        ("2024-03-04T13:10:00Z", "MSFT", 0.7, "positive"),
    ]
)


def test_names_are_the_contract() -> None:
    assert sentiment_feature_names() == FEATURE_NAMES and len(FEATURE_NAMES) == 12
    assert all(n.startswith("sent_") for n in FEATURE_NAMES)


def test_hand_computed_values() -> None:
    # Bar 13:00-14:00, latency 60 s: cut-off 13:59:00.
    out = sentiment_indicators(NEWS, _bars("AAPL", ["2024-03-04T13:00:00Z"]), CFG).iloc[0]
    assert list(out.index) == ["symbol", "timestamp", *FEATURE_NAMES]
    assert out["sent_mean_1h"] == pytest.approx(0.1)  # only 13:30
    assert out["sent_mean_4h"] == pytest.approx((-0.4 + 0.1) / 2)  # (09:59, 13:59]
    assert out["sent_mean_1d"] == pytest.approx((0.5 - 0.4 + 0.1) / 3)
    assert out["sent_mean_3d"] == pytest.approx((0.5 - 0.4 + 0.1) / 3)  # 03-01 10:00 is 3d+4h ago
    assert out["sent_mean_7d"] == pytest.approx((-0.9 + 0.5 - 0.4 + 0.1) / 4)
    assert out["sent_count_1d"] == 3
    assert out["sent_pos_share_1d"] == pytest.approx(1 / 3)
    assert out["sent_neg_share_1d"] == pytest.approx(1 / 3)
    m = 0.2 / 3
    var = ((0.5 - m) ** 2 + (-0.4 - m) ** 2 + (0.1 - m) ** 2) / 2
    assert out["sent_dispersion_1d"] == pytest.approx(math.sqrt(var))
    age_h = {-0.9: 75.98333333333333, 0.5: 4.98333333333333, -0.4: 1.98333333333333, 0.1: 29 / 60}
    decay = sum(s * 2 ** (-a / 6) for s, a in age_h.items())
    assert out["sent_decay"] == pytest.approx(decay, rel=1e-12)
    assert out["sent_momentum"] == pytest.approx(m - (-0.175))
    assert np.isnan(out["sent_surprise"])  # no earlier days with news but one


def test_empty_windows() -> None:
    bars = _bars("AAPL", ["2024-02-01T00:00:00Z"])
    bars = pd.concat([bars, _bars("TSLA", ["2024-03-04T13:00:00Z"])], ignore_index=True)
    out = sentiment_indicators(NEWS, bars, CFG)
    for i in range(2):  # before any news; a symbol without news
        row = out.iloc[i]
        assert row["sent_count_1d"] == 0 and row["sent_decay"] == 0
        nan_cols = [c for c in FEATURE_NAMES if c not in ("sent_count_1d", "sent_decay")]
        assert row[nan_cols].isna().all()


def test_cutoff_is_inclusive_and_one_second_later_is_not_seen() -> None:
    bar = _bars("AAPL", ["2024-03-10T13:00:00Z"])  # cut-off 13:59:00
    at = _scores([("2024-03-10T13:59:00Z", "AAPL", 0.8, "positive")])
    after = _scores([("2024-03-10T13:59:01Z", "AAPL", 0.8, "positive")])
    seen = sentiment_indicators(at, bar, CFG).iloc[0]
    unseen = sentiment_indicators(after, bar, CFG).iloc[0]
    assert seen["sent_count_1d"] == 1 and seen["sent_mean_1h"] == 0.8
    assert unseen["sent_count_1d"] == 0 and np.isnan(unseen["sent_mean_1h"])
    # The next bar (cut-off 14:59:00) sees it.
    nxt = sentiment_indicators(after, _bars("AAPL", ["2024-03-10T14:00:00Z"]), CFG).iloc[0]
    assert nxt["sent_count_1d"] == 1


def test_surprise_definition() -> None:
    # One item at 12:00 on each of the 5 days before, scores .1 .. .5; today's 1d mean is .6.
    rows = [
        (f"2024-03-{d:02d}T12:00:00Z", "AAPL", s, "neutral")
        for d, s in zip(range(5, 10), [0.1, 0.2, 0.3, 0.4, 0.5], strict=True)
    ]
    rows.append(("2024-03-10T12:00:00Z", "AAPL", 0.6, "positive"))
    out = sentiment_indicators(_scores(rows), _bars("AAPL", ["2024-03-10T13:00:00Z"]), CFG)
    sigma = np.std([0.1, 0.2, 0.3, 0.4, 0.5], ddof=1)
    assert out["sent_surprise"].iloc[0] == pytest.approx((0.6 - 0.3) / sigma)
    strict = IndicatorConfig(surprise_min_days=6)
    bars = _bars("AAPL", ["2024-03-10T13:00:00Z"])
    assert np.isnan(sentiment_indicators(_scores(rows), bars, strict)["sent_surprise"].iloc[0])


def _random_news(seed: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz=UTC)
    # Whole minutes, some exactly on bar cut-offs (hh:59:00), so edges are exercised.
    minutes = np.sort(rng.integers(0, 45 * 24 * 60, size=n))
    scores = np.round(rng.uniform(-1, 1, size=n), 3)
    labels = np.where(scores > 0.3, "positive", np.where(scores < -0.3, "negative", "neutral"))
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "created_at": start + pd.to_timedelta(minutes, unit="min"),
            "symbol": pd.Series(rng.choice(["AAPL", "MSFT", None], size=n), dtype="str"),
            "score": scores,
            "label": labels,
        }
    )


def _random_bars() -> pd.DataFrame:
    starts = pd.date_range("2024-02-10", periods=60, freq="5h", tz=UTC)
    bars = pd.concat([_bars(s, list(starts)) for s in ("MSFT", "AAPL", "TSLA")])
    return bars.sample(frac=1, random_state=0).reset_index(drop=True)  # any order works


def _brute_force(news: pd.DataFrame, bars: pd.DataFrame, cfg: IndicatorConfig) -> pd.DataFrame:
    """One bar at a time with boolean masks: slow, obvious, independent of the kernel."""
    ns = {k: pd.Timedelta(k).value for k in ("1h", "4h", "1D", "3D", "7D")}
    shift = pd.Timedelta(cfg.timeframe).value - pd.Timedelta(cfg.latency).value
    half_life = pd.Timedelta(cfg.half_life).value
    t_all = news["created_at"].dt.as_unit("ns").astype("int64").to_numpy()
    rows = []
    for sym, start in zip(
        bars["symbol"], bars["timestamp"].dt.as_unit("ns").astype("int64"), strict=True
    ):
        cut = start + shift
        is_sym = (news["symbol"] == sym).to_numpy()
        t, s = t_all[is_sym], news["score"].to_numpy()[is_sym]
        lab = news["label"].to_numpy()[is_sym]

        def mean(end: int, width: str, t=t, s=s) -> float:
            w = s[(t <= end) & (t > end - ns[width])]
            return float(w.mean()) if len(w) else np.nan

        in1d = (t <= cut) & (t > cut - ns["1D"])
        n = int(in1d.sum())
        r = {f"sent_mean_{k.lower()}": mean(cut, k) for k in ("1h", "4h", "1D", "3D", "7D")}
        r["sent_count_1d"] = float(n)
        r["sent_pos_share_1d"] = (lab[in1d] == "positive").mean() if n else np.nan
        r["sent_neg_share_1d"] = (lab[in1d] == "negative").mean() if n else np.nan
        past = t <= cut
        r["sent_decay"] = float((s[past] * 2.0 ** (-(cut - t[past]) / half_life)).sum())
        r["sent_momentum"] = r["sent_mean_1d"] - r["sent_mean_7d"]
        r["sent_dispersion_1d"] = float(np.std(s[in1d], ddof=1)) if n >= 2 else np.nan
        days = [mean(cut - k * ns["1D"], "1D") for k in range(1, cfg.surprise_days + 1)]
        days = [x for x in days if not np.isnan(x)]
        sd = np.std(days, ddof=1) if len(days) >= 2 else np.nan
        ok = len(days) >= cfg.surprise_min_days and sd > 0 and not np.isnan(r["sent_mean_1d"])
        r["sent_surprise"] = (r["sent_mean_1d"] - np.mean(days)) / sd if ok else np.nan
        rows.append(r)
    return pd.DataFrame(rows)[FEATURE_NAMES]


def test_matches_brute_force_on_random_news() -> None:
    news, bars = _random_news(1), _random_bars()
    got = sentiment_indicators(news, bars, CFG)
    assert got[["symbol", "timestamp"]].equals(bars[["symbol", "timestamp"]])
    want = _brute_force(news, bars, CFG)
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert got["sent_surprise"].notna().sum() > 30  # the baseline really was exercised


def test_perturbing_the_future_leaves_the_past_unchanged() -> None:
    news, bars = _random_news(2), _random_bars()
    before = sentiment_indicators(news, bars, CFG)
    t = pd.Timestamp("2024-02-16T00:00:00Z")
    changed = news.copy()
    future = changed["created_at"] > t
    changed.loc[future, "score"] = -changed.loc[future, "score"]
    changed.loc[future, "label"] = "negative"
    extra = _random_news(3, n=50).assign(
        created_at=lambda d: t + pd.Timedelta("1s") + (d["created_at"] - d["created_at"].min())
    )
    changed = pd.concat([changed, extra], ignore_index=True)
    after = sentiment_indicators(changed, bars, CFG)
    cutoffs = bars["timestamp"] + pd.Timedelta("1h") - pd.Timedelta("60s")
    past = (cutoffs <= t).to_numpy()
    assert past.sum() > 50 and (~past).sum() > 50
    pd.testing.assert_frame_equal(after[past], before[past], check_exact=True)
    assert not after[~past].equals(before[~past])


def test_latency_and_timeframe_move_the_cutoff() -> None:
    news = _scores([("2024-03-10T13:58:30Z", "AAPL", 0.5, "positive")])
    bar = _bars("AAPL", ["2024-03-10T13:00:00Z"])
    assert sentiment_indicators(news, bar, CFG)["sent_count_1d"].iloc[0] == 1
    slow = IndicatorConfig(latency="2min")  # cut-off 13:58:00
    assert sentiment_indicators(news, bar, slow)["sent_count_1d"].iloc[0] == 0
    daily = IndicatorConfig(timeframe="1D", latency="0s")
    day_bar = _bars("AAPL", ["2024-03-10T00:00:00Z"])
    assert sentiment_indicators(news, day_bar, daily)["sent_count_1d"].iloc[0] == 1


def test_bad_inputs() -> None:
    bars = _bars("AAPL", ["2024-03-10T13:00:00Z"])
    with pytest.raises(ValueError, match="tz-aware UTC"):
        sentiment_indicators(
            NEWS, bars.assign(timestamp=bars["timestamp"].dt.tz_localize(None)), CFG
        )
    with pytest.raises(ValueError, match=r"scores lacks column\(s\) \['label'\]"):
        sentiment_indicators(NEWS.drop(columns="label"), bars, CFG)
    with pytest.raises(ValueError, match="latency"):
        IndicatorConfig(latency="-1s")
    with pytest.raises(ValueError, match="not a duration"):
        IndicatorConfig(half_life="soon")
