#!/usr/bin/env python3
"""Bytes per firewall-day of network.db (connected devices; with --runs also ACC, threats, logs).

    .venv/bin/python bench/network_bytes.py --hosts 250 --churn 0.2 --days 3 --firewalls 4
    .venv/bin/python bench/network_bytes.py --hosts 250 --churn 0.2 --days 1 --firewalls 1 --runs
    .venv/bin/python bench/network_bytes.py --hosts 250 --churn 0.2 --days 1 --firewalls 1 --runs --log-cap 50

Writes one snapshot per firewall every 300 s (288 a day) through `NetworkStore.record`, with
`--hosts` hosts each, of which a `--churn` share is replaced by new MACs every day (phones
rotating randomised MACs, guests), and reports the file size (database + WAL after a
checkpoint) per firewall and day, and the mean and worst time of one `record` call.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from panfm.storage.network_store import NETWORK_DB, NetworkStore

SNAPSHOTS_PER_DAY = 288


def host(rng: random.Random, fw: int, serial: int) -> dict[str, object]:
    mac = "3c:22:fb:" + ":".join(f"{b:02x}" for b in serial.to_bytes(3, "big"))
    return {"mac": mac, "ip": f"10.{fw}.{serial >> 8 & 255}.{serial & 255}", "interface": "ethernet1/2",
            "vlan": rng.choice((None, 100, 200)), "zone": rng.choice(("trust", "guest", "dmz")),
            "user": f"corp\\user{serial}" if serial % 3 == 0 else None, "vendor": "Apple, Inc.",
            "dhcp_hostname": f"host-{fw}-{serial}" if serial % 4 else None, "dns_name": None,
            "static": serial % 4 == 0, "randomized_mac": False, "lease_expires": time.time() + 86400}


def runs(store: NetworkStore, device_id: str, t: float, rng: random.Random, log_cap: int = 200) -> None:
    """One inventory run's ACC rows, threat/URL summary and log entries at their caps (logs: `log_cap` per type)."""
    apps = [{"name": f"app-{i}", "category": "general-internet", "risk": 4, "bytes": rng.randrange(10**9),
             "sessions": rng.randrange(10**5), "sources": rng.randrange(200)} for i in range(25)]
    cats = [{"name": f"cat-{i}", "bytes": rng.randrange(10**9), "sessions": rng.randrange(10**5)} for i in range(8)]
    store.record_apps(device_id, t, apps, cats)
    event = {"kind": "threat", "time": "2026/12/04 10:00:00", "severity": "high",
             "name": "Microsoft Windows SMB Remote Code Execution Vulnerability", "src": "10.0.0.5",
             "dst": "203.0.113.9", "user": "corp\\user1", "action": "reset-both", "category": "code-execution",
             "url": None}
    store.record_security(device_id, t, {
        "counts": {"critical": 3, "high": 40, "medium": 200, "low": 900}, "blocked_urls": 120,
        "latest": [event] * 50 + [{**event, "kind": "url", "url": "www.example.com/some/path/x"}] * 50,
        "top_threats": [{"name": f"threat {i}", "count": 10} for i in range(10)],
        "top_url_categories": [{"name": f"category {i}", "count": 10} for i in range(10)]})
    store.record_acc(device_id, t, [{"name": f"threat {i}", "count": 10, "severity": "high"} for i in range(25)],
                     [{"name": f"category {i}", "count": 10} for i in range(25)],
                     [{"name": f"10.0.{i}.9", "user": "corp\\user1", "bytes": rng.randrange(10**9),
                       "sessions": rng.randrange(10**5)} for i in range(25)])
    serial = int(t)
    store.record_logs(device_id, t, {
        "system": [{"id": f"{serial}-s{i}", "epoch": t - i, "receive_time": "2026/12/04 10:00:00", "severity": "low",
                    "subtype": "general", "eventid": "general", "module": "general",
                    "opaque": "User admin logged in via Web from 10.0.0.5 using https"} for i in range(log_cap)],
        "traffic": [{"id": f"{serial}-t{i}", "epoch": t - i, "receive_time": "2026/12/04 10:00:00",
                     "src": "10.1.2.3", "dst": "203.0.113.77", "dport": "443", "proto": "tcp", "app": "ssl",
                     "action": "allow", "from": "trust", "to": "untrust", "rule": "allow-outbound",
                     "srcuser": "corp\\user1", "bytes": "123456", "session_end_reason": "tcp-fin"}
                    for i in range(log_cap)]})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=250)
    ap.add_argument("--churn", type=float, default=0.2, help="share of hosts replaced by new MACs per day")
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--firewalls", type=int, default=4)
    ap.add_argument("--snapshots", type=int, default=SNAPSHOTS_PER_DAY, help="snapshots per day (288: every 5 min)")
    ap.add_argument("--runs", action="store_true",
                    help="also store each run's ACC top 25 + categories + 25 threats, URL categories and sources, "
                         "a threat/URL summary (50 + 50 events) and "
                         "200 system + 200 traffic log entries (the caps: the worst case)")
    ap.add_argument("--log-cap", type=int, default=200,
                    help="system and traffic log entries per type and run with --runs (the setting log_fetch_cap)")
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / NETWORK_DB
        store = NetworkStore.open(path)
        fleets = {fw: list(range(args.hosts)) for fw in range(args.firewalls)}
        next_serial = dict.fromkeys(fleets, args.hosts)
        timings: list[float] = []
        sizes: list[int] = []
        t = time.time() - args.days * 86400
        for day in range(args.days):
            replace_every = max(1, round(args.snapshots / max(1, args.churn * args.hosts)))
            for snap in range(args.snapshots):
                t += 86400 / args.snapshots
                for fw, serials in fleets.items():
                    if args.churn > 0 and snap % replace_every == 0:
                        serials[rng.randrange(len(serials))] = next_serial[fw]
                        next_serial[fw] += 1
                    rows = [host(rng, fw, s) for s in serials]
                    start = time.perf_counter()
                    store.record(f"fw{fw}", t, rows)
                    if args.runs:
                        runs(store, f"fw{fw}", t, rng, args.log_cap)
                    timings.append(time.perf_counter() - start)
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = path.stat().st_size + (Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0)
            sizes.append(size)
            print(f"day {day + 1}: {size / 1024:.0f} KiB total, {size / args.firewalls / 1024:.0f} KiB per firewall")
        store.close()
    first = sizes[0] / args.firewalls
    growth = (sizes[-1] - sizes[0]) / args.firewalls / max(1, args.days - 1)
    print(f"hosts {args.hosts}, churn {args.churn:.0%}/day, {args.firewalls} firewalls, {args.days} days"
          + (f", runs with log cap {args.log_cap}" if args.runs else ""))
    print(f"first day: {first / 1024:.0f} KiB per firewall; then {growth / 1024:.1f} KiB per firewall-day")
    print(f"record(): mean {statistics.mean(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms "
          f"for {args.hosts} hosts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
