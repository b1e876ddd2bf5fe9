"""Alpaca market-data routes for ``tests/fakes/server.py``'s FakeServer: bars and news.

Matches what alpaca-py 0.44 sends and parses (``alpaca.data.historical.stock``, ``.news``,
``alpaca.common.rest._get_marketdata``):

``GET /v2/stocks/bars``: ``symbols`` (comma list), ``timeframe`` (``1Min`` ``5Min`` ``15Min``
``1Hour`` ``1Day``), ``start``/``end`` (RFC 3339 or YYYY-MM-DD, both inclusive), ``limit``
(bars per page across all symbols, 1..10000, default 1000), ``page_token``, ``feed``,
``adjustment``, ``sort=asc``. Answer: ``{"bars": {"AAPL": [{"t": "...Z", "o", "h", "l", "c",
"v", "n", "vw"}, ...]}, "next_page_token": str | None}``; bars ordered by symbol then time,
symbols without bars left out, daily bars stamped 00:00 America/New_York like the real API.

``GET /v1beta1/news``: ``symbols``, ``start``/``end`` (inclusive, on ``created_at``), ``sort``
(``desc`` default, or ``asc``), ``limit`` (1..50, default 10), ``include_content`` (default
false: ``content`` is ""), ``exclude_contentless``, ``page_token``. Answer: ``{"news": [item,
...], "next_page_token": str | None}`` with items in Alpaca's News format (``news_item``).

Both check the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers (401 when missing, or when
they differ from ``api_key``/``secret_key`` if given) and answer bad parameters with 422 like
the real API. Page tokens are opaque base64 of the last item's sort key.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import pandas as pd

from tests.fakes.server import FakeServer, Request, Response

BAR_TIMEFRAMES = {"1Min": "1m", "5Min": "5m", "15Min": "15m", "1Hour": "1h", "1Day": "1d"}
FEEDS = {"iex", "sip", "delayed_sip", "otc", "boats", "overnight"}
ADJUSTMENTS = {"raw", "split", "dividend", "all"}


def add_bars_routes(
    server: FakeServer,
    bars_by_symbol: dict[str, pd.DataFrame],
    *,
    timeframe: str = "1Min",
    max_page_size: int = 10_000,
    api_key: str | None = None,
    secret_key: str | None = None,
) -> None:
    """Serve ``bars_by_symbol`` (frames in the deeptrade bar contract) as ``timeframe`` bars.

    ``max_page_size`` caps bars per page below what the client asks for (the real cap is
    10000), so tests can force many pages with little data. Requests for another timeframe
    get 422.
    """
    if timeframe not in BAR_TIMEFRAMES:
        raise ValueError(f"timeframe {timeframe!r}: use one of {list(BAR_TIMEFRAMES)}")
    # One sorted list of (symbol, t_ns, json) for the whole book: pages cut across symbols.
    book: list[tuple[str, int, dict[str, Any]]] = []
    for sym in sorted(bars_by_symbol):
        df = bars_by_symbol[sym].sort_values("timestamp")
        for row in df.itertuples(index=False):
            book.append((sym, *_bar_json(row, daily=timeframe == "1Day")))

    def handle(req: Request) -> Response:
        denied = _check_auth(req, api_key, secret_key)
        if denied:
            return denied
        try:
            symbols = _symbols(req, required=True)
            if req.arg("timeframe") != timeframe:
                raise _Invalid(
                    f"this fake serves timeframe {timeframe}, got {req.arg('timeframe')}"
                )
            if req.arg("feed", "iex") not in FEEDS:
                raise _Invalid(f"invalid feed {req.arg('feed')!r}")
            if req.arg("adjustment", "raw") not in ADJUSTMENTS:
                raise _Invalid(f"invalid adjustment {req.arg('adjustment')!r}")
            if req.arg("sort", "asc") != "asc":
                raise _Invalid("this fake supports sort=asc only")
            limit = _int_arg(req, "limit", default=1000, lo=1, hi=10_000)
            start, end = _time_arg(req, "start"), _time_arg(req, "end")
            after = _decode_token(req.arg("page_token"))
        except _Invalid as exc:
            return Response(status=422, body={"code": 42210000, "message": str(exc)})
        size = min(limit, max_page_size)
        picked = [
            item
            for item in book
            if item[0] in symbols
            and (start is None or item[1] >= start)
            and (end is None or item[1] <= end)
            and (after is None or (item[0], item[1]) > after)
        ]
        page = picked[:size]
        bars: dict[str, list[dict[str, Any]]] = {}
        for sym, _, bar in page:
            bars.setdefault(sym, []).append(bar)
        token = _encode_token(page[-1][0], page[-1][1]) if len(picked) > size else None
        return Response(body={"bars": bars, "next_page_token": token})

    server.route("GET", r"/v2/stocks/bars", handle)


def add_news_routes(
    server: FakeServer,
    items: Sequence[dict[str, Any]],
    *,
    api_key: str | None = None,
    secret_key: str | None = None,
) -> None:
    """Serve ``items`` (dicts in Alpaca's News format, e.g. from ``news_item``)."""
    book = sorted(
        ((_ts_ns(item["created_at"]), int(item["id"]), dict(item)) for item in items),
        key=lambda x: (x[0], x[1]),
    )

    def handle(req: Request) -> Response:
        denied = _check_auth(req, api_key, secret_key)
        if denied:
            return denied
        try:
            symbols = _symbols(req, required=False)
            limit = _int_arg(req, "limit", default=10, lo=1, hi=50)
            start, end = _time_arg(req, "start"), _time_arg(req, "end")
            sort = req.arg("sort", "desc").lower()
            if sort not in ("asc", "desc"):
                raise _Invalid(f"invalid sort {sort!r}")
            include_content = _bool_arg(req, "include_content")
            exclude_contentless = _bool_arg(req, "exclude_contentless")
            token = _decode_token(req.arg("page_token"))
            after = None if token is None else (_int_token(token[0]), token[1])
        except _Invalid as exc:
            return Response(status=422, body={"code": 42210000, "message": str(exc)})
        ordered = book if sort == "asc" else book[::-1]
        picked = []
        for t, nid, item in ordered:
            if symbols is not None and not symbols.intersection(item.get("symbols", [])):
                continue
            if (start is not None and t < start) or (end is not None and t > end):
                continue
            if exclude_contentless and not item.get("content"):
                continue
            key = (t, nid)
            if after is not None and (key <= after if sort == "asc" else key >= after):
                continue
            picked.append((key, item))
        page = picked[:limit]
        news = [item if include_content else {**item, "content": ""} for _, item in page]
        token = _encode_token(*page[-1][0]) if len(picked) > limit else None
        return Response(body={"news": news, "next_page_token": token})

    server.route("GET", r"/v1beta1/news", handle)


def news_item(
    id: int,
    *,
    headline: str,
    created_at: str | pd.Timestamp,
    symbols: Sequence[str],
    summary: str = "",
    content: str = "",
    author: str = "Benzinga Newsdesk",
    source: str = "benzinga",
    url: str | None = None,
    updated_at: str | pd.Timestamp | None = None,
) -> dict[str, Any]:
    """One news item in Alpaca's format (``alpaca.data.models.news.News``)."""
    created = _iso(pd.Timestamp(created_at))
    return {
        "id": id,
        "headline": headline,
        "author": author,
        "created_at": created,
        "updated_at": _iso(pd.Timestamp(updated_at)) if updated_at is not None else created,
        "summary": summary,
        "content": content,
        "url": url or f"https://www.benzinga.com/news/{id}",
        "images": [],
        "symbols": list(symbols),
        "source": source,
    }


# -- helpers ------------------------------------------------------------------------------------


class _Invalid(Exception):
    pass


def _check_auth(req: Request, api_key: str | None, secret_key: str | None) -> Response | None:
    got_key = req.headers.get("apca-api-key-id")
    got_secret = req.headers.get("apca-api-secret-key")
    ok = bool(got_key and got_secret)
    if api_key is not None and got_key != api_key:
        ok = False
    if secret_key is not None and got_secret != secret_key:
        ok = False
    if ok:
        return None
    return Response(status=401, body={"code": 40110000, "message": "request is not authorized"})


def _symbols(req: Request, *, required: bool) -> set[str] | None:
    raw = req.arg("symbols")
    if not raw:
        if required:
            raise _Invalid("missing symbols")
        return None
    return {s.strip() for s in raw.split(",") if s.strip()}


def _int_arg(req: Request, name: str, *, default: int, lo: int, hi: int) -> int:
    raw = req.arg(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Invalid(f"invalid {name} {raw!r}") from None
    if not lo <= value <= hi:
        raise _Invalid(f"{name} must be between {lo} and {hi}")
    return value


def _bool_arg(req: Request, name: str) -> bool:
    raw = req.arg(name, "false").lower()
    if raw not in ("true", "false"):
        raise _Invalid(f"invalid {name} {raw!r}")
    return raw == "true"


def _time_arg(req: Request, name: str) -> int | None:
    raw = req.arg(name)
    if raw is None:
        return None
    try:
        return _ts_ns(raw)
    except ValueError:
        raise _Invalid(f"invalid {name} {raw!r}: use RFC-3339 or YYYY-MM-DD") from None


def _ts_ns(value: str | pd.Timestamp) -> int:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns").value


def _iso(ts: pd.Timestamp) -> str:
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bar_json(row: Any, *, daily: bool) -> tuple[int, dict[str, Any]]:
    ts = pd.Timestamp(row.timestamp)
    if daily:  # Alpaca stamps daily bars at 00:00 New York time
        ts = pd.Timestamp(ts.date()).tz_localize("America/New_York")
    bar: dict[str, Any] = {
        "t": _iso(ts),
        "o": float(row.open),
        "h": float(row.high),
        "l": float(row.low),
        "c": float(row.close),
        "v": int(row.volume) if float(row.volume).is_integer() else float(row.volume),
    }
    if hasattr(row, "trade_count"):
        bar["n"] = int(row.trade_count)
    if hasattr(row, "vwap"):
        bar["vw"] = float(row.vwap)
    return _ts_ns(ts), bar


def _encode_token(a: object, b: object) -> str:
    return base64.b64encode(f"{a}|{b}".encode()).decode()


def _int_token(part: str) -> int:
    try:
        return int(part)
    except ValueError:
        raise _Invalid("invalid page_token") from None


def _decode_token(token: str | None) -> tuple[str, int] | None:
    if not token:
        return None
    try:
        a, b = base64.b64decode(token.encode(), validate=True).decode().split("|")
        return a, int(b)
    except (ValueError, UnicodeDecodeError):
        raise _Invalid(f"invalid page_token {token!r}") from None
