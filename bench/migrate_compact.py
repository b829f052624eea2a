"""Time the sample database's pending migrations (schema 5 -> 6 compact, 6 -> 7 packed) the way the clock runs them.

    .venv/bin/python bench/migrate_compact.py --db bench/out/old/throughput_history.db

Opens the file with SampleStore.open (what the clock does at start), logs the migration's
progress lines, and prints the time, the peak RSS and the bytes of every table before and after
(`dbstat`). The file itself keeps its size (freed pages are reused by later writes; `VACUUM`
or a `db backup` copy gives the compact file), so the table bytes are the figure to read.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from panfm.storage.samples import SampleStore


def table_bytes(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall())
    finally:
        conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=Path, required=True)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    before = table_bytes(a.db)
    print(f"before: {sum(before.values()) / 1e6:,.0f} MB in tables; " +
          ", ".join(f"{k} {v / 1e6:,.0f} MB" for k, v in before.items() if v > 1e6), flush=True)
    t0 = time.perf_counter()
    SampleStore.open(a.db).close()
    took = time.perf_counter() - t0
    after = table_bytes(a.db)
    print(f"migration: {took:.0f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"after: {sum(after.values()) / 1e6:,.0f} MB in tables; " +
          ", ".join(f"{k} {v / 1e6:,.0f} MB" for k, v in after.items() if v > 1e6))


if __name__ == "__main__":
    main()
