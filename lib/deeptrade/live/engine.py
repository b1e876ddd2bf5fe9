"""The live trading loop: reconcile, decide on closed bars, check risk, trade the difference.

One cycle (``LiveEngine.run_cycle``)::

    reconcile with the broker (refuse to trade on anything unexplained)
    fetch bars, keep only CLOSED ones (bar end <= now), update streaming features
    predict -> policy targets -> orders for target - (position + open orders)
    pre-trade risk -> journal the intent -> submit (idempotent client_order_id)
    follow fills until a deadline -> cancel what is left -> snapshot positions

Stopping: SIGTERM (or ``request_stop``) lets the current step finish, cancels this cycle's
open orders, persists a snapshot and returns. The kill switch (a file, or SIGUSR1) cancels every
open order at the broker and stops; while the file exists the engine refuses to start.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from deeptrade.live.broker import (
    Broker,
    BrokerError,
    OrderSpec,
    OrderView,
    PositionView,
    bar_length,
    make_client_order_id,
)
from deeptrade.live.decide import Decider
from deeptrade.live.journal import Journal
from deeptrade.live.protocols import Bar, FeatureState, Policy, Predictor
from deeptrade.live.risk import (
    ProposedOrder,
    RiskConfig,
    RiskContext,
    check_orders,
    daily_loss_breach,
)

log = logging.getLogger("deeptrade.live.engine")

CRASH_ENV = "DEEPTRADE_LIVE_TEST_CRASH_AT"
"""Test hook: ``after_intent`` / ``after_submit`` makes the process SIGKILL itself there, so
tests can prove a restart recovers from a crash between the broker and the journal."""
_EXCHANGE_TZ = ZoneInfo("America/New_York")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FOREIGN_MARGIN = dt.timedelta(minutes=5)
"""Look this far before the last snapshot for orders we did not place (clock skew slack)."""


@dataclass(kw_only=True)
class EngineConfig:
    release_id: str
    """Names the release in client_order_ids (``deeptrade.live.release.release_id``)."""
    symbols: list[str]
    """Universe to trade."""
    timeframe: str = "1Min"
    """Bar size: NMin | NHour | NDay."""
    journal_path: str = "live/journal.sqlite"
    """SQLite journal; keep it on persistent storage, one per account."""
    kill_switch_path: str | None = None
    """If this file exists: cancel all open orders and stop (and refuse to start)."""
    order_type: str = "market"
    """market | limit (limit at the last trade +- limit_offset_bps)."""
    limit_offset_bps: float = 10.0
    """How far through the last trade a limit order is priced, in basis points."""
    time_in_force: str = "day"
    fill_timeout_s: float = 30.0
    """How long to follow fills before cancelling what is left of this cycle's orders."""
    cancel_timeout_s: float = 10.0
    """How long to wait for cancels to be confirmed."""
    poll_interval_s: float = 1.0
    """Pause between order status polls."""
    warmup_lookback_s: float = 5 * 86400.0
    """History fetched on the first cycle to warm the streaming features up."""
    settle_s: float = 2.0
    """Wait after a bar closes before fetching it (the data API publishes bars late)."""
    adopt_broker_state: bool = False
    """Accept broker positions that differ from the journal (after a manual intervention);
    every difference is logged. Off: such a difference stops the job."""

    def __post_init__(self) -> None:
        if not self.release_id:
            raise ValueError("live.release_id is empty: name the release being traded")
        if not self.symbols:
            raise ValueError("live.symbols is empty: list the symbols to trade")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"live.symbols has duplicates: {sorted(self.symbols)}")
        if self.order_type not in ("market", "limit"):
            raise ValueError(f"live.order_type={self.order_type!r}: use market or limit")
        bar_length(self.timeframe)  # validates
        for name in ("fill_timeout_s", "cancel_timeout_s", "poll_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"live.{name} must be > 0")


class ReconcileError(RuntimeError):
    """Broker state the journal cannot explain: the engine refuses to trade."""


class KillSwitchEngaged(RuntimeError):
    pass


class _Interrupt(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind  # "stopped" | "killed"


@dataclass(kw_only=True)
class ReconcileReport:
    positions: dict[str, float]
    resolved: dict[str, str] = field(default_factory=dict)
    """client_order_id -> outcome (submitted | not_sent) of intents left unresolved."""
    canceled: list[str] = field(default_factory=list)
    adopted: dict[str, tuple[float, float]] = field(default_factory=dict)
    """symbol -> (journal expected, broker actual) accepted with adopt_broker_state."""
    first_run: bool = False


@dataclass(kw_only=True)
class CycleReport:
    cycle_id: int
    bar_ts: dt.datetime
    status: str = "running"
    """ok | halted | stopped | killed | error | refused"""
    bars: int = 0
    preds: dict[str, float] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    proposed: list[ProposedOrder] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(symbol, reason) from risk and from the broker."""
    submitted: list[str] = field(default_factory=list)
    """client_order_ids sent (or logged, in dry_run)."""
    filled_qty: dict[str, float] = field(default_factory=dict)


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class LiveEngine:
    def __init__(
        self,
        *,
        cfg: EngineConfig,
        risk: RiskConfig,
        broker: Broker,
        journal: Journal,
        features: FeatureState,
        predictor: Predictor,
        policy: Policy,
        wall_clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.risk = risk
        self.broker = broker
        self.journal = journal
        self.decider = Decider(
            symbols=cfg.symbols, features=features, predictor=predictor, policy=policy
        )
        self._wall = wall_clock or (lambda: dt.datetime.now(dt.UTC))
        self._sleep = sleep
        self._tf = bar_length(cfg.timeframe)
        self._stop = threading.Event()
        self._kill = threading.Event()
        self.stopped_reason: str | None = None

    # -- control ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the current step, cancel this cycle's open orders, persist, return."""
        self._stop.set()

    def request_kill(self) -> None:
        """Cancel every open order at the broker and stop."""
        self._kill.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM -> request_stop, SIGUSR1 -> request_kill (main thread only)."""
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGUSR1, lambda *_: self.request_kill())

    def kill_switch_engaged(self) -> bool:
        path = self.cfg.kill_switch_path
        return self._kill.is_set() or (path is not None and Path(path).exists())

    def _step(self) -> None:
        """Between steps: act on the kill switch or a stop request."""
        if self.kill_switch_engaged():
            raise _Interrupt("killed")
        if self._stop.is_set():
            raise _Interrupt("stopped")

    # -- reconciliation --------------------------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        """Make the journal and the broker agree, or raise ReconcileError.

        Resolves intents whose outcome is unknown by client_order_id, refuses open orders or
        orders since the last snapshot that this job did not place, cancels this job's
        leftover open orders, and checks that broker positions equal the last snapshot plus
        the fills of the orders placed since. On success a new snapshot is written.
        """
        try:
            return self._reconcile()
        except BrokerError as exc:
            raise ReconcileError(
                f"cannot reconcile with the broker ({exc}); refusing to trade until it answers"
            ) from exc

    def _reconcile(self) -> ReconcileReport:
        j, b = self.journal, self.broker
        report = ReconcileReport(positions={})
        for it in j.unresolved_intents():
            coid = it["client_order_id"]
            try:
                found = b.order_by_client_id(coid)
            except BrokerError as exc:
                raise ReconcileError(
                    f"cannot tell whether order {coid} ({it['side']} {it['qty']:g} "
                    f"{it['symbol']}) reached the broker: {exc}. Refusing to trade until it "
                    "can be looked up."
                ) from exc
            if found is None:
                j.mark_intent(coid, "not_sent", reason="not at the broker when reconciled")
                report.resolved[coid] = "not_sent"
            else:
                j.mark_intent(coid, "submitted", order_id=found.id)
                j.upsert_order(found)
                report.resolved[coid] = "submitted"
            log.info("reconcile: intent %s resolved as %s", coid, report.resolved[coid])

        acct = b.account()
        if acct.blocked or acct.status != "ACTIVE":
            raise ReconcileError(
                f"account status {acct.status} (blocked={acct.blocked}): the broker does not "
                "allow trading on this account; resolve it with Alpaca before restarting"
            )

        open_orders = b.open_orders()
        foreign = [o for o in open_orders if not j.has_client_order_id(o.client_order_id)]
        if foreign:
            raise ReconcileError(
                f"{len(foreign)} open order(s) at the broker were not placed by this job: "
                + ", ".join(f"{o.side} {o.qty:g} {o.symbol} ({o.client_order_id})" for o in foreign)
                + ". Cancel them (or use another account) before starting the live job."
            )
        still_open = self._cancel_and_wait([o.id for o in open_orders], report.canceled)

        snap = j.get_state("snapshot")
        positions = b.positions()
        actual = {s: p.qty for s, p in positions.items()}
        adopt = self.cfg.adopt_broker_state
        if snap is None and j.max_intent_seq() > 0 and not adopt:
            raise ReconcileError(
                f"{j.path} has orders but no position snapshot; the journal is damaged. Check "
                "the account, then restart with live.adopt_broker_state=true."
            )
        since = (
            self._wall() if snap is None else dt.datetime.fromisoformat(snap["at"])
        ) - _FOREIGN_MARGIN
        recent = {o.id: o for o in b.orders_since(since)}
        known = set(snap.get("acknowledged", [])) if snap else set()
        outside = [
            o
            for o in recent.values()
            if o.id not in known and not j.has_client_order_id(o.client_order_id)
        ]
        if snap is None:
            report.first_run = True
            log.info("reconcile: first run, adopting broker positions %s", actual or "{}")
        else:
            if outside and not adopt:
                raise ReconcileError(
                    f"{len(outside)} order(s) since the last run were not placed by this job: "
                    + ", ".join(
                        f"{o.side} {o.qty:g} {o.symbol} {o.status} ({o.client_order_id})"
                        for o in outside
                    )
                    + ". Check the account, then restart with live.adopt_broker_state=true."
                )
            expected = self._expected_positions(snap, recent)
            diffs = {
                s: (expected.get(s, 0.0), actual.get(s, 0.0))
                for s in sorted(set(expected) | set(actual))
                if abs(expected.get(s, 0.0) - actual.get(s, 0.0)) > 1e-9
            }
            if diffs and not adopt:
                raise ReconcileError(
                    "broker positions differ from the journal: "
                    + ", ".join(
                        f"{s} broker {a:g} vs expected {e:g}" for s, (e, a) in diffs.items()
                    )
                    + ". Something traded outside this job or a fill was missed. Check the "
                    "account, then restart with live.adopt_broker_state=true to accept it."
                )
            for s, (e, a) in diffs.items():
                log.warning(
                    "reconcile: adopting broker position %s %g (journal expected %g)", s, a, e
                )
            report.adopted = diffs
        for o in outside:
            log.warning("reconcile: acknowledging order %s placed outside this job", o.id)
        # Outside orders already reflected in the adopted positions must not count again.
        acknowledged = sorted({o.id for o in outside} | (known & set(recent)))
        self._write_snapshot(positions, still_open, acknowledged=acknowledged)
        report.positions = actual
        log.info(
            "reconciled: %d positions, %d intents resolved, %d leftover orders canceled",
            len(actual),
            len(report.resolved),
            len(report.canceled),
        )
        return report

    def _expected_positions(
        self, snap: Mapping[str, Any], recent: Mapping[str, OrderView]
    ) -> dict[str, float]:
        """Snapshot positions plus the fills since of the orders this job placed after it."""
        j, b = self.journal, self.broker
        expected = dict(snap["positions"])
        counted: dict[str, float] = {}
        for it in j.intents(after_seq=int(snap["intent_seq"])):
            if it["status"] == "submitted" and it["broker_order_id"]:
                counted[it["broker_order_id"]] = 0.0
        counted.update({oid: float(q) for oid, q in snap.get("open", {}).items()})
        for oid, filled_before in counted.items():
            o = recent.get(oid) or b.order(oid)
            j.upsert_order(o)
            expected[o.symbol] = expected.get(o.symbol, 0.0) + o.sign * (
                o.filled_qty - filled_before
            )
        return {s: q for s, q in expected.items() if abs(q) > 1e-9}

    def _write_snapshot(
        self,
        positions: Mapping[str, PositionView],
        open_ids: Iterable[str],
        *,
        acknowledged: list[str] | None = None,
    ) -> None:
        """Positions now, plus fills so far of orders still open (their later fills count).

        ``acknowledged``: outside orders already reflected in these positions (adopted);
        when None the previous snapshot's list carries over.
        """
        prev = self.journal.get_state("snapshot") or {}
        open_filled = {oid: self.broker.order(oid).filled_qty for oid in open_ids}
        self.journal.set_state(
            "snapshot",
            {
                "positions": {s: p.qty for s, p in positions.items() if p.qty},
                "open": open_filled,
                "intent_seq": self.journal.max_intent_seq(),
                "at": self._wall().isoformat(),
                "acknowledged": prev.get("acknowledged", [])
                if acknowledged is None
                else acknowledged,
            },
        )

    def _cancel_and_wait(self, order_ids: list[str], canceled: list[str]) -> list[str]:
        """Cancel, then poll until every order is terminal or cancel_timeout_s passes."""
        if not order_ids or self.broker.dry_run:
            return []
        for oid in order_ids:
            self.broker.cancel(oid)
            canceled.append(oid)
        deadline = time.monotonic() + self.cfg.cancel_timeout_s
        pending = list(order_ids)
        while pending:
            views = [self.broker.order(oid) for oid in pending]
            for v in views:
                self.journal.upsert_order(v)
            pending = [v.id for v in views if v.is_open]
            if not pending or time.monotonic() >= deadline:
                break
            self._sleep(self.cfg.poll_interval_s)
        if pending:
            log.error("orders still open after cancel_timeout_s: %s", pending)
        return pending

    # -- market data and features ----------------------------------------------------------
    def decision_bar(self, now: dt.datetime) -> dt.datetime:
        """Open time of the last bar that closed at or before ``now`` (on the UTC grid)."""
        k = (now - _EPOCH) // self._tf
        return _EPOCH + (k - 1) * self._tf

    def _closed_bars(self, now: dt.datetime) -> list[Bar]:
        seen = self.decider.last_bar
        if seen:
            start = min(seen.get(s, now) for s in self.cfg.symbols) + self._tf
            if len(seen) < len(self.cfg.symbols):
                start = min(start, now - dt.timedelta(seconds=self.cfg.warmup_lookback_s))
        else:
            start = now - dt.timedelta(seconds=self.cfg.warmup_lookback_s)
        bars = self.broker.bars(self.cfg.symbols, self.cfg.timeframe, start, now)
        # The forming bar (end > now) would leak prices the backtest never saw: drop it.
        return [
            b
            for b in bars
            if b.timestamp + self._tf <= now
            and (b.symbol not in seen or b.timestamp > seen[b.symbol])
        ]

    # -- orders ----------------------------------------------------------------------------
    def _with_limit(self, o: ProposedOrder, last: float) -> ProposedOrder:
        if self.cfg.order_type != "limit":
            return o
        sign = 1 if o.side == "buy" else -1
        px = last * (1 + sign * self.cfg.limit_offset_bps / 1e4)
        return ProposedOrder(
            symbol=o.symbol,
            side=o.side,
            qty=o.qty,
            decision_price=o.decision_price,
            limit_price=round(px, 2 if px >= 1 else 4),
        )

    def _trading_day(self, now: dt.datetime) -> str:
        return now.astimezone(_EXCHANGE_TZ).date().isoformat()

    # -- the cycle -------------------------------------------------------------------------
    def run_cycle(self, now: dt.datetime) -> CycleReport:
        """One decision on the bars closed at ``now`` (UTC); see the module docstring."""
        if now.tzinfo is None:
            raise ValueError("run_cycle needs a timezone-aware 'now' (UTC)")
        bar_ts = self.decision_bar(now)
        cycle_id = self.journal.begin_cycle(bar_ts)
        report = CycleReport(cycle_id=cycle_id, bar_ts=bar_ts)
        followed: list[OrderView] = []
        try:
            self._step()
            self.reconcile()
            self._step()
            bars = self._closed_bars(now)
            self.decider.update(bars)
            report.bars = len(bars)
            self._step()
            self._decide_and_submit(now, bar_ts, cycle_id, report, followed)
            self._follow(followed, report)
            report.status = report.status if report.status != "running" else "ok"
        except _Interrupt as intr:
            report.status = intr.kind
        except ReconcileError as exc:
            report.status = "refused"
            self.journal.end_cycle(cycle_id, "refused", str(exc))
            log.error("cycle %d refused: %s", cycle_id, exc)
            raise
        except BrokerError as exc:
            report.status = "error"
            log.error("cycle %d: broker error: %s", cycle_id, exc)
            self._finish(report, followed, note=str(exc))
            raise
        self._finish(report, followed)
        return report

    def _decide_and_submit(
        self,
        now: dt.datetime,
        bar_ts: dt.datetime,
        cycle_id: int,
        report: CycleReport,
        followed: list[OrderView],
    ) -> None:
        b, j = self.broker, self.journal
        clock = b.clock()
        acct = b.account()
        positions = b.positions()
        open_orders = b.open_orders()
        effective = {s: p.qty for s, p in positions.items()}
        for o in open_orders:
            effective[o.symbol] = effective.get(o.symbol, 0.0) + o.signed_remaining

        day = self._trading_day(now)
        halt = j.get_state("halt")
        halted = halt["reason"] if halt and halt.get("day") == day else None
        halted = halted or daily_loss_breach(
            self.risk, equity=acct.equity, last_equity=acct.last_equity
        )
        report.preds = self.decider.predict()
        if halted:
            if not (halt and halt.get("day") == day):
                j.set_state("halt", {"day": day, "reason": halted})
                log.critical("%s", halted)
            else:
                log.warning("trading halted for %s: %s", day, halted)
            report.status = "halted"
            return

        report.targets = self.decider.targets(report.preds, equity=acct.equity)
        proposed = self.decider.proposals(report.targets, effective)
        syms = sorted({o.symbol for o in proposed})
        last = b.latest_trades(syms) if proposed else {}
        proposed = [
            self._with_limit(o, last[o.symbol]) if o.symbol in last else o for o in proposed
        ]
        report.proposed = proposed
        assets = {s: b.asset(s) for s in syms}
        marks = {s: abs(p.market_value) for s, p in positions.items()}
        gross = sum(marks.values()) + sum(
            abs(o.signed_remaining) * self.decider.last_close.get(o.symbol, 0.0)
            for o in open_orders
        )
        wall = self._wall()
        ctx = RiskContext(
            now=wall,
            market_open=clock.is_open,
            positions=effective,
            last_trade=last,
            tradable={s: a.tradable and a.active for s, a in assets.items()},
            shortable={s: a.shortable for s, a in assets.items()},
            gross_exposure=gross,
            equity=acct.equity,
            last_equity=acct.last_equity,
            buying_power=acct.buying_power,
            recent_order_times=j.sent_times(wall - dt.timedelta(seconds=60)),
        )
        decision = check_orders(proposed, ctx, self.risk)
        for r in decision.rejected:
            p = r.order
            log.warning("risk rejected %s %g %s: %s", p.side, p.qty, p.symbol, r.reason)
            j.record_rejection(
                cycle_id, symbol=p.symbol, side=p.side, qty=p.qty, source="risk", reason=r.reason
            )
            report.rejected.append((p.symbol, r.reason))

        for p in decision.accepted:
            self._step()
            coid = make_client_order_id(self.cfg.release_id, bar_ts, p.symbol, p.side)
            prior = j.intent(coid)
            if prior is not None and prior["status"] != "not_sent":
                log.info(
                    "%s %s for bar %s already %s; not sent again",
                    p.side,
                    p.symbol,
                    bar_ts,
                    prior["status"],
                )
                continue
            spec = OrderSpec(
                client_order_id=coid,
                symbol=p.symbol,
                side=p.side,
                qty=p.qty,
                type=self.cfg.order_type,
                limit_price=p.limit_price,
                time_in_force=self.cfg.time_in_force,
            )
            j.record_intent(
                cycle_id,
                spec,
                decision_price=p.decision_price,
                status="dry_run" if b.dry_run else "pending",
            )
            _crash_point("after_intent")
            result = b.submit(spec)
            _crash_point("after_submit")
            report.submitted.append(coid)
            if result.status == "accepted":
                assert result.order is not None
                j.mark_intent(coid, "submitted", order_id=result.order.id)
                j.upsert_order(result.order)
                followed.append(result.order)
                log.info("sent %s %g %s (%s)", p.side, p.qty, p.symbol, coid)
            elif result.status == "rejected":
                j.mark_intent(coid, "rejected", reason=result.reason)
                j.record_rejection(
                    cycle_id,
                    symbol=p.symbol,
                    side=p.side,
                    qty=p.qty,
                    source="broker",
                    reason=result.reason,
                )
                report.rejected.append((p.symbol, result.reason))
                log.warning("broker rejected %s %g %s: %s", p.side, p.qty, p.symbol, result.reason)
            elif result.status == "unknown":
                j.mark_intent(coid, "unknown", reason=result.reason)
                # The broker is not answering reliably: send nothing more until reconciled.
                raise BrokerError(f"outcome of order {coid} unknown: {result.reason}")

    def _follow(self, followed: list[OrderView], report: CycleReport) -> None:
        """Poll this cycle's orders until all are done or fill_timeout_s passes."""
        if not followed:
            return
        latest = {o.id: o for o in followed}
        for o in followed:
            report.filled_qty[o.symbol] = o.filled_qty
        after = min((o.submitted_at for o in followed if o.submitted_at), default=None)
        deadline = time.monotonic() + self.cfg.fill_timeout_s
        while any(o.is_open for o in latest.values()) and time.monotonic() < deadline:
            self._step()
            self._sleep(self.cfg.poll_interval_s)
            if after is not None:
                views = {o.id: o for o in self.broker.orders_since(after - dt.timedelta(seconds=1))}
            else:
                views = {}
            for oid, prev in list(latest.items()):
                if not prev.is_open:
                    continue
                v = views.get(oid) or self.broker.order(oid)
                for f in self.journal.upsert_order(v):
                    log.info("fill %s %g %s @ %s", f.side, f.qty, f.symbol, f.price)
                latest[oid] = v
                report.filled_qty[v.symbol] = v.filled_qty
        followed[:] = list(latest.values())

    def _finish(self, report: CycleReport, followed: list[OrderView], note: str = "") -> None:
        """Cancel what is left of this cycle (or everything, on kill), snapshot, close cycle."""
        try:
            if report.status == "killed":
                self._kill_all()
            else:
                still = self._cancel_and_wait(
                    [o.id for o in followed if o.is_open and o.id], canceled=[]
                )
                for o in followed:
                    if o.id not in still:
                        v = self.journal.order(o.id)
                        if v is not None:
                            report.filled_qty[o.symbol] = v["filled_qty"]
                self._write_snapshot(self.broker.positions(), still)
        except BrokerError as exc:
            # The next reconcile will find and cancel leftovers; the journal has every intent.
            log.error("cycle %d: could not finish cleanly: %s", report.cycle_id, exc)
            note = f"{note}; finish failed: {exc}".strip("; ")
        if report.status in ("stopped", "killed"):
            self.stopped_reason = report.status
        self.journal.end_cycle(report.cycle_id, report.status, note)
        log.info(
            "cycle %d (%s) %s: %d bars, %d targets, %d proposed, %d rejected, %d sent",
            report.cycle_id,
            report.bar_ts.isoformat(),
            report.status,
            report.bars,
            len(report.targets),
            len(report.proposed),
            len(report.rejected),
            len(report.submitted),
        )

    def _kill_all(self) -> None:
        log.critical("kill switch: cancelling all open orders and stopping")
        self.broker.cancel_all()
        deadline = time.monotonic() + self.cfg.cancel_timeout_s
        open_orders = self.broker.open_orders() if not self.broker.dry_run else []
        while open_orders and time.monotonic() < deadline:
            self._sleep(self.cfg.poll_interval_s)
            open_orders = self.broker.open_orders()
        for o in open_orders:
            log.error("kill switch: order %s still open after cancel_all", o.id)
        for o in self.broker.orders_since(self._wall() - dt.timedelta(days=1)):
            if self.journal.has_client_order_id(o.client_order_id):
                self.journal.upsert_order(o)
        self._write_snapshot(self.broker.positions(), [o.id for o in open_orders])

    def kill(self) -> None:
        """Engage the kill switch now: cancel every open order and mark the engine stopped."""
        self._kill.set()
        self._kill_all()
        self.stopped_reason = "killed"

    # -- the long-running loop -------------------------------------------------------------
    def run(self, *, max_cycles: int | None = None) -> str:
        """Trade each bar until stopped; returns why it stopped (stopped | killed | max_cycles).

        Broker outages skip the bar (the next cycle reconciles first); a failed
        reconciliation raises ReconcileError, which should end the job.
        """
        if self.kill_switch_engaged():
            raise KillSwitchEngaged(
                f"kill switch is engaged ({self.cfg.kill_switch_path} exists): remove it to "
                "trade again"
            )
        if threading.current_thread() is threading.main_thread():
            self.install_signal_handlers()
        self.reconcile()
        cycles = 0
        while True:
            try:
                if self.kill_switch_engaged():
                    self.kill()
                    return "killed"
                if self._stop.is_set():
                    return "stopped"
                clock = self.broker.clock()
                now = self._wall()
                wake = (
                    clock.next_open if not clock.is_open else self.decision_bar(now) + 2 * self._tf
                ) + dt.timedelta(seconds=self.cfg.settle_s)
                if not self._wait_until(wake):
                    continue
                report = self.run_cycle(self._wall())
            except BrokerError as exc:
                log.error("broker unavailable, skipping this bar: %s", exc)
                self._wait_until(self._wall() + min(self._tf, dt.timedelta(minutes=1)))
                continue
            if report.status in ("stopped", "killed"):
                return report.status
            cycles += 1
            if max_cycles is not None and cycles >= max_cycles:
                return "max_cycles"

    def _wait_until(self, t: dt.datetime) -> bool:
        """Sleep until ``t``; False if woken early by a stop or the kill switch."""
        while (left := (t - self._wall()).total_seconds()) > 0:
            if self._stop.is_set() or self.kill_switch_engaged():
                return False
            self._sleep(min(left, 0.5))
        return True
