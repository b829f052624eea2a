"""throughput_history.db writer: schema, atomic cycles, rollups, retention, 64-bit baselines."""

import json
import sqlite3

import pytest
from helpers.storage import T0, cycle, iface, rows, sample

import panfm.storage.rollups as storage_rollups
from panfm.models import CounterBaseline, CycleResult, DeviceStatus, InterfaceCounters
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore, StorageUnavailable
from panfm.storage.schema import MIGRATIONS, SCHEMA_VERSION, migrate


@pytest.fixture
def db(tmp_path):
    return tmp_path / HISTORY_DB


@pytest.fixture
def store(db):
    s = SampleStore.open(db)
    yield s
    s.close()


def test_it_creates_and_migrates_an_empty_file_in_wal_mode(db):
    db.touch()
    with SampleStore.open(db):
        pass
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"dev_raw", "if_raw", "dev_5m", "dev_1h", "if_5m", "if_1h", "ts_device", "ts_iface"} <= tables
        views = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
        assert {"device_samples", "interface_samples", "device_5m", "device_1h", "iface_5m", "iface_1h"} <= views
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'dev_raw'").fetchone()[0]
        assert "WITHOUT ROWID" in ddl and "PRIMARY KEY (dk, ts)" in ddl
        # A later migration runs once, from the version the file is at.
        migrate(conn, [*MIGRATIONS, "CREATE TABLE extra (a INTEGER);\n"])
        migrate(conn, [*MIGRATIONS, "CREATE TABLE extra (a INTEGER);\n"])
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        conn.close()


def test_it_refuses_a_reader_on_a_missing_or_uncreated_file(db):
    with pytest.raises(StorageUnavailable):
        SampleReader.open(db)
    db.touch()  # exists but the clock has not created the schema yet
    with pytest.raises(StorageUnavailable):
        SampleReader.open(db)


def test_it_stores_device_times_in_milliseconds_and_interface_times_in_whole_seconds(store, db):
    store.write_cycle(cycle(T0 + 0.923))
    with SampleReader.open(db) as r:
        assert r.clock_stats() == {"heartbeat": T0 + 1.423}  # a heartbeat even without stats
    assert rows(db, "SELECT ts FROM device_samples") == [(int(T0 * 1000) + 923,)]
    assert rows(db, "SELECT ts FROM if_raw") == [(int(T0),)]  # floored: the bucket of the exact time (schema 9)
    assert rows(db, "SELECT ts FROM interface_samples") == [(int(T0) * 1000,)]  # the view: milliseconds, as before
    with SampleReader.open(db) as r:
        got = r.latest("fw1")
        assert got == sample("fw1", T0 + 0.923)
        assert r.interfaces_latest("fw1") == [iface("fw1", "ethernet1/1", T0)]
        assert r.device_statuses()["fw1"].state == "up"


