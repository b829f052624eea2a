"""GET /metrics over a data folder the real clock wrote while polling the simulator."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess

import pytest
from conftest import SIM_NETWORKS, require
from helpers.alerts import INITIAL, Clock
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

import config
import panfm.ops as ops
from app import create_app
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.samples import HISTORY_DB, SampleReader
from throughput_collector import counted_names

TOKEN = "scrape-token-0123456789abcdef"  # nosec B105 (a test token)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = 'fw "quoted" \\ back\nslash'
HOSTILE_MODEL = 'PA-"440"\\x\nmodel'
RULE = 'Busy "sessions" \\ rule'


def client_for(data_dir, env=None, **overrides):
    overrides = {"metrics_token": TOKEN, **overrides} if env is None else overrides
    settings = config.load_settings(env=env or {}, overrides={
        "data_dir": str(data_dir), "admin_password": INITIAL, "allowed_device_networks": SIM_NETWORKS, **overrides})
    return create_app(settings).test_client()


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in parse_text(body) for s in fam.samples
    }


def named(body: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples(body).items() if n == name}


@pytest.fixture(scope="module")
def polled(tmp_path_factory, sim_fleet):
    """Three simulated firewalls (one named with quotes, a backslash and a newline), polled by the real clock."""
    clk = Clock(tmp_path_factory.mktemp("metrics") / "data")
    entries = sim_fleet.inventory[:3]
    ids = {e["name"]: clk.add_device(e) for e in entries[:2]}
    hostile = entries[2]
    ids[HOSTILE] = clk.ctx.devices.add(DeviceConfig(
        id="", name=HOSTILE, host=hostile["host"], port=hostile["port"], api_key=hostile["api_key"],
        tls=TlsConfig("pin", fingerprint_sha256=hostile["tls_fingerprint_sha256"])))
    web = client_for(clk.ctx.data_dir)
    token = web.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    web.environ_base["HTTP_X_CSRFTOKEN"] = token
    r = web.post("/api/change-password", json={"old_password": INITIAL, "new_password": "a-much-better-password"})
    assert r.status_code == 200
    r = web.post("/api/alerts/rules", json={
        "name": RULE, "metric": "sessions_active", "operator": ">", "threshold": 0, "device_id": ids[HOSTILE],
        "severity": "warning", "for_s": 0, "channel_ids": []})
    assert r.status_code == 201, r.get_json()
    assert ops.collect_slow_once(clk.ctx) == 3
    for _ in range(3):
        clk.cycle()
        clk.offset += 5
    # The inventory job stored what the firewall said; a firewall with odd strings says this instead.
    with SampleReader.open(clk.ctx.data_dir / HISTORY_DB) as reader:
        doc = reader.inventory(ids[HOSTILE])
    assert doc is not None
    doc.pop("collected_at")
    doc["system"]["model"] = HOSTILE_MODEL
    doc["interfaces"][0]["zone"] = 'z"o\\ne\n'
    clk.ctx.store.write_inventory(ids[HOSTILE], clk.ctx.clock(), doc)
    yield clk, ids
    clk.close()


def test_it_refuses_a_scrape_without_a_token_or_with_a_wrong_one_and_never_logs_it(polled, caplog):
    clk, _ = polled
    web = client_for(clk.ctx.data_dir)
    with caplog.at_level(logging.DEBUG):
        for headers in ({}, {"Authorization": "Bearer wrong-token-abc"}, {"Authorization": f"Basic {TOKEN}"},
                        {"Authorization": "Bearer "}):
            r = web.get("/metrics", headers=headers)
            assert r.status_code == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "panfm_" not in r.get_data(as_text=True)
    assert "wrong-token-abc" not in caplog.text
    tokenless = client_for(clk.ctx.data_dir, metrics_token="")
    assert tokenless.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_it_answers_the_token_in_the_text_format_without_a_session(polled):
    clk, ids = polled
    r = client_for(clk.ctx.data_dir).get("/metrics", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    body = r.get_data(as_text=True)
    assert named(body, "panfm_up") == {(): 1.0}
    up = named(body, "panfm_device_up")
    assert up == {(("device", name),): 1.0 for name in ids}
    assert named(body, "panfm_clock_devices")[(("state", "up"),)] == 3
    secret_file = clk.ctx.data_dir.parent / "metrics.token"
    secret_file.write_text(TOKEN + "\n")
    from_file = client_for(clk.ctx.data_dir, env={"PANFM_METRICS_TOKEN_FILE": str(secret_file)})
    assert from_file.get("/metrics", headers=AUTH).status_code == 200
    assert from_file.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401


def test_it_serves_anyone_when_metrics_are_public(polled):
    clk, _ = polled
    r = client_for(clk.ctx.data_dir, metrics_token="", metrics_public=True).get("/metrics")
    assert r.status_code == 200
    assert "panfm_up 1.0" in r.get_data(as_text=True)


def test_it_answers_openmetrics_when_the_accept_header_asks(polled):
    clk, _ids = polled
    web = client_for(clk.ctx.data_dir)
    r = web.get("/metrics", headers={**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    body = r.get_data(as_text=True)
    assert body.endswith("# EOF\n")
    fams = {f.name: f for f in parse_openmetrics(body)}
    assert fams["panfm_interface_receive_bytes"].type == "counter"
    assert fams["panfm_device_up"].type == "gauge"


def test_the_counters_are_the_raw_counters_the_clock_stored_for_the_counted_interfaces(polled):
    clk, ids = polled
    body = client_for(clk.ctx.data_dir).get("/metrics", headers=AUTH).get_data(as_text=True)
    with SampleReader.open(clk.ctx.data_dir / HISTORY_DB) as reader:
        baselines = reader.baselines()
    rx = named(body, "panfm_interface_receive_bytes_total")
    tx_packets = named(body, "panfm_interface_transmit_packets_total")
    drops = named(body, "panfm_interface_receive_drops_total")
    expected = set()
    for name, dev_id in ids.items():
        counters = baselines[dev_id].counters
        counted = counted_names(counters, ())
        assert counted, "the simulator has physical ports"
        for iface in counted:
            key = (("device", name), ("interface", iface))
            expected.add(key)
            assert rx[key] == float(counters[iface].ibytes)
            assert tx_packets[key] == float(counters[iface].opackets)
            assert drops[key] == float(counters[iface].idrops)
    assert set(rx) == expected  # counted interfaces only (no logical ones by default)
    info = named(body, "panfm_interface_info")
    assert {(dict(k)["device"], dict(k)["interface"]) for k in info} == {(dict(k)["device"], dict(k)["interface"])
                                                                        for k in expected}


def test_metrics_interfaces_all_shows_every_interface_and_none_shows_none(polled):
    clk, ids = polled
    every = client_for(clk.ctx.data_dir, metrics_interfaces="all").get("/metrics", headers=AUTH).get_data(as_text=True)
    counted = client_for(clk.ctx.data_dir).get("/metrics", headers=AUTH).get_data(as_text=True)
    with SampleReader.open(clk.ctx.data_dir / HISTORY_DB) as reader:
        baselines = reader.baselines()
    rx_all = named(every, "panfm_interface_receive_bytes_total")
    assert len(rx_all) == sum(len(baselines[i].counters) for i in ids.values())
    assert len(rx_all) > len(named(counted, "panfm_interface_receive_bytes_total"))
    nothing = client_for(clk.ctx.data_dir, metrics_interfaces="none").get("/metrics", headers=AUTH)
    assert "panfm_interface_" not in nothing.get_data(as_text=True).replace("# HELP", "").split("# TYPE")[0]
    assert not [k for k in samples(nothing.get_data(as_text=True)) if k[0].startswith("panfm_interface_")]


def test_device_gauges_and_info_come_from_the_stored_sample_and_inventory(polled):
    clk, ids = polled
    body = client_for(clk.ctx.data_dir).get("/metrics", headers=AUTH).get_data(as_text=True)
    with SampleReader.open(clk.ctx.data_dir / HISTORY_DB) as reader:
        latest = reader.latest_all()
        inventory = reader.inventory_all()
    name, dev_id = next(iter(ids.items()))
    s = latest[dev_id]
    dev = (("device", name),)
    assert named(body, "panfm_device_sessions_active")[dev] == s.sessions_active
    assert named(body, "panfm_device_sessions")[(("device", name), ("protocol", "tcp"))] == s.sessions_tcp
    assert named(body, "panfm_device_dataplane_cpu_busiest_percent")[dev] == pytest.approx(s.cpu_dataplane_pct)
    assert named(body, "panfm_device_poll_duration_seconds")[dev] == pytest.approx(s.rtt_ms / 1000)
    system = inventory[dev_id]["system"]
    (labels,) = [dict(k) for k in named(body, "panfm_device_info") if dict(k)["device"] == name]
    assert (labels["serial"], labels["model"], labels["sw_version"]) == (
        system["serial"], system["model"], system["sw_version"])
    assert named(body, "panfm_clock_executions_total")[()] >= 4
    assert 0 <= named(body, "panfm_clock_heartbeat_age_seconds")[()] < 60
    assert not any(v != v for v in samples(body).values()), "no NaN"


def test_hostile_names_models_and_rules_are_escaped_and_read_back_intact(polled):
    clk, _ids = polled
    body = client_for(clk.ctx.data_dir).get("/metrics", headers=AUTH).get_data(as_text=True)
    assert '\\"quoted\\" \\\\ back\\nslash' in body
    (labels,) = [dict(k) for k in named(body, "panfm_device_info") if dict(k)["device"] == HOSTILE]
    assert labels["model"] == HOSTILE_MODEL
    assert 'z"o\\ne\n' in {dict(k)["zone"] for k in named(body, "panfm_interface_info")}
    assert named(body, "panfm_alert_active") == {(("device", HOSTILE), ("rule", RULE), ("severity", "warning")): 1.0}
    for line in body.splitlines():  # every line is a whole comment or sample: no raw newline escaped a label
        assert line.startswith(("# HELP ", "# TYPE ", "panfm_")), line


def test_a_device_query_keeps_one_device_and_refuses_unknown_or_bad_values(polled):
    clk, _ids = polled
    web = client_for(clk.ctx.data_dir)
    r = web.get("/metrics", headers=AUTH, query_string={"device": HOSTILE})
    assert r.status_code == 200
    got = samples(r.get_data(as_text=True))
    assert got[("panfm_up", ())] == 1.0
    devices = {dict(labels).get("device") for (_, labels) in got}
    assert devices == {None, HOSTILE}
    assert not [n for n, _ in got if n.startswith("panfm_clock_")]
    assert ("panfm_alert_active", (("device", HOSTILE), ("rule", RULE), ("severity", "warning"))) in got
    missing = web.get("/metrics", headers=AUTH, query_string={"device": "no-such-firewall"})
    assert missing.status_code == 404
    assert missing.get_data(as_text=True) == "no device of that name\n"
    assert web.get("/metrics?device=%07bell", headers=AUTH).status_code == 404
    for query in ("device=", "device=a&device=b", "devce=fw", f"device={'x' * 300}"):
        assert web.get(f"/metrics?{query}", headers=AUTH).status_code == 400, query
    assert web.get("/metrics?device=x").status_code == 401  # the token comes first


def test_a_device_query_reads_that_devices_rows_only(tmp_path, polled):
    import sqlite3

    clk, ids = polled
    copy = tmp_path / "one-bad-row"  # with the WAL: the clock's writer still holds the newest pages there
    shutil.copytree(clk.ctx.data_dir, copy, ignore=shutil.ignore_patterns("*.lock", "*-shm"))
    with sqlite3.connect(copy / HISTORY_DB) as conn:  # another device's stored counters, damaged
        other = next(i for name, i in ids.items() if name != HOSTILE)
        conn.execute("UPDATE baselines SET counters = 'not json' WHERE device_id = ?", (other,))
    conn.close()
    web = client_for(copy)
    fleet = web.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert named(fleet, "panfm_up") == {(): 0.0}  # the whole-fleet read meets the damaged row
    one = web.get("/metrics", headers=AUTH, query_string={"device": HOSTILE}).get_data(as_text=True)
    assert named(one, "panfm_up") == {(): 1.0}  # the one-device read never reads it
    assert named(one, "panfm_interface_receive_bytes_total")
    assert named(one, "panfm_device_up") == {(("device", HOSTILE),): 1.0}


def test_promtool_finds_no_problem_in_a_real_scrape(polled):
    require(shutil.which("promtool"), "promtool (apt-get install prometheus)")
    clk, _ = polled
    for mode in ("counted", "all"):
        body = client_for(clk.ctx.data_dir, metrics_interfaces=mode).get("/metrics", headers=AUTH).get_data()
        out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30,
                             check=False)
        assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), (out.stdout, out.stderr)


def test_a_missing_or_damaged_database_answers_panfm_up_0_not_a_500(tmp_path, polled):
    clk, _ids = polled
    empty = tmp_path / "empty"
    r = client_for(empty).get("/metrics", headers=AUTH)
    assert r.status_code == 200
    assert named(r.get_data(as_text=True), "panfm_up") == {(): 0.0}
    copy = tmp_path / "damaged"
    shutil.copytree(clk.ctx.data_dir, copy, ignore=shutil.ignore_patterns("*.lock", "*-wal", "*-shm"))
    web = client_for(copy)
    (copy / HISTORY_DB).write_bytes(b"this is not a database" * 100)
    r = web.get("/metrics", headers=AUTH)
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert named(body, "panfm_up") == {(): 0.0}
    assert named(body, "panfm_device_up"), "what could be read is still there: the devices, as not up"
    (copy / HISTORY_DB).unlink()
    (copy / "alerts.db").write_bytes(b"\0garbage" * 512)
    r = web.get("/metrics", headers=AUTH)
    assert r.status_code == 200
    assert named(r.get_data(as_text=True), "panfm_up") == {(): 0.0}


def test_the_collector_is_pure_and_skips_unknown_values():
    from panfm.models import DeviceSample
    from panfm.web.metrics_collector import DeviceView, Snapshot, families

    sample = DeviceSample("d1", 1.0, sessions_active=None, cpu_management_pct=5.0)
    snap = Snapshot(up=True, now=10.0, devices=(DeviceView("fw", state="up", sample=sample),), clock=None)
    got = {s.name: s for fam in families(snap) for s in fam.samples}
    assert "panfm_device_sessions_active" not in got
    assert got["panfm_device_management_cpu_percent"].value == 5.0
    assert not [n for n in got if n.startswith("panfm_clock_")]
    down = dataclasses.replace(snap.devices[0], state="down")
    got = {s.name for fam in families(dataclasses.replace(snap, devices=(down,))) for s in fam.samples}
    assert "panfm_device_management_cpu_percent" not in got and "panfm_device_up" in got
