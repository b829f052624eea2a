"""The traffic model: exact integrals, monotonic counters, ports busy but under link speed."""

from __future__ import annotations

import math
import re
import time
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panos_sim.device import Device
from panos_sim.platforms import PLATFORMS
from panos_sim.traffic import DeviceLoad, Flow

NOW = 1_760_000_000.0


def make(model="PA-3220", seed=7, index=1):
    return Device(index, f"fw-{index:03d}", PLATFORMS[model], seed, NOW)


def test_it_is_deterministic_for_a_seed_and_differs_across_seeds():
    a, b, c = make(seed=7), make(seed=7), make(seed=8)
    assert a.counters(NOW + 10)["ethernet1/1"]["ibytes"] - a.counter_base == \
        b.counters(NOW + 10)["ethernet1/1"]["ibytes"] - b.counter_base
    assert a.flows["ethernet1/1/in"].rate(NOW) != c.flows["ethernet1/1/in"].rate(NOW)


@settings(max_examples=60, deadline=None)
@given(t1=st.floats(0, 30 * 86400), width=st.floats(0.5, 7200))
def test_it_integrates_the_rate_exactly(t1, width):
    flow = make().flows["ethernet1/2/in"]
    a = NOW + t1
    b = a + width
    # Simpson's rule over pieces of 1 s can't see the burst edges exactly, so compare with a fine midpoint sum.
    steps = max(int(width * 4), 8)
    h = width / steps
    numeric = sum(flow.rate(a + (i + 0.5) * h) for i in range(steps)) * h
    exact = flow.bytes_between(a, b)
    assert exact == pytest.approx(numeric, rel=0.02)


@pytest.mark.parametrize("model", sorted(PLATFORMS))
def test_it_keeps_every_port_busy_and_under_link_speed_at_every_sampled_hour(model):
    dev = make(model, index=3)
    for hour in range(0, 24 * 14):
        t = NOW + hour * 3600.0 + (hour * 7919) % 3600
        for port in dev.platform.physical():
            for d in ("in", "out"):
                bps = dev.flows[f"{port.name}/{d}"].rate(t) * 8
                assert 0 < bps < port.speed_mbps * 1e6, (port.name, hour)
            # over the whole hour, too: never exactly zero bytes
            assert dev.flows[f"{port.name}/in"].bytes_between(t, t + 3600) > 0


@settings(max_examples=40, deadline=None)
@given(offsets=st.lists(st.floats(0, 86400 * 3), min_size=2, max_size=12))
def test_it_never_lets_a_counter_decrease(offsets):
    dev = make("PA-5450", index=2)
    times = sorted(NOW + o for o in offsets)
    prev = None
    for t in times:
        c = dev.counters(t)
        if prev is not None:
            for name, vals in c.items():
                for k, v in vals.items():
                    assert v >= prev[name][k], (name, k)
        prev = c


def test_it_starts_counters_above_2_40_and_makes_the_aggregate_the_sum_of_its_members():
    dev = make("PA-440")
    c = dev.counters(NOW)
    members = [p.name for p in dev.platform.ports if p.parent == "ae1"]
    assert len(members) == 2
    assert c["ethernet1/1"]["ibytes"] > 2**40
    assert c["ae1"]["ibytes"] == sum(c[m]["ibytes"] for m in members)
    assert c["ethernet1/1.100"]["ibytes"] < c["ethernet1/1"]["ibytes"]


def test_it_restarts_counters_from_zero_on_reboot_and_replace():
    dev = make()
    dev.reboot(NOW)
    assert dev.counters(NOW + 1)["ethernet1/1"]["ibytes"] < 10**10
    serial = dev.serial
    dev.replace(NOW + 100)
    assert dev.serial != serial
    assert dev.counters(NOW + 100)["ethernet1/1"]["ibytes"] == 0


def test_it_moves_traffic_away_on_failover_and_back():
    dev = make(index=1)
    assert dev.ha_enabled and dev.ha_state == "active"
    before = dev.truth(NOW, NOW + 60)["interfaces"]["ethernet1/1"]["in_bytes"]
    dev.failover(NOW + 60)
    passive = dev.truth(NOW + 60, NOW + 120)["interfaces"]["ethernet1/1"]["in_bytes"]
    assert 0 < passive < before / 100
    assert dev.sessions(NOW + 90)["kbps"] < dev.sessions(NOW + 30)["kbps"]


