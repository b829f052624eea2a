"""Migration 6 of the sample database: convert the rows into the compact layout, in place.

Runs when the clock opens the database (as every migration does), but not as one transaction:

1. Create the compact tables (`compact.ddl`) and a progress table, and give every known device
   and interface its integer key.
2. Copy each old table in primary-key order, `chunk` rows per write transaction (keyset
   pagination), recording the last key copied in the same transaction; a progress line is
   logged every few chunks. The clock's write lock is never held for long, and a kill at any
   point loses at most the chunk in flight: the next start resumes after the last recorded key.
   Rows are written with INSERT OR REPLACE, so a chunk copied twice is harmless.
3. Drop each old table once copied; at the end create the views that keep the old names
   readable, drop the progress table and set `user_version` to 6 (all in one transaction).
   Until then the web refuses the database (StorageUnavailable), as for any pending migration.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import panfm.storage.compact as c
from panfm.storage.series_def import GROUPINGS, IFACE_METRICS
from panfm.storage.sqlite import transaction

log = logging.getLogger("panfm.storage")

VERSION = 6  # the schema version this step brings the database to
CHUNK = 20_000  # rows per write transaction
LOG_EVERY_S = 5.0  # at most one progress line per table this often (and one at each table's end)

Progress = Callable[[str], None]


def _exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return row is not None and row[0] == "table"


def _dev_select() -> str:
    exprs = [f"{c.encode_sql(m, f's.{m}')}" for m in c.DEV_STORED]
    return f"k.dk, s.ts, {', '.join(exprs)}, CAST(round(s.rtt_ms * {c.RTT_SCALE}) AS INTEGER), s.approx"


def _if_select() -> str:
    exprs = [f"{c.encode_sql(m, f's.{m}')}" for m in IFACE_METRICS]
    return f"i.ik, s.ts, {', '.join(exprs)}, s.counted, s.approx"


def _rollup_exprs(metrics: tuple[str, ...], has_counts: bool) -> str:
    parts = []
    for m in metrics:
        count = f"CASE WHEN s.{m}_n = s.n THEN NULL ELSE s.{m}_n END" if has_counts else "NULL"
        parts.append(f"{c.encode_sql(m, f's.{m}_avg')}, {c.encode_sql(m, f's.{m}_max')}, {count}")
    return ", ".join(parts)


def _plans(groupings: bool) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(old table, its primary key, insert statement with {where}, key registration kind)."""
    dev_raw_cols = f"dk, ts, {', '.join(c.DEV_STORED)}, rtt_us, approx"
    if_raw_cols = f"ik, ts, {', '.join(IFACE_METRICS)}, counted, approx"
    dev_from = "FROM {old} s JOIN ts_device k ON k.device_id = s.device_id WHERE {where}"
    if_from = ("FROM {old} s JOIN ts_device k ON k.device_id = s.device_id "
               "JOIN ts_iface i ON i.dk = k.dk AND i.interface = s.interface WHERE {where}")
    plans = [
        ("device_samples", ("device_id", "ts"),
         f"INSERT OR REPLACE INTO dev_raw ({dev_raw_cols}) SELECT {_dev_select()} {dev_from}", "dev"),
        ("interface_samples", ("device_id", "interface", "ts"),
         f"INSERT OR REPLACE INTO if_raw ({if_raw_cols}) SELECT {_if_select()} {if_from}", "if"),
    ]
    tables = dict(c.TIER_TABLES)
    if groupings:
        tables.update(c.GROUP_TABLES)
    for old, new in tables.items():
        if old.startswith("device"):
            cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in c.DEV_STORED)
            sql = (f"INSERT OR REPLACE INTO {new} (dk, bucket, n, {cols}, total_mbps_max) "
                   f"SELECT k.dk, s.bucket, s.n, {_rollup_exprs(c.DEV_STORED, True)}, "
                   f"{c.encode_sql('total_mbps', 's.total_mbps_max')} {dev_from}")
            plans.append((old, ("device_id", "bucket"), sql, "dev"))
        else:
            cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in IFACE_METRICS)
            sql = (f"INSERT OR REPLACE INTO {new} (ik, bucket, n, {cols}) "
                   f"SELECT i.ik, s.bucket, s.n, {_rollup_exprs(IFACE_METRICS, True)} {if_from}")
            plans.append((old, ("device_id", "interface", "bucket"), sql, "if"))
    return plans


def _range(key: tuple[str, ...], lo: list[Any] | None, hi: list[Any] | None) -> tuple[str, list[Any]]:
    cols = f"({', '.join(f's.{k}' for k in key)})"
    marks = f"({', '.join('?' * len(key))})"
    where, params = [], []
    if lo is not None:
        where.append(f"{cols} > {marks}")
        params += lo
    if hi is not None:
        where.append(f"{cols} <= {marks}")
        params += hi
    return (" AND ".join(where) or "1"), params


