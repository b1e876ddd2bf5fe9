"""LiveEngine against the fake broker: real alpaca-py, real sockets, real journal, real parts.

Every fault test ends the same way: the broker's own record holds no duplicate order and no
order beyond a risk limit, and a fresh engine on the same journal reconciles cleanly.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deeptrade.live.broker import AlpacaKeys, BrokerError
from deeptrade.live.engine import KillSwitchEngaged, LiveEngine, ReconcileError
from tests.fakes.alpaca_trading import FakeAlpaca
from tests.fakes.server import FakeServer, Fault
from tests.unit.live.harness import KEY_ID, NOW, PRICES, SECRET, STEP, build_engine, history

TARGETS = {"AAA": 10.0, "CCC": 52.0}


def _assert_broker_record_clean(fake: FakeAlpaca, *, max_notional: float = 1_500.0) -> None:
    coids = fake.accepted_coids()
    assert len(coids) == len(set(coids)), f"duplicate orders at the broker: {coids}"
    for o in fake.accepted:
        after = o["position_before"] + (o["qty"] if o["side"] == "buy" else -o["qty"])
        assert abs(after) * o["price"] <= max_notional, f"order beyond the risk limit: {o}"


def _positions(fake: FakeAlpaca) -> dict[str, float]:
    return {s: q for s, (q, _) in fake.positions.items() if q}


def _restart_reconciles(tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys) -> LiveEngine:
    """A new engine on the same journal (as after a restart) must reconcile cleanly."""
    fresh = build_engine(tmp_path, fake.url, keys)
    report = fresh.reconcile()
    assert report.adopted == {} and not report.first_run
    return fresh


def _once_both_orders_are_in(fake: FakeAlpaca, action: Any) -> None:
    """Run ``action`` from another thread as soon as the broker has accepted both orders."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 5.0
        while len(fake.accepted) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        action()

    threading.Thread(target=wait_then_act, daemon=True).start()


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


# -- the normal path --------------------------------------------------------------------------
def test_cycle_trades_the_difference_then_holds(
    engine: LiveEngine, fake: FakeAlpaca, tmp_path: Path, keys: AlpacaKeys
) -> None:
    assert engine.reconcile().first_run
    report = engine.run_cycle(NOW)
    assert report.status == "ok"
    assert report.bar_ts == NOW - STEP
    assert report.targets == {"AAA": 10.0, "BBB": 0.0, "CCC": 52.0}
    assert _positions(fake) == TARGETS
    intents = engine.journal.intents()
    assert {i["symbol"]: i["status"] for i in intents} == {"AAA": "submitted", "CCC": "submitted"}
    assert {f["symbol"]: f["qty"] for f in engine.journal.fills()} == TARGETS

    again = engine.run_cycle(NOW + STEP)  # targets reached: nothing to send
    assert again.status == "ok" and again.proposed == [] and len(fake.accepted) == 2
    _assert_broker_record_clean(fake)
    _restart_reconciles(tmp_path, fake, keys)


