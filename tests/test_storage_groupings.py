"""The materialised 30-minute grouping of the 5-minute tier: same points, kept current, migrated, retained."""

import dataclasses
import math
import shutil
import sqlite3

import pytest
from helpers.storage import T0, cycle, rows, sample
from helpers.storage_legacy import old_rollup_sql

import panfm.storage.queries as q
import panfm.storage.rollups as storage_rollups
import panfm.storage.tier_rows as tier_rows
import panfm.storage.tiers as tiers
from panfm.storage.compact import SCALE
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS, MIGRATIONS, SCHEMA_VERSION, connect_reader, migrate

DAY = 86400
NOW = T0 + 100 * DAY + 1234  # not on a 5-minute or 30-minute boundary


def _raw_rows(start: float, end: float):
    """Samples every 100 s with one in 7 missing (2 or 3 per 5-minute bucket) and some gaps (None)."""
    dev, ifc = [], []
    for k in range(int((end - start) // 100)):
        if k % 7 == 3:
            continue
        t = start + 100 * k
        inbound = None if k % 97 == 5 else 50.0 + (k * 37 % 101)
        s = sample("fw1", t, inbound=inbound, memory_pct=None if k % 13 == 0 else 40.0 + k % 9)
        dev.append(("fw1", round(t * 1000), *(getattr(s, m) for m in DEVICE_METRICS)))
        ifc.append(("fw1", "ethernet1/1", round(t * 1000), 1e6 + k % 1000, 2e6, 10.0, 20.0, 0.0, k % 3, 1))
    return dev, ifc


def _fill(conn: sqlite3.Connection, start: float, end: float) -> None:
    dev, ifc = _raw_rows(start, end)
    conn.execute("INSERT OR IGNORE INTO known_devices VALUES ('fw1')")
    conn.execute("INSERT OR IGNORE INTO known_interfaces VALUES ('fw1', 'ethernet1/1')")
    cols = ", ".join(("device_id", "ts", *DEVICE_METRICS))
    conn.executemany(f"INSERT INTO device_samples ({cols}) VALUES ({', '.join('?' * (len(DEVICE_METRICS) + 2))})",
                     dev)
    icols = ", ".join(("device_id", "interface", "ts", *IFACE_METRICS, "counted"))
    conn.executemany(f"INSERT INTO interface_samples ({icols}) VALUES ({', '.join('?' * (len(IFACE_METRICS) + 4))})",
                     ifc)


@pytest.fixture(scope="module")
def grouped_db(tmp_path_factory):
    """40 days of 5-minute rollups of one device and one interface (raw rows deleted, as retention does)."""
    db = tmp_path_factory.mktemp("groups") / HISTORY_DB
    SampleStore.open(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        _fill(conn, NOW - 40 * DAY, NOW)
        storage_rollups.rollup_range(conn, "5m", int(NOW - 41 * DAY), int(NOW // 300 * 300))
        conn.execute("DELETE FROM device_samples")
        conn.execute("DELETE FROM interface_samples")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return db


def _same_points(got, want):
    assert [p["t"] for p in got] == [p["t"] for p in want]
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for k, v in w.items():
            assert (g[k] is None) == (v is None), (g["t"], k)
            if v is not None:
                # Both read the same 5-minute rows; the materialised group stores its average
                # rounded to the stored unit (compact.SCALE), so they agree to that precision.
                tol = 1.0 / SCALE.get(k.removesuffix("_max"), 1e12)
                assert math.isclose(g[k], v, rel_tol=1e-12, abs_tol=tol), (g["t"], k, g[k], v)


def _same_as_grouping_on_the_fly(conn, series, start, end):
    """The history read with the materialised groups, checked against the same read grouping on the fly."""
    got = q.history(conn, series, start, end)
    want = q.history(conn, dataclasses.replace(series, group_tables={}), start, end)
    assert (got.tier, got.bucket_s) == (want.tier, want.bucket_s)
    _same_points(got.points, want.points)
    return got


@pytest.mark.parametrize(
    ("start", "end", "width"),
    [
        (NOW - 30 * DAY, NOW, 1800),  # the dashboard's 30 d: starts and ends inside a group
        (NOW - 35 * DAY - 777, NOW - 3 * DAY - 5, 1800),  # custom range, both ends unaligned
        (int(NOW - 30 * DAY) // 1800 * 1800, int(NOW) // 1800 * 1800, 1800),  # aligned: no partial group
        (NOW - 39 * DAY, NOW - 39 * DAY + 1500, None),  # inside one group: 5 rows, no grouping at all
        (NOW - 39 * DAY, NOW, 1800),
    ],
)
def test_it_answers_grouped_history_with_the_same_points_as_grouping_on_the_fly(grouped_db, start, end, width):
    conn = connect_reader(grouped_db)
    try:
        for series in (q.device_series("fw1"), q.iface_series("fw1", "ethernet1/1"),
                       q.device_series("fw1", metrics=DEVICE_METRICS)):
            got = _same_as_grouping_on_the_fly(conn, series, start, end)
            assert (got.tier, got.bucket_s) == ("5m", width or 300)
            assert len(got.points) > 3
    finally:
        conn.close()


def test_it_regroups_whole_groups_into_wider_points_close_to_grouping_on_the_fly(grouped_db):
    conn = connect_reader(grouped_db)
    try:
        series = q.device_series("fw1")
        got = q.history(conn, series, NOW - 38 * DAY, NOW, max_points=500)
        want = q.history(conn, dataclasses.replace(series, group_tables={}), NOW - 38 * DAY, NOW, max_points=500)
    finally:
        conn.close()
    assert got.bucket_s == want.bucket_s == 7200
    assert [p["t"] for p in got.points] == [p["t"] for p in want.points]
    for g, w in zip(got.points, want.points, strict=True):
        assert g["inbound_mbps_max"] == w["inbound_mbps_max"]  # peaks exact
        # Averages weigh each bucket by the metric's own count: the same however they are grouped.
        assert g["inbound_mbps"] == pytest.approx(w["inbound_mbps"], abs=1e-3)  # the stored precision


def test_it_reads_the_materialised_rows_rather_than_grouping_again(grouped_db, tmp_path):
    db = tmp_path / HISTORY_DB
    shutil.copy(grouped_db, db)
    group = int(NOW - 10 * DAY) // 1800 * 1800
    conn = sqlite3.connect(db)
    with conn:  # the group's stored maximum made impossible (-1000 kbit/s), in its packed row
        (dk,) = conn.execute("SELECT dk FROM ts_device WHERE device_id = 'fw1'").fetchone()
        (start, vals, counts), = tier_rows.read(conn, "dev_5m_g30m", dk, group, group + 1)
        vals = list(vals)
        vals[tiers.col_index("dev")["inbound_mbps_max"]] = -1000
        tiers.write_packed(conn, "dev_5m_g30m", {dk: [(start, tuple(vals), counts)]})
    conn.close()
    with SampleReader.open(db) as r:
        h = r.history("fw1", NOW - 30 * DAY, NOW)
    assert next(p for p in h.points if p["t"] == group)["inbound_mbps_max"] == -1.0


def _expected_groups(db, dev_table="device_5m", metric="inbound_mbps"):
    """Group the 5-minute rows by hand: n, weighted average, maximum per 30-minute group."""
    out = {}
    for bucket, n, avg, mx in rows(db, f"SELECT bucket, n, {metric}_avg, {metric}_max FROM {dev_table}"):
        g = bucket // 1800 * 1800
        tn, wsum, wn, gmax = out.get(g, (0, 0.0, 0, None))
        out[g] = (tn + n, wsum + (avg * n if avg is not None else 0), wn + (n if avg is not None else 0),
                  mx if gmax is None else max(gmax, mx))
    return {g: (tn, wsum / wn if wn else None, gmax) for g, (tn, wsum, wn, gmax) in out.items()}


def test_it_keeps_the_grouping_current_as_the_clock_writes_cycles(tmp_path):
    db = tmp_path / HISTORY_DB
    with SampleStore.open(db) as store:
        for k in range(130):  # 65 minutes at 30 s: two groups closed or partly filled
            store.write_cycle(cycle(T0 + 30 * k, inbound=float(k % 17)))
        before = rows(db, "SELECT bucket, n, inbound_mbps_avg, inbound_mbps_max FROM device_5m_g30m ORDER BY 1")
        for k in range(130, 200):
            store.write_cycle(cycle(T0 + 30 * k, inbound=float(k % 17)))
    after = rows(db, "SELECT bucket, n, inbound_mbps_avg, inbound_mbps_max FROM device_5m_g30m ORDER BY 1")
    # A group is written once its last bucket has closed (tier_head.regroup), not while open.
    closed = int(T0 + 30 * 199) // 300 * 300
    expected = {g: v for g, v in _expected_groups(db).items() if g + 1800 <= closed}
    assert [(b, n, pytest.approx(a, abs=1e-3), m) for b, n, a, m in after] == [
        (g, *v) for g, v in sorted(expected.items())]
    assert len(after) == 3 and len(before) == 2 and len(_expected_groups(db)) == 4  # the open group: not yet
    assert rows(db, "SELECT count(*) FROM iface_5m_g30m") == [(3,)]


def test_it_fills_the_grouping_when_migrating_a_version_1_file(tmp_path):
    db = tmp_path / HISTORY_DB
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        migrate(conn, MIGRATIONS[:1])
        conn.execute("BEGIN")
        _fill(conn, T0, T0 + 2 * DAY)
        dev_sql, if_sql = old_rollup_sql("5m", counts=False)  # as version 1 wrote them
        for sql in (dev_sql, if_sql):
            conn.execute(sql, (int(T0) * 1000, int(T0 + 2 * DAY) * 1000))
        conn.execute("COMMIT")
    finally:
        conn.close()
    SampleStore.open(db).close()
    assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    got = rows(db, "SELECT bucket, n, inbound_mbps_avg, inbound_mbps_max FROM device_5m_g30m ORDER BY 1")
    assert [(b, n, pytest.approx(a, abs=1e-3), m) for b, n, a, m in got] == [
        (g, *v) for g, v in sorted(_expected_groups(db).items())
    ]
    assert len(got) == 2 * 48 + 1  # T0 is inside a group
    assert rows(db, "SELECT count(*) FROM iface_5m_g30m") == [(len(got),)]


def test_it_deletes_a_group_only_once_all_its_buckets_are_past_retention(tmp_path):
    db = tmp_path / HISTORY_DB
    now = T0 + 1000 * DAY
    cut = now - 90 * DAY
    assert cut % 1800 == 900  # the cut falls inside a group
    with SampleStore.open(db) as store:
        for t in (cut - 1000, cut - 600, cut + 100, now - DAY):
            store.write_cycle(cycle(t))
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            storage_rollups.rollup_range(conn, "5m", int(now - 100 * DAY), int(now))
        finally:
            conn.close()
        assert len(rows(db, "SELECT bucket FROM device_5m_g30m")) == 3
        deleted = store.cleanup(now, raw_days=7, fivemin_days=90, hourly_days=730, chunk=2)
    assert deleted["device_5m_g30m"] == 1 and deleted["iface_5m_g30m"] == 1
    assert rows(db, "SELECT bucket FROM device_5m_g30m ORDER BY 1") == [
        (int(cut - 900),), (int(now - DAY) // 1800 * 1800,)
    ]


def test_it_answers_the_same_points_while_the_newest_groups_are_not_materialised_yet(grouped_db, tmp_path):
    # The clock writes a group once its last 5-minute bucket closed (tier_head.regroup): until then
    # the chart's newest whole groups come from the 5-minute rows. Here the newest stored groups
    # (their packed row and any head rows: up to 6 hours) are gone, as if not written yet.
    db = tmp_path / HISTORY_DB
    shutil.copy(grouped_db, db)
    conn = sqlite3.connect(db)
    with conn:
        for table in (q.device_series("fw1").group_tables["5m"][0], q.iface_series("fw1", "x").group_tables["5m"][0]):
            conn.execute(f"DELETE FROM {tiers.head(table)}")
            conn.execute(f"DELETE FROM {table} WHERE id = (SELECT max(id) FROM {table})")
    conn.close()
    conn = connect_reader(db)
    try:
        for series in (q.device_series("fw1"), q.iface_series("fw1", "ethernet1/1")):
            got = _same_as_grouping_on_the_fly(conn, series, NOW - 30 * DAY, NOW)
            assert got.bucket_s == 1800 and len(got.points) > 1400
    finally:
        conn.close()


def test_columns_before_is_what_reading_up_to_that_time_gives(grouped_db):
    conn = connect_reader(grouped_db)
    try:
        (dk,) = conn.execute("SELECT dk FROM ts_device WHERE device_id = 'fw1'").fetchone()
        lo, hi = int(NOW - 3 * DAY), int(NOW)
        whole = tier_rows.read_columns(conn, "dev_5m", dk, lo, hi)
        for end in (lo, lo + 1, lo + 7 * 3600 + 300, hi - 600, hi, hi + 3600):
            assert whole.before(end) == tier_rows.read_columns(conn, "dev_5m", dk, lo, min(end, hi)), end
    finally:
        conn.close()


def test_count_stops_once_past_what_a_chart_draws_and_is_exact_below(grouped_db):
    conn = connect_reader(grouped_db)
    try:
        (dk,) = conn.execute("SELECT dk FROM ts_device WHERE device_id = 'fw1'").fetchone()
        lo, hi = int(NOW - 30 * DAY) + 77, int(NOW)  # both ends inside a packed row
        exact = tier_rows.count(conn, "dev_5m", dk, lo, hi)
        assert exact == len(tier_rows.read_columns(conn, "dev_5m", dk, lo, hi).starts) > 2000
        stopped = tier_rows.count(conn, "dev_5m", dk, lo, hi, above=2000)
        assert 2000 < stopped < exact  # stopped early: more than asked, not the whole count
        assert tier_rows.count(conn, "dev_5m", dk, lo, hi, above=exact) == exact  # never past: exact
        short = (hi - 3 * 3600, hi)
        assert tier_rows.count(conn, "dev_5m", dk, *short, above=2000) == tier_rows.count(conn, "dev_5m", dk, *short)
    finally:
        conn.close()
