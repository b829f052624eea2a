"""`network.db`: the connected devices behind each firewall (ARP, DHCP, User-ID, names).

The clock is the only writer (`NetworkStore.record`, one transaction per firewall and slow
cycle; `cleanup` at night); the web reads with `NetworkReader` (`network_reader.py`, a
read-only connection per request). A device is *current* when its row was written by its firewall's newest snapshot
and its lease, if any, has not run out since. SQL is portable (SQLite file, or the same tables
in PostgreSQL when `database_url` is set: `PG_MIGRATIONS`, component "network"): `?`
placeholders, `ON CONFLICT ... DO UPDATE`, times as epoch seconds computed in Python, rows
read by column name, no SQLite-only functions.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import panfm.storage.sqlite as sqlite_db
from panfm.storage import jsontext
from panfm.storage.backend import Backend, Conn, PgHandle

NETWORK_DB = "network.db"
CHUNK = 5000

# Forward-only migrations; index i brings the schema from user_version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE connected_devices (
        device_id TEXT NOT NULL,
        mac TEXT NOT NULL,
        ip TEXT NOT NULL,
        interface TEXT,
        vlan INTEGER,
        zone TEXT,
        user_name TEXT,
        vendor TEXT,
        dhcp_hostname TEXT,
        dns_name TEXT,
        static INTEGER NOT NULL DEFAULT 0,
        randomized INTEGER NOT NULL DEFAULT 0,
        lease_expires REAL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (device_id, mac, ip)
    );
    CREATE INDEX connected_devices_last_seen ON connected_devices (last_seen);
    CREATE INDEX connected_devices_mac ON connected_devices (mac);
    CREATE TABLE network_snapshots (
        device_id TEXT PRIMARY KEY,
        ts REAL NOT NULL,
        hosts INTEGER NOT NULL
    );
    """,
    # ACC top applications and categories per firewall and inventory run (kind 'app' or 'category').
    """
    CREATE TABLE app_stats (
        device_id TEXT NOT NULL,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        category TEXT,
        risk INTEGER,
        bytes INTEGER NOT NULL,
        sessions INTEGER NOT NULL,
        sources INTEGER,
        PRIMARY KEY (device_id, ts, kind, name)
    );
    CREATE INDEX app_stats_ts ON app_stats (ts);
    """,
    # Threats and blocked URLs per firewall and inventory run: counts, latest events, top names.
    """
    CREATE TABLE security_counts (
        device_id TEXT NOT NULL,
        ts REAL NOT NULL,
        critical INTEGER,
        high INTEGER,
        medium INTEGER,
        low INTEGER,
        blocked_urls INTEGER,
        PRIMARY KEY (device_id, ts)
    );
    CREATE TABLE security_events (
        device_id TEXT NOT NULL,
        ts REAL NOT NULL,
        seq INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (device_id, ts, seq)
    );
    CREATE TABLE security_top (
        device_id TEXT NOT NULL,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (device_id, ts, kind, name)
    );
    CREATE INDEX security_counts_ts ON security_counts (ts);
    CREATE INDEX security_events_ts ON security_events (ts);
    CREATE INDEX security_top_ts ON security_top (ts);
    """,
    # System and traffic log entries fetched per inventory run (short retention: log_retention_hours).
    """
    CREATE TABLE log_entries (
        device_id TEXT NOT NULL,
        log_type TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        ts REAL NOT NULL,
        epoch REAL,
        doc TEXT NOT NULL,
        PRIMARY KEY (device_id, log_type, entry_id)
    );
    CREATE INDEX log_entries_ts ON log_entries (ts);
    CREATE INDEX log_entries_device_type_epoch ON log_entries (device_id, log_type, epoch);
    """,
    # The ACC's tops (kinds 'acc_threat', 'acc_url_category'): `detail` holds a threat's severity.
    # app_stats kind 'source' holds the ACC's top sources (their User-ID user in `category`).
    "ALTER TABLE security_top ADD COLUMN detail TEXT;",
]

