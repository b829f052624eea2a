"""The packed rollup tables of the sample database (schema version 7): twelve buckets a row.

Each rollup tier and grouping (`dev_5m`, `if_5m`, `dev_1h`, `if_1h`, `dev_5m_g30m`,
`if_5m_g30m`) holds one row per series and period of twelve buckets (an hour of 5-minute
buckets, six hours of 30-minute groups, twelve hours of 1-hour buckets), in a rowid table whose
rowid is `key << 24 | period index` (no key column is stored, and a range of one series is one
contiguous stretch of the B-tree). `b` holds the buckets' values column by column
(`packed.py`): n, then each metric's average and maximum in its stored unit (`compact.SCALE`),
then the devices' `total_mbps_max`. `cnt` holds each metric's own sample count, only when some
bucket of the period has a count other than the default (its `n` when it has an average, 0
when not); NULL otherwise.

The open period of each tier is kept unpacked in `<table>_head` (schema 8, `tier_head.py`):
the readers (`tier_rows.py`) read both. Python, not SQL, reads and writes these rows: a
`Bucket` is (start s, values, counts or None).
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from typing import Any

import panfm.storage.compact as c
import panfm.storage.packed as packed
from panfm.storage.series_def import IFACE_METRICS

SLOTS = 12  # buckets per row
SHIFT = 24  # rowid = key << SHIFT | period index
PMASK = (1 << SHIFT) - 1
HS = 4  # head rowid = packed rowid << HS | slot (tier_head.py)

# physical table -> (kind, bucket width s)
PACKED: dict[str, tuple[str, int]] = {
    "dev_5m": ("dev", 300), "if_5m": ("if", 300),
    "dev_1h": ("dev", 3600), "if_1h": ("if", 3600),
    "dev_5m_g30m": ("dev", 1800), "if_5m_g30m": ("if", 1800),
}

Vals = tuple[int | None, ...]
Bucket = tuple[int, Vals, Vals | None]  # (start s, value columns, per-metric counts or None)


def metrics(kind: str) -> tuple[str, ...]:
    """The stored metrics of a kind of series ("dev" or "if")."""
    return c.DEV_STORED if kind == "dev" else IFACE_METRICS


@cache
def value_cols(kind: str) -> tuple[str, ...]:
    """The value columns of a packed row: n, each metric's avg and max (devices: total_mbps_max)."""
    cols = ("n", *(f"{m}_{x}" for m in metrics(kind) for x in ("avg", "max")))
    return (*cols, "total_mbps_max") if kind == "dev" else cols


@cache
def col_index(kind: str) -> dict[str, int]:
    """Column name -> index in a bucket's values."""
    return {name: i for i, name in enumerate(value_cols(kind))}


def head(table: str) -> str:
    """The head table of a packed table (its open period, one row per bucket)."""
    return f"{table}_head"


def kind_of(table: str) -> str:
    return PACKED[table][0]


def period_s(table: str) -> int:
    return PACKED[table][1] * SLOTS


def key_range(key: int) -> tuple[int, int]:
    """The rowids of one series: [lo, hi)."""
    return key << SHIFT, (key + 1) << SHIFT


# --------------------------------------------------------------------------------------
# Encoding a period
# --------------------------------------------------------------------------------------


def default_counts(kind: str, vals: Vals) -> Vals:
    """Each metric's count when none is stored: the bucket's n if it has an average, else 0."""
    n = vals[0]
    return tuple(0 if vals[1 + 2 * i] is None else n for i in range(len(metrics(kind))))


def canonical_counts(kind: str, vals: Vals, counts: Sequence[int | None]) -> Vals | None:
    """None when `counts` are the defaults (nothing to store), else the counts (None read as 0)."""
    full = tuple(0 if x is None else x for x in counts)
    return None if full == default_counts(kind, vals) else full