def test_it_writes_nothing_of_a_cycle_that_fails_midway(store, db):
    store.write_cycle(cycle(T0), clock_stats={"total_executions": 1})
    bad = CycleResult(
        started=T0 + 30,
        finished=T0 + 31,
        samples=(sample("fw1", T0 + 30), sample("fw2", T0 + 30)),
        interfaces=(iface("fw2", "ethernet1/2", T0 + 30),),
        baselines=(CounterBaseline("fw2", T0 + 30, "S1", 10, {}),),
        statuses=(DeviceStatus("fw2", None, T0 + 30),),  # type: ignore[arg-type]  # NOT NULL fails last
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.write_cycle(bad, clock_stats={"total_executions": 2})
    assert rows(db, "SELECT device_id, ts FROM device_samples") == [("fw1", int(T0 * 1000))]
    assert rows(db, "SELECT count(*) FROM interface_samples WHERE device_id = 'fw2'") == [(0,)]
    assert rows(db, "SELECT count(*) FROM baselines") == [(0,)]
    assert rows(db, "SELECT * FROM known_devices") == [("fw1",)]
    with SampleReader.open(db) as r:
        assert r.clock_stats() == {"total_executions": 1, "heartbeat": T0 + 0.5}
    # The store is still usable, and fw2 (rolled back before) is catalogued on success.
    store.write_cycle(cycle(T0 + 60, devices=("fw1", "fw2")), clock_stats={"total_executions": 3})
    with SampleReader.open(db) as r:
        assert set(r.latest_all()) == {"fw1", "fw2"}
        assert r.clock_stats() == {"total_executions": 3, "heartbeat": T0 + 60.5}


def test_it_round_trips_64_bit_counters_exactly(store, db):
    top = 2**64 - 1
    counters = {
        "ethernet1/1": InterfaceCounters("ethernet1/1", top, top - 1, 2**63, 2**63 - 1, 0, top, "hw"),
        "ae1.5": InterfaceCounters("ae1.5", 1, 2, 3, 4, 5, 6, "ifnet"),
    }
    base = CounterBaseline("fw1", T0 + 0.001, "0123456789", 2**40, counters)
    c = cycle(T0)
    store.write_cycle(CycleResult(c.started, c.finished, c.samples, c.interfaces, (base,), c.statuses))
    assert store.load_baselines() == {"fw1": base}
    store.close()
    with SampleStore.open(db) as again:  # a restarted clock sees the same values
        assert again.load_baselines()["fw1"].counters["ethernet1/1"].ibytes == top
    with SampleReader.open(db) as reader:  # and the web's read-only reader too (/metrics)
        assert reader.baselines() == {"fw1": base}
    # Stored as JSON numbers; a row of the older format (decimal strings) reads the same, and a
    # value past 64 bits (a malformed answer: orjson refuses it) is still stored, exactly.
    assert json.loads(rows(db, "SELECT counters FROM baselines")[0][0])["ae1.5"] == [1, 2, 3, 4, 5, 6, "ifnet"]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE baselines SET counters = ?", (json.dumps(
            {n: [str(c.ibytes), str(c.obytes), str(c.ipackets), str(c.opackets), str(c.ierrors), str(c.idrops),
                 c.source] for n, c in counters.items()}),))
    conn.close()
    with SampleReader.open(db) as reader:
        assert reader.baselines() == {"fw1": base}
    huge = {"ethernet1/1": InterfaceCounters("ethernet1/1", 2**64, 10**30, 1, 1, 0, 0, "hw")}
    big = CounterBaseline("fw1", T0 + 30, "0123456789", 2**40, huge)
    c = cycle(T0 + 30)
    with SampleStore.open(db) as again:
        again.write_cycle(CycleResult(c.started, c.finished, c.samples, c.interfaces, (big,), c.statuses))
        assert again.load_baselines()["fw1"].counters["ethernet1/1"].obytes == 10**30


def test_it_rolls_up_only_closed_buckets_with_avg_and_max(store, db):
    # Bucket [T0, T0+300): inbound 10, 20, 30, 40, 50 at one-minute steps; one gap (None) at +300.
    for k, v in enumerate([10.0, 20.0, 30.0, 40.0, 50.0]):
        store.write_cycle(cycle(T0 + 60 * k + 1, inbound=v))
    assert rows(db, "SELECT count(*) FROM device_5m") == [(0,)]  # still open
    store.write_cycle(cycle(T0 + 301, inbound=None))
    got = rows(db, "SELECT bucket, n, inbound_mbps_avg, inbound_mbps_max, total_mbps_max FROM device_5m")
    assert got == [(int(T0), 5, 30.0, 50.0, 55.0)]  # no minimum: nothing reads one
    assert rows(db, "SELECT bucket, n, in_bps_avg, in_bps_max FROM iface_5m") == [(int(T0), 5, 1e6, 1e6)]
    store.write_cycle(cycle(T0 + 601))
    # The all-None bucket stays None (a gap), never 0.
    assert rows(db, "SELECT inbound_mbps_avg, inbound_mbps_max, outbound_mbps_avg FROM device_5m WHERE bucket = ?",
                (int(T0) + 300,)) == [(None, None, 5.0)]
    assert rows(db, "SELECT count(*) FROM device_1h") == [(0,)]  # the hour has not closed


