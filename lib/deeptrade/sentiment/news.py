"""News ingest: files (JSONL / Parquet / CSV) and the Alpaca News API -> one normalised table.

Every source ends in the same table, ``NEWS_COLUMNS``:

``id`` (str), ``created_at`` (``datetime64[ns, UTC]``), ``headline`` (str), ``summary`` (str,
may be empty), ``symbols`` (list of upper-case str, may be empty: such items are kept but never
joined to a symbol), ``source`` (str, may be empty). Rows are sorted by (created_at, id).

Duplicates are dropped after normalisation: first by ``id``, then by the normalised headline
(casefolded, every run of whitespace/punctuation collapsed to one space). The earliest
``created_at`` wins both times because that is when the market first saw the story; the later
copy's symbols are not merged in (a later tag would leak into the earlier timestamp).

Error policy (by case):

- empty input file, or no usable item in any input: ``ValueError`` naming the file(s);
- bytes that are not UTF-8: ``ValueError`` naming file and line, always (a wrong encoding is a
  property of the whole file; skipping lines would silently drop data);
- a line that is not a JSON object, or a record without id / headline / valid created_at:
  ``on_bad_record="raise"`` (default) raises ``ValueError`` naming file and line;
  ``on_bad_record="skip"`` records a ``NewsSkip(file, line, reason)`` and goes on;
- a Parquet/CSV file without a required column: ``ValueError`` naming file and column.

``line`` is the physical line for JSONL, the 1-based data row + 1 for CSV (the header is line
1), and the 1-based row for Parquet. Readers never write anything, so nothing partial can exist.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

NEWS_COLUMNS = ["id", "created_at", "headline", "summary", "symbols", "source"]
REQUIRED_FIELDS = ("id", "created_at", "headline")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUFFIXES = (*JSONL_SUFFIXES, ".parquet", ".csv")

_PUNCT_OR_SPACE = re.compile(r"[\W_]+")
_SYMBOL_SPLIT = re.compile(r"[,;\s]+")


@dataclass(kw_only=True)
class NewsReadConfig:
    """How news files are read and normalised."""

    on_bad_record: Literal["raise", "skip"] = "raise"
    """What a malformed line/record does: raise ``ValueError`` or record a ``NewsSkip``."""
    assume_tz: str | None = None
    """Time zone for timestamps without an offset (e.g. "UTC"); None rejects them as bad records."""

    def __post_init__(self) -> None:
        if self.on_bad_record not in ("raise", "skip"):
            raise ValueError(f"on_bad_record must be 'raise' or 'skip', got {self.on_bad_record!r}")


@dataclass(kw_only=True)
class NewsSkip:
    """One record left out, and why (see the module docstring for what ``line`` means)."""

    file: str
    line: int
    reason: str


@dataclass(kw_only=True)
class NewsLoad:
    """Normalised, deduplicated items plus what was left out on the way."""

    items: pd.DataFrame
    skips: list[NewsSkip] = field(default_factory=list)
    duplicates: int = 0
    """Rows dropped as duplicates (by id, then by normalised headline)."""


class _BadRecord(Exception):
    """A record that cannot be normalised; turned into a ValueError or a NewsSkip by the caller."""


# -- normalisation -------------------------------------------------------------------------------


def normalize_headline(text: str) -> str:
    """Dedupe key: casefolded, whitespace/punctuation runs collapsed to one space."""
    return _PUNCT_OR_SPACE.sub(" ", text.casefold()).strip()


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN from CSV/Parquet
        return ""
    return str(value).strip()


def _parse_symbols(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):  # a JSON list stored in a CSV cell
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise _BadRecord(f"symbols {value!r} is not a JSON list: {e}") from None
        else:
            value = [s for s in _SYMBOL_SPLIT.split(value) if s]
    if not isinstance(value, Iterable):
        raise _BadRecord(f"symbols must be a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for s in value:
        if not isinstance(s, str):
            raise _BadRecord(f"symbols must be a list of strings, got element {s!r}")
        s = s.strip().upper()
        if s and s not in out:
            out.append(s)
    return out


def _parse_time(value: Any, assume_tz: str | None) -> pd.Timestamp:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        raise _BadRecord("created_at is missing")
    if not isinstance(value, (str, pd.Timestamp)) and not hasattr(value, "tzinfo"):
        raise _BadRecord(f"created_at must be an ISO-8601 string, got {value!r}")
    if isinstance(value, str) and not value.strip()[:1].isdigit():
        # pd.Timestamp would read "now" or "today" as the wall clock: never a publication time.
        raise _BadRecord(f"created_at {value!r} is not an ISO-8601 timestamp")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise _BadRecord(f"created_at {value!r} is not an ISO-8601 timestamp ({e})") from None
    if ts is pd.NaT:
        raise _BadRecord("created_at is missing")
    if ts.tzinfo is None:
        if assume_tz is None:
            raise _BadRecord(
                f"created_at {value!r} has no UTC offset; write it as e.g. "
                "'2024-03-04T13:05:00Z' or set assume_tz"
            )
        ts = ts.tz_localize(assume_tz)
    return ts.tz_convert("UTC")


def _normalize(record: Any, assume_tz: str | None) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise _BadRecord(f"expected a JSON object, got {type(record).__name__}")
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise _BadRecord(f"missing field {name!r}")
    news_id = _text(record["id"])
    if not news_id:
        raise _BadRecord("id is empty")
    headline = _text(record["headline"])
    if not headline:
        raise _BadRecord("headline is empty")
    return {
        "id": news_id,
        "created_at": _parse_time(record["created_at"], assume_tz),
        "headline": headline,
        "summary": _text(record.get("summary")),
        "symbols": _parse_symbols(record.get("symbols")),
        "source": _text(record.get("source")),
    }


def _collect(
    records: Iterable[tuple[str, int, Any]], config: NewsReadConfig
) -> tuple[list[dict[str, Any]], list[NewsSkip]]:
    rows: list[dict[str, Any]] = []
    skips: list[NewsSkip] = []
    for file, line, record in records:
        try:
            if isinstance(record, _BadRecord):
                raise record
            rows.append(_normalize(record, config.assume_tz))
        except _BadRecord as e:
            if config.on_bad_record == "raise":
                raise ValueError(
                    f"{file}:{line}: {e}. Fix or remove that record, or pass "
                    "on_bad_record='skip' to record it as a skip and go on."
                ) from None
            skips.append(NewsSkip(file=file, line=line, reason=str(e)))
    return rows, skips


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        df = pd.DataFrame({c: pd.Series(dtype=object) for c in NEWS_COLUMNS})
    else:
        df = pd.DataFrame(rows, columns=NEWS_COLUMNS)
    df["id"] = df["id"].astype("str")
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True).dt.as_unit("ns")
    for c in ("headline", "summary", "source"):
        df[c] = df[c].astype("str")
    return df


def dedupe_news(items: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop duplicate ids, then duplicate normalised headlines (earliest kept); sort by time, id.

    Use it again after concatenating several ``NewsLoad.items`` (e.g. files + API).
    """
    df = items.sort_values(["created_at", "id"], kind="stable")
    n = len(df)
    df = df.drop_duplicates("id", keep="first")
    key = df["headline"].map(normalize_headline)
    df = df[~key.duplicated(keep="first")]
    return df.reset_index(drop=True), n - len(df)


