"""Numbers that are right on a real firewall: wrapping session counters, long gaps, commits, races."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
import time

import pytest
from conftest import start_sim
from helpers.collector import MONITOR, FakeClient, ctr, device

import clock
import panfm.collector.metrics as cm
import panfm.ops as ops
from panfm.collector.cycle import Collector
from panfm.models import CounterBaseline, SessionInfo, SystemInfo
from panfm.storage.samples import HISTORY_DB, SampleReader

T0 = 1_800_000_000.0
PA5000_INSTALLED = 4_142_667_796  # a real PA-5000's num-installed: 96.5 % of 2**32


class SessionClient(FakeClient):
    """The scripted firewall, with a `num-installed` from the script."""

    def session_info(self):
        return SessionInfo(active=10, tcp=5, udp=4, icmp=1, max=1000, kbps=1, pps=1, cps=1,
                           installed=self.box["installed"].pop(0))


@pytest.fixture
def rig():
    box = {"snapshots": [], "now": [T0], "polls": 0, "inventories": 0, "monitor": MONITOR, "installed": []}
    collector = Collector(workers=2, request_timeout=5.0, client_factory=lambda cfg, t, on_key: SessionClient(box),
                          clock=lambda: box["now"][0])
    yield box, collector
    collector.close()


def run(box, collector, dev, times, interval=30):
    """Collect and commit one cycle at each time; return the cycles."""
    cycles = []
    for t in times:
        box["now"][0] = t
        cycle = collector.collect([dev], interval)
        collector.commit(cycle)
        cycles.append(cycle)
    return cycles


# ---- item 7: num-installed wraps, it is not a reset signal ------------------------------


def test_it_keeps_the_rate_when_num_installed_wraps_past_2_to_the_32(rig):
    box, collector = rig
    box["snapshots"] = [[ctr("ethernet1/1", 1_000_000, 0)], [ctr("ethernet1/1", 2_250_000, 0)]]
    box["installed"] = [PA5000_INSTALLED, PA5000_INSTALLED + 200_000_000 - 2**32]  # wrapped: now 47,700,500
    _, second = run(box, collector, device(), (T0, T0 + 10))
    assert second.samples[0].inbound_mbps == pytest.approx(1.0)
    assert second.interfaces[0].in_bps == pytest.approx(1_000_000.0)


def test_it_still_sees_a_dataplane_restart_in_the_port_counters():
    prev = CounterBaseline(device_id="d1", ts=T0, serial="0123", uptime_seconds=1000,
                           counters={"ethernet1/1": ctr("ethernet1/1", 10_000_000, 10_000_000)})
    cur = {"ethernet1/1": ctr("ethernet1/1", 100, 100)}
    assert cm.reset_reason(prev, cur, T0 + 5, serial="0123", uptime_seconds=None) == "counters decreased"


# ---- item 8: a long gap is a gap, not one average over hours ----------------------------


@pytest.mark.parametrize(("interval", "dt", "gap"), [
    (30, 300.0, False),  # 5 minutes is the floor: a few missed polls still give a rate
    (30, 300.001, True),
    (5, 299.0, False),
    (120, 360.0, False),  # 3 × the interval when that is longer
    (120, 360.5, True),
    (30, 3 * 3600.0, True),  # the clock stopped for hours
])
def test_it_makes_an_interval_longer_than_the_limit_a_gap(interval, dt, gap):
    prev = CounterBaseline(device_id="d1", ts=T0, serial="0123", uptime_seconds=1000,
                           counters={"ethernet1/1": ctr("ethernet1/1", 0, 0)})
    cur = {"ethernet1/1": ctr("ethernet1/1", 125_000_000, 0)}
    reason = cm.reset_reason(prev, cur, T0 + dt, serial="0123", uptime_seconds=None,
                             max_interval_s=cm.max_interval(interval))
    assert (reason is not None) is gap
    if gap:
        assert reason.startswith("interval too long")


def test_it_stores_a_gap_after_hours_without_polls_and_rates_again_next_interval(rig):
    box, collector = rig
    box["snapshots"] = [[ctr("ethernet1/1", 0, 0)], [ctr("ethernet1/1", 10**12, 10**12)],
                        [ctr("ethernet1/1", 10**12 + 3_750_000, 10**12)]]
    box["installed"] = [1, 2, 3]
    _, late, next_ = run(box, collector, device(), (T0, T0 + 4 * 3600, T0 + 4 * 3600 + 30))
    assert late.samples[0].inbound_mbps is None and late.samples[0].total_mbps is None
    assert all(i.in_bps is None and i.out_bps is None for i in late.interfaces)
    assert next_.samples[0].inbound_mbps == pytest.approx(1.0)


def test_it_makes_the_first_interval_after_a_long_clock_stop_a_gap(rig):
    box, collector = rig
    stopped = CounterBaseline(device_id="d1", ts=T0 - 2 * 3600, serial=None, uptime_seconds=None,
                              counters={"ethernet1/1": ctr("ethernet1/1", 0, 0)})
    collector.restore({"d1": stopped}, {})
    box["snapshots"] = [[ctr("ethernet1/1", 10**11, 0)]]
    box["installed"] = [1]
    (cycle,) = run(box, collector, device(), (T0,))
    assert cycle.samples[0].inbound_mbps is None


def test_a_restarted_clock_does_not_poll_a_device_within_a_second_of_its_stored_last_poll(rig):
    # A clock restarted right after a cycle: its first cycle comes within the second of the
    # stored poll, whose interface rows keep only that second (schema 9). The device waits a cycle.
    box, collector = rig
    last = CounterBaseline(device_id="d1", ts=T0 - 0.4, serial=None, uptime_seconds=None,
                           counters={"ethernet1/1": ctr("ethernet1/1", 0, 0)})
    collector.restore({"d1": last}, {})
    box["snapshots"] = [[ctr("ethernet1/1", 3_750_000, 0)]]
    box["installed"] = [1]
    (skipped,) = run(box, collector, device(), (T0,))
    assert skipped.samples == () and skipped.statuses == () and box["polls"] == 0
    (polled,) = run(box, collector, device(), (T0 + 0.6,))  # a second after the last poll: polled
    assert box["polls"] == 1 and polled.samples[0].inbound_mbps == pytest.approx(3_750_000 * 8 / 1.0 / 1e6)


# ---- item 9: no interval lost or doubled across a failed commit -------------------------


@contextlib.contextmanager
def refusing_samples(db):
    """Make every commit of device samples fail (as a full disk would) while inside."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON dev_raw BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    try:
        yield
    finally:
        conn.execute("DROP TRIGGER refuse")
        conn.close()


