"""Alpaca broker adapter: one place that talks HTTP, with timeouts, retries and idempotency.

alpaca-py is used as is, with three corrections made in ``make_clients`` (the only place
clients are built):

* it sends requests without any timeout, so a stalled server hangs the job forever: every
  request gets ``(connect, read)`` timeouts through a ``requests.Session`` subclass;
* it retries on 429/504 by itself, POSTs included, behind our back: that is turned off and
  retries happen here, where we know whether a request is safe to repeat;
* it reads no environment variables, so the base URLs come from our config (tests point them at
  a fake broker on 127.0.0.1).

Orders carry a deterministic ``client_order_id``. After any ambiguous outcome of a POST (5xx,
429, "client_order_id must be unique", a dropped connection, a timeout) the order is looked up
by that id before anything is sent again, so a retry can never double an order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import requests

from deeptrade.live.protocols import Bar

log = logging.getLogger("deeptrade.live.broker")

LIVE_CONFIRM_ENV = "DEEPTRADE_LIVE_CONFIRM"
LIVE_CONFIRM_VALUE = "I_UNDERSTAND"
MODES = ("paper", "live", "dry_run")
TERMINAL_STATUSES = frozenset(
    {"filled", "canceled", "expired", "replaced", "rejected", "done_for_day", "stopped"}
)
"""Order statuses after which nothing more can fill (``stopped`` is Alpaca's "will fill at a
guaranteed price" only for some venues; it never stays open on Alpaca's equity API)."""

_T = TypeVar("_T")


# -- keys ---------------------------------------------------------------------------------
class AlpacaKeys:
    """API key id and secret; never printed, logged or pickled into manifests."""

    __slots__ = ("_key_id", "_secret_key")

    def __init__(self, key_id: str, secret_key: str) -> None:
        if not key_id or not secret_key:
            raise ValueError("Alpaca keys are empty: both a key id and a secret key are needed")
        self._key_id = key_id
        self._secret_key = secret_key

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def secret_key(self) -> str:
        return self._secret_key

    def __repr__(self) -> str:
        return "AlpacaKeys(key_id='****', secret_key='****')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("AlpacaKeys cannot be pickled: secrets must not leave the process")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlpacaKeys:
        env = os.environ if environ is None else environ
        key_id, secret = env.get("APCA_API_KEY_ID", ""), env.get("APCA_API_SECRET_KEY", "")
        if not key_id or not secret:
            raise ValueError(
                "Alpaca keys not found: set APCA_API_KEY_ID and APCA_API_SECRET_KEY in the "
                "environment, or point the job at a 0600 keys file"
            )
        return cls(key_id, secret)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AlpacaKeys:
        """Read ``APCA_API_KEY_ID=...`` / ``APCA_API_SECRET_KEY=...`` lines from a 0600 file."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ValueError(f"Alpaca keys file {path} does not exist") from None
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise ValueError(
                f"Alpaca keys file {path} has mode {mode:04o}: it is readable by group or "
                f"others. Restrict it with `chmod 600 {path}` and try again."
            )
        values: dict[str, str] = {}
        for lineno, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            line = line.removeprefix("export ").strip()
            if "=" not in line:
                # Never echo the line: it may be a bare secret.
                raise ValueError(f"{path}:{lineno}: expected KEY=VALUE")
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip().strip("'\"")
        missing = [k for k in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY") if not values.get(k)]
        if missing:
            raise ValueError(f"Alpaca keys file {path} lacks {', '.join(missing)}")
        return cls(values["APCA_API_KEY_ID"], values["APCA_API_SECRET_KEY"])


# -- config and clients -------------------------------------------------------------------
@dataclass(kw_only=True)
class BrokerConfig:
    mode: str = "paper"
    """paper (Alpaca paper account) | live (real money, needs DEEPTRADE_LIVE_CONFIRM) |
    dry_run (reads from the paper account, logs intended orders, never POSTs or DELETEs)."""
    trading_url: str | None = None
    """Override the trading API base URL (None: Alpaca's paper or live URL by mode)."""
    data_url: str | None = None
    """Override the market data API base URL (None: Alpaca's)."""
    feed: str | None = "iex"
    """Market data feed for bars and trades (iex on free plans, sip with a subscription)."""
    connect_timeout_s: float = 3.05
    """TCP connect timeout per request."""
    read_timeout_s: float = 10.0
    """Time allowed between bytes of a response; a stalled server fails after this."""
    max_attempts: int = 3
    """Attempts per request for retryable failures (timeouts, dropped connections, 5xx, 429)."""
    retry_backoff_s: float = 0.5
    """First wait between attempts; doubles each time."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"broker.mode={self.mode!r} is not one of {', '.join(MODES)}")
        if self.max_attempts < 1:
            raise ValueError("broker.max_attempts must be >= 1")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("broker timeouts must be > 0 seconds")


class _TimeoutSession(requests.Session):
    """A Session that gives every request a default timeout (alpaca-py passes none)."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._default_timeout
        return super().request(method, url, *args, **kwargs)


def _harden(client: Any, cfg: BrokerConfig) -> None:
    # alpaca-py 0.44 exposes neither a timeout nor a way to set zero retries (0 is read as
    # "use the default of 3"), so we set its private attributes; fail loudly if they move.
    for attr in ("_session", "_retry", "_retry_codes"):
        if not hasattr(client, attr):
            raise RuntimeError(
                f"alpaca-py {type(client).__name__} has no {attr}: this alpaca-py version is "
                "not supported by deeptrade.live.broker (timeouts/retries cannot be enforced)"
            )
    client._session.close()
    client._session = _TimeoutSession((cfg.connect_timeout_s, cfg.read_timeout_s))
    client._retry = 0
    client._retry_codes = []


@dataclass(kw_only=True)
class Clients:
    trading: Any
    """alpaca.trading.client.TradingClient"""
    data: Any
    """alpaca.data.historical.stock.StockHistoricalDataClient"""


def check_mode(cfg: BrokerConfig, environ: Mapping[str, str] | None = None) -> None:
    """Refuse live trading unless the operator confirmed it in the environment."""
    env = os.environ if environ is None else environ
    if cfg.mode == "live" and env.get(LIVE_CONFIRM_ENV) != LIVE_CONFIRM_VALUE:
        raise ValueError(
            f"broker.mode=live trades real money and needs an explicit confirmation: set "
            f"{LIVE_CONFIRM_ENV}={LIVE_CONFIRM_VALUE} in the job's environment. "
            "Use broker.mode=paper (default) or broker.mode=dry_run otherwise."
        )


def make_clients(
    cfg: BrokerConfig, keys: AlpacaKeys, environ: Mapping[str, str] | None = None
) -> Clients:
    """The one factory for alpaca-py clients: URLs from config, timeouts on, retries off."""
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.trading.client import TradingClient

    check_mode(cfg, environ)
    trading = TradingClient(
        api_key=keys.key_id,
        secret_key=keys.secret_key,
        paper=cfg.mode != "live",
        url_override=cfg.trading_url,
    )
    data = StockHistoricalDataClient(
        api_key=keys.key_id, secret_key=keys.secret_key, url_override=cfg.data_url
    )
    for client in (trading, data):
        _harden(client, cfg)
    log.info(
        "alpaca clients: mode=%s trading=%s data=%s timeouts=(%.2fs, %.2fs) retries=ours(%d)",
        cfg.mode,
        getattr(trading._base_url, "value", trading._base_url),
        getattr(data._base_url, "value", data._base_url),
        cfg.connect_timeout_s,
        cfg.read_timeout_s,
        cfg.max_attempts,
    )
    return Clients(trading=trading, data=data)


# -- plain views of broker objects ----------------------------------------------------------
def _f(x: Any, default: float = 0.0) -> float:
    return default if x is None or x == "" else float(x)


def _enum(x: Any) -> str:
    return str(getattr(x, "value", x)) if x is not None else ""


@dataclass(frozen=True, kw_only=True)
class OrderView:
    id: str
    client_order_id: str
    symbol: str
    side: str
    """buy | sell"""
    qty: float
    filled_qty: float
    filled_avg_price: float | None
    status: str
    type: str
    limit_price: float | None
    submitted_at: dt.datetime | None

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1

    @property
    def signed_remaining(self) -> float:
        return self.sign * max(self.qty - self.filled_qty, 0.0) if self.is_open else 0.0

    @classmethod
    def from_model(cls, o: Any) -> OrderView:
        return cls(
            id=str(o.id),
            client_order_id=o.client_order_id,
            symbol=o.symbol or "",
            side=_enum(o.side),
            qty=_f(o.qty),
            filled_qty=_f(o.filled_qty),
            filled_avg_price=None
            if o.filled_avg_price in (None, "")
            else float(o.filled_avg_price),
            status=_enum(o.status),
            type=_enum(o.type or o.order_type),
            limit_price=None if o.limit_price in (None, "") else float(o.limit_price),
            submitted_at=o.submitted_at,
        )


@dataclass(frozen=True, kw_only=True)
class AccountView:
    status: str
    equity: float
    last_equity: float
    """Equity at the previous trading day's close: the base of the daily loss limit."""
    buying_power: float
    cash: float
    blocked: bool
    """Trading, the account, or trading-by-user is suspended."""


@dataclass(frozen=True, kw_only=True)
class ClockView:
    timestamp: dt.datetime
    is_open: bool
    next_open: dt.datetime
    next_close: dt.datetime


@dataclass(frozen=True, kw_only=True)
class AssetView:
    symbol: str
    tradable: bool
    shortable: bool
    active: bool


@dataclass(frozen=True, kw_only=True)
class PositionView:
    symbol: str
    qty: float
    """Signed: negative for a short."""
    avg_entry_price: float
    market_value: float


@dataclass(frozen=True, kw_only=True)
class OrderSpec:
    """What we ask the broker for; the client_order_id makes resubmission idempotent."""

    client_order_id: str
    symbol: str
    side: str
    qty: float
    type: str = "market"
    limit_price: float | None = None
    time_in_force: str = "day"

    def __post_init__(self) -> None:
        assert self.side in ("buy", "sell"), self.side
        assert self.qty > 0, self.qty
        assert len(self.client_order_id) <= 48, self.client_order_id


@dataclass(frozen=True, kw_only=True)
class SubmitResult:
    status: str
    """accepted | rejected (the broker said no, definitively) | unknown (could not find out
    whether the broker has it; resolve by client_order_id before trading again) | dry_run."""
    order: OrderView | None = None
    reason: str = ""


class BrokerError(RuntimeError):
    """The broker could not be reached or answered an error after our retries."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def make_client_order_id(release: str, bar_ts: dt.datetime, symbol: str, intent: str) -> str:
    """Stable id for one decision: same release, bar, symbol and intent -> same id (35 chars)."""
    if bar_ts.tzinfo is None:
        raise ValueError("make_client_order_id needs a timezone-aware bar timestamp")
    key = f"{release}|{bar_ts.astimezone(dt.UTC).isoformat()}|{symbol}|{intent}"
    return "dt-" + hashlib.sha256(key.encode()).hexdigest()[:32]


# -- the adapter ----------------------------------------------------------------------------
def _status_of(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc.message)  # type: ignore[attr-defined]
    except Exception:
        return str(exc)[:300]


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return True
    status = _status_of(exc)
    return status is not None and (status == 429 or status >= 500)


def _timeframe(tf: str) -> tuple[Any, dt.timedelta]:
    """'1Min' | '5Min' | '1Hour' | '1Day' -> (alpaca TimeFrame, bar length)."""
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    units = {
        "Min": (TimeFrameUnit.Minute, dt.timedelta(minutes=1)),
        "Hour": (TimeFrameUnit.Hour, dt.timedelta(hours=1)),
        "Day": (TimeFrameUnit.Day, dt.timedelta(days=1)),
    }
    for suffix, (unit, length) in units.items():
        if tf.endswith(suffix) and tf[: -len(suffix)].isdigit():
            n = int(tf[: -len(suffix)])
            return TimeFrame(n, unit), n * length
    raise ValueError(f"timeframe {tf!r} is not one of NMin, NHour, NDay (e.g. 1Min, 5Min, 1Day)")


def bar_length(tf: str) -> dt.timedelta:
    return _timeframe(tf)[1]


class Broker:
    """The engine's view of Alpaca: plain dataclasses in and out, retries and idempotency here.

    ``sleep`` is injectable so tests of the retry schedule need not wait.
    """

    def __init__(
        self, clients: Clients, cfg: BrokerConfig, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.trading = clients.trading
        self.data = clients.data
        self.cfg = cfg
        self._sleep = sleep

    @property
    def dry_run(self) -> bool:
        return self.cfg.mode == "dry_run"

    # -- retry helper for requests that are safe to repeat ----------------------------------
    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if not _retryable(exc):
                    raise BrokerError(
                        f"{what} failed: HTTP {_status_of(exc)}: {_message_of(exc)}",
                        status=_status_of(exc),
                    ) from exc
                if attempt == self.cfg.max_attempts:
                    raise BrokerError(
                        f"{what} failed after {attempt} attempts: {type(exc).__name__}: "
                        f"{_message_of(exc)}",
                        status=_status_of(exc),
                    ) from exc
                wait = self.cfg.retry_backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "%s: attempt %d/%d failed (%s: %s); retrying in %.2fs",
                    what,
                    attempt,
                    self.cfg.max_attempts,
                    type(exc).__name__,
                    _message_of(exc),
                    wait,
                )
                self._sleep(wait)
        raise AssertionError("unreachable")

    # -- reads -------------------------------------------------------------------------------
    def account(self) -> AccountView:
        a = self._call("GET /account", self.trading.get_account)
        return AccountView(
            status=_enum(a.status),
            equity=_f(a.equity),
            last_equity=_f(a.last_equity, _f(a.equity)),
            buying_power=_f(a.buying_power),
            cash=_f(a.cash),
            blocked=bool(a.trading_blocked or a.account_blocked or a.trade_suspended_by_user),
        )

    def clock(self) -> ClockView:
        c = self._call("GET /clock", self.trading.get_clock)
        return ClockView(
            timestamp=c.timestamp, is_open=c.is_open, next_open=c.next_open, next_close=c.next_close
        )

    def asset(self, symbol: str) -> AssetView:
        a = self._call(f"GET /assets/{symbol}", lambda: self.trading.get_asset(symbol))
        return AssetView(
            symbol=a.symbol,
            tradable=bool(a.tradable),
            shortable=bool(a.shortable),
            active=_enum(a.status) == "active",
        )

    def positions(self) -> dict[str, PositionView]:
        out = {}
        for p in self._call("GET /positions", self.trading.get_all_positions):
            qty = abs(_f(p.qty)) * (-1 if _enum(p.side) == "short" else 1)
            out[p.symbol] = PositionView(
                symbol=p.symbol,
                qty=qty,
                avg_entry_price=_f(p.avg_entry_price),
                market_value=_f(p.market_value),
            )
        return out

    def open_orders(self) -> list[OrderView]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        req = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        orders = self._call("GET /orders?status=open", lambda: self.trading.get_orders(req))
        return [OrderView.from_model(o) for o in orders]

    def orders_since(self, after: dt.datetime) -> list[OrderView]:
        """Every order (any status) submitted after ``after`` (broker time), oldest first."""
        from alpaca.common.enums import Sort
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        seen: dict[str, OrderView] = {}
        cursor = after
        while True:
            req = GetOrdersRequest(
                status=QueryOrderStatus.ALL, after=cursor, limit=500, direction=Sort.ASC
            )
            page = self._call("GET /orders?status=all", partial(self.trading.get_orders, req))
            new = [OrderView.from_model(o) for o in page if str(o.id) not in seen]
            for o in new:
                seen[o.id] = o
            if len(page) < 500 or not new:
                break
            # ``after`` is exclusive; step back a hair so same-instant orders are not skipped.
            last = max(o.submitted_at for o in new if o.submitted_at is not None)
            cursor = last - dt.timedelta(milliseconds=1)
        return sorted(seen.values(), key=lambda o: (o.submitted_at or after, o.id))

    def order(self, order_id: str) -> OrderView:
        o = self._call(f"GET /orders/{order_id}", lambda: self.trading.get_order_by_id(order_id))
        return OrderView.from_model(o)

    def order_by_client_id(self, client_order_id: str) -> OrderView | None:
        """The order with this client id, or None if the broker has never accepted it."""
        try:
            o = self._call(
                f"GET /orders:by_client_order_id {client_order_id}",
                lambda: self.trading.get_order_by_client_id(client_order_id),
            )
        except BrokerError as exc:
            if exc.status == 404:
                return None
            raise
        return OrderView.from_model(o)

    def _feed(self) -> Any:
        from alpaca.data.enums import DataFeed

        return DataFeed(self.cfg.feed) if self.cfg.feed else None

    def latest_trades(self, symbols: Iterable[str]) -> dict[str, float]:
        from alpaca.data.requests import StockLatestTradeRequest

        syms = sorted(set(symbols))
        if not syms:
            return {}
        req = StockLatestTradeRequest(symbol_or_symbols=syms, feed=self._feed())
        trades = self._call(
            "GET /stocks/trades/latest", lambda: self.data.get_stock_latest_trade(req)
        )
        return {s: float(t.price) for s, t in trades.items()}

    def bars(
        self, symbols: Iterable[str], timeframe: str, start: dt.datetime, end: dt.datetime
    ) -> list[Bar]:
        """Bars with open time in [start, end], any state (the caller drops the forming one)."""
        from alpaca.data.requests import StockBarsRequest

        syms = sorted(set(symbols))
        if not syms:
            return []
        tf, _ = _timeframe(timeframe)
        req = StockBarsRequest(
            symbol_or_symbols=syms, timeframe=tf, start=start, end=end, feed=self._feed()
        )
        barset = self._call("GET /stocks/bars", lambda: self.data.get_stock_bars(req))
        out = []
        for sym, rows in barset.data.items():
            for b in rows:
                ts = b.timestamp if b.timestamp.tzinfo else b.timestamp.replace(tzinfo=dt.UTC)
                out.append(
                    Bar(
                        symbol=sym,
                        timestamp=ts.astimezone(dt.UTC),
                        open=b.open,
                        high=b.high,
                        low=b.low,
                        close=b.close,
                        volume=b.volume,
                    )
                )
        out.sort(key=lambda b: (b.timestamp, b.symbol))
        return out

    # -- writes ------------------------------------------------------------------------------
    def submit(self, spec: OrderSpec) -> SubmitResult:
        """Place one order at most once, whatever the network does.

        A definitive refusal (4xx other than the duplicate-id 422 and 429) is returned as
        ``rejected``. Anything ambiguous is followed by a lookup by client_order_id; only if
        the broker confirms it does not have the order is the same request sent again.
        """
        if self.dry_run:
            log.info(
                "dry_run: would %s %g %s (%s, client_order_id=%s)",
                spec.side,
                spec.qty,
                spec.symbol,
                spec.type,
                spec.client_order_id,
            )
            return SubmitResult(status="dry_run")
        request = self._order_request(spec)
        last_reason = ""
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                return SubmitResult(
                    status="accepted",
                    order=OrderView.from_model(self.trading.submit_order(request)),
                )
            except Exception as exc:
                status = _status_of(exc)
                message = _message_of(exc)
                duplicate = status == 422 and "client_order_id must be unique" in message
                if status is not None and 400 <= status < 500 and status != 429 and not duplicate:
                    return SubmitResult(status="rejected", reason=f"HTTP {status}: {message}")
                last_reason = f"{type(exc).__name__}" + (f" HTTP {status}" if status else "")
                log.warning(
                    "POST /orders %s: ambiguous result (%s: %s); looking it up before resending",
                    spec.client_order_id,
                    last_reason,
                    message,
                )
            try:
                found = self.order_by_client_id(spec.client_order_id)
            except BrokerError as exc:
                return SubmitResult(status="unknown", reason=f"{last_reason}; lookup failed: {exc}")
            if found is not None:
                return SubmitResult(status="accepted", order=found)
            if attempt < self.cfg.max_attempts:
                self._sleep(self.cfg.retry_backoff_s * 2 ** (attempt - 1))
        return SubmitResult(
            status="unknown", reason=f"{last_reason} on every attempt; order not at the broker"
        )

    def _order_request(self, spec: OrderSpec) -> Any:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

        common = dict(
            symbol=spec.symbol,
            qty=spec.qty,
            side=OrderSide(spec.side),
            time_in_force=TimeInForce(spec.time_in_force),
            client_order_id=spec.client_order_id,
        )
        if spec.type == "limit":
            assert spec.limit_price is not None and math.isfinite(spec.limit_price)
            return LimitOrderRequest(limit_price=spec.limit_price, **common)
        return MarketOrderRequest(**common)

    def cancel(self, order_id: str) -> None:
        """Ask the broker to cancel; an order that already finished is not an error."""
        if self.dry_run:
            log.info("dry_run: would cancel order %s", order_id)
            return
        try:
            self._call(
                f"DELETE /orders/{order_id}", lambda: self.trading.cancel_order_by_id(order_id)
            )
        except BrokerError as exc:
            if exc.status in (404, 422):  # already filled/canceled/unknown: nothing to cancel
                log.info("cancel %s: %s", order_id, exc)
                return
            raise

    def cancel_all(self) -> None:
        if self.dry_run:
            log.info("dry_run: would cancel all open orders")
            return
        self._call("DELETE /orders", self.trading.cancel_orders)
