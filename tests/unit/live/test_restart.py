"""kill -9 between the broker and the journal, then restart in a new process.

The engine runs in a subprocess that SIGKILLs itself at a chosen point (test hook
``DEEPTRADE_LIVE_TEST_CRASH_AT``); a second process on the same journal must resolve what the
first left behind by client_order_id, send nothing twice and end reconciled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deeptrade.live.broker import AlpacaKeys, make_client_order_id
from deeptrade.live.engine import CRASH_ENV
from deeptrade.live.journal import Journal
from tests.fakes.alpaca_trading import FakeAlpaca
from tests.unit.live.harness import KEY_ID, NOW, SECRET, STEP, build_engine, engine_config

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("engine_proc.py")
RELEASE = engine_config(Path(".")).release_id


def _coid(symbol: str, bar: Any = NOW - STEP) -> str:
    return make_client_order_id(RELEASE, bar, symbol, "buy")


def _run(tmp_path: Path, fake: FakeAlpaca, cycles: list[Any], crash_at: str | None) -> Any:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "APCA_API_KEY_ID": KEY_ID,
        "APCA_API_SECRET_KEY": SECRET,
    }
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    args = {"url": fake.url, "dir": str(tmp_path), "cycles": [c.isoformat() for c in cycles]}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if crash_at:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        return None
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _restart_here(tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys, cycles: list[Any]) -> Any:
    """The restart, in this process (a new engine and journal connection, as a new process
    would build them): cheaper than a second interpreter once one test has done that."""
    engine = build_engine(tmp_path, fake.url, keys)
    report = engine.reconcile()
    runs = [{"submitted": engine.run_cycle(now).submitted} for now in cycles]
    engine.journal.close()
    return {"resolved": report.resolved, "canceled": report.canceled, "cycles": runs}


def _journal_status(tmp_path: Path, coid: str) -> str:
    with Journal(tmp_path / "journal.sqlite") as j:
        intent = j.intent(coid)
        assert intent is not None
        return str(intent["status"])


def _end_state_is_clean(tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    coids = fake.accepted_coids()
    assert len(coids) == len(set(coids)), coids
    for o in fake.accepted:  # never beyond the target (and so the position limit)
        assert o["position_before"] + o["qty"] <= {"AAA": 10, "CCC": 52}[o["symbol"]]
    assert {s: q for s, (q, _) in fake.positions.items() if q} == {"AAA": 10.0, "CCC": 52.0}
    fresh = build_engine(tmp_path, fake.url, keys)
    assert fresh.reconcile().adopted == {}
    assert fresh.run_cycle(NOW + 2 * STEP).submitted == []


def test_killed_after_submit_before_journal(
    tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    _run(tmp_path, fake, [NOW], crash_at="after_submit")
    assert fake.accepted_coids() == [_coid("AAA")]  # the broker has it ...
    assert _journal_status(tmp_path, _coid("AAA")) == "pending"  # ... the journal does not know

    out = _run(tmp_path, fake, [NOW, NOW + STEP], crash_at=None)
    assert out["resolved"] == {_coid("AAA"): "submitted"}
    assert out["cycles"][0]["submitted"] == [_coid("CCC")]  # AAA is already at its target
    assert out["cycles"][1]["submitted"] == []
    _end_state_is_clean(tmp_path, fake, keys)


def test_killed_after_intent_before_submit(
    tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    _run(tmp_path, fake, [NOW], crash_at="after_intent")
    assert fake.accepted == []
    out = _restart_here(tmp_path, fake, keys, [NOW])
    assert out["resolved"] == {_coid("AAA"): "not_sent"}
    assert out["cycles"][0]["submitted"] == [_coid("AAA"), _coid("CCC")]  # same id, re-armed
    _end_state_is_clean(tmp_path, fake, keys)


@pytest.mark.parametrize("bar_offset", [0, 1], ids=["same-bar", "next-bar"])
def test_killed_with_an_order_resting(
    tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys, bar_offset: int
) -> None:
    fake.fill_schedule = [0.0]  # the order rests unfilled when the process dies
    _run(tmp_path, fake, [NOW], crash_at="after_submit")
    fake.fill_schedule = [1.0]
    out = _restart_here(tmp_path, fake, keys, [NOW + bar_offset * STEP, NOW + STEP])
    first = fake.orders[fake.by_coid[_coid("AAA")]]
    assert out["canceled"] == [first.id] and first.status == "canceled"
    assert first.filled_qty == 0
    _end_state_is_clean(tmp_path, fake, keys)
