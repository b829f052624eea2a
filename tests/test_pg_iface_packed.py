"""Interface raw rows packed per device and slot on PostgreSQL (series schema 4), and the migration to it."""

from __future__ import annotations

import datetime as dt

import pytest

from panfm.storage import pg_series
from panfm.storage.pg_reader import PgSampleReader
from panfm.storage.postgres import PgDatabase

pytestmark = pytest.mark.postgres

T0 = 1_780_000_200  # a whole 5-minute bucket start (2026-05-28)
DAY = pg_series.day_of(T0)
LO = pg_series.day_start(DAY)
FAR = LO + 20 * 86400  # a slot outside every day partition: the default one holds it


def _old_database(url: str) -> PgDatabase:
    """A series schema at version 3 (one row per interface and slot) holding rows of two interfaces."""
    db = PgDatabase(url)
    db.migrate("series", pg_series.PG_MIGRATIONS[:3])
    with db.transaction() as tx:
        for table in ("device_samples", "iface_samples"):
            tx.execute(f"CREATE TABLE {table}_p{DAY:%Y%m%d} PARTITION OF {table} FOR VALUES FROM ({LO})"
                       f" TO ({LO + 86400})")
        tx.execute("INSERT INTO ts_device (device_id) VALUES ('dev-a'), ('dev-b')")
        tx.execute("INSERT INTO ts_iface (dk, interface) SELECT dk, n FROM ts_device, unnest(ARRAY['eth1', 'eth2']) n"
                   " WHERE device_id = 'dev-a'")
        rows = [("eth1", T0, 100, 1000, 10.5, True, False), ("eth1", T0 + 30, 200, 2000, None, True, None),
                ("eth1", FAR, 300, 3000, 30.5, True, True),
                ("eth2", T0, 400, None, 40.5, False, False), ("eth2", T0 + 30, 500, 5000, 50.5, False, False)]
        for name, slot, off, ib, ip, counted, approx in rows:
            tx.execute("INSERT INTO iface_samples (ik, slot, off_ms, in_bps, out_bps, in_pps, out_pps, errors_per_s,"
                       " drops_per_s, counted, approx) SELECT ik, ?, ?, ?, 7, ?, 1, 0, 0, ?, ? FROM ts_iface"
                       " WHERE interface = ?", (slot, off, ib, ip, counted, approx, name))
    return db


