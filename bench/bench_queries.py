"""Measure the sample database: bytes per device-day, cycle commit time, history and latest queries.

    .venv/bin/python bench/gen_history_db.py --devices 100 --days 90 --out bench/out/history.db
    .venv/bin/python bench/bench_queries.py --db bench/out/history.db

History and latest queries run against the generated database the way the web runs them:
a fresh read-only SampleReader per request. Commit times and bytes per device-day are
measured by writing cycles through SampleStore.write_cycle into fresh files in bench/out/.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import panfm.storage.queries as q
from panfm.models import CycleResult, DeviceSample, DeviceStatus, InterfaceSample
from panfm.storage.samples import SampleReader, SampleStore
from panfm.storage.schema import connect_reader


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def make_cycle(devices: int, interfaces: int, ts: float, rnd: random.Random) -> CycleResult:
    samples, ifs, statuses = [], [], []
    for d in range(devices):
        dev = f"dev-{d:04d}"
        inb, outb = rnd.uniform(100, 900), rnd.uniform(50, 500)
        samples.append(DeviceSample(
            dev, ts + rnd.random(), inb, outb, inb + outb, rnd.uniform(1e4, 9e4), rnd.uniform(1e4, 9e4),
            rnd.randint(1000, 90000), rnd.randint(800, 70000), rnd.randint(100, 20000), rnd.randint(0, 300), 262142,
            rnd.uniform(0, 40), rnd.randint(0, 2000), rnd.randint(0, 900000), rnd.randint(0, 120000),
            rnd.uniform(0, 90), rnd.uniform(0, 40), rnd.uniform(30, 80), rnd.uniform(0, 5), rnd.uniform(0, 3),
        ))
        for i in range(interfaces):
            ifs.append(InterfaceSample(dev, f"ethernet1/{i + 1}", ts + rnd.random(), rnd.uniform(1e6, 1e9),
                                       rnd.uniform(1e6, 1e9), rnd.uniform(1e3, 1e5), rnd.uniform(1e3, 1e5),
                                       rnd.choice((0.0, 0.0, 0.1)), rnd.choice((0.0, 0.5)), True))
        statuses.append(DeviceStatus(dev, "up", ts, ts))
    return CycleResult(ts, ts + 2.0, tuple(samples), tuple(ifs), (), tuple(statuses))


def bench_commits(out_dir: Path, devices: int, interfaces: int, cycles: int) -> dict[str, float]:
    """Time write_cycle (one transaction for all devices) on a fresh file, after a warm-up."""
    path = out_dir / f"cycles-{devices}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rnd = random.Random(devices)
    t = 1_767_225_600.0
    times = []
    with SampleStore.open(path) as store:
        for k in range(10 + cycles):
            c = make_cycle(devices, interfaces, t + 30 * k, rnd)  # 10 cycles = one 5-minute bucket closing
            t0 = time.perf_counter()
            store.write_cycle(c, clock_stats={"total_executions": k})
            if k >= 10:
                times.append(time.perf_counter() - t0)
    return {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * pct(times, 95), "max_ms": 1000 * max(times)}


def bench_bytes_per_device_day(out_dir: Path, devices: int, interfaces: int) -> float:
    """Write one day of 30 s cycles through write_cycle; return file bytes per device-day."""
    path = out_dir / "one-day.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rnd = random.Random(1)
    t = 1_767_225_600.0
    with SampleStore.open(path) as store:
        empty = path.stat().st_size
        for k in range(2880 + 1):
            store.write_cycle(make_cycle(devices, interfaces, t + 30 * k, rnd))
        store.checkpoint()
    return (path.stat().st_size - empty) / devices


def table_sizes(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        return {r[0]: r[1] for r in rows}
    except sqlite3.OperationalError:  # SQLite built without the dbstat table
        return {}
    finally:
        conn.close()


def bench_history(db: Path, hours: int, runs: int, now: float, devices: list[str]) -> tuple[dict[str, float], str]:
    times, label = [], ""
    rnd = random.Random(hours)
    for _ in range(runs):
        dev = rnd.choice(devices)
        t0 = time.perf_counter()
        with SampleReader.open(db) as r:
            h = r.history(dev, now - hours * 3600, now)
        times.append(time.perf_counter() - t0)
        label = f"{h.tier}/{h.bucket_s}s, {len(h.points)} points"
    return {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * pct(times, 95)}, label


def bench_history_on_the_fly(db: Path, hours: int, runs: int, now: float, devices: list[str]) -> dict[str, float]:
    """The same history read without the materialised 30-minute groups (what keeping them saves)."""
    times = []
    rnd = random.Random(hours)
    for _ in range(runs):
        dev = rnd.choice(devices)
        t0 = time.perf_counter()
        conn = connect_reader(db)
        try:
            q.history(conn, dataclasses.replace(q.device_series(dev), group_tables={}), now - hours * 3600, now)
        finally:
            conn.close()
        times.append(time.perf_counter() - t0)
    return {"p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * pct(times, 95)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=Path, default=Path("bench/out/history.db"))
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--interfaces", type=int, default=4)
    p.add_argument("--cycles", type=int, default=30)
    a = p.parse_args()
    out_dir = a.db.parent
    size = a.db.stat().st_size
    with SampleReader.open(a.db) as r:
        latest = r.latest_all()
    devices = sorted(latest)
    now = max(s.ts for s in latest.values())
    print(f"database: {a.db} {size / 1e6:.0f} MB, {len(devices)} devices")
    for name, n in table_sizes(a.db).items():
        if n > 1e6:
            print(f"  {name:<22} {n / 1e6:8.0f} MB")

    lat = []
    for _ in range(a.runs // 5):
        t0 = time.perf_counter()
        with SampleReader.open(a.db) as r:
            r.latest_all()
        lat.append(time.perf_counter() - t0)
    print(f"latest_all ({len(devices)} devices, open+query+close): p50 {1000 * statistics.median(lat):.1f} ms, "
          f"p95 {1000 * pct(lat, 95):.1f} ms")
    for hours, name in ((24, "24h"), (7 * 24, "7d"), (30 * 24, "30d"), (90 * 24, "90d")):
        res, label = bench_history(a.db, hours, a.runs, now, devices)
        print(f"history {name:>3} ({label}): p50 {res['p50_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms")
    res = bench_history_on_the_fly(a.db, 30 * 24, a.runs, now, devices)
    print(f"history 30d grouped on the fly (without the 30-minute groups): p50 {res['p50_ms']:.1f} ms, "
          f"p95 {res['p95_ms']:.1f} ms")

    for n in (100, 1000):
        res = bench_commits(out_dir, n, a.interfaces, a.cycles)
        print(f"write_cycle {n} devices x {a.interfaces} interfaces: p50 {res['p50_ms']:.0f} ms, "
              f"p95 {res['p95_ms']:.0f} ms, max {res['max_ms']:.0f} ms")
    bpd = bench_bytes_per_device_day(out_dir, 10, a.interfaces)
    print(f"bytes per device-day as written by write_cycle (30 s, {a.interfaces} interfaces, raw + rollups): "
          f"{bpd / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
