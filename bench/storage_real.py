"""Bytes per firewall-day of the sample database as a REAL clock writes it (simulator's mixed fleet).

    .venv/bin/python bench/storage_real.py --devices 20 --interval 10 --minutes 12

Starts the simulator (models PA-440, PA-3220, PA-5450 and PA-VM in turn, no faults) and a real
`python clock.py` on a fresh data folder, lets it collect, stops it, then reads every table's
pages with `dbstat` and extrapolates to the production interval (`--per-day-interval`, 30 s)
and each tier's retention (raw 7 days, 5-minute 90 days, 1-hour 730 days):

- raw: bytes per device row and per interface row = the table's pages / its rows (the run
  writes enough raw rows for whole pages); bytes per stored value = raw bytes of one poll of
  one firewall (its device row and its interface rows) / the values that poll stores (19
  device metrics + 6 per interface, as the API carries them);
- rollup and grouping rows: a short run closes too few buckets for whole pages, so their size
  per row is the bytes the rows use in their pages (payload and cell overhead) divided by the
  fill of the raw table of the same kind (the fill a long run reaches, same write pattern);
  schema 7 packs twelve buckets a row, so the figure is per bucket, and a run shorter than a
  few hours overstates it (its rows hold a few buckets each: the row's overhead is shared by
  fewer, and short columns pack worse). `bench/storage_layouts.py` measures whole rows;
- per firewall-day: rows a firewall adds per day at the production interval × bytes per row,
  per tier; "amortised over 90 days" is the figure `bench/gen_history_db.py` prints (the
  database after 90 days / 90 / devices; the 1-hour tier then holds 90 days); "steady state" is
  one firewall's bytes once every tier is at its retention; "whole rows" counts the 30-minute
  groups and the 1-hour tier at the 5-minute tier's bytes per bucket (its packed rows are whole
  hours after the first hour; a run shorter than 12 hours has the others in their head tables,
  a row per bucket).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from clock_scale import device_from_inventory  # noqa: E402

import config  # noqa: E402
import panfm.storage.tiers as tiers  # noqa: E402
from panfm.storage.config_store import DeviceStore  # noqa: E402
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS  # noqa: E402

RETENTION = {"raw": 7, "5m": 90, "g30m": 90, "1h": 730}


def pages(db: Path) -> dict[str, dict[str, float]]:
    """Per table (and its indexes): total bytes, leaf bytes used and leaf bytes."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out: dict[str, dict[str, float]] = {}
        for name, pgsize, used_leaf, leaf in conn.execute(
            "SELECT name, sum(pgsize), sum(CASE WHEN pagetype = 'leaf' THEN pgsize - unused END),"
            " sum(CASE WHEN pagetype = 'leaf' THEN pgsize END) FROM dbstat GROUP BY name"
        ):
            out[name] = {"bytes": pgsize, "used_leaf": used_leaf or 0, "leaf": leaf or 0}
        for name in list(out):
            if name in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}:
                out[name]["rows"] = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            if name in tiers.PACKED:  # schema 7: a row holds up to twelve buckets; count buckets
                out[name]["rows"] = sum(tiers.bucket_count(b) for (b,) in conn.execute(f"SELECT b FROM {name}"))
        return out
    finally:
        conn.close()


