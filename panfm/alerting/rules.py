"""What people edit about alerts: rules and maintenance windows (validation, window logic).

Each `validate_*` takes the JSON the web received and returns `(clean_doc, errors)`, where
`errors` maps a field name to a message (the web answers 400 with it). Clean docs are what the
web stores in config.db (`config_store.DocTable`); `rule_from_doc` / `window_from_doc` turn
stored docs into models for the evaluation. Channels are validated in `channels.py`, with the
field readers of this module. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from config import bounded_int, bounded_number
from panfm.models import AlertOperator, AlertSeverity, MaintenanceWindow, Rule

# Fields of models.DeviceSample an alert rule can watch (device-wide, series "").
SAMPLE_METRICS = (
    "inbound_mbps",
    "outbound_mbps",
    "total_mbps",
    "sessions_active",
    "sessions_utilization_pct",
    "cpu_dataplane_pct",
    "cpu_management_pct",
    "memory_pct",
    "packet_buffer_pct",
)
# Per interface (series = interface name); `interface` narrows a rule to one of them.
INTERFACE_METRICS = (
    "interface_mbps",
    "interface_utilization_pct",
    "interface_errors_per_s",
    "interface_drops_per_s",
)
# From the 5-minute inventory: threats in the last window, days left per license (series = feature).
# The metric keeps its stored spelling "licence": rules saved under that name must keep matching.
INVENTORY_METRICS = ("threats_critical", "licence_expires_in_days")
# Events: no operator, no threshold.
# new_connected_device: series = the MAC; fires once when the inventory job sees a MAC new to the
# firewall, resolves by itself at the next inventory; `zone` narrows it to one zone.
EVENT_METRICS = ("device_unreachable", "ha_state_changed", "tls_fingerprint_changed", "new_connected_device")
CHANGE_EVENTS = ("ha_state_changed", "tls_fingerprint_changed")
VALUE_METRICS = SAMPLE_METRICS + INTERFACE_METRICS + INVENTORY_METRICS
METRICS = VALUE_METRICS + EVENT_METRICS

OPERATORS: tuple[AlertOperator, ...] = (">", ">=", "<", "<=")
SEVERITIES: tuple[AlertSeverity, ...] = ("critical", "warning", "info")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SECONDS = 7 * 86400
MAX_THRESHOLD = 1e15  # far beyond any metric (Mbps, sessions, percent, days); a bound, not a policy
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

Errors = dict[str, str]


def _text(doc: Mapping[str, Any], key: str, errors: Errors, *, required: bool, limit: int = 200) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            errors[key] = "is required"
        return None
    if not isinstance(value, str) or len(value.strip()) > limit:
        errors[key] = f"must be text of at most {limit} characters"
        return None
    return value.strip()


def _number(doc: Mapping[str, Any], key: str, errors: Errors, *, required: bool) -> float | None:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            errors[key] = "is required"
        return None
    if isinstance(value, str):  # JSON numbers only; bounded_number would read text too
        errors[key] = f"must be a number from {-MAX_THRESHOLD:g} to {MAX_THRESHOLD:g}"
        return None
    try:
        return bounded_number(value, -MAX_THRESHOLD, MAX_THRESHOLD)
    except ValueError:
        errors[key] = f"must be a number from {-MAX_THRESHOLD:g} to {MAX_THRESHOLD:g}"
        return None


def _seconds(doc: Mapping[str, Any], key: str, errors: Errors, default: int, *, minimum: int = 0) -> int:
    value = doc.get(key, default)
    if value is None:
        return default
    if isinstance(value, str):  # JSON numbers only; bounded_int would read text too
        errors[key] = "must be a whole number of seconds"
        return default
    try:
        return bounded_int(value, minimum, MAX_SECONDS)
    except ValueError:
        errors[key] = f"must be a whole number of seconds from {minimum} to {MAX_SECONDS}"
        return default


def _bool(doc: Mapping[str, Any], key: str, errors: Errors, default: bool) -> bool:
    value = doc.get(key, default)
    if not isinstance(value, bool):
        errors[key] = "must be true or false"
        return default
    return value


def _device_id(doc: Mapping[str, Any], errors: Errors) -> str | None:
    value = doc.get("device_id")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _ID.match(value):
        errors["device_id"] = "must be a device id or null for every device"
        return None
    return value


def validate_rule(doc: Mapping[str, Any]) -> tuple[dict[str, Any], Errors]:
    """Check one rule as the web received it; return the clean document and errors by field."""
    errors: Errors = {}
    if not isinstance(doc, Mapping):
        return {}, {"rule": "must be a JSON object"}
    name = _text(doc, "name", errors, required=True)
    metric = doc.get("metric")
    if metric not in METRICS:
        errors["metric"] = "must be one of " + ", ".join(METRICS)
    clean: dict[str, Any] = {"name": name, "device_id": _device_id(doc, errors), "metric": metric}
    if doc.get("id"):
        clean["id"] = str(doc["id"])
    interface = _text(doc, "interface", errors, required=False, limit=64)
    if interface is not None:
        if metric not in INTERFACE_METRICS:
            errors["interface"] = "only interface metrics take an interface"
        clean["interface"] = interface
    zone = _text(doc, "zone", errors, required=False, limit=64)
    if zone is not None:
        if metric != "new_connected_device":
            errors["zone"] = "only new_connected_device takes a zone"
        clean["zone"] = zone
    if metric in VALUE_METRICS:
        op = doc.get("operator")
        if op not in OPERATORS:
            errors["operator"] = "must be one of " + " ".join(OPERATORS)
        threshold = _number(doc, "threshold", errors, required=True)
        clear = _number(doc, "clear_threshold", errors, required=False)
        clean.update(operator=op, threshold=threshold)
        if clear is not None:
            clean["clear_threshold"] = clear
            if threshold is not None and op in (">", ">=") and clear > threshold:
                errors["clear_threshold"] = "must not be above the threshold for > and >="
            if threshold is not None and op in ("<", "<=") and clear < threshold:
                errors["clear_threshold"] = "must not be below the threshold for < and <="
    elif metric in EVENT_METRICS:
        for key in ("operator", "threshold", "clear_threshold"):
            if doc.get(key) not in (None, ""):
                errors[key] = "event metrics take no " + key.replace("_", " ")
    clean["for_s"] = _seconds(doc, "for_s", errors, 0)
    clean["repeat_s"] = _seconds(doc, "repeat_s", errors, 0)
    if clean["repeat_s"] and clean["repeat_s"] < 60:
        errors["repeat_s"] = "must be 0 (never) or at least 60 seconds"
    severity = doc.get("severity", "warning")
    if severity not in SEVERITIES:
        errors["severity"] = "must be one of " + ", ".join(SEVERITIES)
    clean["severity"] = severity
    channel_ids = doc.get("channel_ids", [])
    if not isinstance(channel_ids, list) or not all(isinstance(c, str) and _ID.match(c) for c in channel_ids):
        errors["channel_ids"] = "must be a list of channel ids"
        channel_ids = []
    clean["channel_ids"] = list(dict.fromkeys(channel_ids))
    clean["enabled"] = _bool(doc, "enabled", errors, True)
    return clean, errors


def rule_from_doc(doc: Mapping[str, Any]) -> Rule:
    """Turn a stored, validated rule document into a `Rule` (raises ValueError if it is not valid)."""
    clean, errors = validate_rule(doc)
    if errors or not doc.get("id"):
        raise ValueError(f"invalid alert rule {doc.get('id')!r}: {', '.join(sorted(errors)) or 'no id'}")
    return Rule(
        id=str(doc["id"]),
        name=clean["name"],
        metric=clean["metric"],
        severity=clean["severity"],
        device_id=clean["device_id"],
        interface=clean.get("interface"),
        zone=clean.get("zone"),
        operator=clean.get("operator"),
        threshold=clean.get("threshold"),
        clear_threshold=clean.get("clear_threshold"),
        for_s=clean["for_s"],
        repeat_s=clean["repeat_s"],
        channel_ids=tuple(clean["channel_ids"]),
        enabled=clean["enabled"],
    )


# --------------------------------------------------------------------------------------
# Maintenance windows
# --------------------------------------------------------------------------------------


def parse_iso(value: Any) -> float | None:
    """Parse an ISO-8601 UTC time (`2024-05-01T10:00:00Z`) into epoch seconds, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def validate_maintenance(doc: Mapping[str, Any]) -> tuple[dict[str, Any], Errors]:
    """Check a one-off (`kind` "once": `start`, `end`) or weekly (`weekdays`, `start_time`, `duration_s`) window.

    Times are UTC: `start`/`end` ISO-8601 with a zone, `start_time` "HH:MM", `weekdays` like ["mon", "sat"].
    """
    errors: Errors = {}
    if not isinstance(doc, Mapping):
        return {}, {"window": "must be a JSON object"}
    clean: dict[str, Any] = {
        "name": _text(doc, "name", errors, required=False) or "",
        "device_id": _device_id(doc, errors),
        "kind": doc.get("kind"),
    }
    if doc.get("id"):
        clean["id"] = str(doc["id"])
    if doc.get("kind") == "once":
        start, end = parse_iso(doc.get("start")), parse_iso(doc.get("end"))
        if start is None:
            errors["start"] = "must be an ISO-8601 time with a zone, e.g. 2024-05-01T22:00:00Z"
        if end is None:
            errors["end"] = "must be an ISO-8601 time with a zone, e.g. 2024-05-02T02:00:00Z"
        elif start is not None and end <= start:
            errors["end"] = "must be after start"
        clean.update(start=doc.get("start"), end=doc.get("end"))
    elif doc.get("kind") == "weekly":
        days = doc.get("weekdays")
        if not isinstance(days, list) or not days or any(d not in WEEKDAYS for d in days):
            errors["weekdays"] = "must list days among " + ", ".join(WEEKDAYS)
            days = []
        start_time = doc.get("start_time")
        if not isinstance(start_time, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", start_time):
            errors["start_time"] = "must be HH:MM (UTC)"
        duration = _seconds(doc, "duration_s", errors, 0, minimum=60)
        if "duration_s" not in doc:
            errors["duration_s"] = "is required"
        clean.update(weekdays=[d for d in WEEKDAYS if d in days], start_time=start_time, duration_s=duration)
    else:
        errors["kind"] = "must be once or weekly"
    return clean, errors


def window_from_doc(doc: Mapping[str, Any]) -> MaintenanceWindow:
    """Turn a stored, validated window document into a `MaintenanceWindow` (ValueError if invalid)."""
    clean, errors = validate_maintenance(doc)
    if errors:
        raise ValueError(f"invalid maintenance window {doc.get('id')!r}: {', '.join(sorted(errors))}")
    common = {"id": str(doc.get("id", "")), "device_id": clean["device_id"], "name": clean["name"]}
    if clean["kind"] == "once":
        return MaintenanceWindow(**common, start=parse_iso(clean["start"]), end=parse_iso(clean["end"]))
    hh, mm = (int(x) for x in clean["start_time"].split(":"))
    return MaintenanceWindow(
        **common,
        weekdays=tuple(WEEKDAYS.index(d) for d in clean["weekdays"]),
        start_minute=hh * 60 + mm,
        duration_s=clean["duration_s"],
    )


def in_maintenance(windows: Sequence[MaintenanceWindow], device_id: str, now: float) -> bool:
    """Whether a window covering this device (or every device) is open at `now`."""
    for w in windows:
        if w.device_id is not None and w.device_id != device_id:
            continue
        if w.start is not None and w.end is not None:
            if w.start <= now < w.end:
                return True
            continue
        # Weekly: look at this week's and last week's starts, so a window crossing midnight
        # (or Sunday into Monday) still covers its tail.
        day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        midnight, weekday = day.timestamp(), day.weekday()
        for back in range(8):
            if (weekday - back) % 7 in w.weekdays:
                opens = midnight - back * 86400 + w.start_minute * 60
                if opens <= now < opens + w.duration_s:
                    return True
    return False
