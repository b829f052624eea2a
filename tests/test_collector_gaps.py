"""Collector gaps closed: missing interfaces, dataplane details, inventory for new devices."""

from __future__ import annotations

import pytest
from helpers.collector import T0, ctr, device
from helpers.collector import rig as rig

from panfm.models import DeviceConfig, TlsConfig


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
