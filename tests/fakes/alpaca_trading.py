"""An in-memory Alpaca paper broker served by ``FakeServer`` on 127.0.0.1.

Real alpaca-py clients talk to it over real sockets (``url_override=fake.url``). JSON bodies
follow alpaca-py 0.44's models (``alpaca.trading.models``: TradeAccount, Clock, Asset, Order,
Position; latest trades as ``alpaca.data`` parses them), and error bodies use Alpaca's
``{"code": ..., "message": ...}`` shape. Bars are served by ``tests.fakes.alpaca_data``.

Behaviour tests rely on:

* a ``client_order_id`` can be used once: a second POST gets 422 "client_order_id must be
  unique" (as Alpaca does), whatever happened to the first response;
* fills follow a schedule: ``fill_schedule`` (per symbol via ``fill_schedules``) lists the
  fraction of the order quantity that fills at acceptance, then at each later request that
  reads orders; an order whose schedule is used up stays open until cancelled (partial fill);
* no fills while ``market_open`` is False; ``halt(symbol)`` makes an asset non-tradable;
* ``accepted`` keeps every accepted order as it was sent, so tests can assert "no duplicate
  order" and "no order beyond a risk limit" from the broker's side.

Faults (stalls, 5xx, dropped connections, after_handler) are injected on the ``FakeServer``.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tests.fakes.alpaca_data import add_bars_routes
from tests.fakes.server import FakeServer, Request, Response

TERMINAL = {"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"}




def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _err(status: int, code: int, message: str) -> Response:
    return Response(status=status, body={"code": code, "message": message})


def make_bars(
    closes: Sequence[float], *, start: dt.datetime, step: dt.timedelta, volume: float = 1000.0
) -> pd.DataFrame:
    """Bars in the deeptrade bar contract (``timestamp`` = open time, UTC) with these closes."""
    c = np.asarray(closes, dtype=np.float64)
    o = np.concatenate([c[:1], c[:-1]])
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex([start + i * step for i in range(len(c))]).as_unit("ns"),
            "open": o,
            "high": np.maximum(o, c) * 1.001,
            "low": np.minimum(o, c) * 0.999,
            "close": c,
            "volume": volume,
            "trade_count": 10,
            "vwap": (o + c) / 2,
        }
    )


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    type: str
    time_in_force: str
    limit_price: float | None
    submitted_at: dt.datetime
    status: str = "new"
    filled_qty: float = 0.0
    filled_notional: float = 0.0
    filled_at: dt.datetime | None = None
    canceled_at: dt.datetime | None = None
    updated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    schedule: list[float] = field(default_factory=list)
    asset_id: str = ""


class FakeAlpaca:
    """``fake = FakeAlpaca(server, key_id=..., secret_key=..., prices={...})``."""

    def __init__(
        self,
        server: FakeServer,
        *,
        key_id: str,
        secret_key: str,
        prices: dict[str, float],
        cash: float = 100_000.0,
        bars: dict[str, pd.DataFrame] | None = None,
        timeframe: str = "1Min",
        shortable: bool = True,
    ) -> None:
        self.server = server
        self._keys = (key_id, secret_key)
        self.lock = threading.RLock()
        self.prices = dict(prices)
        self.cash = cash
        self.last_equity: float | None = None
        self.market_open = True
        self.account_status = "ACTIVE"
        self.buying_power: float | None = None
        self.fill_schedule: list[float] = [1.0]
        self.fill_schedules: dict[str, list[float]] = {}
        self.assets = {
            s: {
                "id": str(uuid.uuid4()),
                "tradable": True,
                "shortable": shortable,
                "status": "active",
            }
            for s in prices
        }
        self.bars = dict(bars or {})
        self.timeframe = timeframe
        self.orders: dict[str, _Order] = {}
        self.by_coid: dict[str, str] = {}
        self.accepted: list[dict[str, Any]] = []
        self.positions: dict[str, list[float]] = {}  # symbol -> [signed qty, avg entry price]
        self.last_equity = self.equity()
        self._routes()

    # -- test controls --------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def halt(self, symbol: str) -> None:
        with self.lock:
            self.assets[symbol]["tradable"] = False

    def set_position(self, symbol: str, qty: float, price: float | None = None) -> None:
        """Make a position appear as if traded outside the job (or before it)."""
        with self.lock:
            self.positions[symbol] = [qty, price or self.prices[symbol]]

    def place_foreign_order(
        self, symbol: str, side: str, qty: float, *, fill: bool = False
    ) -> None:
        """An order someone else placed on the account: left open, or filled at once."""
        with self.lock:
            o = self._new_order(
                f"manual-{uuid.uuid4().hex[:8]}", symbol, side, qty, "market", "day", None
            )
            o.schedule = [1.0] if fill else []
            self._tick(o)

    def equity(self) -> float:
        with self.lock:
            return self.cash + sum(q * self.prices[s] for s, (q, _) in self.positions.items())

    def accepted_coids(self) -> list[str]:
        return [o["client_order_id"] for o in self.accepted]

    def post_count(self) -> int:
        return sum(1 for r in self.server.log if r.method == "POST")

    def mutating_requests(self) -> list[str]:
        return [
            f"{r.method} {r.path}"
            for r in self.server.log
            if r.method in ("POST", "DELETE", "PATCH")
        ]

    # -- routes -------------------------------------------------------------------------
    def _routes(self) -> None:
        s = self.server
        auth = self._authed
        s.route("GET", r"/v2/account", auth(self._account))
        s.route("GET", r"/v2/clock", auth(self._clock))
        s.route("GET", r"/v2/assets/(?P<symbol>[^/]+)", auth(self._asset))
        s.route("GET", r"/v2/positions", auth(self._positions))
        s.route("GET", r"/v2/orders:by_client_order_id", auth(self._order_by_coid))
        s.route("GET", r"/v2/orders", auth(self._list_orders))
        s.route("POST", r"/v2/orders", auth(self._submit))
        s.route("DELETE", r"/v2/orders", auth(self._cancel_all))
        s.route("GET", r"/v2/orders/(?P<id>[^/]+)", auth(self._get_order))
        s.route("DELETE", r"/v2/orders/(?P<id>[^/]+)", auth(self._cancel))
        s.route("GET", r"/v2/stocks/trades/latest", auth(self._latest_trades))
        add_bars_routes(
            s, self.bars, timeframe=self.timeframe, api_key=self._keys[0], secret_key=self._keys[1]
        )

    def _authed(self, fn: Any) -> Any:
        def handler(req: Request) -> Response:
            if (
                req.headers.get("apca-api-key-id"),
                req.headers.get("apca-api-secret-key"),
            ) != self._keys:
                return _err(401, 40110000, "request is not authorized")
            with self.lock:
                return fn(req)

        return handler

    # -- account, clock, assets, positions ---------------------------------------------
    def _account(self, req: Request) -> Response:
        eq = self.equity()
        long_mv = sum(q * self.prices[s] for s, (q, _) in self.positions.items() if q > 0)
        short_mv = sum(q * self.prices[s] for s, (q, _) in self.positions.items() if q < 0)
        bp = self.buying_power if self.buying_power is not None else max(self.cash, 0.0)
        return Response(
            body={
                "id": "11111111-2222-3333-4444-555555555555",
                "account_number": "PA0FAKE",
                "status": self.account_status,
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "buying_power": str(bp),
                "regt_buying_power": str(bp),
                "daytrading_buying_power": str(bp),
                "non_marginable_buying_power": str(bp),
                "cash": str(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": str(eq),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2024-01-02T15:00:00Z",
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": True,
                "equity": str(eq),
                "last_equity": str(self.last_equity if self.last_equity is not None else eq),
                "long_market_value": str(long_mv),
                "short_market_value": str(short_mv),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
            }
        )

    def _clock(self, req: Request) -> Response:
        now = dt.datetime.now(dt.UTC)
        return Response(
            body={
                "timestamp": _iso(now),
                "is_open": self.market_open,
                "next_open": _iso(now + dt.timedelta(hours=1 if not self.market_open else 20)),
                "next_close": _iso(now + dt.timedelta(hours=4)),
            }
        )

    def _asset(self, req: Request) -> Response:
        sym = req.match["symbol"]
        a = self.assets.get(sym)
        if a is None:
            return _err(404, 40410000, "asset not found")
        return Response(
            body={
                "id": a["id"],
                "class": "us_equity",
                "exchange": "NASDAQ",
                "symbol": sym,
                "name": f"{sym} Inc.",
                "status": a["status"],
                "tradable": a["tradable"],
                "marginable": True,
                "shortable": a["shortable"],
                "easy_to_borrow": a["shortable"],
                "fractionable": True,
                "attributes": [],
            }
        )

    def _positions(self, req: Request) -> Response:
        out = []
        for sym, (q, avg) in sorted(self.positions.items()):
            if q == 0:
                continue
            px = self.prices[sym]
            out.append(
                {
                    "asset_id": self.assets[sym]["id"],
                    "symbol": sym,
                    "exchange": "NASDAQ",
                    "asset_class": "us_equity",
                    "asset_marginable": True,
                    "avg_entry_price": str(avg),
                    "qty": str(q),
                    "side": "long" if q > 0 else "short",
                    "market_value": str(q * px),
                    "cost_basis": str(q * avg),
                    "unrealized_pl": str(q * (px - avg)),
                    "unrealized_plpc": "0",
                    "unrealized_intraday_pl": "0",
                    "unrealized_intraday_plpc": "0",
                    "current_price": str(px),
                    "lastday_price": str(px),
                    "change_today": "0",
                    "qty_available": str(q),
                }
            )
        return Response(body=out)

    # -- orders -------------------------------------------------------------------------
    def _order_json(self, o: _Order) -> dict[str, Any]:
        avg = o.filled_notional / o.filled_qty if o.filled_qty else None
        return {
            "id": o.id,
            "client_order_id": o.client_order_id,
            "created_at": _iso(o.submitted_at),
            "updated_at": _iso(o.updated_at),
            "submitted_at": _iso(o.submitted_at),
            "filled_at": _iso(o.filled_at) if o.filled_at else None,
            "expired_at": None,
            "canceled_at": _iso(o.canceled_at) if o.canceled_at else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": o.asset_id,
            "symbol": o.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": f"{o.qty:g}",
            "filled_qty": f"{o.filled_qty:g}",
            "filled_avg_price": None if avg is None else f"{avg:.6f}",
            "order_class": "",
            "order_type": o.type,
            "type": o.type,
            "side": o.side,
            "position_intent": None,
            "time_in_force": o.time_in_force,
            "limit_price": None if o.limit_price is None else f"{o.limit_price:g}",
            "stop_price": None,
            "status": o.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }

    def _new_order(
        self,
        coid: str,
        symbol: str,
        side: str,
        qty: float,
        type_: str,
        tif: str,
        limit_price: float | None,
    ) -> _Order:
        now = dt.datetime.now(dt.UTC)
        o = _Order(
            id=str(uuid.uuid4()),
            client_order_id=coid,
            symbol=symbol,
            side=side,
            qty=qty,
            type=type_,
            time_in_force=tif,
            limit_price=limit_price,
            submitted_at=now,
            updated_at=now,
            status="new" if self.market_open else "accepted",
            schedule=list(self.fill_schedules.get(symbol, self.fill_schedule)),
            asset_id=self.assets[symbol]["id"],
        )
        self.orders[o.id] = o
        self.by_coid[coid] = o.id
        return o

    def _tick(self, o: _Order) -> None:
        """Advance one step of the order's fill schedule."""
        if o.status in TERMINAL or not self.market_open or not o.schedule:
            return
        frac = o.schedule.pop(0)
        px = self.prices[o.symbol]
        if frac <= 0:
            return
        if o.limit_price is not None and (
            (o.side == "buy" and px > o.limit_price) or (o.side == "sell" and px < o.limit_price)
        ):
            return
        remaining = o.qty - o.filled_qty
        qty = min(remaining, max(1.0, math.floor(o.qty * frac + 1e-9)))
        if qty <= 0:
            return
        now = dt.datetime.now(dt.UTC)
        o.filled_qty += qty
        o.filled_notional += qty * px
        o.updated_at = now
        o.status = "filled" if o.filled_qty >= o.qty - 1e-9 else "partially_filled"
        if o.status == "filled":
            o.filled_at = now
        signed = qty if o.side == "buy" else -qty
        q, avg = self.positions.get(o.symbol, [0.0, 0.0])
        new_q = q + signed
        if q == 0 or (q > 0) == (signed > 0):
            avg = (abs(q) * avg + qty * px) / abs(new_q)
        elif new_q != 0 and (new_q > 0) != (q > 0):
            avg = px  # flipped through zero
        self.positions[o.symbol] = [new_q, avg]
        self.cash -= signed * px

    def _tick_all(self) -> None:
        for o in self.orders.values():
            self._tick(o)

    def _submit(self, req: Request) -> Response:
        d = req.json() or {}
        sym, side = d.get("symbol"), d.get("side")
        coid = d.get("client_order_id") or str(uuid.uuid4())
        if coid in self.by_coid:
            return _err(422, 40010001, "client_order_id must be unique")
        if sym not in self.assets:
            return _err(422, 40010001, f'could not find asset "{sym}"')
        if not self.assets[sym]["tradable"]:
            return _err(422, 42210000, f'asset "{sym}" is not tradable')
        try:
            qty = float(d["qty"])
        except (KeyError, TypeError, ValueError):
            return _err(422, 40010001, "qty is required")
        if qty <= 0 or side not in ("buy", "sell"):
            return _err(422, 40010001, "invalid order")
        px = self.prices[sym]
        held = self.positions.get(sym, [0.0, 0.0])[0]
        if side == "sell" and qty > held > 0:
            return _err(
                403,
                40310000,
                f"insufficient qty available for order (requested: {qty:g}, available: {held:g})",
            )
        if side == "sell" and held <= 0 and not self.assets[sym]["shortable"]:
            return _err(422, 42210000, f'asset "{sym}" cannot be sold short')
        bp = self.buying_power if self.buying_power is not None else self.cash
        if side == "buy" and held >= 0 and qty * px > bp:
            return _err(403, 40310000, "insufficient buying power")
        limit = d.get("limit_price")
        o = self._new_order(
            coid,
            sym,
            side,
            qty,
            d.get("type", "market"),
            d.get("time_in_force", "day"),
            None if limit is None else float(limit),
        )
        self.accepted.append(
            {
                "client_order_id": coid,
                "symbol": sym,
                "side": side,
                "qty": qty,
                "type": o.type,
                "limit_price": o.limit_price,
                "price": px,
                "position_before": held,
            }
        )
        self._tick(o)
        return Response(body=self._order_json(o))

    def _list_orders(self, req: Request) -> Response:
        self._tick_all()
        status = req.arg("status", "open")
        limit = int(req.arg("limit", "50") or 50)
        after = req.arg("after")
        until = req.arg("until")
        symbols = set((req.arg("symbols") or "").split(",")) - {""}
        orders = list(self.orders.values())
        if status == "open":
            orders = [o for o in orders if o.status not in TERMINAL]
        elif status == "closed":
            orders = [o for o in orders if o.status in TERMINAL]
        if after:
            orders = [o for o in orders if o.submitted_at > _parse(after)]
        if until:
            orders = [o for o in orders if o.submitted_at <= _parse(until)]
        if symbols:
            orders = [o for o in orders if o.symbol in symbols]
        orders.sort(key=lambda o: o.submitted_at, reverse=req.arg("direction", "desc") == "desc")
        return Response(body=[self._order_json(o) for o in orders[:limit]])

    def _order_by_coid(self, req: Request) -> Response:
        coid = req.arg("client_order_id") or ""
        oid = self.by_coid.get(coid)
        if oid is None:
            return _err(404, 40410000, f"order not found for {coid}")
        self._tick(self.orders[oid])
        return Response(body=self._order_json(self.orders[oid]))

    def _get_order(self, req: Request) -> Response:
        o = self.orders.get(req.match["id"])
        if o is None:
            return _err(404, 40410000, "order not found")
        self._tick(o)
        return Response(body=self._order_json(o))

    def _cancel_one(self, o: _Order) -> None:
        o.status = "canceled"
        o.canceled_at = o.updated_at = dt.datetime.now(dt.UTC)

    def _cancel(self, req: Request) -> Response:
        o = self.orders.get(req.match["id"])
        if o is None:
            return _err(404, 40410000, "order not found")
        if o.status in TERMINAL:
            return _err(422, 42210000, f'order is already in "{o.status}" state')
        self._cancel_one(o)
        return Response(status=204, body=b"")

    def _cancel_all(self, req: Request) -> Response:
        out = []
        for o in self.orders.values():
            if o.status not in TERMINAL:
                self._cancel_one(o)
                out.append({"id": o.id, "status": 200, "body": self._order_json(o)})
        return Response(status=207, body=out)

    # -- market data --------------------------------------------------------------------
    def _latest_trades(self, req: Request) -> Response:
        syms = (req.arg("symbols") or "").split(",")
        now = _iso(dt.datetime.now(dt.UTC))
        return Response(
            body={
                "trades": {
                    s: {
                        "t": now,
                        "x": "V",
                        "p": self.prices[s],
                        "s": 100,
                        "c": ["@"],
                        "i": 1,
                        "z": "C",
                    }
                    for s in syms
                    if s in self.prices
                }
            }
        )
