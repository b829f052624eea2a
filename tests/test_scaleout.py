"""Several real clocks on one PostgreSQL: scenarios S1-S5 of the scale-out brief in short form.

Real clock processes (`python clock.py`), the simulator over HTTPS (it counts every fast poll
per device, S2) and the suite's own PostgreSQL holding every store. I = 5 s (the shortest
refresh_interval). The leases in PostgreSQL decide who polls what; the fenced sample writer
refuses a late write of a clock that lost its lease.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import time

import pytest
from conftest import device_for, launch_sim, require
from helpers.clocks import (
    ClockProc,
    holdings,
    leader,
    make_data_dir,
    node_of_pid,
    pg,
    poll_times,
    polls_per_slot,
    rejected_writes,
    samples_per_slot,
    wait_for,
)

from reliability.diskfull import fill, tmpfs
from throughput_storage import open_coordinator

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("scaleout")]

IV = 5  # refresh interval (s): the shortest the setting allows
DEVICES = 18


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    sim = launch_sim(tmp_path_factory.mktemp("scaleout_sim"), devices=DEVICES, models="PA-440,PA-VM", seed=13)
    try:
        yield sim
    finally:
        sim.stop()


def _prepare(tmp_path, fleet, url):
    """The coordination tables and the fleet's devices in the database; the clocks' data folder."""
    schema = open_coordinator(url, tmp_path)
    schema.db_now()  # the coordination tables exist before the test reads them
    schema.close()
    return make_data_dir(tmp_path / "data", [device_for(e) for e in fleet.inventory], url)


@pytest.fixture
def clocks(tmp_path, fleet, pg_url):
    started: list[ClockProc] = []
    data_dir = _prepare(tmp_path, fleet, pg_url)

    def start(n: int) -> list[ClockProc]:
        for _ in range(n):
            started.append(ClockProc(data_dir, pg_url, f"clock{len(started)}", interval=IV))
        return started

    yield start
    for c in started:
        c.close()


def _settled(url: str, owners: int) -> bool:
    held = holdings(url)
    fair = math.ceil(DEVICES / owners)
    return (len(held) == owners and sum(len(v) for v in held.values()) == DEVICES
            and all(fair - 2 <= len(v) <= fair + 2 for v in held.values()))


def _no_duplicates(fleet, url, since):
    polls = polls_per_slot(fleet, IV, since=since)
    assert polls, "the simulator saw no poll at all"
    twice = {k: n for k, n in polls.items() if n > 1}
    assert twice == {}, f"devices polled twice in one slot (S2): {twice}"
    samples = samples_per_slot(url, IV)
    assert samples and max(samples.values()) == 1, "a device-slot was sampled twice"


def _first_poll_after(fleet, t):
    return {name: min((x for x in times if x > t), default=None) for name, times in poll_times(fleet).items()}


def test_s1_a_killed_clocks_devices_are_polled_by_a_survivor_within_two_intervals(clocks, fleet, pg_url):
    since = time.time()
    procs = clocks(3)
    wait_for(lambda: _settled(pg_url, 3), what="three clocks sharing the fleet")
    time.sleep(2 * IV)
    victim = procs[0]
    node = node_of_pid(pg_url, victim.pid)
    orphans = holdings(pg_url)[node]
    assert orphans
    t_kill = time.time()
    victim.kill9()
    first = wait_for(lambda: (f := _first_poll_after(fleet, t_kill)) and all(f[d] for d in orphans) and f,
                     timeout=30, what="a survivor polling every orphan")
    kill_slot = math.floor(t_kill / IV)
    late = {d: math.floor(first[d] / IV) - kill_slot for d in orphans if math.floor(first[d] / IV) > kill_slot + 2}
    assert late == {}, f"orphans first polled more than 2 slots after the kill: {late}"
    wait_for(lambda: _settled(pg_url, 2), timeout=20, what="two survivors holding everything")
    time.sleep(IV)
    assert node not in holdings(pg_url)
    _no_duplicates(fleet, pg_url, since)
    # Each fenced write's collect line also gives its transaction's time on the server (S8 reads
    # it, `reliability.clock_logs`), which is a part of the write's wall time.
    from reliability import clock_logs

    found = clock_logs.WRITE.findall(procs[1].log_path.read_text())
    assert found and all(m[6] for m in found), "a survivor's collect line without its transaction time"
    assert all(float(m[6]) <= float(m[4]) for m in found)


def test_s3_a_paused_clock_stops_by_itself_its_late_writes_are_refused_and_counted(clocks, fleet, pg_url):
    since = time.time()
    procs = clocks(3)
    wait_for(lambda: _settled(pg_url, 3), what="three clocks sharing the fleet")
    victim = procs[1]
    node = node_of_pid(pg_url, victim.pid)
    mine = sorted(holdings(pg_url)[node])
    fences_before = dict(pg(pg_url, "SELECT device_id, fence FROM device_lease WHERE owner = %s", (node,)))
    # One slow firewall keeps the victim's cycle open (its other samples polled, not yet written),
    # so the pause lands between its polls and its write.
    fleet.fault(mine[0], "none", 0, latency_s=0.8)
    try:
        slot_start = (math.floor(time.time() / IV) + 1) * IV
        time.sleep(max(slot_start + 1.5 - time.time(), 0))
        victim.pause()
        time.sleep(3.5 * IV)
        moved = holdings(pg_url)
        assert node not in moved and sum(len(v) for v in moved.values()) == DEVICES, "its devices moved"
        victim.resume()
        wait_for(lambda: rejected_writes(victim) > 0, timeout=30, what="the late write refused and counted")
    finally:
        fleet.fault(mine[0], "none", 0, latency_s=0)
    wait_for(lambda: _settled(pg_url, 3), timeout=30, what="shares back to fair ± 2")
    time.sleep(2 * IV)
    # What it holds again was granted anew: every fence moved past the one it held before.
    regained = dict(pg(pg_url, "SELECT device_id, fence FROM device_lease WHERE owner = %s", (node,)))
    assert regained and all(f > fences_before.get(d, 0) for d, f in regained.items())
    _no_duplicates(fleet, pg_url, since)


def test_s4_killing_the_leader_gives_one_new_leader_and_one_run_per_job_and_slot(clocks, fleet, pg_url):
    since = time.time()
    procs = clocks(3)
    wait_for(lambda: _settled(pg_url, 3), what="three clocks sharing the fleet")
    old = wait_for(lambda: leader(pg_url), what="a leader")
    time.sleep(3 * IV)
    victim = next(p for p in procs if node_of_pid(pg_url, p.pid) == old)
    (kill_db,) = pg(pg_url, "SELECT extract(epoch FROM now())::float8")[0]
    victim.kill9()
    new = wait_for(lambda: (n := leader(pg_url)) and n != old and n, timeout=30, what="a new leader")
    (seen_db,) = pg(pg_url, "SELECT extract(epoch FROM now())::float8")[0]
    assert seen_db - kill_db <= 2 * IV, "a new leader within 2 I (database time)"
    time.sleep(4 * IV)
    runs = pg(pg_url, "SELECT slot, owner FROM job_run WHERE name = 'evaluate' ORDER BY slot")
    owners = {o for _, o in runs}
    assert old in owners and new in owners and owners <= {old, new}
    slots = [s for s, _ in runs]
    assert len(slots) == len(set(slots)), "one run per job and slot"
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert max(gaps) <= 3, f"evaluation missed more than 2 slots around the kill: {gaps}"
    notify = pg(pg_url, "SELECT count(*), count(DISTINCT slot) FROM job_run WHERE name = 'notify'")[0]
    assert notify[0] == notify[1] > 0
    _no_duplicates(fleet, pg_url, since)


def test_s5_a_sigterm_hands_its_devices_over_with_no_missed_slot(clocks, fleet, pg_url):
    since = time.time()
    procs = clocks(2)
    wait_for(lambda: _settled(pg_url, 2), what="two clocks sharing the fleet")
    time.sleep(2 * IV)
    leaving = procs[0]
    node = node_of_pid(pg_url, leaving.pid)
    handed = holdings(pg_url)[node]
    t_term = time.time()
    assert leaving.terminate() == 0
    assert "released" in leaving.log()
    wait_for(lambda: _settled(pg_url, 1), timeout=20, what="the other clock holding everything")
    time.sleep(2 * IV)
    t_end = time.time()
    polls = polls_per_slot(fleet, IV, since=since)
    first, last = math.floor(t_term / IV) - 1, math.floor(t_end / IV) - 1
    missed = {(d, s) for d in handed for s in range(first, last + 1) if polls[(d, s)] == 0}
    assert missed == set(), f"slots missed during the handover: {sorted(missed)}"
    _no_duplicates(fleet, pg_url, since)


def _slots_written(url: str) -> set[int]:
    return {int(r[0]) // IV for r in pg(url, "SELECT DISTINCT slot FROM device_samples")}


def test_a_clock_writes_again_within_two_intervals_of_postgresql_coming_back(clocks, fleet, pg_url, pg_server):
    [proc] = clocks(1)
    wait_for(lambda: _settled(pg_url, 1), what="one clock holding the fleet")
    wait_for(lambda: len(_slots_written(pg_url)) >= 2, what="the clock writing its cycles")
    pg_server.stop("fast")  # every pooled connection of the clock dies with the server
    time.sleep(IV)
    pg_server.start()
    back_slot = math.floor(time.time() / IV)
    first = wait_for(lambda: min((s for s in _slots_written(pg_url) if s > back_slot), default=None),
                     timeout=60, what="a cycle written after the restart")
    # The slot the server came back in may be lost; the next two may not (drained pool, new leases).
    assert first <= back_slot + 3, f"first slot written {first - back_slot} slots after the restart"
    assert proc.proc.poll() is None, "the clock died with the database"
    wait_for(lambda: len({s for s in _slots_written(pg_url) if s > back_slot}) >= 2, timeout=30,
             what="the clock writing cycle after cycle again")


def test_a_clock_killed_inside_its_write_transaction_commits_all_of_its_cycle_or_none(clocks, fleet, pg_url):
    import psycopg

    since = time.time()
    [victim] = clocks(1)
    wait_for(lambda: _settled(pg_url, 1), what="one clock holding the fleet")
    wait_for(lambda: len(_slots_written(pg_url)) >= 2, what="the clock writing its cycles")
    blocked = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
               " AND query LIKE 'INSERT INTO device_status%'")
    with psycopg.connect(pg_url) as locker:
        # The cycle's transaction has begun and sent its rows; it waits here on its state upsert.
        # EXCLUSIVE, not ACCESS EXCLUSIVE: reads of device_status (the leader's alert evaluation,
        # right after a write) must go on, or the cycle thread waits in a read and never writes.
        locker.execute("LOCK TABLE device_status IN EXCLUSIVE MODE")
        wait_for(lambda: pg(pg_url, blocked)[0][0] > 0, timeout=6 * IV, what="the clock's write waiting on the lock")
        victim.kill9()
        locker.rollback()  # the server goes on with what the dead client had sent, or drops it
    wait_for(lambda: pg(pg_url, blocked)[0][0] == 0, timeout=30, what="the orphan transaction settled")
    kill_slot = math.floor(time.time() / IV)
    rows = pg(pg_url, "SELECT s.slot, count(*), (SELECT count(*) FROM iface_packed i WHERE i.slot = s.slot)"
                      " FROM device_samples s GROUP BY s.slot ORDER BY s.slot")
    # No fault in this fleet: each of the dead clock's cycles is all 18 devices, with their interfaces, or absent.
    assert rows and all(n == DEVICES and nif == DEVICES for _, n, nif in rows), rows
    [heir] = clocks(1)[1:]
    wait_for(lambda: len({s for s in _slots_written(pg_url) if s > kill_slot}) >= 2, timeout=60,
             what="a new clock writing after the dead one's leases ran out")
    assert heir.proc.poll() is None
    _no_duplicates(fleet, pg_url, since)


def _slots_and_devices(url: str) -> set[tuple[int, int]]:
    return {(int(d), int(s)) for d, s in pg(url, "SELECT dk, slot FROM device_samples")}


def test_a_full_disk_on_the_database_server_loses_nothing_committed_and_the_clock_writes_again(
        tmp_path, fleet, pg_server):
    require(os.geteuid() == 0 and shutil.which("mount") and pg_server.user,
            "root and mount(8), for a size-limited tmpfs as the database's tablespace")
    since = time.time()
    name = f"full_{os.getpid()}_{int(since)}"
    mnt = pg_server.workdir / name  # traversable by the server's user, like its data folder
    with tmpfs(mnt, "64m"):
        owner = pg_server.user or ""
        shutil.chown(mnt, owner, owner)
        # The database's tables (and its catalog) on the small file system; the server's WAL stays
        # on the big one, as on a server whose data volume fills up.
        pg_server.psql(f"CREATE TABLESPACE {name} LOCATION '{mnt}'")
        pg_server.psql(f'CREATE DATABASE "{name}" TEMPLATE template0 TABLESPACE {name}')
        url = pg_server.url(name)
        proc = None
        try:
            proc = ClockProc(_prepare(tmp_path, fleet, url), url, "clock0", interval=IV)
            wait_for(lambda: len(_slots_written(url)) >= 2, what="the clock writing its cycles")
            filler = mnt / "filler"
            fill(filler)
            wait_for(lambda: "No space left on device" in proc.log_path.read_text(errors="replace"),
                     timeout=10 * IV, what="a write refused for want of space, and logged")
            before = _slots_and_devices(url)  # everything committed until the refusal
            time.sleep(2 * IV)
            assert proc.proc.poll() is None, "the clock died with the full disk"
            filler.unlink()
            freed_slot = math.floor(time.time() / IV)
            first = wait_for(lambda: min((s for s in _slots_written(url) if s > freed_slot), default=None),
                             timeout=60, what="a cycle written after the space came back")
            assert first <= freed_slot + 3, f"first slot written {first - freed_slot} slots after the space came back"
            assert before <= _slots_and_devices(url), "samples committed before the disk filled were lost"
            assert proc.proc.poll() is None, "the clock died after the space came back"
            _no_duplicates(fleet, url, since)
        finally:
            if proc is not None:
                proc.close()
            with contextlib.suppress(Exception):
                pg_server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
                pg_server.psql(f'DROP DATABASE IF EXISTS "{name}"')
                pg_server.psql(f"DROP TABLESPACE IF EXISTS {name}")
