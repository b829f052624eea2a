"""The monitoring deploy files (deploy/prometheus, deploy/grafana) as tests read them: catalogue, queries, rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "panfm-overview.json"

# Every metric name PANfm's /metrics serves (issue 14's catalogue).
CATALOGUE = frozenset({
    "panfm_up",
    "panfm_device_up",
    "panfm_device_last_poll_timestamp_seconds",
    "panfm_device_poll_duration_seconds",
    "panfm_device_sessions_active",
    "panfm_device_sessions",
    "panfm_device_sessions_max",
    "panfm_device_connections_per_second",
    "panfm_device_dataplane_cpu_percent",
    "panfm_device_dataplane_cpu_busiest_percent",
    "panfm_device_management_cpu_percent",
    "panfm_device_memory_used_percent",
    "panfm_device_packet_buffer_percent",
    "panfm_interface_receive_bytes_total",
    "panfm_interface_transmit_bytes_total",
    "panfm_interface_receive_packets_total",
    "panfm_interface_transmit_packets_total",
    "panfm_interface_receive_errors_total",
    "panfm_interface_receive_drops_total",
    "panfm_device_info",
    "panfm_interface_info",
    "panfm_alert_active",
    "panfm_clock_executions_total",
    "panfm_clock_errors_total",
    "panfm_clock_missed_runs_total",
    "panfm_clock_heartbeat_age_seconds",
    "panfm_clock_devices",
    "panfm_clock_last_cycle_duration_seconds",
})
# Series Prometheus writes itself for every scrape target.
PROMETHEUS_OWN = frozenset({"up"})

# Words of PromQL that look like identifiers but name no metric.
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                       "and", "or", "unless", "offset", "inf", "nan"})
# Grafana's variables, replaced as Grafana would before a query reaches Prometheus.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h",
                     "device": ".*", "interface": ".*", "topn": "10"}


def metric_names(expr: str) -> set[str]:
    """Return the metric names an expression selects: identifiers that are no function, keyword or label."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)     # string literals
    text = re.sub(r"\{[^}]*\}", "{}", text)                                            # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)                                           # ranges, subqueries
    # Label lists go with their keyword, so `sum by (device) (x)` reads as the call `sum (x)`.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(?=\s*(\(?))", text):
        name, paren = match.group(1), match.group(2)
        if paren or name.lower() in _KEYWORDS:
            continue                                                                  # a function or a word
        names.add(name)
    return names


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's $variables and ${variables} in EXPR with values Prometheus accepts."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in GRAFANA_VARIABLES, f"unknown dashboard variable ${name} in {expr!r}"
        return GRAFANA_VARIABLES[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict]) -> list[dict]:
    """Return every panel, including those inside collapsed rows."""
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """Return (panel title, expr) of every query target of the dashboard."""
    return [(panel["title"], target["expr"]) for panel in all_panels(dashboard()["panels"])
            for target in panel.get("targets", []) if "expr" in target]


def alerting_rules() -> list[dict]:
    doc = yaml.safe_load((PROMETHEUS / "panfm-rules.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]