def test_it_covers_both_intervals_exactly_after_a_failed_commit(tmp_path, clk):
    with start_sim(tmp_path, devices=1, models="PA-440") as sim:
        (entry,) = sim.inventory
        device_id = clk.add_device(entry)
        first = clk.cycle()
        time.sleep(1.5)
        with refusing_samples(clk.ctx.data_dir / HISTORY_DB), pytest.raises(sqlite3.IntegrityError):
            clock.collect_once(clk.ctx)
        time.sleep(1.5)
        third = clk.cycle()
        (b1,), (b3,) = first.baselines, third.baselines
        truth = sim.truth(entry, b1.ts, b3.ts)["interfaces"]
    dt = b3.ts - b1.ts
    rates = {i.name: i for i in third.interfaces if i.in_bps is not None}
    assert rates, "no interface rate at all"
    for name, sample in rates.items():
        ibytes = b3.counters[name].ibytes - b1.counters[name].ibytes
        assert sample.in_bps == pytest.approx(ibytes * 8 / dt, rel=1e-12)  # from the last committed baseline
        if name in truth:
            assert ibytes == pytest.approx(truth[name]["in_bytes"], rel=0.02)
    with SampleReader.open(clk.ctx.data_dir / HISTORY_DB) as reader:
        stored = reader.history(device_id, b1.ts - 1, b3.ts + 1).points
    assert [p["t"] for p in stored] == [pytest.approx(b1.ts, abs=1e-3), pytest.approx(b3.ts, abs=1e-3)]
    assert clk.ctx.store.load_baselines()[device_id].ts == pytest.approx(b3.ts)


# ---- item 10: inventory and fast polls do not race --------------------------------------


class SwapClient(SessionClient):
    """The scripted firewall, whose calls can run a step of the test while they are in flight."""

    def counters(self):
        during = self.box.get("during_counters")
        if during:
            self.box["during_counters"] = None
            during()
        return super().counters()

    def system_info(self):
        self.box["inventories"] += 1
        info = SystemInfo(hostname="fw", model="PA-440", serial=self.box["serial"], sw_version="11.1.0",
                          uptime_seconds=1000)
        started = self.box.get("system_info_started")
        if started is not None:
            started.set()
            self.box["system_info_release"].wait(10)
        return info


