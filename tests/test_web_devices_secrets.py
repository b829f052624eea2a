"""Stored device secrets go only where they were given: same host, port and TLS, else the credential again.

A second loopback HTTPS server records every byte of every request it receives: a connection
test or a saved edit that points a device at it must never deliver the stored API key or
password there.
"""

from __future__ import annotations

import logging

import pytest
from helpers.devices import Recorder, make_client


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def _add(client, entry, **creds) -> str:
    body = {"name": entry["name"], "host": entry["host"], "port": entry["port"],
            "tls": {"mode": "pin", "fingerprint_sha256": entry["tls_fingerprint_sha256"]}, **creds}
    r = client.post("/api/devices", json=body)
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def _secrets(entry) -> list[bytes]:
    return [entry["api_key"].encode(), entry["password"].encode()]


@pytest.mark.parametrize("auth", ["api_key", "password"])
def test_it_never_sends_stored_secrets_to_a_new_host_in_a_connection_test(tmp_path, sim_fleet, recorder, auth):
    _, client = make_client(tmp_path)
    entry = sim_fleet.inventory[0]
    creds = {"api_key": entry["api_key"]} if auth == "api_key" else {
        "username": entry["username"], "password": entry["password"]}
    device_id = _add(client, entry, **creds)
    moved = {"host": "127.0.0.1", "port": recorder.port, "device_id": device_id}
    for extra in ({}, {"tls": {"mode": "insecure"}}, {"username": entry["username"]}):
        r = client.post("/api/devices/test", json={**moved, **extra})
        assert r.status_code == 400, r.get_json()
        fields = r.get_json()["fields"]
        assert fields.get("api_key" if auth == "api_key" and "username" not in extra else "password")
    for secret in _secrets(entry):
        assert secret not in recorder.received
    assert recorder.requests == []


def test_it_keeps_testing_with_stored_secrets_at_the_same_address(tmp_path, sim_fleet):
    _, client = make_client(tmp_path)
    entry = sim_fleet.inventory[0]
    device_id = _add(client, entry, api_key=entry["api_key"])
    same = {"host": entry["host"], "port": entry["port"], "device_id": device_id}
    ok = client.post("/api/devices/test", json=same).get_json()
    assert ok["reachable"] is True and "error" not in ok and ok["model"] == entry["model"]
    # A different TLS choice is a different destination too (a man in the middle could present it).
    r = client.post("/api/devices/test", json={**same, "tls": {"mode": "insecure"}})
    assert r.status_code == 400 and "api_key" in r.get_json()["fields"]


def test_it_tests_a_stored_device_with_its_stored_tls_not_the_certificate_it_sees(tmp_path, sim_fleet, recorder):
    # The recorder stands at the stored address: same host and port, another certificate. The
    # stored pin must refuse it before a request (with the key) is sent.
    _, client = make_client(tmp_path)
    entry = sim_fleet.inventory[0]
    stored = {"name": "edge", "host": "127.0.0.1", "port": recorder.port, "api_key": entry["api_key"],
              "tls": {"mode": "pin", "fingerprint_sha256": entry["tls_fingerprint_sha256"]}}
    device_id = client.post("/api/devices", json=stored).get_json()["id"]
    answer = client.post("/api/devices/test", json={"host": "127.0.0.1", "port": recorder.port,
                                                    "device_id": device_id}).get_json()
    assert answer["error"] == "fingerprint_mismatch" and answer["fingerprint_sha256"] == recorder.fingerprint
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("change", "auth", "field"),
    [
        ({"host": "127.0.0.2"}, "api_key", "api_key"),
        ({"port": 1}, "api_key", "api_key"),
        ({"tls": {"mode": "insecure"}}, "api_key", "api_key"),
        ({"tls": {"mode": "pin", "fingerprint_sha256": "ab" * 32}}, "api_key", "api_key"),
        ({"host": "127.0.0.2"}, "password", "password"),
        ({"host": "127.0.0.2", "username": "other"}, "password", "password"),
        ({"tls": {"mode": "verify"}}, "password", "password"),
    ],
)
def test_it_refuses_to_keep_stored_secrets_when_the_destination_changes(tmp_path, sim_fleet, change, auth, field):
    app, client = make_client(tmp_path)
    entry = sim_fleet.inventory[0]
    creds = {"api_key": entry["api_key"]} if auth == "api_key" else {
        "username": entry["username"], "password": entry["password"]}
    device_id = _add(client, entry, **creds)
    before = app.extensions["panfm"].devices.get(device_id)
    r = client.put(f"/api/devices/{device_id}", json=change)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["fields"][field], r.get_json()
    assert app.extensions["panfm"].devices.get(device_id) == before, "a refused edit changes nothing"


def test_it_moves_a_device_when_the_credential_comes_again_and_logs_who_did(tmp_path, sim_fleet, recorder, caplog):
    app, client = make_client(tmp_path)
    entry = sim_fleet.inventory[0]
    device_id = _add(client, entry, api_key=entry["api_key"])
    same = {"name": "renamed", "enabled": False, "host": entry["host"], "port": entry["port"],
            "tls": {"mode": "pin", "fingerprint_sha256": entry["tls_fingerprint_sha256"].upper()}}
    assert client.put(f"/api/devices/{device_id}", json=same).status_code == 200, "an unchanged target keeps secrets"
    assert app.extensions["panfm"].devices.get(device_id).api_key == entry["api_key"]
    new_key = "LUFRPT1-the-key-of-the-new-box=="
    move = {"host": "127.0.0.1", "port": recorder.port, "api_key": new_key,
            "tls": {"mode": "pin", "fingerprint_sha256": recorder.fingerprint}}
    with caplog.at_level(logging.INFO, logger="panfm.web"):
        r = client.put(f"/api/devices/{device_id}", json=move)
    assert r.status_code == 200, r.get_json()
    stored = app.extensions["panfm"].devices.get(device_id)
    assert (stored.host, stored.port, stored.api_key) == ("127.0.0.1", recorder.port, new_key)
    (line,) = [rec.getMessage() for rec in caplog.records if "moved" in rec.getMessage()]
    assert "'admin'" in line and device_id in line
    assert f"{entry['host']}:{entry['port']}" in line and f"127.0.0.1:{recorder.port}" in line
    assert entry["api_key"] not in caplog.text and new_key not in caplog.text
