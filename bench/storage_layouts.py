"""Bytes of the rollup tiers in candidate layouts, from the rows of an existing sample database.

    .venv/bin/python bench/storage_layouts.py --db bench/out/history.db

Reads the rollup tables of a schema-6 database (`dev_5m`, `if_5m`, `dev_1h`, `if_1h`, the
30-minute groups; a file written by `bench/gen_history_db.py`, the demo's backfill or a real
clock) and writes the same buckets into a temporary file in each candidate layout, then
reports each table's pages (`dbstat`, after VACUUM) per device-day (devices x the days the
5-minute tier spans) and the CPU to decode one packed row:

- `rows6`: schema 6 as is (one row per series and bucket, avg, max and a count per metric);
- `counts`: one row per bucket, the bucket as an index (start / width), the per-metric counts
  in one nullable BLOB (NULL when every metric had every sample) instead of one column each;
- `packed`: one row per series and twelve buckets (an hour of 5-minute buckets, 12 hours of
  1-hour buckets, 6 hours of 30-minute groups), a rowid table keyed by (key << 24 | period),
  the period's buckets column by column in one BLOB
  (`panfm/storage/packed.py`: per column a frame of reference or deltas in as few bytes as
  the column needs; `tiers.encode_period`: each maximum as its excess over the average), the
  per-metric counts in a second nullable BLOB;
(An earlier packed format with per-column varints and deltas, optionally deflated, is in
docs/benchmarks.md: a few per cent smaller, three times slower to decode.)
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import panfm.storage.compact as c  # noqa: E402
import panfm.storage.packed as packed  # noqa: E402
import panfm.storage.tiers as tiers  # noqa: E402
from panfm.storage.series_def import IFACE_METRICS  # noqa: E402

# table -> (key column, bucket width s)
TABLES = {t: ("dk" if kind == "dev" else "ik", width) for t, (kind, width) in tiers.PACKED.items()}


def metrics(table: str) -> tuple[str, ...]:
    return c.DEV_STORED if table.startswith("dev") else IFACE_METRICS


def value_cols(table: str) -> list[str]:
    cols = ["n"] + [f"{m}_{k}" for m in metrics(table) for k in ("avg", "max")]
    return cols + (["total_mbps_max"] if table.startswith("dev") else [])


def count_cols(table: str) -> list[str]:
    return [f"{m}_n" for m in metrics(table)]


def build(src: sqlite3.Connection, dst: sqlite3.Connection, layout: str, since: int = 0,
          until: int = 1 << 62) -> None:
    for table, (key, width) in TABLES.items():
        if not src.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            continue
        vcols, ccols = value_cols(table), count_cols(table)
        kind = tiers.kind_of(table)
        rows = src.execute(f"SELECT {key}, bucket, {', '.join(vcols)}, {', '.join(ccols)} FROM {table} "
                           f"WHERE bucket >= ? AND bucket < ? ORDER BY {key}, bucket", (since, until)).fetchall()
        if layout == "rows6":
            cols = [key, "bucket", *vcols, *ccols]
            dst.execute(f"CREATE TABLE {table} ({', '.join(f'{x} INTEGER' for x in cols)}, "
                        f"PRIMARY KEY ({key}, bucket)) WITHOUT ROWID")
            dst.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", rows)
        elif layout == "counts":
            cols = [key, "b", *vcols, "cnt"]
            dst.execute(f"CREATE TABLE {table} ({', '.join(f'{x}' for x in cols)}, "
                        f"PRIMARY KEY ({key}, b)) WITHOUT ROWID")
            out = []
            for r in rows:
                cnts = r[2 + len(vcols):]
                blob = None if all(x is None for x in cnts) else packed.encode(1, [0], [[x] for x in cnts])
                out.append((r[0], r[1] // width, *r[2:2 + len(vcols)], blob))
            dst.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", out)
        else:
            # A rowid table keyed by (series key << 24 | period index): no key columns stored, and a
            # row up to ~4 KB stays on its page (a WITHOUT ROWID row spills past ~1 KB).
            dst.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, b BLOB NOT NULL, cnt BLOB)")
            ps = tiers.period_s(table)
            periods: dict[tuple[int, int], list[tiers.Bucket]] = defaultdict(list)
            nv = len(vcols)
            for r in rows:
                v = tuple(r[2:2 + nv])
                defaults = tiers.default_counts(kind, v)
                counts = [d if x is None else x for x, d in zip(r[2 + nv:], defaults, strict=True)]
                periods[(r[0], r[1] // ps)].append((r[1], v, tiers.canonical_counts(kind, v, counts)))
            out = [(k << tiers.SHIFT | p, *tiers.encode_period(table, p, bs))
                   for (k, p), bs in periods.items()]
            dst.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", out)
    dst.commit()
    dst.execute("VACUUM")


def decode_cost(dst: sqlite3.Connection, table: str) -> float:
    """Microseconds of CPU to decode one packed row of `table` (all its columns)."""
    rows = dst.execute(f"SELECT id, b, cnt FROM {table} LIMIT 2000").fetchall()
    if not rows:
        return 0.0
    t0 = time.process_time()
    for r in rows:
        tiers.decode_row(table, *r)
    blobs = rows
    return (time.process_time() - t0) / len(blobs) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True, help="a schema-6 sample database")
    ap.add_argument("--hours-of-last-day", type=int, default=0,
                    help="only the rollups of the first HOURS (a multiple of 12) after the last midnight (UTC) "
                         "of the data: the demo backfill's newest day is sampled every 60 s, older days every 5 min")
    a = ap.parse_args()
    src = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    devices = src.execute("SELECT count(DISTINCT dk) FROM dev_5m").fetchone()[0]
    lo, hi = src.execute("SELECT min(bucket), max(bucket) FROM dev_5m").fetchone()
    since, until = 0, 1 << 62
    if a.hours_of_last_day:
        since = hi // 86400 * 86400  # whole periods of every table (1 h, 6 h, 12 h)
        until = since + a.hours_of_last_day * 3600
        lo, hi = since, until - 300
    ifaces = src.execute("SELECT count(DISTINCT ik) FROM if_5m").fetchone()[0] / max(1, devices)
    device_days = devices * (hi + 300 - lo) / 86400
    print(f"{a.db}: {devices} devices, {ifaces:.1f} interfaces each, {device_days / devices:.1f} days "
          f"of 5-minute rows")
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("rows6", "counts", "packed"):
            dst = sqlite3.connect(Path(tmp) / f"{layout}.db")
            build(src, dst, layout, since, until)
            sizes = dict(dst.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
            parts = {t: sizes.get(t, 0) / device_days / 1000 for t in TABLES}
            cost = ""
            if layout.startswith("packed"):
                cost = "; decode µs/row: " + ", ".join(f"{t} {decode_cost(dst, t):.0f}" for t in ("dev_5m", "if_5m"))
            print(f"{layout:12} {sum(parts.values()):7.1f} KB per device-day of rollups: "
                  + ", ".join(f"{t} {v:.1f}" for t, v in parts.items()) + cost)
            dst.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