def test_it_recomputes_rollups_idempotently(store, db):
    for k in range(130):  # a bit more than an hour at 30 s
        store.write_cycle(cycle(T0 + 30 * k, devices=("fw1", "fw2"), inbound=float(k)))
    before = rows(db, "SELECT * FROM device_5m ORDER BY 1, 2"), rows(db, "SELECT * FROM device_1h ORDER BY 1, 2")
    assert len(before[0]) == 2 * 12 and len(before[1]) == 2
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for _ in range(2):
            for tier in ("5m", "1h"):
                storage_rollups.rollup_range(conn, tier, int(T0) - 3600, int(T0) + 7200)
    finally:
        conn.close()
    # The open bucket was recomputed too (re-running is harmless), but closed ones are unchanged.
    after = rows(db, "SELECT * FROM device_5m WHERE bucket < ? ORDER BY 1, 2", (int(T0) + 12 * 300,))
    assert after == before[0]
    hour = int(T0 // 3600 * 3600)
    assert rows(db, "SELECT * FROM device_1h WHERE bucket <= ? ORDER BY 1, 2", (hour,)) == before[1]
    # By hand: the 1h bucket of fw1 holds the samples k with T0 + 30k in [hour, hour + 3600).
    ks = [k for k in range(130) if hour <= T0 + 30 * k < hour + 3600]
    got = rows(db, "SELECT n, inbound_mbps_avg, inbound_mbps_max FROM device_1h WHERE device_id = 'fw1' AND bucket = ?",
               (hour,))
    assert got == [(len(ks), sum(ks) / len(ks), float(max(ks)))]


def test_it_recomputes_a_closed_bucket_when_a_late_sample_arrives(store, db):
    for k in range(12):
        store.write_cycle(cycle(T0 + 30 * k, inbound=10.0))
    assert rows(db, "SELECT n, inbound_mbps_max FROM device_5m") == [(10, 10.0)]
    late = cycle(T0 + 299, devices=("fw1",), inbound=90.0)
    store.write_cycle(CycleResult(T0 + 360, T0 + 361, late.samples, (), (), ()))
    assert rows(db, "SELECT n, inbound_mbps_max FROM device_5m WHERE bucket = ?", (int(T0),)) == [(11, 90.0)]


def test_it_applies_retention_per_tier_in_chunks_and_truncates_the_wal(store, db):
    now = T0 + 1000 * 86400
    day = 86400
    ages = [1, 6.9, 7.1, 8, 89, 91, 729, 731]
    for d in ages:
        store.write_cycle(cycle(now - d * day, devices=("fw1", "fw2"), ifaces=("e1", "e2")))
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for tier in ("5m", "1h"):  # every sample also has its closed rollup buckets
            storage_rollups.rollup_range(conn, tier, int(now - 800 * day), int(now))
    finally:
        conn.close()
    deleted = store.cleanup(now, raw_days=7, fivemin_days=90, hourly_days=730, chunk=3)
    assert deleted["device_samples"] == 2 * 6 and deleted["interface_samples"] == 4 * 6
    assert deleted["device_5m"] == 2 * 3 and deleted["iface_5m"] == 4 * 3
    assert deleted["device_1h"] == 2 * 1 and deleted["iface_1h"] == 4 * 1

    def ages_left(table, col, scale=1):
        got = rows(db, f"SELECT DISTINCT {col} FROM {table} ORDER BY 1 DESC")
        return [round((now - v / scale) / day, 1) for (v,) in got]

    assert ages_left("device_samples", "ts", 1000) == [1, 6.9]
    assert ages_left("interface_samples", "ts", 1000) == [1, 6.9]
    assert [round(a) for a in ages_left("device_5m", "bucket")] == [1, 7, 7, 8, 89]
    assert [round(a) for a in ages_left("iface_1h", "bucket")] == [1, 7, 7, 8, 89, 91, 729]
    assert db.with_name(db.name + "-wal").stat().st_size == 0


def test_it_keeps_clock_stats_inventory_and_statuses(store, db):
    store.write_clock_stats({"total_executions": 5, "last_error": None}, heartbeat=T0)
    store.write_inventory("fw1", T0, {"hostname": "edge-1", "ha": {"enabled": False}})
    store.write_cycle(CycleResult(T0, T0 + 2, (), (), (), (DeviceStatus("fw9", "down", T0, None, "timeout", 3),)))
    assert store.load_statuses()["fw9"] == DeviceStatus("fw9", "down", T0, None, "timeout", 3)
    with SampleReader.open(db) as r:
        assert r.clock_stats() == {"total_executions": 5, "last_error": None, "heartbeat": T0 + 2}
        assert r.inventory("fw1") == {"hostname": "edge-1", "ha": {"enabled": False}, "collected_at": T0}
        assert r.inventory("nope") is None
        assert set(r.inventory_all()) == {"fw1"}
        assert r.latest("fw9") is None and r.latest_all() == {}


def test_it_reads_after_the_clock_closed_the_database(store, db):
    store.write_cycle(cycle(T0))
    store.close()
    with SampleReader.open(db) as r:
        assert r.latest("fw1") is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            r._conn.execute("DELETE FROM dev_raw")