@pytest.fixture
def swap_rig():
    box = {"snapshots": [], "now": [T0], "polls": 0, "inventories": 0, "monitor": MONITOR,
           "installed": [1] * 10, "serial": "0001"}
    collector = Collector(workers=4, request_timeout=5.0, client_factory=lambda cfg, t, on_key: SwapClient(box),
                          clock=lambda: box["now"][0])
    yield box, collector
    collector.close()


def test_it_starts_a_fresh_baseline_when_the_host_changes_during_a_poll(swap_rig):
    box, collector = swap_rig
    old = device()
    new = dataclasses.replace(old, host="127.0.0.9")
    box["snapshots"] = [
        [ctr("ethernet1/1", 1_000_000, 0)],  # the old box
        [ctr("ethernet1/1", 2_250_000, 0)],  # the old box, answering while the admin moves the record
        [ctr("ethernet1/1", 9_000_000_000, 0)],  # the new box: larger counters, no rate to the old ones
        [ctr("ethernet1/1", 9_001_250_000, 0)],
    ]
    run(box, collector, old, (T0,))
    # The edit reaches the collector through the slow job's sync while the fast poll is in flight.
    box["during_counters"] = lambda: collector.collect_slow([new], window_s=300, only=())
    (moved,) = run(box, collector, old, (T0 + 10,))
    fresh, after = run(box, collector, new, (T0 + 20, T0 + 30))
    assert fresh.samples[0].inbound_mbps is None, "a rate spanning two boxes"
    assert all(i.in_bps is None for i in fresh.interfaces)
    assert after.samples[0].inbound_mbps == pytest.approx(1.0)
    assert moved.samples == () and moved.baselines == ()  # the old address's answer is nobody's reading
    assert moved.statuses[0].last_error and "changed during the poll" in moved.statuses[0].last_error


def test_it_starts_a_fresh_baseline_when_the_serial_changes_during_a_poll(swap_rig):
    box, collector = swap_rig
    dev = device()
    collector.collect_slow([dev], window_s=300)  # serial 0001 known
    box["snapshots"] = [
        [ctr("ethernet1/1", 1_000_000, 0)],  # box 0001
        [ctr("ethernet1/1", 2_250_000, 0)],  # box 0001 answers the poll while the slow job meets box 0002
        # box 0002: larger counters (a plausible 400 Mb/s from box 0001's), same uptime as learned
        [ctr("ethernet1/1", 500_000_000, 0)],
        [ctr("ethernet1/1", 501_250_000, 0)],
    ]
    run(box, collector, dev, (T0,))
    # The slow job's `show system info` is in flight when the fast cycle starts and finishes during its poll.
    box["serial"] = "0002"
    box["system_info_started"], box["system_info_release"] = threading.Event(), threading.Event()
    slow = threading.Thread(target=collector.collect_slow, args=([dev],), kwargs={"window_s": 300, "deadline_s": 1.0})
    slow.start()
    assert box["system_info_started"].wait(10)
    box["system_info_started"] = None

    def meet_the_new_box():
        box["system_info_release"].set()
        slow.join(10)

    box["during_counters"] = meet_the_new_box
    during, fresh, after = run(box, collector, dev, (T0 + 10, T0 + 20, T0 + 30))
    assert not slow.is_alive()
    assert fresh.samples[0].inbound_mbps is None, "a rate spanning two boxes"
    assert after.samples[0].inbound_mbps == pytest.approx(1.0)
    assert during.samples[0].inbound_mbps is None and during.baselines == ()  # nothing of it persisted


def test_it_never_changes_the_inventory_an_alert_evaluation_is_iterating(tmp_path, clk):
    with start_sim(tmp_path, devices=2, models="PA-440") as sim:
        one, two = sim.inventory
        first = clk.add_device(one)
        assert ops.collect_slow_once(clk.ctx) == 1
        # An evaluation (the after-cycle hook) is half way through the inventory ...
        held = clk.ctx.inventory
        walking = iter(held.items())
        assert next(walking)[0] == first
        # ... when the slow job stores the documents of the devices it gathered.
        second = clk.add_device(two)
        assert ops.collect_slow_once(clk.ctx) == 2
        assert list(walking) == []  # no "dictionary changed size during iteration"
        assert set(held) == {first}, "the mapping handed out changed under its reader"
        assert set(clk.ctx.inventory) == {first, second}
        with pytest.raises(TypeError):
            clk.ctx.inventory[second] = {}  # type: ignore[index]  # handed out read-only
