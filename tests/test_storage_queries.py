"""throughput_history.db reads: tier choice, the 2,000-point cap with peaks kept, gaps, latest, summary."""

import sqlite3

import pytest
from helpers.storage import T0, cycle, sample

import panfm.storage.rollups as storage_rollups
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.schema import DEVICE_METRICS

DAY = 86400
NOW = T0 + 200 * DAY  # the history fixture ends here
SPIKE_T = NOW - 2 * 3600 + 15


def _raw_row(dev, ts, inbound):
    s = sample(dev, ts, inbound=inbound)
    return (dev, round(ts * 1000), *(getattr(s, m) for m in DEVICE_METRICS))


@pytest.fixture(scope="module")
def history_db(tmp_path_factory):
    """One device, filled as the clock fills it: raw 30 s for 8 days, 5m and 1h for 100 days.

    Older days are written raw at 5-minute steps, rolled up, then their raw rows deleted
    (what retention does), so the rollup tiers reach further back than raw.
    """
    db = tmp_path_factory.mktemp("hist") / HISTORY_DB
    SampleStore.open(db).close()
    start = NOW - 100 * DAY
    raw_from = NOW - 8 * DAY
    old = [_raw_row("fw1", t, 50.0 + (t % 3600) / 100) for t in range(int(start), int(raw_from), 300)]
    recent = [_raw_row("fw1", raw_from + 30 * k, 50.0 + k % 40) for k in range(int(8 * DAY / 30))]
    recent = [r for r in recent if r[1] != round(SPIKE_T * 1000)]
    recent.append(_raw_row("fw1", SPIKE_T, 9999.0))
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        cols = ", ".join(("device_id", "ts", *DEVICE_METRICS))
        marks = ", ".join("?" * (len(DEVICE_METRICS) + 2))
        conn.execute("BEGIN")
        conn.execute("INSERT INTO known_devices VALUES ('fw1')")
        conn.executemany(f"INSERT OR REPLACE INTO device_samples ({cols}) VALUES ({marks})", old + recent)
        for tier in ("5m", "1h"):
            storage_rollups.rollup_range(conn, tier, int(start) - 3600, int(NOW) + 3600)
        conn.execute("DELETE FROM device_samples WHERE ts < ?", (round(raw_from * 1000),))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return db


@pytest.fixture
def reader(history_db):
    with SampleReader.open(history_db) as r:
        yield r


@pytest.mark.parametrize(
    ("hours", "tier", "bucket_s"),
    [(1, "raw", None), (24, "raw", 60), (7 * 24, "5m", 600), (30 * 24, "5m", 1800), (90 * 24, "1h", 7200)],
)
def test_it_picks_the_tier_that_covers_the_range_within_2000_points(reader, hours, tier, bucket_s):
    h = reader.history("fw1", NOW - hours * 3600, NOW)
    assert (h.tier, h.bucket_s) == (tier, bucket_s)
    assert len(h.points) <= 2000
    assert len(h.points) >= 0.45 * min(2000, hours * 3600 / (bucket_s or 30))  # not thinned to nothing
    ts = [p["t"] for p in h.points]
    assert ts == sorted(ts) and NOW - hours * 3600 - (bucket_s or 0) <= ts[0] and ts[-1] < NOW


@pytest.mark.parametrize("hours", [24, 7 * 24, 30 * 24, 90 * 24])
def test_it_keeps_the_peak_when_grouping_points(reader, hours):
    h = reader.history("fw1", NOW - hours * 3600, NOW)
    peak = max(h.points, key=lambda p: p["inbound_mbps_max"] or 0)
    assert peak["inbound_mbps_max"] == 9999.0
    assert peak["t"] <= SPIKE_T < peak["t"] + h.bucket_s
    assert peak["inbound_mbps"] < 9999.0  # the average of the bucket, not the peak
    assert peak["total_mbps_max"] == 9999.0 + 5.0


def test_it_caps_points_at_the_requested_maximum(reader):
    h = reader.history("fw1", NOW - 3 * 3600, NOW, max_points=100)
    assert h.tier == "raw" and h.bucket_s == 120 and len(h.points) <= 100
    assert max(p["inbound_mbps_max"] for p in h.points) == 9999.0


def test_it_returns_only_the_requested_metrics(reader):
    h = reader.history("fw1", NOW - 3600, NOW, metrics=["inbound_mbps", "memory_pct"])
    # Raw points also say whether their rates are approximate.
    assert set(h.points[0]) == {"t", "inbound_mbps", "inbound_mbps_max", "memory_pct", "memory_pct_max", "approx"}
    assert h.points[0]["memory_pct"] is None  # never written: None, not 0
    with pytest.raises(ValueError, match="unknown metrics"):
        reader.history("fw1", NOW - 3600, NOW, metrics=["inbound_mbps; DROP TABLE x"])


