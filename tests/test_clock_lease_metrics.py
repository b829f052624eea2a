"""The clock's lease series on PostgreSQL, scraped from real clock processes' metrics ports.

Two real clocks (`python clock.py`) share the simulator's fleet through the suite's own
PostgreSQL, each serving `clock_metrics_port` with the metrics token. Their scrapes must agree
with the leases table: the held counts add up to the fleet, exactly one clock leads; after a
kill -9 the survivor counts the dead clock's devices as takeovers and holds them all.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from conftest import device_for, launch_sim
from helpers.clocks import ClockProc, holdings, leader, make_data_dir, node_of_pid, wait_for
from prometheus_client.parser import text_string_to_metric_families

from throughput_storage import open_coordinator

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("scaleout")]

IV = 5
DEVICES = 6
TOKEN = "lease-metrics-token-0123456789"  # nosec B105 (a test token)
LEASE_SERIES = ("panfm_clock_leases_held", "panfm_clock_leader", "panfm_clock_lease_grants_total",
                "panfm_clock_lease_takeovers_total", "panfm_clock_fenced_writes_rejected_total")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, float] | None:
    """The lease series of one clock (None while it does not answer or has not run a lease round)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    values = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
              if s.name in LEASE_SERIES}
    return values if set(values) == set(LEASE_SERIES) else None


@pytest.fixture
def fleet(tmp_path):
    sim = launch_sim(tmp_path / "sim", devices=DEVICES, models="PA-440,PA-VM", seed=21)
    try:
        yield sim
    finally:
        sim.stop()


def test_lease_series_follow_the_leases_table_and_a_kill_shows_as_takeovers(tmp_path, fleet, pg_url):
    schema = open_coordinator(pg_url, tmp_path)
    schema.db_now()
    schema.close()
    data_dir = make_data_dir(tmp_path / "data", [device_for(e) for e in fleet.inventory], pg_url)
    ports = [_free_port(), _free_port()]
    procs = [ClockProc(data_dir, pg_url, f"clock{i}", interval=IV, PANFM_CLOCK_METRICS_PORT=str(port),
                       PANFM_BIND_HOST="127.0.0.1", PANFM_METRICS_TOKEN=TOKEN) for i, port in enumerate(ports)]
    try:
        def shared() -> list[dict[str, float]] | None:
            scraped = [_scrape(p) for p in ports]
            held = holdings(pg_url)
            if any(s is None for s in scraped) or len(held) != 2 or sum(map(len, held.values())) != DEVICES:
                return None
            got = [s for s in scraped if s is not None]
            by_node = {node_of_pid(pg_url, c.pid): s for c, s in zip(procs, got, strict=True)}
            if any(s["panfm_clock_leases_held"] != len(held.get(n, ())) for n, s in by_node.items()):
                return None  # a scrape between two rounds: ask again
            if sum(s["panfm_clock_leader"] for s in got) != 1 or leader(pg_url) is None:
                return None
            return got

        both = wait_for(shared, timeout=90, what="two clocks sharing the fleet, their scrapes agreeing")
        assert sum(s["panfm_clock_leases_held"] for s in both) == DEVICES
        assert sum(s["panfm_clock_lease_grants_total"] for s in both) >= DEVICES
        assert all(s["panfm_clock_fenced_writes_rejected_total"] == 0 for s in both)

        victim, survivor = procs[0], procs[1]
        victim_node = node_of_pid(pg_url, victim.pid)
        orphans = holdings(pg_url)[victim_node]
        assert orphans
        before = _scrape(ports[1])
        assert before is not None
        victim.kill9()

        def took_over() -> dict[str, float] | None:
            s = _scrape(ports[1])
            if s is None or s["panfm_clock_leases_held"] != DEVICES or s["panfm_clock_leader"] != 1:
                return None
            return s

        after = wait_for(took_over, timeout=60, what="the survivor holding every device and leading")
        # Each orphan's lease had a fence already: claiming it is a takeover.
        assert after["panfm_clock_lease_takeovers_total"] - before["panfm_clock_lease_takeovers_total"] >= len(orphans)
        assert after["panfm_clock_lease_grants_total"] - before["panfm_clock_lease_grants_total"] >= len(orphans)
        assert survivor.proc.poll() is None
    finally:
        for c in procs:
            c.close()


def test_a_clock_on_sqlite_serves_no_lease_series(tmp_path):
    from panfm.ops.clock_metrics import ClockMetrics
    from panfm.ops.lease_keeper import LeaseKeeper

    keeper = LeaseKeeper(open_coordinator("", tmp_path))  # one clock: it holds everything, no lease to watch
    try:
        metrics = ClockMetrics()
        metrics.lease_round(keeper, keeper.round(["dev-a"], IV))
        names = {fam.name for fam in metrics.registry.collect()}
        assert "panfm_clock_leases_held" not in names and "panfm_clock_breaker_state" in names
    finally:
        keeper.coordinator.close()
