"""The demo's week of history: what PANfm would have collected, had it polled the simulator all week.

`backfill(data_dir, inventory, now, step)` asks each simulated firewall for its past readings
(`GET /_sim/history`: its own traffic model, the same one `/_sim/truth` answers from), turns them
into samples exactly as a poll would (rates over the counted ports, sessions, CPU, memory) and
writes them through `import_samples`, the write path of `import-panfm`. The last day is at the
refresh interval but at least a minute apart, older days at 5 minutes (the 7-day chart reads
5-minute rollups anyway): the backfill stays within its 30 s on a loaded machine.

`demo-history.json` in the data folder records the backfill: a second `make demo` finds it and
backfills nothing, and the pages show a "demo data" badge while it is there. A new folder also
gets `DEMO_RULES` (unless it has rules of its own), replayed over the week (`replay_alerts`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import config
from alerts import replay_evaluations
from panfm.models import CycleResult, DeviceConfig, DeviceSample, DeviceStatus, InterfaceSample
from panfm.ops.import_1x import import_samples
from throughput_storage import (
    ALERTS_DB,
    HISTORY_DB,
    DeviceStore,
    DocTable,
    SampleReader,
    SampleStore,
    StorageUnavailable,
)

MARKER = "demo-history.json"
DAYS = 7
FINE_S = 86400  # the newest day at the refresh interval (at least MIN_STEP_S)
COARSE_STEP_S = 300
ALERT_STEP_S = 300  # the week's alert rules are replayed every 5 minutes
# The demo's rule set: thresholds a busy afternoon crosses, so the week holds a few incidents.
DEMO_RULES: tuple[dict[str, Any], ...] = (
    {"id": "demo-dp-cpu", "name": "Dataplane CPU above 40 %", "metric": "cpu_dataplane_pct", "operator": ">",
     "threshold": 40, "clear_threshold": 35, "for_s": 600, "severity": "warning", "device_id": None},
    {"id": "demo-session-table", "name": "Session table above 15 %", "metric": "sessions_utilization_pct",
     "operator": ">", "threshold": 15, "clear_threshold": 12, "for_s": 900, "severity": "info", "device_id": None},
)
# The newest day's step at least: 60 s halves its points against the 30 s default (the 24-hour
# chart groups to about a minute anyway) and keeps `make demo` within 30 s when the cores are busy.
MIN_STEP_S = 60.0


class BackfillError(Exception):
    """The simulator did not give the history (the message says which device and why)."""


@dataclass(frozen=True)
class Backfill:
    """What a backfill wrote."""

    start: float
    end: float
    devices: tuple[str, ...]
    samples: int
    interface_samples: int
    seconds: float
    incidents: int = 0

    def as_doc(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "devices": list(self.devices), "samples": self.samples,
                "interface_samples": self.interface_samples, "incidents": self.incidents,
                "seconds": round(self.seconds, 2)}


def marker(data_dir: Path) -> dict[str, Any] | None:
    """The record of the demo's backfill in this data folder, or None (not a backfilled demo folder)."""
    try:
        doc = json.loads((data_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def has_samples(data_dir: Path) -> bool:
    """Whether the folder's sample database holds any sample."""
    if not (data_dir / HISTORY_DB).exists():
        return False
    try:
        with SampleReader.open(data_dir / HISTORY_DB) as reader:
            return bool(reader.latest_all())
    except StorageUnavailable:
        return False


def fetch(entry: Mapping[str, Any], query: Mapping[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """GET /_sim/history from one inventory entry's port, trusting only its pinned certificate."""
    ctx = ssl.create_default_context()
    # The simulator's certificate is self-signed: trust is the pinned SHA-256 checked below.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(str(entry["host"]), int(entry["port"]), timeout=timeout, context=ctx)
    try:
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True) if isinstance(conn.sock, ssl.SSLSocket) else None
        if der is None or hashlib.sha256(der).hexdigest() != entry["tls_fingerprint_sha256"]:
            raise BackfillError(f"{entry['name']}: the simulator's certificate does not match the inventory")
        conn.request("GET", "/_sim/history?" + urlencode({**query, "device": entry["name"]}))
        resp = conn.getresponse()
        body = resp.read()
    except OSError as exc:
        raise BackfillError(f"{entry['name']}: simulator unreachable ({exc})") from None
    finally:
        conn.close()
    if resp.status != 200:
        raise BackfillError(f"{entry['name']}: /_sim/history answered {resp.status}: {body[:200]!r}")
    doc: dict[str, Any] = json.loads(body)
    return doc


def to_samples(device: DeviceConfig, doc: Mapping[str, Any]) -> Iterator[tuple[DeviceSample, list[InterfaceSample]]]:
    """Turn /_sim/history points into what the collector would have stored for them.

    Interface rates are Δbytes × 8 / Δt; the device's in/out sum its counted ports (the chosen
    interfaces, else every physical port), as `interface_rates` does for a live poll.
    """
    step = float(doc["step"])
    counted = set(device.interfaces) if device.interfaces else set(doc["physical"])
    for p in doc["points"]:
        t = float(p["t"])
        ifaces: list[InterfaceSample] = []
        tot = [0.0, 0.0, 0.0, 0.0]
        for name in sorted(p["bytes"]):
            ib, ob = (v * 8.0 / step for v in p["bytes"][name])
            ip, op = (v / step for v in p["packets"][name])
            is_counted = name in counted
            ifaces.append(InterfaceSample(device.id, name, t, ib, ob, ip, op, 0.0, 0.0, is_counted, False))
            if is_counted:
                tot = [tot[0] + ib, tot[1] + ob, tot[2] + ip, tot[3] + op]
        ses = p["sessions"]
        active, smax = int(ses["active"]), int(ses["max"])
        tcp, udp = int(active * 0.71), int(active * 0.27)
        yield DeviceSample(
            device_id=device.id, ts=t,
            inbound_mbps=tot[0] / 1e6, outbound_mbps=tot[1] / 1e6, total_mbps=(tot[0] + tot[1]) / 1e6,
            inbound_pps=tot[2], outbound_pps=tot[3],
            sessions_active=active, sessions_tcp=tcp, sessions_udp=udp, sessions_icmp=active - tcp - udp,
            sessions_max=smax, sessions_utilization_pct=active / smax * 100.0 if smax else None,
            sessions_cps=int(ses["cps"]), sessions_kbps=int(ses["kbps"]), sessions_pps=int(ses["pps"]),
            cpu_dataplane_pct=float(p["dataplane_pct"]), cpu_management_pct=float(p["management_pct"]),
            memory_pct=float(p["memory_pct"]), packet_buffer_pct=float(p["packet_buffer_pct"]),
            packet_descriptor_pct=float(p["packet_descriptor_pct"]), approx=False,
        ), ifaces


def replay_alerts(
    data_dir: Path, samples: Sequence[DeviceSample], rules: Sequence[Mapping[str, Any]], names: Mapping[str, str]
) -> int:
    """Evaluate `rules` over the backfilled samples every 5 minutes, oldest first; return incidents opened.

    Each step is one cycle of the clock's own evaluation (`replay_evaluations`, one alerts.db
    transaction for the week) with the newest sample of each device in those 5 minutes: the
    week's incidents open and resolve as they would have. Nothing is sent for the past.
    """
    steps: dict[int, dict[str, DeviceSample]] = {}
    for s in samples:
        latest = steps.setdefault(int(s.ts // ALERT_STEP_S), {})
        if s.device_id not in latest or latest[s.device_id].ts < s.ts:
            latest[s.device_id] = s
    def cycles() -> Iterator[CycleResult]:
        for step in sorted(steps):
            rows = tuple(steps[step].values())
            at = max(r.ts for r in rows)
            yield CycleResult(at, at, rows, (), (), tuple(DeviceStatus(r.device_id, "up", r.ts, r.ts) for r in rows))

    transitions = replay_evaluations(data_dir / ALERTS_DB, rules, cycles(), device_names=names,
                                     device_enabled=dict.fromkeys(names, True))
    return sum(1 for t in transitions if t.kind == "firing")


def windows(now: float, step: float, days: int = DAYS) -> list[tuple[float, float, float]]:
    """The (from, to, step) spans to ask for: older days at 5 minutes, the newest day at `step`."""
    end = now // step * step
    split = (end - FINE_S) // COARSE_STEP_S * COARSE_STEP_S
    start = (end - days * 86400) // COARSE_STEP_S * COARSE_STEP_S
    return [(start, split, float(COARSE_STEP_S)), (split, end, float(step))]


def backfill(
    data_dir: Path, inventory: Sequence[Mapping[str, Any]], now: float, step: float, days: int = DAYS
) -> Backfill | None:
    """Write `days` of history for the inventory's devices unless this folder has it already.

    Returns what was written, or None when `demo-history.json` says it was done before or the
    folder holds collected samples already (a demo folder of an older PANfm: its history stays
    its own, never interleaved with a simulated week).
    """
    if marker(data_dir) is not None or has_samples(data_dir):
        return None
    began = time.monotonic()
    store_devices = {d.name: d for d in DeviceStore(data_dir, config.SecretBox.for_data_dir(data_dir),
                                                    clock=time.time).list()}
    samples: list[DeviceSample] = []
    ifaces: list[InterfaceSample] = []
    names = []
    # One thread asks the simulator (its own process computes) while this one turns the answers
    # already in into samples: the two overlap instead of taking turns.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-history") as pool:
        jobs = []
        for entry in inventory:
            device = store_devices.get(str(entry["name"]))
            if device is None:
                continue
            names.append(device.name)
            for t1, t2, s in windows(now, step, days):
                query = {"from": repr(t1), "to": repr(t2), "step": repr(s)}
                jobs.append((device, pool.submit(fetch, entry, query)))
        try:
            for device, job in jobs:
                for sample, rows in to_samples(device, job.result()):
                    samples.append(sample)
                    ifaces.extend(rows)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no more questions for a failed backfill
            raise
    with SampleStore.open(data_dir / HISTORY_DB) as store:
        written = import_samples(store, samples, now, interfaces=ifaces)
    rules = DocTable(data_dir, "alert_rules", clock=time.time)
    if not rules.list():  # a folder with rules of its own keeps them
        for doc in DEMO_RULES:
            rules.put(doc)
    incidents = replay_alerts(data_dir, samples, rules.list(), {d.id: d.name for d in store_devices.values()})
    spans = windows(now, step, days)
    done = Backfill(spans[0][0], spans[-1][1], tuple(names), written, len(ifaces), time.monotonic() - began,
                    incidents)
    config.atomic_write(data_dir / MARKER, json.dumps(done.as_doc(), indent=1).encode())
    return done
