"""The collector against the real simulator over HTTPS: truth, deadlines, breakers."""

import functools
import time

import pytest
from conftest import LOOPBACK, start_sim

from panfm.collector.cycle import Collector, deadline_for, panos_client_factory
from panfm.models import DeviceConfig, TlsConfig

SIM_CLIENTS = functools.partial(panos_client_factory, policy=LOOPBACK)

pytestmark = pytest.mark.slow


def run_sim(tmp_path, devices=2, models="PA-440,PA-3220", faults=None):
    # A fleet of our own: faults here must not disturb other tests' fleets.
    return start_sim(tmp_path, devices=devices, models=models, faults=faults)


def requests_of(sim, entry):
    return sim.stats(entry)[entry["name"]]["requests_total"]


def device(entry, **kw):
    return DeviceConfig(id=entry["name"], name=entry["name"], host=entry["host"], port=entry["port"],
                        api_key=kw.pop("api_key", entry["api_key"]),
                        tls=TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"]), **kw)


@pytest.fixture
def collector():
    c = Collector(workers=8, request_timeout=5.0, client_factory=SIM_CLIENTS)
    yield c
    c.close()


def test_it_measures_throughput_within_1_percent_of_the_simulators_truth(tmp_path, collector):
    with run_sim(tmp_path, devices=3, models="PA-440,PA-3220,PA-5450") as sim:
        devs = [device(e) for e in sim.inventory]
        first = collector.collect(devs, interval=5)
        collector.commit(first)
        assert all(s.inbound_mbps is None for s in first.samples), "no rate without a baseline, never a zero"
        # A real interval between two real polls, long enough that the jitter between the
        # simulator reading its counters and the response arriving stays far below 1%.
        time.sleep(8)
        second = collector.collect(devs, interval=5)
        assert len(second.samples) == 3
        for entry in sim.inventory:
            before = next(b for b in first.baselines if b.device_id == entry["name"])
            sample = next(s for s in second.samples if s.device_id == entry["name"])
            truth = sim.truth(entry, before.ts, sample.ts)
            ports = [n for n in truth["interfaces"] if n.startswith("ethernet") and "." not in n]
            dt = sample.ts - before.ts
            want_in = sum(truth["interfaces"][n]["in_bytes"] for n in ports) * 8 / dt / 1e6
            want_out = sum(truth["interfaces"][n]["out_bytes"] for n in ports) * 8 / dt / 1e6
            assert sample.inbound_mbps == pytest.approx(want_in, rel=0.01)
            assert sample.outbound_mbps == pytest.approx(want_out, rel=0.01)
            assert sample.total_mbps == pytest.approx(want_in + want_out, rel=0.01)
            assert sample.sessions_active == pytest.approx(truth["sessions"]["active"], rel=0.05)
            assert sample.sessions_utilization_pct == pytest.approx(
                sample.sessions_active / sample.sessions_max * 100)
            # The device value is the busiest dataplane of this very poll, one value per DP of the
            # model. (Control cores being left out is checked on recorded responses in
            # test_collector_metrics: the simulator's truth is an instant value, the device's a
            # 1-minute average, so they cannot be compared closely here.)
            dps = next(d for d in second.dataplanes if d.device_id == entry["name"]).dataplanes
            assert len(dps) == {"PA-440": 1, "PA-3220": 1, "PA-5450": 3}[entry["model"]]
            assert sample.cpu_dataplane_pct == max(pct for _, pct in dps if pct is not None)
            assert 0 < sample.cpu_dataplane_pct <= 100
            assert 0 < sample.memory_pct < 100 and 0 <= sample.cpu_management_pct <= 100
            ifaces = {i.name: i for i in second.interfaces if i.device_id == entry["name"]}
            for name in ports:
                want = truth["interfaces"][name]["in_bytes"] * 8 / dt
                assert ifaces[name].in_bps == pytest.approx(want, rel=0.01), name
                assert ifaces[name].counted


def test_it_keeps_a_blackholed_and_a_slow_device_from_delaying_the_others(tmp_path, collector):
    with run_sim(tmp_path, devices=4, models="PA-440") as sim:
        healthy, hole, slow = sim.inventory[:2], sim.inventory[2], sim.inventory[3]
        sim.fault(hole, "blackhole", 120)
        sim.fault(slow, "slow", 120)
        devs = [device(e) for e in sim.inventory]
        t0 = time.time()
        cycle = collector.collect(devs, interval=5)
        took = time.time() - t0
        budget = deadline_for(5)
        assert took < budget + 1.5, "the cycle waited longer than one device's deadline"
        by_id = {s.device_id: s for s in cycle.statuses}
        for entry in healthy:
            assert by_id[entry["name"]].state == "up"
            sample = next(s for s in cycle.samples if s.device_id == entry["name"])
            assert sample.ts - t0 < 1.5, "a healthy device was sampled late"
        for entry in (hole, slow):
            assert by_id[entry["name"]].state == "down" and by_id[entry["name"]].last_error
            assert entry["api_key"] not in by_id[entry["name"]].last_error


def test_it_opens_the_breaker_after_three_failures_and_closes_it_on_a_good_probe(tmp_path):
    offset = [0.0]
    collector = Collector(workers=4, request_timeout=5.0, clock=lambda: time.time() + offset[0],
                          client_factory=SIM_CLIENTS)
    try:
        with run_sim(tmp_path, devices=1, models="PA-440") as sim:
            entry = sim.inventory[0]
            devs = [device(entry)]
            sim.fault(entry, "http500", 600)
            states = [collector.collect(devs, interval=5).statuses[0].state for _ in range(3)]
            assert states == ["down", "down", "breaker_open"]
            sim.fault(entry, "none")
            before = requests_of(sim, entry)
            skipped = collector.collect(devs, interval=5).statuses[0]
            assert skipped.state == "breaker_open"
            assert requests_of(sim, entry) == before, "an open breaker still sent requests"
            offset[0] += 5.0  # one interval later: the probe is due
            probe = collector.collect(devs, interval=5)
            assert probe.statuses[0].state == "up" and probe.statuses[0].consecutive_failures == 0
            assert len(probe.samples) == 1
    finally:
        collector.close()


def test_it_keeps_the_client_and_its_key_across_cycles_and_rebuilds_it_on_edit(tmp_path, collector):
    with run_sim(tmp_path, devices=1, models="PA-VM") as sim:
        entry = sim.inventory[0]
        dev = device(entry, api_key=None, username=entry["username"], password=entry["password"])
        for _ in range(3):
            assert collector.collect([dev], interval=5).statuses[0].state == "up"
        stats = sim.stats(entry)[entry["name"]]
        assert stats["keygen"] == 1, "the key was not cached across cycles"
        edited = DeviceConfig(**{**dev.__dict__, "interfaces": ("ethernet1/1",)})
        cycle = collector.collect([edited], interval=5)
        assert cycle.statuses[0].state == "up"
        counted = {i.name for i in cycle.interfaces if i.counted}
        assert counted == {"ethernet1/1"}


def test_it_stores_a_gap_not_a_spike_after_a_reboot_and_a_replacement(tmp_path, collector):
    with run_sim(tmp_path, devices=2, models="PA-440") as sim:
        rebooted, replaced = sim.inventory
        devs = [device(e) for e in sim.inventory]
        assert len(collector.collect_slow(devs, window_s=300)) == 2  # serial and uptime known
        collector.commit(collector.collect(devs, interval=5))
        sim.fault(rebooted, "reboot")
        sim.fault(replaced, "replace")
        time.sleep(0.5)
        devs[1] = DeviceConfig(**{**devs[1].__dict__, "tls": TlsConfig("insecure")})  # the new box has a new cert
        cycle = collector.collect(devs, interval=5)
        collector.commit(cycle)
        for s in cycle.samples:
            assert s.inbound_mbps is None and s.outbound_mbps is None, s.device_id
        assert all(i.in_bps is None for i in cycle.interfaces)
        time.sleep(1.0)
        after = collector.collect(devs, interval=5)
        assert all(s.inbound_mbps is not None and s.inbound_mbps > 0 for s in after.samples)


def test_it_gathers_inventory_threat_counts_and_link_speeds_in_the_slow_job(tmp_path, collector):
    with run_sim(tmp_path, devices=1, models="PA-3220") as sim:
        entry = sim.inventory[0]
        [(device_id, ts, doc)] = collector.collect_slow([device(entry)], window_s=300)
        assert device_id == entry["name"] and ts == pytest.approx(time.time(), abs=30)
        assert doc["system"]["serial"] == entry["serial"] and doc["system"]["uptime_seconds"] > 0
        assert doc["errors"] == {}, doc["errors"]
        assert set(doc["threats"]) == {"critical", "high", "medium"}
        assert isinstance(doc["blocked_urls"], int) and isinstance(doc["gp_users"], int)
        assert "enabled" in doc["ha"] and isinstance(doc["licenses"], list)
        speeds = {i["name"]: i["speed_mbps"] for i in doc["interfaces"]}
        assert any(v for n, v in speeds.items() if n.startswith("ethernet"))
