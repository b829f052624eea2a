"""Pure alert evaluation: observations in, state transitions out (no I/O, `now` is an argument).

One state per (rule, device, series) moves `inactive → pending → firing → (resolved) inactive`.
The rules that people trust from Prometheus/Alertmanager apply:

1. The condition must hold for `for_s` seconds before firing (0 = on the first evaluation that
   sees it); a pending alert whose condition stops, or whose data goes missing, is cancelled.
2. A firing alert resolves only when the value is past `clear_threshold` (hysteresis), or past
   the threshold when there is none. Missing data is "no data": the alert keeps firing.
3. While a device is unreachable its other rules are held (no transition at all) and only
   `device_unreachable` (and `tls_fingerprint_changed`) move.
4. Change events (`ha_state_changed`, `tls_fingerprint_changed`) fire when the observed text
   differs from the last one seen, and resolve once it has been stable for `CHANGE_HOLD_S`.
5. Maintenance windows mute notifications, never state: a firing alert that was never notified
   is notified when the window closes; resolutions of never-notified alerts are not sent.
6. While firing, `repeat_s > 0` re-notifies every `repeat_s` seconds.
7. A device removed or disabled closes its alerts: firing incidents end (reason in `detail`,
   no "resolved" message: the condition did not clear), pending ones are cancelled, and every
   state of the device is dropped, so re-enabling it starts fresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from panfm.alerting.rules import CHANGE_EVENTS, INTERFACE_METRICS, SAMPLE_METRICS, in_maintenance
from panfm.models import AlertState, CycleResult, MaintenanceWindow, Rule, StateKey, Transition, TransitionKind

CHANGE_HOLD_S = 600  # a change event stays firing this long after the last change
UNHELD = ("device_unreachable", "tls_fingerprint_changed")  # still evaluated on an unreachable device



@dataclass(frozen=True)
class Observations:
    """What one evaluation sees: values by (device, metric, series), reachability, event texts."""

    devices: frozenset[str] = frozenset()
    values: dict[tuple[str, str, str], float] = field(default_factory=dict)
    reachable: dict[str, bool] = field(default_factory=dict)  # absent = unknown (no data)
    failures: dict[str, int] = field(default_factory=dict)
    observed: dict[tuple[str, str], str] = field(default_factory=dict)  # (device, event metric) -> text
    # Device -> MACs the last inventory found new to it -> their facts (zone, ip, vendor, hostname).
    new_devices: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=dict)
    inventoried: frozenset[str] = frozenset()  # devices with a network inventory (new_devices is known)


@dataclass(frozen=True)
class Evaluation:
    transitions: tuple[Transition, ...]
    states: dict[StateKey, AlertState]  # every state worth keeping after this evaluation


@dataclass(frozen=True)
class _Reading:
    active: bool | None  # None = no data
    clear: bool = False
    value: float | None = None
    observed: str | None = None
    detail: str | None = None


def _speeds(inv: Mapping[str, Any]) -> dict[str, float]:
    """Link speeds in Mb/s from the inventory's interface list (list of dicts or dict by name)."""
    raw = inv.get("interfaces") or []
    items = raw.values() if isinstance(raw, Mapping) else raw
    out: dict[str, float] = {}
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("speed_mbps"), int | float) and item["speed_mbps"] > 0:
            out[str(item.get("name"))] = float(item["speed_mbps"])
    return out


def _license_days(expires: Any, today: date) -> int | None:
    """Days until a license expires; None for "Never", missing or unreadable dates."""
    if isinstance(expires, date):
        return (expires - today).days
    if not isinstance(expires, str) or expires.strip().lower() in ("", "never"):
        return None
    text = expires.strip()
    for fmt in ("%Y-%m-%d", "%B %d, %Y", "%b %d, %Y"):
        try:
            return (datetime.strptime(text[:10] if fmt == "%Y-%m-%d" else text, fmt).date() - today).days
        except ValueError:
            continue
    return None


