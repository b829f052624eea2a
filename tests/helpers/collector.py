"""Collector helpers: a scripted firewall client, counter and device builders, and the `rig` fixture."""

from __future__ import annotations

import pytest

from panfm.collector.cycle import Collector
from panfm.models import (
    CounterSnapshot,
    DataplaneLoad,
    DeviceConfig,
    HaState,
    InterfaceCounters,
    InterfaceInfo,
    ResourceMonitor,
    SessionInfo,
    SystemInfo,
    SystemResources,
    TlsConfig,
)

T0 = 1_800_000_000.0


def ctr(name, ibytes, obytes):
    return InterfaceCounters(name=name, ibytes=ibytes, obytes=obytes, ipackets=ibytes // 100,
                             opackets=obytes // 100, ierrors=0, idrops=0, source="hw")


class FakeClient:
    """A scripted firewall: counters from a list, fixed gauges, a small inventory."""

    def __init__(self, box):
        self.box = box
        self.last_sent_time = 0.0
        self.last_round_trip = 0.0

    def counters(self):
        self.box["polls"] += 1
        snap = self.box["snapshots"].pop(0)
        self.last_sent_time = self.box["now"][0]
        self.last_round_trip = self.box.get("rtt", 0.005)
        return CounterSnapshot(hw={c.name: c for c in snap}, ifnet={})

    def session_info(self):
        return SessionInfo(active=10, tcp=5, udp=4, icmp=1, max=1000, kbps=1, pps=1, cps=1)

    def resource_monitor(self, period="minute", last=1):
        return self.box["monitor"]

    def mp_cpu(self):
        return 3.0

    def system_resources(self):
        return SystemResources(1.0, 1.0, 98.0, 100, 50, 50)

    def system_info(self):
        self.box["inventories"] += 1
        return SystemInfo(hostname="fw", model="PA-440", serial="0001", sw_version="11.1.0", uptime_seconds=1000)

    def ha_state(self):
        return HaState(enabled=False)

    def licenses(self):
        return []

    def interfaces(self):
        return [InterfaceInfo(name="ethernet1/1", kind="physical", speed_mbps=1000, zone="trust")]

    def gp_users(self):
        return []

    def log_query(self, log_type, query, nlogs, deadline_s, fields=None, first_wait_s=0.0):
        return []

    # The job API the inventory uses: enqueue now, read later. A scripted firewall answers at the
    # read, through `log_query` / `report`, so subclasses script one method per kind.
    def start_log_query(self, log_type, query=None, nlogs=20, *, fields=None, deadline_s=None, skip=0):
        self.box.setdefault("enqueued", []).append(f"log:{log_type}")
        # `skip` only for a later page (a scripted `log_query` that pages takes it).
        return ("log", (log_type, query, nlogs), {"fields": fields, **({"skip": skip} if skip else {})})

    def start_report(self, name, *, start=None, end=None, period=None, topn=25, deadline_s=None):
        self.box.setdefault("enqueued", []).append(f"report:{name}")
        return ("report", (name,), {"start": start, "end": end, "period": period, "topn": topn})

    def job_entries(self, job, deadline_s, first_wait_s=0.0):
        kind, args, kw = job
        if kind == "log":
            return self.log_query(*args, deadline_s, first_wait_s=first_wait_s, **kw)
        return self.report(*args, deadline_s=deadline_s, first_wait_s=first_wait_s, **kw)

    def stop_job(self, job):
        self.box.setdefault("stopped", []).append(job[1][0])

    def close(self):
        pass


MONITOR = ResourceMonitor(period="minute", dataplanes=(
    DataplaneLoad(name="dp0", cpu_average={0: (0, 0), 1: (20, 10), 2: (40, 30)}, cpu_maximum={}, tasks={},
                  utilization={}),
    DataplaneLoad(name="dp1", cpu_average={0: (0, 0), 1: (5, 5)}, cpu_maximum={}, tasks={}, utilization={}),
))


@pytest.fixture
def rig():
    box = {"snapshots": [], "now": [T0], "polls": 0, "inventories": 0, "monitor": MONITOR}
    collector = Collector(workers=2, request_timeout=5.0, client_factory=lambda cfg, t, on_key: FakeClient(box),
                          clock=lambda: box["now"][0])
    yield box, collector
    collector.close()


def device(**kw):
    return DeviceConfig(id="d1", name="fw-1", host="127.0.0.1", tls=TlsConfig("insecure"), api_key="k", **kw)
