"""Alerts API: shapes, per-field validation with nothing stored, masked channel secrets, acknowledgements."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SIM_NETWORKS
from helpers.alerts import Receiver

import config
from app import create_app
from panfm.alerting.run import run_evaluation
from panfm.models import CycleResult, DeviceStatus
from panfm.storage.alerts_store import ALERTS_DB

INITIAL = "initial-password-1"
NEW = "a-much-better-password"
FP = "0f" * 32
SECRET = "Zq9SecretTok3n"
URL = f"json://panfm:{SECRET}@127.0.0.1:9/hook?token={SECRET}x"


def make_client(data_dir: Path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(data_dir), "admin_password": INITIAL,
                                                       "allowed_device_networks": SIM_NETWORKS})
    app = create_app(settings)
    client = app.test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    r = client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 200
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return app, client


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)[1]


@pytest.fixture(scope="module")
def refusing(tmp_path_factory):
    """One app for requests that must store nothing (each test checks that it did not)."""
    data_dir = tmp_path_factory.mktemp("data")
    return data_dir, make_client(data_dir)[1]


def add_device(client, name="edge-1", host="192.0.2.1") -> str:
    r = client.post("/api/devices", json={"name": name, "host": host, "api_key": "k-123",
                                          "tls": {"mode": "pin", "fingerprint_sha256": FP}})
    assert r.status_code == 201
    return r.get_json()["id"]


def cpu_rule(**extra: Any) -> dict[str, Any]:
    return {"name": "CPU high", "metric": "cpu_dataplane_pct", "operator": ">", "threshold": 80,
            "severity": "warning", **extra}


def raw_config(data_dir: Path) -> bytes:
    """Every byte of config.db and its WAL: what a thief of the disk would read."""
    return b"".join(p.read_bytes() for p in data_dir.glob("config.db*"))


def test_it_creates_lists_edits_and_deletes_a_rule(client):
    device_id = add_device(client)
    r = client.post("/api/alerts/rules", json=cpu_rule(device_id=device_id, clear_threshold=70, for_s=60))
    assert r.status_code == 201
    rule = r.get_json()
    assert rule == {"id": rule["id"], "name": "CPU high", "device_id": device_id, "metric": "cpu_dataplane_pct",
                    "operator": ">", "threshold": 80.0, "clear_threshold": 70.0, "for_s": 60, "repeat_s": 0,
                    "severity": "warning", "channel_ids": [], "enabled": True}
    assert client.get("/api/alerts/rules").get_json() == {"rules": [rule]}
    r = client.put(f"/api/alerts/rules/{rule['id']}", json={"threshold": 95, "enabled": False, "id": "other"})
    assert r.status_code == 200
    assert r.get_json() == {**rule, "threshold": 95.0, "enabled": False}
    assert client.get("/api/alerts/rules").get_json()["rules"][0]["threshold"] == 95.0
    assert client.delete(f"/api/alerts/rules/{rule['id']}").get_json() == {"deleted": rule["id"]}
    assert client.get("/api/alerts/rules").get_json() == {"rules": []}
    for method in ("put", "delete"):
        r = getattr(client, method)(f"/api/alerts/rules/{rule['id']}", json={"threshold": 1})
        assert r.status_code == 404 and r.get_json()["error"] == "not_found"


def test_it_takes_an_event_rule_without_operator_or_threshold(client):
    r = client.post("/api/alerts/rules", json={"name": "Unreachable", "metric": "device_unreachable",
                                                "severity": "critical"})
    assert r.status_code == 201
    body = r.get_json()
    assert body["device_id"] is None and "threshold" not in body and "operator" not in body


@pytest.mark.parametrize(("body", "fields"), [
    ({}, {"name", "metric"}),
    (cpu_rule(operator="=="), {"operator"}),
    (cpu_rule(threshold="high"), {"threshold"}),
    (cpu_rule(clear_threshold=90), {"clear_threshold"}),
    (cpu_rule(for_s=-1, repeat_s=30), {"for_s", "repeat_s"}),
    (cpu_rule(severity="panic", enabled="yes"), {"severity", "enabled"}),
    (cpu_rule(device_id="no-such-device"), {"device_id"}),
    (cpu_rule(channel_ids=["no-such-channel"]), {"channel_ids"}),
    (cpu_rule(channel_ids="all"), {"channel_ids"}),
    (cpu_rule(name="x" * 100_000), {"name"}),
    (cpu_rule(name="bell\x07"), {"name"}),
    (cpu_rule(colour="red"), {"colour"}),
    (cpu_rule(metric="cpu_percent"), {"metric"}),
    ({"name": "u", "metric": "device_unreachable", "threshold": 1}, {"threshold"}),
])
def test_it_refuses_a_bad_rule_with_a_message_per_field_and_stores_nothing(refusing, body, fields):
    tmp_path, client = refusing
    before = raw_config(tmp_path)
    r = client.post("/api/alerts/rules", json=body)
    assert r.status_code == 400, r.get_json()
    answer = r.get_json()
    assert answer["error"] == "invalid" and answer["message"]
    assert set(answer["fields"]) == fields and all(answer["fields"].values())
    assert client.get("/api/alerts/rules").get_json() == {"rules": []}
    assert raw_config(tmp_path).count(b"CPU high") == before.count(b"CPU high") == 0


def test_it_refuses_a_lone_surrogate_escaped_in_json(refusing):
    client = refusing[1]
    raw = json.dumps(cpu_rule(name="@@")).replace("@@", "\\ud800")
    r = client.post("/api/alerts/rules", data=raw, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"] == "invalid"
    assert client.get("/api/alerts/rules").get_json() == {"rules": []}


def test_it_refuses_bodies_that_are_not_objects(refusing):
    client = refusing[1]
    for data in ("[1, 2]", '"rule"', "not json", "null"):
        for path in ("/api/alerts/rules", "/api/alerts/channels", "/api/alerts/maintenance",
                     "/api/alerts/rules/apply-template"):
            r = client.post(path, data=data, content_type="application/json")
            assert r.status_code == 400 and r.get_json()["fields"] == {"body": "a JSON object"}, (path, data)


def test_it_applies_a_template_to_one_device(client):
    device_id = add_device(client)
    r = client.post("/api/alerts/rules/apply-template", json={"template": "system-health", "device_id": device_id})
    assert r.status_code == 201
    created = r.get_json()["rules"]
    assert {c["metric"] for c in created} >= {"device_unreachable", "cpu_dataplane_pct", "tls_fingerprint_changed"}
    assert all(c["device_id"] == device_id and c["id"] for c in created)
    assert len(client.get("/api/alerts/rules").get_json()["rules"]) == len(created)
    r = client.post("/api/alerts/rules/apply-template", json={"template": "everything", "device_id": "nope"})
    assert r.status_code == 400 and set(r.get_json()["fields"]) == {"template", "device_id"}
    assert len(client.get("/api/alerts/rules").get_json()["rules"]) == len(created)


def test_it_never_answers_or_stores_a_channel_secret_in_clear(tmp_path):
    app, client = make_client(tmp_path)
    r = client.post("/api/alerts/channels", json={"name": "ops hook", "url": URL})
    assert r.status_code == 201
    channel = r.get_json()
    assert channel == {"id": channel["id"], "name": "ops hook", "url": "json://127.0.0.1/••••", "enabled": True}
    r = client.put(f"/api/alerts/channels/{channel['id']}", json={"name": "ops", "url": channel["url"]})
    assert r.status_code == 200 and r.get_json()["name"] == "ops"
    r = client.put(f"/api/alerts/channels/{channel['id']}", json={"enabled": False})
    assert r.get_json() == {**channel, "name": "ops", "enabled": False}
    stored = app.extensions["panfm"].box.decrypt(
        json.loads(sqlite3.connect(tmp_path / "config.db").execute("SELECT doc FROM alert_channels").fetchone()[0])
        ["url_enc"])
    assert stored == URL, "an edit without a new URL keeps the stored one"
    sqlite3.connect(tmp_path / "config.db").close()
    answers = [client.get("/api/alerts/channels"), client.post(f"/api/alerts/channels/{channel['id']}/test")]
    test = answers[1].get_json()
    assert test["ok"] is False and test["error"], "port 9 on loopback refuses: the send must fail"
    for answer in answers:
        assert SECRET not in answer.get_data(as_text=True)
    assert SECRET.encode() not in raw_config(tmp_path)


def test_it_refuses_bad_channels_per_field(refusing):
    client = refusing[1]
    for body, fields in [
        ({"name": "x"}, {"url"}),
        ({"name": "x", "url": "not a url"}, {"url"}),
        ({"name": "x", "url": "nosuchscheme://host/path"}, {"url"}),
        ({"url": URL, "enabled": 1, "token": "t"}, {"name", "enabled", "token"}),
    ]:
        r = client.post("/api/alerts/channels", json=body)
        assert r.status_code == 400 and set(r.get_json()["fields"]) == fields, body
    assert client.get("/api/alerts/channels").get_json() == {"channels": []}
    assert client.post("/api/alerts/channels/nope/test").status_code == 404
    assert client.put("/api/alerts/channels/nope", json={"name": "x"}).status_code == 404


def test_it_keeps_a_mistyped_channel_url_out_of_the_logs(refusing, caplog):
    client = refusing[1]
    caplog.set_level(logging.DEBUG)
    r = client.post("/api/alerts/channels", json={"name": "typo", "url": f"slakc://{SECRET}/B1/C1"})
    assert r.status_code == 400 and set(r.get_json()["fields"]) == {"url"}
    assert SECRET not in caplog.text and SECRET not in r.get_data(as_text=True)


def test_it_sends_a_test_message_through_a_channel(client):
    receiver = Receiver()
    try:
        url = receiver.url
        channel_id = client.post("/api/alerts/channels", json={"name": "hook", "url": url}).get_json()["id"]
        r = client.post(f"/api/alerts/channels/{channel_id}/test")
        assert r.get_json() == {"ok": True, "error": None}
        assert len(receiver.accepted) == 1 and "test" in receiver.accepted[0]["title"].lower()
    finally:
        receiver.close()


def test_it_removes_a_deleted_channel_from_the_rules(client):
    channel_id = client.post("/api/alerts/channels", json={"name": "c", "url": URL}).get_json()["id"]
    rule = client.post("/api/alerts/rules", json=cpu_rule(channel_ids=[channel_id])).get_json()
    assert rule["channel_ids"] == [channel_id]
    assert client.delete(f"/api/alerts/channels/{channel_id}").status_code == 200
    assert client.get("/api/alerts/rules").get_json()["rules"][0]["channel_ids"] == []
    assert client.delete(f"/api/alerts/channels/{channel_id}").status_code == 404


def test_it_keeps_maintenance_windows(client):
    device_id = add_device(client)
    once = {"name": "upgrade", "device_id": device_id, "kind": "once", "start": "2030-05-01T22:00:00Z",
            "end": "2030-05-02T02:00:00Z"}
    r = client.post("/api/alerts/maintenance", json=once)
    assert r.status_code == 201
    created = r.get_json()
    assert created == {"id": created["id"], **once}
    weekly = {"kind": "weekly", "weekdays": ["sun", "sat"], "start_time": "23:00", "duration_s": 7200}
    second = client.post("/api/alerts/maintenance", json=weekly).get_json()
    assert second["weekdays"] == ["sat", "sun"] and second["device_id"] is None
    assert len(client.get("/api/alerts/maintenance").get_json()["windows"]) == 2
    for body, fields in [
        ({**once, "end": "2030-05-01T21:00:00Z"}, {"end"}),
        ({**once, "device_id": "ghost"}, {"device_id"}),
        ({"kind": "weekly", "weekdays": ["caturday"], "start_time": "25:00"}, {"weekdays", "start_time", "duration_s"}),
        ({"kind": "daily"}, {"kind"}),
    ]:
        r = client.post("/api/alerts/maintenance", json=body)
        assert r.status_code == 400 and set(r.get_json()["fields"]) == fields, body
    assert client.delete(f"/api/alerts/maintenance/{created['id']}").status_code == 200
    assert client.delete(f"/api/alerts/maintenance/{created['id']}").status_code == 404
    assert len(client.get("/api/alerts/maintenance").get_json()["windows"]) == 1


def fire_unreachable(app, client, device_id: str) -> str:
    """Play the clock: a device_unreachable rule fires for a down device; return the alert id."""
    rule = client.post("/api/alerts/rules", json={"name": "Gone", "metric": "device_unreachable",
                                                   "severity": "critical", "device_id": device_id}).get_json()
    now = time.time()
    cycle = CycleResult(started=now, finished=now, samples=(), interfaces=(), baselines=(),
                        statuses=(DeviceStatus(device_id, "down", last_error="timeout", consecutive_failures=3),))
    run_evaluation(Path(app.config["PANFM_SETTINGS"].data_path) / ALERTS_DB, [rule], [], [], cycle, {}, now)
    (alert,) = client.get("/api/alerts/active").get_json()["alerts"]
    return str(alert["id"])


def test_it_lists_active_alerts_and_counts_them_on_the_overview(tmp_path):
    app, client = make_client(tmp_path)
    device_id = add_device(client)
    assert client.get("/api/alerts/active").get_json() == {"alerts": []}
    assert client.get("/api/overview").get_json()["devices"][0]["active_alerts"] is None
    alert_id = fire_unreachable(app, client, device_id)
    (alert,) = client.get("/api/alerts/active").get_json()["alerts"]
    contract = {"id", "rule_id", "device_id", "metric", "state", "severity", "value", "threshold", "started_at"}
    assert contract <= set(alert)
    assert (alert["id"], alert["device_id"], alert["state"], alert["metric"]) == (
        alert_id, device_id, "firing", "device_unreachable")
    assert alert["device_name"] == "edge-1" and alert["rule_name"] == "Gone"
    assert alert["started_at"].endswith("Z")
    assert client.get("/api/overview").get_json()["devices"][0]["active_alerts"] == 1


def test_it_records_the_session_user_on_acknowledge_not_a_name_from_the_body(tmp_path):
    app, client = make_client(tmp_path)
    device_id = add_device(client)
    assert client.post("/api/alerts/some-id/acknowledge").status_code == 404  # no alerts.db yet
    alert_id = fire_unreachable(app, client, device_id)
    r = client.post(f"/api/alerts/{alert_id}/acknowledge", json={"username": "mallory"})
    assert r.status_code == 200 and r.get_json()["acknowledged_by"] == "admin"
    (alert,) = client.get("/api/alerts/active").get_json()["alerts"]
    assert [a["username"] for a in alert["acknowledgements"]] == ["admin"]
    (incident,) = client.get(f"/api/alerts/history?device_id={device_id}").get_json()["history"]
    assert incident["id"] == alert_id and [a["username"] for a in incident["acknowledgements"]] == ["admin"]
    assert client.post("/api/alerts/no-such-alert/acknowledge").status_code == 404


def test_it_filters_history_and_refuses_bad_filters(tmp_path):
    app, client = make_client(tmp_path)
    device_id = add_device(client)
    fire_unreachable(app, client, device_id)
    assert len(client.get("/api/alerts/history").get_json()["history"]) == 1
    assert client.get("/api/alerts/history?severity=warning").get_json() == {"history": []}
    assert client.get("/api/alerts/history?device_id=other").get_json() == {"history": []}
    assert len(client.get("/api/alerts/history?since=2020-01-01T00:00:00Z&severity=critical")
               .get_json()["history"]) == 1
    r = client.get("/api/alerts/history?severity=panic&limit=0")
    assert r.status_code == 400 and set(r.get_json()["fields"]) == {"severity", "limit"}
    r = client.get("/api/alerts/history?since=yesterday")
    assert r.status_code == 400 and set(r.get_json()["fields"]) == {"since"}


def test_a_damaged_alerts_db_answers_503_not_500(tmp_path):
    from app import create_app
    from config import load_settings

    settings = load_settings(env={"PANFM_DATA_DIR": str(tmp_path), "PANFM_ADMIN_PASSWORD": "initial-password-x"})
    app = create_app(settings)
    (tmp_path / "alerts.db").write_bytes(b"this is not a database" * 100)
    client = app.test_client()
    r = client.post("/api/login", json={"username": "admin", "password": "initial-password-x"})
    token = r.get_json()["csrf_token"]
    client.post("/api/change-password", json={"old_password": "initial-password-x",
                                              "new_password": "a-much-longer-password"},
                headers={"X-CSRFToken": token})
    client.post("/api/login", json={"username": "admin", "password": "a-much-longer-password"})
    for path in ("/api/alerts/active", "/api/alerts/history"):
        r = client.get(path)
        assert r.status_code == 503, (path, r.status_code)
        assert r.get_json()["error"] == "alerts_unavailable"
    assert client.get("/api/overview").status_code == 200
