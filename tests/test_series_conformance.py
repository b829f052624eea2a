"""The time series through `open_stores` on both backends (S11), and what only PostgreSQL does: fences, partitions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from panfm.models import CounterBaseline, CycleResult, DeviceSample, DeviceStatus, InterfaceCounters, InterfaceSample

T0 = 1_780_000_200.0  # a whole 5-minute bucket start (2026-05-28)


def _cycle(t: float, devices: dict[str, float], *, iface: bool = True) -> CycleResult:
    samples = tuple(DeviceSample(device_id=d, ts=t + 0.25, inbound_mbps=v, outbound_mbps=v / 2, total_mbps=v * 1.5,
                                 sessions_active=int(v * 10), cpu_dataplane_pct=12.5, rtt_ms=3.0, approx=False)
                    for d, v in devices.items())
    ifaces = tuple(InterfaceSample(device_id=d, name="ethernet1/1", ts=t + 0.25, in_bps=v * 1e6, out_bps=v * 5e5,
                                   in_pps=v, out_pps=v, errors_per_s=0.0, drops_per_s=0.5, counted=True, approx=False)
                   for d, v in devices.items()) if iface else ()
    counters = {"ethernet1/1": InterfaceCounters("ethernet1/1", 2**63 - 5, 10, 11, 12, 0, 1, source="hw")}
    return CycleResult(
        started=t, finished=t + 1.0, samples=samples, interfaces=ifaces,
        baselines=tuple(CounterBaseline(d, t, "SER" + d, 1000, counters, 3.0) for d in devices),
        statuses=tuple(DeviceStatus(d, "up", t, t, None, 0) for d in devices),
    )


def _write(store, cycle, **kw):
    return store.write_cycle(cycle, {"executions": 1}, **kw) if kw else store.write_cycle(cycle, {"executions": 1})


def test_a_written_cycle_reads_back_latest_state_counters_and_history(stores):
    writer = stores.open_sample_writer(interval_s=30)
    try:
        for i in range(10):
            _write(writer, _cycle(T0 + 30 * i, {"dev-a": 100.0 + i, "dev-b": 50.0}))
    finally:
        writer.close()
    with stores.open_sample_reader() as reader:
        latest = reader.latest_all()
        assert sorted(latest) == ["dev-a", "dev-b"]
        assert latest["dev-a"].inbound_mbps == pytest.approx(109.0)
        assert latest["dev-a"].sessions_active == 1090
        assert latest["dev-a"].ts == T0 + 270.25
        assert reader.latest("dev-b").outbound_mbps == pytest.approx(25.0)
        assert reader.latest("nope") is None
        [eth] = reader.interfaces_latest("dev-a")
        assert eth.name == "ethernet1/1" and eth.in_bps == pytest.approx(109e6) and eth.counted
        assert reader.device_statuses()["dev-a"].state == "up"
        assert reader.baselines()["dev-a"].counters["ethernet1/1"].ibytes == 2**63 - 5  # exact 64-bit
        assert reader.clock_stats() == {"executions": 1, "heartbeat": T0 + 271.0}
        h = reader.history("dev-a", T0, T0 + 300)
        assert h.tier == "raw" and [p["t"] for p in h.points] == [T0 + 30 * i + 0.25 for i in range(10)]
        assert [p["inbound_mbps"] for p in h.points] == pytest.approx([100.0 + i for i in range(10)])
        ih = reader.interface_history("dev-a", "ethernet1/1", T0, T0 + 300)
        assert [p["in_bps"] for p in ih.points] == pytest.approx([(100.0 + i) * 1e6 for i in range(10)])
        summary = reader.summary("dev-a", T0, T0 + 300)
        assert summary["inbound_mbps"] == {"min": pytest.approx(100.0), "avg": pytest.approx(104.5),
                                           "max": pytest.approx(109.0)}
        assert reader.change_marker() != ()


def test_inventory_and_clock_stats_written_outside_a_cycle(stores):
    writer = stores.open_sample_writer()
    try:
        writer.write_inventory("dev-a", T0, {"model": "PA-440", "sw_version": "11.1.2"})
        writer.write_clock_stats({"runs": 3}, T0 + 5)
        assert writer.load_statuses() == {}
    finally:
        writer.close()
    with stores.open_sample_reader() as reader:
        assert reader.inventory("dev-a") == {"model": "PA-440", "sw_version": "11.1.2", "collected_at": T0}
        assert list(reader.inventory_all()) == ["dev-a"]
        assert reader.clock_stats() == {"runs": 3, "heartbeat": T0 + 5}


def test_closed_buckets_are_rolled_up_and_long_ranges_read_them(stores):
    writer = stores.open_sample_writer(interval_s=60)
    try:
        for i in range(130):  # 2 h 10 min of one-minute samples
            _write(writer, _cycle(T0 + 60 * i, {"dev-a": float(i % 10)}, iface=False))
    finally:
        writer.close()
    with stores.open_sample_reader() as reader:
        five = reader.history("dev-a", T0, T0 + 7200, max_points=15)
        assert five.tier == "5m" and five.bucket_s == 600
        assert all(p["inbound_mbps"] == pytest.approx(4.5) for p in five.points if p["inbound_mbps"] is not None)
        assert max(p["inbound_mbps_max"] for p in five.points if p["inbound_mbps_max"] is not None) == 9.0


def _ifaces(t: float, device: str, values: dict[str, float]) -> tuple[InterfaceSample, ...]:
    return tuple(InterfaceSample(device_id=device, name=n, ts=t + 0.5, in_bps=v * 1e6, out_bps=None, in_pps=v,
                                 out_pps=v * 2, errors_per_s=0.0, drops_per_s=None, counted=n != "tunnel.1",
                                 approx=None if v < 0 else v > 5)
                 for n, v in values.items())


def test_interfaces_that_come_and_go_read_back_each_with_its_newest_value_history_and_rollups(stores):
    writer = stores.open_sample_writer(interval_s=60)
    try:
        for i in range(12):  # ethernet1/2 polled for the first 4 minutes only; tunnel.1 from minute 3
            values = {"ethernet1/1": float(i)}
            if i < 4:
                values["ethernet1/2"] = 100.0 + i
            if i >= 3:
                values["tunnel.1"] = 7.0
            t = T0 + 60 * i
            cycle = _cycle(t, {"dev-a": 1.0}, iface=False)
            cycle = CycleResult(cycle.started, cycle.finished, cycle.samples, _ifaces(t, "dev-a", values),
                                cycle.baselines, cycle.statuses)
            _write(writer, cycle)
    finally:
        writer.close()
    with stores.open_sample_reader() as reader:
        latest = {x.name: x for x in reader.interfaces_latest("dev-a")}
        assert sorted(latest) == ["ethernet1/1", "ethernet1/2", "tunnel.1"]
        assert latest["ethernet1/1"].in_bps == pytest.approx(11e6) and latest["ethernet1/1"].ts == T0 + 660
        assert latest["ethernet1/2"].in_bps == pytest.approx(103e6) and latest["ethernet1/2"].ts == T0 + 180
        assert latest["ethernet1/2"].out_bps is None and latest["ethernet1/2"].drops_per_s is None
        assert latest["ethernet1/2"].out_pps == pytest.approx(206.0) and latest["ethernet1/2"].approx is True
        assert latest["tunnel.1"].counted is False and latest["ethernet1/1"].counted is True
        assert latest["ethernet1/1"].approx is True  # 11 > 5
        two = reader.interface_history("dev-a", "ethernet1/2", T0, T0 + 720)
        assert two.tier == "raw" and [p["t"] for p in two.points] == [T0 + 60 * i for i in range(4)]
        assert [p["in_bps"] for p in two.points] == pytest.approx([(100.0 + i) * 1e6 for i in range(4)])
        tun = reader.interface_history("dev-a", "tunnel.1", T0, T0 + 720)
        assert len(tun.points) == 9 and all(p["in_pps"] == pytest.approx(7.0) for p in tun.points)
        assert reader.interface_history("dev-a", "nope", T0, T0 + 720).points == []
        assert reader.interfaces_latest("dev-b") == []
        # 5-minute rollups of the closed buckets (T0 .. T0 + 600): the averages of each interface's own rows
        five = reader.interface_history("dev-a", "ethernet1/1", T0, T0 + 600, max_points=3)
        assert five.tier == "5m"
        got = [p["in_bps"] for p in five.points if p["in_bps"] is not None]
        assert got == pytest.approx([2e6, 7e6])
        five2 = reader.interface_history("dev-a", "ethernet1/2", T0, T0 + 600, max_points=3)
        assert [p["in_bps"] for p in five2.points if p["in_bps"] is not None] == pytest.approx([101.5e6])


# ---- PostgreSQL only -------------------------------------------------------------------------

LEASE_DDL = ("CREATE TABLE IF NOT EXISTS device_lease (device_id TEXT PRIMARY KEY, owner TEXT,"
             " lease_until TIMESTAMPTZ, fence BIGINT NOT NULL DEFAULT 0)")


@pytest.fixture
def pg_stores(pg_url, tmp_path):
    from conftest import pg_env

    import config
    import throughput_storage

    config.ensure_data_dir(tmp_path / "data")
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(tmp_path / "data"), **pg_env(pg_url)})
    opened = throughput_storage.open_stores(settings, writer=True)
    yield opened
    opened.close()


def _sql(stores, sql, params=()):
    with stores.backend.db.transaction() as tx:
        cur = tx.execute(sql, params)
        return cur.fetchall() if cur.description else None


@pytest.mark.postgres
def test_fenced_writes_keep_only_rows_of_a_live_lease_with_its_fence(pg_stores):
    _sql(pg_stores, LEASE_DDL)
    _sql(pg_stores, "INSERT INTO device_lease VALUES ('dev-a', 'clock-1', now() + interval '1 minute', 7),"
                    " ('dev-b', 'clock-1', now() - interval '1 second', 3),"
                    " ('dev-c', 'clock-2', now() + interval '1 minute', 1)")
    writer = pg_stores.open_sample_writer(interval_s=30)
    fences = {"dev-a": 7, "dev-b": 3, "dev-c": 1, "dev-d": 1}
    # dev-a: granted; dev-b: lease expired; dev-c: another owner; dev-d: no lease at all.
    t0 = time.perf_counter()
    refused = writer.write_cycle(_cycle(T0, dict.fromkeys(fences, 10.0)), None, fence=("clock-1", fences))
    wall_ms = (time.perf_counter() - t0) * 1000
    assert refused == 3
    # The fenced write's transaction time on the server, BEGIN to its last statement: inside its wall time.
    assert writer.last_txn_ms is not None and 0 < writer.last_txn_ms <= wall_ms
    # A stale fence of a lease renewed since is refused too.
    assert writer.write_cycle(_cycle(T0 + 30, {"dev-a": 1.0}), None, fence=("clock-1", {"dev-a": 6})) == 1
    reader = pg_stores.open_sample_reader()
    assert sorted(reader.latest_all()) == ["dev-a"]
    assert sorted(reader.device_statuses()) == ["dev-a"]  # a refused clock touches no state
    assert sorted(reader.baselines()) == ["dev-a"]
    assert [s.name for s in reader.interfaces_latest("dev-b")] == []


@pytest.mark.postgres
def test_never_a_second_sample_for_a_device_and_slot(pg_stores):
    writer = pg_stores.open_sample_writer(interval_s=30)
    writer.write_cycle(_cycle(T0, {"dev-a": 1.0}))
    writer.write_cycle(_cycle(T0 + 12, {"dev-a": 2.0}))  # another clock, same slot
    writer.write_cycle(_cycle(T0 + 30, {"dev-a": 3.0}))
    rows = _sql(pg_stores, "SELECT slot, inbound_mbps FROM device_samples ORDER BY slot")
    assert rows == [{"slot": int(T0), "inbound_mbps": 1.0}, {"slot": int(T0) + 30, "inbound_mbps": 3.0}]


@pytest.mark.postgres
def test_raw_rows_live_in_day_partitions_created_ahead_and_retention_drops_them(pg_stores):
    writer = pg_stores.open_sample_writer(interval_s=30)
    day = dt.datetime.fromtimestamp(T0, dt.UTC).date()
    for d in range(4):
        writer._partitions_until = float("-inf")  # each cycle below starts a new day
        writer.write_cycle(_cycle(T0 + d * 86400, {"dev-a": float(d)}))
    parts = {r["relname"] for r in _sql(pg_stores, "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                                                   " ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
                                                   " WHERE p.relname = 'device_samples'")}
    for d in range(-1, 6):
        assert f"device_samples_p{day + dt.timedelta(days=d):%Y%m%d}" in parts
    assert _sql(pg_stores, "SELECT count(*) AS n FROM device_samples_default") == [{"n": 0}]
    now = T0 + 3 * 86400 + 60
    gone = writer.cleanup(now, raw_days=1, fivemin_days=90, hourly_days=730)
    assert gone["partitions"] >= 2 * 3  # both tables, the days ending a day or more before now
    left = _sql(pg_stores, "SELECT slot FROM device_samples ORDER BY slot")
    assert [r["slot"] for r in left] == [int(T0) + 2 * 86400, int(T0) + 3 * 86400]
    parts = {r["relname"] for r in _sql(pg_stores, "SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                                                   " ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
                                                   " WHERE p.relname = 'device_samples'")}
    assert f"device_samples_p{day:%Y%m%d}" not in parts


@pytest.mark.postgres
def test_rolling_up_the_same_buckets_again_or_after_a_late_sample_is_idempotent(pg_stores):
    _sql(pg_stores, LEASE_DDL)
    _sql(pg_stores, "INSERT INTO device_lease VALUES ('dev-a', 'c1', now() + interval '1 hour', 1)")
    writer = pg_stores.open_sample_writer(interval_s=60)
    for i in range(0, 10, 2):  # every other minute of the first ten
        writer.write_cycle(_cycle(T0 + 60 * i, {"dev-a": float(i)}), None, fence=("c1", {"dev-a": 1}))
    writer.advance_rollups(T0 + 600)
    first = _sql(pg_stores, "SELECT bucket, n, inbound_mbps_avg FROM device_5m ORDER BY bucket")
    writer.advance_rollups(T0 + 600)
    writer.advance_rollups(T0 + 600, since=T0)
    assert _sql(pg_stores, "SELECT bucket, n, inbound_mbps_avg FROM device_5m ORDER BY bucket") == first
    assert first == [{"bucket": int(T0), "n": 3, "inbound_mbps_avg": 2.0},
                     {"bucket": int(T0) + 300, "n": 2, "inbound_mbps_avg": 7.0}]
    # A late sample of a closed bucket: re-running from its time counts it.
    writer.write_cycle(_cycle(T0 + 60, {"dev-a": 1.0}), None, fence=("c1", {"dev-a": 1}))
    writer.advance_rollups(T0 + 600, since=T0)
    assert _sql(pg_stores, "SELECT n, inbound_mbps_avg FROM device_5m WHERE bucket = ?", (int(T0),)) == [
        {"n": 4, "inbound_mbps_avg": 1.75}]


@pytest.mark.postgres
def test_long_charts_read_the_30_minute_groups_and_get_the_points_of_the_5_minute_rows(pg_stores):
    from panfm.storage import pg_reader

    writer = pg_stores.open_sample_writer(interval_s=60)
    for i in range(0, 600, 3):  # 10 hours, a sample every 3 minutes, some metrics missing now and then
        sample = DeviceSample(device_id="dev-a", ts=T0 + 60 * i + 0.5, inbound_mbps=float(i % 17),
                              cpu_dataplane_pct=None if i % 7 == 0 else float(i % 5))
        writer.write_cycle(CycleResult(started=T0 + 60 * i, finished=T0 + 60 * i + 1, samples=(sample,),
                                       interfaces=(), baselines=(), statuses=()))
    reader = pg_stores.open_sample_reader()
    grouped = reader.history("dev-a", T0 - 86400, T0 + 86400, max_points=60)  # hourly points: 30-minute groups
    assert (grouped.tier, grouped.bucket_s) == ("5m", 3600)
    with pg_stores.backend.db.connection() as conn:
        dk = conn.fetchone("SELECT dk FROM ts_device WHERE device_id = 'dev-a'")["dk"]
        direct = conn.fetchall(pg_reader._grouped_sql("device_5m", "dk", ("inbound_mbps", "cpu_dataplane_pct"), 3600),
                               (dk, int(T0 - 86400) // 300 * 300, int(T0 + 86400)))
    got = [(p["t"], p["inbound_mbps"], p["cpu_dataplane_pct"]) for p in grouped.points if p["inbound_mbps"] is not None]
    want = [(float(r["t"]), r["inbound_mbps"], r["cpu_dataplane_pct"]) for r in direct]
    assert len(got) == len(want) >= 5
    for (t1, a1, c1), (t2, a2, c2) in zip(got, want, strict=True):
        assert t1 == t2 and a1 == pytest.approx(a2, rel=1e-5) and c1 == pytest.approx(c2, rel=1e-5)


@pytest.mark.postgres
def test_a_fenced_inventory_is_stored_only_under_a_live_lease_with_its_fence(pg_stores):
    _sql(pg_stores, LEASE_DDL)
    _sql(pg_stores, "INSERT INTO device_lease VALUES ('dev-a', 'c1', now() + interval '1 minute', 2),"
                    " ('dev-b', 'c1', now() - interval '1 second', 5)")
    writer = pg_stores.open_sample_writer()
    assert writer.write_inventory("dev-a", T0, {"model": "PA-440"}, fence=("c1", 2)) is True
    assert writer.write_inventory("dev-a", T0 + 1, {"model": "stale"}, fence=("c1", 1)) is False  # older grant
    assert writer.write_inventory("dev-a", T0 + 2, {"model": "other"}, fence=("c2", 2)) is False  # not its owner
    assert writer.write_inventory("dev-b", T0, {"model": "PA-440"}, fence=("c1", 5)) is False  # lease ran out
    reader = pg_stores.open_sample_reader()
    assert reader.inventory("dev-a") == {"model": "PA-440", "collected_at": T0}
    assert reader.inventory("dev-b") is None


@pytest.mark.postgres
def test_each_clock_keeps_its_own_stats_row_and_the_newest_is_the_fleets(pg_stores):
    writer = pg_stores.open_sample_writer()
    writer.write_clock_stats({"runs": 1, "coordination": {"node_id": "n1"}}, T0 + 5, node_id="n1")
    writer.write_clock_stats({"runs": 7, "coordination": {"node_id": "n2"}}, T0 + 9, node_id="n2")
    writer.write_clock_stats({"runs": 2, "coordination": {"node_id": "n1"}}, T0 + 6, node_id="n1")
    reader = pg_stores.open_sample_reader()
    by_node = reader.clock_stats_by_node()
    assert sorted(by_node) == ["n1", "n2"]
    assert by_node["n1"]["runs"] == 2 and by_node["n1"]["heartbeat"] == T0 + 6
    assert reader.clock_stats()["runs"] == 7  # the newest heartbeat: what health and "running" read
    assert writer.cleanup(T0 + 9 + 86400 - 2, raw_days=30, fivemin_days=90, hourly_days=730)["clock_stats"] == 1
    assert sorted(reader.clock_stats_by_node()) == ["n2"]


@pytest.mark.postgres
def test_a_cycle_partly_written_already_keeps_the_first_rows_and_adds_the_new_ones(pg_stores):
    writer = pg_stores.open_sample_writer(interval_s=30)
    writer.write_cycle(_cycle(T0, {"dev-a": 1.0}))
    # Same slot: dev-a's row (device and interface) exists, dev-b's does not.
    writer.write_cycle(_cycle(T0 + 5, {"dev-a": 9.0, "dev-b": 2.0}))
    rows = _sql(pg_stores, "SELECT d.device_id, s.inbound_mbps FROM device_samples s JOIN ts_device d USING (dk)"
                           " ORDER BY 1")
    assert rows == [{"device_id": "dev-a", "inbound_mbps": 1.0}, {"device_id": "dev-b", "inbound_mbps": 2.0}]
    ifaces = _sql(pg_stores, "SELECT d.device_id, s.in_bps FROM iface_samples s JOIN ts_iface i USING (ik)"
                             " JOIN ts_device d ON d.dk = i.dk ORDER BY 1")
    assert ifaces == [{"device_id": "dev-a", "in_bps": 1_000_000}, {"device_id": "dev-b", "in_bps": 2_000_000}]
    assert sorted(pg_stores.open_sample_reader().device_statuses()) == ["dev-a", "dev-b"]


@pytest.fixture
def key_lookups(monkeypatch):
    """Every `PgSampleStore._keys` call (keys looked up or made): its (devices, interfaces), sorted."""
    from panfm.storage.pg_samples import PgSampleStore

    calls: list[tuple[list[str], list[tuple[str, str]]]] = []
    real_keys = PgSampleStore._keys

    def counted(tx, devices, ifaces):
        calls.append((sorted(devices), sorted(ifaces)))
        return real_keys(tx, devices, ifaces)

    monkeypatch.setattr(PgSampleStore, "_keys", staticmethod(counted))
    return calls


@pytest.mark.postgres
def test_a_writer_warmed_with_its_granted_devices_writes_their_first_cycle_without_a_key_lookup(pg_stores,
                                                                                                 key_lookups):
    lookups = key_lookups
    first = pg_stores.open_sample_writer(interval_s=30)  # the clock that went away: it made the keys
    first.write_cycle(_cycle(T0, {"dev-a": 1.0, "dev-b": 2.0}))
    assert len(lookups) == 1
    # The clock that took both devices over: two device keys and two interface keys warmed; a
    # device no clock wrote yet has none to warm.
    taker = pg_stores.open_sample_writer(interval_s=30)
    assert taker.warm_keys(frozenset({"dev-a", "dev-b", "dev-new"})) == 4
    assert taker.warm_keys(frozenset({"dev-a"})) == 0
    taker.write_cycle(_cycle(T0 + 30, {"dev-a": 3.0, "dev-b": 4.0}))
    assert len(lookups) == 1  # no lookup in its first write
    # Not warmed: the first write looks them up (the cache is what the warm saved).
    cold = pg_stores.open_sample_writer(interval_s=30)
    cold.write_cycle(_cycle(T0 + 60, {"dev-a": 5.0, "dev-b": 6.0}))
    assert lookups[1:] == [(["dev-a", "dev-b"], [("dev-a", "ethernet1/1"), ("dev-b", "ethernet1/1")])]
    # The new device's keys are made by its write, beside the warmed ones.
    taker.write_cycle(_cycle(T0 + 90, {"dev-a": 7.0, "dev-new": 8.0}))
    assert lookups[2:] == [(["dev-new"], [("dev-new", "ethernet1/1")])]
    reader = pg_stores.open_sample_reader()
    assert {d: s.inbound_mbps for d, s in reader.latest_all().items()} == {"dev-a": 7.0, "dev-b": 6.0,
                                                                            "dev-new": 8.0}
    assert [x.in_bps for x in reader.interfaces_latest("dev-a")] == [7e6]


@pytest.mark.postgres
def test_keys_made_before_the_write_leave_the_fenced_write_none_to_make(pg_stores, key_lookups):
    made = key_lookups
    writer = pg_stores.open_sample_writer(interval_s=30)
    cycle = _cycle(T0, {"dev-a": 1.0, "dev-b": 2.0})
    assert writer.ensure_keys(cycle) == 4  # two devices, one interface each: committed at once
    assert _sql(pg_stores, "SELECT count(*) AS n FROM ts_iface") == [{"n": 2}]
    assert writer.ensure_keys(cycle) == 0
    writer.write_cycle(cycle)
    assert made == [(["dev-a", "dev-b"], [("dev-a", "ethernet1/1"), ("dev-b", "ethernet1/1")])]  # none in the write
    rows = _sql(pg_stores, "SELECT d.device_id, s.inbound_mbps FROM device_samples s JOIN ts_device d USING (dk)"
                           " ORDER BY 1")
    assert rows == [{"device_id": "dev-a", "inbound_mbps": 1.0}, {"device_id": "dev-b", "inbound_mbps": 2.0}]
    # Another writer making the same keys gets the same numbers (a key is the name's, not the clock's).
    other = pg_stores.open_sample_writer(interval_s=30)
    assert other.ensure_keys(_cycle(T0 + 30, {"dev-a": 3.0, "dev-c": 4.0})) == 4
    assert other._dks["dev-a"] == writer._dks["dev-a"]
    assert _sql(pg_stores, "SELECT count(*) AS n FROM ts_device") == [{"n": 3}]


def _as(cycle: CycleResult, renames: dict[str, str]) -> CycleResult:
    """The same cycle with its devices renamed (the same values written under other ids)."""
    def moved(xs):
        return tuple(dataclasses.replace(x, device_id=renames[x.device_id]) for x in xs)

    return dataclasses.replace(cycle, samples=moved(cycle.samples), interfaces=moved(cycle.interfaces),
                               baselines=moved(cycle.baselines), statuses=moved(cycle.statuses),
                               dataplanes=moved(cycle.dataplanes))


@pytest.mark.postgres
def test_a_write_packed_before_its_transaction_stores_what_the_write_packing_itself_stores(pg_stores, monkeypatch):
    from panfm.models import DataplaneCpu
    from panfm.storage import pg_rows, pg_state

    writer = pg_stores.open_sample_writer(interval_s=30)
    base = dataclasses.replace(_cycle(T0, {"dev-a": 1.5, "dev-b": 2.0}),
                               dataplanes=(DataplaneCpu("dev-a", T0 + 0.25, (("dp0", 12.0),), ("dp0", 1, 30.0)),))
    theirs = _as(base, {"dev-a": "dev-c", "dev-b": "dev-d"})
    assert writer.pack_cycle(theirs) is None  # its keys are not cached yet: the write would pack it
    writer.ensure_keys(theirs)
    packed = writer.pack_cycle(theirs)
    assert packed is not None
    writer.write_cycle(base, {"executions": 1})
    with monkeypatch.context() as m:  # the packed write packs nothing itself
        for mod, name in ((pg_rows, "iface_keys"), (pg_rows, "iface_columns"), (pg_rows, "device_columns"),
                          (pg_state, "state_params")):
            m.setattr(mod, name, lambda *a, _n=name: pytest.fail(f"{_n} called inside the packed write"))
        assert writer.write_cycle(theirs, {"executions": 1}, packed=packed) == 0
    reader = pg_stores.open_sample_reader()
    latest = reader.latest_all()
    statuses, baselines = reader.device_statuses(), reader.baselines()
    for mine, other in (("dev-a", "dev-c"), ("dev-b", "dev-d")):
        assert latest[other] == dataclasses.replace(latest[mine], device_id=other)
        assert reader.interfaces_latest(other) == [dataclasses.replace(x, device_id=other)
                                                   for x in reader.interfaces_latest(mine)]
        assert statuses[other] == dataclasses.replace(statuses[mine], device_id=other)
        assert baselines[other] == dataclasses.replace(baselines[mine], device_id=other, serial="SER" + mine)
    assert reader.dataplane_cpu("dev-c") == reader.dataplane_cpu("dev-a") is not None
    # Packed for another cycle (or slot): not used, the write packs its own.
    later = _cycle(T0 + 30, {"dev-c": 9.0})
    writer.write_cycle(later, {"executions": 1}, packed=packed)
    assert reader.latest("dev-c").inbound_mbps == 9.0
    assert [x.in_bps for x in reader.interfaces_latest("dev-c")] == [9e6]
    # A device and slot already written: the packed write keeps the first row too.
    again = _cycle(T0 + 30, {"dev-c": 4.0, "dev-d": 5.0})
    writer.write_cycle(again, {"executions": 1}, packed=writer.pack_cycle(again))
    assert reader.latest("dev-c").inbound_mbps == 9.0
    assert reader.latest("dev-d").inbound_mbps == 5.0


@pytest.mark.postgres
def test_a_write_prepared_ahead_finds_its_day_partitions_and_connection_ready(pg_stores):
    """`prepare_write` (the clock calls it before its turn to write) makes the day partitions and
    sets up a connection; the write after it then creates none and writes the same rows."""
    writer = pg_stores.open_sample_writer(interval_s=30)
    parts = ("SELECT count(*) AS n FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
             " WHERE p.relname IN ('device_samples', 'iface_packed')")
    before = _sql(pg_stores, parts)[0]["n"]
    writer.prepare_write(T0)
    made = _sql(pg_stores, parts)[0]["n"]
    assert made > before
    named = _sql(pg_stores, "SELECT relname FROM pg_class WHERE relname LIKE 'device_samples_p%'")
    days = {r["relname"][-8:] for r in named}
    assert dt.datetime.fromtimestamp(T0, dt.UTC).strftime("%Y%m%d") in days
    assert writer.write_cycle(_cycle(T0, {"dev-a": 5.0}), None) == 0
    assert _sql(pg_stores, parts)[0]["n"] == made
    assert [s.device_id for s in pg_stores.open_sample_reader().latest_all().values()] == ["dev-a"]


@pytest.mark.postgres
def test_interface_rows_with_missing_values_keep_every_null_and_every_value_exactly(pg_stores, monkeypatch):
    """A cycle where some firewalls have no rates yet (first polls) goes without a NULL in its arrays
    (`PUT_IFACE_NULLS`: NaN and -1 for the missing, a flag per device); each device's row gets its
    NULLs back and the others their values, exactly as a cycle without missing values does."""
    from panfm.storage import pg_rows

    writer = pg_stores.open_sample_writer(interval_s=30)
    full = {f"dev-{k}": float(k + 1) for k in range(6)}
    first = ("dev-1", "dev-4")  # no rate at all yet, approx unknown
    ifaces = tuple(
        InterfaceSample(device_id=d, name=n, ts=T0 + 0.5, in_bps=None, out_bps=None, in_pps=None, out_pps=None,
                        errors_per_s=None, drops_per_s=None, counted=True, approx=None)
        if d in first else
        InterfaceSample(device_id=d, name=n, ts=T0 + 0.5, in_bps=v * 1e6 + 3, out_bps=v * 1e5, in_pps=v + 0.25,
                        out_pps=None if n == "ethernet1/2" else v * 2, errors_per_s=0.0, drops_per_s=0.5,
                        counted=n != "ethernet1/2", approx=v > 3)
        for d, v in full.items() for n in ("ethernet1/1", "ethernet1/2"))
    cycle = dataclasses.replace(_cycle(T0, full), interfaces=ifaces)
    sent: list[bool] = []
    real = pg_rows.iface_columns
    monkeypatch.setattr(pg_rows, "iface_columns",
                        lambda keyed, slot: sent.append((got := real(keyed, slot)).nulls) or got)
    assert writer.write_cycle(cycle, None) == 0
    assert sent == [True]  # the statement without NULLs in its arrays
    reader = pg_stores.open_sample_reader()
    for d in full:
        stored = {x.name: x for x in reader.interfaces_latest(d)}
        for x in (i for i in ifaces if i.device_id == d):
            s = stored[x.name]
            assert (s.in_bps, s.out_bps, s.counted, s.approx) == (x.in_bps, x.out_bps, x.counted, x.approx), (d, x.name)
            for m in ("in_pps", "out_pps", "errors_per_s", "drops_per_s"):
                assert getattr(s, m) == (None if getattr(x, m) is None else pytest.approx(getattr(x, m))), (d, m)
