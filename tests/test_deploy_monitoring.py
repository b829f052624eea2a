"""The monitoring deploy files (deploy/prometheus, deploy/grafana) against promtool and the metric catalogue.

No Prometheus or Grafana runs here: promtool (Debian's `prometheus` package) checks the scrape
config, the alerting rules and every dashboard query, and each PromQL expression may name only
metrics PANfm's /metrics serves (CATALOGUE, docs/monitoring.md) or Prometheus itself makes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import require
from helpers.monitoring import (
    CATALOGUE,
    GRAFANA,
    PROMETHEUS,
    PROMETHEUS_OWN,
    alerting_rules,
    all_panels,
    dashboard,
    dashboard_exprs,
    grafana_to_promql,
    metric_names,
)


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
    assert len(uncommented) == 1 and "job_name: panfm-devices" in uncommented[0]  # the clock job is live
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



def test_the_monitoring_override_gives_web_and_clock_prometheus_token_and_the_clock_its_port():
    import config

    base = yaml.safe_load((PROMETHEUS.parent.parent / "docker-compose.yml").read_text())
    override = yaml.safe_load((PROMETHEUS.parent / "compose.monitoring.yml").read_text())
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    secret_path = "/run/secrets/panfm_metrics_token"
    # Only web and clock are touched, and only with what the base file defines (the secret).
    assert set(override["services"]) == {"panfm", "panfm-clock"} <= set(base["services"])
    assert "panfm_metrics_token" in base["secrets"] and "secrets" not in override
    assert base["services"]["prometheus"]["secrets"] == ["panfm_metrics_token"]
    for name, svc in override["services"].items():
        assert svc["secrets"] == ["panfm_metrics_token"], name
        assert svc["environment"]["PANFM_METRICS_TOKEN_FILE"] == secret_path, name
        # The secret stays out of the base services: a plain `docker compose up` needs no token file.
        assert "secrets" not in base["services"][name], name
    # The same file on both sides: what PANfm compares is what Prometheus sends.
    assert jobs["panfm"]["authorization"]["credentials_file"] == secret_path
    assert jobs["panfm-clock"]["authorization"] == {"type": "Bearer", "credentials_file": secret_path}
    # The clock listens where Prometheus looks, and the value is a valid setting.
    env = override["services"]["panfm-clock"]["environment"]
    port = config.load_settings(env={"PANFM_CLOCK_METRICS_PORT": env["PANFM_CLOCK_METRICS_PORT"]}).clock_metrics_port
    assert jobs["panfm-clock"]["static_configs"][0]["targets"] == [f"panfm-clock:{port}"]


def test_a_token_file_read_as_the_override_sets_it_becomes_metrics_token(tmp_path):
    import config

    token = tmp_path / "panfm_metrics_token"
    token.write_text("0123456789abcdef0123456789abcdef\n")  # as `openssl rand -hex 16 >` writes it
    settings = config.load_settings(env={"PANFM_METRICS_TOKEN_FILE": str(token)})
    assert settings.metrics_token == "0123456789abcdef0123456789abcdef"
