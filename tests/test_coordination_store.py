"""The coordination store: leases, fencing, the leader and job runs, on a real PostgreSQL and on SQLite."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from throughput_storage import CoordinationUnavailable, open_coordinator

IDS = [f"dev{i:03d}" for i in range(30)]


def _round_all(coords, nodes, ids=IDS, interval=30.0, times=2):
    """Run `times` rounds of every clock in turn; return the last round of each."""
    out = {}
    for _ in range(times):
        for c, n in zip(coords, nodes, strict=True):
            out[n] = c.lease_round(n, ids, interval)
    return out


def _together(target, n):
    """Run target(0) .. target(n - 1) in n threads at once; return what they raised."""
    errors: list[BaseException] = []

    def run(i):
        try:
            target(i)
        except BaseException as exc:  # the caller asserts there is none, and names it
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.fixture
def three(pg_url, tmp_path):
    coords = [open_coordinator(pg_url, tmp_path) for _ in range(3)]
    nodes = [f"node-{i}" for i in range(3)]
    for c, n in zip(coords, nodes, strict=True):
        c.register(n, "host", 100)
    yield coords, nodes
    for c in coords:
        c.close()


@pytest.mark.postgres
def test_three_clocks_share_the_devices_fairly_and_disjointly(three):
    coords, nodes = three
    rounds = _round_all(coords, nodes)
    held = [set(rounds[n].held) for n in nodes]
    assert [len(h) for h in held] == [10, 10, 10]
    assert set().union(*held) == set(IDS)
    assert all(not (held[i] & held[j]) for i in range(3) for j in range(i + 1, 3))
    assert sum(r.leader for r in rounds.values()) == 1
    assert {r.fair_share for r in rounds.values()} == {10}
    # Each clock's rank among the live ones (code-point order of node ids): the write stagger.
    assert [rounds[n].rank for n in nodes] == [0, 1, 2]
    # Renewing keeps the same grants: the fences do not move.
    t0 = time.perf_counter()
    again = coords[0].lease_round(nodes[0], IDS, 30.0)
    wall_ms = (time.perf_counter() - t0) * 1000
    assert again.held == rounds[nodes[0]].held and not again.granted
    # The round's transaction time on the server: part of the wall time around it.
    assert again.txn_ms is not None and 0 < again.txn_ms <= wall_ms


@pytest.mark.postgres
def test_an_expired_lease_goes_to_another_clock_with_a_higher_fence(pg_url, tmp_path):
    a, b = open_coordinator(pg_url, tmp_path), open_coordinator(pg_url, tmp_path)
    a.register("a", "h1", 1)
    interval = 0.6  # lease 0.5 s (database time)
    first = a.lease_round("a", IDS[:4], interval)
    assert len(first.held) == 4 and first.leader
    b.register("b", "h2", 2)
    assert b.lease_round("b", IDS[:4], interval).held == {}  # a holds them all and is live
    time.sleep(0.7)  # a misses its rounds: its leases and its heartbeat run out
    taken = b.lease_round("b", IDS[:4], interval)
    assert set(taken.held) == set(IDS[:4]) == set(taken.granted)
    assert all(taken.held[d] == first.held[d] + 1 for d in IDS[:4])
    assert taken.leader
    # a comes back: its old grants are gone (renewal finds nothing); it claims nothing held by b.
    back = a.lease_round("a", IDS[:4], interval)
    assert not (set(back.held) & set(taken.held)) and not back.leader
    a.close()
    b.close()


@pytest.mark.postgres
def test_a_new_clock_gets_its_share_from_clocks_above_fair_plus_two(pg_url, tmp_path):
    coords = [open_coordinator(pg_url, tmp_path) for _ in range(3)]
    nodes = ["node-0", "node-1", "node-2"]
    coords[0].register(nodes[0], "h", 1)
    solo = coords[0].lease_round(nodes[0], IDS, 30.0)  # the first clock alone takes everything
    assert len(solo.held) == 30
    for c, n in zip(coords[1:], nodes[1:], strict=True):
        c.register(n, "h", 2)
    rounds = _round_all(coords, nodes, times=3)
    assert sorted(len(r.held) for r in rounds.values()) == [10, 10, 10]
    assert rounds[nodes[0]].released == 0  # the release happened in the first of those rounds
    for c in coords:
        c.close()


@pytest.mark.postgres
def test_release_all_hands_everything_over_and_drops_the_clock(three):
    coords, nodes = three
    rounds = _round_all(coords, nodes)
    leader = next(n for n in nodes if rounds[n].leader)
    old_fence = {d: f for r in rounds.values() for d, f in r.held.items()}
    i = nodes.index(leader)
    assert coords[i].release_all(leader) == 10
    rest = [(c, n) for c, n in zip(coords, nodes, strict=True) if n != leader]
    after = _round_all([c for c, _ in rest], [n for _, n in rest])
    held = [set(r.held) for r in after.values()]
    assert sorted(len(h) for h in held) == [15, 15] and set().union(*held) == set(IDS)
    moved = set(rounds[leader].held)
    assert all(after[n].held[d] == old_fence[d] + 1 for n in after for d in after[n].held if d in moved)
    assert sum(r.leader for r in after.values()) == 1
    listed = coords[0].clocks(30.0)
    assert {c.node_id for c in listed} == {n for _, n in rest}
    assert sorted(c.devices for c in listed) == [15, 15] and sum(c.leader for c in listed) == 1
    owners = coords[0].owners()
    assert set(owners) == set(IDS) and set(owners.values()) == {n for _, n in rest}


@pytest.mark.postgres
def test_a_clock_checks_its_device_set_against_the_lease_rows_when_it_changes_and_every_minute(three, pg_url):
    """A round whose device set equals the one its clock sent last (checked < 60 s ago) skips the
    lease rows of new devices and the release of disabled ones; a lease row that disappears behind
    the clocks' backs comes back at the next full check: the set aged past a minute, or the clock
    registered again."""
    coords, nodes = three
    _round_all(coords, nodes)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM device_lease WHERE device_id = %s", (IDS[0],))
        skipped = _round_all(coords, nodes, times=1)
        assert IDS[0] not in set().union(*(set(r.held) for r in skipped.values()))  # the same set, checked recently
        conn.execute("UPDATE clock_node SET lease_ids_at = now() - interval '61 seconds' WHERE node_id = %s",
                     (nodes[0],))
        back = _round_all(coords, nodes)
        assert set().union(*(set(r.held) for r in back.values())) == set(IDS)
        conn.execute("DELETE FROM device_lease WHERE device_id = %s", (IDS[1],))
        coords[1].register(nodes[1], "host", 100)
        again = _round_all(coords, nodes)
        assert set().union(*(set(r.held) for r in again.values())) == set(IDS)
        assert all(r.released == 0 for r in again.values())


@pytest.mark.postgres
def test_a_database_of_the_previous_lease_round_gets_the_device_set_columns_and_the_fillfactor(pg_url, tmp_path):
    """Tables made before lease round v3 (no `lease_ids` columns, the default fillfactor) are altered once."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE clock_node (node_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,"
                     " started_at TIMESTAMPTZ NOT NULL DEFAULT now(), heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now());"
                     " CREATE TABLE device_lease (device_id TEXT PRIMARY KEY, owner TEXT, lease_until TIMESTAMPTZ,"
                     " fence BIGINT NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO device_lease (device_id, fence) VALUES (%s, 4)", (IDS[0],))
        c = open_coordinator(pg_url, tmp_path)
        c.register("old-db", "host", 1)
        first = c.lease_round("old-db", IDS, 30.0)
        assert set(first.held) == set(IDS) and first.held[IDS[0]] == 5  # the old row kept its fence
        cols = {r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'clock_node'::regclass")}
        assert {"lease_ids", "lease_ids_at"} <= cols
        [opts] = conn.execute("SELECT reloptions FROM pg_class WHERE oid = 'device_lease'::regclass").fetchone()
        assert opts == ["fillfactor=40"]
        c.close()


@pytest.mark.postgres
def test_a_disabled_device_is_released(three):
    coords, nodes = three
    _round_all(coords, nodes)
    fewer = _round_all(coords, nodes, ids=IDS[:15])
    assert set().union(*(set(r.held) for r in fewer.values())) == set(IDS[:15])
    assert set(coords[0].owners()) == set(IDS[:15])


@pytest.mark.postgres
def test_job_run_is_insert_once_across_clocks_racing_for_it(three):
    coords, nodes = three
    wins: list[tuple[str, int]] = []
    lock = threading.Lock()

    def race(c, n):
        for slot in range(40):
            if c.claim_run("cleanup", slot, n):
                with lock:
                    wins.append((n, slot))

    threads = [threading.Thread(target=race, args=cn) for cn in zip(coords, nodes, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for _, s in wins) == list(range(40))
    assert coords[1].last_run("cleanup") == 39 and coords[1].last_run("never") is None


@pytest.mark.postgres
def test_concurrent_rounds_never_grant_a_device_twice(pg_url, tmp_path):
    coords = [open_coordinator(pg_url, tmp_path) for _ in range(4)]
    for i, c in enumerate(coords):
        c.register(f"n{i}", "h", i)
    held: dict[str, list[set[str]]] = {f"n{i}": [] for i in range(4)}

    def rounds(i):
        for _ in range(15):
            held[f"n{i}"].append(set(coords[i].lease_round(f"n{i}", IDS, 30.0).held))

    assert _together(rounds, 4) == []
    finals = [held[n][-1] for n in held]
    assert all(not (finals[i] & finals[j]) for i in range(4) for j in range(i + 1, 4))
    with psycopg.connect(pg_url) as conn:
        owners = conn.execute("SELECT count(DISTINCT owner), count(*) FROM device_lease").fetchone()
    assert owners == (4, 30)
    for c in coords:
        c.close()


@pytest.mark.postgres
def test_it_reports_the_database_away_and_reconnects_by_itself(pg_server, pg_url, tmp_path):
    c = open_coordinator(pg_url, tmp_path)
    c.register("n", "h", 1)
    assert len(c.lease_round("n", IDS, 30.0).held) == 30
    pg_server.stop("fast")
    try:
        with pytest.raises(CoordinationUnavailable):
            c.lease_round("n", IDS, 30.0)
    finally:
        pg_server.start()
    assert set(c.lease_round("n", IDS, 30.0).held) == set(IDS)
    c.close()


@pytest.mark.postgres
def test_a_clock_that_is_not_registered_gets_nothing_and_changes_nothing(three):
    coords, nodes = three
    before = _round_all(coords, nodes, times=1)
    with pytest.raises(CoordinationUnavailable, match="not registered"):
        coords[0].lease_round("ghost", IDS, 30.0)
    assert coords[0].owners() == {d: n for n in nodes for d in before[n].held}
    assert [c.node_id for c in coords[0].clocks(30.0)] == sorted(nodes)


@pytest.mark.postgres
def test_the_round_function_is_created_once_by_clocks_starting_together(pg_url, tmp_path):
    coords = [open_coordinator(pg_url, tmp_path) for _ in range(4)]

    def start(i):
        coords[i].register(f"n{i}", "h", i)
        coords[i].lease_round(f"n{i}", IDS, 30.0)

    assert _together(start, 4) == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'panfm_lease_round%'").fetchone()[0] == 1
    for c in coords:
        c.close()


def test_on_sqlite_the_one_clock_holds_every_device_and_leads(tmp_path):
    c = open_coordinator("", tmp_path)
    c.register("solo", "host<b>", 42)
    first = c.lease_round("solo", IDS[:5], 30.0)
    assert set(first.held) == set(IDS[:5]) == set(first.granted)
    assert first.fences == {} and first.leader and first.live_clocks == 1 and first.rank == 0
    assert first.txn_ms is None  # no server to time
    second = c.lease_round("solo", IDS[:3], 30.0)
    assert set(second.held) == set(IDS[:3]) and not second.granted and second.released == 2
    [node] = c.clocks(30.0)
    assert (node.node_id, node.host, node.pid, node.devices, node.leader) == ("solo", "host<b>", 42, 3, True)
    assert node.heartbeat_at >= node.started_at
    web = open_coordinator("", tmp_path, readonly=True)
    assert web.owners() == dict.fromkeys(IDS[:3], "solo")
    assert c.claim_run("cleanup", 7, "solo") and not c.claim_run("cleanup", 7, "solo")
    assert web.last_run("cleanup") == 7
    assert c.release_all("solo") == 3
    assert web.clocks(30.0) == [] and web.owners() == {}
    web.close()
    c.close()


def test_the_web_reading_sqlite_before_any_clock_gets_a_clear_error(tmp_path):
    with pytest.raises(CoordinationUnavailable):
        open_coordinator("", tmp_path, readonly=True).clocks(30.0)


@pytest.mark.postgres
def test_a_clock_joining_shares_sitting_at_fair_plus_two_still_gets_at_least_fair_minus_two(three, pg_url, tmp_path):
    coords, nodes = three
    assert sorted(len(r.held) for r in _round_all(coords, nodes).values()) == [10, 10, 10]
    late = open_coordinator(pg_url, tmp_path)
    late.register("node-3", "h", 4)  # fair is now 8: the others' 10 are inside the +2 band
    try:
        rounds = _round_all([*coords, late], [*nodes, "node-3"], times=2)
        shares = sorted(len(r.held) for r in rounds.values())
        assert sum(shares) == 30 and min(shares) >= 8 - 2, shares
    finally:
        late.close()
