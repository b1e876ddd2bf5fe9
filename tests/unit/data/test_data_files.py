"""read_bars_file on real fixture files, and a bad-input suite of real files in tmp_path.

Every bad input must end in a ValueError that names the file and, where rows are at fault,
the row and the rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeptrade.data.schema import check_bars
from deeptrade.data.sources import read_bars_file
from deeptrade.data.validate import ValidationConfig, validate_bars

ASSETS = Path(__file__).parents[2] / "assets" / "data"
AAPL_CSV = ASSETS / "aapl_daily_2008-09.csv"  # real AAPL rows (bokeh_sampledata, Quandl WIKI)
ES_CSV = ASSETS / "es_1m_2013-09-01.csv"  # first 20 1m bars of the mlfinpy E-mini sample


def _validate(df, path, timeframe="1d", **cfg):
    return validate_bars(
        df, symbol="X", timeframe=timeframe, source=str(path), config=ValidationConfig(**cfg)
    )


# -- good files --------------------------------------------------------------------------------


def test_reads_yahoo_style_daily_csv():
    frames = read_bars_file(AAPL_CSV, symbol="AAPL", timestamp_col="Date")
    df = frames["AAPL"]
    assert list(df.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert df["timestamp"].iloc[0] == pd.Timestamp("2008-09-02", tz="UTC")  # dates: 00:00 UTC
    assert df["close"].iloc[0] == 166.19 and df["volume"].dtype == "float64"
    res = _validate(df, AAPL_CSV, calendar="XNYS")
    assert res.report["rows_out"] == 21 and res.report["gaps"]["missing"] == 0
    check_bars(res.clean)


def test_reads_multi_symbol_csv_with_utc_offsets():
    frames = read_bars_file(ES_CSV)
    assert list(frames) == ["ES"]
    df = frames["ES"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["trade_count"].dtype == "int64"
    assert df["timestamp"].iloc[0] == pd.Timestamp("2013-09-01 22:00", tz="UTC")
    check_bars(_validate(df, ES_CSV, timeframe="1m").clean)


def test_symbol_selects_from_a_multi_symbol_file(tmp_path):
    a = pd.read_csv(ES_CSV)
    b = a.assign(symbol="NQ")
    path = tmp_path / "two.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    assert sorted(read_bars_file(path)) == ["ES", "NQ"]
    assert list(read_bars_file(path, symbol="NQ")) == ["NQ"]
    with pytest.raises(ValueError, match=rf"{path}: no rows for symbol 'YM'"):
        read_bars_file(path, symbol="YM")


def test_parquet_roundtrip_any_unit_and_zone(tmp_path):
    df = read_bars_file(ES_CSV)["ES"]
    out = df.copy()
    out["timestamp"] = (
        out["timestamp"].dt.tz_convert("America/Chicago").astype("datetime64[us, America/Chicago]")
    )
    path = tmp_path / "es.parquet"
    out.to_parquet(path)
    back = read_bars_file(path, symbol="ES")["ES"]
    pd.testing.assert_frame_equal(back, df)


def test_naive_times_with_tz_are_localised(tmp_path):
    path = tmp_path / "ny.csv"
    pd.DataFrame(
        {
            "timestamp": ["2024-01-02 09:30:00", "2024-07-01 09:30:00"],  # EST, then EDT
            **{c: [1.0, 1.0] for c in ("open", "high", "low", "close", "volume")},
        }
    ).to_csv(path, index=False)
    df = read_bars_file(path, symbol="X", tz="America/New_York")["X"]
    assert list(df["timestamp"].dt.hour) == [14, 13]  # 14:30 and 13:30 UTC


# -- bad files ----------------------------------------------------------------------------------


@pytest.fixture
def good(tmp_path):
    """A clean 1m frame in file form; tests corrupt copies of it."""
    df = pd.read_csv(ES_CSV)
    return df


def _write(tmp_path, df, name="bars.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return path


def test_truncated_parquet(tmp_path, good):
    path = _write(tmp_path, good, "bars.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{path}: not a readable Parquet file.*re-download"):
        read_bars_file(path)


def test_garbage_parquet(tmp_path):
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    with pytest.raises(ValueError, match=rf"{path}: not a readable Parquet file"):
        read_bars_file(path)


@pytest.mark.parametrize("name", ["bars.csv", "bars.parquet"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{path}: the file is empty"):
        read_bars_file(path, symbol="X")


def test_header_only_csv(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(ValueError, match=rf"{path}: the file has a header but no rows"):
        read_bars_file(path, symbol="X")


def test_missing_column(tmp_path, good):
    path = _write(tmp_path, good.drop(columns="volume"))
    with pytest.raises(ValueError, match=rf"{path}: missing column\(s\) \['volume'\]"):
        read_bars_file(path)


def test_missing_timestamp_column_suggests_timestamp_col(tmp_path, good):
    path = _write(tmp_path, good.rename(columns={"timestamp": "time"}))
    with pytest.raises(ValueError, match="pass timestamp_col="):
        read_bars_file(path)
    assert len(read_bars_file(path, timestamp_col="time")["ES"]) == 20


def test_no_symbol_column_needs_symbol(tmp_path, good):
    path = _write(tmp_path, good.drop(columns="symbol"))
    with pytest.raises(ValueError, match=rf"{path}: the file has no 'symbol' column.*symbol="):
        read_bars_file(path)


def test_tz_naive_intraday(tmp_path, good):
    good["timestamp"] = good["timestamp"].str.rstrip("Z")
    path = _write(tmp_path, good)
    with pytest.raises(ValueError, match=rf"{path}: the timestamps have no time zone.*tz="):
        read_bars_file(path)


def test_some_timestamps_without_offset(tmp_path, good):
    good.loc[7, "timestamp"] = good.loc[7, "timestamp"].rstrip("Z")
    path = _write(tmp_path, good)
    with pytest.raises(ValueError, match=rf"{path}: row 7: timestamp .* has no UTC offset"):
        read_bars_file(path)


def test_unparseable_timestamp(tmp_path, good):
    good.loc[5, "timestamp"] = "yesterday"
    path = _write(tmp_path, good)
    with pytest.raises(ValueError, match=rf"{path}: row 5: cannot parse timestamp 'yesterday'"):
        read_bars_file(path)


def test_dst_ambiguous_time(tmp_path):
    path = tmp_path / "ambiguous.csv"
    pd.DataFrame(
        {
            "timestamp": ["2020-11-01 01:30:00"],
            **{c: [1.0] for c in ("open", "high", "low", "close", "volume")},
        }
    ).to_csv(path, index=False)
    with pytest.raises(
        ValueError, match=rf"{path}: cannot place the timestamps in 'America/New_York'"
    ):
        read_bars_file(path, symbol="X", tz="America/New_York")


def test_nan_rows(tmp_path, good):
    good.loc[[4, 9], "close"] = np.nan
    path = _write(tmp_path, good)
    df = read_bars_file(path)["ES"]
    with pytest.raises(ValueError, match=rf"{path}: symbol X \(1m\): rule 'nan' failed for 2 row"):
        _validate(df, path, timeframe="1m", nan="fail")
    res = _validate(df, path, timeframe="1m", max_removed_fraction=0.5)
    assert list(res.quarantined["row"]) == [4, 9]  # file data rows (CSV lines 6 and 11)


def test_negative_volume(tmp_path, good):
    good.loc[12, "volume"] = -3
    path = _write(tmp_path, good, "bars.parquet")
    df = read_bars_file(path)["ES"]
    with pytest.raises(
        ValueError,
        match=(
            rf"{path}: .*rule 'negative_volume' failed for 1 row\(s\); first: row 12 \(timestamp "
            r"2013-09-01T22:12:00\+00:00\): volume=-3.0 < 0.*negative_volume=drop"
        ),
    ):
        _validate(df, path, timeframe="1m", negative_volume="fail")


def test_duplicate_and_unsorted_timestamps(tmp_path, good):
    good.loc[3, "timestamp"] = good.loc[2, "timestamp"]
    good = good.iloc[[0, 1, 2, 3, 4, 5, 6, 8, 7, *range(9, 20)]]
    path = _write(tmp_path, good)
    df = read_bars_file(path)["ES"]
    with pytest.raises(ValueError, match=rf"{path}: .*rule 'unsorted'.*row 8 "):
        _validate(df, path, timeframe="1m", unsorted="fail")
    with pytest.raises(
        ValueError, match=rf"{path}: .*rule 'duplicate_timestamp'.*row 3 .*repeats row 2"
    ):
        _validate(df, path, timeframe="1m", duplicate_timestamp="fail")


def test_string_prices(tmp_path, good):
    good["high"] = good["high"].astype("str")
    good.loc[6, "high"] = "1,641.00"
    path = _write(tmp_path, good)
    df = read_bars_file(path)["ES"]
    with pytest.raises(
        ValueError, match=rf"{path}: .*rule 'schema'.*row 6 .*high='1,641.00' is not a number"
    ):
        _validate(df, path, timeframe="1m")


def test_unknown_extension(tmp_path):
    path = tmp_path / "bars.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown file type"):
        read_bars_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_bars_file(tmp_path / "nope.csv")
