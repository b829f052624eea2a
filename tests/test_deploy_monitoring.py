"""The monitoring deploy files (deploy/prometheus, deploy/grafana) against promtool and the metric catalogue.

No Prometheus or Grafana runs here: promtool (Debian's `prometheus` package) checks the scrape
config, the alerting rules and every dashboard query, and each PromQL expression may name only
metrics PANfm's /metrics serves (CATALOGUE, docs/monitoring.md) or Prometheus itself makes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import require

ROOT = Path(__file__).resolve().parent.parent
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


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run promtool (Debian's `prometheus` package): a skip without it, a failure under CI=true."""
    require(shutil.which("promtool"), "promtool (apt-get install prometheus)")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def prometheus_copy(tmp_path: Path, config: str | None = None) -> Path:
    """Copy deploy/prometheus into TMP_PATH with the token file there (Docker's secret in production)."""
    folder = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, folder)
    (folder / "panfm_metrics_token").write_text("test-token\n")
    text = config if config is not None else (folder / "prometheus.yml").read_text()
    assert "/run/secrets/panfm_metrics_token" in text
    (folder / "prometheus.yml").write_text(text.replace("/run/secrets/panfm_metrics_token", "panfm_metrics_token"))
    return folder


def test_metric_names_finds_the_metrics_and_skips_functions_labels_and_variables():
    expr = ('topk(10, sum by (device, le) (rate(panfm_interface_receive_bytes_total{device=~"fw_(a|b)",'
            ' interface!="x"}[5m] offset 1h)) * 8) / on(device) group_left(model) panfm_device_info'
            ' or vector(0) > bool 1e3 and time() - up')
    assert metric_names(expr) == {"panfm_interface_receive_bytes_total", "panfm_device_info", "up"}
    assert metric_names("panfm_up") == {"panfm_up"}
    assert metric_names("histogram_quantile(0.9, sum by (le) (x_bucket))") == {"x_bucket"}
    assert metric_names('count(panfm_device_up == 0) or vector(0)') == {"panfm_device_up"}
    assert metric_names("sum(x_total) by (device) / sum without (dp) (y)") == {"x_total", "y"}
    assert metric_names('panfm_alert_active{rule="cpu(high)"} == 1') == {"panfm_alert_active"}


def test_the_scrape_config_passes_promtool_with_its_rules(tmp_path):
    folder = prometheus_copy(tmp_path)
    out = promtool("check", "config", "prometheus.yml", cwd=folder)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr and "panfm-rules.yml" in out.stdout + out.stderr


def test_the_scrape_config_scrapes_metrics_every_30_s_with_a_bearer_token_file():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "panfm"]
    assert job["metrics_path"] == "/metrics" and job["scrape_interval"] == "30s"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/panfm_metrics_token"}
    assert config["rule_files"] == ["panfm-rules.yml"]


def test_the_commented_sharding_example_is_a_valid_job_once_uncommented(tmp_path):
    text = (PROMETHEUS / "prometheus.yml").read_text()
    jobs, current = [], None
    for line in text.splitlines():
        if line.startswith("  # - job_name:"):
            current = [line]
            jobs.append(current)
        elif current is not None and line.startswith("  #   "):
            current.append(line)
        else:
            current = None
    uncommented = ["\n".join(line.replace("  # ", "  ", 1) for line in job) for job in jobs]
    assert len(uncommented) == 2 and "job_name: panfm-devices" in uncommented[0]
    sharded = yaml.safe_load(uncommented[0])[0]
    actions = [step.get("action", "replace") for step in sharded["relabel_configs"]]
    assert "hashmod" in actions and actions[-1] == "keep"
    assert any(step.get("target_label") == "__param_device" for step in sharded["relabel_configs"])
    folder = prometheus_copy(tmp_path, text + "\n" + "\n".join(uncommented) + "\n")
    (folder / "panfm-devices.yml").write_text('- targets: ["fw-hq-1", "fw-branch-7"]\n')
    out = promtool("check", "config", "prometheus.yml", cwd=folder)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_alerting_rules_pass_promtool():
    out = promtool("check", "rules", "panfm-rules.yml", cwd=PROMETHEUS)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(alerting_rules())} rules found" in out.stdout


def test_every_alerting_rule_names_catalogue_metrics_and_explains_itself():
    rules = alerting_rules()
    names = {rule["alert"] for rule in rules}
    for wanted in ("PanfmMetricsDown", "PanfmDeviceDown", "PanfmDataplaneCpuHigh", "PanfmSessionTableNearlyFull",
                   "PanfmInterfaceDrops", "PanfmClockHeartbeatStale"):
        assert wanted in names
    for rule in rules:
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= CATALOGUE | PROMETHEUS_OWN, f"{rule['alert']}: not in the catalogue: {used - CATALOGUE}"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
    by_name = {rule["alert"]: rule for rule in rules}
    assert by_name["PanfmDeviceDown"]["for"] == "2m"
    assert by_name["PanfmDataplaneCpuHigh"]["for"] == "5m" and "> 90" in by_name["PanfmDataplaneCpuHigh"]["expr"]


def test_the_dashboard_takes_its_datasource_and_devices_from_variables():
    doc = dashboard()
    assert 36 <= doc["schemaVersion"] <= 41 and doc["uid"] == "panfm-overview"
    variables = {var["name"]: var for var in doc["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    device = variables["device"]
    assert device["query"]["query"] == device["definition"] == "label_values(panfm_device_info, device)"
    assert device["multi"] is True
    panels = all_panels(doc["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], panel["title"]
    rows = [panel["title"] for panel in panels if panel["type"] == "row"]
    assert rows == ["Fleet", "Firewall: $device", "Interfaces", "Clock health", "Active alerts"]


def test_every_dashboard_query_names_only_catalogue_metrics():
    exprs = dashboard_exprs()
    assert len(exprs) >= 30
    for title, expr in exprs:
        used = metric_names(grafana_to_promql(expr))
        assert used, f"{title}: {expr}"
        assert used <= CATALOGUE, f"{title}: not in the catalogue: {sorted(used - CATALOGUE)}"
    # Throughput is bits per second out of the byte counters, over Grafana's rate interval.
    throughput = [expr for _, expr in exprs if "_bytes_total" in expr]
    assert throughput and all("[$__rate_interval]" in expr and "* 8" in expr for expr in throughput)


def test_the_dashboard_and_the_rules_use_every_catalogue_metric():
    used = set()
    for _, expr in dashboard_exprs():
        used |= metric_names(grafana_to_promql(expr))
    for rule in alerting_rules():
        used |= metric_names(rule["expr"])
    assert used >= CATALOGUE, f"shown nowhere: {sorted(CATALOGUE - used)}"


def test_promtool_parses_every_dashboard_query(tmp_path):
    # promtool checks expressions only inside rules: each query becomes a recording rule.
    rules = [{"record": f"panfm_dashboard:query_{i}", "expr": grafana_to_promql(expr)}
             for i, (_, expr) in enumerate(dashboard_exprs())]
    (tmp_path / "dashboard-rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", "dashboard-rules.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout


def test_grafana_provisioning_loads_the_dashboard_from_prometheus():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["jsonData"]["timeInterval"] == "30s"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "panfm.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/etc/grafana/dashboards/panfm"

