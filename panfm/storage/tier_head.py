"""The open period of each packed tier, kept unpacked (schema version 8), and its packing.

Packing a period's twelve buckets into one row each time one of them is written cost the clock
about five times its schema-6 CPU in the cycle that closes a 5-minute bucket (read, decode,
merge and encode a row per series). Like a time-series store's head block, the period still
open is kept as single-bucket rows in `<table>_head` (rowid `(key << 24 | period) << 4 | slot`;
`b` and `cnt` are a packed row holding that one bucket, `tiers.encode_period`), and packed into
the tier once, when the clock first writes a bucket of a later period: one batch per closed
period, not per bucket.

`tier_open` records each tier's open period. Buckets of earlier periods (late data, a backfill,
the migrations) go straight into packed rows, so a period is in the packed table or in the head,
never in both, and the head holds the latest periods only. Readers (`tier_rows.read`, `read_columns`,
`count`, `first_bucket`, the old-name views) read both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import panfm.storage.tier_rows as tier_rows
import panfm.storage.tiers as tiers
from panfm.storage.tiers import HS, PACKED, PMASK, Bucket, head

_PMASK_H = f"((id >> {HS}) & {PMASK})"


def ddl() -> list[str]:
    """The head tables and the open-period marks (migration 8)."""
    return [*(f"CREATE TABLE {head(t)} (id INTEGER PRIMARY KEY, b BLOB NOT NULL, cnt BLOB)" for t in PACKED),
            "CREATE TABLE tier_open (tbl TEXT PRIMARY KEY, p INTEGER NOT NULL) WITHOUT ROWID"]


def open_period(conn: sqlite3.Connection, table: str) -> int | None:
    row = conn.execute("SELECT p FROM tier_open WHERE tbl = ?", (table,)).fetchone()
    return None if row is None else int(row[0])


PACK_CHUNK = 512  # series packed per batch: the hour's pack of a whole fleet never sits in memory at once


def pack(conn: sqlite3.Connection, table: str, before: int) -> int:
    """Pack the head's buckets of periods before `before` into the tier (merging any stored row).

    Series by series in batches of `PACK_CHUNK` rows (the head is read in rowid order, so a
    row's buckets are together): at 1,000 firewalls a whole hour's head is ~200,000 decoded
    buckets, a peak of Python objects whose arenas the clock then kept. Returns the buckets packed.
    """
    h = head(table)
    packed = 0
    found: dict[int, list[Bucket]] = {}
    rows = conn.execute(f"SELECT id, b, cnt FROM {h} WHERE {_PMASK_H} < ? ORDER BY id", (before,))  # noqa: S608  # nosec B608
    for hid, b, cnt in rows:
        rowid = hid >> HS
        if rowid not in found and len(found) >= PACK_CHUNK:
            packed += _pack_rows(conn, table, found)
            found = {}
        found.setdefault(rowid, []).extend(tiers.decode_row(table, rowid, b, cnt))
    if found:
        packed += _pack_rows(conn, table, found)
    conn.execute(f"DELETE FROM {h} WHERE {_PMASK_H} < ?", (before,))  # noqa: S608  # nosec B608
    return packed


def _pack_rows(conn: sqlite3.Connection, table: str, found: dict[int, list[Bucket]]) -> int:
    """Merge `found` (packed rowid -> its head buckets) into the tier's stored rows; return the buckets."""
    ids = list(found)
    marks = ",".join("?" * len(ids))
    stored = {int(r[0]): (r[1], r[2]) for r in conn.execute(
        f"SELECT id, b, cnt FROM {table} WHERE id IN ({marks})", ids)}  # noqa: S608  # nosec B608
    out = []
    for rowid, new in found.items():
        old = stored.get(rowid)
        merged = {r[0]: r for r in tiers.decode_row(table, rowid, old[0], old[1])} if old else {}
        merged.update((r[0], r) for r in new)
        out.append((rowid, *tiers.encode_period(table, rowid & PMASK, merged.values())))
    conn.executemany(f"INSERT OR REPLACE INTO {table} (id, b, cnt) VALUES (?, ?, ?)", out)  # noqa: S608  # nosec B608
    return sum(len(v) for v in found.values())


def write(conn: sqlite3.Connection, table: str, buckets: dict[int, list[Bucket]]) -> None:
    """Store buckets per series key, replacing stored buckets of the same start (others kept).

    Buckets of the open period (or later) go to the head, one row each; a later period than
    the open one first packs the head's closed periods; earlier periods go into packed rows.
    """
    if not any(buckets.values()):
        return
    ps = tiers.period_s(table)
    top = max(r[0] // ps for rows in buckets.values() for r in rows)
    open_p = open_period(conn, table)
    if open_p is None or top > open_p:
        pack(conn, table, top)
        conn.execute("INSERT OR REPLACE INTO tier_open (tbl, p) VALUES (?, ?)", (table, top))
        open_p = top
    late: dict[int, list[Bucket]] = {}
    fresh = []
    _, width = PACKED[table]
    for key, rows in buckets.items():
        for r in rows:
            p = r[0] // ps
            if p < open_p:
                late.setdefault(key, []).append(r)
            else:
                slot = (r[0] - p * ps) // width
                fresh.append(((key << tiers.SHIFT | p) << HS | slot, *tiers.encode_bucket(table, slot, r[1], r[2])))
    if late:
        tiers.write_packed(conn, table, late)
    conn.executemany(f"INSERT OR REPLACE INTO {head(table)} (id, b, cnt) VALUES (?, ?, ?)", fresh)  # noqa: S608  # nosec B608


def regroup(conn: sqlite3.Connection, src: str, dst: str, lo: int, hi: int, keys: Iterable[int]) -> None:
    """Recompute the `dst` groups of each series in `keys` that hold any `src` bucket in [lo, hi).

    Only the groups that end by `hi` (the rolled-up boundary: complete), not the open one: it
    is computed once, when its last bucket closes, rather than again at each bucket close.
    """
    kind, width = PACKED[dst]
    glo, ghi = lo // width * width, hi // width * width
    if ghi <= glo:
        return
    out: dict[int, list[Bucket]] = {}
    for key in keys:
        by_group: dict[int, list[Bucket]] = {}
        for r in tier_rows.read(conn, src, key, glo, ghi):
            by_group.setdefault(r[0] // width * width, []).append(r)
        if by_group:
            out[key] = [tiers.group(kind, g, rs) for g, rs in by_group.items()]
        if len(out) >= PACK_CHUNK:  # in batches, as `pack`: a fleet's groups never all in memory at once
            write(conn, dst, out)
            out = {}
    write(conn, dst, out)


__all__ = ["ddl", "open_period", "pack", "regroup", "write"]
