"""Ready-made alert rule sets (system health, capacity, security, link health) applied in one click."""

from __future__ import annotations

from typing import Any

from panfm.alerting.rules import validate_rule


def _r(name: str, metric: str, severity: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "metric": metric, "severity": severity, "for_s": 0, "repeat_s": 0, **kw}


TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "system-health": [
        _r("Firewall unreachable", "device_unreachable", "critical", for_s=60),
        _r("Dataplane CPU high", "cpu_dataplane_pct", "warning", operator=">", threshold=90, clear_threshold=80,
           for_s=300),
        _r("Management CPU high", "cpu_management_pct", "warning", operator=">", threshold=90, clear_threshold=80,
           for_s=600),
        _r("Memory high", "memory_pct", "warning", operator=">", threshold=90, clear_threshold=85, for_s=600),
        _r("HA state changed", "ha_state_changed", "warning"),
        _r("TLS certificate changed", "tls_fingerprint_changed", "critical"),
    ],
    "capacity": [
        _r("Session table filling", "sessions_utilization_pct", "warning", operator=">", threshold=80,
           clear_threshold=70, for_s=300),
        _r("Session table almost full", "sessions_utilization_pct", "critical", operator=">", threshold=95,
           clear_threshold=90, for_s=120, repeat_s=3600),
        _r("Packet buffers high", "packet_buffer_pct", "warning", operator=">", threshold=80, clear_threshold=60,
           for_s=120),
    ],
    "security": [
        _r("Critical threats", "threats_critical", "critical", operator=">", threshold=0, repeat_s=3600),
        _r("Licence expires within 30 days", "licence_expires_in_days", "warning", operator="<=", threshold=30),
        _r("Licence expires within 7 days", "licence_expires_in_days", "critical", operator="<=", threshold=7,
           repeat_s=86400),
    ],
    "link-health": [
        _r("Link utilisation high", "interface_utilization_pct", "warning", operator=">", threshold=90,
           clear_threshold=80, for_s=300),
        _r("Interface errors", "interface_errors_per_s", "warning", operator=">", threshold=1, for_s=300),
        _r("Interface drops", "interface_drops_per_s", "warning", operator=">", threshold=10, clear_threshold=1,
           for_s=300),
    ],
}


def apply_template(name: str, device_id: str | None, channel_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Return the template's rules as clean documents (no id yet) for one device or all; KeyError if unknown."""
    rules = []
    for template in TEMPLATES[name]:
        doc = {**template, "device_id": device_id, "channel_ids": list(channel_ids or []), "enabled": True}
        clean, errors = validate_rule(doc)
        if errors:  # a template bug, caught by the tests
            raise ValueError(f"template {name!r} rule {template['name']!r}: {errors}")
        rules.append(clean)
    return rules
