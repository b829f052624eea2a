"""alerts.db: alert states, incident history, acknowledgements and the notification outbox.

The clock is the only writer of states, incidents and the outbox (`evaluation`, the
outbox updates of `alerts_notify.send_pending`, `cleanup`); the web reads it read-only and
writes only acknowledgements, in a short `BEGIN IMMEDIATE`. States, incidents and outbox rows
of one evaluation commit together: a crash never loses a transition nor enqueues one twice
(each outbox row has a unique idempotency key).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panfm.storage.sqlite as sqlite_db
from panfm.models import AlertState, Rule, StateKey, Transition
from panfm.timefmt import iso_s as iso

log = logging.getLogger("panfm.storage")

ALERTS_DB = "alerts.db"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE states (
        rule_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        series TEXT NOT NULL,
        state TEXT NOT NULL,
        alert_id TEXT,
        metric TEXT NOT NULL,
        severity TEXT NOT NULL,
        threshold REAL,
        since REAL,
        fired_at REAL,
        value REAL,
        peak REAL,
        last_notified REAL,
        observed TEXT,
        observed_at REAL,
        detail TEXT,
        PRIMARY KEY (rule_id, device_id, series)
    );
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        rule_id TEXT NOT NULL,
        rule_name TEXT NOT NULL,
        device_id TEXT NOT NULL,
        series TEXT NOT NULL,
        metric TEXT NOT NULL,
        severity TEXT NOT NULL,
        threshold REAL,
        started_at REAL NOT NULL,
        fired_at REAL NOT NULL,
        ended_at REAL,
        last_value REAL,
        peak REAL,
        detail TEXT
    );
    CREATE INDEX incidents_device_started ON incidents (device_id, started_at);
    CREATE INDEX incidents_started ON incidents (started_at);
    CREATE TABLE acks (
        alert_id TEXT NOT NULL,
        username TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (alert_id, username)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        channel_id TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        sent_at REAL,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    """,
]


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open alerts.db (creating and migrating it unless read-only)."""
    return sqlite_db.connect(path, MIGRATIONS, readonly=readonly)


@contextmanager
def _reader(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None when the clock has not created alerts.db yet."""
    if not path.exists():
        yield None
        return
    conn = connect(path, readonly=True)
    try:
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------------------
# States and the evaluation step (clock)
# --------------------------------------------------------------------------------------

_STATE_FIELDS = ("state", "alert_id", "since", "fired_at", "value", "peak", "last_notified", "observed",
                 "observed_at", "detail")


_UPSERT_STATE = (
    "INSERT OR REPLACE INTO states (rule_id, device_id, series, metric, severity, threshold, state, alert_id,"
    " since, fired_at, value, peak, last_notified, observed, observed_at, detail) VALUES"
    " (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def load_states(conn: sqlite3.Connection) -> dict[StateKey, AlertState]:
    """Every persisted state by (rule, device, series)."""
    out = {}
    for r in conn.execute("SELECT * FROM states"):
        out[(r["rule_id"], r["device_id"], r["series"])] = AlertState(
            r["rule_id"], r["device_id"], r["series"], **{f: r[f] for f in _STATE_FIELDS}
        )
    return out


def _save(conn: sqlite3.Connection, states: Mapping[StateKey, AlertState], transitions: Sequence[Transition],
          rules: Mapping[str, Rule], channel_ids: set[str], now: float, device_names: Mapping[str, str]) -> None:
    old_keys = {(r[0], r[1], r[2]) for r in conn.execute("SELECT rule_id, device_id, series FROM states")}
    for key in old_keys - set(states):
        conn.execute("DELETE FROM states WHERE rule_id=? AND device_id=? AND series=?", key)
    for key, st in states.items():
        rule = rules[key[0]]
        conn.execute(
            _UPSERT_STATE,
            (*key, rule.metric, rule.severity, rule.threshold, *(getattr(st, f) for f in _STATE_FIELDS)),
        )
        if st.state == "firing":  # keep the incident's peak and last value current
            conn.execute("UPDATE incidents SET last_value=?, peak=?, detail=? WHERE id=?",
                         (st.value, st.peak, st.detail, st.alert_id))
    for t in transitions:
        rule_or_none = rules.get(t.rule_id)
        if t.kind == "firing" and rule_or_none is not None:
            conn.execute(
                "INSERT OR IGNORE INTO incidents (id, rule_id, rule_name, device_id, series, metric, severity,"
                " threshold, started_at, fired_at, last_value, peak, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (t.alert_id, t.rule_id, rule_or_none.name, t.device_id, t.series, t.metric, t.severity,
                 t.threshold, t.started_at, t.at, t.value, t.peak, t.detail),
            )
        elif t.kind == "resolved":
            conn.execute("UPDATE incidents SET ended_at=?, last_value=?, peak=?, detail=? WHERE id=?",
                         (t.at, t.value, t.peak, t.detail, t.alert_id))
        if not t.notify or rule_or_none is None or t.kind not in ("firing", "repeat", "resolved"):
            continue
        payload = json.dumps({
            "kind": t.kind, "alert_id": t.alert_id, "rule_name": rule_or_none.name, "device_id": t.device_id,
            "device_name": device_names.get(t.device_id, t.device_id), "series": t.series, "metric": t.metric,
            "severity": t.severity, "operator": rule_or_none.operator, "value": t.value, "threshold": t.threshold,
            "peak": t.peak, "started_at": t.started_at, "at": t.at, "detail": t.detail,
        })
        # The key names the transition, so re-running a committed evaluation can never enqueue it twice.
        seq = f"{t.at:.3f}" if t.kind == "repeat" else t.kind
        for channel_id in rule_or_none.channel_ids:
            if channel_id in channel_ids:
                conn.execute(
                    "INSERT OR IGNORE INTO outbox (key, channel_id, alert_id, kind, payload, created_at,"
                    " next_attempt_at) VALUES (?,?,?,?,?,?,?)",
                    (f"{t.alert_id}:{seq}:{channel_id}", channel_id, t.alert_id, t.kind, payload, now, now),
                )


