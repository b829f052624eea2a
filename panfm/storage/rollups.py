"""Rollups (5-minute, 1-hour), the 30-minute groups and retention of the sample database; no locking.

SQLite aggregates the raw rows; the buckets are stored packed (`tiers.py`, schema version 7).
Column names in the generated SQL come from the constant metric tuples of series_def; every
value is a bound parameter.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import panfm.storage.compact as c
import panfm.storage.tier_head as tier_head
import panfm.storage.tiers as tiers
from panfm.storage.series_def import GROUPINGS, IFACE_METRICS, TIERS

_DEV = "ts_device k JOIN {t} s ON s.dk = k.dk"
_IF = "ts_iface k JOIN {t} s ON s.ik = k.ik"


def _aggregates(metrics: tuple[str, ...]) -> str:
    # avg() skips NULLs; each metric's own count goes with the bucket (tiers.canonical_counts
    # keeps it only where it differs from the default), so a wider grouping weighs each average
    # by its own count.
    return ", ".join(f"CAST(round(avg(s.{m})) AS INTEGER), max(s.{m}), count(s.{m})" for m in metrics)


def rollup_sql(tier: str) -> tuple[str, str]:
    """Return a tier's device and interface aggregate queries over the raw rows, taking (start s, end s).

    Device rows hold their time in ms, interface rows in whole seconds (schema 9): the device
    query scales its bounds itself.

    Each row: key, bucket start, n, then (avg, max, count) per stored metric (devices: then
    the maximum of inbound + outbound).
    """
    bucket_s = TIERS[tier][2]
    dev_sql = (
        f"SELECT s.dk, (s.ts / {bucket_s * 1000}) * {bucket_s} AS b, count(*), {_aggregates(c.DEV_STORED)}, "  # noqa: S608  # nosec B608
        f"max(s.inbound_mbps + s.outbound_mbps) FROM {_DEV.format(t='dev_raw')} "
        "AND s.ts >= ? * 1000 AND s.ts < ? * 1000 GROUP BY s.dk, b"
    )
    if_sql = (
        f"SELECT s.ik, (s.ts / {bucket_s}) * {bucket_s} AS b, count(*), {_aggregates(IFACE_METRICS)} "  # noqa: S608  # nosec B608
        f"FROM {_IF.format(t='if_raw')} AND s.ts >= ? AND s.ts < ? GROUP BY s.ik, b"
    )
    return dev_sql, if_sql


ROLLUP_SQL: dict[str, tuple[str, str]] = {tier: rollup_sql(tier) for tier in TIERS}


def _buckets(kind: str, rows: list[Any]) -> dict[int, list[tiers.Bucket]]:
    """Aggregate rows (rollup_sql's) as packed buckets per series key."""
    nm = len(tiers.metrics(kind))
    out: dict[int, list[tiers.Bucket]] = {}
    for r in rows:
        vals: list[int | None] = [r[2]]
        counts = []
        for i in range(nm):
            vals += (r[3 + 3 * i], r[4 + 3 * i])
            counts.append(r[5 + 3 * i])
        if kind == "dev":
            vals.append(r[3 + 3 * nm])
        v = tuple(vals)
        out.setdefault(int(r[0]), []).append((int(r[1]), v, tiers.canonical_counts(kind, v, counts)))
    return out


def rollup_range(conn: sqlite3.Connection, tier: str, start_s: int, end_s: int) -> None:
    """Recompute every bucket of `tier` starting in [start_s, end_s) from the raw rows.

    Writing each bucket in place of the stored one (tier_head.write) makes this idempotent:
    running it twice, or over a bucket that was already rolled up, yields the same rows (never
    double counts). Buckets whose raw rows were already deleted produce no rows, so the stored
    rollup stays.
    """
    dev_view, if_view, _ = TIERS[tier]
    dev_sql, if_sql = ROLLUP_SQL[tier]
    keys: dict[str, list[int]] = {}
    for kind, sql, view in (("dev", dev_sql, dev_view), ("if", if_sql, if_view)):
        seen: dict[int, None] = {}
        rows = conn.execute(sql, (start_s, end_s))
        # In batches (the aggregate rows are read from SQLite's sorter as they are needed): a
        # whole fleet's closed hour at once is ~17,000 rows of ~20 values, a peak of Python
        # objects whose arenas the clock then kept. Each bucket is written once whatever the
        # batch it falls in (tier_head.write replaces buckets by their start).
        while batch := rows.fetchmany(tier_head.PACK_CHUNK):
            found = _buckets(kind, batch)
            tier_head.write(conn, c.PHYSICAL[view], found)
            seen.update(dict.fromkeys(found))
        keys[kind] = list(seen)
    if tier in GROUPINGS:
        regroup_range(conn, tier, start_s, end_s, keys)


def regroup_range(conn: sqlite3.Connection, tier: str, start_s: int, end_s: int,
                  keys: dict[str, list[int]] | None = None) -> None:
    """Recompute the materialised groups of `tier` that hold any bucket in [start_s, end_s).

    Whole groups are recomputed from the tier's rows (idempotent, like rollup_range); the
    newest group may be partial and is completed as later buckets close. `keys`: the series
    to regroup per kind ("dev", "if"); default every known series.
    """
    tier_dev, tier_if, _ = TIERS[tier]
    dev_group, if_group, _ = GROUPINGS[tier]
    if keys is None:
        keys = {"dev": [r[0] for r in conn.execute("SELECT dk FROM ts_device")],
                "if": [r[0] for r in conn.execute("SELECT ik FROM ts_iface")]}
    tier_head.regroup(conn, c.PHYSICAL[tier_dev], c.PHYSICAL[dev_group], start_s, end_s, keys["dev"])
    tier_head.regroup(conn, c.PHYSICAL[tier_if], c.PHYSICAL[if_group], start_s, end_s, keys["if"])


def _first_raw_s(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT min((SELECT min(ts) FROM dev_raw d WHERE d.dk = k.dk)) FROM ts_device k"
    ).fetchone()
    return None if row[0] is None else int(row[0]) // 1000  # device rows: ms


def advance_rollups(conn: sqlite3.Connection, closed_before: float, earliest_new_s: int | None) -> None:
    """Roll up the buckets that closed since the last call (inside the caller's transaction).

    1. A bucket is closed when it ends at or before `closed_before` (the earliest time any
       future sample can carry: the start of the current cycle).
    2. Start from the tier's mark (where the previous call stopped); on a fresh database from
       the first raw sample.
    3. A sample written now into an already-closed bucket (a late row) moves the start back
       to its bucket, which is then recomputed whole.
    4. Store the new mark, so the next call starts where this one stopped.
    """
    for tier, (_, _, bucket_s) in TIERS.items():
        boundary = int(closed_before // bucket_s) * bucket_s
        row = conn.execute("SELECT done_until FROM rollup_marks WHERE tier = ?", (tier,)).fetchone()
        if row is not None:
            start = int(row[0])
        else:
            first = _first_raw_s(conn)
            start = boundary if first is None else (first // bucket_s) * bucket_s
        if earliest_new_s is not None:
            start = min(start, (earliest_new_s // bucket_s) * bucket_s)
        if start < boundary:
            rollup_range(conn, tier, start, boundary)
        mark = boundary if row is None else max(int(row[0]), boundary)
        conn.execute("INSERT OR REPLACE INTO rollup_marks (tier, done_until) VALUES (?, ?)", (tier, mark))


# --------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------

WriteTx = Callable[[], AbstractContextManager[sqlite3.Connection]]


def _delete_chunked(
    write_tx: WriteTx,
    conn: sqlite3.Connection,
    table: str,
    key_cols: tuple[str, ...],
    time_col: str,
    cutoff: int,
    keys: list[tuple[int, ...]],
    chunk: int,
) -> int:
    """Delete rows older than `cutoff`, at most `chunk` rows per transaction, series by series.

    Short transactions keep the clock's cycle commits from waiting behind one huge delete,
    and each commit lets the WAL be checkpointed and reused.
    """
    where = " AND ".join(f"{c} = ?" for c in key_cols)
    find = f"SELECT {time_col} FROM {table} WHERE {where} AND {time_col} < ? ORDER BY {time_col} LIMIT 1 OFFSET ?"  # noqa: S608  # nosec B608
    delete_upto = f"DELETE FROM {table} WHERE {where} AND {time_col} <= ?"  # noqa: S608  # nosec B608
    delete_below = f"DELETE FROM {table} WHERE {where} AND {time_col} < ?"  # noqa: S608  # nosec B608
    total = 0
    i = 0
    while i < len(keys):
        with write_tx():
            budget = chunk
            while i < len(keys) and budget > 0:
                key = keys[i]
                last = conn.execute(find, (*key, cutoff, budget - 1)).fetchone()
                if last is not None:  # more than `budget` old rows: delete exactly `budget`, same series next
                    total += conn.execute(delete_upto, (*key, last[0])).rowcount
                    budget = 0
                else:
                    n = conn.execute(delete_below, (*key, cutoff)).rowcount
                    total += n
                    budget -= n
                    i += 1
    return total


def _delete_packed(write_tx: WriteTx, conn: sqlite3.Connection, table: str, cutoff: int,
                   keys: list[tuple[int, ...]], chunk: int) -> int:
    """Delete the buckets of packed `table` starting before `cutoff`, series by series.

    At most about `chunk` buckets per transaction (a packed row holds up to twelve); returns
    the buckets deleted.
    """
    rows = max(1, chunk // tiers.SLOTS)
    total = 0
    i = 0
    while i < len(keys):
        with write_tx():
            budget = rows
            while i < len(keys) and budget > 0:
                n, gone, done = tiers.delete_before(conn, table, keys[i][0], cutoff, budget)
                total += n
                budget -= max(1, gone)
                if done:
                    i += 1
    return total


def _keys(conn: sqlite3.Connection, sql: str) -> list[tuple[int, ...]]:
    return [tuple(r) for r in conn.execute(sql).fetchall()]


def apply_retention(
    write_tx: WriteTx,
    conn: sqlite3.Connection,
    now: float,
    raw_days: int,
    fivemin_days: int,
    hourly_days: int,
    chunk: int,
) -> dict[str, int]:
    """Delete rows past each tier's retention in chunks; return rows deleted per table (old names)."""
    devices = _keys(conn, "SELECT dk FROM ts_device")
    ifaces = _keys(conn, "SELECT ik FROM ts_iface")
    raw_cut_ms = int((now - raw_days * 86400) * 1000)
    raw_cut_s = math.ceil(now - raw_days * 86400)  # interface rows keep whole seconds
    cuts = {"5m": int(now - fivemin_days * 86400), "1h": int(now - hourly_days * 86400)}
    dev_key, if_key = ("dk",), ("ik",)
    deleted = {
        "device_samples": _delete_chunked(write_tx, conn, "dev_raw", dev_key, "ts", raw_cut_ms, devices, chunk),
        "interface_samples": _delete_chunked(write_tx, conn, "if_raw", if_key, "ts", raw_cut_s, ifaces, chunk),
    }
    for tier, (dev_table, if_table, _) in TIERS.items():
        deleted[dev_table] = _delete_packed(write_tx, conn, c.PHYSICAL[dev_table], cuts[tier], devices, chunk)
        deleted[if_table] = _delete_packed(write_tx, conn, c.PHYSICAL[if_table], cuts[tier], ifaces, chunk)
    for tier, (dev_table, if_table, width) in GROUPINGS.items():
        # A group goes once every bucket in it is past retention (its start + width <= cut).
        cut = cuts[tier] // width * width
        deleted[dev_table] = _delete_packed(write_tx, conn, c.PHYSICAL[dev_table], cut, devices, chunk)
        deleted[if_table] = _delete_packed(write_tx, conn, c.PHYSICAL[if_table], cut, ifaces, chunk)
    with write_tx():
        # Forget series with no row left in any tier (a device removed long ago). A device key
        # goes only once none of its interfaces is left, so no row ever points at a freed key.
        tables = (*TIERS.values(), *GROUPINGS.values())
        if_packed = [c.PHYSICAL[t] for _, t, _ in tables]
        dev_packed = [c.PHYSICAL[t] for t, _, _ in tables]
        rng = f"s.id >= k.{{k}} << {tiers.SHIFT} AND s.id < (k.{{k}} + 1) << {tiers.SHIFT}"
        hrng = f"s.id >= k.{{k}} << {tiers.SHIFT + tiers.HS} AND s.id < (k.{{k}} + 1) << {tiers.SHIFT + tiers.HS}"
        if_gone = " AND ".join(["NOT EXISTS (SELECT 1 FROM if_raw s WHERE s.ik = k.ik)"] + [
            f"NOT EXISTS (SELECT 1 FROM {t} s WHERE {rng.format(k='ik')})" for t in if_packed] + [  # noqa: S608  # nosec B608
            f"NOT EXISTS (SELECT 1 FROM {tiers.head(t)} s WHERE {hrng.format(k='ik')})" for t in if_packed])  # noqa: S608  # nosec B608
        dev_gone = " AND ".join(["NOT EXISTS (SELECT 1 FROM dev_raw s WHERE s.dk = k.dk)"] + [
            f"NOT EXISTS (SELECT 1 FROM {t} s WHERE {rng.format(k='dk')})" for t in dev_packed] + [  # noqa: S608  # nosec B608
            f"NOT EXISTS (SELECT 1 FROM {tiers.head(t)} s WHERE {hrng.format(k='dk')})" for t in dev_packed])  # noqa: S608  # nosec B608
        conn.execute(f"DELETE FROM ts_iface AS k WHERE {if_gone}")  # noqa: S608  # nosec B608
        conn.execute(f"DELETE FROM ts_device AS k WHERE {dev_gone} "  # noqa: S608  # nosec B608
                     "AND NOT EXISTS (SELECT 1 FROM ts_iface i WHERE i.dk = k.dk)")
    return deleted
