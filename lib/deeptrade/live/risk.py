"""Pre-trade risk checks: a pure function from proposed orders and a snapshot to a decision.

Nothing here talks to the broker or the clock; the engine gathers the snapshot
(``RiskContext``), calls ``check_orders`` and journals/logs every rejection with its reason.
Orders are checked one after another against the state the earlier accepted ones leave
behind, so a batch can never add up to more than a limit allows.

Limits on size (position, notional, gross exposure, buying power, shorting) apply to orders
that *increase* exposure; an order that only reduces a position is always allowed through
them, so tightening a limit never traps the book in an over-limit position.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

UNLIMITED = math.inf


@dataclass(kw_only=True)
class RiskConfig:
    max_position_qty: float = UNLIMITED
    """Largest absolute position in shares per symbol."""
    max_position_notional: float = 10_000.0
    """Largest absolute position value per symbol, at the last trade price."""
    max_gross_exposure: float = 100_000.0
    """Largest sum of absolute position values over all symbols."""
    max_orders_per_minute: int = 60
    """Orders sent in any trailing 60 s window (a runaway loop stops here)."""
    daily_loss_limit: float = 2_000.0
    """Loss since the previous close (equity - last_equity) that halts trading for the day."""
    price_collar_pct: float = 0.03
    """Largest relative gap between the decision (or limit) price and the last trade."""
    allow_short: bool = False
    """Whether an order may open or grow a short position."""

    def __post_init__(self) -> None:
        for name in (
            "max_position_qty",
            "max_position_notional",
            "max_gross_exposure",
            "daily_loss_limit",
            "price_collar_pct",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"risk.{name} must be > 0, got {getattr(self, name)}")
        if self.max_orders_per_minute < 1:
            raise ValueError("risk.max_orders_per_minute must be >= 1")
        if self.max_position_notional > self.max_gross_exposure:
            raise ValueError(
                f"risk.max_position_notional ({self.max_position_notional}) exceeds "
                f"risk.max_gross_exposure ({self.max_gross_exposure}); lower the first or raise "
                "the second"
            )


@dataclass(frozen=True, kw_only=True)
class ProposedOrder:
    symbol: str
    side: str
    """buy | sell"""
    qty: float
    decision_price: float
    """Price the policy sized the order at (last closed bar's close)."""
    limit_price: float | None = None

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side == "buy" else -self.qty


@dataclass(frozen=True, kw_only=True)
class RiskContext:
    now: dt.datetime
    market_open: bool
    positions: Mapping[str, float]
    """Signed shares per symbol, open orders' remaining quantity included."""
    last_trade: Mapping[str, float]
    tradable: Mapping[str, bool]
    """Symbol -> the broker lists it as active and tradable (not halted)."""
    shortable: Mapping[str, bool]
    gross_exposure: float
    """Sum of absolute position values now (open orders included)."""
    equity: float
    last_equity: float
    buying_power: float
    recent_order_times: Sequence[dt.datetime] = ()
    """When the orders of the last minute were sent (from the journal)."""
    halted_reason: str | None = None
    """Set when trading is already halted for the day (e.g. loss limit hit earlier)."""


@dataclass(frozen=True, kw_only=True)
class Rejection:
    order: ProposedOrder
    reason: str


@dataclass(frozen=True, kw_only=True)
class RiskDecision:
    accepted: list[ProposedOrder] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    halt: str | None = None
    """Why trading is halted for the rest of the day (None: not halted)."""


def daily_loss_breach(cfg: RiskConfig, *, equity: float, last_equity: float) -> str | None:
    loss = last_equity - equity
    if loss >= cfg.daily_loss_limit:
        return (
            f"daily loss limit: equity {equity:,.2f} is {loss:,.2f} below the previous close "
            f"{last_equity:,.2f} (limit {cfg.daily_loss_limit:,.2f}); trading halted for the day"
        )
    return None


def check_orders(
    orders: Sequence[ProposedOrder], ctx: RiskContext, cfg: RiskConfig
) -> RiskDecision:
    halt = ctx.halted_reason or daily_loss_breach(
        cfg, equity=ctx.equity, last_equity=ctx.last_equity
    )
    if halt:
        return RiskDecision(rejected=[Rejection(order=o, reason=halt) for o in orders], halt=halt)

    positions = dict(ctx.positions)
    gross = ctx.gross_exposure
    bp_left = ctx.buying_power
    window_start = ctx.now - dt.timedelta(seconds=60)
    sent = sum(1 for t in ctx.recent_order_times if window_start < t <= ctx.now)
    accepted: list[ProposedOrder] = []
    rejected: list[Rejection] = []

    for o in orders:
        reason = _check_one(o, ctx, cfg, positions, gross, bp_left, sent)
        if reason:
            rejected.append(Rejection(order=o, reason=reason))
            continue
        px = ctx.last_trade[o.symbol]
        before = positions.get(o.symbol, 0.0)
        after = before + o.signed_qty
        gross += (abs(after) - abs(before)) * px
        bp_left -= max(abs(after) - abs(before), 0.0) * px
        positions[o.symbol] = after
        sent += 1
        accepted.append(o)
    return RiskDecision(accepted=accepted, rejected=rejected)


def _check_one(
    o: ProposedOrder,
    ctx: RiskContext,
    cfg: RiskConfig,
    positions: Mapping[str, float],
    gross: float,
    bp_left: float,
    sent: int,
) -> str | None:
    if not ctx.market_open:
        return "market closed"
    if not ctx.tradable.get(o.symbol, False):
        return f"{o.symbol} is halted or not tradable at the broker"
    if not (o.qty > 0) or o.side not in ("buy", "sell"):
        return f"malformed order: {o.side} {o.qty}"
    px = ctx.last_trade.get(o.symbol, math.nan)
    if not (px > 0):
        return f"no last trade price for {o.symbol}"
    for label, price in (("decision", o.decision_price), ("limit", o.limit_price)):
        if price is None:
            continue
        gap = abs(price / px - 1.0) if price > 0 else math.inf
        if gap > cfg.price_collar_pct:
            return (
                f"price collar: {label} price {price:.4f} is {gap:.2%} from the last trade "
                f"{px:.4f} (limit {cfg.price_collar_pct:.2%})"
            )
    if sent >= cfg.max_orders_per_minute:
        return f"order rate: {sent} orders in the last 60 s (limit {cfg.max_orders_per_minute})"

    before = positions.get(o.symbol, 0.0)
    after = before + o.signed_qty
    growth = abs(after) - abs(before)
    if growth <= 0 and before * after >= 0:
        return None  # only reduces the position: size limits do not apply
    if after < 0:
        if not cfg.allow_short:
            return f"would leave {o.symbol} short {-after:g} shares and risk.allow_short=false"
        if not ctx.shortable.get(o.symbol, False):
            return f"{o.symbol} is not shortable at the broker"
    if abs(after) > cfg.max_position_qty:
        return f"position {after:g} shares > max_position_qty {cfg.max_position_qty:g}"
    if abs(after) * px > cfg.max_position_notional:
        return (
            f"position value {abs(after) * px:,.2f} > max_position_notional "
            f"{cfg.max_position_notional:,.2f}"
        )
    new_gross = gross + growth * px
    if new_gross > cfg.max_gross_exposure:
        return f"gross exposure {new_gross:,.2f} > max_gross_exposure {cfg.max_gross_exposure:,.2f}"
    if max(growth, 0.0) * px > bp_left:
        return f"needs {growth * px:,.2f} buying power, {bp_left:,.2f} left"
    return None
