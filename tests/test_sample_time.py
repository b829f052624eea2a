"""Samples dated at their request, with the round trip kept, and rates marked approximate past 2 % of Δt."""

from __future__ import annotations

import sqlite3

import pytest
from helpers.collector import FakeClient, ctr, device
from helpers.web import add_device, make_client

import panfm.collector.metrics as cm
from panfm.collector.cycle import Collector
from panfm.models import CycleResult, DeviceStatus
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.schema import MIGRATIONS, SCHEMA_VERSION, migrate

T0 = 1_800_000_000.0


@pytest.mark.parametrize("prev_ms, cur_ms, dt, want", [
    (10.0, 10.0, 10.0, False),    # 20 ms of 10 s: 0.2 %
    (100.0, 99.0, 10.0, False),   # 199 ms: just under 2 %
    (100.0, 101.0, 10.0, True),   # 201 ms: over 2 %
    (150.0, 5.0, 10.0, False),    # 1.55 %: one slow answer alone does not make it approximate
    (60.0, 60.0, 5.0, True),      # 2.4 % of a 5-s interval
    (None, 5.0, 10.0, True),      # a baseline from before round trips were kept vouches for nothing
    (5.0, 5.0, 0.0, True),
])
def test_a_rate_is_approximate_when_its_two_round_trips_exceed_two_percent_of_the_interval(prev_ms, cur_ms, dt, want):
    assert cm.approximate(prev_ms, cur_ms, dt) is want


def _polls(box, collector, dev, rtts):
    """Poll once per round trip, 10 s apart, 1 MB/s in; return the cycles."""
    box["snapshots"] = [[ctr("ethernet1/1", 10_000_000 * i, 0)] for i in range(len(rtts))]
    cycles = []
    for i, rtt in enumerate(rtts):
        box["now"][0], box["rtt"] = T0 + 10 * i, rtt
        cycle = collector.collect([dev], 30)
        collector.commit(cycle)  # as the clock does after the cycle is stored: the baselines move on
        cycles.append(cycle)
    return cycles


@pytest.fixture
def rig():
    box = {"snapshots": [], "now": [T0], "polls": 0, "inventories": 0, "monitor": None}
    collector = Collector(workers=2, request_timeout=5.0, client_factory=lambda cfg, t, on_key: FakeClient(box),
                          clock=lambda: box["now"][0])
    yield box, collector
    collector.close()


def test_it_dates_a_sample_at_its_request_and_marks_slow_round_trips_approximate(rig):
    box, collector = rig
    cycles = _polls(box, collector, device(), [0.010, 0.010, 0.250, 0.010, 0.010])
    samples = [c.samples[0] for c in cycles]
    assert [s.ts for s in samples] == [T0 + 10 * i for i in range(5)]  # the send times, as the client gave them
    assert [s.rtt_ms for s in samples] == pytest.approx([10.0, 10.0, 250.0, 10.0, 10.0])
    assert [s.inbound_mbps for s in samples] == [None, pytest.approx(8.0), pytest.approx(8.0), pytest.approx(8.0),
                                                 pytest.approx(8.0)]
    # No rate, no flag; the two intervals touching the 250-ms round trip are approximate, the others not.
    assert [s.approx for s in samples] == [None, False, True, True, False]
    ifaces = [c.interfaces[0] for c in cycles]
    assert [i.approx for i in ifaces] == [None, False, True, True, False]


def test_it_keeps_round_trips_and_flags_across_the_store_and_a_clock_restart(rig, tmp_path):
    box, collector = rig
    dev = device()
    with SampleStore.open(tmp_path / HISTORY_DB) as store:
        for c in _polls(box, collector, dev, [0.010, 0.300]):
            store.write_cycle(c)
        baselines = store.load_baselines()
    assert baselines["d1"].rtt_ms == pytest.approx(300.0)
    with SampleReader.open(tmp_path / HISTORY_DB) as reader:
        latest = reader.latest("d1")
        points = reader.history("d1", T0 - 1, T0 + 60).points
        ifaces = reader.interfaces_latest("d1")
    assert latest is not None and latest.rtt_ms == pytest.approx(300.0) and latest.approx is True
    assert [p["approx"] for p in points] == [None, True]
    assert ifaces[0].approx is True
    # A new clock starts from the stored baseline: its 300-ms round trip still counts.
    restarted = Collector(workers=1, request_timeout=5.0, client_factory=lambda cfg, t, on_key: FakeClient(box),
                          clock=lambda: box["now"][0])
    try:
        restarted.restore(baselines, {})
        box["snapshots"] = [[ctr("ethernet1/1", 20_000_000, 0)]]
        box["now"][0], box["rtt"] = T0 + 20, 0.010
        (after,) = restarted.collect([dev], 30).samples
    finally:
        restarted.close()
    assert after.inbound_mbps == pytest.approx(8.0) and after.approx is True  # 310 ms of 10 s


def test_a_database_from_before_round_trips_migrates_keeping_its_samples(tmp_path):
    path = tmp_path / HISTORY_DB
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, MIGRATIONS[:4])  # version 4: before round trips were kept (migration 5)
        conn.execute("INSERT INTO device_samples (device_id, ts, inbound_mbps) VALUES ('d1', ?, 5.0)",
                     (int(T0 * 1000),))
        conn.execute("INSERT INTO baselines (device_id, ts, serial, uptime_seconds, counters) "
                     "VALUES ('d1', ?, NULL, NULL, '{}')", (T0,))
    finally:
        conn.close()
    with SampleStore.open(path) as store:
        (old,) = store.load_baselines().values()
    with SampleReader.open(path) as reader:
        sample = reader.latest("d1")
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert old.rtt_ms is None
    assert sample is not None and sample.inbound_mbps == 5.0 and sample.rtt_ms is None and sample.approx is None


def test_the_api_says_which_rates_are_approximate(rig, tmp_path):
    box, collector = rig
    _app, client = make_client(tmp_path)
    dev_id = add_device(client, "fw-approx", "192.0.2.20")
    dev = device()
    with SampleStore.open(tmp_path / HISTORY_DB) as store:
        for c in _polls(box, collector, dev, [0.010, 0.010, 0.400]):
            store.write_cycle(CycleResult(
                started=c.started, finished=c.finished,
                samples=tuple(s.__class__(**{**s.__dict__, "device_id": dev_id}) for s in c.samples),
                interfaces=tuple(i.__class__(**{**i.__dict__, "device_id": dev_id}) for i in c.interfaces),
                baselines=(), statuses=(DeviceStatus(dev_id, "up", c.finished, c.finished),),
            ))
    latest = client.get(f"/api/throughput?device_id={dev_id}").get_json()["sample"]
    assert latest["approx"] is True and latest["inbound_mbps"] == pytest.approx(8.0)
    start, end = "2027-01-15T08:00:00Z", "2027-01-15T08:01:00Z"  # T0 = 2027-01-15T08:00:00Z
    history = client.get(f"/api/throughput/history?device_id={dev_id}&start={start}&end={end}").get_json()
    assert history["tier"] == "raw"
    assert [p["approx"] for p in history["points"]] == [None, False, True]
    interfaces = client.get(f"/api/interfaces?device_id={dev_id}").get_json()["interfaces"]
    assert [i["approx"] for i in interfaces if i["name"] == "ethernet1/1"] == [True]
    ihist = client.get(f"/api/interfaces/history?device_id={dev_id}&name=ethernet1/1&start={start}&end={end}")
    assert [p["approx"] for p in ihist.get_json()["points"]] == [None, False, True]
