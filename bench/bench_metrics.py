"""Measure `GET /metrics` for a large fleet: scrape time and body size, through gunicorn (2 workers).

    .venv/bin/python bench/bench_metrics.py --devices 1000 --scrapes 50 [--data DIR] [--out FILE]

Builds a data folder through the product's own write paths: devices in config.db
(`DeviceStore.add`, 4 counted interfaces configured each), alert rules (`DocTable.put` after
`validate_rule`), `--cycles` collection cycles (`SampleStore.write_cycle`: device and interface
samples, counter baselines holding `--interfaces` interfaces per device (8 physical ports and
logical ones), device states (about 1 % down), per-dataplane CPU, 2 % of devices with three
dataplanes), the inventory of each device (`SampleStore.write_inventory`: system info, HA,
interface list with zones and speeds) and a few firing alerts (`alerts_store.evaluation`).
Then, for each `metrics_interfaces` mode asked (`counted`, then `all`), starts the real web
(gunicorn with the project's gunicorn.conf.py, 2 workers, PANFM_METRICS_TOKEN set) and scrapes
`/metrics` `--scrapes` times sequentially with the token, in the text format and in
OpenMetrics: wall time per scrape (p50/p95/max), body size, series (lines not starting with #).
Prints a JSON summary (and writes it to --out).
Targets (issue 14): p95 <= 200 ms on the bench machine, body <= 5 MB, for 1,000 devices.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import SecretBox  # noqa: E402
from panfm.alerting.rules import rule_from_doc, validate_rule  # noqa: E402
from panfm.models import DeviceConfig, TlsConfig  # noqa: E402
from panfm.models.alerts import AlertState, Transition  # noqa: E402
from panfm.models.responses import InterfaceCounters  # noqa: E402
from panfm.models.samples import (  # noqa: E402
    CounterBaseline,
    CycleResult,
    DataplaneCpu,
    DeviceSample,
    DeviceStatus,
    InterfaceSample,
)
from panfm.storage import alerts_store  # noqa: E402
from panfm.storage.config_store import DeviceStore, DocTable  # noqa: E402
from panfm.storage.samples import HISTORY_DB, SampleStore  # noqa: E402

TOKEN = "bench-metrics-token-0123456789abcdef"  # nosec B105 (a bench token)
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # Prometheus 2.x's scrape Accept header
COUNTED = ("ethernet1/1", "ethernet1/2", "ethernet1/3", "ethernet1/4")
ALERTS_DB = "alerts.db"
COMMITS: list[Callable[[], float]] = []  # build() leaves here how to commit one more cycle
PROBE_DEVICE: list[str] = []  # and the name of a device that is up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def interface_names(n: int) -> list[str]:
    """n interfaces as a firewall lists them: up to 8 physical ports, then logical ones."""
    physical = [f"ethernet1/{j}" for j in range(1, 9)]
    logical = ["ae1", "ethernet1/1.100", "ethernet1/2.200", "tunnel.1", "tunnel.2", "loopback.1", "vlan.10",
               "ethernet1/3.300"]
    names = (physical + logical)[:n]
    return names + [f"tunnel.{k}" for k in range(3, 3 + n - len(names))]


def _six(v: list[int]) -> tuple[int, int, int, int, int, int]:
    return v[0], v[1], v[2], v[3], v[4], v[5]


def kind_of(name: str) -> str:
    if "." in name and name.startswith("ethernet"):
        return "subinterface"
    for prefix, kind in (("ethernet", "physical"), ("ae", "aggregate"), ("tunnel", "tunnel"),
                         ("loopback", "loopback"), ("vlan", "vlan")):
        if name.startswith(prefix):
            return kind
    return "other"


def build(data: Path, devices: int, interfaces: int, cycles: int, interval: int, rng: random.Random) -> dict[str, Any]:
    """Write the data folder through the product's stores; return what it holds."""
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    t0 = time.perf_counter()
    store = DeviceStore(data, SecretBox.for_data_dir(data), time.time)
    ids = []
    for i in range(devices):
        ids.append(store.add(DeviceConfig(
            id=f"dev-{i:04d}", name=f"fw-{i:04d}.branch.example.net", host=f"10.{i // 250}.{i % 250}.1",
            tls=TlsConfig(mode="insecure"), api_key="bench-key", interfaces=COUNTED)))
    t_devices = time.perf_counter() - t0
    names = interface_names(interfaces)
    three_dp = set(rng.sample(ids, max(1, devices // 50)))
    down = set(rng.sample(ids, max(1, devices // 100)))
    now = time.time()
    start = now - cycles * interval
    counters = {d: {n: [rng.randrange(10**9, 10**13), rng.randrange(10**9, 10**13), rng.randrange(10**6, 10**10),
                        rng.randrange(10**6, 10**10), rng.randrange(0, 10**4), rng.randrange(0, 10**6)]
                    for n in names} for d in ids}
    t1 = time.perf_counter()
    def write_cycle(samples: SampleStore, c: int, ts: float) -> None:
        """Write cycle number c at ts (from cycles - 1 on, the `down` devices are down)."""
        dev_samples, if_samples, baselines, statuses, dps = [], [], [], [], []
        for d in ids:
            is_down = d in down and c >= cycles - 1
            statuses.append(DeviceStatus(d, "down" if is_down else "up", ts, ts - interval if is_down else ts,
                                         "TimeoutError" if is_down else None, int(is_down)))
            if is_down:
                continue
            for n in names:
                v = counters[d][n]
                for k, step in enumerate((40_000_000, 25_000_000, 60_000, 45_000, 1, 20)):
                    v[k] += rng.randrange(step // 2 + 1, step * 2 + 2) if step > 1 else rng.randrange(0, 2)
            baselines.append(CounterBaseline(
                d, ts, f"0123456{int(d[4:]):05d}", 86400 * 40 + c * interval,
                {n: InterfaceCounters(n, *_six(counters[d][n]),
                                      source="hw" if kind_of(n) == "physical" else "ifnet")
                 for n in names}, rtt_ms=rng.uniform(80, 400)))
            load = rng.uniform(0.3, 1.0)
            dev_samples.append(DeviceSample(
                d, ts, inbound_mbps=400 * load, outbound_mbps=250 * load, total_mbps=650 * load,
                inbound_pps=60000 * load, outbound_pps=45000 * load, sessions_active=int(80000 * load),
                sessions_tcp=int(60000 * load), sessions_udp=int(18000 * load), sessions_icmp=int(200 * load),
                sessions_max=262142, sessions_utilization_pct=30 * load, sessions_cps=int(900 * load),
                sessions_kbps=int(650000 * load), sessions_pps=int(105000 * load), cpu_dataplane_pct=35 * load,
                cpu_management_pct=12 * load, memory_pct=55.0, packet_buffer_pct=2 * load,
                packet_descriptor_pct=1.0, rtt_ms=rng.uniform(80, 400), approx=False))
            for n in COUNTED:
                if_samples.append(InterfaceSample(d, n, ts, 1e8 * load, 6e7 * load, 15000 * load,
                                                  11000 * load, 0.0, 1.5 * load, True, False))
            dp_names = ("dp0", "dp1", "dp2") if d in three_dp else ("dp0",)
            dps.append(DataplaneCpu(d, ts, tuple((p, 35 * load * rng.uniform(0.8, 1.2)) for p in dp_names),
                                    (dp_names[0], 3, 50 * load)))
        samples.write_cycle(
            CycleResult(ts - 2, ts, tuple(dev_samples), tuple(if_samples), tuple(baselines), tuple(statuses),
                        tuple(dps)),
            {"total_executions": 1000 + c, "total_errors": 3, "missed": 0,
             "last_cycle": {"duration_s": 4.2}},
        )

    with SampleStore.open(data / HISTORY_DB) as samples:
        for c in range(cycles):
            write_cycle(samples, c, start + (c + 1) * interval)
        for i, d in enumerate(ids):
            samples.write_inventory(d, now - 600, {
                "system": {"hostname": f"fw-{i:04d}", "model": "PA-5450" if d in three_dp else "PA-3220",
                           "serial": f"0123456{i:05d}", "sw_version": "11.1.2-h3", "uptime_seconds": 86400 * 40},
                "errors": {},
                "ha": {"enabled": i % 2 == 0, "local_state": "active" if i % 4 == 0 else "passive"},
                "interfaces": [{"name": n, "kind": kind_of(n), "state": "up", "zone": f"zone-{j % 4}",
                                "speed_mbps": 10000 if kind_of(n) == "physical" else None}
                               for j, n in enumerate(names)],
            })
    t_samples = time.perf_counter() - t1
    # A few firing alerts: two rules, firing on 1 % of the devices (and one per-interface rule on two ports).
    rules = {}
    for doc in ({"name": "Busy sessions", "metric": "sessions_active", "operator": ">", "threshold": 70000,
                 "severity": "warning", "for_s": 0, "channel_ids": []},
                {"name": "Errors on a port", "metric": "interface_errors_per_s", "operator": ">", "threshold": 0,
                 "severity": "critical", "for_s": 0, "channel_ids": []}):
        clean, errors = validate_rule(doc)
        if errors:
            raise SystemExit(f"rule {doc['name']}: {errors}")
        rule_id = DocTable(data, "alert_rules", time.time).put(clean)
        rules[rule_id] = rule_from_doc({**clean, "id": rule_id})
    states, transitions = {}, []
    firing = rng.sample(sorted(set(ids) - down), max(1, devices // 100))
    for k, d in enumerate(firing):
        for rule in rules.values():
            for series in ("",) if rule.metric == "sessions_active" else COUNTED[:2]:
                alert_id = f"alert-{k}-{rule.id[:8]}-{series}"
                states[(rule.id, d, series)] = AlertState(rule.id, d, series, "firing", alert_id, now - 900,
                                                          now - 900, 75000.0, 76000.0, now - 900)
                transitions.append(Transition("firing", now - 900, alert_id, rule.id, d, series, rule.metric,
                                              rule.severity, 75000.0, rule.threshold, now - 900, False))
    with alerts_store.evaluation(data / ALERTS_DB) as txn:
        txn.save(states, transitions, rules, set(), now, {})
    extra = [cycles]

    def commit() -> float:
        """Commit one more cycle now (as the clock does); return its poll time."""
        ts = time.time()
        with SampleStore.open(data / HISTORY_DB) as samples:
            write_cycle(samples, extra[0], ts)
        extra[0] += 1
        return ts

    COMMITS.append(commit)
    PROBE_DEVICE.append(next(f"fw-{i:04d}.branch.example.net" for i, d in enumerate(ids) if d not in down))
    return {"devices": devices, "interfaces_per_device": interfaces, "counted_per_device": len(COUNTED),
            "down": len(down), "three_dataplanes": len(three_dp), "firing_alert_states": len(states),
            "firing_alert_series": len(firing) * len(rules), "cycles": cycles,
            "build_s": {"devices": round(t_devices, 1), "samples_inventory": round(t_samples, 1)}}


def expected_series(info: dict[str, Any], mode: str) -> int:
    """docs/metrics.md's formula with this fleet's down devices and dataplanes."""
    d, down, dp3 = info["devices"], info["down"], info["three_dataplanes"]
    ifaces = {"counted": info["counted_per_device"], "all": info["interfaces_per_device"], "none": 0}[mode]
    up = d - down
    per_up_device = 14 + 1  # P = 1; the three-dataplane devices add 2 each
    # A device that is down keeps up, last poll and info (3) and its interface info series (1 each).
    return int(10 + up * per_up_device + 2 * dp3 + down * 3 + 7 * ifaces * up + ifaces * down
            + info["firing_alert_series"])


def worker_cpu_s(master: int) -> float:
    """User + system CPU seconds of gunicorn's workers so far (its children, from /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def scrape(url: str, accept: str | None, n: int, master: int, gzip: bool = True) -> dict[str, Any]:
    """N scrapes over one kept-alive connection, as Prometheus does (gzip accepted, as Prometheus does)."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip" if gzip else "identity"}
    if accept:
        headers["Accept"] = accept
    times, sizes, wire = [], [], []
    with requests.Session() as s:
        for _ in range(2):  # warm both workers (imports, first connection to the databases)
            s.get(url + "/metrics", headers=headers, timeout=60).raise_for_status()
        cpu0 = worker_cpu_s(master)
        for _ in range(n):
            t0 = time.perf_counter()
            r = s.get(url + "/metrics", headers=headers, timeout=60)
            elapsed = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                raise SystemExit(f"/metrics: HTTP {r.status_code}")
            times.append(elapsed)
            sizes.append(len(r.content))
            wire.append(int(r.headers.get("Content-Length", len(r.content))))
        cpu = worker_cpu_s(master) - cpu0
        body = r.text
    series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    if "panfm_up 1.0" not in body:
        raise SystemExit("/metrics answered panfm_up 0: the data folder could not be read")
    return {"scrapes": n, "gzip": gzip, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(pct(times, 0.95), 1), "max_ms": round(max(times), 1), "body_bytes": max(sizes),
            "wire_bytes": max(wire), "series": series, "content_type": r.headers["Content-Type"],
            "worker_cpu_ms_per_scrape": round(cpu * 1000 / n, 1)}


def scrape_misses(url: str, n: int, master: int) -> dict[str, Any]:
    """N OpenMetrics scrapes that each render in the request (a worker's first scrape of a format).

    The renderer keeps one entry per content type, and the content type echoes the `version` of
    the `Accept` header: a version of its own per scrape makes every scrape find no entry.
    """
    times = []
    with requests.Session() as s:
        cpu0 = worker_cpu_s(master)
        for i in range(n):
            headers = {"Authorization": f"Bearer {TOKEN}",
                       "Accept": f"application/openmetrics-text; version=1.0.{100 + i}"}
            t0 = time.perf_counter()
            r = s.get(url + "/metrics", headers=headers, timeout=60)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"/metrics: HTTP {r.status_code}")
        cpu = worker_cpu_s(master) - cpu0
    return {"scrapes": n, "p50_ms": round(statistics.median(times), 1), "p95_ms": round(pct(times, 0.95), 1),
            "max_ms": round(max(times), 1), "worker_cpu_ms_per_scrape": round(cpu * 1000 / n, 1)}


def probe(name: str) -> re.Pattern[str]:
    return re.compile(r'panfm_device_last_poll_timestamp_seconds\{device="' + re.escape(name) + r'"\} (\S+)')


def scrape_after_commits(url: str, rounds: int, master: int, window_s: float = 15.0,
                         step_s: float = 1.0) -> dict[str, Any]:
    """Commit a cycle, then scrape every step_s for window_s (a new connection each: either worker), as Prometheus.

    A commit every ~15 s: twice the clock's pace at the default refresh_interval of 30 s.

    Each scrape's latency counts (the scrapes that land right after a commit included), and
    the lag from the commit to the first scrape showing the new poll time (of a device that is up).
    """
    # What Prometheus sends: OpenMetrics first, gzip.
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip", "Accept": PROMETHEUS_ACCEPT}
    for _ in range(6):  # every worker's first scrape of this format renders in the request: not measured
        requests.get(url + "/metrics", headers={**headers, "Connection": "close"}, timeout=120).raise_for_status()
    times, lags, stale = [], [], 0
    cpu = 0.0
    pattern = probe(PROBE_DEVICE[0])
    for _ in range(rounds):
        ts = COMMITS[0]()
        committed = time.monotonic()
        seen: float | None = None
        cpu0 = worker_cpu_s(master)
        while time.monotonic() - committed < window_s:
            t0 = time.perf_counter()
            r = requests.get(url + "/metrics", headers={**headers, "Connection": "close"}, timeout=60)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"/metrics: HTTP {r.status_code}")
            m = pattern.search(r.text)
            if m is not None and abs(float(m.group(1)) - ts) < 1e-3:
                if seen is None:
                    seen = time.monotonic() - committed
            else:
                stale += 1
            time.sleep(step_s)
        cpu += worker_cpu_s(master) - cpu0
        lags.append(seen if seen is not None else float("inf"))
    return {"rounds": rounds, "scrapes": len(times), "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(pct(times, 0.95), 1), "max_ms": round(max(times), 1),
            "scrapes_showing_the_previous_cycle": stale,
            "commit_to_visible_s": {"p50": round(statistics.median(lags), 2), "max": round(max(lags), 2)},
            "worker_cpu_ms_per_scrape": round(cpu * 1000 / len(times), 1)}


def run_web(data: Path, mode: str, scrapes: int, commits: int) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "PANFM_DATA_DIR": str(data), "PANFM_PORT": str(port), "PANFM_BIND_HOST": "127.0.0.1",
           "PANFM_ADMIN_PASSWORD": "bench-initial-password", "PANFM_WEB_WORKERS": "2",
           "PANFM_LOG_LEVEL": "WARNING", "PANFM_METRICS_TOKEN": TOKEN, "PANFM_METRICS_INTERFACES": mode}
    gunicorn = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
                "--access-logfile", "/dev/null", "app:create_app()"]
    proc = subprocess.Popen(gunicorn, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit("gunicorn exited early")
            try:
                requests.get(url + "/api/version", timeout=5).close()
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.1)
        master = proc.pid
        return {"text": scrape(url, None, scrapes, master), "openmetrics": scrape(url, OPENMETRICS, scrapes, master),
                "text_identity": scrape(url, None, scrapes, master, gzip=False),
                "after_commits": scrape_after_commits(url, commits, master),
                "openmetrics_misses": scrape_misses(url, 10, master)}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--interfaces", type=int, default=16, help="interfaces in each device's counters")
    ap.add_argument("--cycles", type=int, default=3, help="collection cycles written")
    ap.add_argument("--interval", type=int, default=30)
    ap.add_argument("--scrapes", type=int, default=50, help="scrapes per mode and format")
    ap.add_argument("--commits", type=int, default=10, help="cycles committed while scraping, per mode")
    ap.add_argument("--modes", default="counted,all", help="metrics_interfaces modes to measure")
    ap.add_argument("--data", type=Path, default=ROOT / "bench/out/metricsdata")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON summary here too")
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    info = build(args.data, args.devices, args.interfaces, args.cycles, args.interval, random.Random(args.seed))
    print(f"data folder: {json.dumps(info)}", file=sys.stderr, flush=True)
    summary: dict[str, Any] = {"fleet": info, "load_before": os.getloadavg(), "modes": {}}
    for mode in args.modes.split(","):
        result = run_web(args.data, mode, args.scrapes, args.commits)
        result["expected_series"] = expected_series(info, mode)
        result["targets"] = {
            "p95_le_200ms": all(result[k]["p95_ms"] <= 200 for k in ("text", "openmetrics", "text_identity",
                                                                      "after_commits")),
            "wire_le_5MB": all(result[k]["wire_bytes"] <= 5_000_000 for k in ("text", "openmetrics")),
            "body_le_5MB": all(result[k]["body_bytes"] <= 5_000_000 for k in ("text", "openmetrics")),
        }
        summary["modes"][mode] = result
        print(f"{mode}: {json.dumps(result)}", file=sys.stderr, flush=True)
    summary["load_after"] = os.getloadavg()
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