def alert_inputs(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an inventory document `observe` reads, and nothing else (the clock keeps these).

    A whole document (log entries, ARP and DHCP tables, security events) is ~160 Python objects
    per firewall; the clock held one per firewall for the alerts and replaced it every window,
    which kept pymalloc's arenas from being given back (docs/benchmarks.md). Same answers from
    `observe`: it reads only these keys, and within `interfaces` only name and speed.
    """
    out: dict[str, Any] = {}
    raw = doc.get("interfaces")
    if raw:
        items = raw.values() if isinstance(raw, Mapping) else raw
        speeds = [{"name": item.get("name"), "speed_mbps": item["speed_mbps"]} for item in items
                  if isinstance(item, Mapping) and isinstance(item.get("speed_mbps"), int | float)
                  and item["speed_mbps"] > 0]
        if speeds:
            out["interfaces"] = speeds
    network = doc.get("network")
    if isinstance(network, Mapping) and isinstance(network.get("new_devices"), list):
        out["network"] = {"new_devices": network["new_devices"]}
    ha = doc.get("ha")
    if isinstance(ha, Mapping):
        out["ha"] = {"enabled": ha.get("enabled"), "local_state": ha.get("local_state")}
    threats = doc.get("threats")
    if isinstance(threats, Mapping):
        out["threats"] = {"critical": threats.get("critical")}
    licenses = doc.get("licenses") or doc.get("licences") or []
    if isinstance(licenses, list) and licenses:
        out["licenses"] = [{"feature": lic.get("feature"), "expires": lic.get("expires")}
                           for lic in licenses if isinstance(lic, Mapping)]
    if doc.get("tls_fingerprint_sha256"):
        out["tls_fingerprint_sha256"] = doc["tls_fingerprint_sha256"]
    return out


def observe(
    cycle: CycleResult,
    inventory: Mapping[str, Mapping[str, Any]],
    now: float,
    fingerprints: Mapping[str, str] | None = None,
) -> Observations:
    """Gather the evaluation's inputs from one cycle, the latest inventory and seen certificates.

    Inventory per device (keys read when present): `ha` {"enabled", "local_state"},
    `licenses` [{"feature", "expires": "YYYY-MM-DD" | "Never" | null}], `threats` {"critical"},
    `interfaces` [{"name", "speed_mbps"}], `tls_fingerprint_sha256`, `network` {"new_devices": [{"mac",
    "ip", "zone", "vendor", "dhcp_hostname"}]}.
    """
    values: dict[tuple[str, str, str], float] = {}
    for s in sorted(cycle.samples, key=lambda s: s.ts):  # the latest sample of a device wins
        for metric in SAMPLE_METRICS:
            v = getattr(s, metric)
            if v is not None:
                values[(s.device_id, metric, "")] = float(v)
    speeds: dict[str, dict[str, float]] = {}  # per device, read once (not once per interface)
    for i in cycle.interfaces:
        if i.device_id not in speeds:
            speeds[i.device_id] = _speeds(inventory.get(i.device_id) or {})
        speed = speeds[i.device_id].get(i.name)
        if i.in_bps is not None and i.out_bps is not None:
            values[(i.device_id, "interface_mbps", i.name)] = (i.in_bps + i.out_bps) / 1e6
            if speed:  # full duplex: the busier direction against the link speed
                values[(i.device_id, "interface_utilization_pct", i.name)] = max(i.in_bps, i.out_bps) / (speed * 1e4)
        if i.errors_per_s is not None:
            values[(i.device_id, "interface_errors_per_s", i.name)] = i.errors_per_s
        if i.drops_per_s is not None:
            values[(i.device_id, "interface_drops_per_s", i.name)] = i.drops_per_s
    reachable = {st.device_id: st.state == "up" for st in cycle.statuses if st.state != "unknown"}
    failures = {st.device_id: st.consecutive_failures for st in cycle.statuses}
    observed: dict[tuple[str, str], str] = {}
    new_devices: dict[str, dict[str, Mapping[str, Any]]] = {}
    inventoried: set[str] = set()
    today = datetime.fromtimestamp(now, UTC).date()
    for device_id, inv in inventory.items():
        network = inv.get("network")
        if isinstance(network, Mapping) and isinstance(network.get("new_devices"), list):
            inventoried.add(device_id)
            new_devices[device_id] = {str(d["mac"]): d for d in network["new_devices"]
                                      if isinstance(d, Mapping) and d.get("mac")}
        ha = inv.get("ha")
        if isinstance(ha, Mapping) and ha.get("enabled") and ha.get("local_state"):
            observed[(device_id, "ha_state_changed")] = str(ha["local_state"])
        for lic in inv.get("licenses") or inv.get("licences") or []:
            days = _license_days(lic.get("expires"), today) if isinstance(lic, Mapping) else None
            if days is not None:
                values[(device_id, "licence_expires_in_days", str(lic.get("feature") or "license"))] = float(days)
        threats = inv.get("threats")
        if isinstance(threats, Mapping) and isinstance(threats.get("critical"), int | float):
            values[(device_id, "threats_critical", "")] = float(threats["critical"])
        if inv.get("tls_fingerprint_sha256"):
            observed[(device_id, "tls_fingerprint_changed")] = str(inv["tls_fingerprint_sha256"])
    for device_id, fp in (fingerprints or {}).items():
        observed[(device_id, "tls_fingerprint_changed")] = fp
    devices = {s.device_id for s in cycle.samples} | {st.device_id for st in cycle.statuses} | set(inventory)
    return Observations(frozenset(devices), values, reachable, failures, observed, new_devices,
                        frozenset(inventoried))


def _compare(op: str | None, value: float, threshold: float) -> bool:
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    return value <= threshold


def _read(rule: Rule, device_id: str, series: str, obs: Observations, old: AlertState, now: float) -> _Reading:
    if rule.metric == "device_unreachable":
        up = obs.reachable.get(device_id)
        if up is None:
            return _Reading(None)
        return _Reading(not up, clear=up, value=float(obs.failures.get(device_id, 0)))
    if rule.metric == "new_connected_device":
        if device_id not in obs.inventoried:
            return _Reading(None)
        found = obs.new_devices.get(device_id, {}).get(series)
        if found is None or not _in_zone(rule, found):
            return _Reading(False, clear=True)
        facts = [str(found[k]) for k in ("ip", "dhcp_hostname", "vendor", "zone") if found.get(k)]
        return _Reading(True, detail=f"new device {series}" + (f" ({', '.join(facts)})" if facts else ""))
    if rule.metric in CHANGE_EVENTS:
        text = obs.observed.get((device_id, rule.metric))
        if text is None:
            return _Reading(None, observed=old.observed)
        if old.observed is not None and text != old.observed:
            return _Reading(True, observed=text, detail=f"{old.observed} → {text}")
        recent = old.observed_at is not None and now - old.observed_at < CHANGE_HOLD_S
        active = old.state != "inactive" and recent
        return _Reading(active, clear=not active, observed=text, detail=old.detail)
    value = obs.values.get((device_id, rule.metric, series))
    if value is None or rule.threshold is None:
        return _Reading(None)
    active = _compare(rule.operator, value, rule.threshold)
    if rule.clear_threshold is None:
        clear = not active
    elif rule.operator in (">", ">="):
        clear = value < rule.clear_threshold
    else:
        clear = value > rule.clear_threshold
    return _Reading(active, clear=clear, value=value)


def alert_id(rule_id: str, device_id: str, series: str, since: float) -> str:
    """A stable id for one incident (same inputs, same id: evaluation stays pure)."""
    raw = f"{rule_id}\x00{device_id}\x00{series}\x00{since:.3f}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def _peak(rule: Rule, old: float | None, value: float | None) -> float | None:
    if value is None:
        return old
    if old is None:
        return value
    return min(old, value) if rule.operator in ("<", "<=") else max(old, value)


def _step(rule: Rule, old: AlertState, r: _Reading, now: float, muted: bool) -> tuple[AlertState, list[Transition]]:
    """Move one state by one reading (see the module docstring for the rules)."""
    st = old
    if r.observed is not None and r.observed != old.observed:
        st = replace(st, observed=r.observed, observed_at=now)

    def tr(kind: TransitionKind, s: AlertState, notify: bool, suppressed: bool = False) -> Transition:
        return Transition(
            kind=kind,
            at=now, alert_id=s.alert_id or "", rule_id=rule.id, device_id=s.device_id, series=s.series,
            metric=rule.metric, severity=rule.severity, value=r.value if r.value is not None else s.value,
            threshold=rule.threshold, started_at=s.since or now, notify=notify, suppressed=suppressed,
            peak=s.peak, detail=s.detail,
        )

    def fire(s: AlertState) -> tuple[AlertState, list[Transition]]:
        s = replace(s, state="firing", fired_at=now, last_notified=None if muted else now)
        return s, [tr("firing", s, notify=not muted, suppressed=muted)]

    for_s = 0 if rule.metric in (*CHANGE_EVENTS, "new_connected_device") else rule.for_s
    if r.active is None:  # no data
        if st.state == "pending":
            return _inactive(st), [tr("cancelled", st, notify=False)]
        return st, []
    if st.state == "inactive":
        if not r.active:
            return st, []
        st = replace(st, state="pending", alert_id=alert_id(rule.id, st.device_id, st.series, now), since=now,
                     value=r.value, peak=r.value, detail=r.detail)
        if for_s <= 0:
            return fire(st)
        return st, [tr("pending", st, notify=False)]
    if st.state == "pending":
        if not r.active:
            return _inactive(st), [tr("cancelled", st, notify=False)]
        st = replace(st, value=r.value, peak=_peak(rule, st.peak, r.value), detail=r.detail or st.detail)
        if now - (st.since or now) >= for_s:
            return fire(st)
        return st, []
    # firing
    st = replace(st, value=r.value if r.value is not None else st.value, peak=_peak(rule, st.peak, r.value),
                 detail=r.detail or st.detail)
    if r.clear:
        return _inactive(st), [tr("resolved", st, notify=st.last_notified is not None and not muted,
                                  suppressed=st.last_notified is not None and muted)]
    if muted:
        return st, []
    if st.last_notified is None:  # fired inside a maintenance window that has closed since
        st = replace(st, last_notified=now)
        return st, [tr("firing", st, notify=True)]
    if rule.repeat_s > 0 and now - st.last_notified >= rule.repeat_s:
        st = replace(st, last_notified=now)
        return st, [tr("repeat", st, notify=True)]
    return st, []


def _inactive(st: AlertState) -> AlertState:
    """Back to inactive, keeping only the last observation of a change event."""
    return AlertState(st.rule_id, st.device_id, st.series, "inactive", observed=st.observed,
                      observed_at=st.observed_at)


def _in_zone(rule: Rule, device: Mapping[str, Any]) -> bool:
    return rule.zone is None or str(device.get("zone") or "").lower() == rule.zone.lower()


def _series(rule: Rule, device_id: str, obs: Observations, known: Iterable[StateKey]) -> list[str]:
    if rule.metric == "new_connected_device":  # one incident per new MAC, and the ones still open
        found = {mac for mac, d in obs.new_devices.get(device_id, {}).items() if _in_zone(rule, d)}
        found |= {s for (rid, d, s) in known if rid == rule.id and d == device_id}
        return sorted(found)
    if rule.metric in INTERFACE_METRICS or rule.metric == "licence_expires_in_days":
        found = {s for (d, m, s) in obs.values if d == device_id and m == rule.metric}
        found |= {s for (rid, d, s) in known if rid == rule.id and d == device_id}
        if rule.interface is not None:
            found = {s for s in found if s == rule.interface} | {rule.interface}
        return sorted(found)
    return [""]


def _gone_devices(states: Mapping[StateKey, AlertState], device_enabled: Mapping[str, bool] | None) -> dict[str, str]:
    """Devices with states that are no longer monitored, with the reason: removed or disabled."""
    if device_enabled is None:
        return {}
    out: dict[str, str] = {}
    for _rule_id, device_id, _series in states:
        if device_id not in device_enabled:
            out[device_id] = "device removed"
        elif not device_enabled[device_id]:
            out[device_id] = "device disabled"
    return out


def evaluate(
    rules: Sequence[Rule],
    obs: Observations,
    states: Mapping[StateKey, AlertState],
    now: float,
    maintenance: Sequence[MaintenanceWindow] = (),
    device_enabled: Mapping[str, bool] | None = None,
) -> Evaluation:
    """Evaluate every enabled rule against one set of observations; return transitions and new states.

    `device_enabled` (device id -> enabled, every configured device) closes the alerts of devices
    removed or disabled; None leaves every state to the rules (no device list known).
    """
    out: dict[StateKey, AlertState] = {}
    transitions: list[Transition] = []
    enabled = {r.id: r for r in rules if r.enabled}
    windows = list(maintenance)
    gone = _gone_devices(states, device_enabled)
    for rule in enabled.values():
        if rule.device_id is not None:
            devices = [rule.device_id]
        else:
            devices = sorted(obs.devices | {d for (rid, d, _s) in states if rid == rule.id})
        for device_id in devices:
            if device_id in gone or (device_enabled is not None and not device_enabled.get(device_id, False)):
                continue  # not monitored (any more): nothing to evaluate, its states close below
            muted = in_maintenance(windows, device_id, now)
            held = rule.metric not in UNHELD and obs.reachable.get(device_id) is False
            for series in _series(rule, device_id, obs, states):
                key = (rule.id, device_id, series)
                old = states.get(key) or AlertState(rule.id, device_id, series, "inactive")
                trs: list[Transition] = []
                if held:
                    new = old
                else:
                    new, trs = _step(rule, old, _read(rule, device_id, series, obs, old, now), now, muted)
                transitions.extend(trs)
                if new.state != "inactive" or new.observed is not None:
                    out[key] = new
    # A device removed or disabled closes its incidents without claiming the condition cleared.
    for key, st in sorted(states.items()):
        reason = gone.get(key[1])
        if reason is None or st.state == "inactive":
            continue
        rule_or_none = enabled.get(key[0])
        transitions.append(Transition(
            kind="resolved" if st.state == "firing" else "cancelled", at=now, alert_id=st.alert_id or "",
            rule_id=st.rule_id, device_id=st.device_id, series=st.series,
            metric=rule_or_none.metric if rule_or_none else "", severity=rule_or_none.severity if rule_or_none
            else "info", value=st.value, threshold=rule_or_none.threshold if rule_or_none else None,
            started_at=st.since or now, notify=False, peak=st.peak,
            detail=f"{st.detail}; {reason}" if st.detail else reason,
        ))
    # A rule deleted or disabled while firing closes its incidents, silently.
    for key, st in sorted(states.items()):
        if key[0] not in enabled and st.state == "firing" and key[1] not in gone:
            transitions.append(Transition(
                kind="resolved", at=now, alert_id=st.alert_id or "", rule_id=st.rule_id, device_id=st.device_id,
                series=st.series, metric="", severity="info", value=st.value, threshold=None,
                started_at=st.since or now, notify=False, peak=st.peak, detail="rule removed or disabled",
            ))
    return Evaluation(tuple(transitions), out)