# -- files ---------------------------------------------------------------------------------------


def _decode(raw: bytes, file: str, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{file}:{line}: bytes that are not UTF-8 at column {e.start + 1} "
            f"({raw[e.start : e.start + 4]!r}). Re-encode the file, e.g. "
            f"`iconv -f latin1 -t utf-8 {file} > fixed{Path(file).suffix}`."
        ) from None


def _jsonl_records(path: Path) -> Iterator[tuple[str, int, Any]]:
    file = str(path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            text = _decode(raw, file, lineno).strip()
            if not text:
                continue  # blank lines carry nothing; not an error
            try:
                record: Any = json.loads(text)
            except json.JSONDecodeError as e:
                # Handed on as the record so it meets the same raise/skip policy as the others.
                record = _BadRecord(f"not valid JSON ({e.msg} at column {e.colno})")
            yield file, lineno, record


def _check_utf8(path: Path) -> None:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            _decode(raw, str(path), lineno)


def _table_records(path: Path) -> Iterator[tuple[str, int, Any]]:
    file = str(path)
    if path.suffix == ".csv":
        _check_utf8(path)
        # Everything as text: ids like "007" must not become 7, symbols stay a cell string.
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        first_line = 2
    else:
        df = pd.read_parquet(path)
        first_line = 1
    missing = [c for c in REQUIRED_FIELDS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{file}: missing column(s) {missing}; a news table needs {list(REQUIRED_FIELDS)} "
            f"and may have summary, symbols, source (it has {list(df.columns)})"
        )
    for i, record in enumerate(df.to_dict("records")):
        yield file, first_line + i, record


def news_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories (their ``*.jsonl|*.ndjson|*.parquet|*.csv``, sorted) and check files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix in SUFFIXES and q.is_file())
            if not found:
                raise ValueError(f"{p}: directory has no news files ({', '.join(SUFFIXES)})")
            out.extend(found)
        elif not p.is_file():
            raise ValueError(f"{p}: no such news file")
        elif p.suffix not in SUFFIXES:
            raise ValueError(f"{p}: unknown news file type; use one of {', '.join(SUFFIXES)}")
        else:
            out.append(p)
    if not out:
        raise ValueError("no news inputs given")
    return out


