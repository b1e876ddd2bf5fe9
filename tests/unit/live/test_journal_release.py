"""The SQLite journal (write-ahead intents, fills from cumulative quantities) and the release
check that stands between a published artifact and real orders."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from deeptrade.io.artifacts import MANIFEST, ArtifactStore
from deeptrade.live.broker import OrderSpec, OrderView
from deeptrade.live.journal import Journal
from deeptrade.live.release import check_release, release_id

T0 = dt.datetime(2024, 1, 2, 15, 30, tzinfo=dt.UTC)


def _view(filled: float, avg: float | None, status: str) -> OrderView:
    return OrderView(
        id="b1c2",
        client_order_id="dt-1",
        symbol="AAA",
        side="buy",
        qty=10,
        filled_qty=filled,
        filled_avg_price=avg,
        status=status,
        type="market",
        limit_price=None,
        submitted_at=T0,
    )


def test_intent_lifecycle_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    spec = OrderSpec(client_order_id="dt-1", symbol="AAA", side="buy", qty=10)
    with Journal(path) as j:
        cycle = j.begin_cycle(T0)
        j.record_intent(cycle, spec, decision_price=100.0)
        assert [i["status"] for i in j.unresolved_intents()] == ["pending"]
    # A new process (kill -9 between the two) sees the intent that was written before submit.
    with Journal(path) as j:
        assert j.unresolved_intents()[0]["client_order_id"] == "dt-1"
        j.mark_intent("dt-1", "not_sent")
        j.record_intent(cycle, spec, decision_price=101.0)  # re-armed, same id
        j.mark_intent("dt-1", "submitted", order_id="b1c2")
        assert j.unresolved_intents() == []
        assert j.intent("dt-1")["broker_order_id"] == "b1c2"  # type: ignore[index]
        assert j.max_intent_seq() == 1
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_partial_fills_become_fill_rows(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        assert j.upsert_order(_view(0, None, "new")) == []
        f1 = j.upsert_order(_view(4, 100.0, "partially_filled"))
        assert [(f.qty, f.price) for f in f1] == [(4, 100.0)]
        f2 = j.upsert_order(_view(10, 101.2, "filled"))  # 6 more at 102
        assert f2[0].qty == 6 and f2[0].price == pytest.approx(102.0)
        assert j.upsert_order(_view(10, 101.2, "filled")) == []
        assert sum(f["qty"] for f in j.fills()) == 10
        assert j.order("b1c2")["status"] == "filled"  # type: ignore[index]


def test_state_and_rejections(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        j.set_state("snapshot", {"positions": {"AAA": 3}})
        j.set_state("snapshot", {"positions": {"AAA": 4}})
        assert j.get_state("snapshot") == {"positions": {"AAA": 4}}
        assert j.get_state("missing", 7) == 7
        j.record_rejection(None, symbol="AAA", side="buy", qty=1, source="risk", reason="x")
        assert j.rejections()[0]["reason"] == "x"


# -- releases ------------------------------------------------------------------------------
def _publish(root: Path, *, spec_hash: str = "spec-abc") -> Path:
    store = ArtifactStore(root)
    with store.write(
        "releases", "momo", key="k", config={}, meta={"feature_spec_hash": spec_hash}
    ) as tmp:
        (tmp / "model.bin").write_bytes(b"weights")
        (tmp / "thresholds.json").write_text('{"long_above": 0.0}')
    return store.path("releases", "momo")


def test_fresh_untouched_release_passes(tmp_path: Path) -> None:
    path = _publish(tmp_path)
    m = check_release(path, expected_feature_spec_hash="spec-abc", max_age=dt.timedelta(days=7))
    assert m.kind == "releases" and release_id(m).startswith("momo@")


def test_tampered_release_is_refused(tmp_path: Path) -> None:
    path = _publish(tmp_path)
    (path / "thresholds.json").write_text('{"long_above": -1.0}')
    with pytest.raises(ValueError, match="changed after publishing"):
        check_release(path, expected_feature_spec_hash="spec-abc", max_age=dt.timedelta(days=7))


def test_stale_release_is_refused(tmp_path: Path) -> None:
    path = _publish(tmp_path)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    with pytest.raises(ValueError, match=r"10\.0 days old .* allowed 7\.0 days"):
        check_release(
            path, expected_feature_spec_hash="spec-abc", max_age=dt.timedelta(days=7), now=later
        )


def test_feature_spec_mismatch_is_refused(tmp_path: Path) -> None:
    path = _publish(tmp_path, spec_hash="spec-old")
    with pytest.raises(ValueError, match="trained on feature spec spec-old"):
        check_release(path, expected_feature_spec_hash="spec-new", max_age=dt.timedelta(days=7))


def test_schema_version_and_missing_manifest(tmp_path: Path) -> None:
    path = _publish(tmp_path)
    data = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(ValueError, match="schema version 99"):
        check_release(path, expected_feature_spec_hash="spec-abc", max_age=dt.timedelta(days=7))
    (path / MANIFEST).unlink()
    with pytest.raises(ValueError, match="not a complete release"):
        check_release(path, expected_feature_spec_hash="spec-abc", max_age=dt.timedelta(days=7))
