"""The newest-sample reads of the PostgreSQL reader, timed and explained (docs/benchmarks.md, S12).

    .venv/bin/python bench/pg_latest.py [--devices 500] [--days 2]

Its own PostgreSQL 15, filled as `bench/bench_pg_web.py` fills it (1 day of raw 30-s rows), then
100 calls of the old join form and of `pg_reader.LATEST_SQL` (p50 / p95 ms), `latest_all`'s
lateral form, and the plan of `LATEST_SQL`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import bench_pg_web  # noqa: E402
import psycopg  # noqa: E402
from helpers.postgres import PgServer  # noqa: E402

from panfm.storage.pg_reader import LATEST_SQL  # noqa: E402

OLD = ("SELECT s.* FROM ts_device d JOIN device_samples s ON s.dk = d.dk WHERE d.device_id = %s"
       " ORDER BY s.slot DESC LIMIT 1")
LATEST_ALL = ("SELECT d.device_id, s.* FROM ts_device d CROSS JOIN LATERAL (SELECT * FROM device_samples x"
              " WHERE x.dk = d.dk ORDER BY x.slot DESC LIMIT 1) s")


def timed(conn: psycopg.Connection, sql: str, params, n: int) -> tuple[float, float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute(sql, params(i)).fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return round(statistics.median(times), 3), round(times[int(n * 0.95)], 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--days", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="panfm-pg-latest-"))
    server = PgServer(work / "pg")
    try:
        url = server.fresh_database("bench")
        bench_pg_web.fill(url, args.devices, args.days, 1, work / "web")
        one = lambda i: (f"bench-{(i * 7) % args.devices:04d}",)  # noqa: E731
        with psycopg.connect(url, autocommit=True) as conn:
            print("old join form  p50 / p95 ms:", timed(conn, OLD, one, 100))
            print("LATEST_SQL     p50 / p95 ms:", timed(conn, LATEST_SQL.replace("?", "%s"), one, 100))
            print("latest_all     p50 / p95 ms:", timed(conn, LATEST_ALL, lambda i: (), 5))
            for (line,) in conn.execute("EXPLAIN ANALYZE " + LATEST_SQL.replace("?", "%s"), one(0)).fetchall():
                print(line)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
