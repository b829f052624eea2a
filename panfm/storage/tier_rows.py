"""Reading the packed rollup rows of `tiers.py`: a series' buckets in a range, as buckets
(`read`), column by column (`read_columns`, what history reads), or only counted (`count`).

Each reader reads the packed rows and then the tier's head (its open period, `tier_head.py`).
"""

from __future__ import annotations

import bisect
import sqlite3
from dataclasses import dataclass
from typing import Any

import panfm.storage.packed as packed
from panfm.storage.tiers import (
    HS,
    PACKED,
    PMASK,
    SHIFT,
    SLOTS,
    Bucket,
    Vals,
    bucket_count,
    decode_cols,
    decode_row,
    head,
    key_range,
    metrics,
    period_s,
    restore_maxima,
    value_cols,
)


def _with_head(conn: sqlite3.Connection, table: str, rows: list[Any], first: int, last: int) -> list[Any]:
    """`rows` (id, b, cnt) of packed rowids [first, last] followed by the head's, as (packed rowid, b, cnt)."""
    more = conn.execute(f"SELECT id, b, cnt FROM {head(table)} WHERE id >= ? AND id <= ? ORDER BY id",  # noqa: S608  # nosec B608
                        (first << HS, last << HS | ((1 << HS) - 1))).fetchall()
    if not more:
        return rows
    return rows + [(h >> HS, b, cnt) for h, b, cnt in more]


def read(conn: sqlite3.Connection, table: str, key: int, lo: int, hi: int) -> list[Bucket]:
    """The buckets of series `key` starting in [lo, hi) (seconds), in time order."""
    if hi <= lo:
        return []
    ps = period_s(table)
    first, last = key << SHIFT | lo // ps, key << SHIFT | (hi - 1) // ps
    out: list[Bucket] = []
    stored = conn.execute(f"SELECT id, b, cnt FROM {table} WHERE id >= ? AND id <= ? ORDER BY id",  # noqa: S608  # nosec B608
                          (first, last)).fetchall()
    for rowid, b, cnt in _with_head(conn, table, stored, first, last):
        rows = decode_row(table, rowid, b, cnt)
        if rowid in (first, last):
            rows = [r for r in rows if lo <= r[0] < hi]
        out.extend(rows)
    return out


@dataclass
class Columns:
    """A series' buckets column by column: starts, value columns, per-bucket counts (None: defaults)."""

    starts: list[int]
    cols: list[list[int | None]]
    counts: list[Vals | None] | None  # None: every bucket has the default counts

    def before(self, end: int) -> Columns:
        """The buckets starting before `end` (what `read_columns` up to `end` reads, without reading again)."""
        j = bisect.bisect_left(self.starts, end)
        if j == len(self.starts):
            return self
        counts = None if self.counts is None else self.counts[:j]
        return Columns(self.starts[:j], [col[:j] for col in self.cols],
                       counts if counts is not None and any(x is not None for x in counts) else None)


def count(conn: sqlite3.Connection, table: str, key: int, lo: int, hi: int, above: int | None = None) -> int:
    """How many buckets of series `key` start in [lo, hi) (the rows' masks; nothing decoded).

    `above`: stop once the count passes it (a chart only asks whether a range holds more buckets
    than it draws points); the answer is then some number above it, not the count.
    """
    if hi <= lo:
        return 0
    _, width = PACKED[table]
    ps = width * SLOTS
    first, last = key << SHIFT | lo // ps, key << SHIFT | (hi - 1) // ps
    total = 0
    head = 2 + (SLOTS + 7) // 8  # format, column count, mask: enough to count
    for sql, params, shift in (
            (f"SELECT id, substr(b, 1, {head}) FROM {table} WHERE id >= ? AND id <= ?", (first, last), 0),  # noqa: S608  # nosec B608
            (f"SELECT id, substr(b, 1, {head}) FROM {table}_head WHERE id >= ? AND id <= ?",  # noqa: S608  # nosec B608
             (first << HS, last << HS | ((1 << HS) - 1)), HS)):
        cur = conn.execute(sql, params)
        try:
            for stored_id, b in cur:
                rowid = stored_id >> shift
                if rowid in (first, last):
                    base = (rowid & PMASK) * ps
                    total += sum(1 for i in packed.slots_of(b, SLOTS) if lo <= base + i * width < hi)
                else:
                    total += bucket_count(b)
                if above is not None and total > above:
                    return total
        finally:
            cur.close()  # no statement left open on a kept connection (it would hold a read snapshot)
    return total


def read_columns(conn: sqlite3.Connection, table: str, key: int, lo: int, hi: int,
                 want: frozenset[int] | None = None) -> Columns:
    """The buckets of series `key` starting in [lo, hi), column by column (what history reads).

    `want`: the value columns to decode (the others stay empty lists); default all.
    """
    kind, width = PACKED[table]
    ncols = len(value_cols(kind))
    out = Columns([], [[] for _ in range(ncols)], None)
    if hi <= lo:
        return out
    ps = period_s(table)
    first, last = key << SHIFT | lo // ps, key << SHIFT | (hi - 1) // ps
    counts: list[Vals | None] = []
    stored = conn.execute(f"SELECT id, b, cnt FROM {table} WHERE id >= ? AND id <= ? ORDER BY id",  # noqa: S608  # nosec B608
                          (first, last)).fetchall()
    for rowid, b, cnt in _with_head(conn, table, stored, first, last):
        base = (rowid & PMASK) * ps
        present, cols = decode_cols(kind, b, want, restore=False)
        starts = [base + i * width for i in present]
        i, j = 0, len(starts)
        if rowid in (first, last):
            while i < j and starts[i] < lo:
                i += 1
            while j > i and starts[j - 1] >= hi:
                j -= 1
        out.starts += starts[i:j]
        for dst, col in zip(out.cols, cols, strict=True):
            if col is not None:
                dst += col[i:j]
        if cnt is None:
            counts += [None] * (j - i)
        else:
            _, ccols = packed.decode(cnt, SLOTS, len(metrics(kind)))
            counts += list(zip(*ccols, strict=True))[i:j]
    if any(x is not None for x in counts):
        out.counts = counts
    restore_maxima(kind, out.cols)  # once over the whole range, not row by row
    return out


def first_bucket(conn: sqlite3.Connection, table: str, key: int) -> int | None:
    """The start of the series' first bucket in `table`, or None."""
    lo, hi = key_range(key)
    row = conn.execute(f"SELECT id, b FROM {table} WHERE id >= ? AND id < ? ORDER BY id LIMIT 1",  # noqa: S608  # nosec B608
                       (lo, hi)).fetchone()
    if row is None:
        row = conn.execute(f"SELECT id >> {HS}, b FROM {head(table)} WHERE id >= ? AND id < ? ORDER BY id LIMIT 1",  # noqa: S608  # nosec B608
                           (lo << HS, hi << HS)).fetchone()
    if row is None:
        return None
    _, width = PACKED[table]
    mask = packed.mask_of(row[1], SLOTS)
    slot = (mask & -mask).bit_length() - 1
    return int((row[0] & PMASK) * width * SLOTS + slot * width)
