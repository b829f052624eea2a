"""The test-connection button, the clock and webhooks reach no loopback, link-local, unspecified or multicast address.

Unless `allowed_device_networks` lists it; with networks listed, firewalls must be inside one.
Checked on the resolved address at every connection, with the real simulator (on loopback,
so refused by default) and a loopback HTTPS server that counts the handshakes it gets.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import pytest
from conftest import LOOPBACK, SIM_NETWORKS, device_for
from helpers.alerts import Receiver
from helpers.devices import Recorder

import clock
import config
import panfm.alerting.notify as alerts_notify
from app import create_app
from panfm.models import AddressPolicy
from panfm.storage.config_store import DeviceStore
from panfm.xmlapi.client import AddressNotAllowed, PanosClient, fetch_fingerprint

INITIAL = "initial-password-1"
NEW = "a-much-better-password"
REFUSED = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "169.254.169.254", "fe80::1", "0.0.0.0", "::",
           "0.1.2.3", "224.0.0.251", "ff02::1"]
ALLOWED = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "192.0.2.7", "8.8.8.8", "2001:db8::1", "fd00::1"]


def login(networks: str | None = None, data_dir=None):
    overrides = {"data_dir": str(data_dir), "admin_password": INITIAL}
    if networks is not None:
        overrides["allowed_device_networks"] = networks
    app = create_app(config.load_settings(env={}, overrides=overrides))
    client = app.test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                headers={"X-CSRFToken": token})
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return app, client


def requests_total(fleet, entry) -> int:
    return int(fleet.stats(entry)[entry["name"]]["requests_total"])


# ---- the rule --------------------------------------------------------------------------


@pytest.mark.parametrize("address", REFUSED)
def test_it_refuses_the_four_kinds_of_address_by_default(address):
    assert AddressPolicy().refusal(address)
    assert AddressPolicy().refusal(address, device=False), "webhooks too"


@pytest.mark.parametrize("address", ALLOWED)
def test_it_allows_every_other_address_private_ranges_included(address):
    assert AddressPolicy().refusal(address) is None


def test_listed_networks_are_the_only_ones_for_firewalls_but_only_open_the_four_kinds_for_webhooks():
    policy = AddressPolicy.of(("127.0.0.0/8", "10.0.0.0/8"))
    assert policy.refusal("127.0.0.1") is None and policy.refusal("10.9.9.9") is None
    assert policy.refusal("192.168.1.1") and policy.refusal("::1") and policy.refusal("169.254.169.254")
    assert policy.refusal("192.168.1.1", device=False) is None, "a webhook on the internet stays possible"
    assert policy.refusal("169.254.169.254", device=False)


def test_the_setting_is_a_comma_separated_list_and_a_bad_network_stops_the_start(tmp_path):
    settings = config.load_settings(env={"PANFM_ALLOWED_DEVICE_NETWORKS": " 127.0.0.0/8, 10.0.0.0/8,,::1/128"})
    assert settings.allowed_device_networks == ("127.0.0.0/8", "10.0.0.0/8", "::1/128")
    assert config.load_settings(env={}).allowed_device_networks == ()
    for bad in ("10.0.0.1/8", "localhost", "10.0.0.0/33"):
        with pytest.raises(config.ConfigError, match="allowed_device_networks"):
            config.load_settings(env={"PANFM_ALLOWED_DEVICE_NETWORKS": bad})
    _, client = login(data_dir=tmp_path)
    shown = client.get("/api/settings").get_json()["settings"]["allowed_device_networks"]
    assert shown["value"] == [] and shown["editable"] is False
    r = client.put("/api/settings", json={"allowed_device_networks": ["0.0.0.0/0"]})
    assert r.status_code == 400 and "allowed_device_networks" in r.get_json()["fields"]


# ---- the transport (clock and web alike) -------------------------------------------------


def test_the_client_sends_nothing_to_a_loopback_firewall_unless_allowed(sim_fleet):
    entry = sim_fleet.inventory[1]
    before = requests_total(sim_fleet, entry)
    by_name = dataclasses.replace(device_for(entry, mode="insecure"), host="localhost")
    for device in (device_for(entry), by_name):
        with PanosClient(device, timeout=3) as fw, pytest.raises(AddressNotAllowed, match="loopback"):
            fw.system_info()
    with pytest.raises(AddressNotAllowed):
        fetch_fingerprint(entry["host"], entry["port"], timeout=3)
    assert requests_total(sim_fleet, entry) == before
    with PanosClient(device_for(entry), timeout=3, policy=LOOPBACK) as fw:
        assert fw.system_info().serial == entry["serial"]
    outside = AddressPolicy.of(("10.0.0.0/8",))
    with PanosClient(device_for(entry), timeout=3, policy=outside) as fw, pytest.raises(AddressNotAllowed):
        fw.system_info()


def test_the_clock_refuses_a_loopback_firewall_without_the_setting(tmp_path, sim_fleet):
    entry = sim_fleet.inventory[2]
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "refresh_interval": 5})
    ctx = clock.build_context(settings)
    ctx.load_settings = functools.partial(config.load_settings, env={}, overrides={"data_dir": str(tmp_path)})
    try:
        DeviceStore(tmp_path, config.SecretBox.for_data_dir(tmp_path), clock=time.time).add(device_for(entry))
        before = requests_total(sim_fleet, entry)
        cycle = clock.collect_once(ctx)
        (status,) = cycle.statuses
        assert status.state == "down" and "loopback" in (status.last_error or "")
        assert requests_total(sim_fleet, entry) == before
    finally:
        ctx.collector.close()
        ctx.store.close()


# ---- the test-connection button ------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "0.0.0.0", "224.0.0.1", "::1"])
def test_the_test_button_refuses_those_addresses_with_a_400_naming_the_host(tmp_path, host):
    recorder = Recorder()
    try:
        _, client = login(data_dir=tmp_path)
        port = recorder.port if host in ("127.0.0.1", "localhost") else 443
        r = client.post("/api/devices/test", json={"host": host, "port": port, "api_key": "LUFRPT1-some-key=="})
        assert r.status_code == 400, r.get_json()
        assert "allowed_device_networks" in r.get_json()["fields"]["host"]
        assert recorder.handshakes == 0, "not even a TLS handshake reached the loopback server"
    finally:
        recorder.close()


def test_the_test_button_reaches_loopback_when_the_setting_allows_it(tmp_path, sim_fleet):
    entry = sim_fleet.inventory[0]
    _, client = login(SIM_NETWORKS, tmp_path)
    r = client.post("/api/devices/test", json={"host": entry["host"], "port": entry["port"]})
    assert r.status_code == 200 and r.get_json()["fingerprint_sha256"] == entry["tls_fingerprint_sha256"]


def test_the_test_button_is_rate_limited_per_session(tmp_path):
    _, client = login(data_dir=tmp_path)
    probe = {"host": "169.254.169.254", "port": 80}
    for _ in range(10):
        assert client.post("/api/devices/test", json=probe).status_code == 400
    r = client.post("/api/devices/test", json=probe)
    assert r.status_code == 429
    answer = r.get_json()
    assert answer["error"] == "too_many_attempts" and "connection tests" in answer["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert client.post("/api/devices/test", json={"host": "bad host"}).status_code == 400, "bad input is not counted"
    _, other = login(data_dir=tmp_path / "other")
    assert other.post("/api/devices/test", json=probe).status_code == 400, "another session has its own count"


# ---- notification channels -----------------------------------------------------------------


@pytest.mark.parametrize("url", [
    # Apprise sends to each of these; PANfm offers none of them.
    "xbmc://127.0.0.1", "kodi://10.0.0.1", "gotify://192.0.2.1/token", "file:///etc/passwd",
])
def test_it_refuses_channel_schemes_outside_the_list(tmp_path, url):
    _, client = login(data_dir=tmp_path)
    r = client.post("/api/alerts/channels", json={"name": "x", "url": url})
    assert r.status_code == 400 and "scheme" in r.get_json()["fields"]["url"]


@pytest.mark.parametrize("url", [
    "json://127.0.0.1:9/hook", "jsons://localhost/hook", "xml://169.254.169.254/latest/meta-data",
    "form://[::1]:8080/x", "ntfys://0.0.0.0/topic", "json://224.0.0.1/x",
])
def test_it_refuses_webhooks_to_the_four_kinds_of_address(tmp_path, url):
    _, client = login(data_dir=tmp_path)
    r = client.post("/api/alerts/channels", json={"name": "hook", "url": url})
    assert r.status_code == 400, r.get_json()
    assert "allowed_device_networks" in r.get_json()["fields"]["url"]


def test_it_accepts_listed_schemes_and_loopback_webhooks_when_allowed(tmp_path):
    _, client = login(SIM_NETWORKS, tmp_path)
    for url in ("json://127.0.0.1:9/hook", "mailto://user:secret@example.com", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnl",
                "jsons://192.0.2.10/hook"):
        assert client.post("/api/alerts/channels", json={"name": url[:10], "url": url}).status_code == 201, url
    r = client.post("/api/alerts/channels", json={"name": "meta", "url": "json://169.254.169.254/x"})
    assert r.status_code == 400


def test_the_send_itself_refuses_a_loopback_webhook_without_the_setting():
    receiver = Receiver()
    try:
        error = alerts_notify.deliver(receiver.url, "title", "body", policy=AddressPolicy())
        assert error is not None and "loopback" in error
        assert alerts_notify.deliver("windows://", "title", "body", policy=LOOPBACK)
        assert receiver.accepted == []
        assert alerts_notify.deliver(receiver.url, "title", "body", policy=LOOPBACK) is None
        assert len(receiver.accepted) == 1
    finally:
        receiver.close()
