"""The live job's memory: an SQLite journal (WAL) of cycles, intents, orders, fills, rejections.

Write-ahead discipline: an order *intent* (with its deterministic client_order_id) is committed
before the order is sent, so after a crash at any point the journal knows every order that
might exist at the broker; on restart, intents whose outcome is unknown are resolved by looking
their client_order_id up at the broker (``LiveEngine.reconcile``).

Every write is its own committed transaction (autocommit + ``synchronous=FULL``): a ``kill -9``
loses nothing that a call returned from.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeptrade.live.broker import OrderSpec, OrderView

SCHEMA_VERSION = 1

INTENT_STATUSES = ("pending", "submitted", "rejected", "unknown", "not_sent", "dry_run")
"""pending: written, not yet known to be at the broker; submitted: the broker has it;
rejected: the broker refused it; unknown: a submit whose outcome could not be established;
not_sent: confirmed absent at the broker (safe to send again); dry_run: never meant to be sent."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cycles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bar_ts TEXT, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL, note TEXT
);
CREATE TABLE IF NOT EXISTS intents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL UNIQUE,
    cycle_id INTEGER, symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL,
    type TEXT NOT NULL, limit_price REAL, decision_price REAL,
    status TEXT NOT NULL, broker_order_id TEXT, reason TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL, symbol TEXT, side TEXT,
    qty REAL, filled_qty REAL NOT NULL, filled_avg_price REAL, status TEXT NOT NULL,
    submitted_at TEXT, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, client_order_id TEXT,
    symbol TEXT, side TEXT, qty REAL NOT NULL, price REAL, recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, cycle_id INTEGER, symbol TEXT, side TEXT,
    qty REAL, source TEXT NOT NULL, reason TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT);
CREATE INDEX IF NOT EXISTS intents_status ON intents(status);
CREATE INDEX IF NOT EXISTS intents_created ON intents(created_at);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.UTC).isoformat()


@dataclass(frozen=True, kw_only=True)
class Fill:
    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    price: float | None


