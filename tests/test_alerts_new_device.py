"""The `new_connected_device` alert: once per new MAC, resolves by itself, zone filter, maintenance, rule API."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from helpers.web import add_device, make_client

import alerts
import clock
import config
from panfm.alerting.evaluate import evaluate, observe
from panfm.alerting.rules import rule_from_doc, validate_rule
from panfm.models import AlertState, CycleResult, MaintenanceWindow, Rule
from panfm.ops import record_network

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC).timestamp()
RULE = Rule(id="r-new", name="New device", metric="new_connected_device", severity="info")


def cycle(ts: float) -> CycleResult:
    return CycleResult(started=ts, finished=ts, samples=(), interfaces=(), baselines=(), statuses=())


def inventory(*new: dict[str, Any]) -> dict[str, Any]:
    return {"fw1": {"network": {"hosts": 10, "new_count": len(new), "new_devices": list(new)}}}


def run(rule: Rule, steps: list[tuple[float, dict[str, Any]]], windows: tuple[MaintenanceWindow, ...] = ()
        ) -> list[tuple[float, str, str, bool, str | None]]:
    """Evaluate after every fast cycle against the inventory current then; return the transitions."""
    states: dict[tuple[str, str, str], AlertState] = {}
    out = []
    for offset, inv in steps:
        obs = observe(cycle(T0 + offset), inv, T0 + offset)
        ev = evaluate([rule], obs, states, T0 + offset, windows)
        states = ev.states
        out += [(offset, t.series, t.kind, t.notify, t.detail) for t in ev.transitions]
    return out


PHONE = {"mac": "da:00:00:00:00:02", "ip": "10.0.0.2", "zone": "guest", "vendor": None, "dhcp_hostname": "phone"}
PRINTER = {"mac": "3c:22:fb:00:00:03", "ip": "10.0.0.3", "zone": "trust", "vendor": "Apple, Inc."}


def test_it_fires_once_per_new_mac_and_resolves_at_the_next_inventory():
    first = inventory(PHONE, PRINTER)
    steps = [(0, inventory()), (30, first), (60, first), (90, first), (330, inventory()), (360, inventory())]
    assert run(RULE, steps) == [
        (30, "3c:22:fb:00:00:03", "firing", True, "new device 3c:22:fb:00:00:03 (10.0.0.3, Apple, Inc., trust)"),
        (30, "da:00:00:00:00:02", "firing", True, "new device da:00:00:00:00:02 (10.0.0.2, phone, guest)"),
        (330, "3c:22:fb:00:00:03", "resolved", True, "new device 3c:22:fb:00:00:03 (10.0.0.3, Apple, Inc., trust)"),
        (330, "da:00:00:00:00:02", "resolved", True, "new device da:00:00:00:00:02 (10.0.0.2, phone, guest)"),
    ]


def test_it_watches_only_the_rules_zone():
    rule = Rule(id="r-guest", name="New guest", metric="new_connected_device", severity="info", zone="GUEST")
    got = run(rule, [(0, inventory(PHONE, PRINTER)), (300, inventory())])
    assert [(s, k) for _t, s, k, _n, _d in got] == [("da:00:00:00:00:02", "firing"), ("da:00:00:00:00:02", "resolved")]


def test_it_says_nothing_for_a_firewall_without_a_network_inventory():
    assert run(RULE, [(0, {"fw1": {"threats": {"critical": 0}}}), (30, {})]) == []


def test_it_fires_silently_inside_a_maintenance_window():
    window = (MaintenanceWindow(id="m", device_id="fw1", start=T0, end=T0 + 1000),)
    got = run(RULE, [(0, inventory(PHONE)), (300, inventory())], window)
    assert [(k, n) for _t, _s, k, n, _d in got] == [("firing", False), ("resolved", False)]


def test_a_rule_needs_only_a_metric_and_a_severity_and_takes_a_zone():
    clean, errors = validate_rule({"name": "New", "metric": "new_connected_device", "severity": "warning",
                                   "zone": "guest"})
    assert errors == {} and rule_from_doc({**clean, "id": "x"}).zone == "guest"
    _clean, errors = validate_rule({"name": "New", "metric": "new_connected_device", "threshold": 1})
    assert set(errors) == {"threshold"}
    _clean, errors = validate_rule({"name": "CPU", "metric": "cpu_dataplane_pct", "operator": ">", "threshold": 1,
                                    "zone": "guest"})
    assert set(errors) == {"zone"}


def test_the_rule_api_takes_it_and_the_clock_raises_it_with_a_notification(tmp_path):
    _app, client = make_client(tmp_path)
    fw = add_device(client, "fw", "192.0.2.5")
    r = client.post("/api/alerts/rules", json={"name": "New device", "metric": "new_connected_device",
                                                "severity": "warning", "zone": "trust"})
    assert r.status_code == 201, r.get_json()
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "reverse_dns": False})
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    try:
        row = {"mac": "00:1b:17:00:00:01", "ip": "10.0.0.1", "zone": "trust", "interface": "ethernet1/2"}
        for ts, rows in ((time.time() - 300, [row]), (time.time(), [row, {**row, "mac": "00:1b:17:00:00:02"}])):
            doc: dict[str, Any] = {"connected_devices": rows}
            record_network(ctx, fw, ts, doc)
            ctx.publish_inventory({fw: doc})
        alerts.evaluate_alerts(ctx, cycle(time.time()))
    finally:
        ctx.store.close()
        ctx.network.close()
        ctx.collector.close()
    active = client.get("/api/alerts/active").get_json()
    items = active.get("alerts", active) if isinstance(active, dict) else active
    assert [(a["series"], a["metric"]) for a in items] == [("00:1b:17:00:00:02", "new_connected_device")]
