"""History read times of one database, with and without the 30-minute groups (A/B between layouts).

    .venv/bin/python bench/history_ab.py --db bench/out/webdata/throughput_history.db

Uses only names both layouts have (queries.history, device_series, connect_reader), so the same
file run from an older checkout times the old layout on its own database under the same load:

    (cd ../old-checkout && .venv/bin/python /path/to/bench/history_ab.py --db old.db)

Each request opens a read-only connection, as the web does; 60 requests per figure. Besides wall
time it prints the process CPU time per request (SQLite runs in the process), which a busy
machine disturbs far less than wall time: compare layouts by that one under load.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the checkout it is run from: old or new layout

import panfm.storage.queries as q
from panfm.storage.samples import SampleReader
from panfm.storage.schema import connect_reader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=60)
    a = ap.parse_args()
    with SampleReader.open(a.db) as r:
        latest = r.latest_all()
    devices = sorted(latest)
    now = max(s.ts for s in latest.values())

    def run(hours: int, grouped: bool = True) -> str:
        rnd = random.Random(hours)
        times, cpu = [], []
        for _ in range(a.runs):
            dev = rnd.choice(devices)
            t0, c0 = time.perf_counter(), time.process_time()
            conn = connect_reader(a.db)
            try:
                s = q.device_series(dev)
                h = q.history(conn, s if grouped else dataclasses.replace(s, group_tables={}), now - hours * 3600, now)
            finally:
                conn.close()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        times.sort()
        return (f"{h.tier}/{h.bucket_s}s {len(h.points)} points: p50 {1000 * statistics.median(times):.1f} ms, "
                f"p95 {1000 * times[round(0.95 * (len(times) - 1))]:.1f} ms, "
                f"CPU p50 {1000 * statistics.median(cpu):.1f} ms")

    print("load", Path("/proc/loadavg").read_text().split()[0])
    for hours, name in ((24, "24h"), (168, "7d"), (720, "30d"), (2160, "90d")):
        print(f"history {name}: {run(hours)}", flush=True)
    print(f"history 30d without the 30-minute groups: {run(720, grouped=False)}")
    print("load", Path("/proc/loadavg").read_text().split()[0])


if __name__ == "__main__":
    main()