def test_limit_orders_are_priced_off_the_last_trade(
    tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    eng = build_engine(tmp_path, fake.url, keys, engine_kw={"order_type": "limit"})
    eng.run_cycle(NOW)
    assert {o["symbol"]: (o["type"], o["limit_price"]) for o in fake.accepted} == {
        "AAA": ("limit", 100.1),
        "CCC": ("limit", 20.02),
    }


def test_forming_bar_never_reaches_the_decision(keys: AlpacaKeys, tmp_path: Path) -> None:
    """Perturbation: change the bar still forming at decision time; the decision is unchanged."""
    now = NOW + dt.timedelta(seconds=30)  # the bar opened at NOW is half-way through
    reports = {}
    for name, mult in (("base", 1.0), ("perturbed", 3.0)):
        bars = history()
        for df in bars.values():
            row = df["timestamp"] == NOW
            df.loc[row, ["close", "high", "vwap"]] *= mult
        with FakeServer() as srv:
            fake = FakeAlpaca(srv, key_id=KEY_ID, secret_key=SECRET, prices=dict(PRICES), bars=bars)
            eng = build_engine(tmp_path / name, fake.url, keys)
            reports[name] = (eng.run_cycle(now).preds, eng.run_cycle(NOW + STEP).preds)
    (base_now, base_next), (pert_now, pert_next) = reports["base"], reports["perturbed"]
    assert base_now == pert_now
    assert base_next != pert_next  # once that bar has closed it counts (the test can see it)


# -- partial fills, market state, risk --------------------------------------------------------
def test_partial_fills_are_followed_cancelled_and_topped_up(
    engine: LiveEngine, fake: FakeAlpaca, tmp_path: Path, keys: AlpacaKeys
) -> None:
    fake.fill_schedule = [0.5, 0.0]  # half at once, then nothing: the rest must be cancelled
    report = engine.run_cycle(NOW)
    assert report.filled_qty == {"AAA": 5.0, "CCC": 26.0}
    assert all(o.status == "canceled" for o in fake.orders.values())
    assert _positions(fake) == {"AAA": 5.0, "CCC": 26.0}
    assert {f["symbol"]: f["qty"] for f in engine.journal.fills()} == {"AAA": 5.0, "CCC": 26.0}

    fake.fill_schedule = [1.0]
    engine.run_cycle(NOW + STEP)  # the next bar tops up the difference, with new ids
    assert _positions(fake) == TARGETS
    assert len(fake.accepted) == 4
    _assert_broker_record_clean(fake)
    _restart_reconciles(tmp_path, fake, keys)


def test_market_closed_sends_nothing(engine: LiveEngine, fake: FakeAlpaca) -> None:
    fake.market_open = False
    report = engine.run_cycle(NOW)
    assert {r for _, r in report.rejected} == {"market closed"}
    assert fake.post_count() == 0
    assert len(engine.journal.rejections()) == 2


def test_halted_symbol_is_skipped(engine: LiveEngine, fake: FakeAlpaca) -> None:
    fake.halt("AAA")
    report = engine.run_cycle(NOW)
    assert [s for s, _ in report.rejected] == ["AAA"]
    assert "halted or not tradable" in report.rejected[0][1]
    assert [o["symbol"] for o in fake.accepted] == ["CCC"]


def test_no_order_beyond_a_risk_limit(tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    # 2,000 per symbol: within the 2,500 position limit, but two exceed the 3,000 gross limit.
    eng = build_engine(
        tmp_path,
        fake.url,
        keys,
        notional=2_000.0,
        risk_kw={"max_position_notional": 2_500.0, "max_gross_exposure": 3_000.0},
    )
    report = eng.run_cycle(NOW)
    assert [o["symbol"] for o in fake.accepted] == ["AAA"]
    assert "max_gross_exposure" in dict(report.rejected)["CCC"]
    _assert_broker_record_clean(fake, max_notional=2_500.0)
    gross = sum(abs(q) * PRICES[s] for s, q in _positions(fake).items())
    assert gross <= 3_000.0


def test_daily_loss_limit_halts_for_the_day(engine: LiveEngine, fake: FakeAlpaca) -> None:
    fake.last_equity = fake.equity() + 1_500.0  # down 1,500 since yesterday's close
    assert engine.run_cycle(NOW).status == "halted"
    assert "daily loss limit" in engine.journal.get_state("halt")["reason"]
    fake.last_equity = fake.equity()  # recovered, but the halt holds for the day
    assert engine.run_cycle(NOW + STEP).status == "halted"
    assert fake.post_count() == 0


def test_dry_run_sends_no_orders(tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    eng = build_engine(tmp_path, fake.url, keys, broker_kw={"mode": "dry_run"})
    report = eng.run_cycle(NOW)
    assert len(report.submitted) == 2
    assert {i["status"] for i in eng.journal.intents()} == {"dry_run"}
    eng.run_cycle(NOW + STEP)
    assert fake.mutating_requests() == []


# -- faults -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "fault"),
    [
        ("POST", "/v2/orders", Fault(status=504, after_handler=True)),
        ("POST", "/v2/orders", Fault(drop=True, after_handler=True)),
        ("POST", "/v2/orders", Fault(stall_s=30)),
        ("POST", "/v2/orders", Fault(status=503, times=2)),
        ("GET", "/v2/account", Fault(status=500)),
        ("GET", "/v2/positions", Fault(stall_s=30)),
        ("GET", "/v2/stocks/bars", Fault(drop=True)),
        ("GET", "/v2/orders", Fault(status=502, times=2)),
    ],
    ids=[
        "504-after-accept",
        "drop-after-accept",
        "stalled-submit",
        "503-twice",
        "500-account",
        "stalled-positions",
        "dropped-bars",
        "502-orders",
    ],
)
def test_faults_never_double_an_order(
    engine: LiveEngine,
    fake: FakeAlpaca,
    tmp_path: Path,
    keys: AlpacaKeys,
    method: str,
    path: str,
    fault: Fault,
) -> None:
    engine.reconcile()
    fake.server.fault(method, path, fault)
    t0 = time.monotonic()
    report = engine.run_cycle(NOW)
    assert time.monotonic() - t0 < 5.0
    assert report.status == "ok"
    assert _positions(fake) == TARGETS
    _assert_broker_record_clean(fake)
    fresh = _restart_reconciles(tmp_path, fake, keys)
    assert fresh.run_cycle(NOW).proposed == []  # same bar again: nothing more to do
    assert len(fake.accepted) == 2


def test_broker_outage_refuses_to_trade_then_recovers(engine: LiveEngine, fake: FakeAlpaca) -> None:
    fake.server.fault("GET", "/v2/account", Fault(status=500, times=3))
    with pytest.raises(ReconcileError, match=r"cannot reconcile with the broker.*500"):
        engine.run_cycle(NOW)
    assert fake.post_count() == 0
    assert engine.journal.cycles()[-1]["status"] == "refused"
    assert engine.run_cycle(NOW).status == "ok"
    assert _positions(fake) == TARGETS


def test_unknown_submit_outcome_stops_sending_until_resolved(
    engine: LiveEngine, fake: FakeAlpaca, tmp_path: Path, keys: AlpacaKeys
) -> None:
    # The first POST is lost in flight and the broker cannot be asked about it either.
    fake.server.fault("POST", "/v2/orders", Fault(drop=True))
    fake.server.fault("GET", "/v2/orders:by_client_order_id", Fault(status=500, times=3))
    with pytest.raises(BrokerError, match="unknown"):
        engine.run_cycle(NOW)
    assert [i["status"] for i in engine.journal.intents()] == ["unknown"]
    assert fake.post_count() == 1  # nothing else was sent after the unknown outcome
    # The next cycle resolves it (not at the broker) and sends each order exactly once.
    report = engine.run_cycle(NOW)
    assert report.status == "ok" and _positions(fake) == TARGETS
    _assert_broker_record_clean(fake)
    _restart_reconciles(tmp_path, fake, keys)


# -- reconciliation -------------------------------------------------------------------------------
def test_foreign_open_order_is_refused(engine: LiveEngine, fake: FakeAlpaca) -> None:
    fake.place_foreign_order("AAA", "buy", 3)
    with pytest.raises(ReconcileError, match=r"not placed by this job.*buy 3 AAA"):
        engine.run_cycle(NOW)
    assert fake.post_count() == 0


def test_position_drift_is_refused_unless_adopted(
    engine: LiveEngine, fake: FakeAlpaca, tmp_path: Path, keys: AlpacaKeys
) -> None:
    engine.run_cycle(NOW)
    fake.set_position("AAA", 25)  # someone traded AAA by hand
    with pytest.raises(ReconcileError, match="AAA broker 25 vs expected 10"):
        engine.reconcile()
    adopting = build_engine(tmp_path, fake.url, keys, engine_kw={"adopt_broker_state": True})
    assert adopting.reconcile().adopted == {"AAA": (10.0, 25.0)}
    _restart_reconciles(tmp_path, fake, keys)  # the adopted state is the new baseline


def test_outside_trade_since_last_run_is_refused_unless_adopted(
    engine: LiveEngine, fake: FakeAlpaca, tmp_path: Path, keys: AlpacaKeys
) -> None:
    engine.run_cycle(NOW)
    fake.place_foreign_order("BBB", "buy", 2, fill=True)
    with pytest.raises(ReconcileError, match="since the last run were not placed by this job"):
        engine.reconcile()
    adopting = build_engine(tmp_path, fake.url, keys, engine_kw={"adopt_broker_state": True})
    assert adopting.reconcile().adopted == {"BBB": (0.0, 2.0)}
    _restart_reconciles(tmp_path, fake, keys)  # acknowledged: not refused a second time


def test_first_run_adopts_recent_outside_trades(
    tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    fake.place_foreign_order("AAA", "buy", 4, fill=True)  # e.g. set up by hand just before
    first = build_engine(tmp_path, fake.url, keys)
    assert first.reconcile().positions == {"AAA": 4.0}
    first.run_cycle(NOW)
    assert _positions(fake) == TARGETS  # AAA topped up from 4 to 10
    _assert_broker_record_clean(fake)
    _restart_reconciles(tmp_path, fake, keys)


# -- stopping ------------------------------------------------------------------------------------
def test_kill_switch_file_cancels_and_stops(engine: LiveEngine, fake: FakeAlpaca) -> None:
    fake.fill_schedule = [0.0]
    engine.cfg.fill_timeout_s = 10.0
    kill_file = Path(str(engine.cfg.kill_switch_path))
    _once_both_orders_are_in(fake, kill_file.touch)
    t0 = time.monotonic()
    report = engine.run_cycle(NOW)
    assert time.monotonic() - t0 < 3.0
    assert report.status == "killed" and engine.stopped_reason == "killed"
    assert "DELETE /v2/orders" in fake.mutating_requests()
    assert all(o.status == "canceled" for o in fake.orders.values())
    with pytest.raises(KillSwitchEngaged, match="remove it to trade again"):
        engine.run()


@pytest.mark.usefixtures("restore_signals")
@pytest.mark.parametrize(
    ("sig", "outcome"), [(signal.SIGUSR1, "killed"), (signal.SIGTERM, "stopped")]
)
def test_signals_stop_cleanly(
    engine: LiveEngine, fake: FakeAlpaca, sig: signal.Signals, outcome: str
) -> None:
    fake.fill_schedule = [0.5, 0.0]  # orders stay open: the engine is following fills
    engine.cfg.fill_timeout_s = 10.0
    engine.install_signal_handlers()
    _once_both_orders_are_in(fake, lambda: os.kill(os.getpid(), sig))
    t0 = time.monotonic()
    report = engine.run_cycle(NOW)
    assert time.monotonic() - t0 < 3.0
    assert report.status == outcome == engine.stopped_reason
    assert all(o.status == "canceled" for o in fake.orders.values())
    assert engine.journal.cycles()[-1]["status"] == outcome
    snap = engine.journal.get_state("snapshot")
    assert snap["positions"] == {"AAA": 5.0, "CCC": 26.0} and snap["open"] == {}


@pytest.mark.usefixtures("restore_signals")
def test_run_loop_trades_each_bar(tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    clock = [NOW - dt.timedelta(seconds=10)]

    def sleep(s: float) -> None:
        clock[0] += dt.timedelta(seconds=s)

    eng = build_engine(tmp_path, fake.url, keys, wall_clock=lambda: clock[0], sleep=sleep)
    assert eng.run(max_cycles=2) == "max_cycles"
    cycles = eng.journal.cycles()
    assert [c["bar_ts"] for c in cycles] == [(NOW - STEP).isoformat(), NOW.isoformat()]
    assert _positions(fake) == TARGETS


# -- secrets -------------------------------------------------------------------------------------
def test_keys_never_reach_logs_or_journal(
    tmp_path: Path,
    fake: FakeAlpaca,
    keys: AlpacaKeys,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 and alpaca-py included
    eng = build_engine(tmp_path, fake.url, keys)
    fake.server.fault("POST", "/v2/orders", Fault(status=504, after_handler=True))
    fake.server.fault("GET", "/v2/account", Fault(stall_s=30))
    eng.run_cycle(NOW)
    fake.set_position("AAA", 99)
    with pytest.raises(ReconcileError) as err:
        eng.reconcile()
    eng.journal.close()
    logging.getLogger("test").info("engine %r keys %r", eng, keys)
    out, errs = capfd.readouterr()
    texts = [caplog.text, out, errs, str(err.value), repr(keys)]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.glob("journal.sqlite*")]
    assert "504" in caplog.text  # the faults were logged ...
    for text in texts:  # ... the keys never
        assert KEY_ID not in text and SECRET not in text
