"""The coordination store on SQLite (`coordination.db`): one clock, which holds every device and leads.

The same tables as on PostgreSQL, so `/api/clock` and `polled_by` read the same way; times are
SQLite's own clock (`julianday('now')`, the database's), stored as epoch seconds. No fences: a
single clock needs none (`LeaseRound.held` maps to None). `job_run` still records every
singleton run, so a 02:00 cleanup missed while the clock was down runs at its next start.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import panfm.storage.sqlite as sqlite_db
from panfm.models import ClockNode, LeaseRound
from panfm.storage.coordination import CoordinationUnavailable, lease_seconds

NOW = "((julianday('now') - 2440587.5) * 86400.0)"

MIGRATIONS = [
    """
CREATE TABLE clock_node (
    node_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
CREATE TABLE device_lease (
    device_id TEXT PRIMARY KEY,
    owner TEXT,
    lease_until REAL,
    fence INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE job_lease (
    name TEXT PRIMARY KEY,
    owner TEXT,
    lease_until REAL,
    fence INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE job_run (
    name TEXT NOT NULL,
    slot INTEGER NOT NULL,
    owner TEXT,
    ran_at REAL NOT NULL,
    PRIMARY KEY (name, slot)
)
""",
]


class SqliteCoordinator:
    """Coordination for the one clock of a data folder (its writer), read-only for the web."""

    backend = "sqlite"

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @contextmanager
    def _db(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                if self._conn is None:
                    if self._readonly and not self.path.exists():
                        raise CoordinationUnavailable("no coordination database yet")
                    self._conn = sqlite_db.connect(self.path, MIGRATIONS, readonly=self._readonly, rows=False,
                                                   check_same_thread=False)
                if write:
                    with sqlite_db.transaction(self._conn) as conn:
                        yield conn
                else:
                    yield self._conn
            except sqlite3.Error as exc:
                raise CoordinationUnavailable(f"{self.path.name}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def register(self, node_id: str, host: str, pid: int) -> None:
        with self._db(write=True) as conn:
            conn.execute(
                f"INSERT INTO clock_node (node_id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, {NOW}, {NOW}) "  # noqa: S608  # nosec B608
                f"ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = {NOW}",
                (node_id, host, pid),
            )

    def lease_round(self, node_id: str, device_ids: Sequence[str], interval_s: float) -> LeaseRound:
        """Heartbeat and hold every enabled device, in one transaction (the one clock is the leader)."""
        ids = sorted(set(device_ids))
        lease = lease_seconds(interval_s)
        with self._db(write=True) as conn:
            cur = conn.execute(f"UPDATE clock_node SET heartbeat_at = {NOW} WHERE node_id = ?", (node_id,))  # noqa: S608  # nosec B608
            if cur.rowcount == 0:
                raise CoordinationUnavailable(f"clock {node_id} is not registered")
            now = float(conn.execute(f"SELECT {NOW}").fetchone()[0])  # nosec B608
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (device_id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM wanted")
            conn.executemany("INSERT INTO wanted VALUES (?)", [(d,) for d in ids])
            released = conn.execute("DELETE FROM device_lease WHERE device_id NOT IN (SELECT device_id FROM wanted)"
                                    ).rowcount
            valid = "SELECT device_id FROM device_lease WHERE owner = ? AND lease_until > ?"
            before = {r[0] for r in conn.execute(valid, (node_id, now))}
            conn.executemany(
                "INSERT INTO device_lease (device_id, owner, lease_until, fence) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (device_id) DO UPDATE SET fence = CASE WHEN device_lease.owner = excluded.owner "
                "AND device_lease.lease_until > ? THEN device_lease.fence ELSE device_lease.fence + 1 END, "
                "owner = excluded.owner, lease_until = excluded.lease_until",
                [(d, node_id, now + lease, now) for d in ids],
            )
            conn.execute(
                "INSERT INTO job_lease (name, owner, lease_until, fence) VALUES ('leader', ?, ?, 1) "
                "ON CONFLICT (name) DO UPDATE SET fence = CASE WHEN job_lease.owner = excluded.owner "
                "AND job_lease.lease_until > ? THEN job_lease.fence ELSE job_lease.fence + 1 END, "
                "owner = excluded.owner, lease_until = excluded.lease_until",
                (node_id, now + lease, now),
            )
        return LeaseRound(node_id=node_id, db_now=now, lease_s=lease, held=dict.fromkeys(ids),
                          granted=frozenset(set(ids) - before), released=released, leader=True, live_clocks=1,
                          fair_share=len(ids))

    def release_all(self, node_id: str) -> int:
        with self._db(write=True) as conn:
            released = conn.execute("UPDATE device_lease SET owner = NULL, lease_until = NULL WHERE owner = ?",
                                    (node_id,)).rowcount
            conn.execute("UPDATE job_lease SET owner = NULL, lease_until = NULL WHERE owner = ?", (node_id,))
            conn.execute("DELETE FROM clock_node WHERE node_id = ?", (node_id,))
        return released

    def claim_run(self, name: str, slot: int, node_id: str) -> bool:
        with self._db(write=True) as conn:
            cur = conn.execute(
                f"INSERT INTO job_run (name, slot, owner, ran_at) VALUES (?, ?, ?, {NOW}) "  # noqa: S608  # nosec B608
                "ON CONFLICT (name, slot) DO NOTHING",
                (name, slot, node_id),
            )
            return cur.rowcount == 1

    def last_run(self, name: str) -> int | None:
        with self._db(write=False) as conn:
            row = conn.execute("SELECT max(slot) FROM job_run WHERE name = ?", (name,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def db_now(self) -> float:
        with self._db(write=False) as conn:
            return float(conn.execute(f"SELECT {NOW}").fetchone()[0])  # nosec B608

    def clocks(self, interval_s: float) -> list[ClockNode]:
        with self._db(write=False) as conn:
            rows = conn.execute(
                f"SELECT n.node_id, n.host, n.pid, n.started_at, n.heartbeat_at, "  # noqa: S608  # nosec B608
                f" (SELECT count(*) FROM device_lease d WHERE d.owner = n.node_id AND d.lease_until > {NOW}), "
                f" EXISTS (SELECT 1 FROM job_lease j WHERE j.name = 'leader' AND j.owner = n.node_id "
                f"         AND j.lease_until > {NOW}) "
                f"FROM clock_node n WHERE n.heartbeat_at > {NOW} - ? ORDER BY n.started_at",
                (float(interval_s),),
            ).fetchall()
        return [ClockNode(node_id=r[0], host=r[1], pid=int(r[2]), started_at=float(r[3]), heartbeat_at=float(r[4]),
                          devices=int(r[5]), leader=bool(r[6])) for r in rows]

    def owners(self) -> dict[str, str]:
        with self._db(write=False) as conn:
            rows = conn.execute(f"SELECT device_id, owner FROM device_lease WHERE owner IS NOT NULL "  # noqa: S608  # nosec B608
                                f"AND lease_until > {NOW}").fetchall()
        return {str(r[0]): str(r[1]) for r in rows}
