"""Migration 9 of the sample database: interface rows' times in whole seconds instead of milliseconds.

A raw row's key is (series key, time); SQLite stores an epoch in milliseconds in six bytes and
one in seconds in four, about 5 % of an interface row (`docs/storage.md`). An interface row's
rates were computed from its poll's exact time when it was collected; only its stored date is
floored. Device rows keep the exact time in milliseconds (one row a poll: the rates checked
against a firewall's truth, and the time the API answers for a sample).

Runs when the clock opens the database (as every migration does), in chunks like migrations 6
and 7:

1. Drop the raw tables' old-name views (`device_samples`, `interface_samples`, and their
   triggers), create `if_raw_s` (the columns and key of `if_raw`) and a progress table.
2. Copy `if_raw` in primary-key order, about `chunk` rows per write transaction, with
   `ts / 1000`, recording the last key copied in the same transaction; a progress line is
   logged every few seconds. A kill at any point loses at most the chunk in flight: the next
   start resumes after the last recorded key. Rows are written with INSERT OR REPLACE in key
   order, so a chunk copied twice is harmless, and two rows of one series within one second
   (a clock restarted within the second) keep the later.
3. Drop `if_raw` once copied; at the end rename `if_raw_s` to `if_raw`, create the views again
   (`compact.raw_views`, `raw_triggers`: they show times in milliseconds, as before), drop the
   progress table and set `user_version` to 9 (one transaction). Until then the web refuses
   the database (StorageUnavailable), as for any pending migration.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable

import panfm.storage.compact as c
from panfm.storage.series_def import IFACE_METRICS
from panfm.storage.sqlite import transaction

log = logging.getLogger("panfm.storage")

VERSION = 9  # the schema version this step brings the database to
CHUNK = 50_000  # rows per write transaction
LOG_EVERY_S = 5.0

Progress = Callable[[str], None]

# table -> (key column, the other columns after the time): the tables converted
_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "if_raw": ("ik", (*IFACE_METRICS, "counted", "approx")),
}


def _exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return row is not None and row[0] == "table"


def _new_table(conn: sqlite3.Connection, table: str) -> None:
    """`<table>_s`: the columns and key of `table` (`compact.ddl`, the raw tables' only definition)."""
    head = f"CREATE TABLE IF NOT EXISTS {table} ("
    [ddl] = [d for d in c.ddl(groupings=False) if d.startswith(head)]
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table}_s (" + ddl[len(head):])


def _copy_table(conn: sqlite3.Connection, table: str, chunk: int, progress: Progress, log_every_s: float) -> None:
    key, rest = _TABLES[table]
    cols = ", ".join(rest)
    row = conn.execute("SELECT last_key, rows FROM raw_s_progress WHERE tbl = ?", (table,)).fetchone()
    lo: list[int] | None = json.loads(row[0]) if row and row[0] else None
    done = int(row[1]) if row else 0
    total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608  # nosec B608
    if lo is not None:
        progress(f"raw seconds: {table}: resuming after {done:,} of {total:,} rows")
    select = f"SELECT {key}, ts, {cols} FROM {table}"  # noqa: S608  # nosec B608
    insert = (f"INSERT OR REPLACE INTO {table}_s ({key}, ts, {cols}) "  # noqa: S608  # nosec B608
              f"VALUES ({', '.join('?' * (len(rest) + 2))})")
    last_log = time.monotonic()
    while True:
        with transaction(conn):
            if lo is None:
                rows = conn.execute(f"{select} ORDER BY {key}, ts LIMIT ?", (chunk,)).fetchall()
            else:
                rows = conn.execute(f"{select} WHERE ({key}, ts) > (?, ?) ORDER BY {key}, ts LIMIT ?",
                                    (*lo, chunk)).fetchall()
            if rows:
                conn.executemany(insert, [(r[0], r[1] // 1000, *r[2:]) for r in rows])
                done += len(rows)
                lo = [int(rows[-1][0]), int(rows[-1][1])]
            conn.execute("INSERT OR REPLACE INTO raw_s_progress (tbl, last_key, rows) VALUES (?, ?, ?)",
                         (table, None if lo is None else json.dumps(lo), done))
        if not rows:
            break
        if time.monotonic() - last_log >= log_every_s:
            progress(f"raw seconds: {table}: {done:,} of {total:,} rows ({100 * done // max(total, 1)} %)")
            last_log = time.monotonic()
    with transaction(conn):
        conn.execute(f"DROP TABLE {table}")
    if done:
        progress(f"raw seconds: {table}: {done:,} rows converted")


def convert(conn: sqlite3.Connection, chunk: int = CHUNK, progress: Progress | None = None,
            log_every_s: float = LOG_EVERY_S) -> None:
    """Bring a version-8 sample database to version 9 (resumable; see the module doc)."""
    say = progress or log.info
    with transaction(conn):
        if conn.execute("PRAGMA user_version").fetchone()[0] != VERSION - 1:
            return  # another process finished it meanwhile
        fresh = not _exists(conn, "raw_s_progress") and any(
            _exists(conn, t) and conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in _TABLES)  # noqa: S608  # nosec B608
        for view in c.RAW_TABLES:
            conn.execute(f"DROP VIEW IF EXISTS {view}")  # its INSTEAD OF triggers go with it
        for t in _TABLES:
            if _exists(conn, t):
                _new_table(conn, t)
        conn.execute("CREATE TABLE IF NOT EXISTS raw_s_progress (tbl TEXT PRIMARY KEY, last_key TEXT,"
                     " rows INTEGER NOT NULL)")
    if fresh:
        say("raw seconds: interface sample times from milliseconds to whole seconds (schema 9), in chunks")
    t0 = time.monotonic()
    for t in _TABLES:
        if _exists(conn, t):
            _copy_table(conn, t, chunk, say, log_every_s)
    with transaction(conn):
        if conn.execute("PRAGMA user_version").fetchone()[0] != VERSION - 1:
            return
        for t in _TABLES:
            conn.execute(f"ALTER TABLE {t}_s RENAME TO {t}")
        for stmt in (*c.raw_views(), *c.raw_triggers()):
            conn.execute(stmt)
        conn.execute("DROP TABLE raw_s_progress")
        conn.execute(f"PRAGMA user_version = {VERSION}")
    if fresh:
        say(f"raw seconds: done in {time.monotonic() - t0:.1f} s")


__all__ = ["CHUNK", "convert"]
