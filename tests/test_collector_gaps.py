"""Collector gaps closed: missing interfaces, dataplane details, inventory for new devices."""

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

    def log_query(self, log_type, query, nlogs, deadline_s):
        return []

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


def test_it_stores_a_device_total_gap_when_a_counted_interface_is_missing_from_one_poll(rig):
    box, collector = rig
    dev = device()
    box["snapshots"] = [
        [ctr("ethernet1/1", 0, 0), ctr("ethernet1/2", 0, 0)],
        [ctr("ethernet1/1", 1_250_000, 0), ctr("ethernet1/2", 1_250_000, 0)],
        [ctr("ethernet1/1", 2_500_000, 0)],  # ethernet1/2 missing from this poll
        [ctr("ethernet1/1", 3_750_000, 0)],
    ]
    totals = []
    for i in range(4):
        box["now"][0] = T0 + 10 * i
        cycle = collector.collect([dev], 30)
        collector.commit(cycle)
        totals.append(cycle.samples[0].inbound_mbps)
        if i == 2:
            ifaces = {s.name: s.in_bps for s in cycle.interfaces}
    assert totals[0] is None and totals[1] == pytest.approx(2.0)
    assert totals[2] is None  # never the 1 Mb/s of ethernet1/1 alone
    assert ifaces == {"ethernet1/1": pytest.approx(1_000_000.0)}  # the interface that answered keeps its rate
    assert totals[3] == pytest.approx(1.0)  # the port is gone: totals resume over what is there


def test_it_lists_a_new_device_as_inventory_due_until_its_inventory_is_gathered(rig):
    box, collector = rig
    dev = device()
    box["snapshots"] = [[ctr("ethernet1/1", 0, 0)] for _ in range(4)]
    assert collector.inventory_due(T0) == []  # never polled: nothing known to answer
    collector.collect([dev], 30)
    assert collector.inventory_due(T0) == ["d1"]
    ((device_id, _ts, doc),) = collector.collect_slow([dev], window_s=300, only=["d1"])
    assert device_id == "d1" and doc["interfaces"][0]["speed_mbps"] == 1000
    assert collector.inventory_due(T0 + 1) == []
    edited = device(interfaces=("ethernet1/1",))
    collector.collect([edited], 30)
    assert collector.inventory_due(T0 + 1) == []  # asked less than a minute ago
    assert collector.inventory_due(T0 + 61) == ["d1"]  # the edited record has no inventory yet


def test_it_gathers_only_the_devices_asked_for_and_keeps_the_others(rig):
    box, collector = rig
    one, two = device(), DeviceConfig(id="d2", name="fw-2", host="127.0.0.2", tls=TlsConfig("insecure"), api_key="k")
    assert [d for d, _t, _doc in collector.collect_slow([one, two], window_s=300, only=["d2"])] == ["d2"]
    assert box["inventories"] == 1
    assert [d for d, _t, _doc in collector.collect_slow([one, two], window_s=300)] == ["d1", "d2"]
