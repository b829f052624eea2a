"""Bytes per firewall-day of the 5-minute tier: today's rows against a compact layout (issue 17 design).

    .venv/bin/python bench/storage_layouts.py --devices 20 --days 3

A design measurement, not the product's schema: it writes the same synthetic 5-minute rows
(19 device metrics, 4 interfaces of 6 metrics, 10 samples per bucket) into two SQLite files and
reports each table's pages per device-day (`dbstat`, after VACUUM):

- current: the schema of `panfm/storage/schema.py` (device UUID text and interface name in
  every row's key, every value REAL, average, minimum, maximum and a count per metric);
- compact: an integer series key (one per device, one per interface), whole units (bps and pps
  as integers, percentages to 0.01), average and maximum only, the per-metric count NULL when
  it equals the bucket's (the storage's `weight_sql` already reads NULL that way).

The compact layout is what issue 17 asks of the SQLite backend (and of the PostgreSQL one);
this script says how far it goes before the migration is written.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS  # noqa: E402

N = 10  # samples per 5-minute bucket at 30 s


def device_values(rng: random.Random) -> dict[str, float]:
    mbps = rng.uniform(50, 900)
    return {
        "inbound_mbps": mbps * 0.6, "outbound_mbps": mbps * 0.4, "total_mbps": mbps,
        "inbound_pps": mbps * 90.3, "outbound_pps": mbps * 60.1,
        "sessions_active": rng.randint(1000, 90000), "sessions_tcp": rng.randint(500, 60000),
        "sessions_udp": rng.randint(100, 20000), "sessions_icmp": rng.randint(0, 200), "sessions_max": 262144,
        "sessions_utilization_pct": rng.uniform(0, 40), "sessions_cps": rng.randint(0, 3000),
        "sessions_kbps": rng.randint(0, 900000), "sessions_pps": rng.randint(0, 90000),
        "cpu_dataplane_pct": rng.uniform(0, 80), "cpu_management_pct": rng.uniform(0, 50),
        "memory_pct": rng.uniform(30, 80), "packet_buffer_pct": rng.uniform(0, 5),
        "packet_descriptor_pct": rng.uniform(0, 5),
    }


def iface_values(rng: random.Random) -> dict[str, float]:
    bps = rng.uniform(1e6, 9e8)
    return {"in_bps": bps, "out_bps": bps * 0.7, "in_pps": bps / 8 / 700, "out_pps": bps / 8 / 900,
            "errors_per_s": 0.0, "drops_per_s": rng.choice([0.0, 0.0, 0.0, 0.033])}


def whole(metric: str, value: float) -> float | int:
    """The compact layout's stored unit: bps and pps and counts as integers, the rest to 0.01."""
    if metric.endswith("_mbps"):
        return round(value * 1e6)  # whole bits per second
    if metric.endswith(("_pps", "_bps")) or (metric.startswith("sessions_") and not metric.endswith("_pct")):
        return round(value)
    return round(value, 2)


def build(path: Path, compact: bool, devices: int, buckets: int) -> dict[str, float]:
    rng = random.Random(1)
    conn = sqlite3.connect(path)
    if compact:
        dev_cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in DEVICE_METRICS)
        if_cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in IFACE_METRICS)
        conn.execute(f"CREATE TABLE device_5m (sid INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, "
                     f"{dev_cols}, PRIMARY KEY (sid, bucket)) WITHOUT ROWID")
        conn.execute(f"CREATE TABLE iface_5m (sid INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, "
                     f"{if_cols}, PRIMARY KEY (sid, bucket)) WITHOUT ROWID")
    else:
        dev_cols = ", ".join(f"{m}_avg REAL, {m}_min REAL, {m}_max REAL, {m}_n INTEGER" for m in DEVICE_METRICS)
        if_cols = ", ".join(f"{m}_avg REAL, {m}_min REAL, {m}_max REAL, {m}_n INTEGER" for m in IFACE_METRICS)
        conn.execute(f"CREATE TABLE device_5m (device_id TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, "
                     f"{dev_cols}, PRIMARY KEY (device_id, bucket)) WITHOUT ROWID")
        conn.execute(f"CREATE TABLE iface_5m (device_id TEXT NOT NULL, interface TEXT NOT NULL, "
                     f"bucket INTEGER NOT NULL, n INTEGER NOT NULL, {if_cols}, "
                     "PRIMARY KEY (device_id, interface, bucket)) WITHOUT ROWID")
    start = 1_764_800_000 // 300 * 300
    for d in range(devices):
        device_id = str(uuid.uuid4())
        dev_rows, if_rows = [], []
        for b in range(buckets):
            bucket = start + b * 300
            v = device_values(rng)
            if compact:
                dev_rows.append([d + 1, bucket, N, *(x for m in DEVICE_METRICS
                                                     for x in (whole(m, v[m]), whole(m, v[m] * 1.2), None))])
            else:
                dev_rows.append([device_id, bucket, N, *(x for m in DEVICE_METRICS
                                                         for x in (v[m], v[m] * 0.8, v[m] * 1.2, N))])
            for k in range(4):
                w = iface_values(rng)
                if compact:
                    if_rows.append([10_000 + d * 4 + k, bucket, N, *(x for m in IFACE_METRICS
                                                                     for x in (whole(m, w[m]), whole(m, w[m] * 1.2),
                                                                               None))])
                else:
                    if_rows.append([device_id, f"ethernet1/{k + 1}", bucket, N,
                                    *(x for m in IFACE_METRICS for x in (w[m], w[m] * 0.8, w[m] * 1.2, N))])
        conn.executemany(f"INSERT INTO device_5m VALUES ({', '.join('?' * len(dev_rows[0]))})", dev_rows)
        conn.executemany(f"INSERT INTO iface_5m VALUES ({', '.join('?' * len(if_rows[0]))})", if_rows)
    conn.commit()
    conn.execute("VACUUM")
    device_days = devices * buckets / 288
    sizes = {name: size / device_days / 1024 for name, size in
             conn.execute("SELECT name, sum(pgsize) FROM dbstat WHERE name LIKE '%_5m' GROUP BY name")}
    conn.close()
    return sizes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--days", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, compact in (("current", False), ("compact", True)):
            path = Path(tmp) / f"{name}.db"
            sizes = build(path, compact, args.devices, args.days * 288)
            total = sum(sizes.values())
            parts = ", ".join(f"{k} {v:.1f} KB" for k, v in sorted(sizes.items()))
            print(f"{name}: {total:.1f} KB per device-day in the 5-minute tier ({parts})")
            os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
