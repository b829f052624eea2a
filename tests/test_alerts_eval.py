"""Pure evaluation: table-driven state transitions and the observations built from a cycle."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from panfm.alerting.evaluate import CHANGE_HOLD_S, Observations, alert_inputs, evaluate, observe
from panfm.models import (
    AlertState,
    CycleResult,
    DeviceSample,
    DeviceStatus,
    InterfaceSample,
    MaintenanceWindow,
    Rule,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
DOWN = "down"  # a step value meaning "the device is unreachable this cycle"


def cpu_rule(**kw: Any) -> Rule:
    base: dict[str, Any] = {
        "id": "r1", "name": "CPU", "metric": "cpu_dataplane_pct", "severity": "warning", "operator": ">",
        "threshold": 90.0, "channel_ids": ("c1",),
    }
    return Rule(**{**base, **kw})


def run(rules: list[Rule], steps: list[tuple[float, Any]], windows: tuple[MaintenanceWindow, ...] = ()
        ) -> list[tuple[float, str, str, bool]]:
    """Feed (offset, value) steps to evaluate(); return (offset, rule, kind, notify) of every transition."""
    states: dict[tuple[str, str, str], AlertState] = {}
    out = []
    for offset, value in steps:
        values = {} if value in (None, DOWN) else {("fw1", "cpu_dataplane_pct", ""): float(value)}
        obs = Observations(frozenset({"fw1"}), values, reachable={"fw1": value != DOWN}, failures={"fw1": 3})
        ev = evaluate(rules, obs, states, T0 + offset, windows)
        states = ev.states
        out += [(offset, t.rule_id, t.kind, t.notify) for t in ev.transitions]
    return out


CASES = [
    pytest.param(cpu_rule(), [(0, 50), (30, 95), (60, 97), (90, 50), (120, 40)],
                 [(30, "r1", "firing", True), (90, "r1", "resolved", True)], id="threshold-crossing-fires-once"),
    pytest.param(cpu_rule(for_s=60), [(0, 95), (30, 95), (60, 95), (90, 95), (120, 50)],
                 [(0, "r1", "pending", False), (60, "r1", "firing", True), (120, "r1", "resolved", True)],
                 id="for-holds-before-firing"),
    pytest.param(cpu_rule(for_s=60), [(0, 95), (30, 50), (60, 95), (90, 50), (120, 95)],
                 [(0, "r1", "pending", False), (30, "r1", "cancelled", False), (60, "r1", "pending", False),
                  (90, "r1", "cancelled", False), (120, "r1", "pending", False)], id="flapping-never-fires"),
    pytest.param(cpu_rule(clear_threshold=80.0), [(0, 95), (30, 85), (60, 89), (90, 79)],
                 [(0, "r1", "firing", True), (90, "r1", "resolved", True)], id="hysteresis-holds-until-clear"),
    pytest.param(cpu_rule(), [(0, 95), (30, 85)],
                 [(0, "r1", "firing", True), (30, "r1", "resolved", True)], id="no-hysteresis-clears-below-threshold"),
    pytest.param(cpu_rule(repeat_s=120), [(t, 95) for t in range(0, 270, 30)],
                 [(0, "r1", "firing", True), (120, "r1", "repeat", True), (240, "r1", "repeat", True)],
                 id="repeat-interval"),
    pytest.param(cpu_rule(), [(0, 95), (30, None), (60, None), (90, 95), (120, 50)],
                 [(0, "r1", "firing", True), (120, "r1", "resolved", True)], id="no-data-is-not-resolved"),
    pytest.param(cpu_rule(for_s=60), [(0, 95), (30, None), (60, 95)],
                 [(0, "r1", "pending", False), (30, "r1", "cancelled", False), (60, "r1", "pending", False)],
                 id="no-data-cancels-pending"),
    pytest.param(cpu_rule(operator="<", threshold=10.0, clear_threshold=20.0), [(0, 50), (30, 5), (60, 15), (90, 25)],
                 [(30, "r1", "firing", True), (90, "r1", "resolved", True)], id="below-threshold-with-hysteresis"),
    pytest.param(cpu_rule(operator=">=", threshold=90.0), [(0, 89.9), (30, 90)],
                 [(30, "r1", "firing", True)], id="greater-or-equal-includes-threshold"),
    pytest.param(cpu_rule(enabled=False), [(0, 95), (30, 95)], [], id="disabled-rule-never-fires"),
    pytest.param(cpu_rule(device_id="fw2"), [(0, 95)], [], id="rule-for-another-device"),
]


@pytest.mark.parametrize(("rule", "steps", "expected"), CASES)
def test_it_moves_states_as_the_table_says(rule: Rule, steps: list[tuple[float, Any]], expected: list[Any]) -> None:
    assert run([rule], steps) == expected


def test_it_holds_metric_rules_and_fires_unreachable_while_a_device_is_down() -> None:
    rules = [cpu_rule(for_s=30),
             Rule(id="u", name="Down", metric="device_unreachable", severity="critical", for_s=0, channel_ids=("c1",))]
    steps = [(0, 95), (30, 95), (60, DOWN), (90, DOWN), (120, DOWN), (150, 95), (180, 50)]
    assert run(rules, steps) == [
        (0, "r1", "pending", False),
        (30, "r1", "firing", True),
        (60, "u", "firing", True),  # the CPU alert neither resolves nor repeats while the box is down
        (150, "u", "resolved", True),
        (180, "r1", "resolved", True),
    ]


def test_it_keeps_a_pending_metric_alert_pending_while_the_device_is_down() -> None:
    steps = [(0, 95), (30, DOWN), (60, DOWN), (90, 95)]
    assert run([cpu_rule(for_s=60)], steps) == [(0, "r1", "pending", False), (90, "r1", "firing", True)]


def test_it_reports_no_data_for_unreachable_when_status_is_unknown() -> None:
    rule = Rule(id="u", name="Down", metric="device_unreachable", severity="critical")
    ev = evaluate([rule], Observations(frozenset({"fw1"})), {}, T0)
    assert ev.transitions == () and ev.states == {}


def test_it_mutes_notifications_in_maintenance_but_tracks_state() -> None:
    window = (MaintenanceWindow(id="m", device_id="fw1", start=T0, end=T0 + 100),)
    assert run([cpu_rule()], [(0, 95), (30, 95), (120, 95), (150, 50)], window) == [
        (0, "r1", "firing", False),
        (120, "r1", "firing", True),  # never notified: notified once the window closes
        (150, "r1", "resolved", True),
    ]


def test_it_sends_nothing_for_an_incident_entirely_inside_maintenance() -> None:
    window = (MaintenanceWindow(id="m", device_id=None, start=T0, end=T0 + 100),)
    assert run([cpu_rule()], [(0, 95), (30, 50), (200, 50)], window) == [
        (0, "r1", "firing", False), (30, "r1", "resolved", False)]


def test_it_ignores_a_maintenance_window_of_another_device() -> None:
    window = (MaintenanceWindow(id="m", device_id="fw2", start=T0, end=T0 + 100),)
    assert run([cpu_rule()], [(0, 95)], window) == [(0, "r1", "firing", True)]


def test_it_resolves_silently_when_a_firing_rule_is_disabled() -> None:
    obs = Observations(frozenset({"fw1"}), {("fw1", "cpu_dataplane_pct", ""): 95.0}, {"fw1": True})
    first = evaluate([cpu_rule()], obs, {}, T0)
    second = evaluate([cpu_rule(enabled=False)], obs, first.states, T0 + 30)
    assert [(t.kind, t.notify) for t in second.transitions] == [("resolved", False)]
    assert second.states == {}


def test_it_keeps_one_state_per_interface_and_follows_the_peak() -> None:
    rule = Rule(id="e", name="Errors", metric="interface_errors_per_s", severity="warning", operator=">",
                threshold=1.0)
    states: dict[tuple[str, str, str], AlertState] = {}
    for offset, a, b in [(0, 5.0, 0.0), (30, 9.0, 0.0), (60, 3.0, 2.0)]:
        m = "interface_errors_per_s"
        values = {("fw1", m, "ethernet1/1"): a, ("fw1", m, "ethernet1/2"): b}
        obs = Observations(frozenset({"fw1"}), values, {"fw1": True})
        states = dict(evaluate([rule], obs, states, T0 + offset).states)
    assert {k[2]: (s.state, s.peak) for k, s in states.items()} == {
        "ethernet1/1": ("firing", 9.0), "ethernet1/2": ("firing", 2.0)}
    assert states[("e", "fw1", "ethernet1/1")].since == T0


def test_it_watches_only_the_named_interface() -> None:
    rule = Rule(id="e", name="Errors", metric="interface_errors_per_s", severity="warning", operator=">",
                threshold=1.0, interface="ethernet1/2")
    values = {("fw1", "interface_errors_per_s", "ethernet1/1"): 5.0}
    ev = evaluate([rule], Observations(frozenset({"fw1"}), values, {"fw1": True}), {}, T0)
    assert ev.transitions == ()


def test_it_fires_on_an_ha_change_and_resolves_after_the_hold() -> None:
    rule = Rule(id="ha", name="HA", metric="ha_state_changed", severity="warning", for_s=300)
    states: dict[tuple[str, str, str], AlertState] = {}
    seen = []
    for offset, text in [(0, "active"), (30, "active"), (60, "passive"), (90, "passive"),
                         (60 + CHANGE_HOLD_S, "passive"), (2000, "passive")]:
        obs = Observations(frozenset({"fw1"}), reachable={"fw1": True}, observed={("fw1", "ha_state_changed"): text})
        ev = evaluate([rule], obs, states, T0 + offset)
        states = dict(ev.states)
        seen += [(offset, t.kind, t.detail) for t in ev.transitions]
    assert seen == [(60, "firing", "active → passive"), (60 + CHANGE_HOLD_S, "resolved", "active → passive")]


def test_it_fires_on_a_new_certificate_even_while_the_device_is_down() -> None:
    rule = Rule(id="tls", name="TLS", metric="tls_fingerprint_changed", severity="critical")
    states: dict[tuple[str, str, str], AlertState] = {}
    kinds = []
    for offset, fp, up in [(0, "aa" * 32, True), (30, "bb" * 32, False)]:
        obs = Observations(frozenset({"fw1"}), reachable={"fw1": up}, observed={("fw1", "tls_fingerprint_changed"): fp})
        ev = evaluate([rule], obs, states, T0 + offset)
        states = dict(ev.states)
        kinds += [t.kind for t in ev.transitions]
    assert kinds == ["firing"]


def test_it_gives_the_same_alert_id_for_the_same_incident() -> None:
    obs = Observations(frozenset({"fw1"}), {("fw1", "cpu_dataplane_pct", ""): 95.0}, {"fw1": True})
    a, b = evaluate([cpu_rule()], obs, {}, T0), evaluate([cpu_rule()], obs, {}, T0)
    assert a.transitions[0].alert_id == b.transitions[0].alert_id != ""


def test_it_observes_samples_interfaces_statuses_and_inventory() -> None:
    now = T0
    cycle = CycleResult(
        started=now - 2, finished=now,
        samples=(DeviceSample("fw1", now - 30, cpu_dataplane_pct=10.0),
                 DeviceSample("fw1", now - 1, cpu_dataplane_pct=95.0, memory_pct=None)),
        interfaces=(InterfaceSample("fw1", "ethernet1/1", now, 600e6, 200e6, None, None, 0.5, None, True),
                    InterfaceSample("fw1", "ethernet1/2", now, None, None, None, None, None, None, True)),
        baselines=(),
        statuses=(DeviceStatus("fw1", "up"), DeviceStatus("fw2", "breaker_open", consecutive_failures=4),
                  DeviceStatus("fw3", "unknown")),
    )
    inventory = {"fw1": {
        "ha": {"enabled": True, "local_state": "active"},
        "licenses": [{"feature": "Threat Prevention", "expires": "2024-05-31"},
                     {"feature": "PAN-DB", "expires": "Never"}, {"feature": "Support", "expires": None},
                     {"feature": "WildFire", "expires": "June 10, 2024"}],
        "threats": {"critical": 2, "high": 5},
        "interfaces": [{"name": "ethernet1/1", "speed_mbps": 1000}],
    }}
    obs = observe(cycle, inventory, now, fingerprints={"fw2": "cc" * 32})
    assert obs.values == {
        ("fw1", "cpu_dataplane_pct", ""): 95.0,
        ("fw1", "interface_mbps", "ethernet1/1"): 800.0,
        ("fw1", "interface_utilization_pct", "ethernet1/1"): 60.0,
        ("fw1", "interface_errors_per_s", "ethernet1/1"): 0.5,
        ("fw1", "licence_expires_in_days", "Threat Prevention"): 30.0,
        ("fw1", "licence_expires_in_days", "WildFire"): 40.0,
        ("fw1", "threats_critical", ""): 2.0,
    }
    assert obs.reachable == {"fw1": True, "fw2": False}
    assert obs.failures["fw2"] == 4
    assert obs.observed == {("fw1", "ha_state_changed"): "active", ("fw2", "tls_fingerprint_changed"): "cc" * 32}
    assert obs.devices == {"fw1", "fw2", "fw3"}


def test_the_clock_keeps_only_what_observe_reads_of_an_inventory_and_observe_answers_the_same() -> None:
    now = T0
    cycle = CycleResult(
        started=now - 2, finished=now, samples=(DeviceSample("fw1", now - 1, cpu_dataplane_pct=5.0),),
        interfaces=(InterfaceSample("fw1", "ethernet1/1", now, 600e6, 200e6, None, None, None, None, True),
                    InterfaceSample("fw1", "ethernet1/2", now, 10e6, 20e6, None, None, None, None, True)),
        baselines=(), statuses=(DeviceStatus("fw1", "up"),),
    )
    new = {"mac": "00:1b:17:00:00:01", "ip": "10.0.0.9", "zone": "trust", "interface": "ethernet1/2",
           "vendor": "Palo Alto Networks", "dhcp_hostname": "printer"}
    doc = {
        "ha": {"enabled": True, "local_state": "passive", "peer_state": "active", "peer_ip": "10.1.1.2"},
        "licenses": [{"feature": "Threat Prevention", "expires": "2024-05-31", "issued": "2023-05-31"}, "junk"],
        "threats": {"critical": 3, "high": 5, "entries": [{"id": i} for i in range(50)]},
        "interfaces": {"ethernet1/1": {"name": "ethernet1/1", "speed_mbps": 1000, "zone": "untrust"},
                       "ethernet1/2": {"name": "ethernet1/2", "speed_mbps": "auto"},
                       "tunnel.1": {"name": "tunnel.1", "speed_mbps": 0}},
        "tls_fingerprint_sha256": "ab" * 32,
        "network": {"new_devices": [new], "arp": [{"mac": f"m{i}"} for i in range(200)], "summary": {"hosts": 200}},
        "logs": {"system": [{"msg": "x"}] * 100},
    }
    kept = alert_inputs(doc)
    assert set(kept) == {"ha", "licenses", "threats", "interfaces", "tls_fingerprint_sha256", "network"}
    assert kept["network"] == {"new_devices": [new]}
    assert kept["interfaces"] == [{"name": "ethernet1/1", "speed_mbps": 1000}]
    whole, trimmed = observe(cycle, {"fw1": doc}, now), observe(cycle, {"fw1": kept}, now)
    assert trimmed == whole
    assert whole.values[("fw1", "interface_utilization_pct", "ethernet1/1")] == 60.0
    assert whole.observed == {("fw1", "ha_state_changed"): "passive", ("fw1", "tls_fingerprint_changed"): "ab" * 32}
    assert alert_inputs({}) == {} and observe(cycle, {"fw1": {}}, now) == observe(cycle, {"fw1": alert_inputs({})}, now)
    # Kept as JSON beside the document (PostgreSQL), read back by the leader and extracted again: the same.
    assert alert_inputs(json.loads(json.dumps(kept))) == kept