def _copy_table(conn: sqlite3.Connection, old: str, key: tuple[str, ...], insert: str, kind: str,
                chunk: int, progress: Progress, log_every_s: float) -> None:
    row = conn.execute("SELECT last_key, rows FROM compact_progress WHERE tbl = ?", (old,)).fetchone()
    lo: list[Any] | None = json.loads(row[0]) if row and row[0] else None
    done = int(row[1]) if row else 0
    total = conn.execute(f"SELECT count(*) FROM {old}").fetchone()[0]  # noqa: S608  # nosec B608
    if lo is not None:
        progress(f"compact: {old}: resuming after {done:,} of {total:,} rows")
    order = ", ".join(f"s.{k}" for k in key)
    last_log = time.monotonic()
    while True:
        with transaction(conn):
            where, params = _range(key, lo, None)
            hi_row = conn.execute(
                f"SELECT {', '.join(key)} FROM {old} s WHERE {where} ORDER BY {order} LIMIT 1 OFFSET ?",  # noqa: S608  # nosec B608
                (*params, chunk - 1)).fetchone()
            hi = None if hi_row is None else list(hi_row)
            where, params = _range(key, lo, hi)
            conn.execute(f"INSERT OR IGNORE INTO ts_device (device_id) SELECT DISTINCT s.device_id FROM {old} s "  # noqa: S608  # nosec B608
                         f"WHERE {where}", params)
            if kind == "if":
                conn.execute(f"INSERT OR IGNORE INTO ts_iface (dk, interface) SELECT DISTINCT k.dk, s.interface "  # noqa: S608  # nosec B608
                             f"FROM {old} s JOIN ts_device k ON k.device_id = s.device_id WHERE {where}", params)
            n = conn.execute(insert.format(old=old, where=where), params).rowcount
            done += max(n, 0)
            last = hi
            if last is None:  # the last chunk: remember the table's end
                end = conn.execute(f"SELECT {', '.join(key)} FROM {old} s ORDER BY {order} DESC LIMIT 1").fetchone()  # noqa: S608  # nosec B608
                last = None if end is None else list(end)
            conn.execute("INSERT OR REPLACE INTO compact_progress (tbl, last_key, rows) VALUES (?, ?, ?)",
                         (old, None if last is None else json.dumps(last), done))
        lo = last
        if hi is None:
            break
        if time.monotonic() - last_log >= log_every_s:
            progress(f"compact: {old}: {done:,} of {total:,} rows ({100 * done // max(total, 1)} %)")
            last_log = time.monotonic()
    with transaction(conn):
        conn.execute(f"DROP TABLE {old}")
    if done:
        progress(f"compact: {old}: {done:,} rows copied")


def convert(conn: sqlite3.Connection, chunk: int = CHUNK, progress: Progress | None = None,
            log_every_s: float = LOG_EVERY_S) -> None:
    """Bring a version-5 sample database to version 6 (resumable; see the module doc)."""
    say = progress or log.info
    groupings = bool(GROUPINGS)
    with transaction(conn):
        if conn.execute("PRAGMA user_version").fetchone()[0] != VERSION - 1:
            return  # another process finished it meanwhile
        fresh = not _exists(conn, "compact_progress") and any(
            conn.execute(f"SELECT 1 FROM {old} LIMIT 1").fetchone()  # noqa: S608  # nosec B608
            for old, *_ in _plans(groupings) if _exists(conn, old))
        for stmt in c.ddl(groupings):
            conn.execute(stmt)
        conn.execute("CREATE TABLE IF NOT EXISTS compact_progress (tbl TEXT PRIMARY KEY, last_key TEXT,"
                     " rows INTEGER NOT NULL)")
        if _exists(conn, "known_devices"):
            conn.execute("INSERT OR IGNORE INTO ts_device (device_id) SELECT device_id FROM known_devices "
                         "ORDER BY device_id")
            conn.execute("INSERT OR IGNORE INTO ts_iface (dk, interface) SELECT k.dk, i.interface "
                         "FROM known_interfaces i JOIN ts_device k ON k.device_id = i.device_id "
                         "ORDER BY k.dk, i.interface")
    if fresh:
        say("compact: converting the sample database to the compact layout (schema 6), in chunks")
    t0 = time.monotonic()
    for old, key, insert, kind in _plans(groupings):
        if _exists(conn, old):
            _copy_table(conn, old, key, insert, kind, chunk, say, log_every_s)
    with transaction(conn):
        if conn.execute("PRAGMA user_version").fetchone()[0] != VERSION - 1:
            return
        for old in ("known_devices", "known_interfaces", *c.GROUP_TABLES):
            if _exists(conn, old):
                conn.execute(f"DROP TABLE {old}")
        for stmt in (*c.views(groupings), *c.triggers(groupings)):
            conn.execute(stmt)
        conn.execute("DROP TABLE compact_progress")
        conn.execute(f"PRAGMA user_version = {VERSION}")
    if fresh:
        say(f"compact: done in {time.monotonic() - t0:.1f} s")


__all__ = ["CHUNK", "convert"]
