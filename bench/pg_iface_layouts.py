"""Interface raw rows on PostgreSQL: one row per interface-slot against packed layouts (design measurement).

    .venv/bin/python bench/pg_iface_layouts.py [--devices 333] [--ifaces 15] [--cycles 30] [--days 1]

Its own PostgreSQL 15 (tests/helpers/postgres.py). For each layout, per cycle, one clock's share
of S8 (DEVICES devices x IFACES interfaces) goes the way the writer sends it: binary COPY into a
temporary staging table, then one `INSERT ... SELECT` into the day-partitioned table, in one
transaction; the time of the whole transaction is taken (client and server). Then each table is
filled server-side with DAYS of 30 s slots for 20 devices and one interface's raw day is read
(the 24 h chart's query) and its newest sample (the interfaces table), 40 times each.

Layouts:
- `rows`: today's, one row per interface and slot, key (ik, slot).
- `packed`: one row per device and slot holding its interfaces' values as arrays (iks[],
  off_ms[], one array per metric), key (dk, slot).
- `hour`: one row per interface and hour, the slot's values appended to arrays (an UPDATE per
  interface after the hour's first slot: the upsert `ON CONFLICT DO UPDATE SET x = x || ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import psycopg  # noqa: E402
from helpers.postgres import PgServer  # noqa: E402

DAY = 86400
METRICS = ("in_bps", "out_bps", "in_pps", "out_pps", "errors_per_s", "drops_per_s")


def _dist(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=20)
    return {"p50": round(statistics.median(values), 2), "p95": round(q[18], 2)}


DDL = {
    "rows": [
        "CREATE TABLE rows_t (ik INTEGER NOT NULL, slot BIGINT NOT NULL, off_ms INTEGER NOT NULL, in_bps BIGINT,"
        " out_bps BIGINT, in_pps REAL, out_pps REAL, errors_per_s REAL, drops_per_s REAL, counted BOOLEAN NOT NULL,"
        " approx BOOLEAN, PRIMARY KEY (ik, slot)) PARTITION BY RANGE (slot)",
        "CREATE INDEX ON rows_t USING brin (slot)",
        "CREATE TEMP TABLE rows_s (ik INTEGER, slot BIGINT, off_ms INTEGER, in_bps BIGINT, out_bps BIGINT,"
        " in_pps REAL, out_pps REAL, errors_per_s REAL, drops_per_s REAL, counted BOOLEAN, approx BOOLEAN)"
        " ON COMMIT DELETE ROWS",
    ],
    "packed": [
        "CREATE TABLE packed_t (dk INTEGER NOT NULL, slot BIGINT NOT NULL, iks INTEGER[] NOT NULL,"
        " off_ms INTEGER[] NOT NULL, in_bps BIGINT[], out_bps BIGINT[], in_pps REAL[], out_pps REAL[],"
        " errors_per_s REAL[], drops_per_s REAL[], counted BOOLEAN[] NOT NULL, approx BOOLEAN[],"
        " PRIMARY KEY (dk, slot)) PARTITION BY RANGE (slot)",
        "CREATE INDEX ON packed_t USING brin (slot)",
        "CREATE TEMP TABLE packed_s (dk INTEGER, slot BIGINT, iks INTEGER[], off_ms INTEGER[], in_bps BIGINT[],"
        " out_bps BIGINT[], in_pps REAL[], out_pps REAL[], errors_per_s REAL[], drops_per_s REAL[],"
        " counted BOOLEAN[], approx BOOLEAN[]) ON COMMIT DELETE ROWS",
    ],
    "packsrv": [
        "CREATE TABLE packsrv_t (LIKE packed_t) PARTITION BY RANGE (slot)",
        "ALTER TABLE packsrv_t ADD PRIMARY KEY (dk, slot)",
        "CREATE INDEX ON packsrv_t USING brin (slot)",
        "CREATE TEMP TABLE packsrv_s (dk INTEGER, ik INTEGER, slot BIGINT, off_ms INTEGER, in_bps BIGINT,"
        " out_bps BIGINT, in_pps REAL, out_pps REAL, errors_per_s REAL, drops_per_s REAL, counted BOOLEAN,"
        " approx BOOLEAN) ON COMMIT DELETE ROWS",
    ],
    "hour": [
        "CREATE TABLE hour_t (ik INTEGER NOT NULL, hour BIGINT NOT NULL, offs INTEGER[] NOT NULL, in_bps BIGINT[],"
        " out_bps BIGINT[], in_pps REAL[], out_pps REAL[], errors_per_s REAL[], drops_per_s REAL[],"
        " counted BOOLEAN[], approx BOOLEAN[], PRIMARY KEY (ik, hour)) PARTITION BY RANGE (hour)",
        "CREATE TEMP TABLE hour_s (ik INTEGER, hour BIGINT, offs INTEGER, in_bps BIGINT, out_bps BIGINT,"
        " in_pps REAL, out_pps REAL, errors_per_s REAL, drops_per_s REAL, counted BOOLEAN, approx BOOLEAN)"
        " ON COMMIT DELETE ROWS",
    ],
}
TYPES = {
    "rows": ["int4", "int8", "int4", "int8", "int8", "float4", "float4", "float4", "float4", "bool", "bool"],
    "packed": ["int4", "int8", "int4[]", "int4[]", "int8[]", "int8[]", "float4[]", "float4[]", "float4[]",
               "float4[]", "bool[]", "bool[]"],
    "packsrv": ["int4", "int4", "int8", "int4", "int8", "int8", "float4", "float4", "float4", "float4", "bool",
                "bool"],
    "hour": ["int4", "int8", "int4", "int8", "int8", "float4", "float4", "float4", "float4", "bool", "bool"],
}
MOVE = {
    "rows": "INSERT INTO rows_t SELECT * FROM rows_s",
    "packed": "INSERT INTO packed_t SELECT * FROM packed_s",
    "packsrv": "INSERT INTO packsrv_t SELECT dk, slot, array_agg(ik), array_agg(off_ms),"
               " array_agg(in_bps), array_agg(out_bps), array_agg(in_pps),"
               " array_agg(out_pps), array_agg(errors_per_s),"
               " array_agg(drops_per_s), array_agg(counted), array_agg(approx)"
               " FROM packsrv_s GROUP BY dk, slot",
    "hour": "INSERT INTO hour_t SELECT ik, hour, ARRAY[offs], ARRAY[in_bps], ARRAY[out_bps], ARRAY[in_pps],"
            " ARRAY[out_pps], ARRAY[errors_per_s], ARRAY[drops_per_s], ARRAY[counted], ARRAY[approx] FROM hour_s"
            " ON CONFLICT (ik, hour) DO UPDATE SET offs = hour_t.offs || excluded.offs,"
            " in_bps = hour_t.in_bps || excluded.in_bps, out_bps = hour_t.out_bps || excluded.out_bps,"
            " in_pps = hour_t.in_pps || excluded.in_pps, out_pps = hour_t.out_pps || excluded.out_pps,"
            " errors_per_s = hour_t.errors_per_s || excluded.errors_per_s,"
            " drops_per_s = hour_t.drops_per_s || excluded.drops_per_s,"
            " counted = hour_t.counted || excluded.counted, approx = hour_t.approx || excluded.approx",
}


def _rows(layout: str, devices: int, ifaces: int, slot: int) -> list[tuple[Any, ...]]:
    if layout == "rows":
        return [(d * 100 + i, slot, 300, 1_000_000, 500_000, 100.0, 90.0, 0.0, 0.0, True, False)
                for d in range(devices) for i in range(ifaces)]
    if layout == "packed":
        return [(d, slot, [d * 100 + i for i in range(ifaces)], [300] * ifaces, [1_000_000] * ifaces,
                 [500_000] * ifaces, [100.0] * ifaces, [90.0] * ifaces, [0.0] * ifaces, [0.0] * ifaces,
                 [True] * ifaces, [False] * ifaces) for d in range(devices)]
    if layout == "packsrv":
        return [(d, d * 100 + i, slot, 300, 1_000_000, 500_000, 100.0, 90.0, 0.0, 0.0, True, False)
                for d in range(devices) for i in range(ifaces)]
    return [(d * 100 + i, slot // 3600 * 3600, slot % 3600 * 1000 + 300, 1_000_000, 500_000, 100.0, 90.0, 0.0, 0.0,
             True, False) for d in range(devices) for i in range(ifaces)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=333)
    ap.add_argument("--ifaces", type=int, default=15)
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--days", type=int, default=1)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pg-layouts-"))
    server = PgServer(work / "pg")
    out: dict[str, Any] = {"devices": a.devices, "ifaces": a.ifaces, "cycles": a.cycles}
    try:
        url = server.fresh_database("layouts")
        conn = psycopg.connect(url, autocommit=True)
        day0 = int(time.time()) // DAY * DAY
        for layout, ddl in sorted(DDL.items(), key=lambda kv: kv[0] == "packsrv"):
            for stmt in ddl:
                conn.execute(stmt)
            for k in range(-a.days - 1, 2):
                lo = day0 + k * DAY
                conn.execute(f"CREATE TABLE {layout}_t_{k + 10} PARTITION OF {layout}_t"
                             f" FOR VALUES FROM ({lo}) TO ({lo + DAY})")
        for layout in DDL:
            ms, copy_ms, move_ms = [], [], []
            for c in range(a.cycles + 2):
                slot = day0 + 30 * c
                rows = _rows(layout, a.devices, a.ifaces, slot)
                t0 = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(f"COPY {layout}_s FROM STDIN (FORMAT BINARY)") as cp:
                        cp.set_types(TYPES[layout])
                        for r in rows:
                            cp.write_row(r)
                    t1 = time.perf_counter()
                    cur.execute(MOVE[layout])
                    t2 = time.perf_counter()
                if c >= 2:
                    ms.append((time.perf_counter() - t0) * 1000)
                    copy_ms.append((t1 - t0) * 1000)
                    move_ms.append((t2 - t1) * 1000)
            out[f"write_{layout}_ms"] = {"all": _dist(ms), "copy": _dist(copy_ms), "move": _dist(move_ms)}
        # Reads: DAYS of slots for 20 devices, filled server-side.
        lo, hi = day0 - a.days * DAY, day0
        n = a.ifaces
        conn.execute(f"INSERT INTO rows_t SELECT d * 100 + i, s, 300, 1000000 + s % 977, 500000, 100, 90, 0, 0, true,"
                     f" false FROM generate_series(0, 19) d, generate_series(0, {n - 1}) i,"
                     f" generate_series({lo}, {hi - 30}, 30) s")
        conn.execute(f"INSERT INTO packed_t SELECT d, s, (SELECT array_agg(d * 100 + i)"
                     f" FROM generate_series(0, {n - 1}) i), array_fill(300, ARRAY[{n}]),"
                     f" array_fill(1000000 + s % 977, ARRAY[{n}]),"
                     f" array_fill(500000, ARRAY[{n}]), array_fill(100::real, ARRAY[{n}]),"
                     f" array_fill(90::real, ARRAY[{n}]), array_fill(0::real, ARRAY[{n}]),"
                     f" array_fill(0::real, ARRAY[{n}]), array_fill(true, ARRAY[{n}]), array_fill(false, ARRAY[{n}])"
                     f" FROM generate_series(0, 19) d, generate_series({lo}, {hi - 30}, 30) s")
        conn.execute("VACUUM ANALYZE rows_t")
        conn.execute("VACUUM ANALYZE packed_t")
        reads = {
            "rows": (f"SELECT slot, off_ms, in_bps, out_bps FROM rows_t WHERE ik = 507 AND slot >= {lo}"
                     f" AND slot < {hi} ORDER BY slot"),
            "packed": (f"SELECT slot, p.off_ms[j.k], p.in_bps[j.k], p.out_bps[j.k] FROM packed_t p CROSS JOIN LATERAL"
                       f" (SELECT array_position(p.iks, 507) AS k) j WHERE p.dk = 5 AND j.k IS NOT NULL"
                       f" AND slot >= {lo} AND slot < {hi} ORDER BY slot"),
        }
        newest = {
            "rows": "SELECT * FROM rows_t WHERE ik = 507 ORDER BY slot DESC LIMIT 1",
            "packed": ("SELECT slot, p.in_bps[array_position(p.iks, 507)] FROM packed_t p WHERE p.dk = 5"
                       " AND 507 = ANY(p.iks) ORDER BY slot DESC LIMIT 1"),
        }
        for layout in reads:
            for name, sql in (("day", reads[layout]), ("newest", newest[layout])):
                ms = []
                for _ in range(42):
                    t0 = time.perf_counter()
                    got = conn.execute(sql).fetchall()
                    ms.append((time.perf_counter() - t0) * 1000)
                out[f"read_{name}_{layout}_ms"] = {**_dist(ms[2:]), "rows": len(got)}
        for layout in ("rows", "packed"):
            size = conn.execute(f"SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c"
                                f" ON c.oid = i.inhrelid WHERE i.inhparent = '{layout}_t'::regclass").fetchone()
            count = 20 * n * a.days * DAY / 30 + a.devices * n * a.cycles
            out[f"bytes_per_iface_slot_{layout}"] = round(int(size[0]) / count, 1) if size else None
        out["load"] = os.getloadavg()
        out["at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        conn.close()
        print(json.dumps(out, indent=1))
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
