"""Generate a throughput_history.db with N devices and D days of history, in bulk.

Written in the compact layout (schema 6, panfm/storage/compact.py) with the rollup tiers packed
twelve buckets a row (schema 7, panfm/storage/tiers.py). Tiers are filled the way
the clock leaves them after D days: raw samples for the last
`--raw-days`, 5-minute and 1-hour rollups (and the 30-minute grouping of the 5-minute tier)
for all D days. The last raw days are rolled up with
the product's own rollup SQL (storage_rollups.rollup_range); older rollup rows, whose raw rows
retention would have deleted, are synthesised directly. SQLite computes the values (a daily
triangle wave plus noise), so 100 devices x 90 days takes about a minute, not 90 days.

    .venv/bin/python bench/gen_history_db.py --devices 100 --days 90 --out bench/out/history.db
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import panfm.storage.compact as compact
import panfm.storage.pack_migrate as pack_migrate
import panfm.storage.rollups as storage_rollups
import panfm.storage.tiers as tiers
from panfm.storage.samples import SampleStore
from panfm.storage.schema import GROUPINGS, IFACE_METRICS, INT_METRICS, TIERS

# Typical level of each metric at the daily peak.
LEVELS = {
    "inbound_mbps": 400.0, "outbound_mbps": 250.0, "total_mbps": 650.0, "inbound_pps": 60000.0,
    "outbound_pps": 45000.0, "sessions_active": 80000, "sessions_tcp": 60000, "sessions_udp": 18000,
    "sessions_icmp": 200, "sessions_max": 262142, "sessions_utilization_pct": 30.0, "sessions_cps": 900,
    "sessions_kbps": 650000, "sessions_pps": 105000, "cpu_dataplane_pct": 35.0, "cpu_management_pct": 12.0,
    "memory_pct": 55.0, "packet_buffer_pct": 2.0, "packet_descriptor_pct": 1.0,
}
IF_LEVELS = {"in_bps": 1e8, "out_bps": 6e7, "in_pps": 15000.0, "out_pps": 11000.0, "errors_per_s": 0.2,
             "drops_per_s": 1.5}
NOISE = "((abs(random()) % 1000) / 1000.0)"


def _shape(tcol: str) -> str:
    """Daily triangle wave in [0.4, 1.0]: low at midnight UTC, high at noon (t in seconds)."""
    return f"(0.4 + 0.6 * (1.0 - abs(({tcol} % 86400) - 43200) / 43200.0))"


def _value(metric: str, level: float, tcol: str) -> str:
    expr = f"{level} * {_shape(tcol)} * (0.85 + 0.3 * {NOISE})"
    # In the stored unit (compact.SCALE), as SampleStore.write_cycle writes it.
    return f"CAST({expr} AS INTEGER)" if metric in INT_METRICS else compact.encode_sql(metric, expr)


def _rollup_values(metrics: dict[str, float], tcol: str) -> str:
    """Average, maximum and count (NULL: every sample had the metric) per metric, in stored units."""
    parts = []
    for m, level in metrics.items():
        avg = f"{level} * {_shape(tcol)} * (0.9 + 0.2 * {NOISE})"
        parts.append(f"{compact.encode_sql(m, avg)}, {compact.encode_sql(m, f'{avg} * (1.1 + 0.6 * {NOISE})')}, NULL")
    return ", ".join(parts)


def _series(conn: sqlite3.Connection, name: str, start: int, stop: int, step: int) -> None:
    conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
    conn.execute(f"CREATE TEMP TABLE {name} (x INTEGER PRIMARY KEY)")
    conn.execute(
        "WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + ? FROM s WHERE x + ? < ?) "
        f"INSERT INTO {name} SELECT x FROM s",
        (start, step, step, stop),
    )


def _pack(conn: sqlite3.Connection, src: str, table: str, key: str) -> None:
    """Pack the schema-6-shaped rows of temporary table `src` into packed `table`, series by series."""
    kind = tiers.kind_of(table)
    cols = ", ".join((*tiers.value_cols(kind), *(f"{m}_n" for m in tiers.metrics(kind))))
    for (k,) in conn.execute(f"SELECT DISTINCT {key} FROM {src}").fetchall():
        rows = conn.execute(f"SELECT {key}, bucket, {cols} FROM {src} WHERE {key} = ? ORDER BY bucket", (k,)).fetchall()
        conn.executemany(f"INSERT OR REPLACE INTO {table} (id, b, cnt) VALUES (?, ?, ?)",
                         pack_migrate._pack_rows(table, rows))


def generate(out: Path, devices: int, days: int, raw_days: int, interfaces: int, interval: int, now: float) -> None:
    """Write the database at `out` (replacing it)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    SampleStore.open(out).close()
    conn = sqlite3.connect(out, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # bulk load; the product's settings apply when the clock opens it
    end = int(now // 3600 * 3600)
    start = end - days * 86400
    raw_start = end - raw_days * 86400
    dev_ids = [f"dev-{i:04d}" for i in range(devices)]
    if_names = [f"ethernet1/{j + 1}" for j in range(interfaces)]
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE devs (id TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO devs VALUES (?)", [(d,) for d in dev_ids])
    conn.execute("CREATE TEMP TABLE ifs (name TEXT PRIMARY KEY)")
    conn.executemany("INSERT INTO ifs VALUES (?)", [(n,) for n in if_names])
    conn.execute("INSERT INTO ts_device (device_id) SELECT id FROM devs ORDER BY id")
    conn.execute("INSERT INTO ts_iface (dk, interface) SELECT k.dk, i.name FROM ts_device k, ifs i ORDER BY 1, 2")

    t0 = time.perf_counter()
    # Raw: the last raw_days at the collection interval: device rows in ms with jitter like real
    # arrivals, interface rows at their poll's whole second (schema 9: the jitter is under a second).
    _series(conn, "raw_t", raw_start, end, interval)
    dev_vals = ", ".join(_value(m, LEVELS[m], "t.x") for m in compact.DEV_STORED)
    conn.execute(
        f"INSERT INTO dev_raw (dk, ts, {', '.join(compact.DEV_STORED)}) "
        f"SELECT k.dk, t.x * 1000 + abs(random()) % 900, {dev_vals} FROM ts_device k, raw_t t ORDER BY 1, 2"
    )
    if_vals = ", ".join(_value(m, IF_LEVELS[m], "t.x") for m in IFACE_METRICS)
    conn.execute(
        f"INSERT INTO if_raw (ik, ts, {', '.join(IFACE_METRICS)}, counted) "
        f"SELECT i.ik, t.x, {if_vals}, 1 FROM ts_iface i, raw_t t ORDER BY 1, 2"
    )
    print(f"raw rows: {time.perf_counter() - t0:.1f} s", flush=True)

    # Rollups older than the raw window: synthesised; within it: computed from raw like the clock does.
    for tier, (dev_table, if_table, bucket) in TIERS.items():
        t1 = time.perf_counter()
        _series(conn, "bucket_t", start, raw_start, bucket)
        n = bucket // interval
        dev_levels = {m: LEVELS[m] for m in compact.DEV_STORED}
        dev_cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in compact.DEV_STORED)
        total_peak = f"{LEVELS['total_mbps']} * {_shape('t.x')} * (1.1 + 0.6 * {NOISE})"
        total_max = compact.encode_sql("total_mbps", total_peak)
        # Schema-6-shaped rows in temporary tables, then packed twelve buckets a row (schema 7).
        conn.execute("DROP TABLE IF EXISTS temp.syn_dev")
        conn.execute("DROP TABLE IF EXISTS temp.syn_if")
        conn.execute(f"CREATE TEMP TABLE syn_dev (dk INTEGER, bucket INTEGER, n INTEGER, {dev_cols}, total_mbps_max,"
                     " PRIMARY KEY (dk, bucket)) WITHOUT ROWID")
        conn.execute(
            f"INSERT INTO syn_dev (dk, bucket, n, {dev_cols}, total_mbps_max) "
            f"SELECT k.dk, t.x, {n}, {_rollup_values(dev_levels, 't.x')}, {total_max} FROM ts_device k, bucket_t t "
            "ORDER BY 1, 2"
        )
        if_cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in IFACE_METRICS)
        conn.execute(f"CREATE TEMP TABLE syn_if (ik INTEGER, bucket INTEGER, n INTEGER, {if_cols},"
                     " PRIMARY KEY (ik, bucket)) WITHOUT ROWID")
        conn.execute(
            f"INSERT INTO syn_if (ik, bucket, n, {if_cols}) "
            f"SELECT i.ik, t.x, {n}, {_rollup_values(IF_LEVELS, 't.x')} FROM ts_iface i, bucket_t t ORDER BY 1, 2"
        )
        _pack(conn, "syn_dev", compact.PHYSICAL[dev_table], "dk")
        _pack(conn, "syn_if", compact.PHYSICAL[if_table], "ik")
        storage_rollups.rollup_range(conn, tier, raw_start, end)
        if tier in GROUPINGS:  # the synthesised buckets too (rollup_range regrouped only its own range)
            storage_rollups.regroup_range(conn, tier, start, raw_start)
        conn.execute("INSERT OR REPLACE INTO rollup_marks VALUES (?, ?)", (tier, end))
        print(f"{tier} rollups: {time.perf_counter() - t1:.1f} s", flush=True)

    conn.executemany(
        "INSERT INTO device_status VALUES (?, 'up', ?, ?, NULL, 0)", [(d, end - 1.0, end - 1.0) for d in dev_ids]
    )
    conn.executemany(
        "INSERT INTO inventory VALUES (?, ?, ?)",
        [(d, end - 60.0, json.dumps({"hostname": d, "model": "PA-3220", "sw_version": "11.1.2"})) for d in dev_ids],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--raw-days", type=int, default=7)
    p.add_argument("--interfaces", type=int, default=4, help="counted interfaces per device")
    p.add_argument("--interval", type=int, default=30, help="collection interval, seconds")
    p.add_argument("--now", type=float, default=None, help="end of the history (epoch s; default: now)")
    p.add_argument("--out", type=Path, default=Path("bench/out/history.db"))
    a = p.parse_args()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    generate(a.out, a.devices, a.days, a.raw_days, a.interfaces, a.interval, a.now or time.time())
    size = a.out.stat().st_size
    print(f"wrote {a.out}: {size / 1e6:.0f} MB, {size / (a.devices * a.days):.0f} bytes per device-day "
          f"({a.devices} devices, {a.days} days, {a.interfaces} interfaces), {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