def read_news(
    paths: Sequence[str | os.PathLike[str]], config: NewsReadConfig | None = None
) -> NewsLoad:
    """Read, normalise and dedupe news files (see the module docstring for the error policy)."""
    config = config or NewsReadConfig()
    rows: list[dict[str, Any]] = []
    skips: list[NewsSkip] = []
    for path in news_files(paths):
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: empty news file; remove it from the inputs or refill it")
        records = _jsonl_records(path) if path.suffix in JSONL_SUFFIXES else _table_records(path)
        file_rows, file_skips = _collect(records, config)
        if not file_rows and not file_skips:
            raise ValueError(f"{path}: no news items (only blank lines or no rows)")
        rows.extend(file_rows)
        skips.extend(file_skips)
    if not rows:
        first = "; ".join(f"{s.file}:{s.line}: {s.reason}" for s in skips[:3])
        raise ValueError(f"no usable news items: all {len(skips)} records were skipped ({first})")
    items, duplicates = dedupe_news(_frame(rows))
    return NewsLoad(items=items, skips=skips, duplicates=duplicates)


# -- Alpaca News API -----------------------------------------------------------------------------

ALPACA_NEWS_URL = "https://data.alpaca.markets"
ALPACA_PAGE_MAX = 50  # the API's largest page for /v1beta1/news


@dataclass(kw_only=True)
class AlpacaNewsConfig:
    """What to fetch from the Alpaca News API and how carefully."""

    symbols: list[str] = field(default_factory=list)
    """Tickers to ask for; empty asks for all news."""
    start: str | None = None
    """Inclusive start, ISO-8601 with offset (e.g. "2024-01-01T00:00:00Z"); None: the API's default."""
    end: str | None = None
    """Inclusive end, ISO-8601 with offset; None: now."""
    base_url: str = ALPACA_NEWS_URL
    """Data API root (NewsClient's url_override); tests point it at a local fake server."""
    page_size: int = ALPACA_PAGE_MAX
    """Items per request (1..50)."""
    max_pages: int = 100_000
    """Hard stop on pagination, so a misbehaving server cannot loop us forever."""
    connect_timeout_s: float = 5.0
    """Seconds to open a connection (alpaca-py has no timeout of its own)."""
    read_timeout_s: float = 30.0
    """Seconds to wait for response bytes."""
    max_retries: int = 4
    """Retries per request on timeouts, dropped connections, 429 and 5xx (then it fails)."""
    backoff_s: float = 0.5
    """Exponential back-off base between retries; a Retry-After header takes precedence."""
    min_interval_s: float = 0.3
    """Minimum seconds between requests (client-side rate limit; 200/min is the free tier)."""

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= ALPACA_PAGE_MAX:
            raise ValueError(f"page_size must be in 1..{ALPACA_PAGE_MAX}, got {self.page_size}")
        if self.max_pages < 1 or self.max_retries < 0:
            raise ValueError("max_pages must be >= 1 and max_retries >= 0")
        if min(self.connect_timeout_s, self.read_timeout_s) <= 0:
            raise ValueError("connect_timeout_s and read_timeout_s must be > 0")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and pd.Timestamp(value).tzinfo is None:
                raise ValueError(
                    f"{name}={value!r} needs a UTC offset, e.g. '2024-01-01T00:00:00Z'"
                )


class NewsFetchError(RuntimeError):
    """The news API kept failing after the configured retries."""