def test_the_migration_packs_existing_interface_rows_into_the_same_day_partitions_with_the_same_answers(pg_url):
    db = _old_database(pg_url)
    try:
        assert db.migrate("series", pg_series.PG_MIGRATIONS) == len(pg_series.PG_MIGRATIONS) - 3
        with db.connection() as conn:
            parts = {r["relname"] for r in conn.fetchall(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'iface_packed'")}
            assert parts == {f"iface_packed_p{DAY:%Y%m%d}", "iface_packed_default"}
            assert conn.fetchone(f"SELECT count(*) AS n FROM iface_packed_p{DAY:%Y%m%d}")["n"] == 2
            assert conn.fetchone("SELECT count(*) AS n FROM iface_packed_default")["n"] == 1
            assert conn.fetchone("SELECT count(*) AS n FROM iface_samples")["n"] == 5  # the old name: a view
            assert pg_series.partitions(conn)["iface_packed"] == [DAY]
        reader = PgSampleReader(db)
        latest = {x.name: x for x in reader.interfaces_latest("dev-a")}
        assert latest["eth1"].ts == pytest.approx(FAR + 0.3) and latest["eth1"].in_bps == 3000
        assert latest["eth1"].approx is True
        assert latest["eth2"].ts == pytest.approx(T0 + 30.5) and latest["eth2"].in_bps == 5000
        assert latest["eth2"].counted is False and latest["eth2"].in_pps == pytest.approx(50.5)
        h = reader.interface_history("dev-a", "eth2", T0, T0 + 60)
        assert [(p["t"], p["in_bps"], p["in_pps"]) for p in h.points] == [
            (pytest.approx(T0 + 0.4), None, pytest.approx(40.5)), (pytest.approx(T0 + 30.5), 5000, pytest.approx(50.5))]
        h1 = reader.interface_history("dev-a", "eth1", T0, T0 + 60)
        assert [p["in_pps"] for p in h1.points] == [pytest.approx(10.5), None]
        assert reader.interfaces_latest("dev-b") == []
        # Partition upkeep and retention now work on the packed table.
        assert pg_series.ensure_partitions(db, T0) >= 2
        assert pg_series.drop_partitions_before(db, LO + 86400) >= 2
        with db.connection() as conn:
            assert conn.fetchone("SELECT count(*) AS n FROM iface_samples WHERE slot < ?", (LO + 86400,))["n"] == 0
    finally:
        db.close()


def test_a_fresh_database_gets_the_packed_table_and_day_partitions_ahead(pg_url):
    db = PgDatabase(pg_url)
    try:
        db.migrate("series", pg_series.PG_MIGRATIONS)
        now = float(T0)
        pg_series.ensure_partitions(db, now)
        with db.connection() as conn:
            days = pg_series.partitions(conn)
        today = pg_series.day_of(now)
        expected = [today + dt.timedelta(days=k) for k in range(-1, pg_series.DAYS_AHEAD + 1)]
        assert days == {"device_samples": expected, "iface_packed": expected}
    finally:
        db.close()


def test_a_cycle_written_again_and_an_interface_twice_in_one_cycle_keep_the_first_values(pg_url, tmp_path):
    from conftest import pg_env

    import config
    import throughput_storage
    from panfm.models import CycleResult, DeviceSample, InterfaceSample

    def cycle(v: float) -> CycleResult:
        ifaces = (InterfaceSample("fw1", "eth1", T0 + 0.5, v, None, 1.0, 2.0, 0.0, None, True, None),
                  InterfaceSample("fw1", "eth1", T0 + 0.6, v + 1, 1.0, 1.0, 2.0, 0.0, 0.0, True, True),
                  InterfaceSample("fw1", "eth2", T0 + 0.5, v * 2, 1.0, 1.0, 2.0, 0.0, 0.0, False, False))
        return CycleResult(T0, T0 + 1, (DeviceSample("fw1", T0 + 0.5, inbound_mbps=v),), ifaces, (), ())

    config.ensure_data_dir(tmp_path / "data")
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(tmp_path / "data"), **pg_env(pg_url)})
    stores = throughput_storage.open_stores(settings, writer=True)
    try:
        writer = stores.open_sample_writer(interval_s=30)
        writer.write_cycle(cycle(100.0))
        writer.write_cycle(cycle(555.0))  # the same slot again (a retried cycle): the first values stay
        with stores.backend.db.connection() as conn:
            rows = conn.fetchall("SELECT i.interface, s.in_bps, s.out_bps, s.approx, s.counted FROM iface_samples s"
                                 " JOIN ts_iface i USING (ik) ORDER BY i.interface")
            assert conn.fetchone("SELECT count(*) AS n FROM iface_packed")["n"] == 1
        assert [(r["interface"], r["in_bps"], r["out_bps"], r["approx"], r["counted"]) for r in rows] == [
            ("eth1", 100, None, None, True), ("eth2", 200, 1, False, False)]
        with stores.open_sample_reader() as reader:
            assert reader.latest("fw1").inbound_mbps == pytest.approx(100.0)
    finally:
        stores.close()


def _stores(pg_url, tmp_path):
    from conftest import pg_env

    import config
    import throughput_storage

    config.ensure_data_dir(tmp_path / "data")
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(tmp_path / "data"), **pg_env(pg_url)})
    return throughput_storage.open_stores(settings, writer=True)


