"""Pre-trade risk: each limit rejects with a reason; batches cannot add up past a limit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from deeptrade.live.risk import ProposedOrder, RiskConfig, RiskContext, check_orders

NOW = dt.datetime(2024, 1, 2, 15, 30, tzinfo=dt.UTC)


def _cfg(**kw: Any) -> RiskConfig:
    base: dict[str, Any] = dict(
        max_position_qty=1_000,
        max_position_notional=5_000,
        max_gross_exposure=12_000,
        max_orders_per_minute=10,
        daily_loss_limit=1_000,
        price_collar_pct=0.02,
    )
    return RiskConfig(**{**base, **kw})


def _ctx(**kw: Any) -> RiskContext:
    base: dict[str, Any] = dict(
        now=NOW,
        market_open=True,
        positions={},
        last_trade={"A": 100.0, "B": 50.0, "C": 10.0},
        tradable={"A": True, "B": True, "C": True},
        shortable={"A": True, "B": False, "C": True},
        gross_exposure=0.0,
        equity=100_000.0,
        last_equity=100_000.0,
        buying_power=100_000.0,
    )
    return RiskContext(**{**base, **kw})


def _buy(sym: str, qty: float, px: float | None = None, **kw: Any) -> ProposedOrder:
    price = px if px is not None else {"A": 100.0, "B": 50.0, "C": 10.0}[sym]
    return ProposedOrder(symbol=sym, side="buy", qty=qty, decision_price=price, **kw)


def _sell(sym: str, qty: float, **kw: Any) -> ProposedOrder:
    price = {"A": 100.0, "B": 50.0, "C": 10.0}[sym]
    return ProposedOrder(symbol=sym, side="sell", qty=qty, decision_price=price, **kw)


def _reasons(decision: Any) -> list[str]:
    return [r.reason for r in decision.rejected]


def test_clean_orders_pass() -> None:
    d = check_orders([_buy("A", 10), _buy("C", 100)], _ctx(), _cfg())
    assert len(d.accepted) == 2 and d.rejected == [] and d.halt is None


@pytest.mark.parametrize(
    ("order", "ctx_kw", "cfg_kw", "reason"),
    [
        (_buy("A", 10), {"market_open": False}, {}, "market closed"),
        (_buy("A", 10), {"tradable": {"A": False}}, {}, "halted or not tradable"),
        (_buy("A", 10), {"last_trade": {}}, {}, "no last trade"),
        (_buy("A", 10, px=103.0), {}, {}, "price collar: decision price"),
        (_buy("A", 10, limit_price=97.0), {}, {}, "price collar: limit price"),
        (_buy("A", 60), {}, {}, "max_position_notional"),
        (_buy("C", 1_001), {}, {"max_position_notional": 11_000}, "max_position_qty"),
        (_buy("A", 40), {"gross_exposure": 9_000.0}, {}, "max_gross_exposure"),
        (_buy("A", 40), {"buying_power": 1_000.0}, {}, "buying power"),
        (_sell("A", 5), {}, {}, "allow_short=false"),
        (_sell("B", 5), {}, {"allow_short": True}, "not shortable"),
        (
            _buy("A", 1),
            {"recent_order_times": [NOW - dt.timedelta(seconds=s) for s in range(10)]},
            {},
            "order rate",
        ),
    ],
)
def test_each_limit_rejects_with_its_reason(
    order: ProposedOrder, ctx_kw: dict[str, Any], cfg_kw: dict[str, Any], reason: str
) -> None:
    d = check_orders([order], _ctx(**ctx_kw), _cfg(**cfg_kw))
    assert d.accepted == []
    assert len(d.rejected) == 1 and reason in d.rejected[0].reason, d.rejected


def test_order_rate_window_is_trailing_60s() -> None:
    old = [NOW - dt.timedelta(seconds=61 + s) for s in range(20)]
    assert check_orders([_buy("A", 1)], _ctx(recent_order_times=old), _cfg()).accepted


def test_batch_cannot_add_up_past_limits() -> None:
    # Each order alone is fine; together they exceed the gross limit and the order rate.
    orders = [_buy("A", 40), _buy("B", 80), _buy("C", 400)]  # 4,000 each
    d = check_orders(orders, _ctx(), _cfg(max_gross_exposure=10_000))
    assert [o.symbol for o in d.accepted] == ["A", "B"]
    assert "max_gross_exposure" in d.rejected[0].reason
    d = check_orders([_buy("C", 1)] * 4, _ctx(), _cfg(max_orders_per_minute=3))
    assert len(d.accepted) == 3 and "order rate" in d.rejected[0].reason


def test_reducing_orders_pass_size_limits() -> None:
    # Over the notional limit already (e.g. after tightening it): selling down is allowed.
    ctx = _ctx(positions={"A": 80.0}, gross_exposure=8_000.0, buying_power=0.0)
    d = check_orders([_sell("A", 20)], ctx, _cfg())
    assert len(d.accepted) == 1
    # But never through zero into a short the config forbids.
    d = check_orders([_sell("A", 100)], ctx, _cfg())
    assert "allow_short=false" in d.rejected[0].reason


def test_daily_loss_limit_halts_everything() -> None:
    ctx = _ctx(equity=98_500.0, last_equity=100_000.0)
    d = check_orders([_buy("A", 1), _sell("C", 1)], ctx, _cfg())
    assert d.accepted == [] and d.halt is not None and "daily loss limit" in d.halt
    assert all("trading halted for the day" in r for r in _reasons(d))
    d = check_orders([_buy("A", 1)], _ctx(halted_reason="halted earlier"), _cfg())
    assert d.halt == "halted earlier" and d.accepted == []


def test_config_validation() -> None:
    with pytest.raises(ValueError, match=r"max_position_notional .* exceeds"):
        RiskConfig(max_position_notional=10, max_gross_exposure=5)
    with pytest.raises(ValueError, match="daily_loss_limit must be > 0"):
        RiskConfig(daily_loss_limit=0)
    with pytest.raises(ValueError, match="max_orders_per_minute"):
        RiskConfig(max_orders_per_minute=0)
