"""Devices API: validation per field, partial updates keeping secrets, no secret in any answer, test connection."""

from __future__ import annotations

import re
import time

import pytest
from helpers.devices import INITIAL, NEW, make_client

from panfm.storage.samples import HISTORY_DB, SampleStore

FP = "0f" * 32
API_KEY = "LUFRPT1-very-secret-api-key-value=="
DEV_PASSWORD = "device-admin-Passw0rd!"
XSS = "<script>alert(1)</script>"


def body(**extra):
    return {"name": "edge-1", "host": "192.0.2.1", "api_key": API_KEY,
            "tls": {"mode": "pin", "fingerprint_sha256": FP}, **extra}


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)[1]


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory):
    """A client for requests that change nothing (refused input, connection tests)."""
    return make_client(tmp_path_factory.mktemp("data"))[1]


def test_it_adds_lists_updates_and_deletes_a_device(client):
    r = client.post("/api/devices", json=body(interfaces=["ethernet1/1"]))
    assert r.status_code == 201
    device_id = r.get_json()["id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", device_id)
    (listed,) = client.get("/api/devices").get_json()["devices"]
    assert listed == {
        "id": device_id, "name": "edge-1", "host": "192.0.2.1", "port": 443, "enabled": True,
        "interfaces": ["ethernet1/1"], "uplinks": [], "auth": "api_key",
        "tls": {"mode": "pin", "fingerprint_sha256": FP},
        "status": {"state": "unknown", "last_poll": None, "last_success": None, "last_error": None}, "info": None,
        "polled_by": None,
    }
    r = client.put(f"/api/devices/{device_id}", json={"enabled": False, "port": 8443, "api_key": API_KEY})
    assert r.status_code == 200
    after = client.get(f"/api/devices/{device_id}").get_json()
    assert after["enabled"] is False and after["port"] == 8443 and after["name"] == "edge-1"
    assert client.delete(f"/api/devices/{device_id}").status_code == 200
    assert client.get("/api/devices").get_json() == {"devices": []}
    assert client.delete(f"/api/devices/{device_id}").status_code == 404
    assert client.put(f"/api/devices/{device_id}", json={"enabled": True}).status_code == 404


def test_it_stores_uplink_marks_and_refuses_what_is_no_interface_name(client):
    device_id = client.post("/api/devices", json=body(uplinks=["ethernet1/1"])).get_json()["id"]
    assert client.get(f"/api/devices/{device_id}").get_json()["uplinks"] == ["ethernet1/1"]
    r = client.put(f"/api/devices/{device_id}", json={"uplinks": ["ethernet1/1", "<script>"]})
    assert r.status_code == 400 and "uplinks" in r.get_json()["fields"]
    assert client.get(f"/api/devices/{device_id}").get_json()["uplinks"] == ["ethernet1/1"]  # nothing lost
    assert client.put(f"/api/devices/{device_id}", json={"uplinks": ["ethernet1/2", "ae1"]}).status_code == 200
    assert client.get(f"/api/devices/{device_id}").get_json()["uplinks"] == ["ethernet1/2", "ae1"]
    # An edit that does not name uplinks keeps them.
    assert client.put(f"/api/devices/{device_id}", json={"name": "edge-2"}).status_code == 200
    assert client.get(f"/api/devices/{device_id}").get_json()["uplinks"] == ["ethernet1/2", "ae1"]


