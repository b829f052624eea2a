"""Migration 7 of the sample database: pack the rollup tiers twelve buckets a row, in place.

Runs when the clock opens the database (as every migration does), in chunks like migration 6:

1. Drop the old-name views and triggers of the rollup tables (they read the old rows), create
   the packed tables under a temporary name (`<table>_pk`) and a progress table.
2. Copy each rollup table in primary-key order, about `chunk` rows per write transaction,
   whole periods at a time (a chunk ends at the end of its last row's period), recording the
   last key copied in the same transaction; a progress line is logged every few seconds. A
   kill at any point loses at most the chunk in flight: the next start resumes after the last
   recorded key. Packed rows are written with INSERT OR REPLACE of whole periods, so a chunk
   copied twice is harmless.
3. Drop each old table once copied; at the end rename the packed tables to the old physical
   names, create the views of the old names (`tier_views.views`), drop the progress table and set
   `user_version` to 7 (one transaction). Until then the web refuses the database
   (StorageUnavailable), as for any pending migration.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import panfm.storage.compact as c
import panfm.storage.tier_views as tier_views
import panfm.storage.tiers as tiers
from panfm.storage.sqlite import transaction

log = logging.getLogger("panfm.storage")

VERSION = 7  # the schema version this step brings the database to
CHUNK = 20_000  # old rows per write transaction (rounded up to whole periods)
LOG_EVERY_S = 5.0

Progress = Callable[[str], None]


def _exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return row is not None and row[0] == "table"


def _select(table: str) -> str:
    kind = tiers.kind_of(table)
    key = "dk" if kind == "dev" else "ik"
    counts = ", ".join(f"{m}_n" for m in tiers.metrics(kind))
    return f"SELECT {key}, bucket, {', '.join(tiers.value_cols(kind))}, {counts} FROM {table}"  # noqa: S608  # nosec B608


def _pack_rows(table: str, rows: Sequence[Sequence[Any]]) -> list[tuple[int, bytes, bytes | None]]:
    """Old rows (key, bucket, values..., counts...) as packed rows (whole periods expected)."""
    kind = tiers.kind_of(table)
    nv = len(tiers.value_cols(kind))
    ps = tiers.period_s(table)
    periods: dict[tuple[int, int], list[tiers.Bucket]] = {}
    for r in rows:
        v = tuple(r[2:2 + nv])
        # an old count of NULL meant "the bucket's n" when the metric has an average (0 when not)
        defaults = tiers.default_counts(kind, v)
        counts = [d if x is None else x for x, d in zip(r[2 + nv:], defaults, strict=True)]
        periods.setdefault((int(r[0]), int(r[1]) // ps), []).append(
            (int(r[1]), v, tiers.canonical_counts(kind, v, counts)))
    out = []
    for (key, p), buckets in periods.items():
        b, cnt = tiers.encode_period(table, p, buckets)
        out.append((key << tiers.SHIFT | p, b, cnt))
    return out


def _copy_table(conn: sqlite3.Connection, table: str, chunk: int, progress: Progress, log_every_s: float) -> None:
    kind = tiers.kind_of(table)
    key = "dk" if kind == "dev" else "ik"
    ps = tiers.period_s(table)
    row = conn.execute("SELECT last_key, rows FROM pack_progress WHERE tbl = ?", (table,)).fetchone()
    lo: list[int] | None = json.loads(row[0]) if row and row[0] else None
    done = int(row[1]) if row else 0
    total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608  # nosec B608
    if lo is not None:
        progress(f"pack: {table}: resuming after {done:,} of {total:,} rows")
    select = _select(table)
    last_log = time.monotonic()
    while True:
        with transaction(conn):
            if lo is None:
                rows = conn.execute(f"{select} ORDER BY {key}, bucket LIMIT ?", (chunk,)).fetchall()
            else:
                rows = conn.execute(f"{select} WHERE ({key}, bucket) > (?, ?) ORDER BY {key}, bucket LIMIT ?",
                                    (*lo, chunk)).fetchall()
            if rows:  # finish the last row's period, so a period is never split between chunks
                k, b = int(rows[-1][0]), int(rows[-1][1])
                rows += conn.execute(f"{select} WHERE {key} = ? AND bucket > ? AND bucket < ? ORDER BY bucket",
                                     (k, b, (b // ps + 1) * ps)).fetchall()
                conn.executemany(f"INSERT OR REPLACE INTO {table}_pk (id, b, cnt) VALUES (?, ?, ?)",  # noqa: S608  # nosec B608
                                 _pack_rows(table, rows))
                done += len(rows)
                lo = [int(rows[-1][0]), int(rows[-1][1])]
            conn.execute("INSERT OR REPLACE INTO pack_progress (tbl, last_key, rows) VALUES (?, ?, ?)",
                         (table, None if lo is None else json.dumps(lo), done))
        if not rows:
            break
        if time.monotonic() - last_log >= log_every_s:
            progress(f"pack: {table}: {done:,} of {total:,} rows ({100 * done // max(total, 1)} %)")
            last_log = time.monotonic()
    with transaction(conn):
        conn.execute(f"DROP TABLE {table}")
    if done:
        progress(f"pack: {table}: {done:,} rows packed")


def convert(conn: sqlite3.Connection, chunk: int = CHUNK, progress: Progress | None = None,
            log_every_s: float = LOG_EVERY_S) -> None:
    """Bring a version-6 sample database to version 7 (resumable; see the module doc)."""
    say = progress or log.info
    tables = list(tiers.PACKED)
    with transaction(conn):
        if conn.execute("PRAGMA user_version").fetchone()[0] != VERSION - 1:
            return  # another process finished it meanwhile
        fresh = not _exists(conn, "pack_progress") and any(
            _exists(conn, t) and conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in tables)  # noqa: S608  # nosec B608
        for view in (*c.TIER_TABLES, *c.GROUP_TABLES):
            conn.execute(f"DROP VIEW IF EXISTS {view}")  # its INSTEAD OF triggers go with it
        for t in tables:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {t}_pk (id INTEGER PRIMARY KEY, b BLOB NOT NULL, cnt BLOB)")
        conn.execute("CREATE TABLE IF NOT EXISTS pack_progress (tbl TEXT PRIMARY KEY, last_key TEXT,"
                     " rows INTEGER NOT NULL)")
    if fresh:
        say("pack: packing the rollup tiers twelve buckets a row (schema 7), in chunks")
    t0 = time.monotonic()
    for t in tables:
        if _exists(conn, t):
            _copy_table(conn, t, chunk, say, log_every_s)
    with transaction(conn):
        if conn.execute("PRAGMA user_version").fetchone()[0] != VERSION - 1:
            return
        for t in tables:
            conn.execute(f"ALTER TABLE {t}_pk RENAME TO {t}")
        for stmt in tier_views.views(with_head=False):
            conn.execute(stmt)
        conn.execute("DROP TABLE pack_progress")
        conn.execute(f"PRAGMA user_version = {VERSION}")
    if fresh:
        say(f"pack: done in {time.monotonic() - t0:.1f} s")


__all__ = ["CHUNK", "convert"]
