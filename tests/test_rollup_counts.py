"""Rollups weight each metric by its own count: a metric missing in some rows averages the rows that have it."""

import dataclasses
import sqlite3

import pytest
from helpers.storage import rows, sample

import panfm.storage.queries as q
from panfm.models import CycleResult, DeviceStatus, InterfaceSample
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.schema import MIGRATIONS, SCHEMA_VERSION, connect_reader, migrate

H = 1_700_002_800  # an hour (so also a 30-minute and a 5-minute) boundary
DAY = 86400
# MP CPU answered only once in the first 5 minutes (the call failed in the 9 other polls), then always.
FIRST_BUCKET_MP = 90.0
LATER_MP = 10.0
WANT_MP = (FIRST_BUCKET_MP + LATER_MP * 50) / 51  # the first 30 minutes: 1 + 5 × 10 samples that have it
WANT_MP_HOUR = (FIRST_BUCKET_MP + LATER_MP * 110) / 111


def _cycle(k: int) -> CycleResult:
    ts = H + 30 * k
    first_bucket = k < 10
    mp = (FIRST_BUCKET_MP if k == 0 else None) if first_bucket else LATER_MP
    in_bps = (8e6 if k == 0 else None) if first_bucket else 1e6
    return CycleResult(
        started=ts - 0.5, finished=ts + 0.5,
        samples=(sample("fw1", ts, cpu_management_pct=mp),),
        interfaces=(InterfaceSample("fw1", "ethernet1/1", ts, in_bps, 2e6, 100.0, 200.0, 0.0, 0.0, True),),
        baselines=(), statuses=(DeviceStatus("fw1", "up", ts, ts),),
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One hour and a bit at 30 s, written by the store cycle by cycle (every bucket of the hour closed)."""
    path = tmp_path_factory.mktemp("counts") / HISTORY_DB
    with SampleStore.open(path) as store:
        for k in range(122):
            store.write_cycle(_cycle(k))
    return path


def test_it_averages_a_5_minute_bucket_over_the_rows_that_have_the_metric(db):
    ((n, avg, count),) = rows(db, "SELECT n, cpu_management_pct_avg, cpu_management_pct_n FROM device_5m "
                                  "WHERE bucket = ?", (H,))
    assert (n, avg, count) == (10, FIRST_BUCKET_MP, 1)


def test_it_averages_the_hour_over_the_rows_that_have_the_metric(db):
    ((avg,),) = rows(db, "SELECT cpu_management_pct_avg FROM device_1h WHERE bucket = ?", (H,))
    assert avg == pytest.approx(WANT_MP_HOUR, abs=0.01)  # stored in hundredths


def test_it_weights_the_30_minute_groups_by_each_metrics_own_count(db):
    ((n, mp, mp_n),) = rows(db, "SELECT n, cpu_management_pct_avg, cpu_management_pct_n FROM device_5m_g30m "
                                "WHERE bucket = ?", (H,))
    assert (n, mp_n) == (60, 51)
    assert mp == pytest.approx(WANT_MP, abs=0.01)  # not 23.3, the 90 counted ten times
    ((in_bps,),) = rows(db, "SELECT in_bps_avg FROM iface_5m_g30m WHERE bucket = ?", (H,))
    assert in_bps == pytest.approx((8e6 + 1e6 * 50) / 51, abs=1)  # whole bit/s


def test_it_groups_5_minute_rows_on_the_fly_by_each_metrics_own_count(db):
    conn = connect_reader(db)
    try:
        series = q.device_series("fw1", metrics=("cpu_management_pct",))
        for s in (series, dataclasses.replace(series, group_tables={})):  # materialised, then on the fly
            got = q.history(conn, s, H, H + 3600, max_points=4)
            assert (got.tier, got.bucket_s) == ("5m", 1800)
            assert got.points[0]["cpu_management_pct"] == pytest.approx(WANT_MP, abs=0.01)
        ten = q.history(conn, series, H, H + 3600, max_points=8)  # 10-minute points: on the fly
        assert (ten.tier, ten.bucket_s) == ("5m", 600)
        assert ten.points[0]["cpu_management_pct"] == pytest.approx((FIRST_BUCKET_MP + LATER_MP * 10) / 11)
    finally:
        conn.close()


def test_it_summarises_the_5_minute_tier_by_each_metrics_own_count(db):
    conn = connect_reader(db)
    try:
        series = q.device_series("fw1", metrics=("cpu_management_pct",))
        assert q.choose_tier(conn, series, H, H + 7 * DAY, 2000)[0] == "5m"
        got = q.summary(conn, series, H, H + 7 * DAY)["cpu_management_pct"]
    finally:
        conn.close()
    assert got["avg"] == pytest.approx(WANT_MP_HOUR, abs=0.01)
    assert (got["min"], got["max"]) == (LATER_MP, FIRST_BUCKET_MP)


def test_it_migrates_rollups_written_without_counts_and_weights_them_by_sample_count(tmp_path):
    path = tmp_path / HISTORY_DB
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, MIGRATIONS[:3])  # a file of version 3, before the counts (migration 4)
        conn.execute("INSERT INTO known_devices VALUES ('fw1')")
        for bucket, n, avg in ((H, 10, 90.0), (H + 300, 10, 10.0), (H + 600, 10, None)):
            conn.execute("INSERT INTO device_5m (device_id, bucket, n, memory_pct_avg) VALUES ('fw1', ?, ?, ?)",
                         (bucket, n, avg))
    finally:
        conn.close()
    SampleStore.open(path).close()
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    with SampleReader.open(path) as reader:
        got = reader.summary("fw1", H, H + 7 * DAY)["memory_pct"]
    assert got["avg"] == pytest.approx(50.0)  # each old bucket weighs its sample count, a NULL one nothing