class EvaluationTxn:
    """States read and saved inside one write transaction of alerts.db (see `evaluation`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def load_states(self) -> dict[StateKey, AlertState]:
        """Every persisted state by (rule, device, series)."""
        return load_states(self._conn)

    def save(self, states: Mapping[StateKey, AlertState], transitions: Sequence[Transition],
             rules: Mapping[str, Rule], channel_ids: set[str], now: float, device_names: Mapping[str, str]) -> None:
        """Replace the states, record the incidents and enqueue the notifications of `transitions`."""
        _save(self._conn, states, transitions, rules, channel_ids, now, device_names)


@contextmanager
def evaluation(alerts_db: Path) -> Iterator[EvaluationTxn]:
    """One write transaction for load states -> evaluate -> save: no transition is lost between them.

    Commits when the block ends, rolls back if it raises.
    """
    conn = connect(alerts_db)
    try:
        with sqlite_db.transaction(conn):
            yield EvaluationTxn(conn)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------
# Reads for the web, acknowledgements, retention
# --------------------------------------------------------------------------------------


def _acks(conn: sqlite3.Connection, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not alert_ids:
        return out
    marks = ",".join("?" * len(alert_ids))
    for r in conn.execute(f"SELECT * FROM acks WHERE alert_id IN ({marks}) ORDER BY at", alert_ids):  # noqa: S608  # nosec B608
        out.setdefault(r["alert_id"], []).append({"username": r["username"], "at": iso(r["at"])})
    return out


def active_alerts(alerts_db: Path) -> list[dict[str, Any]]:
    """Pending and firing alerts, firing first, then by severity and start time."""
    with _reader(alerts_db) as conn:
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT * FROM states WHERE state IN ('pending', 'firing') ORDER BY state = 'pending',"
            " CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, since"
        ).fetchall()
        acks = _acks(conn, [r["alert_id"] for r in rows])
    return [
        {
            "id": r["alert_id"], "rule_id": r["rule_id"], "device_id": r["device_id"], "metric": r["metric"],
            "state": r["state"], "severity": r["severity"], "value": r["value"], "threshold": r["threshold"],
            "started_at": iso(r["since"]), "series": r["series"] or None, "detail": r["detail"],
            "acknowledgements": acks.get(r["alert_id"], []),
        }
        for r in rows
    ]


def active_alert_counts(alerts_db: Path) -> dict[str, int]:
    """Firing alerts per device (pending ones are not alerts yet)."""
    with _reader(alerts_db) as conn:
        if conn is None:
            return {}
        rows = conn.execute("SELECT device_id, COUNT(*) FROM states WHERE state = 'firing' GROUP BY device_id")
        return {r[0]: r[1] for r in rows}


def history(
    alerts_db: Path,
    device_id: str | None = None,
    since: float | None = None,
    severity: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Incidents (one row each: start, end, peak, acknowledgements), newest first."""
    where: list[str] = ["1=1"]
    args: list[Any] = []
    if device_id:
        where.append("device_id = ?")
        args.append(device_id)
    if since is not None:
        where.append("(ended_at IS NULL OR ended_at >= ?)")
        args.append(since)
    if severity:
        where.append("severity = ?")
        args.append(severity)
    with _reader(alerts_db) as conn:
        if conn is None:
            return []
        rows = conn.execute(
            f"SELECT * FROM incidents WHERE {' AND '.join(where)} ORDER BY started_at DESC LIMIT ?",  # noqa: S608  # nosec B608
            (*args, limit),
        ).fetchall()
        acks = _acks(conn, [r["id"] for r in rows])
    return [
        {
            "id": r["id"], "rule_id": r["rule_id"], "rule_name": r["rule_name"], "device_id": r["device_id"],
            "series": r["series"] or None, "metric": r["metric"], "severity": r["severity"],
            "threshold": r["threshold"], "value": r["last_value"], "peak": r["peak"], "detail": r["detail"],
            "started_at": iso(r["started_at"]), "fired_at": iso(r["fired_at"]), "ended_at": iso(r["ended_at"]),
            "duration_s": None if r["ended_at"] is None else round(r["ended_at"] - r["started_at"]),
            "acknowledgements": acks.get(r["id"], []),
        }
        for r in rows
    ]