class Journal:
    """``Journal(path)``; one connection, used from one thread (the engine's)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}: journal schema version {row[0]} is not {SCHEMA_VERSION}; "
                "point live.journal_path at a new file (keep the old one for the record)"
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- cycles ----------------------------------------------------------------------------
    def begin_cycle(self, bar_ts: dt.datetime | None) -> int:
        cur = self._db.execute(
            "INSERT INTO cycles (bar_ts, started_at, status) VALUES (?, ?, 'running')",
            (_iso(bar_ts), _now()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def end_cycle(self, cycle_id: int, status: str, note: str = "") -> None:
        self._db.execute(
            "UPDATE cycles SET finished_at=?, status=?, note=? WHERE id=?",
            (_now(), status, note, cycle_id),
        )

    def cycles(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM cycles ORDER BY id")]

    # -- intents ---------------------------------------------------------------------------
    def record_intent(
        self, cycle_id: int, spec: OrderSpec, *, decision_price: float, status: str = "pending"
    ) -> int:
        """Commit an intent before its order is sent. A ``not_sent`` intent is re-armed."""
        assert status in ("pending", "dry_run"), status
        now = _now()
        with self._tx() as db:
            row = db.execute(
                "SELECT seq, status FROM intents WHERE client_order_id=?", (spec.client_order_id,)
            ).fetchone()
            if row is not None:
                assert row["status"] == "not_sent", (spec.client_order_id, row["status"])
                db.execute(
                    "UPDATE intents SET cycle_id=?, qty=?, limit_price=?, decision_price=?, "
                    "status=?, reason=NULL, created_at=?, updated_at=? WHERE seq=?",
                    (
                        cycle_id,
                        spec.qty,
                        spec.limit_price,
                        decision_price,
                        status,
                        now,
                        now,
                        row["seq"],
                    ),
                )
                return int(row["seq"])
            cur = db.execute(
                "INSERT INTO intents (client_order_id, cycle_id, symbol, side, qty, type, "
                "limit_price, decision_price, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.client_order_id,
                    cycle_id,
                    spec.symbol,
                    spec.side,
                    spec.qty,
                    spec.type,
                    spec.limit_price,
                    decision_price,
                    status,
                    now,
                    now,
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def mark_intent(
        self, client_order_id: str, status: str, *, order_id: str | None = None, reason: str = ""
    ) -> None:
        assert status in INTENT_STATUSES, status
        cur = self._db.execute(
            "UPDATE intents SET status=?, broker_order_id=COALESCE(?, broker_order_id), "
            "reason=?, updated_at=? WHERE client_order_id=?",
            (status, order_id, reason or None, _now(), client_order_id),
        )
        assert cur.rowcount == 1, f"no intent {client_order_id}"

    def intent(self, client_order_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM intents WHERE client_order_id=?", (client_order_id,)
        ).fetchone()
        return dict(row) if row else None

    def has_client_order_id(self, client_order_id: str) -> bool:
        return self.intent(client_order_id) is not None

    def unresolved_intents(self) -> list[dict[str, Any]]:
        """Intents that may or may not be at the broker (crash or ambiguous submit)."""
        rows = self._db.execute(
            "SELECT * FROM intents WHERE status IN ('pending', 'unknown') ORDER BY seq"
        )
        return [dict(r) for r in rows]

    def intents(self, *, after_seq: int = 0) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM intents WHERE seq > ? ORDER BY seq", (after_seq,))
        return [dict(r) for r in rows]

    def max_intent_seq(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM intents").fetchone()[0])

    def sent_times(self, since: dt.datetime) -> list[dt.datetime]:
        """When orders that may have reached the broker were written, from ``since`` on."""
        rows = self._db.execute(
            "SELECT created_at FROM intents WHERE status IN ('pending', 'submitted', 'unknown') "
            "AND created_at >= ?",
            (_iso(since),),
        )
        return [dt.datetime.fromisoformat(r[0]) for r in rows]

    # -- orders and fills ------------------------------------------------------------------
    def upsert_order(self, o: OrderView) -> list[Fill]:
        """Store the broker's view of an order; returns fills not journaled before.

        The broker reports cumulative ``filled_qty`` and average price; a new fill is the
        increase since the last view, priced from the change in filled notional.
        """
        now = _now()
        with self._tx() as db:
            prev = db.execute(
                "SELECT filled_qty, filled_avg_price FROM orders WHERE id=?", (o.id,)
            ).fetchone()
            old_qty = prev["filled_qty"] if prev else 0.0
            old_px = (prev["filled_avg_price"] or 0.0) if prev else 0.0
            db.execute(
                "INSERT INTO orders (id, client_order_id, symbol, side, qty, filled_qty, "
                "filled_avg_price, status, submitted_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "filled_qty=excluded.filled_qty, filled_avg_price=excluded.filled_avg_price, "
                "status=excluded.status, updated_at=excluded.updated_at",
                (
                    o.id,
                    o.client_order_id,
                    o.symbol,
                    o.side,
                    o.qty,
                    o.filled_qty,
                    o.filled_avg_price,
                    o.status,
                    _iso(o.submitted_at),
                    now,
                ),
            )
            fills = []
            delta = o.filled_qty - old_qty
            if delta > 1e-12:
                new_notional = o.filled_qty * (o.filled_avg_price or 0.0)
                price = (new_notional - old_qty * old_px) / delta if o.filled_avg_price else None
                fill = Fill(
                    order_id=o.id,
                    client_order_id=o.client_order_id,
                    symbol=o.symbol,
                    side=o.side,
                    qty=delta,
                    price=price,
                )
                db.execute(
                    "INSERT INTO fills (order_id, client_order_id, symbol, side, qty, price, "
                    "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (o.id, o.client_order_id, o.symbol, o.side, delta, price, now),
                )
                fills.append(fill)
            return fills

    def order(self, order_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM orders WHERE id=?", (order_id,)).fetchone()
        return dict(row) if row else None

    def fills(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM fills ORDER BY id")]

    # -- rejections ------------------------------------------------------------------------
    def record_rejection(
        self,
        cycle_id: int | None,
        *,
        symbol: str,
        side: str,
        qty: float,
        source: str,
        reason: str,
    ) -> None:
        self._db.execute(
            "INSERT INTO rejections (cycle_id, symbol, side, qty, source, reason, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cycle_id, symbol, side, qty, source, reason, _now()),
        )

    def rejections(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM rejections ORDER BY id")]

    # -- free-form state -------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
            (key, json.dumps(value, sort_keys=True), _now()),
        )