def test_it_keeps_the_stored_secret_when_an_update_omits_it(tmp_path):
    app, client = make_client(tmp_path)
    device_id = client.post("/api/devices", json=body()).get_json()["id"]
    client.put(f"/api/devices/{device_id}", json={"name": "edge-renamed"})
    stored = app.extensions["panfm"].devices.get(device_id)
    assert stored.api_key == API_KEY and stored.name == "edge-renamed"
    client.put(f"/api/devices/{device_id}", json={"username": "monitor", "password": DEV_PASSWORD})
    stored = app.extensions["panfm"].devices.get(device_id)
    assert (stored.api_key, stored.username, stored.password) == (None, "monitor", DEV_PASSWORD)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"host": "https://fw.example.com/"}, "host"),
        ({"host": "bad host"}, "host"),
        ({"host": ""}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": "443"}, "port"),
        ({"api_key": None}, "api_key"),
        ({"api_key": None, "username": "monitor"}, "password"),
        ({"tls": {"mode": "pin", "fingerprint_sha256": "abc"}}, "tls.fingerprint_sha256"),
        ({"tls": {"mode": "verify", "ca_pem": "not a certificate"}}, "tls.ca_pem"),
        ({"tls": {"mode": "trust-me"}}, "tls.mode"),
        ({"tls": None}, "tls"),
        ({"name": ""}, "name"),
        ({"interfaces": ["ethernet1/1", "<b>"]}, "interfaces"),
        ({"enabled": "yes"}, "enabled"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_it_rejects_bad_input_with_a_message_per_field(shared_client, change, field):
    doc = {k: v for k, v in {**body(), **change}.items() if v is not None}
    r = shared_client.post("/api/devices", json=doc)
    assert r.status_code == 400, r.get_json()
    answer = r.get_json()
    assert answer["error"] == "invalid" and field in answer["fields"] and answer["fields"][field]


def test_it_rejects_duplicate_names_and_host_ports(client):
    assert client.post("/api/devices", json=body()).status_code == 201
    r = client.post("/api/devices", json=body(host="192.0.2.2"))
    assert r.status_code == 400 and "name" in r.get_json()["fields"]
    r = client.post("/api/devices", json=body(name="edge-2"))
    assert r.status_code == 400 and "host" in r.get_json()["fields"]
    assert client.post("/api/devices", json=body(name="edge-2", port=8443)).status_code == 201


def test_it_accepts_fingerprints_with_colons_and_ipv6_hosts(client):
    colons = ":".join(["AB"] * 32)
    r = client.post("/api/devices", json=body(host="2001:db8::1", tls={"mode": "pin", "fingerprint_sha256": colons}))
    assert r.status_code == 201
    (d,) = client.get("/api/devices").get_json()["devices"]
    assert d["tls"]["fingerprint_sha256"] == "ab" * 32 and d["host"] == "2001:db8::1"


def test_it_never_returns_a_secret(tmp_path):
    app, client = make_client(tmp_path)
    a = client.post("/api/devices", json=body()).get_json()["id"]
    client.post("/api/devices", json=body(name="edge-2", host="192.0.2.3", api_key=None, username="monitor",
                                          password=DEV_PASSWORD))
    secrets_ = [API_KEY, DEV_PASSWORD, NEW, INITIAL, app.config["SECRET_KEY"], "gAAAAA"]
    secrets_ += (tmp_path / "encryption.key").read_text().split()
    paths = ["/api/devices", f"/api/devices/{a}", "/api/overview", "/api/settings", "/api/clock", "/api/health",
             "/api/version", f"/api/throughput?device_id={a}", f"/api/interfaces?device_id={a}",
             f"/api/throughput/history?device_id={a}", f"/api/throughput/history/export?device_id={a}",
             "/", "/devices", f"/firewall/{a}", "/settings", "/clock", "/alerts"]
    for path in paths:
        r = client.get(path)
        assert r.status_code in (200, 503), (path, r.status_code)
        text = r.get_data(as_text=True)
        for secret in secrets_:
            assert secret not in text, (path, secret[:6])
    r = client.put(f"/api/devices/{a}", json={"name": "edge-x"})
    assert API_KEY not in r.get_data(as_text=True)


def test_it_keeps_a_hostile_firewall_hostname_inert(tmp_path):
    _, client = make_client(tmp_path)
    device_id = client.post("/api/devices", json=body()).get_json()["id"]
    store = SampleStore.open(tmp_path / HISTORY_DB)
    try:
        store.write_inventory(device_id, time.time(), {
            "system": {"hostname": XSS, "model": XSS, "serial": "1", "sw_version": "11.1.0", "uptime_seconds": 5},
            "ha": {"enabled": False, "local_state": XSS},
            "interfaces": [{"name": "ethernet1/1", "kind": "physical", "zone": XSS, "state": "up"}],
        })
    finally:
        store.close()
    api = ["/api/devices", f"/api/devices/{device_id}", f"/api/interfaces?device_id={device_id}", "/api/overview"]
    pages = ["/", "/devices", f"/firewall/{device_id}"]
    for path in api + pages:
        r = client.get(path)
        assert r.status_code == 200, path
        assert "<script>alert(1)" not in r.get_data(as_text=True), path
    info = client.get(f"/api/devices/{device_id}").get_json()["info"]
    assert info["hostname"] == XSS and info["ha_state"] == XSS, "escaped on the wire, intact once parsed"


def test_it_tests_a_connection_and_shows_the_fingerprint(shared_client, sim_fleet):
    client = shared_client
    entry = sim_fleet.inventory[0]
    r = client.post("/api/devices/test", json={"host": entry["host"], "port": entry["port"]})
    assert r.status_code == 200
    first = r.get_json()
    assert first["reachable"] is True and first["fingerprint_sha256"] == entry["tls_fingerprint_sha256"]
    tls = {"mode": "pin", "fingerprint_sha256": first["fingerprint_sha256"]}
    target = {"host": entry["host"], "port": entry["port"]}
    r = client.post("/api/devices/test", json={**target, "api_key": entry["api_key"], "tls": tls})
    full = r.get_json()
    assert full["reachable"] is True and "error" not in full
    assert full["model"] == entry["model"] and full["hostname"] and full["sw_version"]


def test_it_reports_coarse_errors_from_a_connection_test(shared_client, sim_fleet):
    client = shared_client
    entry = sim_fleet.inventory[0]
    wrong = client.post("/api/devices/test", json={"host": entry["host"], "port": entry["port"],
                                                   "api_key": "wrong-key-123"}).get_json()
    assert wrong["reachable"] is True and wrong["error"] == "auth_failed"
    assert "wrong-key-123" not in str(wrong)
    pinned = client.post("/api/devices/test", json={"host": entry["host"], "port": entry["port"],
                                                    "api_key": entry["api_key"],
                                                    "tls": {"mode": "pin", "fingerprint_sha256": FP}}).get_json()
    assert pinned["error"] == "fingerprint_mismatch"
    closed = client.post("/api/devices/test", json={"host": "127.0.0.1", "port": 1}).get_json()
    assert closed == {"reachable": False, "fingerprint_sha256": None, "hostname": None, "model": None,
                      "sw_version": None, "error": "unreachable", "message": closed["message"]}