def encode_period(table: str, p: int, buckets: Iterable[Bucket]) -> tuple[bytes, bytes | None]:
    """Pack the buckets of period `p` (any order, one per start) into the row's (b, cnt)."""
    kind, width = PACKED[table]
    base = p * width * SLOTS
    rows = sorted(buckets, key=lambda x: x[0])
    present = [(start - base) // width for start, _, _ in rows]
    ncols = len(value_cols(kind))
    columns = [[v[i] for _, v, _ in rows] for i in range(ncols)]
    for i in range(len(metrics(kind))):  # each maximum stored as its excess over the average
        avg, top = columns[1 + 2 * i], columns[2 + 2 * i]
        columns[2 + 2 * i] = [t if a is None or t is None else t - a for a, t in zip(avg, top, strict=True)]
    b = packed.encode(SLOTS, present, columns)
    if all(cn is None for _, _, cn in rows):
        return b, None
    counts = [cn if cn is not None else default_counts(kind, v) for _, v, cn in rows]
    cnt = packed.encode(SLOTS, present, [[x[i] for x in counts] for i in range(len(metrics(kind)))])
    return b, cnt


def encode_bucket(table: str, slot: int, vals: Vals, counts: Vals | None) -> tuple[bytes, bytes | None]:
    """`encode_period` of one bucket at `slot` (the head rows: a fast path, the same format)."""
    v = list(vals)
    for i in range(len(metrics(PACKED[table][0]))):
        a, t = v[1 + 2 * i], v[2 + 2 * i]
        if a is not None and t is not None:
            v[2 + 2 * i] = t - a
    return packed.encode_one(SLOTS, slot, v), None if counts is None else packed.encode_one(SLOTS, slot, counts)


@lru_cache(maxsize=256)
def _with_averages(kind: str, want: frozenset[int] | None) -> frozenset[int] | None:
    """The columns to decode for `want`: a maximum needs its average (it is stored as the excess)."""
    if want is None:
        return None
    return want | {1 + 2 * i for i in range(len(metrics(kind))) if 2 + 2 * i in want}


def nones(xs: Sequence[Any]) -> list[int]:
    """The positions of None in xs (found by list.index, a C scan, not a Python loop)."""
    out: list[int] = []
    if None not in xs:
        return out
    seq = xs if isinstance(xs, list) else list(xs)
    i = -1
    try:
        while True:
            i = seq.index(None, i + 1)
            out.append(i)
    except ValueError:
        return out


def zeroed(xs: Sequence[Any], at: list[int]) -> list[Any]:
    """xs with 0 at the positions `at`."""
    out = list(xs)
    for i in at:
        out[i] = 0
    return out


def restore_maxima(kind: str, cols: list[Any]) -> None:
    """Each maximum column from its stored excess over the average column (in place)."""
    for i in range(len(metrics(kind))):
        avg, top = cols[1 + 2 * i], cols[2 + 2 * i]
        if avg is None or top is None or not top:
            continue
        pa, pt = nones(avg), nones(top)
        if not pa and not pt:
            cols[2 + 2 * i] = list(map(operator.add, avg, top))
            continue
        out = list(map(operator.add, zeroed(avg, pa), zeroed(top, pt)))
        for j in pa:  # no average: the maximum was stored as it is
            out[j] = top[j]
        for j in pt:
            out[j] = None
        cols[2 + 2 * i] = out


def decode_cols(kind: str, b: bytes, want: frozenset[int] | None = None,
                restore: bool = True) -> tuple[list[int], list[Any]]:
    """A packed row's present slots and value columns (maxima restored from their excess).

    `want`: the columns to decode (None in the others; a maximum brings its average); default
    all. `restore=False` leaves the maxima as stored excesses (the caller restores them once).
    """
    present, cols = packed.decode(b, SLOTS, len(value_cols(kind)), _with_averages(kind, want))
    if restore:
        restore_maxima(kind, cols)
    return present, cols


def decode_row(table: str, rowid: int, b: bytes, cnt: bytes | None) -> list[Bucket]:
    """The buckets of one packed row, in time order."""
    kind, width = PACKED[table]
    base = (rowid & PMASK) * width * SLOTS
    present, cols = decode_cols(kind, b)
    vals = list(zip(*cols, strict=True)) if cols else [() for _ in present]
    if cnt is None:
        return [(base + i * width, v, None) for i, v in zip(present, vals, strict=True)]
    _, ccols = packed.decode(cnt, SLOTS, len(metrics(kind)))
    counts = list(zip(*ccols, strict=True))
    return [(base + i * width, v, canonical_counts(kind, v, cn))
            for i, v, cn in zip(present, vals, counts, strict=True)]


def bucket_count(b: bytes) -> int:
    """How many buckets a packed row holds (its mask's bits)."""
    return packed.mask_of(b, SLOTS).bit_count()


# --------------------------------------------------------------------------------------
# Writing rows (reading them: `tier_rows.py`)
# --------------------------------------------------------------------------------------


def write_packed(conn: sqlite3.Connection, table: str, buckets: dict[int, list[Bucket]]) -> None:
    """Store buckets per series key in packed rows, replacing stored buckets of the same start.

    The clock writes through `tier_head.write` (the open period stays unpacked); this is for
    closed periods (late data, backfills, migrations).
    """
    ps = period_s(table)
    for key, rows in buckets.items():
        periods: dict[int, dict[int, Bucket]] = {}
        for r in rows:
            periods.setdefault(r[0] // ps, {})[r[0]] = r
        # The stored rows of those periods in one range read (a backfill writes many periods).
        stored = {int(r[0]): (r[1], r[2]) for r in conn.execute(
            f"SELECT id, b, cnt FROM {table} WHERE id >= ? AND id <= ?",  # noqa: S608  # nosec B608
            (key << SHIFT | min(periods), key << SHIFT | max(periods)))}
        out = []
        for p, new in periods.items():
            rowid = key << SHIFT | p
            old = stored.get(rowid)
            merged = {r[0]: r for r in decode_row(table, rowid, old[0], old[1])} if old else {}
            merged.update(new)
            out.append((rowid, *encode_period(table, p, merged.values())))
        conn.executemany(f"INSERT OR REPLACE INTO {table} (id, b, cnt) VALUES (?, ?, ?)", out)  # noqa: S608  # nosec B608


def _delete_head_before(conn: sqlite3.Connection, table: str, key: int, cutoff: int) -> int:
    """Delete the series' head buckets starting before `cutoff` (rarely any: the head is recent)."""
    _, width = PACKED[table]
    ps = width * SLOTS
    lo, _ = key_range(key)
    first, last = lo << HS, (lo | cutoff // ps) << HS | ((1 << HS) - 1)
    gone = [(h,) for (h,) in conn.execute(f"SELECT id FROM {head(table)} WHERE id >= ? AND id <= ?",  # noqa: S608  # nosec B608
                                          (first, last))
            if ((h >> HS) & PMASK) * ps + (h & ((1 << HS) - 1)) * width < cutoff]
    conn.executemany(f"DELETE FROM {head(table)} WHERE id = ?", gone)  # noqa: S608  # nosec B608
    return len(gone)


def delete_before(conn: sqlite3.Connection, table: str, key: int, cutoff: int, limit: int) -> tuple[int, int, bool]:
    """Delete the series' buckets starting before `cutoff`, at most `limit` whole rows.

    Returns (buckets deleted, rows deleted, done: nothing before the cutoff is left).
    """
    ps = period_s(table)
    lo, _ = key_range(key)
    whole_below = lo | cutoff // ps  # rows of periods ending at or before the cutoff
    rows = conn.execute(f"SELECT id, b FROM {table} WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",  # noqa: S608  # nosec B608
                        (lo, whole_below, limit)).fetchall()
    deleted = sum(bucket_count(b) for _, b in rows)
    deleted += _delete_head_before(conn, table, key, cutoff)
    if rows:
        conn.execute(f"DELETE FROM {table} WHERE id >= ? AND id <= ?", (lo, rows[-1][0]))  # noqa: S608  # nosec B608
    if len(rows) == limit:
        return deleted, len(rows), False
    if cutoff % ps:  # the period holding the cutoff: drop its buckets before it
        old = conn.execute(f"SELECT b, cnt FROM {table} WHERE id = ?", (whole_below,)).fetchone()  # noqa: S608  # nosec B608
        if old is not None:
            kept = [r for r in decode_row(table, whole_below, old[0], old[1]) if r[0] >= cutoff]
            deleted += bucket_count(old[0]) - len(kept)
            if not kept:
                conn.execute(f"DELETE FROM {table} WHERE id = ?", (whole_below,))  # noqa: S608  # nosec B608
            elif len(kept) < bucket_count(old[0]):
                b, cnt = encode_period(table, cutoff // ps, kept)
                conn.execute(f"UPDATE {table} SET b = ?, cnt = ? WHERE id = ?", (b, cnt, whole_below))  # noqa: S608  # nosec B608
    return deleted, len(rows), True


# --------------------------------------------------------------------------------------
# Grouping buckets (materialised groups, history, summaries)
# --------------------------------------------------------------------------------------


def weight(kind: str, v: Vals, cn: Vals | None, i: int) -> int:
    """How many samples bucket values `v` of metric number `i` stand for."""
    if cn is not None:
        return int(cn[i] or 0)
    return 0 if v[1 + 2 * i] is None else int(v[0] or 0)


def group(kind: str, start: int, rows: Sequence[Bucket]) -> Bucket:
    """One bucket standing for `rows`: summed n, averages weighted by each metric's count, maxima."""
    n = sum(int(v[0] or 0) for _, v, _ in rows)
    vals: list[int | None] = [n]
    counts: list[int] = []
    for i in range(len(metrics(kind))):
        num = 0
        den = 0
        top: int | None = None
        for _, v, cn in rows:
            w = weight(kind, v, cn, i)
            a, mx = v[1 + 2 * i], v[2 + 2 * i]
            if a is not None:
                num += a * w
                den += w
            if mx is not None and (top is None or mx > top):
                top = mx
        vals.append(None if den == 0 else c.round_half_away(num / den))
        vals.append(top)
        counts.append(den)
    if kind == "dev":
        tops = [v[-1] for _, v, _ in rows if v[-1] is not None]
        vals.append(max(tops) if tops else None)
    t = tuple(vals)
    return start, t, canonical_counts(kind, t, counts)
