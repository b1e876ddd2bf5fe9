"""News ingest: formats agree, dedupe, error policy, and the Alpaca client against a fake server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from deeptrade.sentiment.news import (
    NEWS_COLUMNS,
    AlpacaNewsConfig,
    NewsFetchError,
    NewsReadConfig,
    fetch_alpaca_news,
    load_alpaca_credentials,
    normalize_headline,
    read_news,
)
from tests.fakes.alpaca_data import add_news_routes, news_item
from tests.fakes.server import FakeServer, Fault
from tests.unit.sentiment.helpers import HEADLINES

KEY, SECRET = "test-key", "test-secret"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_jsonl_normalised_table(news_items: pd.DataFrame) -> None:
    assert list(news_items.columns) == NEWS_COLUMNS
    assert len(news_items) == 40
    assert str(news_items["created_at"].dtype) == "datetime64[ns, UTC]"
    assert news_items["created_at"].is_monotonic_increasing
    no_symbol = news_items[news_items["symbols"].map(len) == 0]
    assert set(no_symbol["id"]) == {"h007", "h018", "h029", "h040"}  # kept, just not joined
    assert news_items.set_index("id").loc["h006", "symbols"] == ["AAPL", "MSFT"]


def test_csv_and_parquet_read_the_same_as_jsonl(tmp_path: Path, news_items: pd.DataFrame) -> None:
    rows = _lines(HEADLINES)
    csv = pd.DataFrame(rows).assign(symbols=lambda d: d["symbols"].map(",".join))
    csv.to_csv(tmp_path / "news.csv", index=False)
    parquet = pd.DataFrame(rows).assign(created_at=lambda d: pd.to_datetime(d["created_at"]))
    parquet.to_parquet(tmp_path / "news.parquet")
    for name in ("news.csv", "news.parquet"):
        got = read_news([tmp_path / name]).items
        pd.testing.assert_frame_equal(got, news_items, check_dtype=False)


def test_dedupe_by_id_then_normalised_headline_keeps_earliest(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "created_at": "2024-01-02T10:00:00Z", "headline": "Apple beats estimates"},
        {"id": "a", "created_at": "2024-01-02T09:00:00Z", "headline": "Apple beats estimates!"},
        {
            "id": "b",
            "created_at": "2024-01-02T08:00:00Z",
            "headline": "  APPLE   beats, estimates ",
        },
        {"id": "c", "created_at": "2024-01-02T11:00:00Z", "headline": "Apple misses estimates"},
    ]
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    load = read_news([path])
    assert list(load.items["id"]) == ["b", "c"]  # b is the earliest copy of that headline
    assert load.duplicates == 2
    assert normalize_headline("  APPLE   beats, estimates ") == "apple beats estimates"


def test_offsets_are_converted_to_utc_and_naive_times_need_assume_tz(tmp_path: Path) -> None:
    path = tmp_path / "tz.jsonl"
    path.write_text(
        json.dumps({"id": 1, "created_at": "2024-01-02T09:30:00-05:00", "headline": "x"})
        + "\n"
        + json.dumps({"id": 2, "created_at": "2024-01-02T15:00:00", "headline": "y"})
    )
    with pytest.raises(ValueError, match=r"tz.jsonl:2: created_at .* has no UTC offset"):
        read_news([path])
    items = read_news([path], NewsReadConfig(assume_tz="UTC")).items
    assert list(items["created_at"]) == [pd.Timestamp("2024-01-02T14:30Z")] * 1 + [
        pd.Timestamp("2024-01-02T15:00Z")
    ]
    assert list(items["id"]) == ["1", "2"]


def test_malformed_jsonl_line_raises_with_file_and_line_or_is_skipped(tmp_path: Path) -> None:
    good = HEADLINES.read_text().splitlines()
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([good[0], '{"id": "x", "headline": "trunc', good[1], "[1, 2]"]))
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        read_news([path])
    load = read_news([path], NewsReadConfig(on_bad_record="skip"))
    assert list(load.items["id"]) == ["h001", "h002"]
    assert [(Path(s.file).name, s.line) for s in load.skips] == [("bad.jsonl", 2), ("bad.jsonl", 4)]
    assert "expected a JSON object" in load.skips[1].reason


def test_wall_clock_words_are_not_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "now.jsonl"
    path.write_text(json.dumps({"id": "1", "created_at": "now", "headline": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"now\.jsonl:1: created_at 'now' is not an ISO-8601"):
        read_news([path])


def test_missing_field_is_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "nohead.jsonl"
    path.write_text(json.dumps({"id": "1", "created_at": "2024-01-02T09:30:00Z"}) + "\n")
    with pytest.raises(ValueError, match=r"nohead\.jsonl:1: missing field 'headline'"):
        read_news([path])
    # Nothing usable left after skipping: still an error, never an empty table.
    with pytest.raises(ValueError, match="no usable news items"):
        read_news([path], NewsReadConfig(on_bad_record="skip"))


def test_non_utf8_bytes_always_raise_with_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    good = HEADLINES.read_text().splitlines()[0]
    path.write_bytes(good.encode() + b"\n" + '{"id": "z", "headline": "Café"}'.encode("latin-1"))
    for config in (NewsReadConfig(), NewsReadConfig(on_bad_record="skip")):
        with pytest.raises(ValueError, match=r"latin1\.jsonl:2: bytes that are not UTF-8.*iconv"):
            read_news([path], config)
    csv = tmp_path / "latin1.csv"
    csv.write_bytes(b"id,created_at,headline\n1,2024-01-02T09:30:00Z,Caf\xe9 opens\n")
    with pytest.raises(ValueError, match=r"latin1\.csv:2: bytes that are not UTF-8"):
        read_news([csv])


def test_empty_inputs_raise(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.jsonl: empty news file"):
        read_news([tmp_path / "empty.jsonl"])
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"blank\.jsonl: no news items"):
        read_news([tmp_path / "blank.jsonl"])
    with pytest.raises(ValueError, match="no such news file"):
        read_news([tmp_path / "missing.jsonl"])
    pd.DataFrame({"id": ["1"], "headline": ["x"]}).to_parquet(tmp_path / "nocol.parquet")
    with pytest.raises(ValueError, match=r"nocol\.parquet: missing column\(s\) \['created_at'\]"):
        read_news([tmp_path / "nocol.parquet"])


def test_directory_input_reads_every_news_file(tmp_path: Path) -> None:
    rows = _lines(HEADLINES)
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:20]))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows[15:]))  # overlaps
    (tmp_path / "notes.txt").write_text("ignored")
    load = read_news([tmp_path])
    assert len(load.items) == 40 and load.duplicates == 5


def test_credentials_from_env_or_private_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match="credentials missing"):
        load_alpaca_credentials()
    f = tmp_path / "alpaca.env"
    f.write_text("APCA_API_KEY_ID=k1\nexport APCA_API_SECRET_KEY='s1'\n")
    os.chmod(f, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_alpaca_credentials(f)
    os.chmod(f, 0o600)
    assert load_alpaca_credentials(f) == ("k1", "s1")
    monkeypatch.setenv("APCA_API_KEY_ID", "k2")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s2")
    assert load_alpaca_credentials(f) == ("k2", "s2")


# -- Alpaca News API through alpaca-py, against a real local HTTP server ---------------------------


def _api_items(n: int) -> list[dict]:
    start = pd.Timestamp("2024-03-01T13:00:00Z")
    return [
        news_item(
            1000 + i,
            headline=f"Company {i} reports results number {i}",
            created_at=start + pd.Timedelta(minutes=7 * i),
            symbols=["AAPL"] if i % 3 else [],
            summary=f"summary {i}",
        )
        for i in range(n)
    ]


def _config(url: str, **kw) -> AlpacaNewsConfig:
    fields = {"base_url": url, "page_size": 10, "min_interval_s": 0.0, "backoff_s": 0.01}
    return AlpacaNewsConfig(**{**fields, **kw})


def test_fetch_paginates_and_normalises() -> None:
    with FakeServer() as srv:
        add_news_routes(srv, _api_items(37), api_key=KEY, secret_key=SECRET)
        load = fetch_alpaca_news(_config(srv.url), api_key=KEY, secret_key=SECRET)
        requests = [r for r in srv.log if r.path == "/v1beta1/news"]
    assert len(requests) == 4  # 10 + 10 + 10 + 7
    assert [r.arg("limit") for r in requests] == ["10"] * 4
    assert requests[0].arg("sort") == "asc" and requests[1].arg("page_token")
    items = load.items
    assert list(items.columns) == NEWS_COLUMNS and len(items) == 37
    assert items["id"].iloc[0] == "1000" and items["symbols"].iloc[0] == []
    assert items["created_at"].iloc[1] == pd.Timestamp("2024-03-01T13:07:00Z")


def test_fetch_passes_symbols_and_range() -> None:
    with FakeServer() as srv:
        add_news_routes(srv, _api_items(30), api_key=KEY, secret_key=SECRET)
        config = _config(
            srv.url,
            symbols=["AAPL"],
            start="2024-03-01T14:00:00Z",
            end="2024-03-01T15:00:00Z",
        )
        items = fetch_alpaca_news(config, api_key=KEY, secret_key=SECRET).items
    times = items["created_at"]
    assert len(items) > 0 and all(s == ["AAPL"] for s in items["symbols"])
    assert times.min() >= pd.Timestamp("2024-03-01T14:00Z")
    assert times.max() <= pd.Timestamp("2024-03-01T15:00Z")


def test_fetch_times_out_and_retries_a_stalled_request() -> None:
    with FakeServer() as srv:
        add_news_routes(srv, _api_items(15), api_key=KEY, secret_key=SECRET)
        srv.fault("GET", r"/v1beta1/news", Fault(stall_s=1.5, times=1))
        t0 = time.monotonic()
        load = fetch_alpaca_news(
            _config(srv.url, read_timeout_s=0.3), api_key=KEY, secret_key=SECRET
        )
        elapsed = time.monotonic() - t0
    assert len(load.items) == 15
    assert elapsed < 1.4  # the stalled request was abandoned at the timeout, not waited out


def test_fetch_gives_up_after_bounded_retries() -> None:
    with FakeServer() as srv:
        add_news_routes(srv, _api_items(5), api_key=KEY, secret_key=SECRET)
        srv.fault("GET", r"/v1beta1/news", Fault(stall_s=1.0, times=10))
        t0 = time.monotonic()
        with pytest.raises(NewsFetchError, match=r"page 1 .* failed after 2 retries"):
            fetch_alpaca_news(
                _config(srv.url, read_timeout_s=0.2, max_retries=2), api_key=KEY, secret_key=SECRET
            )
        assert time.monotonic() - t0 < 2.0
        assert len([r for r in srv.log if r.path == "/v1beta1/news"]) == 3


def test_fetch_retries_rate_limit_and_server_errors() -> None:
    with FakeServer() as srv:
        add_news_routes(srv, _api_items(25), api_key=KEY, secret_key=SECRET)
        srv.fault("GET", r"/v1beta1/news", Fault(status=429, times=1))
        srv.fault("GET", r"/v1beta1/news", Fault(status=503, times=1))
        load = fetch_alpaca_news(_config(srv.url), api_key=KEY, secret_key=SECRET)
        assert len(load.items) == 25
        assert len([r for r in srv.log if r.path == "/v1beta1/news"]) == 3 + 2


def test_fetch_paces_requests() -> None:
    with FakeServer() as srv:
        add_news_routes(srv, _api_items(30), api_key=KEY, secret_key=SECRET)
        t0 = time.monotonic()
        fetch_alpaca_news(_config(srv.url, min_interval_s=0.2), api_key=KEY, secret_key=SECRET)
        assert time.monotonic() - t0 >= 0.4  # 3 requests, 2 gaps of >= 0.2 s


def test_fetch_wrong_credentials_fail_clearly() -> None:
    with FakeServer() as srv:
        add_news_routes(srv, _api_items(3), api_key=KEY, secret_key=SECRET)
        with pytest.raises(NewsFetchError, match="APIError"):
            fetch_alpaca_news(_config(srv.url), api_key=KEY, secret_key="wrong")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="page_size"):
        AlpacaNewsConfig(page_size=51)
    with pytest.raises(ValueError, match="needs a UTC offset"):
        AlpacaNewsConfig(start="2024-01-01")
    with pytest.raises(ValueError, match="on_bad_record"):
        NewsReadConfig(on_bad_record="ignore")  # type: ignore[arg-type]