def test_it_summarises_min_avg_max_from_rollups(reader):
    s = reader.summary("fw1", NOW - 30 * DAY, NOW)
    assert s["inbound_mbps"]["max"] == 9999.0
    assert s["inbound_mbps"]["min"] == 50.0
    assert 50.0 < s["inbound_mbps"]["avg"] < 100.0
    assert s["memory_pct"] == {"min": None, "avg": None, "max": None}


@pytest.fixture
def store(tmp_path):
    s = SampleStore.open(tmp_path / HISTORY_DB)
    yield s
    s.close()


def test_it_keeps_gaps_as_gaps(store, tmp_path):
    # 30 minutes of samples, a 20-minute outage, 30 more minutes; one rate gap (counter reset).
    times = [T0 + 30 * k for k in range(60)] + [T0 + 3000 + 30 * k for k in range(60)]
    for t in times:
        store.write_cycle(cycle(t, inbound=None if t == T0 + 600 else 40.0))
    with SampleReader.open(tmp_path / HISTORY_DB) as r:
        raw = r.history("fw1", T0, T0 + 5000)
        grouped = r.history("fw1", T0, T0 + 5000, max_points=40)
    assert raw.tier == "raw" and len(raw.points) == 121
    holes = [p for p in raw.points if p["t"] not in times]
    assert len(holes) == 1 and T0 + 1770 < holes[0]["t"] < T0 + 3000
    assert all(v is None for k, v in holes[0].items() if k != "t")
    reset = next(p for p in raw.points if p["t"] == T0 + 600)
    assert reset["inbound_mbps"] is None and reset["outbound_mbps"] == 5.0
    assert grouped.bucket_s == 300 and len(grouped.points) <= 40
    values = [p["inbound_mbps"] for p in grouped.points]
    assert 0.0 not in values and None in values  # the outage is a hole, never a zero
    assert [v for v in values if v is not None] == [40.0] * 12


def test_it_serves_interface_latest_and_history(store, tmp_path):
    for k in range(10):
        store.write_cycle(cycle(T0 + 30 * k, ifaces=("ethernet1/2", "ethernet1/1")))
    with SampleReader.open(tmp_path / HISTORY_DB) as r:
        latest = r.interfaces_latest("fw1")
        h = r.interface_history("fw1", "ethernet1/1", T0, T0 + 3600)
    assert [i.name for i in latest] == ["ethernet1/1", "ethernet1/2"] and latest[0].ts == T0 + 270
    assert h.tier == "raw" and len(h.points) == 10
    assert h.points[0] == {
        "t": T0, "in_bps": 1e6, "in_bps_max": 1e6, "out_bps": 2e6, "out_bps_max": 2e6, "in_pps": 100.0,
        "in_pps_max": 100.0, "out_pps": 200.0, "out_pps_max": 200.0, "errors_per_s": 0.0, "errors_per_s_max": 0.0,
        "drops_per_s": 0.0, "drops_per_s_max": 0.0, "approx": None,
    }


def test_it_reads_the_latest_sample_of_every_device_in_one_query(store, tmp_path):
    for k in range(5):
        store.write_cycle(cycle(T0 + 30 * k, devices=("fw1", "fw2", "fw3"), inbound=float(k)))
    store.write_cycle(cycle(T0 + 200, devices=("fw2",), inbound=99.0))
    with SampleReader.open(tmp_path / HISTORY_DB) as r:
        statements = []
        r._conn.set_trace_callback(statements.append)
        got = r.latest_all()
    assert len(statements) == 1
    assert {d: (s.ts, s.inbound_mbps) for d, s in got.items()} == {
        "fw1": (T0 + 120, 4.0), "fw2": (T0 + 200, 99.0), "fw3": (T0 + 120, 4.0)
    }


def test_a_device_younger_than_its_first_closed_hour_charts_its_last_hour_from_raw_samples(store, tmp_path):
    # The device started 50 minutes after the top of an hour; 40 minutes later that hour has
    # closed (a 1h rollup row starting before the first sample) and the device is younger
    # than the chart's hour. Its 1-hour chart must still come from raw samples.
    hour = (int(T0) // 3600 + 1) * 3600
    first = hour + 50 * 60
    now = first + 40 * 60
    for k in range(0, 40 * 60, 30):
        store.write_cycle(cycle(first + k, inbound=40.0))
    with SampleReader.open(tmp_path / HISTORY_DB) as r:
        assert r._conn.execute("SELECT count(*) FROM device_1h").fetchone()[0] >= 1
        h = r.history("fw1", now - 3600, now)
    assert h.tier == "raw" and h.bucket_s is None
    assert len(h.points) >= 75
