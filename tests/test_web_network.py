"""/api/connected-devices and the per-MAC metadata: contract, search, filters, sort, pages, CSV, bad input."""

from __future__ import annotations

import csv
import io
import time

import pytest
from helpers.web import add_device, make_client

from panfm.storage.network_store import NETWORK_DB, NetworkStore

HOSTILE = "<img src=x onerror=alert(1)>"
CONTRACT = {"device_id", "mac", "ip", "vendor", "hostname", "hostname_source", "interface", "vlan", "zone", "user",
            "static", "first_seen", "last_seen", "lease_expires", "randomized_mac", "metadata"}


def row(mac, ip, **kw):
    return {"mac": mac, "ip": ip, "interface": "ethernet1/2", "vlan": None, "zone": "trust", "user": None,
            "vendor": None, "dhcp_hostname": None, "dns_name": None, "static": True, "randomized_mac": False,
            "lease_expires": None, **kw}


@pytest.fixture
def web(tmp_path):
    _app, client = make_client(tmp_path)
    fw1 = add_device(client, "fw-one", "192.0.2.1")
    fw2 = add_device(client, "fw-two", "192.0.2.2")
    now = time.time()
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        store.record(fw1, now - 600, [row("00:1b:17:00:00:01", "10.0.0.1"), row("00:1b:17:00:00:09", "10.0.0.9")])
        store.record(fw1, now - 60, [
            row("00:1b:17:00:00:01", "10.0.0.1", dhcp_hostname="laptop-ana", static=False, lease_expires=now + 3600,
                user="corp\\ana", vendor="Palo Alto Networks"),
            row("3c:22:fb:00:00:02", "10.0.0.10", dns_name="printer.corp.example", vendor="Apple, Inc."),
            row("da:00:00:00:00:03", "10.0.0.2", interface="ethernet1/1.100", vlan=100, zone="guest",
                randomized_mac=True, dhcp_hostname=HOSTILE, static=False, lease_expires=now + 60),
            row("00:1b:17:00:00:04", "10.0.0.4", static=False, lease_expires=now - 5),  # ran out since the read
        ])
        store.record(fw2, now - 30, [row("00:50:56:00:00:05", "172.16.0.5", vendor="=cmd|' /C calc'!A0")])
    finally:
        store.close()
    return client, fw1, fw2


def test_it_answers_the_contract_for_one_firewall(web):
    client, fw1, _fw2 = web
    r = client.get(f"/api/connected-devices?device_id={fw1}")
    assert r.status_code == 200
    devices = r.get_json()["devices"]
    assert [d["ip"] for d in devices] == ["10.0.0.1", "10.0.0.2", "10.0.0.10"]  # numeric IP order
    for d in devices:
        assert set(d) >= CONTRACT and set(d["metadata"]) == {"name", "comment", "tags", "location"}
    laptop, phone, printer = devices
    assert (laptop["hostname"], laptop["hostname_source"], laptop["user"]) == ("laptop-ana", "dhcp", "corp\\ana")
    assert laptop["static"] is False and laptop["lease_expires"].endswith("Z") and laptop["first_seen"].endswith("Z")
    assert (printer["hostname"], printer["hostname_source"]) == ("printer.corp.example", "dns")
    assert phone["vlan"] == 100 and phone["randomized_mac"] is True and phone["hostname"] == HOSTILE
    assert all(d["mac"] != "00:1b:17:00:00:09" for d in devices)  # gone since the last read
    everything = client.get(f"/api/connected-devices?device_id={fw1}&seen=all").get_json()["devices"]
    assert {"00:1b:17:00:00:09", "00:1b:17:00:00:04"} <= {d["mac"] for d in everything}


def test_it_searches_the_fleet_filters_sorts_and_pages(web):
    client, fw1, fw2 = web
    found = client.get("/api/connected-devices?q=ANA").get_json()
    assert [d["mac"] for d in found["devices"]] == ["00:1b:17:00:00:01"] and found["total"] == 1
    assert {d["device_id"] for d in client.get("/api/connected-devices?fleet=1").get_json()["devices"]} == {fw1, fw2}
    assert [d["ip"] for d in client.get("/api/connected-devices?fleet=1&zone=guest").get_json()["devices"]] == [
        "10.0.0.2"]
    assert [d["ip"] for d in client.get("/api/connected-devices?fleet=1&vlan=100").get_json()["devices"]] == [
        "10.0.0.2"]
    assert [d["ip"] for d in client.get("/api/connected-devices?fleet=1&randomized=1").get_json()["devices"]] == [
        "10.0.0.2"]
    by_host = client.get(f"/api/connected-devices?device_id={fw1}&sort=hostname&order=desc").get_json()["devices"]
    assert [d["hostname"] for d in by_host] == ["printer.corp.example", "laptop-ana", HOSTILE]
    page = client.get("/api/connected-devices?fleet=1&per_page=2&page=2").get_json()
    assert page["total"] == 4 and len(page["devices"]) == 2 and page["page"] == 2


