"""The clock's coordination seen from outside: /api/clock's clocks, devices' polled_by, the missed cleanup.

On SQLite (one clock, `coordination.db`) and on the suite's own PostgreSQL.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time

import pytest
from conftest import SIM_NETWORKS, pg_env
from helpers.alerts import INITIAL, web_client
from helpers.clocks import ClockProc, wait_for
from helpers.storage import cycle

import clock
import config
from alerts import alert_inputs
from panfm.models import DeviceConfig, TlsConfig
from panfm.ops import write_clock_stats
from panfm.ops.clock_leader import WARM_THREAD
from throughput_storage import (
    COORDINATION_DB,
    HISTORY_DB,
    CoordinationUnavailable,
    PgSampleReader,
    cleanup_day,
    open_coordinator,
    open_stores,
)


def _settings(data_dir, **env):
    full = {"PANFM_DATA_DIR": str(data_dir), "PANFM_REFRESH_INTERVAL": "5", "PANFM_ADMIN_PASSWORD": INITIAL,
            "PANFM_ALLOWED_DEVICE_NETWORKS": SIM_NETWORKS, **env}
    config.ensure_data_dir(data_dir)
    return config.load_settings(env=full)


def _device(name, port):
    return DeviceConfig(id=name, name=name, host="127.0.0.1", port=port, api_key="k", tls=TlsConfig("insecure"))


@pytest.fixture
def sqlite_ctx(tmp_path):
    settings = _settings(tmp_path / "data")
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    yield settings, ctx
    ctx.collector.close()
    ctx.store.close()
    ctx.keeper.coordinator.close()


def test_on_sqlite_api_clock_lists_the_one_clock_and_every_device_names_it(sqlite_ctx):
    settings, ctx = sqlite_ctx
    for port, name in enumerate(("fw-a", "fw-b"), start=1):
        ctx.devices.add(_device(name, port))
    client = web_client(settings)
    clock.lease_once(ctx)  # a heartbeat just now: live means younger than one interval
    body = client.get("/api/clock").get_json()
    assert {"running", "heartbeat", "age_seconds", "stats"} <= set(body)  # the fields from before stay
    [node] = body["clocks"]
    assert node["node_id"] == ctx.keeper.node_id and node["leader"] is True and node["devices"] == 2
    assert node["started_at"].endswith("Z") and node["heartbeat_at"].endswith("Z")
    assert node["stats"] is None  # nothing written yet
    ctx.stats.coordination = ctx.keeper.snapshot()
    write_clock_stats(ctx)
    body = client.get("/api/clock").get_json()
    [node] = body["clocks"]
    assert node["stats"] == body["stats"] and node["stats"]["heartbeat"].endswith("Z")
    clock.lease_once(ctx)
    listed = {d["id"]: d["polled_by"] for d in client.get("/api/devices").get_json()["devices"]}
    assert listed == {"fw-a": ctx.keeper.node_id, "fw-b": ctx.keeper.node_id}
    clock.lease_once(ctx)
    assert client.get("/api/devices/fw-a").get_json()["polled_by"] == ctx.keeper.node_id
    ctx.keeper.release()  # SIGTERM: nothing is polled by anyone until a clock runs again
    assert client.get("/api/clock").get_json()["clocks"] == []
    assert {d["polled_by"] for d in client.get("/api/devices").get_json()["devices"]} == {None}


def test_on_sqlite_a_web_before_any_clock_answers_no_clocks_and_no_poller(tmp_path):
    settings = _settings(tmp_path / "data")
    client = web_client(settings)
    body = client.get("/api/clock").get_json()
    assert body["clocks"] == [] and body["running"] is False and body["clocks_error"]


def test_the_leader_runs_a_due_cleanup_once_and_a_new_store_only_records_the_day(sqlite_ctx):
    _, ctx = sqlite_ctx
    clock.lease_once(ctx)
    assert clock.cleanup_if_due(ctx) is None  # nothing recorded yet: today's is recorded, not run
    today = cleanup_day(ctx.keeper.coordinator.db_now())
    assert ctx.keeper.coordinator.last_run("cleanup") == today
    assert clock.cleanup_if_due(ctx) is None


def test_a_0200_cleanup_missed_while_the_clock_was_down_runs_at_its_next_start_on_sqlite(tmp_path):
    data = tmp_path / "data"
    settings = _settings(data)
    now = time.time()
    # What a clock stopped for two nights left behind: its last cleanup and a sample past retention.
    coord = open_coordinator("", data)
    coord.register("old-node", "old-host", 1)
    coord.claim_run("cleanup", cleanup_day(now) - 2, "old-node")
    coord.close()
    ctx = clock.build_context(settings)
    ctx.store.write_cycle(cycle(now - 30 * 86400, devices=("fw-old",)))
    ctx.store.write_cycle(cycle(now - 60, devices=("fw-new",)))
    ctx.store.close()
    ctx.collector.close()
    ctx.keeper.coordinator.close()
    proc = ClockProc(data, "", "clock", interval=5)
    try:
        def ran():
            conn = sqlite3.connect(f"file:{data / COORDINATION_DB}?mode=ro", uri=True, timeout=5)
            try:
                return conn.execute("SELECT owner FROM job_run WHERE name = 'cleanup' AND slot = ?",
                                    (cleanup_day(time.time()),)).fetchone()
            finally:
                conn.close()

        (owner,) = wait_for(ran, timeout=60, what="the missed cleanup at start")
        assert owner != "old-node"
        wait_for(lambda: "cleanup:" in proc.log(), timeout=30, what="the cleanup's log line")
    finally:
        assert proc.terminate() == 0
        proc.close()
    conn = sqlite3.connect(f"file:{data / HISTORY_DB}?mode=ro", uri=True)
    try:
        left = {r[0] for r in conn.execute("SELECT DISTINCT device_id FROM device_samples")}
    finally:
        conn.close()
    assert left == {"fw-new"}, "the sample past raw retention went with the cleanup"


@pytest.mark.postgres
def test_on_postgresql_api_clock_lists_every_live_clock_and_health_names_a_database_away(
        pg_server, pg_url, tmp_path):
    settings = _settings(tmp_path / "data", **pg_env(pg_url))
    client = web_client(settings)  # migrates the stores
    coords = [open_coordinator(pg_url, tmp_path) for _ in range(3)]
    ids = [f"fw-{i}" for i in range(9)]
    try:
        for i, c in enumerate(coords):
            c.register(f"node-{i}", f"host-<{i}>", 100 + i)
        for _ in range(2):
            for i, c in enumerate(coords):
                c.lease_round(f"node-{i}", ids, 5.0)
        stores = open_stores(settings, writer=True)
        try:  # each clock's own stats row (issue 13): not one row shared by all
            writer = stores.open_sample_writer(5)
            writer.write_clock_stats({"total_executions": 3}, time.time(), node_id="node-0")
            writer.write_clock_stats({"total_executions": 8}, time.time() + 1, node_id="node-1")
        finally:
            stores.close()
        body = client.get("/api/clock").get_json()
        clocks = body["clocks"]
        own = {n["node_id"]: (n["stats"] or {}).get("total_executions") for n in clocks}
        assert own == {"node-0": 3, "node-1": 8, "node-2": None}
        assert body["stats"]["total_executions"] == 8  # the newest heartbeat's, as before
        assert sorted((n["node_id"], n["host"], n["pid"], n["devices"]) for n in clocks) == [
            ("node-0", "host-<0>", 100, 3), ("node-1", "host-<1>", 101, 3), ("node-2", "host-<2>", 102, 3)]
        assert sum(n["leader"] for n in clocks) == 1
        pg_server.stop("fast")
        try:
            r = client.get("/api/health")
            assert r.status_code == 503
            body = r.get_json()
            assert body["status"] == "degraded" and body["database"] == "unavailable" and "PostgreSQL" in body["reason"]
        finally:
            pg_server.start()
        # Back by itself: the clocks' next rounds and the web's next answers go through again.
        def round_again():
            try:
                return coords[0].lease_round("node-0", ids, 5.0)
            except CoordinationUnavailable:
                return None  # the first use after the restart meets the dropped connection

        wait_for(round_again, timeout=30, what="a lease round after the restart")
        # The web's coordination connection comes back by itself (the stores' pool has its own
        # reconnection, tested with the connection layer).
        web_coord = client.application.extensions["panfm"].coordinator

        def web_clocks():
            try:
                return web_coord.clocks(5.0)
            except CoordinationUnavailable:
                return None

        again = wait_for(web_clocks, timeout=30, what="the web reading the clocks again")
        assert "node-0" in {n.node_id for n in again}
        assert math.isfinite(coords[0].db_now())
    finally:
        for c in coords:
            c.close()
        client.application.extensions["panfm"].coordinator.close()  # the web's own connection


@pytest.mark.postgres
def test_on_postgresql_a_lease_round_warms_the_series_keys_of_the_devices_it_grants(pg_url, tmp_path):
    settings = _settings(tmp_path / "data", **pg_env(pg_url))
    web_client(settings)  # migrates the stores
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    try:
        ids = ("fw-a", "fw-b")
        for port, name in enumerate(ids, start=1):
            ctx.devices.add(_device(name, port))
        stores = open_stores(settings, writer=True)
        try:  # the clock that held them before: their keys exist in the database
            stores.open_sample_writer(5).write_cycle(cycle(time.time(), devices=ids, ifaces=("ethernet1/1", "ae1")))
        finally:
            stores.close()
        clock.lease_once(ctx)  # grants both (no poll: nothing asked for one here)
        assert ctx.keeper.last is not None and ctx.keeper.last.granted == frozenset(ids)
        for t in threading.enumerate():  # the keys are read in a thread of their own, not the lease job's
            if t.name == WARM_THREAD:
                t.join(timeout=30)
        assert ctx.store.warm_keys(ids) == 0  # already cached by the round: two devices, four interfaces
        fresh = open_stores(settings, writer=True)
        try:
            assert fresh.open_sample_writer(5).warm_keys(ids) == 6  # what the round cached
        finally:
            fresh.close()
    finally:
        ctx.collector.close()
        ctx.store.close()
        ctx.keeper.coordinator.close()


@pytest.mark.postgres
def test_on_postgresql_a_cycles_keys_are_made_and_its_rows_packed_before_its_write(pg_url, tmp_path, monkeypatch,
                                                                                    caplog):
    import panfm.ops.clock_jobs as clock_jobs
    from panfm.storage.pg_samples import PgSampleStore

    settings = _settings(tmp_path / "data", **pg_env(pg_url))
    web_client(settings)  # migrates the stores
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    events: list[str] = []
    real_keys, real_write = PgSampleStore._keys, PgSampleStore.write_cycle
    monkeypatch.setattr(PgSampleStore, "_keys",
                        staticmethod(lambda tx, d, i: events.append("keys") or real_keys(tx, d, i)))
    packed_for: list[bool] = []  # each write was handed its own cycle's parameters, packed before it
    monkeypatch.setattr(PgSampleStore, "write_cycle",
                        lambda self, c, **kw: events.append("write") or packed_for.append(kw["packed"].cycle is c)
                        or real_write(self, c, **kw))
    ids = ("fw-a", "fw-b")
    made = cycle(time.time(), devices=ids, ifaces=("ethernet1/1", "ae1"))
    monkeypatch.setattr(ctx.collector, "collect", lambda devices, interval, stop_at=None: made)
    try:
        with caplog.at_level("INFO", logger="panfm.clock"):
            clock_jobs._collect_and_write(ctx, [], settings, None, None, time.time(), time.monotonic())
            clock.collect_once(ctx)  # the whole job: its collect line names the packing
        assert events == ["keys", "write", "write"]  # made once, in their own transaction; no write made any
        assert packed_for == [True, True]
        from reliability import clock_logs

        got = clock_logs.figures([caplog.text])  # what `make bench-scaleout` reads of it
        assert got["packed_before_cpu_ms"]["n"] == 1 and got["write_cpu_ms"]["n"] == 1
        assert "6 new series key(s)" in caplog.text
        assert ctx.store.warm_keys(ids) == 0
    finally:
        ctx.collector.close()
        ctx.store.close()
        ctx.keeper.coordinator.close()


@pytest.mark.postgres
@pytest.mark.parametrize(("delay", "expected"), [
    (0.0, ["prepare", "pack", "write"]),  # the first in the clocks' order packs at once
    (0.2, ["prepare", "wait", "pack", "write"]),  # a later one packs once its turn has come
])
def test_on_postgresql_a_later_clock_packs_its_write_after_its_wait_not_during_the_earlier_writes(
        pg_url, tmp_path, monkeypatch, delay, expected):
    import psycopg

    import panfm.ops.clock_jobs as clock_jobs
    from panfm.storage.pg_samples import PgSampleStore

    settings = _settings(tmp_path / "data", **pg_env(pg_url))
    web_client(settings)  # migrates the stores
    ctx = clock.build_context(settings)
    events: list[str] = []
    real_prepare, real_pack = PgSampleStore.prepare_write, PgSampleStore.pack_cycle
    real_write = PgSampleStore.write_cycle
    monkeypatch.setattr(PgSampleStore, "prepare_write",
                        lambda self, now: events.append("prepare") or real_prepare(self, now))
    monkeypatch.setattr(PgSampleStore, "pack_cycle", lambda self, c: events.append("pack") or real_pack(self, c))
    monkeypatch.setattr(PgSampleStore, "write_cycle",
                        lambda self, c, **kw: events.append("write") or real_write(self, c, **kw))
    waited: list[float] = []
    monkeypatch.setattr(ctx.stopping, "wait", lambda s: events.append("wait") or waited.append(s) or False)
    monkeypatch.setattr(ctx.keeper, "write_delay_s", lambda: delay)
    monkeypatch.setattr(ctx.keeper, "hold_after_write_s", lambda: 0.0)
    ids = ("fw-a", "fw-b")
    made = cycle(time.time(), devices=ids, ifaces=("ethernet1/1",))
    monkeypatch.setattr(ctx.collector, "collect", lambda devices, interval, stop_at=None: made)
    try:
        assert ctx.store.ensure_keys(made) == 4  # 2 devices, 1 interface each: cached, the cycle packs
        clock_jobs._collect_and_write(ctx, [], settings, None, None, time.time(), time.monotonic())
        assert events == expected
        assert all(0 < s <= delay for s in waited)
        with psycopg.connect(pg_url) as conn:  # written
            assert conn.execute("SELECT count(*) FROM device_samples").fetchone()[0] == len(ids)
    finally:
        ctx.collector.close()
        ctx.store.close()
        ctx.keeper.coordinator.close()


class _FixedTimeCoordinator:
    """A coordinator whose database clock reads a set time (the keeper's arithmetic, not the SQL, under test)."""

    backend = "postgresql"

    def __init__(self, db_now, live_clocks=1, rank=0):
        self.db_now = db_now
        self.live_clocks, self.rank = live_clocks, rank

    def register(self, node_id, host, pid):
        pass

    def lease_round(self, node_id, device_ids, interval_s):
        from panfm.models import LeaseRound

        return LeaseRound(node_id=node_id, db_now=self.db_now, lease_s=interval_s * 5 / 6,
                          held={d: 1 for d in device_ids}, live_clocks=self.live_clocks, rank=self.rank)


@pytest.mark.parametrize(("into_slot", "bound"), [(1.5, "lease"), (20.0, "slot")])
def test_a_poll_may_call_until_its_leases_or_its_slot_end_whichever_comes_first(into_slot, bound):
    from panfm.ops import LeaseKeeper

    interval, mono = 30.0, [1000.0]
    keeper = LeaseKeeper(_FixedTimeCoordinator(100 * interval + into_slot), monotonic=lambda: mono[0])
    keeper.round(["fw-a"], interval)
    lease_end = keeper.stop_at()
    slot_end = 1000.0 + interval - into_slot
    assert lease_end == pytest.approx(1000.0 + 30 * 5 / 6 * 0.9)
    # A poll that starts late in its slot (a loaded host) stops at the slot's end: past it, a call
    # would be the next slot's second poll of the device.
    assert keeper.slot_stop_at(interval) == pytest.approx(lease_end if bound == "lease" else slot_end)
    mono[0] += 1.0  # asked a second later: the same bound, on the same monotonic clock
    assert keeper.slot_stop_at(interval) == pytest.approx(lease_end if bound == "lease" else slot_end)


def test_a_round_that_ran_past_the_next_slots_round_time_catches_that_slots_starting_round_up():
    from panfm.ops import LeaseKeeper
    from panfm.ops.lease_keeper import CATCH_UP_S

    interval, mono = 30.0, [1000.0]
    coordinator = _FixedTimeCoordinator(100 * interval + 21.6)  # the round at 72 % of slot 100
    keeper = LeaseKeeper(coordinator, monotonic=lambda: mono[0])
    keeper.round(["fw-a"], interval)
    assert keeper.next_round_in(interval) == pytest.approx(30.0 + 1.5 - 21.6)  # at 5 % of slot 101
    # The round (or what ran after it in the lease job) ended at 10 % of slot 101: its starting
    # round's time (5 %) has passed. Without a catch-up the next round would be at 38 %, not a
    # starting one, and slot 101 would have no poll.
    mono[0] += 30.0 - 21.6 + 3.0
    assert keeper.next_round_in(interval) == CATCH_UP_S
    coordinator.db_now = 101 * interval + 3.1
    keeper.round(["fw-a"], interval)  # the catch-up round starts slot 101
    assert keeper.starts_slot(keeper.last, interval)
    assert dict(keeper.take_slot(interval)) == {"fw-a": 1}
    assert keeper.next_round_in(interval) == pytest.approx(11.5 - 3.1)  # then on the thirds again
    # Late in the first third (past 28 %): too late to start the slot, the thirds as before.
    late = LeaseKeeper(_FixedTimeCoordinator(100 * interval + 21.6), monotonic=lambda: mono[0])
    late.round(["fw-a"], interval)
    mono[0] += 30.0 - 21.6 + 9.0
    assert late.next_round_in(interval) == pytest.approx(11.5 - 9.0)
    # After a failed round: the thirds as before, no loop of rounds against a database that is away.
    away = LeaseKeeper(_FixedTimeCoordinator(100 * interval + 21.6), monotonic=lambda: mono[0])
    away.round(["fw-a"], interval)
    away.coordinator.lease_round = _unavailable
    assert away.round(["fw-a"], interval) is None
    mono[0] += 30.0 - 21.6 + 3.0
    assert away.next_round_in(interval) > 1.0


def _unavailable(*args):
    raise CoordinationUnavailable("the database is away")


def test_a_slot_is_polled_once_even_when_two_rounds_or_two_poll_requests_fall_in_it():
    from panfm.ops import LeaseKeeper

    interval, mono = 30.0, [1000.0]
    coordinator = _FixedTimeCoordinator(100 * interval + 1.0)
    keeper = LeaseKeeper(coordinator, monotonic=lambda: mono[0])
    keeper.round(["fw-a", "fw-b"], interval)
    assert dict(keeper.take_slot(interval)) == {"fw-a": 1, "fw-b": 1}
    assert keeper.take_slot(interval) == {}  # a second poll request in the same slot calls nothing
    # A late round (a loaded host) that still looks like one that starts the slot: no second poll.
    mono[0] += 2.0
    coordinator.db_now += 2.0
    keeper.round(["fw-a", "fw-b"], interval)
    assert keeper.take_slot(interval) == {}
    # The next slot's first round: its poll calls them again.
    mono[0] += interval
    coordinator.db_now += interval
    keeper.round(["fw-a", "fw-b"], interval)
    assert dict(keeper.take_slot(interval)) == {"fw-a": 1, "fw-b": 1}


@pytest.mark.parametrize(("live", "rank", "waits", "holds"),
                         [(1, 0, 0.0, 0.0), (3, 0, 0.0, 0.45), (3, 1, 0.15, 0.30), (3, 2, 0.30, 0.0)])
def test_clocks_write_their_cycles_one_after_another_by_rank(live, rank, waits, holds):
    from panfm.ops import LeaseKeeper

    interval, mono = 30.0, [1000.0]
    keeper = LeaseKeeper(_FixedTimeCoordinator(100 * interval + 1.0, live, rank), monotonic=lambda: mono[0])
    assert keeper.write_delay_s() == 0.0  # before any round
    keeper.round(["fw-a"], interval)
    assert keeper.write_delay_s() == pytest.approx(waits)
    # After its write, its inventory stays paused until the last rank has written too: the last
    # rank starts (live - 1 - rank) staggers later, and gets one more to finish.
    assert keeper.hold_after_write_s() == pytest.approx(holds)
    # Never past the leases' end: a write under an expired lease would be refused.
    mono[0] = keeper.stop_at() - 0.1
    assert keeper.write_delay_s() == 0.0


def test_on_sqlite_the_one_clock_writes_at_once(tmp_path):
    from panfm.ops import LeaseKeeper

    keeper = LeaseKeeper(open_coordinator("", tmp_path))
    keeper.round(["fw-a"], 30.0)
    assert keeper.write_delay_s() == 0.0
    assert keeper.hold_after_write_s() == 0.0
    keeper.coordinator.close()


@pytest.mark.postgres
def test_on_postgresql_the_leaders_fleet_cycle_holds_every_clocks_newest_devices_and_interfaces(pg_url, tmp_path):
    """What the leader's alert evaluation reads each slot (`fleet_cycle`): the other clocks' devices
    as stored, with their interfaces (one statement for the fleet); a device silent for more
    than two intervals is left out, with its interfaces."""
    from panfm.ops.clock_leader import fleet_cycle

    settings = _settings(tmp_path / "data", **pg_env(pg_url))
    web_client(settings)  # migrates the stores
    ctx = clock.build_context(settings)
    interval = ctx.settings.refresh_interval
    now = time.time()
    stores = open_stores(settings, writer=True)
    try:  # the other clocks' writes: fw-a and fw-b now, fw-old three intervals ago
        other = stores.open_sample_writer(interval)
        other.write_cycle(cycle(now - 3 * interval, devices=("fw-old",), ifaces=("ethernet1/1",)))
        other.write_cycle(cycle(now, devices=("fw-a", "fw-b"), ifaces=("ethernet1/1", "ae1")))
    finally:
        stores.close()
    try:
        mine = cycle(now, devices=("fw-mine",))  # not written: only what is stored counts
        fleet = fleet_cycle(ctx, mine)
        assert sorted(s.device_id for s in fleet.samples) == ["fw-a", "fw-b"]
        assert sorted((i.device_id, i.name) for i in fleet.interfaces) == [
            ("fw-a", "ae1"), ("fw-a", "ethernet1/1"), ("fw-b", "ae1"), ("fw-b", "ethernet1/1")]
        assert {i.in_bps for i in fleet.interfaces} == {1e6}
        assert fleet.started == mine.started
    finally:
        ctx.collector.close()
        ctx.store.close()
        ctx.keeper.coordinator.close()


def _leaders_evaluation_inputs(ctx, own_cycle):
    """(inventory, certificates) that `evaluate_on_leader` hands the alerts' evaluation (run once)."""
    import panfm.ops.clock_leader as clock_leader

    given = []
    real_evaluate = clock_leader.evaluate_alerts
    clock_leader.evaluate_alerts = lambda c, cyc, inv=None, certs=None, devices=None: given.append((inv, certs)) or []
    try:
        clock_leader.evaluate_on_leader(ctx, own_cycle)
    finally:
        clock_leader.evaluate_alerts = real_evaluate
    assert len(given) == 1
    return given[0]


@pytest.mark.postgres
def test_on_postgresql_the_leader_evaluates_the_other_clocks_devices_with_their_stored_inventory(pg_url, tmp_path):
    """The leader's own inventories cover only its devices; HA state, licences, new connected
    devices, critical threats, link speeds and certificates of the others come from the store
    (`fleet_inventory`), read again only when a device's inventory changed."""
    from panfm.alerting.evaluate import observe
    from panfm.ops.clock_leader import fleet_cycle, fleet_inventory

    settings = _settings(tmp_path / "data", **pg_env(pg_url))
    web_client(settings)  # migrates the stores
    ctx = clock.build_context(settings)
    now = time.time()
    doc = {"ha": {"enabled": True, "local_state": "passive", "peer_state": "active"},
           "interfaces": [{"name": "ethernet1/1", "speed_mbps": 1000, "zone": "untrust"}],
           "logs": {"traffic": [{"src": "10.0.0.1"}] * 50}}
    stores = open_stores(settings, writer=True)
    try:  # another clock's device: its samples and its inventory, with the alerts' inputs beside it
        other = stores.open_sample_writer(ctx.settings.refresh_interval)
        other.write_cycle(cycle(now, devices=("fw-b",), ifaces=("ethernet1/1",)))
        other.write_inventory("fw-b", now - 10, doc, inputs=alert_inputs(doc))
        other.write_inventory("fw-old", now - 10, {"ha": {"enabled": True, "local_state": "active"}})  # no inputs
    finally:
        stores.close()
    reads: list[int] = []
    real = PgSampleReader.alert_inputs_changed

    def counted(self, known):
        got = real(self, known)
        reads.append(sum(1 for _, inputs in got.values() if inputs is not None))
        return got

    try:
        PgSampleReader.alert_inputs_changed = counted
        assert ctx.inventory == {}  # this clock gathered none
        inventory = fleet_inventory(ctx)
        assert inventory == {"fw-b": alert_inputs(doc), "fw-old": {"ha": {"enabled": True, "local_state": "active"}}}
        assert "logs" not in inventory["fw-b"]
        seen = observe(fleet_cycle(ctx, cycle(now, devices=("fw-mine",))), inventory, now)
        assert seen.observed[("fw-b", "ha_state_changed")] == "passive"
        assert seen.values[("fw-b", "interface_utilization_pct", "ethernet1/1")] == 0.2  # 2 Mbit/s out of 1,000
        assert fleet_inventory(ctx) == inventory and reads == [2, 0]  # nothing changed: nothing read again
        stores = open_stores(settings, writer=True)
        try:
            changed = {**doc, "ha": {"enabled": True, "local_state": "active"}}
            stores.open_sample_writer(ctx.settings.refresh_interval).write_inventory(
                "fw-b", now, changed, inputs=alert_inputs(changed))
        finally:
            stores.close()
        assert fleet_inventory(ctx)["fw-b"]["ha"]["local_state"] == "active" and reads[-1] == 1
        # And the leader's evaluation is given them: fw-b's HA state is evaluated here.
        ctx.load_settings = lambda: settings
        clock.lease_once(ctx)  # the only clock: the leader
        assert ctx.keeper.last is not None and ctx.keeper.last.leader
        inventory, _ = _leaders_evaluation_inputs(ctx, cycle(now, devices=("fw-mine",)))
        assert inventory["fw-b"]["ha"]["local_state"] == "active"
    finally:
        PgSampleReader.alert_inputs_changed = real
        ctx.collector.close()
        ctx.store.close()
        ctx.keeper.coordinator.close()


@pytest.mark.postgres
def test_on_postgresql_the_leader_sees_another_clocks_device_refused_for_its_certificate(pg_url, tmp_path):
    """Another clock's device refused for a changed certificate is stored "down" with the reason;
    the leader reads it as a certificate change (`fleet_certificates`), so its evaluation raises
    `tls_fingerprint_changed` with the new fingerprint, not "down"."""
    import dataclasses

    import panfm.ops.clock_leader as clock_leader
    from panfm.collector.breaker import cert_change_of, status_cert_changed
    from panfm.models import DeviceStatus

    pinned, new = "ab" * 32, "cd" * 32
    settings = _settings(tmp_path / "data", **pg_env(pg_url))
    web_client(settings)  # migrates the stores
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    for name, port in (("fw-c", 1), ("fw-d", 2)):
        ctx.devices.add(dataclasses.replace(_device(name, port), tls=TlsConfig("pin", fingerprint_sha256=pinned)))
    ids = {d.name: d.id for d in ctx.devices.list()}
    now = time.time()
    refused = status_cert_changed(None, ids["fw-c"], now, pinned, new)
    assert cert_change_of(refused) == (pinned, new)
    assert cert_change_of(DeviceStatus(ids["fw-d"], "down", now, None, "timed out", 3)) is None
    stores = open_stores(settings, writer=True)
    try:  # the other clock's cycle: fw-c refused, fw-d up
        written = cycle(now, devices=(ids["fw-d"],))
        stores.open_sample_writer(ctx.settings.refresh_interval).write_cycle(
            dataclasses.replace(written, statuses=(*written.statuses, refused)))
    finally:
        stores.close()
    try:
        fleet = clock_leader.fleet_cycle(ctx, cycle(now, devices=("fw-mine",)))
        changed, seen = clock_leader.fleet_certificates(ctx, fleet, ctx.devices.list())
        assert changed == {ids["fw-c"]: (pinned, new)}
        assert seen == {ids["fw-c"]: new, ids["fw-d"]: pinned}
        clock.lease_once(ctx)  # the only clock: the leader
        assert _leaders_evaluation_inputs(ctx, cycle(now, devices=("fw-mine",)))[1] == (changed, seen)
    finally:
        ctx.collector.close()
        ctx.store.close()
        ctx.keeper.coordinator.close()


@pytest.mark.parametrize(("interval", "now", "first", "period"), [
    (30, 3_000.0, 15.0, 60.0),  # a slot's start: its middle
    (30, 3_014.5, 30.5, 60.0),  # less than a second before the middle: the next slot's
    (30, 3_016.0, 29.0, 60.0),
    (10, 3_002.0, 3.0, 60.0),
    (45, 3_000.0 - 3_000.0 % 45, 22.5, 90.0),  # a period of whole intervals, at least a minute
    (120, 3_000.0 - 3_000.0 % 120 + 70.0, 110.0, 120.0),
])
def test_the_leaders_rollups_run_in_the_middle_of_a_slot_away_from_the_writes(interval, now, first, period):
    from panfm.ops import rollup_schedule

    got_first, got_period = rollup_schedule(interval, now)
    assert (got_first, got_period) == (pytest.approx(first), period)
    # Every later run falls at the same point of its slot.
    for k in range(3):
        assert (now + got_first + k * got_period) % interval == pytest.approx(interval / 2)