def load_alpaca_credentials(key_file: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """(key id, secret) from APCA_API_KEY_ID / APCA_API_SECRET_KEY, else from a 0600 file.

    The file holds ``APCA_API_KEY_ID=...`` and ``APCA_API_SECRET_KEY=...`` lines. Values are
    never logged; error messages name only the variables.
    """
    key, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
    if key and secret:
        return key, secret
    if key_file is None:
        raise ValueError(
            "Alpaca credentials missing: set APCA_API_KEY_ID and APCA_API_SECRET_KEY, "
            "or pass a key file (mode 0600) holding those two lines"
        )
    path = Path(key_file)
    if not path.is_file():
        raise ValueError(f"{path}: Alpaca key file not found")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ValueError(f"{path}: key file is readable by others; run `chmod 600 {path}`")
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    key, secret = values.get("APCA_API_KEY_ID"), values.get("APCA_API_SECRET_KEY")
    if not (key and secret):
        raise ValueError(f"{path}: needs APCA_API_KEY_ID=... and APCA_API_SECRET_KEY=... lines")
    return key, secret


def _session(config: AlpacaNewsConfig) -> Any:
    """A requests.Session with a default timeout, a request pace and bounded retries.

    alpaca-py sends every request through ``RESTClient._session.request(...)`` without a timeout
    (checked on 0.44), so this session is the one place to add them. Retries live in urllib3
    (timeouts, resets, 429 honouring Retry-After, 5xx), which also keeps alpaca-py's own 429 loop
    (3 tries x 3 s, not configurable on NewsClient) from ever running.
    """
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class _PacedSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self._last = 0.0

        def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = (config.connect_timeout_s, config.read_timeout_s)
            wait = self._last + config.min_interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                return super().request(method, url, *args, **kwargs)
            finally:
                self._last = time.monotonic()

    retry = Retry(
        total=config.max_retries,
        connect=config.max_retries,
        read=config.max_retries,
        status=config.max_retries,
        backoff_factor=config.backoff_s,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=True,
    )
    session = _PacedSession()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def alpaca_news_client(config: AlpacaNewsConfig, *, api_key: str, secret_key: str) -> Any:
    """An alpaca-py ``NewsClient`` whose HTTP session has timeouts, pacing and retries."""
    from alpaca.data.historical.news import NewsClient

    client = NewsClient(api_key=api_key, secret_key=secret_key, url_override=config.base_url)
    # The only way in: NewsClient takes no session, timeout or retry arguments.
    assert hasattr(client, "_session"), "alpaca-py changed: RESTClient._session is gone"
    client._session = _session(config)
    return client


def iter_alpaca_news_pages(
    config: AlpacaNewsConfig, *, api_key: str, secret_key: str
) -> Iterator[list[dict[str, Any]]]:
    """Raw article dicts, one list per page, oldest first (we paginate so each page retries alone).

    ``NewsClient.get_news`` drops ``next_page_token`` and buffers every page, so pages are asked
    for through the client's public ``get`` with the parameters ``NewsRequest`` serialises.
    """
    import requests
    from alpaca.common.exceptions import APIError
    from alpaca.data.requests import NewsRequest

    client = alpaca_news_client(config, api_key=api_key, secret_key=secret_key)
    token: str | None = None
    seen: set[str] = set()
    for page in range(1, config.max_pages + 1):
        params = NewsRequest(
            symbols=",".join(config.symbols) or None,
            start=pd.Timestamp(config.start).to_pydatetime() if config.start else None,
            end=pd.Timestamp(config.end).to_pydatetime() if config.end else None,
            sort="asc",
            limit=config.page_size,
            page_token=token,
        ).to_request_fields()
        try:
            body = client.get("/news", params) or {}
        except (requests.RequestException, APIError) as e:
            raise NewsFetchError(
                f"Alpaca news page {page} from {config.base_url} failed after "
                f"{config.max_retries} retries (timeouts {config.connect_timeout_s}s connect, "
                f"{config.read_timeout_s}s read): {type(e).__name__}: {e}"
            ) from e
        yield list(body.get("news") or [])
        token = body.get("next_page_token")
        if not token:
            return
        if token in seen:
            raise NewsFetchError(f"Alpaca news page {page}: page token {token!r} repeated")
        seen.add(token)
    raise NewsFetchError(
        f"Alpaca news: still more pages after max_pages={config.max_pages}; narrow start/end "
        "or raise max_pages"
    )


def fetch_alpaca_news(
    config: AlpacaNewsConfig,
    *,
    api_key: str,
    secret_key: str,
    read_config: NewsReadConfig | None = None,
) -> NewsLoad:
    """All pages of the Alpaca News API, normalised and deduplicated like files are.

    An empty answer is not an error here (a quiet day is a fact), unlike an empty file.
    """
    read_config = read_config or NewsReadConfig()
    rows: list[dict[str, Any]] = []
    skips: list[NewsSkip] = []
    pages = iter_alpaca_news_pages(config, api_key=api_key, secret_key=secret_key)
    for page_no, page in enumerate(pages, start=1):
        where = f"alpaca:{config.base_url}/v1beta1/news#page{page_no}"
        page_rows, page_skips = _collect(
            ((where, i, item) for i, item in enumerate(page, start=1)), read_config
        )
        rows.extend(page_rows)
        skips.extend(page_skips)
    items, duplicates = dedupe_news(_frame(rows))
    return NewsLoad(items=items, skips=skips, duplicates=duplicates)