def test_it_takes_the_admins_name_tags_and_location_and_shows_them_everywhere(web):
    client, fw1, _fw2 = web
    r = client.put("/api/connected-devices/metadata/3C-22-FB-00-00-02",
                   json={"name": "Floor 2 printer", "tags": ["printer", "floor2"], "location": "Room 2.14"})
    assert r.status_code == 200
    assert r.get_json() == {"mac": "3c:22:fb:00:00:02", "name": "Floor 2 printer", "comment": None,
                            "tags": ["printer", "floor2"], "location": "Room 2.14"}
    assert client.put("/api/connected-devices/metadata/3c22.fb00.0002", json={"comment": "toner"}).status_code == 200
    [printer] = client.get("/api/connected-devices?q=floor2").get_json()["devices"]
    assert (printer["hostname"], printer["hostname_source"]) == ("Floor 2 printer", "custom")  # over reverse DNS
    assert printer["metadata"] == {"name": "Floor 2 printer", "comment": "toner", "tags": ["printer", "floor2"],
                                   "location": "Room 2.14"}
    # DHCP's name still wins over the admin's; the admin's stays in metadata.
    client.put("/api/connected-devices/metadata/00:1b:17:00:00:01", json={"name": "Ana's laptop"})
    laptop = client.get(f"/api/connected-devices?device_id={fw1}&q=10.0.0.1").get_json()["devices"][0]
    assert laptop["hostname_source"] == "dhcp" and laptop["metadata"]["name"] == "Ana's laptop"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/connected-devices/metadata/not-a-mac", {"name": "x"}, "mac"),
    ("/api/connected-devices/metadata/00:1b:17:00:00:01", {"name": "x" * 101}, "name"),
    ("/api/connected-devices/metadata/00:1b:17:00:00:01", {"tags": [1, 2]}, "tags"),
    ("/api/connected-devices/metadata/00:1b:17:00:00:01", {"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ("/api/connected-devices/metadata/00:1b:17:00:00:01", {"color": "red"}, "color"),
    ("/api/connected-devices/metadata/00:1b:17:00:00:01", {"comment": "bell\x07"}, "comment"),
    ("/api/connected-devices/metadata/00:1b:17:00:00:01", {}, "body"),
])
def test_it_refuses_bad_metadata_by_field_and_stores_nothing(web, path, body, field):
    client, _fw1, _fw2 = web
    r = client.put(path, json=body)
    assert r.status_code == 400 and field in r.get_json()["fields"]
    devices = client.get("/api/connected-devices?fleet=1").get_json()["devices"]
    assert all(d["metadata"]["name"] is None for d in devices)


def test_it_needs_the_csrf_token_to_change_metadata(web):
    client, _fw1, _fw2 = web
    del client.environ_base["HTTP_X_CSRFTOKEN"]
    r = client.put("/api/connected-devices/metadata/00:1b:17:00:00:01", json={"name": "x"})
    assert r.status_code == 400 and r.get_json()["error"] == "csrf_failed"


@pytest.mark.parametrize(("query", "status"), [
    ("", 400), ("device_id=nope", 404), ("fleet=1&sort=secret", 400), ("fleet=1&per_page=5000", 400),
    ("fleet=1&page=0", 400), ("fleet=1&order=up", 400), ("q=" + "a" * 201, 400), ("fleet=1&seen=later", 400),
])
def test_it_refuses_bad_queries(web, query, status):
    client, _fw1, _fw2 = web
    assert client.get("/api/connected-devices?" + query).status_code == status


def test_it_exports_csv_without_formulas(web):
    client, _fw1, _fw2 = web
    r = client.get("/api/connected-devices?fleet=1&format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert len(rows) == 4 and {"ip", "mac", "hostname", "vendor", "tags"} <= set(rows[0])
    vmware = next(x for x in rows if x["mac"] == "00:50:56:00:00:05")
    assert vmware["vendor"].startswith("'=")  # a spreadsheet shows it, never runs it
    assert next(x for x in rows if x["ip"] == "10.0.0.2")["hostname"] == HOSTILE


def test_it_answers_an_empty_list_before_the_clock_read_any_table(tmp_path):
    _app, client = make_client(tmp_path)
    fw = add_device(client, "fw", "192.0.2.9")
    r = client.get(f"/api/connected-devices?device_id={fw}")
    assert r.status_code == 200 and r.get_json()["devices"] == [] and r.get_json()["as_of"] == {}


def test_it_serves_the_page_behind_the_login(web, tmp_path):
    client, _fw1, _fw2 = web
    page = client.get("/connected-devices")
    assert page.status_code == 200 and b"connected_devices.js" in page.data
