"""Connected devices end to end: the simulator's tables, the slow job, network.db, the clock's cleanup."""

from __future__ import annotations

import functools
import time

import pytest
from conftest import LOOPBACK, start_sim
from helpers.collector import FakeClient

import clock
import config
from panfm.collector.cycle import Collector, panos_client_factory
from panfm.collector.slow import gather_inventory
from panfm.models import ArpEntry, DeviceConfig, TlsConfig
from panfm.ops import record_network
from panfm.storage.network_reader import NetworkReader
from panfm.storage.network_store import NETWORK_DB, NetworkStore
from panfm.xmlapi.parsers import ApiError, BadResponse

SIM_CLIENTS = functools.partial(panos_client_factory, policy=LOOPBACK)


def device(entry):
    tls = TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"])
    return DeviceConfig(id=entry["name"], name=entry["name"], host=entry["host"], port=entry["port"],
                        api_key=entry["api_key"], tls=tls)


def row(mac, ip="10.0.0.1", **kw):
    return {"mac": mac, "ip": ip, "interface": "ethernet1/2", "vlan": None, "zone": "trust", "user": None,
            "vendor": None, "dhcp_hostname": None, "dns_name": None, "static": False, "randomized_mac": False,
            "lease_expires": None, **kw}


@pytest.mark.slow
def test_it_finds_the_simulators_hosts_with_their_names_users_vlans_and_zones(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-440") as sim:
        entry = sim.inventory[0]
        collector = Collector(workers=2, request_timeout=5.0, client_factory=SIM_CLIENTS)
        try:
            t0 = time.time()
            [(_id, ts, doc)] = collector.collect_slow([device(entry)], window_s=300)
            truth = sim.truth(entry, t0, time.time())["hosts"]
        finally:
            collector.close()
    assert {k: v for k, v in doc["errors"].items() if k in ("arp", "dhcp", "user_id")} == {}
    rows = {r["mac"]: r for r in doc["connected_devices"]}
    if int(t0 // 600) == int(time.time() // 600):  # no host came or went between the two reads
        assert {h["mac"] for h in truth} <= set(rows)
    for host in truth:
        r = rows.get(host["mac"])
        if r is None:
            continue
        assert (r["ip"], r["interface"], r["vlan"], r["zone"]) == (host["ip"], host["interface"], host["vlan"],
                                                                    host["zone"])
        assert r["dhcp_hostname"] == host["hostname"] and r["user"] == host["user"]
        assert r["static"] is (not host["dhcp"]) and r["randomized_mac"] is host["randomized"]
    assert any(r["vlan"] == 100 for r in rows.values()) and any(r["randomized_mac"] for r in rows.values())
    assert any(r["vendor"] for r in rows.values())
    assert doc["network"]["hosts"] == len(rows) and doc["network"]["dhcp_leases"] > 0
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        assert store.record(entry["name"], ts, doc["connected_devices"]) == []  # first snapshot: learned silently
    finally:
        store.close()
    with NetworkReader.open(tmp_path / NETWORK_DB) as reader:
        current = reader.devices(time.time(), entry["name"])
    assert {(d["mac"], d["ip"]) for d in current} == {(r["mac"], r["ip"]) for r in rows.values()}


def test_it_reports_a_new_mac_once_and_keeps_a_gone_one_out_of_the_current_list(tmp_path):
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        assert store.record("fw", 1000.0, [row("00:1b:17:00:00:01"), row("00:1b:17:00:00:02", "10.0.0.2")]) == []
        new = store.record("fw", 1300.0, [row("00:1b:17:00:00:01"), row("00:1b:17:00:00:03", "10.0.0.3")])
        assert [r["mac"] for r in new] == ["00:1b:17:00:00:03"]
        assert store.record("fw", 1600.0, [row("00:1b:17:00:00:01"), row("00:1b:17:00:00:03", "10.0.0.3")]) == []
        # The same MAC on another firewall is new there.
        store.record("fw2", 1600.0, [row("00:1b:17:00:00:09")])
        assert [r["mac"] for r in store.record("fw2", 1900.0, [row("00:1b:17:00:00:01")])] == ["00:1b:17:00:00:01"]
    finally:
        store.close()
    with NetworkReader.open(tmp_path / NETWORK_DB) as reader:
        current = {d["mac"]: d for d in reader.devices(2000.0, "fw")}
        everything = {d["mac"] for d in reader.devices(2000.0, "fw", current=False)}
    assert set(current) == {"00:1b:17:00:00:01", "00:1b:17:00:00:03"}
    assert "00:1b:17:00:00:02" in everything
    assert current["00:1b:17:00:00:01"]["first_seen"] == 1000.0 and current["00:1b:17:00:00:01"]["last_seen"] == 1600.0


def test_it_hides_a_lease_that_ran_out_since_the_snapshot_and_keeps_the_dns_name(tmp_path):
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        store.record("fw", 1000.0, [row("00:1b:17:00:00:01", lease_expires=1100.0, dns_name="a.example")])
        store.record("fw", 1300.0, [row("00:1b:17:00:00:01", lease_expires=1900.0, dns_name=None)])
    finally:
        store.close()
    with NetworkReader.open(tmp_path / NETWORK_DB) as reader:
        [d] = reader.devices(1400.0, "fw")
        assert d["dns_name"] == "a.example"
        assert reader.devices(2000.0, "fw") == []


class NetworkFake(FakeClient):
    """The scripted firewall with an ARP table, a broken lease table and no User-ID."""

    def arp(self):
        return self.box["arp"]

    def dhcp_leases(self):
        raise BadResponse("XML is not well-formed: mismatched tag: line 1, column 120")

    def user_mappings(self):
        raise ApiError(17, "show -> user is unexpected")


def test_it_keeps_the_rest_of_the_inventory_when_the_lease_table_is_malformed():
    box = {"inventories": 0, "arp": (ArpEntry("ethernet1/1", "10.0.0.5", "00-1B-17-00-00-05", None, "c", 10),)}
    _info, doc = gather_inventory(NetworkFake(box), now=time.time(), window_s=300, deadline=time.monotonic() + 30)
    assert doc["errors"]["dhcp"].startswith("BadResponse") and "user_id" not in doc["errors"]
    assert doc["network"]["unavailable"]["user_id"].startswith("PAN-OS error 17")
    assert [r["mac"] for r in doc["connected_devices"]] == ["00:1b:17:00:00:05"]
    assert doc["connected_devices"][0]["zone"] == "trust"
    assert doc["interfaces"] and doc["ha"] == {"enabled": False, "mode": None, "local_state": None,
                                               "peer_state": None, "running_sync": None, "peer_ip": None}


def test_it_gives_reverse_dns_only_what_is_left_of_the_deadline():
    box = {"inventories": 0, "arp": (ArpEntry("ethernet1/1", "10.0.0.5", "00:1b:17:00:00:05", None, "c", 10),)}
    asked = []

    def resolver(ips, budget):
        asked.append((ips, budget))
        return {"10.0.0.5": "printer.example"}

    _info, doc = gather_inventory(NetworkFake(box), now=time.time(), window_s=300, deadline=time.monotonic() + 30,
                                  resolver=resolver)
    assert asked and asked[0][0] == ["10.0.0.5"] and 0 < asked[0][1] <= 2.0
    assert doc["connected_devices"][0]["dns_name"] == "printer.example"
    asked.clear()
    gather_inventory(NetworkFake(box), now=time.time(), window_s=300, deadline=time.monotonic() + 0.5,
                     resolver=resolver)
    assert asked == []  # under a second left: no lookups at all


def test_the_clock_moves_rows_into_network_db_and_forgets_them_after_the_retention(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "reverse_dns": False})
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    try:
        now = time.time()
        first = {"connected_devices": [row("00:1b:17:00:00:01")]}
        record_network(ctx, "fw", now - 40 * 86400, first)
        assert "connected_devices" not in first and first["network"]["new_count"] == 0
        second = {"connected_devices": [row("00:1b:17:00:00:01"), row("00:1b:17:00:00:02", "10.0.0.2")]}
        record_network(ctx, "fw", now - 40 * 86400 + 300, second)
        assert second["network"]["new_count"] == 1 and second["network"]["new_devices"][0]["mac"] == "00:1b:17:00:00:02"
        deleted = clock.cleanup_once(ctx)
        assert deleted["connected_devices"] == 2
    finally:
        ctx.store.close()
        ctx.network.close()
        ctx.collector.close()


def test_fifty_thousand_arp_entries_are_gathered_and_stored_with_the_rest_of_the_inventory(tmp_path):
    arp = tuple(ArpEntry("ethernet1/1", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}",
                         f"00:1b:17:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}", None, "c", 100)
                for i in range(50_000))
    box = {"inventories": 0, "arp": arp}
    _info, doc = gather_inventory(NetworkFake(box), now=time.time(), window_s=300, deadline=time.monotonic() + 60)
    assert len(doc["connected_devices"]) == 50_000 and doc["interfaces"] and doc["system"]
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        store.record("fw", 1000.0, doc["connected_devices"])
    finally:
        store.close()
    with NetworkReader.open(tmp_path / NETWORK_DB) as reader:
        assert len(reader.devices(1001.0, "fw")) == 50_000
