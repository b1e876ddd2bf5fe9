"""resample_bars / bars_from_trades: hand-computed values, session anchoring, properties, and
no look-ahead (a resampled bar only uses the source bars inside it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deeptrade.data.resample import bars_from_trades, resample_bars
from deeptrade.data.schema import check_bars

# 2024-01-02 14:30 UTC = 09:30 New York, the XNYS open. Row 7 (14:37) is missing on purpose.
HAND = pd.DataFrame(
    [
        ("14:30", 10.0, 11.0, 9.0, 10.5, 100, 10.2, 5),
        ("14:31", 10.5, 12.0, 10.0, 11.0, 200, 11.0, 7),
        ("14:32", 11.0, 11.5, 10.8, 11.2, 50, 11.1, 2),
        ("14:33", 11.2, 11.3, 10.1, 10.2, 150, 10.7, 3),
        ("14:34", 10.2, 10.4, 10.0, 10.3, 0, 10.3, 0),
        ("14:35", 10.3, 10.9, 10.3, 10.8, 120, 10.6, 4),
        ("14:36", 10.8, 13.0, 10.7, 12.5, 300, 12.0, 9),
        ("14:38", 12.5, 12.6, 11.9, 12.0, 80, 12.2, 1),
        ("14:39", 12.0, 12.1, 9.5, 9.8, 50, 10.0, 2),
    ],
    columns=["timestamp", "open", "high", "low", "close", "volume", "vwap", "trade_count"],
)
HAND["timestamp"] = pd.to_datetime("2024-01-02 " + HAND["timestamp"]).dt.tz_localize("UTC")
HAND["timestamp"] = HAND["timestamp"].astype("datetime64[ns, UTC]")
HAND["volume"] = HAND["volume"].astype("float64")


def _frame(rows):
    df = pd.DataFrame(rows, columns=list(HAND.columns))
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return df.astype({"volume": "float64", "trade_count": "int64"})


@pytest.mark.parametrize("calendar", [None, "XNYS"])
def test_hand_computed_5m_and_15m(calendar):
    out = resample_bars(HAND, "5m", calendar=calendar)
    expected = _frame(
        [
            ("2024-01-02 14:30", 10.0, 12.0, 9.0, 10.3, 500.0, 5380 / 500, 17),
            ("2024-01-02 14:35", 10.3, 13.0, 9.5, 9.8, 550.0, 6348 / 550, 16),
        ]
    )
    pd.testing.assert_frame_equal(out, expected)
    out = resample_bars(HAND, "15m", calendar=calendar)
    expected = _frame([("2024-01-02 14:30", 10.0, 13.0, 9.0, 9.8, 1050.0, 11728 / 1050, 33)])
    pd.testing.assert_frame_equal(out, expected)


def test_zero_volume_bar_vwap_is_its_close():
    df = HAND.iloc[[4]].reset_index(drop=True)  # volume 0
    out = resample_bars(df, "5m")
    assert out["vwap"].iloc[0] == out["close"].iloc[0] == 10.3


def _session_minutes(day: str, open_utc: str, close_utc: str, seed: int = 0) -> pd.DataFrame:
    ts = pd.date_range(
        f"{day} {open_utc}",
        f"{day} {close_utc}",
        freq="1min",
        tz="UTC",
        inclusive="left",
        unit="ns",
    )
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(ts))))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": open_,
            "high": np.maximum(open_, close) + 0.01,
            "low": np.minimum(open_, close) - 0.01,
            "close": close,
            "volume": rng.integers(1, 100, len(ts)).astype("float64"),
        }
    )


def test_xnys_hours_anchor_at_the_open_and_keep_the_short_last_bar():
    df = pd.concat(
        [
            _session_minutes("2024-01-02", "14:30", "21:00", seed=1),
            _session_minutes("2023-11-24", "14:30", "18:00", seed=2),  # early close 13:00 ET
        ]
    ).sort_values("timestamp", ignore_index=True)
    out = resample_bars(df, "1h", calendar="XNYS")
    labels = out["timestamp"].dt.strftime("%m-%d %H:%M").tolist()
    assert labels == [
        "11-24 14:30", "11-24 15:30", "11-24 16:30", "11-24 17:30",
        "01-02 14:30", "01-02 15:30", "01-02 16:30", "01-02 17:30", "01-02 18:30",
        "01-02 19:30", "01-02 20:30",
    ]  # fmt: skip
    # The short last bars hold 30 minutes: 17:30-18:00 (early close) and 20:30-21:00.
    last = df[df["timestamp"] >= pd.Timestamp("2024-01-02 20:30", tz="UTC")]
    assert out["volume"].iloc[-1] == last["volume"].sum()
    assert out["close"].iloc[-1] == df["close"].iloc[-1]
    daily = resample_bars(df, "1d", calendar="XNYS")
    assert daily["timestamp"].dt.strftime("%Y-%m-%d").tolist() == ["2023-11-24", "2024-01-02"]
    assert (daily["timestamp"] == daily["timestamp"].dt.normalize()).all()
    assert daily["volume"].sum() == df["volume"].sum()


def test_cme_daily_bars_are_sessions_that_open_the_evening_before():
    from deeptrade.data.sources import load_sample

    es = load_sample("intraday")["ES"]
    daily = resample_bars(es, "1d", calendar="CMES")
    assert daily["timestamp"].dt.strftime("%Y-%m-%d").tolist() == ["2013-09-02", "2013-09-03"]
    first = es[es["timestamp"] < pd.Timestamp("2013-09-02 22:00", tz="UTC")]
    assert daily["open"].iloc[0] == first["open"].iloc[0]  # Sunday 17:00 CT is in Monday's bar
    assert daily["volume"].iloc[0] == first["volume"].sum()
    assert daily["trade_count"].sum() == 500_000  # every trade of the tick sample
    # Without a calendar a day is the UTC date: Sunday evening is a bar of its own.
    utc_days = resample_bars(es, "1d")
    assert utc_days["timestamp"].dt.day.tolist() == [1, 2, 3]
    hours = resample_bars(es, "1h", calendar="CMES")
    assert hours["timestamp"].iloc[0] == pd.Timestamp("2013-09-01 22:00", tz="UTC")
    check_bars(hours)


def _random_minutes(seed: int) -> pd.DataFrame:
    """Three XNYS sessions of 1m bars with ~30 % of minutes missing (no trade, no bar)."""
    days = [
        ("2024-03-08", "14:30", "21:00"),
        ("2024-03-11", "13:30", "20:00"),
        ("2024-03-12", "13:30", "20:00"),
    ]  # fmt: skip  (US DST starts 2024-03-10)
    df = pd.concat([_session_minutes(*d, seed=seed + i) for i, d in enumerate(days)])
    keep = np.random.default_rng(seed).random(len(df)) > 0.3
    df = df[keep].reset_index(drop=True)
    df["vwap"] = (df["high"] + df["low"]) / 2
    df["trade_count"] = np.random.default_rng(seed).integers(0, 20, len(df))
    return df


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("target", ["5m", "15m", "1h", "1d"])
@pytest.mark.parametrize("calendar", [None, "XNYS"])
def test_properties_against_pandas_resample(seed, target, calendar):
    df = _random_minutes(seed)
    out = resample_bars(df, target, calendar=calendar)
    check_bars(out)
    assert out["volume"].sum() == pytest.approx(df["volume"].sum(), rel=1e-12)
    assert out["trade_count"].sum() == df["trade_count"].sum()
    # Reference: pandas resample. XNYS opens at :30 UTC in both seasons, so its session
    # anchoring equals hourly bins offset by 30 minutes; 5m/15m/1d bins coincide anyway.
    offset = "30min" if (calendar and target == "1h") else None
    freq = {"5m": "5min", "15m": "15min", "1h": "1h", "1d": "1D"}[target]
    anchor = {} if target == "1d" else {"origin": "epoch", "offset": offset}  # days: UTC dates
    ref = (
        df.set_index("timestamp")
        .resample(freq, **anchor)
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna(subset=["open"])
        .reset_index()
    )
    cols = ["timestamp", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(out[cols], ref[cols].astype({"volume": "float64"}))


@pytest.mark.parametrize("target", ["5m", "1h"])
def test_no_look_ahead(target):
    """Each bar uses only the source bars inside [label, label + target): perturbing any
    source bar changes only the one resampled bar that contains it."""
    df = _random_minutes(7)
    base = resample_bars(df, target, calendar="XNYS")
    rng = np.random.default_rng(0)
    for i in rng.choice(len(df), size=10, replace=False):
        changed = df.copy()
        changed.loc[i, ["open", "high", "low", "close", "vwap"]] *= 1.5
        changed.loc[i, "volume"] += 1000
        out = resample_bars(changed, target, calendar="XNYS")
        t = df.loc[i, "timestamp"]
        inside = (base["timestamp"] <= t) & (t < base["timestamp"] + pd.Timedelta(target))
        assert inside.sum() == 1
        pd.testing.assert_frame_equal(out[~inside], base[~inside])
        assert not out[inside].equals(base[inside])


def test_source_bars_end_within_their_bar():
    df = _random_minutes(3)
    out = resample_bars(df, "15m", calendar="XNYS")
    pos = np.searchsorted(out["timestamp"].array.asi8, df["timestamp"].array.asi8, side="right") - 1
    label = out["timestamp"].iloc[pos].reset_index(drop=True)
    assert (df["timestamp"] >= label).all()
    assert (df["timestamp"] + pd.Timedelta("1min") <= label + pd.Timedelta("15min")).all()


def test_bars_outside_the_calendar_are_refused():
    df = _session_minutes("2024-01-02", "14:00", "15:00")  # starts 30 min before the open
    with pytest.raises(
        ValueError, match=r"30 bar\(s\) lie outside its trading hours.*off_calendar"
    ):
        resample_bars(df, "5m", calendar="XNYS")


def test_invalid_targets():
    with pytest.raises(ValueError, match="cannot resample 1m bars to 1m"):
        resample_bars(HAND, "1m")
    with pytest.raises(ValueError, match="unknown timeframe '2h'"):
        resample_bars(HAND, "2h")
    with pytest.raises(ValueError, match="cannot resample 1d bars to 1h"):
        resample_bars(HAND, "1h", source_timeframe="1d")
    five = resample_bars(HAND, "5m")
    assert len(resample_bars(five, "15m", source_timeframe="5m")) == 1


def test_empty_input():
    out = resample_bars(HAND.iloc[0:0], "5m")
    assert out.empty and list(out.columns) == list(HAND.columns)


def test_bars_from_trades_hand_computed():
    ts = pd.Series(
        pd.to_datetime(
            [
                "2024-01-02 14:30:05",
                "2024-01-02 14:30:59",
                "2024-01-02 14:30:01",
                "2024-01-02 14:32:00",
            ],
            utc=True,
        )  # fmt: skip  (unsorted on purpose)
    )
    out = bars_from_trades(ts, np.array([10.0, 12.0, 11.0, 9.0]), np.array([1, 3, 2, 5]))
    expected = _frame(
        [
            ("2024-01-02 14:30", 11.0, 12.0, 10.0, 12.0, 6.0, (11 * 2 + 10 + 12 * 3) / 6, 3),
            ("2024-01-02 14:32", 9.0, 9.0, 9.0, 9.0, 5.0, 9.0, 1),
        ]
    )
    pd.testing.assert_frame_equal(out, expected)
