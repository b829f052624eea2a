"""A real Prometheus (Debian's) scrapes /metrics while the clock polls the simulator.

Checked through Prometheus' own HTTP API: what it stored of the interface counters agrees with
`/_sim/truth` within 1% between any two polls, `rate()` shows no spike across a reboot or a failover, and every
query of the shipped Grafana dashboard and alerting rules evaluates (and returns data wherever the
metrics it reads are served).
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SIM_NETWORKS, requires, start_sim
from helpers.alerts import INITIAL, Clock
from helpers.monitoring import alerting_rules, dashboard_exprs, grafana_to_promql, metric_names
from helpers.prometheus import Prometheus
from werkzeug.serving import make_server

import config
from app import create_app

TOKEN = "prometheus-scrape-test-token"
POLL_S = 2.0

pytestmark = [
    pytest.mark.slow,
    requires(shutil.which("prometheus"), "prometheus (apt-get install prometheus)"),
]


@pytest.fixture
def scraped(tmp_path) -> Iterator[dict[str, Any]]:
    """Two simulated firewalls polled every 2 s by the real clock jobs; the web served; Prometheus scraping it."""
    with start_sim(tmp_path, devices=2, models="PA-3220,PA-5450", seed=23) as sim:
        clk = Clock(tmp_path / "data")
        for entry in sim.inventory:
            clk.add_device(entry)
        settings = config.load_settings(env={}, overrides={
            "data_dir": str(tmp_path / "data"), "admin_password": INITIAL, "metrics_token": TOKEN,
            "allowed_device_networks": SIM_NETWORKS})
        server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        prom = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{server.server_port}", token=TOKEN, interval_s=1.0)
        try:
            yield {"sim": sim, "clock": clk, "prom": prom}
        finally:
            prom.stop()
            server.shutdown()
            clk.close()


def _poll(clk: Clock, cycles: int) -> None:
    for _ in range(cycles):
        started = time.monotonic()
        clk.cycle()
        time.sleep(max(0.0, POLL_S - (time.monotonic() - started)))


def _series(prom: Prometheus, expr: str) -> list[dict[str, Any]]:
    """A range-vector query's raw samples: [{"metric": labels, "values": [[ts, "value"], ...]}]."""
    result: list[dict[str, Any]] = prom.api("query", query=expr)["result"]
    return result


def test_prometheus_holds_counters_that_agree_with_the_truth_and_rate_has_no_spike_across_reboot_or_failover(
        scraped):
    sim, clk, prom = scraped["sim"], scraped["clock"], scraped["prom"]
    _poll(clk, 8)
    healthy, rebooted = sim.inventory[0]["name"], sim.inventory[1]["name"]
    sim.fault(rebooted, "reboot")
    sim.fault(healthy, "failover")  # the traffic moves to the peer: the counters slow down, never jump
    _poll(clk, 8)
    time.sleep(2.5)  # the last poll's counters scraped
    (target,) = prom.targets()
    assert target["health"] == "up", target

    series = _series(prom, f'panfm_interface_receive_bytes_total{{device="{healthy}"}}[5m]')
    assert series, "no counter series reached Prometheus"
    compared = 0
    for s in series:
        values = [(float(t), float(v)) for t, v in s["values"]]
        # One stored point per poll (the exposition carries the poll's time), not one per scrape.
        assert len(values) >= 12, s["metric"]
        assert all(b[0] - a[0] > POLL_S / 2 for a, b in itertools.pairwise(values))
        (t1, v1), (t2, v2) = values[0], values[-1]
        truth = sim.truth(healthy, t1, t2)["interfaces"][s["metric"]["interface"]]["in_bytes"]
        if truth < 1_000_000:
            continue  # an idle port: 1% of nothing is not a check
        assert v2 - v1 == pytest.approx(truth, rel=0.01), s["metric"]
        compared += 1
    assert compared >= 1

    # rate() over the events: a counter that restarts from zero is a reset, never a spike.
    now = time.time()
    for name in (rebooted, healthy):
        peak_truth = max(
            sum(doc["in_bytes"] for doc in sim.truth(name, t, t + POLL_S)["interfaces"].values()) / POLL_S
            for t in range(int(now) - 30, int(now) - 3, 2)
        )
        rates = prom.api("query_range", query=f'sum(rate(panfm_interface_receive_bytes_total{{device="{name}"}}[6s]))',
                         start=f"{now - 32:.3f}", end=f"{now:.3f}", step="1")["result"]
        assert rates, f"no rate of {name} over the event"
        highest = max(float(v) for _, v in rates[0]["values"])
        assert highest < 1.5 * peak_truth, (name, highest, peak_truth)


def test_every_dashboard_and_rule_query_evaluates_and_returns_data_where_its_metrics_are_served(scraped):
    clk, prom = scraped["clock"], scraped["prom"]
    _poll(clk, 6)
    time.sleep(2.5)
    served = {item for item in prom.api("label/__name__/values") if item.startswith("panfm_")} | {"up"}
    queries = [(title, grafana_to_promql(expr)) for title, expr in dashboard_exprs()]
    queries += [(rule["alert"], rule["expr"]) for rule in alerting_rules()]
    empty = []
    for title, expr in queries:
        result = prom.query(expr)  # raises on a query Prometheus refuses
        is_condition = any(op in expr for op in (" > ", " < ", " == ", " >= ", " <= ", " unless "))
        if not result and not is_condition and metric_names(expr) <= served:
            empty.append((title, expr))
    assert empty == []
    assert {"panfm_up", "panfm_device_up", "panfm_interface_receive_bytes_total", "panfm_device_info"} <= served
