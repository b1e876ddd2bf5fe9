"""Every validation rule triggers on a hand-made bad frame, and every policy does what it says."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deeptrade.data.schema import check_bars
from deeptrade.data.validate import RULE_POLICIES, RULES, ValidationConfig, validate_bars

SRC = "bars/AAPL.csv"


def _run(df, timeframe="1m", **cfg):
    return validate_bars(
        df, symbol="AAPL", timeframe=timeframe, source=SRC, config=ValidationConfig(**cfg)
    )


# Each case: a frame with exactly one bad row (at the returned timestamp) for one rule.
def _schema(bars):
    df = bars()
    df["close"] = df["close"].astype("object")
    df.loc[3, "close"] = "abc"
    return df, 3, {}


def _nan(bars):
    df = bars()
    df.loc[3, "close"] = np.nan
    return df, 3, {}


def _duplicate(bars):
    df = bars()
    df.loc[4, "timestamp"] = df.loc[3, "timestamp"]
    return df, 4, {}


def _non_positive(bars):
    df = bars()
    df.loc[3, "low"] = 0.0
    return df, 3, {}


def _negative_volume(bars):
    df = bars()
    df.loc[3, "volume"] = -5.0
    return df, 3, {}


def _ohlc(bars):
    df = bars()
    df.loc[3, "high"] = df.loc[3, "low"] - 1.0
    return df, 3, {}


def _off_calendar(bars):
    df = bars()
    df.loc[0, "timestamp"] = pd.Timestamp("2024-01-02 13:00", tz="UTC")  # 08:00 New York
    return df, 0, {"calendar": "XNYS"}


def _outlier(bars):
    df = bars(300)
    # A level shift (like an unadjusted 1:3 reverse split): one huge close-to-close return.
    df.loc[280:, ["open", "high", "low", "close", "vwap"]] *= 3.0
    return df, 280, {}


ROW_CASES = {
    "schema": _schema,
    "nan": _nan,
    "duplicate_timestamp": _duplicate,
    "non_positive_price": _non_positive,
    "negative_volume": _negative_volume,
    "ohlc_inconsistent": _ohlc,
    "off_calendar": _off_calendar,
    "return_outlier": _outlier,
}


@pytest.mark.parametrize("rule", sorted(ROW_CASES))
def test_fail_names_source_symbol_row_rule_and_fix(bars, rule):
    df, bad_row, cfg = ROW_CASES[rule](bars)
    with pytest.raises(ValueError) as err:
        _run(df, **cfg, **{rule: "fail"})
    msg = str(err.value)
    assert SRC in msg and "AAPL" in msg and f"rule '{rule}'" in msg
    assert f"row {bad_row} " in msg
    if rule not in ("schema",):  # schema's bad row keeps its (valid) timestamp too
        assert str(df.loc[bad_row, "timestamp"].isoformat()) in msg
    assert f"data.validation.{rule}=" in msg  # says which setting changes the behaviour


@pytest.mark.parametrize("rule", sorted(ROW_CASES))
@pytest.mark.parametrize("policy", ["drop", "quarantine", "warn"])
def test_row_policies(bars, rule, policy):
    df, bad_row, cfg = ROW_CASES[rule](bars)
    if policy not in RULE_POLICIES[rule]:
        with pytest.raises(ValueError, match=f"data.validation.{rule}='{policy}' is not valid"):
            ValidationConfig(**{rule: policy})
        return
    res = _run(df, **cfg, **{rule: policy})
    rep = res.report
    assert rep["rules"][rule]["count"] == 1
    assert rep["rules"][rule]["examples"][0]["row"] == bad_row
    check_bars(res.clean)  # the output always meets the contract
    kept_rows = len(res.clean)
    if policy == "warn":
        assert kept_rows == len(df) and res.quarantined.empty
    elif policy == "drop":
        assert kept_rows == len(df) - 1 and res.quarantined.empty
        assert rep["rows_dropped"] == 1
    else:
        assert kept_rows == len(df) - 1 and rep["rows_quarantined"] == 1
        q = res.quarantined.iloc[0]
        assert q["rule"] == rule and q["row"] == bad_row and q["reason"]
    json.dumps(rep)  # JSON-serialisable


def test_unsorted_drop_sorts_without_losing_rows(bars):
    df = bars()
    df = df.iloc[[0, 1, 2, 4, 3, 5, 6, 7, 8, 9]]  # index labels stay the original row numbers
    res = _run(df)  # default unsorted=drop
    assert res.report["rules"]["unsorted"]["count"] == 1 and res.report["sorted"]
    assert len(res.clean) == 10 and res.clean["timestamp"].is_monotonic_increasing
    pd.testing.assert_frame_equal(res.clean, bars())
    with pytest.raises(ValueError, match=r"rule 'unsorted'.*row 3 .*unsorted=drop"):
        _run(df, unsorted="fail")
    with pytest.raises(ValueError, match="unsorted='quarantine' is not valid"):
        ValidationConfig(unsorted="quarantine")


def test_duplicates_keep_first_in_input_order_and_say_if_identical(bars):
    df = bars(5)
    dup = df.iloc[[2]].copy()
    conflicting = df.iloc[[2]].copy()
    conflicting["close"] = conflicting["high"]
    df = pd.concat([df, dup, conflicting], ignore_index=True)
    res = _run(df, max_removed_fraction=1.0)
    assert len(res.clean) == 5
    pd.testing.assert_frame_equal(res.clean, bars(5))
    reasons = list(res.quarantined["reason"])
    assert "identical" in reasons[0] and "different values" in reasons[1]
    assert list(res.quarantined["row"]) == [5, 6]


def test_tz_naive_fails_with_fix(bars):
    df = bars()
    df["timestamp"] = df["timestamp"].dt.tz_localize(None)
    with pytest.raises(ValueError, match=r"rule 'tz_naive'.*tz="):
        _run(df)
    with pytest.raises(ValueError, match="tz_naive='drop' is not valid"):
        ValidationConfig(tz_naive="drop")


def test_non_utc_zone_is_converted_and_reported(bars):
    df = bars()
    df["timestamp"] = df["timestamp"].dt.tz_convert("America/New_York")
    res = _run(df)
    assert str(res.clean["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert res.report["tz_converted_from"] == "America/New_York"


def test_missing_column_always_fails(bars):
    df = bars().drop(columns="volume")
    for policy in ("drop", "quarantine"):
        with pytest.raises(ValueError, match=r"missing column\(s\) \['volume'\]"):
            _run(df, schema=policy)


def test_schema_timestamp_alignment(bars):
    df = bars()
    df.loc[2, "timestamp"] += pd.Timedelta(seconds=30)
    res = _run(df, schema="quarantine")
    assert list(res.quarantined["row"]) == [2]
    assert "whole minute" in res.quarantined["reason"].iloc[0]
    daily = bars(5, start="2024-01-02 05:00", freq="1D")  # stamped like Alpaca: not 00:00 UTC
    with pytest.raises(ValueError, match="not labelled 00:00 UTC"):
        _run(daily, timeframe="1d")


def test_fractional_trade_count_and_string_volume(bars):
    df = bars()
    df["trade_count"] = df["trade_count"].astype("float64")
    df.loc[1, "trade_count"] = 2.5
    df["volume"] = df["volume"].astype("str")
    df.loc[4, "volume"] = "n/a?"
    res = _run(df, schema="quarantine", max_removed_fraction=1.0)
    assert list(res.quarantined["row"]) == [1, 4]
    assert res.clean["trade_count"].dtype == "int64" and res.clean["volume"].dtype == "float64"


def test_nan_also_catches_inf_and_nat(bars):
    df = bars()
    df.loc[1, "vwap"] = np.inf
    df.loc[6, "timestamp"] = pd.NaT
    res = _run(df, max_removed_fraction=1.0)
    assert list(res.quarantined["row"]) == [1, 6]
    assert (res.quarantined["rule"] == "nan").all()


def test_calendar_gap_warn_reports_and_fail_fails(bars):
    df = bars(30).drop(index=[10, 11, 12, 20]).reset_index(drop=True)
    res = _run(df, calendar="XNYS")
    gaps = res.report["gaps"]
    assert gaps["missing"] == 4 and gaps["runs"] == 2
    assert gaps["largest"][0] == {
        "start": "2024-01-02T14:40:00+00:00",
        "end": "2024-01-02T14:42:00+00:00",
        "bars": 3,
    }
    assert len(res.clean) == 26  # gaps never remove rows
    with pytest.raises(ValueError, match=r"rule 'calendar_gap'.*14:40.*calendar_gap=warn"):
        _run(df, calendar="XNYS", calendar_gap="fail")
    with pytest.raises(ValueError, match="calendar_gap='drop' is not valid"):
        ValidationConfig(calendar_gap="drop")


def test_daily_calendar_uses_session_dates(bars):
    # 2024-01-02 .. 2024-01-12 calendar days include a weekend: two bars there are off-calendar.
    df = bars(11, start="2024-01-02", freq="1D")
    res = _run(df, timeframe="1d", calendar="XNYS", max_removed_fraction=1.0)
    assert res.report["rules"]["off_calendar"]["count"] == 2
    assert sorted(res.quarantined["timestamp"].dt.day_name()) == ["Saturday", "Sunday"]
    assert res.report["gaps"]["missing"] == 0
    # A missing session (2024-01-03) is a gap.
    res = _run(df.drop(index=[1, 4, 5]), timeframe="1d", calendar="XNYS", max_removed_fraction=1)
    assert res.report["gaps"]["missing"] == 1
    assert res.report["gaps"]["first"][0]["start"] == "2024-01-03T00:00:00+00:00"


def test_removing_too_many_rows_fails(bars):
    df = bars()
    df.loc[[1, 2], "volume"] = -1.0
    with pytest.raises(ValueError, match=r"remove 2 of 10 rows \(20%\).*max_removed_fraction"):
        _run(df)
    assert len(_run(df, max_removed_fraction=0.25).clean) == 8


def test_outliers_only_use_past_data(bars):
    df = bars(2000, seed=3)
    df.loc[1500, ["open", "high", "low", "close", "vwap"]] *= 1.5
    df.loc[1501, "open"] *= 1.5
    df.loc[1501, "high"] = max(df.loc[1501, "high"], df.loc[1501, "open"])
    base = _run(df, outlier_sigma=6.0).report["rules"]["return_outlier"]
    assert base["count"] >= 1 and base["examples"][0]["row"] == 1500
    flagged = {e["row"] for e in base["examples"]}
    # Make the future (rows >= 1700) wildly more volatile: flags before it must not change.
    future = df.copy()
    noise = np.exp(np.random.default_rng(9).normal(0, 0.05, 300))
    for col in ("open", "high", "low", "close", "vwap"):
        future.loc[1700:, col] = future.loc[1700:, col].to_numpy() * noise
    future.loc[1700:, "high"] = future.loc[1700:, ["open", "high", "low", "close"]].max(axis=1)
    future.loc[1700:, "low"] = future.loc[1700:, ["open", "high", "low", "close"]].min(axis=1)
    after = _run(future, outlier_sigma=6.0, max_examples=50).report["rules"]["return_outlier"]
    assert {e["row"] for e in after["examples"] if e["row"] < 1700} == flagged


def test_index_labels_are_reported_as_rows(bars):
    df = bars()
    df.index = range(100, 110)
    df.loc[105, "volume"] = -1.0
    with pytest.raises(ValueError, match="row 105 "):
        _run(df, negative_volume="fail")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown exchange calendar 'NOPE'"):
        ValidationConfig(calendar="NOPE")
    with pytest.raises(ValueError, match="outlier_sigma"):
        ValidationConfig(outlier_sigma=0)
    with pytest.raises(ValueError, match="outlier_min_periods"):
        ValidationConfig(outlier_min_periods=500, outlier_window=250)
    assert set(RULES) == set(RULE_POLICIES)


def test_clean_frame_passes_untouched_and_report_lists_every_rule(bars):
    df = bars(50)
    res = _run(df, calendar="XNYS")
    pd.testing.assert_frame_equal(res.clean, df)
    assert set(res.report["rules"]) == set(RULES)
    assert res.report["rows_in"] == res.report["rows_out"] == 50
    assert list(res.quarantined.columns) == ["row", *df.columns, "rule", "reason"]


def test_validates_a_million_rows_quickly(bars):
    import time

    df = bars(1_000_000, start="2020-01-01", seed=1)
    df.loc[[10, 500_000], "volume"] = -1.0
    t0 = time.perf_counter()
    res = _run(df)
    elapsed = time.perf_counter() - t0
    assert len(res.clean) == 1_000_000 - 2
    assert elapsed < 10, f"validate_bars took {elapsed:.1f}s on 1M rows"