@dataclass(frozen=True)
class OutboxRow:
    """One notification waiting to be sent."""

    id: int
    channel_id: str
    payload: dict[str, Any]
    attempts: int


class Outbox:
    """The notification outbox of alerts.db, open for one sending round (see `outbox`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def due(self, now: float, limit: int) -> list[OutboxRow]:
        """Pending rows whose next attempt is due, oldest first."""
        rows = self._conn.execute(
            "SELECT id, channel_id, payload, attempts FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY id LIMIT ?",
            (now, limit),
        ).fetchall()
        return [OutboxRow(r["id"], r["channel_id"], json.loads(r["payload"]), r["attempts"]) for r in rows]

    def sent(self, row_id: int, now: float) -> None:
        """Mark one row delivered (its own commit: a crash after it never sends it twice)."""
        with sqlite_db.transaction(self._conn):
            self._conn.execute("UPDATE outbox SET status='sent', sent_at=?, attempts=attempts+1, last_error=NULL"
                               " WHERE id=?", (now, row_id))

    def failed(self, row_id: int, *, dead: bool, next_attempt_at: float, error: str) -> None:
        """Count a failed attempt: retry at `next_attempt_at`, or give up (`dead`)."""
        with sqlite_db.transaction(self._conn):
            self._conn.execute(
                "UPDATE outbox SET status=?, attempts=attempts+1, next_attempt_at=?, last_error=? WHERE id=?",
                ("dead" if dead else "pending", next_attempt_at, error, row_id),
            )


@contextmanager
def outbox(alerts_db: Path) -> Iterator[Outbox]:
    """The outbox for one sending round; each row's outcome commits on its own."""
    conn = connect(alerts_db)
    try:
        yield Outbox(conn)
    finally:
        conn.close()


def acknowledge(alerts_db: Path, alert_id: str, username: str, now: float) -> bool:
    """Record that `username` acknowledged an active or past alert; False when no such alert exists."""
    if not alerts_db.exists():
        return False
    conn = connect(alerts_db)
    try:
        with sqlite_db.transaction(conn):
            known = conn.execute(
                "SELECT 1 FROM states WHERE alert_id = ? UNION SELECT 1 FROM incidents WHERE id = ?",
                (alert_id, alert_id),
            ).fetchone()
            if known is None:
                return False
            conn.execute("INSERT OR IGNORE INTO acks (alert_id, username, at) VALUES (?, ?, ?)",
                         (alert_id, username, now))
    finally:
        conn.close()
    return True


def cleanup(alerts_db: Path, now: float, history_days: int, outbox_days: int = 30) -> dict[str, int]:
    """Drop resolved incidents (and their acks) older than `history_days`, finished outbox rows after `outbox_days`."""
    if not alerts_db.exists():
        return {"incidents": 0, "outbox": 0}
    conn = connect(alerts_db)
    try:
        with sqlite_db.transaction(conn):
            cutoff = now - history_days * 86400
            conn.execute("DELETE FROM acks WHERE alert_id IN (SELECT id FROM incidents WHERE ended_at < ?)",
                         (cutoff,))
            incidents = conn.execute("DELETE FROM incidents WHERE ended_at < ?", (cutoff,)).rowcount
            outbox = conn.execute("DELETE FROM outbox WHERE status != 'pending' AND created_at < ?",
                                  (now - outbox_days * 86400,)).rowcount
    finally:
        conn.close()
    return {"incidents": incidents, "outbox": outbox}
