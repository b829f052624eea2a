"""The sample database `throughput_history.db`: the clock writes it, the web reads it.

`SampleStore` is the only writer (clock process): one `BEGIN IMMEDIATE ... COMMIT` per
collection cycle for all devices. `SampleReader` is a read-only view; the web's sits on one
connection per worker thread, kept between requests (`kept_samples.KeptReaders`). The SQL lives in
`schema.py` (DDL), `rollups.py` (rollups, retention), `queries.py` (history reads) and
`latest.py` (newest rows, stored state).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import panfm.storage.compact as c
import panfm.storage.latest as latest_q
import panfm.storage.queries as q
import panfm.storage.sqlite as sqlite_db
from panfm.models import (
    CounterBaseline,
    CycleResult,
    DataplaneCpu,
    DeviceSample,
    DeviceStatus,
    History,
    InterfaceSample,
)
from panfm.storage import device_reads, jsontext
from panfm.storage.rollups import advance_rollups, apply_retention
from panfm.storage.schema import (
    BUSY_TIMEOUT_MS,
    DEVICE_METRICS,
    HISTORY_DB,
    IFACE_METRICS,
    WAL_LIMIT_BYTES,
    StorageUnavailable,
    connect_reader,
    connect_writer,
)

__all__ = ["HISTORY_DB", "SampleReader", "SampleStore", "StorageUnavailable"]

_DEVICE_INSERT = (
    f"INSERT OR REPLACE INTO dev_raw (dk, ts, {', '.join(c.DEV_STORED)}, rtt_us, approx) "  # noqa: S608  # nosec B608
    f"VALUES ({', '.join('?' * (len(c.DEV_STORED) + 4))})"
)
_IFACE_INSERT = (
    f"INSERT OR REPLACE INTO if_raw (ik, ts, {', '.join(IFACE_METRICS)}, counted, approx) "  # noqa: S608  # nosec B608
    f"VALUES ({', '.join('?' * (len(IFACE_METRICS) + 4))})"
)


def _ms(ts: float) -> int:
    """A device row's time: epoch milliseconds, the poll's exact time."""
    return round(ts * 1000)


def _sec(ts: float) -> int:
    """An interface row's time: its poll's whole epoch second, floored (the bucket its exact time is in)."""
    return math.floor(ts)


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


class SampleStore:
    """The writer of the sample database (clock process only; thread-safe)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, wal_limit_bytes: int = WAL_LIMIT_BYTES) -> None:
        self._conn = conn
        self.path = path
        self.wal_limit_bytes = wal_limit_bytes
        self._lock = threading.Lock()
        # Integer keys of the series already known (ts_device, ts_iface): spares a lookup per row.
        self._dks: dict[str, int] = {}
        self._iks: dict[tuple[str, str], int] = {}
        self._load_known()

    @classmethod
    def open(cls, path: Path, wal_limit_bytes: int = WAL_LIMIT_BYTES) -> SampleStore:
        """Open the database for writing, creating and migrating it (WAL mode)."""
        return cls(connect_writer(path, wal_limit_bytes), path, wal_limit_bytes)

    def _load_known(self) -> None:
        self._dks = dict(self._conn.execute("SELECT device_id, dk FROM ts_device").fetchall())
        rows = self._conn.execute(
            "SELECT k.device_id, i.interface, i.ik FROM ts_iface i JOIN ts_device k ON k.dk = i.dk")
        self._iks = {(r[0], r[1]): r[2] for r in rows}

    @staticmethod
    def _new_keys(
        conn: sqlite3.Connection, devices: set[str], ifaces: set[tuple[str, str]], dks: dict[str, int]
    ) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Give new devices and interfaces their integer keys (inside the cycle's transaction)."""
        new_dks: dict[str, int] = {}
        for d in sorted((devices | {i[0] for i in ifaces}) - dks.keys()):
            conn.execute("INSERT OR IGNORE INTO ts_device (device_id) VALUES (?)", (d,))
            new_dks[d] = conn.execute("SELECT dk FROM ts_device WHERE device_id = ?", (d,)).fetchone()[0]
        new_iks: dict[tuple[str, str], int] = {}
        for d, name in sorted(ifaces):
            dk = dks.get(d, new_dks.get(d))
            conn.execute("INSERT OR IGNORE INTO ts_iface (dk, interface) VALUES (?, ?)", (dk, name))
            new_iks[(d, name)] = conn.execute(
                "SELECT ik FROM ts_iface WHERE dk = ? AND interface = ?", (dk, name)).fetchone()[0]
        return new_dks, new_iks

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the store's lock, rolled back on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ---- writes ---------------------------------------------------------------------

    def write_cycle(
        self,
        cycle: CycleResult,
        clock_stats: dict[str, Any] | None = None,
        fence: tuple[str, Mapping[str, int]] | None = None,
    ) -> int:
        """Write one whole collection cycle in one transaction: all of it or nothing; return rows rejected.

        Device and interface samples, counter baselines, device states, the rollups of the
        buckets that closed, and the clock stats with the heartbeat (= cycle.finished).
        `fence` (owner, device -> fence) is the multi-clock writer's guard on PostgreSQL; the
        one clock of a SQLite data folder has none to check, so nothing is rejected here.
        """
        new_devices = {s.device_id for s in cycle.samples} - self._dks.keys()
        new_ifaces = {(i.device_id, i.name) for i in cycle.interfaces} - self._iks.keys()
        times = [_ms(s.ts) // 1000 for s in cycle.samples] + [_sec(i.ts) for i in cycle.interfaces]
        earliest = min(times) if times else None
        with self._write() as conn:
            new_dks, new_iks = self._new_keys(conn, new_devices, new_ifaces, self._dks)
            dks, iks = self._dks | new_dks, self._iks | new_iks
            conn.executemany(_DEVICE_INSERT, [
                (dks[s.device_id], _ms(s.ts), *(c.encode(m, getattr(s, m)) for m in c.DEV_STORED),
                 None if s.rtt_ms is None else c.round_half_away(s.rtt_ms * c.RTT_SCALE), _flag(s.approx))
                for s in cycle.samples])
            conn.executemany(_IFACE_INSERT, [
                (iks[(i.device_id, i.name)], _sec(i.ts), *(c.encode(m, getattr(i, m)) for m in IFACE_METRICS),
                 int(i.counted), _flag(i.approx))
                for i in cycle.interfaces])
            self._put_baselines(conn, cycle.baselines)
            self._put_statuses(conn, cycle.statuses)
            self._put_dataplanes(conn, cycle.dataplanes)
            advance_rollups(conn, cycle.started, earliest)
            if clock_stats is not None:
                self._put_clock_stats(conn, clock_stats, cycle.finished)
            else:
                conn.execute(
                    "INSERT INTO clock_stats (id, doc, heartbeat) VALUES (1, '{}', ?) "
                    "ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat",
                    (cycle.finished,),
                )
        # Only after the commit: a rolled-back cycle must not mark its series as known.
        self._dks.update(new_dks)
        self._iks.update(new_iks)
        self._bound_wal()
        return 0

    @staticmethod
    def _put_baselines(conn: sqlite3.Connection, baselines: Sequence[CounterBaseline]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO baselines (device_id, ts, serial, uptime_seconds, counters, rtt_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(b.device_id, b.ts, b.serial, b.uptime_seconds, latest_q.encode_counters(b.counters), b.rtt_ms)
             for b in baselines],
        )

    @staticmethod
    def _put_statuses(conn: sqlite3.Connection, statuses: Sequence[DeviceStatus]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO device_status (device_id, state, last_poll, last_success, last_error, "
            "consecutive_failures) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (s.device_id, s.state, s.last_poll, s.last_success, s.last_error, s.consecutive_failures)
                for s in statuses
            ],
        )

    @staticmethod
    def _put_dataplanes(conn: sqlite3.Connection, dataplanes: Sequence[DataplaneCpu]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO dataplane_latest (device_id, ts, doc) VALUES (?, ?, ?)",
            [(d.device_id, _ms(d.ts), jsontext.dumps(dataplane_doc(d))) for d in dataplanes],
        )

    @staticmethod
    def _put_clock_stats(conn: sqlite3.Connection, stats: dict[str, Any], heartbeat: float) -> None:
        doc = json.dumps({k: v for k, v in stats.items() if k != "heartbeat"}, default=str)
        conn.execute("INSERT OR REPLACE INTO clock_stats (id, doc, heartbeat) VALUES (1, ?, ?)", (doc, heartbeat))

    def write_clock_stats(self, stats: dict[str, Any], heartbeat: float) -> None:
        """Store the clock's execution stats and heartbeat outside a cycle."""
        with self._write() as conn:
            self._put_clock_stats(conn, stats, heartbeat)

    def write_inventory(self, device_id: str, ts: float, info: dict[str, Any]) -> None:
        """Store a device's slow-changing inventory and context (a JSON document)."""
        doc = jsontext.dumps(info)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO inventory (device_id, ts, doc) VALUES (?, ?, ?)", (device_id, ts, doc))

    # ---- reads the clock needs ------------------------------------------------------

    def load_baselines(self) -> dict[str, CounterBaseline]:
        """Return the persisted raw counters of every device."""
        with self._lock:
            return latest_q.load_baselines(self._conn)

    def load_statuses(self) -> dict[str, DeviceStatus]:
        """Return the stored state of every device."""
        with self._lock:
            return latest_q.load_statuses(self._conn)

    # ---- maintenance ----------------------------------------------------------------

    def cleanup(
        self, now: float, raw_days: int, fivemin_days: int, hourly_days: int, chunk: int = 5000
    ) -> dict[str, int]:
        """Apply retention per tier in chunks, then checkpoint; return rows deleted per table."""
        deleted = apply_retention(self._write, self._conn, now, raw_days, fivemin_days, hourly_days, chunk)
        with self._lock:
            self._load_known()
        self.checkpoint()
        return deleted

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (waits briefly for readers)."""
        with self._lock:
            # A short busy wait: a reader that holds an old snapshot must not stall the clock.
            self._conn.execute("PRAGMA busy_timeout=2000")
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _bound_wal(self) -> None:
        # Autocheckpoints are PASSIVE and can be starved by readers; past the limit, force one.
        wal = Path(f"{self.path}-wal")
        try:
            size = wal.stat().st_size
        except FileNotFoundError:
            return
        if size > self.wal_limit_bytes:
            self.checkpoint()

    def backup(self, dest: Path) -> None:
        """Write a consistent copy of the database to `dest` while writes go on."""
        sqlite_db.online_backup(self.path, dest)

    def close(self) -> None:
        """Close the connection (the last one out also checkpoints and removes the WAL)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SampleReader:
    """A read-only view of the sample database (the web's: on a kept connection, `KeptReaders`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, path: Path) -> SampleReader:
        """Open read-only; raise StorageUnavailable when the file is missing or unreadable."""
        return cls(connect_reader(path))

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> SampleReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def latest(self, device_id: str) -> DeviceSample | None:
        """Return the newest sample of one device."""
        return latest_q.latest(self._conn, device_id)

    def latest_all(self) -> dict[str, DeviceSample]:
        """Return the newest sample of every device (one query for the fleet)."""
        return latest_q.latest_all(self._conn)

    def history(
        self, device_id: str, start: float, end: float, max_points: int = 2000, metrics: Sequence[str] | None = None
    ) -> History:
        """Return chart points of a device for [start, end): at most max_points, peaks kept.

        `metrics` defaults to storage_queries.CHART_METRICS; any DEVICE_METRICS name may be asked for.
        """
        return q.history(self._conn, q.device_series(device_id, metrics), start, end, max_points)

    def interfaces_latest(self, device_id: str) -> list[InterfaceSample]:
        """Return the newest sample of each interface of a device."""
        return latest_q.interfaces_latest(self._conn, device_id)

    def interface_history(
        self,
        device_id: str,
        name: str,
        start: float,
        end: float,
        max_points: int = 2000,
        metrics: Sequence[str] | None = None,
    ) -> History:
        """Return chart points of one interface for [start, end)."""
        return q.history(self._conn, q.iface_series(device_id, name, metrics), start, end, max_points)

    def summary(self, device_id: str, start: float, end: float) -> dict[str, dict[str, float | None]]:
        """Return min/avg/max of every device metric over [start, end)."""
        return q.summary(self._conn, q.device_series(device_id, default=DEVICE_METRICS), start, end)

    def clock_stats(self) -> dict[str, Any] | None:
        """Return the clock's stats including "heartbeat", or None before its first write."""
        return latest_q.clock_stats(self._conn)

    def clock_stats_by_node(self) -> dict[str, dict[str, Any]]:
        """node id -> the clock's own stats: the one clock of a data folder (keyed by the node id it wrote)."""
        stats = self.clock_stats()
        if stats is None:
            return {}
        coordination = stats.get("coordination")
        node = coordination.get("node_id") if isinstance(coordination, dict) else None
        return {str(node or ""): stats}

    def device_statuses(self) -> dict[str, DeviceStatus]:
        """Return the stored state of every device."""
        return latest_q.load_statuses(self._conn)

    def change_marker(self) -> tuple[Any, ...]:
        """A cheap value that changes with every committed cycle or inventory write (the web's cache key).

        Newest poll, baseline, inventory and dataplane times with the row counts (a device's rows
        removed change a count); a clock cycle updates every device's status in the same
        transaction as its samples, counters and dataplane CPU.
        """
        row = self._conn.execute(
            "SELECT (SELECT max(last_poll) FROM device_status), (SELECT max(last_success) FROM device_status),"
            " (SELECT count(*) FROM device_status), (SELECT max(ts) FROM baselines), (SELECT count(*) FROM baselines),"
            " (SELECT max(ts) FROM inventory), (SELECT count(*) FROM inventory),"
            " (SELECT max(ts) FROM dataplane_latest), (SELECT count(*) FROM dataplane_latest)"
        ).fetchone()
        return tuple(row)

    def dataplane_cpu(self, device_id: str) -> dict[str, Any] | None:
        """Return the latest per-dataplane CPU of a device: {"ts", "dataplanes", "busiest_core"}, or None."""
        row = self._conn.execute("SELECT ts, doc FROM dataplane_latest WHERE device_id = ?", (device_id,)).fetchone()
        return None if row is None else {**json.loads(row[1]), "ts": row[0] / 1000}

    def dataplane_cpu_all(self) -> dict[str, dict[str, Any]]:
        """Return every device's latest per-dataplane CPU by device id (one read-only query)."""
        rows = self._conn.execute("SELECT device_id, ts, doc FROM dataplane_latest")
        return {r[0]: {**json.loads(r[2]), "ts": r[1] / 1000} for r in rows}

    def baselines(
        self, keep: Callable[[str, Collection[str]], Iterable[str]] | None = None
    ) -> dict[str, CounterBaseline]:
        """Return every device's last committed raw counters (the clock's `baselines`; read-only).

        `keep(device_id, names)` picks the interfaces to decode (all when None).
        """
        return latest_q.load_baselines(self._conn, keep)

    def inventory(self, device_id: str) -> dict[str, Any] | None:
        """Return a device's inventory document (plus `collected_at`), or None."""
        return latest_q.inventory(self._conn, device_id).get(device_id)

    def inventory_all(self) -> dict[str, dict[str, Any]]:
        """Return every device's inventory document by device id."""
        return latest_q.inventory(self._conn, None)

    def device_parts(self, device_id: str, keep: device_reads.Keep | None = None) -> dict[str, dict[str, Any]]:
        """Return one device's newest rows in the whole-fleet reads' shapes (`/metrics?device=`; read-only)."""
        def fetch_one(sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
            cur = self._conn.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else dict(zip([c[0] for c in cur.description], row, strict=True))

        return device_reads.device_parts(device_id, keep, fetch_one=fetch_one, latest=self.latest,
                                         dataplane=self.dataplane_cpu, inventory=self.inventory)


def dataplane_doc(d: DataplaneCpu) -> dict[str, Any]:
    """The stored (and API) shape of one device's per-dataplane CPU."""
    core = d.busiest_core
    return {
        "dataplanes": [{"name": name, "pct": pct} for name, pct in d.dataplanes],
        "busiest_core": None if core is None else {"dataplane": core[0], "core": core[1], "pct": core[2]},
    }