def test_it_ties_sessions_and_cpu_to_the_traffic():
    dev = make("PA-VM", index=5)
    samples = [NOW + h * 3600 for h in range(24)]
    kbps = [dev.sessions(t)["kbps"] for t in samples]
    active = [dev.sessions(t)["active"] for t in samples]
    cpu = [dev.dp_cpu_avg(t) for t in samples]
    busiest = max(range(24), key=kbps.__getitem__)
    quietest = min(range(24), key=kbps.__getitem__)
    assert active[busiest] > active[quietest]
    assert cpu[busiest] > cpu[quietest]
    assert all(0 < a <= dev.platform.num_max for a in active)
    assert all(1 <= dev.mp_cpu(t) <= 40 for t in samples)
    installed = [dev.sessions(t)["installed"] for t in samples]
    assert installed == sorted(installed)


def test_it_has_a_daily_curve_with_bursts():
    load = DeviceLoad(7, "fw-001")
    values = [load.value(NOW + m * 60) for m in range(24 * 60)]
    assert max(values) / min(values) > 2
    assert any(load.burst(NOW + s - 1.7e9) > 0 for s in range(0, 2 * 86400, 30))
    assert Flow(7, "fw-001", "x", 1.0, load).bytes_between(NOW, NOW) == 0


def _counters(fleet, entry):
    from urllib.parse import urlencode
    body = urlencode({"type": "op", "cmd": "<show><counter><interface>all</interface></counter></show>"}).encode()
    status, _, _, data = fleet.request(entry, "POST", "/api/", body,
                                       {"X-PAN-KEY": entry["api_key"],
                                        "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    root = ET.fromstring(data)
    return {e.findtext("name"): (int(e.findtext("ibytes")), int(e.findtext("obytes")))
            for e in root.findall("result/ifnet/ifnet/entry")}


def test_it_serves_counters_whose_increase_equals_the_truth_exactly(sim_fleet):
    entry = sim_fleet.inventory[2]
    t1 = time.time()
    c1 = _counters(sim_fleet, entry)
    t1b = time.time()
    time.sleep(0.5)
    t2 = time.time()
    c2 = _counters(sim_fleet, entry)
    t2b = time.time()
    # The device reads the clock between t and tb; the truth over the bracketing windows brackets the delta.
    wide = sim_fleet.truth(entry, t1, t2b)["interfaces"]
    narrow = sim_fleet.truth(entry, t1b, t2)["interfaces"]
    for name, (ib, ob) in c2.items():
        if not re.match(r"ethernet|ae", name):
            continue
        delta_in = ib - c1[name][0]
        assert narrow[name]["in_bytes"] <= delta_in <= wide[name]["in_bytes"], name
        assert delta_in > 0
        assert math.isfinite(ob)


def test_it_gives_the_exact_increase_between_two_counter_readings():
    dev = make("PA-5450", index=4)
    t1, t2 = NOW + 12.25, NOW + 19.75
    c1, c2 = dev.counters(t1), dev.counters(t2)
    truth = dev.truth(t1, t2)
    for name in c1:
        assert truth["interfaces"][name]["in_bytes"] == c2[name]["ibytes"] - c1[name]["ibytes"]
        assert truth["interfaces"][name]["out_bytes"] == c2[name]["obytes"] - c1[name]["obytes"]
    assert set(truth) >= {"interfaces", "sessions", "cpu"}


def test_the_truth_of_a_window_holding_a_reboot_adds_up_what_each_boot_counted():
    dev = make("PA-3220", index=2)
    t1, reboot_at, t2 = NOW + 10.0, NOW + 17.5, NOW + 30.0
    before = dev.counters(reboot_at)
    start = dev.counters(t1)
    dev.reboot(reboot_at)
    after = dev.counters(t2)
    truth = dev.truth(t1, t2)["interfaces"]
    for name in after:
        counted = (before[name]["ibytes"] - start[name]["ibytes"]) + after[name]["ibytes"]
        assert truth[name]["in_bytes"] == counted, name
    # The window before the reboot keeps its truth (it used to answer 0 once the device rebooted).
    old = dev.truth(t1, reboot_at)["interfaces"]["ethernet1/1"]["in_bytes"]
    assert old == before["ethernet1/1"]["ibytes"] - start["ethernet1/1"]["ibytes"] > 0
    # About as many bytes as a window of the same length without a reboot.
    plain = make("PA-3220", index=2).truth(t1, t2)["interfaces"]["ethernet1/1"]["in_bytes"]
    assert truth["ethernet1/1"]["in_bytes"] == pytest.approx(plain, abs=2)


def test_the_truth_before_the_first_boot_is_zero_for_every_interface():
    dev = make()
    early = dev.truth(dev.boot - 100, dev.boot - 50)["interfaces"]
    assert early and all(v == {"in_bytes": 0, "out_bytes": 0} for v in early.values())