# The same tables on PostgreSQL (component "network"): epoch seconds in DOUBLE PRECISION, byte
# counts in BIGINT (a busy application passes 2**31 bytes in five minutes).
PG_MIGRATIONS: list[str] = [
    """
    CREATE TABLE connected_devices (
        device_id TEXT NOT NULL,
        mac TEXT NOT NULL,
        ip TEXT NOT NULL,
        interface TEXT,
        vlan INTEGER,
        zone TEXT,
        user_name TEXT,
        vendor TEXT,
        dhcp_hostname TEXT,
        dns_name TEXT,
        static INTEGER NOT NULL DEFAULT 0,
        randomized INTEGER NOT NULL DEFAULT 0,
        lease_expires DOUBLE PRECISION,
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (device_id, mac, ip)
    );
    CREATE INDEX connected_devices_last_seen ON connected_devices (last_seen);
    CREATE INDEX connected_devices_mac ON connected_devices (mac);
    CREATE TABLE network_snapshots (
        device_id TEXT PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        hosts INTEGER NOT NULL
    );
    CREATE TABLE app_stats (
        device_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        category TEXT,
        risk INTEGER,
        bytes BIGINT NOT NULL,
        sessions BIGINT NOT NULL,
        sources INTEGER,
        PRIMARY KEY (device_id, ts, kind, name)
    );
    CREATE INDEX app_stats_ts ON app_stats (ts);
    CREATE TABLE security_counts (
        device_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        critical INTEGER,
        high INTEGER,
        medium INTEGER,
        low INTEGER,
        blocked_urls INTEGER,
        PRIMARY KEY (device_id, ts)
    );
    CREATE TABLE security_events (
        device_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        seq INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (device_id, ts, seq)
    );
    CREATE TABLE security_top (
        device_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (device_id, ts, kind, name)
    );
    CREATE INDEX security_counts_ts ON security_counts (ts);
    CREATE INDEX security_events_ts ON security_events (ts);
    CREATE INDEX security_top_ts ON security_top (ts);
    CREATE TABLE log_entries (
        device_id TEXT NOT NULL,
        log_type TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        epoch DOUBLE PRECISION,
        doc TEXT NOT NULL,
        PRIMARY KEY (device_id, log_type, entry_id)
    );
    CREATE INDEX log_entries_ts ON log_entries (ts);
    CREATE INDEX log_entries_device_type_epoch ON log_entries (device_id, log_type, epoch);
    """,
    "ALTER TABLE security_top ADD COLUMN detail TEXT;",
]
APP_RETENTION_S = 2 * 86400  # ranges go up to 24 h; a day more for late readers

COLUMNS = ("device_id", "mac", "ip", "interface", "vlan", "zone", "user_name", "vendor", "dhcp_hostname", "dns_name",
           "static", "randomized", "lease_expires", "first_seen", "last_seen")