def analyse(db: Path, per_day_interval: int) -> dict[str, object]:
    p = pages(db)
    devices = p["ts_device"]["rows"]
    ifaces = p["ts_iface"]["rows"] / devices
    polls = 86400 / per_day_interval
    per_row: dict[str, float] = {}
    for t in ("dev_raw", "if_raw"):
        per_row[t] = p[t]["bytes"] / p[t]["rows"]
    fill = {k: p[t]["bytes"] / p[t]["used_leaf"] for k, t in (("dev", "dev_raw"), ("if", "if_raw"))}
    for t in ("dev_5m", "if_5m", "dev_1h", "if_1h", "dev_5m_g30m", "if_5m_g30m"):
        # A run within one clock hour has no packed 5-minute row yet: its open period's head rows
        # (a bucket each, schema 8) stand in for them, overstating the tier as the notes below say.
        for name in (t, f"{t}_head"):
            if name in p and p[name].get("rows"):
                per_row[t] = p[name]["used_leaf"] / p[name]["rows"] * fill[t.split("_")[0]]
                break
    # 1-hour rows have the 5-minute rows' layout; a run shorter than an hour has none of its own.
    per_row.setdefault("dev_1h", per_row.get("dev_5m", 0.0))
    per_row.setdefault("if_1h", per_row.get("if_5m", 0.0))
    day = {
        "raw": polls * (per_row["dev_raw"] + ifaces * per_row["if_raw"]),
        "5m": 288 * (per_row["dev_5m"] + ifaces * per_row["if_5m"]),
        "g30m": 48 * (per_row.get("dev_5m_g30m", 0.0) + ifaces * per_row.get("if_5m_g30m", 0.0)),
        "1h": 24 * (per_row["dev_1h"] + ifaces * per_row["if_1h"]),
    }
    # The 30-minute groups and the 1-hour tier pack 12 buckets a row over 6 and 12 hours: a run of
    # a few hours has them in their head tables only (a row per bucket), which overstates them. The
    # 5-minute tier's packed rows are whole hours (12 buckets) after the first hour: the same layout
    # and a bucket each, so their bytes per bucket are what whole rows of the other two would cost.
    whole = dict(day)
    whole["g30m"] = 48 * (per_row["dev_5m"] + ifaces * per_row["if_5m"])
    whole["1h"] = 24 * (per_row["dev_5m"] + ifaces * per_row["if_5m"])
    values_per_poll = len(DEVICE_METRICS) + ifaces * len(IFACE_METRICS)
    return {
        "devices": devices, "interfaces_per_firewall": round(ifaces, 1),
        "rows": {t: p[t].get("rows") for t in per_row if t in p},
        "bytes_per_row": {t: round(v, 1) for t, v in per_row.items()},
        "raw_bytes_per_value": round((per_row["dev_raw"] + ifaces * per_row["if_raw"]) / values_per_poll, 2),
        "written_per_firewall_day_kb": {k: round(v / 1000, 1) for k, v in day.items()},
        "written_per_firewall_day_kb_total": round(sum(day.values()) / 1000, 1),
        "amortised_over_90_days_kb": round((7 * day["raw"] + 90 * (day["5m"] + day["g30m"] + day["1h"])) / 90 / 1000,
                                           1),
        "steady_state_per_firewall_mb": round(sum(RETENTION[k] * v for k, v in day.items()) / 1e6, 1),
        "written_per_firewall_day_kb_whole_rows": {k: round(v / 1000, 1) for k, v in whole.items()},
        "amortised_over_90_days_kb_whole_rows": round(
            (7 * whole["raw"] + 90 * (whole["5m"] + whole["g30m"] + whole["1h"])) / 90 / 1000, 1),
    }


def run(devices: int, interval: int, minutes: float, work: Path) -> Path:
    data = work / "data"
    data.mkdir()
    inv_path = work / "inventory.json"
    sim = subprocess.Popen([sys.executable, "-m", "panos_sim", "--devices", str(devices), "--seed", "1",
                            "--inventory", str(inv_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    clock = None
    try:
        t0 = time.monotonic()
        while not inv_path.exists():
            if sim.poll() is not None or time.monotonic() - t0 > 180:
                raise SystemExit("simulator did not start")
            time.sleep(0.5)
        doc = json.loads(inv_path.read_text())
        store = DeviceStore(data, config.SecretBox.for_data_dir(data), clock=time.time)
        for entry in doc["devices"] if isinstance(doc, dict) else doc:
            store.add(device_from_inventory(entry))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
        env.update({"PANFM_DATA_DIR": str(data), "PANFM_REFRESH_INTERVAL": str(interval),
                    "PANFM_ALLOWED_DEVICE_NETWORKS": "127.0.0.0/8"})
        clock = subprocess.Popen([sys.executable, "clock.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(minutes * 60)
        clock.send_signal(signal.SIGTERM)
        clock.wait(timeout=30)
    finally:
        for proc in (clock, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return data / "throughput_history.db"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--interval", type=int, default=10, help="the clock's interval in this run (s)")
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--per-day-interval", type=int, default=30, help="production interval the figures assume")
    ap.add_argument("--db", type=Path, default=None, help="analyse this database instead of running a clock")
    a = ap.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[0]
    db = a.db or run(a.devices, a.interval, a.minutes, Path(tempfile.mkdtemp(prefix="storage-real-")))
    result = {"db": str(db), "load_before": load_before, **analyse(db, a.per_day_interval),
              "load_after": Path("/proc/loadavg").read_text().split()[0]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