def test_interfaces_of_several_devices_interleaved_in_a_cycle_land_in_each_devices_own_row(pg_url, tmp_path):
    """The writer sends flat arrays cut per device by the server: a cycle whose interfaces come
    interleaved (not device by device) is grouped first, each device keeping its own order."""
    from panfm.models import CycleResult, DeviceSample, InterfaceSample

    order = [("fw2", "eth9"), ("fw1", "eth1"), ("fw2", "eth1"), ("fw3", "eth5"), ("fw1", "eth2"), ("fw2", "eth3"),
             ("fw1", "eth0")]
    ifaces = tuple(InterfaceSample(d, n, T0 + 0.5, 1000.0 * k + 0.4, 10.0 * k, float(k) + 0.25, None, 0.0, 0.0,
                                   k % 2 == 0, None if k == 3 else k % 3 == 0)
                   for k, (d, n) in enumerate(order))
    samples = tuple(DeviceSample(d, T0 + 0.5, inbound_mbps=1.0) for d in ("fw1", "fw2", "fw3"))
    stores = _stores(pg_url, tmp_path)
    try:
        writer = stores.open_sample_writer(interval_s=30)
        writer.write_cycle(CycleResult(T0, T0 + 1, samples, ifaces, (), ()))
        with stores.backend.db.connection() as conn:
            rows = conn.fetchall(
                "SELECT d.device_id, i.interface, s.in_bps, s.out_bps, s.in_pps, s.out_pps, s.counted, s.approx"
                " FROM iface_samples s JOIN ts_iface i USING (ik) JOIN ts_device d ON d.dk = i.dk")
            packed = conn.fetchall("SELECT d.device_id, cardinality(p.iks) AS n FROM iface_packed p"
                                   " JOIN ts_device d USING (dk) ORDER BY d.device_id")
            names = {r["device_id"]: [x for x in r["names"]] for r in conn.fetchall(
                "SELECT d.device_id, array_agg(i.interface ORDER BY u.k) AS names FROM iface_packed p"
                " JOIN ts_device d USING (dk) CROSS JOIN LATERAL unnest(p.iks) WITH ORDINALITY AS u(ik, k)"
                " JOIN ts_iface i ON i.ik = u.ik GROUP BY d.device_id")}
    finally:
        stores.close()
    assert [(r["device_id"], r["n"]) for r in packed] == [("fw1", 3), ("fw2", 3), ("fw3", 1)]
    assert names == {"fw1": ["eth1", "eth2", "eth0"], "fw2": ["eth9", "eth1", "eth3"], "fw3": ["eth5"]}
    got = {(r["device_id"], r["interface"]): (r["in_bps"], r["out_bps"], r["in_pps"], r["out_pps"], r["counted"],
                                              r["approx"]) for r in rows}
    assert got == {(d, n): (round(1000.0 * k + 0.4), round(10.0 * k), pytest.approx(k + 0.25), None, k % 2 == 0,
                            None if k == 3 else k % 3 == 0)
                   for k, (d, n) in enumerate(order)}


def test_the_devices_state_rows_are_rewritten_on_their_own_page_every_cycle(pg_url, tmp_path):
    """Baselines, statuses and dataplane CPU are upserted once per device and cycle: with room left
    on each page (series migration 5) the new version stays on the row's page (a HOT update).
    On full pages every update moved the row to another page and left a dead one behind."""
    from panfm.models import CounterBaseline, CycleResult, DataplaneCpu, DeviceStatus, InterfaceCounters

    ids = [f"fw{k:03d}" for k in range(60)]
    counters = {f"ethernet1/{k}": InterfaceCounters(f"ethernet1/{k}", 10**12, 10**11, 10**9, 10**9, 0, 1, source="hw")
                for k in range(15)}  # ~1.1 kB of counters per device: a page holds a handful

    def cycle(t: float) -> CycleResult:
        return CycleResult(
            t, t + 1, (), (),
            baselines=tuple(CounterBaseline(d, t + 0.3, "SER" + d, 100000, counters, 4.0) for d in ids),
            statuses=tuple(DeviceStatus(d, "up", t + 0.3, t + 0.3, None, 0) for d in ids),
            dataplanes=tuple(DataplaneCpu(d, t + 0.3, (("dp0", 12.0),), ("dp0", 1, 30.0)) for d in ids))

    def pages(conn) -> dict[str, dict[str, int]]:
        return {t: {r["device_id"]: int(r["page"]) for r in conn.fetchall(
            f"SELECT device_id, (ctid::text::point)[0]::int AS page FROM {t}")} for t in pg_series.STATE_TABLES}

    stores = _stores(pg_url, tmp_path)
    try:
        writer = stores.open_sample_writer(interval_s=30)
        writer.write_cycle(cycle(T0))
        with stores.backend.db.connection() as conn:
            first = pages(conn)
            fill = {r["relname"]: r["reloptions"] for r in conn.fetchall(
                "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(?)", (list(pg_series.STATE_TABLES),))}
        for k in range(1, 4):
            writer.write_cycle(cycle(T0 + 30 * k))
        with stores.backend.db.connection() as conn:
            after = pages(conn)
            assert conn.fetchone("SELECT count(*) AS n FROM baselines WHERE ts = ?", (T0 + 90.3,))["n"] == len(ids)
    finally:
        stores.close()
    assert fill == {t: [f"fillfactor={pg_series.STATE_FILLFACTOR}"] for t in pg_series.STATE_TABLES}
    assert max(first["baselines"].values()) >= 5  # the rows span pages: the check below means something
    assert after == first