_UPSERT = (
    f"INSERT INTO connected_devices ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "  # noqa: S608  # nosec B608 (constant columns)
    "ON CONFLICT (device_id, mac, ip) DO UPDATE SET interface = excluded.interface, vlan = excluded.vlan, "
    "zone = excluded.zone, user_name = excluded.user_name, vendor = excluded.vendor, "
    "dhcp_hostname = COALESCE(excluded.dhcp_hostname, connected_devices.dhcp_hostname), "
    "dns_name = COALESCE(excluded.dns_name, connected_devices.dns_name), static = excluded.static, "
    "randomized = excluded.randomized, lease_expires = excluded.lease_expires, last_seen = excluded.last_seen"
)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open network.db (migrated when opened for writing)."""
    return sqlite_db.connect(path, MIGRATIONS, readonly=readonly, check_same_thread=False)


def _row(device_id: str, ts: float, r: Mapping[str, Any], first_seen: float) -> tuple[Any, ...]:
    return (device_id, r["mac"], r["ip"], r.get("interface"), r.get("vlan"), r.get("zone"), r.get("user"),
            r.get("vendor"), r.get("dhcp_hostname"), r.get("dns_name"), int(bool(r.get("static"))),
            int(bool(r.get("randomized_mac"))), r.get("lease_expires"), first_seen, ts)


class NetworkStore:
    """The clock's writer of network.db (one connection, serialised by a lock), or of its tables in PostgreSQL."""

    def __init__(self, conn: sqlite3.Connection | None, path: Path | None, pg: PgHandle | None = None) -> None:
        self._conn = conn
        self.path = path
        self._pg = pg  # PostgreSQL: a pooled connection per transaction instead of the one file connection
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> NetworkStore:
        return cls(connect(path), path)

    @classmethod
    def open_backend(cls, backend: Backend) -> NetworkStore:
        """network.db of the backend's data folder, or the network tables of its PostgreSQL database."""
        handle = backend.handle(NETWORK_DB, MIGRATIONS)
        if isinstance(handle, PgHandle):
            return cls(None, None, handle)
        return cls.open(handle.path)

    @property
    def on_postgres(self) -> bool:
        return self._pg is not None

    @contextmanager
    def _write(self) -> Iterator[Conn]:
        """One write transaction: the lock and BEGIN IMMEDIATE on the file, a PostgreSQL transaction else."""
        if self._pg is not None:
            with self._pg.write() as conn:
                yield conn
            return
        assert self._conn is not None  # nosec B101 (one of the two is always set)
        with self._lock, sqlite_db.transaction(self._conn):
            yield self._conn

    def record(self, device_id: str, ts: float, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Store one firewall's snapshot in one write transaction; return the rows whose MAC is new to it.

        A firewall's first snapshot learns its MACs silently (no "new" rows): otherwise adding a
        firewall would announce every host behind it.
        """
        rows = list(rows)
        new: list[dict[str, Any]] = []
        with self._write() as conn:
            had_snapshot = conn.execute(
                "SELECT 1 FROM network_snapshots WHERE device_id = ?", (device_id,)).fetchone() is not None
            known = {r["mac"] for r in conn.execute(
                "SELECT DISTINCT mac FROM connected_devices WHERE device_id = ?", (device_id,))}
            seen_new: set[str] = set()
            for r in rows:
                if r["mac"] not in known and r["mac"] not in seen_new:
                    seen_new.add(r["mac"])
                    if had_snapshot:
                        new.append(dict(r))
            for i in range(0, len(rows), CHUNK):
                conn.executemany(_UPSERT, [_row(device_id, ts, r, ts) for r in rows[i:i + CHUNK]])
            conn.execute(
                "INSERT INTO network_snapshots (device_id, ts, hosts) VALUES (?, ?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, hosts = excluded.hosts",
                (device_id, ts, len(rows)),
            )
        return new

    def record_apps(self, device_id: str, ts: float, apps: Iterable[Mapping[str, Any]],
                    categories: Iterable[Mapping[str, Any]]) -> None:
        """Store one inventory run's ACC rows of one firewall (one write transaction)."""
        rows = [(device_id, ts, "app", a["name"], a.get("category"), a.get("risk"), a["bytes"], a["sessions"],
                 a.get("sources")) for a in apps]
        rows += [(device_id, ts, "category", c["name"], None, None, c["bytes"], c["sessions"], None)
                 for c in categories]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO app_stats (device_id, ts, kind, name, category, risk, bytes, sessions, sources) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, ts, kind, name) DO UPDATE SET "
                "bytes = excluded.bytes, sessions = excluded.sessions", rows)

    def record_security(self, device_id: str, ts: float, summary: Mapping[str, Any]) -> None:
        """Store one inventory run's threat and URL summary of one firewall (one write transaction)."""
        counts = summary.get("counts") or {}
        with self._write() as conn:
            conn.execute(
                "INSERT INTO security_counts (device_id, ts, critical, high, medium, low, blocked_urls) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, ts) DO NOTHING",
                (device_id, ts, counts.get("critical"), counts.get("high"), counts.get("medium"), counts.get("low"),
                 summary.get("blocked_urls")))
            conn.executemany(
                "INSERT INTO security_events (device_id, ts, seq, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (device_id, ts, seq) DO NOTHING",
                [(device_id, ts, i, jsontext.dumps(e)) for i, e in enumerate(summary.get("latest") or [])])
            tops = [(device_id, ts, "threat", t["name"], t["count"]) for t in summary.get("top_threats") or []]
            tops += [(device_id, ts, "url_category", t["name"], t["count"])
                     for t in summary.get("top_url_categories") or []]
            conn.executemany(
                "INSERT INTO security_top (device_id, ts, kind, name, count) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id, ts, kind, name) DO NOTHING", tops)

    def record_acc(self, device_id: str, ts: float, threats: Iterable[Mapping[str, Any]] | None,
                   url_categories: Iterable[Mapping[str, Any]] | None, sources: Iterable[Mapping[str, Any]] | None
                   ) -> None:
        """Store one run's ACC tops of one firewall (threats, blocked URL categories, sources; one transaction).

        None for a part: its report did not answer this run (nothing stored, so readers fall back).
        """
        tops = [(device_id, ts, "acc_threat", t["name"], t["count"], t.get("severity")) for t in threats or ()]
        tops += [(device_id, ts, "acc_url_category", u["name"], u["count"], None) for u in url_categories or ()]
        rows = [(device_id, ts, "source", s["name"], s.get("user"), None, s["bytes"], s["sessions"], None)
                for s in sources or ()]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO security_top (device_id, ts, kind, name, count, detail) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id, ts, kind, name) DO NOTHING", tops)
            conn.executemany(
                "INSERT INTO app_stats (device_id, ts, kind, name, category, risk, bytes, sessions, sources) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, ts, kind, name) DO NOTHING", rows)

    def record_logs(self, device_id: str, ts: float, logs: Mapping[str, Iterable[Mapping[str, Any]]]) -> int:
        """Store one run's system and traffic entries of one firewall (one write transaction); return rows added."""
        rows = [(device_id, log_type, str(e["id"]), ts, e.get("epoch"),
                 jsontext.dumps({k: v for k, v in e.items() if k not in ("id", "epoch")}))
                for log_type, entries in logs.items() for e in entries]
        count = "SELECT count(*) AS n FROM log_entries WHERE device_id = ? AND ts = ?"
        with self._write() as conn:
            # Rows added carry this run's `ts` (a conflict keeps the older row): counted before and after
            # (sqlite3's total_changes has no PostgreSQL twin).
            before = int(conn.execute(count, (device_id, ts)).fetchone()["n"])
            conn.executemany(
                "INSERT INTO log_entries (device_id, log_type, entry_id, ts, epoch, doc) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id, log_type, entry_id) DO NOTHING", rows)
            return int(conn.execute(count, (device_id, ts)).fetchone()["n"]) - before

    def cleanup_logs(self, now: float, retention_hours: int) -> int:
        """Forget log entries fetched more than `retention_hours` ago (one write transaction)."""
        with self._write() as conn:
            cur = conn.execute("DELETE FROM log_entries WHERE ts < ?", (now - retention_hours * 3600.0,))
        return max(int(cur.rowcount), 0)

    def cleanup(self, now: float, retention_days: int) -> dict[str, int]:
        """Forget devices (and firewalls' snapshots) not seen for `retention_days`, in one write transaction."""
        cutoff = now - retention_days * 86400.0
        with self._write() as conn:
            # One statement (no rowid chunks: the PostgreSQL twin has none); indexed on last_seen.
            devices = conn.execute("DELETE FROM connected_devices WHERE last_seen < ?", (cutoff,)).rowcount
            snapshots = conn.execute("DELETE FROM network_snapshots WHERE ts < ?", (cutoff,)).rowcount
            apps = conn.execute("DELETE FROM app_stats WHERE ts < ?", (now - APP_RETENTION_S,)).rowcount
            security = 0
            for table in ("security_counts", "security_events", "security_top"):
                sql = f"DELETE FROM {table} WHERE ts < ?"  # noqa: S608  # nosec B608 (constant table names)
                security += max(conn.execute(sql, (now - APP_RETENTION_S,)).rowcount, 0)
        return {"connected_devices": max(devices, 0), "network_snapshots": max(snapshots, 0),
                "app_stats": max(apps, 0), "security": security}

    def close(self) -> None:
        """Close the file's connection (PostgreSQL: nothing, the pool belongs to the backend)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
