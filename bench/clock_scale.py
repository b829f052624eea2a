"""Clock at scale: 1,000 simulated firewalls, 30 s interval, 10 minutes, on this machine.

    .venv/bin/python bench/clock_scale.py --devices 1000 --faults "blackhole:2%,slow:5%" \
        --interval 30 --minutes 10

Starts the simulator and a real `python clock.py` on a fresh data folder, registers every
simulated device (pinned certificates), then reads the clock's log lines, the sample database
and the clock's RSS. Pass criteria (issue 3): every healthy device sampled in every cycle,
cycle wall time p95 <= 15 s, clock RSS <= 300 MB (`--max-rss`; issue 17: 400 MB at 2,000 devices),
no healthy device's inventory failed, and (runs of 8 minutes or more) every healthy device has an
inventory from its last 5-minute window.
The 1-minute load average before and after is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import config  # noqa: E402
from panfm.models import DeviceConfig, TlsConfig  # noqa: E402
from panfm.storage.config_store import DeviceStore  # noqa: E402

CYCLE_RE = re.compile(r"\[CLOCK JOB\] collect: (\d+)/(\d+) devices up, (\d+) samples in ([\d.]+) s")
INVENTORY_FAILED_RE = re.compile(r"inventory of (\S+) failed: (.*)$")
INVENTORY_BUSY_RE = re.compile(r"inventory of (\d+) device\(s\) not started within the deadline")
INVENTORY_WINDOW_S = 300 + 120 + 10  # every device's inventory once per 5 minutes, within its 120 s deadline


def device_from_inventory(entry: dict) -> DeviceConfig:
    """Map one simulator inventory entry to a device record (pinned TLS)."""
    fingerprint = entry["tls_fingerprint_sha256"]
    return DeviceConfig(
        id="", name=entry["name"], host=entry.get("host", "127.0.0.1"), port=int(entry["port"]),
        api_key=entry.get("api_key"), username=entry.get("username"), password=entry.get("password"),
        tls=TlsConfig("pin", fingerprint_sha256=fingerprint),
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--faults", default="blackhole:2%,slow:5%")
    ap.add_argument("--interval", type=int, default=30)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--workers", type=int, default=0, help="collector_workers (0: the default setting)")
    ap.add_argument("--clock-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for the clock only (e.g. PYTHONMALLOC=malloc); repeatable")
    ap.add_argument("--log", type=Path, default=None, help="also write the clock's log lines here")
    ap.add_argument("--max-rss", type=float, default=300, help="clock RSS target in MB (issue 17: 400 at 2,000)")
    ap.add_argument("--warmup-minutes", type=float, default=6,
                    help="RSS growth is measured from here to the end (the soak: flat after warm-up)")
    ap.add_argument("--max-growth", type=float, default=None,
                    help="soak: fail when RSS grows faster than this many MB per hour after warm-up")
    args = ap.parse_args()

    load_before = Path("/proc/loadavg").read_text().split()[0]
    work = Path(tempfile.mkdtemp(prefix="clock-scale-"))
    data = work / "data"
    data.mkdir()
    inv_path = work / "inventory.json"
    sim = subprocess.Popen(
        [sys.executable, "-m", "panos_sim", "--devices", str(args.devices), "--faults", args.faults,
         "--seed", "1", "--inventory", str(inv_path)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    clock = None
    try:
        t0 = time.monotonic()
        while not inv_path.exists():
            if sim.poll() is not None or time.monotonic() - t0 > 180:
                raise SystemExit("simulator did not start")
            time.sleep(0.5)
        doc = json.loads(inv_path.read_text())
        inventory = doc["devices"] if isinstance(doc, dict) else doc
        from panos_sim.fleet import parse_faults

        faulted = {inventory[i]["name"] for i in parse_faults(args.faults, args.devices, 1)}
        store = DeviceStore(data, config.SecretBox.for_data_dir(data), clock=time.time)
        for entry in inventory:
            store.add(device_from_inventory(entry))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
        # The simulator listens on loopback, which the clock refuses unless allowed.
        env.update({"PANFM_DATA_DIR": str(data), "PANFM_REFRESH_INTERVAL": str(args.interval),
                    "PANFM_ALLOWED_DEVICE_NETWORKS": "127.0.0.0/8"})
        if args.workers:
            env["PANFM_COLLECTOR_WORKERS"] = str(args.workers)
        env.update(item.split("=", 1) for item in args.clock_env)
        clock = subprocess.Popen([sys.executable, "clock.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        cycles: list[tuple[int, int, int, float]] = []
        rss: list[float] = []
        inventory_failures: list[tuple[str, str]] = []
        inventory_busy = [0]

        def read_log() -> None:
            assert clock is not None and clock.stdout is not None
            log_file = args.log.open("w") if args.log else None
            for line in clock.stdout:
                if log_file is not None:
                    log_file.write(line)
                    log_file.flush()
                m = CYCLE_RE.search(line)
                if m:
                    cycles.append((int(m[1]), int(m[2]), int(m[3]), float(m[4])))
                m = INVENTORY_FAILED_RE.search(line)
                if m:
                    inventory_failures.append((m[1], m[2].strip()))
                m = INVENTORY_BUSY_RE.search(line)
                if m:
                    inventory_busy[0] += int(m[1])
            if log_file is not None:
                log_file.close()

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            rss.append(rss_mb(clock.pid))
            time.sleep(5)
        stopped_at = time.time()
        clock.send_signal(signal.SIGTERM)
        clock.wait(timeout=15)
        reader.join(timeout=5)
        # Per healthy device: samples stored vs cycles run (the first cycle of each has no rate
        # but still a row: sessions, CPU and memory need no baseline).
        conn = sqlite3.connect(f"file:{data / 'throughput_history.db'}?mode=ro", uri=True)
        ids = {d.id: d.name for d in store.list()}
        counts = dict(conn.execute("SELECT device_id, COUNT(*) FROM device_samples GROUP BY device_id"))
        # The inventory (5-minute job): the latest document per device and the parts it lacked.
        inventories = {d: (ts, json.loads(doc).get("errors") or {})
                       for d, ts, doc in conn.execute("SELECT device_id, ts, doc FROM inventory")}
        conn.close()
        n_cycles = len(cycles)
        healthy = [i for i, name in ids.items() if name not in faulted]
        missing = [ids[i] for i in healthy if counts.get(i, 0) < n_cycles]
        durations = sorted(c[3] for c in cycles)
        # Every healthy device's inventory gathered within the last window (runs long enough to tell),
        # and no healthy device's inventory failed; a slow one may lose parts to its deadline.
        judge_inventory = args.minutes * 60 >= INVENTORY_WINDOW_S + 60
        stale = [ids[i] for i in healthy if inventories.get(i, (0.0, {}))[0] < stopped_at - INVENTORY_WINDOW_S]
        healthy_names = {ids[i] for i in healthy}
        failed_healthy = [(n, why) for n, why in inventory_failures if n in healthy_names]
        reasons: dict[str, int] = {}
        for _n, why in inventory_failures:
            reasons[why[:60]] = reasons.get(why[:60], 0) + 1
        part_errors: dict[str, int] = {}
        for i in healthy:
            for part in inventories.get(i, (0.0, {}))[1]:
                part_errors[part] = part_errors.get(part, 0) + 1
        # RSS every 5 s: the value at each whole minute, and the least-squares slope after warm-up
        # (a slope, not last minus first: one inventory's transient would dominate two points).
        by_minute = {int(i * 5 // 60): v for i, v in enumerate(rss) if (i * 5) % 60 == 0}
        late = [(i * 5 / 3600, v) for i, v in enumerate(rss) if i * 5 >= args.warmup_minutes * 60]
        growth = None
        if len(late) >= 3:
            mx = sum(x for x, _ in late) / len(late)
            my = sum(y for _, y in late) / len(late)
            den = sum((x - mx) ** 2 for x, _ in late)
            growth = round(sum((x - mx) * (y - my) for x, y in late) / den, 2) if den else None
        p95 = durations[max(0, round(0.95 * len(durations)) - 1)] if durations else float("nan")
        result = {
            "load_before": load_before, "load_after": Path("/proc/loadavg").read_text().split()[0],
            "devices": args.devices, "faulted": len(faulted), "healthy": len(healthy), "cycles": n_cycles,
            "healthy_devices_missing_a_cycle": len(missing), "cycle_s_median": statistics.median(durations)
            if durations else None, "cycle_s_p95": p95, "cycle_s_max": durations[-1] if durations else None,
            "clock_rss_mb_max": round(max(rss), 1) if rss else None,
            "clock_rss_mb_by_minute": {m: round(v, 1) for m, v in by_minute.items()},
            "clock_rss_growth_mb_per_hour_after_warmup": growth,
            "sampled_per_cycle_min": min(c[2] for c in cycles) if cycles else None,
            "inventories_stored": len(inventories),
            "healthy_without_inventory_in_last_window": len(stale) if judge_inventory else "run too short to judge",
            "inventory_failures_healthy": len(failed_healthy),
            "inventory_failures_all": len(inventory_failures),
            "inventories_not_started_busy": inventory_busy[0],
            "inventory_failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:5]),
            "healthy_inventory_parts_failed_in_last_doc": part_errors,
        }
        print(json.dumps(result, indent=2))
        ok = not missing and p95 <= 15 and (max(rss) if rss else 0) <= args.max_rss and not failed_healthy
        ok = ok and (not judge_inventory or not stale)
        if args.max_growth is not None:
            ok = ok and growth is not None and growth < args.max_growth
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        for proc in (clock, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    sys.exit(main())
