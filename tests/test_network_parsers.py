"""DHCP leases, User-ID mappings and MACs: parsed from real captures (and one labelled synthetic), merged per host."""

from __future__ import annotations

import calendar
import time

import pytest
from helpers.parsers import SAMPLES

from panfm.collector.network import ReverseDns, connected_devices, lease_expiry, mac_vendor, vlan_of
from panfm.models import ArpEntry, DhcpLease, UserMapping
from panfm.xmlapi import normalize_mac
from panfm.xmlapi.parsers import BadResponse, parse_arp, parse_dhcp_leases, parse_user_mappings


def test_it_reads_a_real_user_id_table_with_its_trailing_count():
    maps = parse_user_mappings(SAMPLES["show-user-ip-user-mapping-all__device-firewall-paloalto-pavm-8.1.3.xml"])
    assert len(maps) == 5
    assert {m.source for m in maps} == {"XMLAPI"} and {m.vsys for m in maps} == {"vsys1"}
    assert UserMapping("192.0.2.2", "localdomainser_b", "XMLAPI", "vsys1") in maps


def test_it_reads_a_globalprotect_mapping_and_an_empty_answer():
    [gp] = parse_user_mappings(SAMPLES["show-user-ip-user-mapping-ip-gp__forescout-eyeextend-panos-8.1.xml"])
    assert (gp.ip, gp.user, gp.source) == ("10.100.76.13", "labvpnuser1", "GP")
    assert parse_user_mappings(SAMPLES["show-user-ip-user-mapping-ip-empty__forescout-eyeextend-panos-8.1.xml"]) == ()


def test_it_reads_leases_per_interface_from_the_synthetic_lease_table():
    leases = parse_dhcp_leases(SAMPLES["show-dhcp-server-lease-all__SYNTHETIC.xml"])
    assert [lease.interface for lease in leases] == ["ethernet1/2"] * 3 + ["ethernet1/3.20"]
    first, expired, reserved, phone = leases
    assert (first.hostname, first.state, first.duration_s) == ("laptop-finance", "committed", 86400)
    assert expired.hostname is None and expired.state == "expired"
    assert reserved.duration_s == 0 and reserved.lease_time is None
    assert phone.mac == "da:a1:19:00:00:04"


@pytest.mark.parametrize("body", [
    b'<response status="success"><result><interface name="e1"><entry><mac>zz</mac></entry></interface></result>'
    b"</response>",  # a lease without an address: skipped
    b'<response status="success"><result/></response>',  # no DHCP server answers an empty result
])
def test_it_skips_rows_without_an_address_and_reads_an_empty_table(body):
    assert parse_dhcp_leases(body) == ()


def test_it_refuses_a_truncated_lease_table():
    with pytest.raises(BadResponse):
        parse_dhcp_leases(SAMPLES["show-dhcp-server-lease-all__SYNTHETIC.xml"][:300])


@pytest.mark.parametrize(("text", "mac"), [
    ("00:1B:17:AA:BB:CC", "00:1b:17:aa:bb:cc"),
    ("00-1b-17-aa-bb-cc", "00:1b:17:aa:bb:cc"),
    ("001b.17aa.bbcc", "00:1b:17:aa:bb:cc"),
    ("001B17AABBCC", "00:1b:17:aa:bb:cc"),
    ("0:1b:17:a:b:c", "00:1b:17:0a:0b:0c"),
    ("  00:1b:17:aa:bb:cc\n", "00:1b:17:aa:bb:cc"),
    ("(incomplete)", None), ("", None), (None, None), ("00:1b:17:aa:bb", None), ("00:1b:17:aa:bb:cc:dd", None),
    ("gg:1b:17:aa:bb:cc", None), ("0" * 50, None),
])
def test_it_normalises_macs_in_every_common_spelling(text, mac):
    assert normalize_mac(text) == mac


def test_it_names_the_vendor_from_the_shipped_oui_registry_and_none_for_randomised_macs():
    assert mac_vendor("00:1b:17:00:00:01") == "Palo Alto Networks"
    assert mac_vendor("da:a1:19:00:00:04") is None  # locally administered
    assert mac_vendor("01:00:5e:00:00:01") is None  # multicast


def test_it_takes_the_vlan_from_the_inventory_tag_else_the_sub_interface_unit():
    assert vlan_of("ethernet1/1.100", {"ethernet1/1.100": 100}) == 100
    assert vlan_of("ae1.7", {}) == 7
    assert vlan_of("ethernet1/2", {}) is None and vlan_of("tunnel.1", {}) is None


def test_it_reads_lease_expiry_on_the_firewalls_clock():
    lease = DhcpLease("e", "10.0.0.1", "00:1b:17:00:00:01", None, "committed", 3600, "Fri Dec  4 10:00:00 2026")
    utc = calendar.timegm(time.strptime("2026-12-04 10:00:00", "%Y-%m-%d %H:%M:%S"))
    assert lease_expiry(lease, 0.0) == utc + 3600
    assert lease_expiry(lease, 3600.0) == utc  # the firewall runs one hour ahead of UTC
    assert lease_expiry(DhcpLease("e", "ip", "m", None, None, 0, "x"), 0.0) is None


def test_it_merges_arp_leases_and_user_id_into_one_row_per_host():
    now = calendar.timegm(time.strptime("2026-12-04 10:30:00", "%Y-%m-%d %H:%M:%S"))
    arp = parse_arp(SAMPLES["show-arp-all__device-firewall-paloalto-pavm-8.1.3.xml"])
    arp = (*arp, ArpEntry("ethernet1/2", "192.168.1.100", "00-1B-17-AA-BB-01", None, " c ", 100),
           ArpEntry("ethernet1/2", "192.168.1.101", "3c:22:fb:00:00:02", None, " c ", 100),
           ArpEntry("ethernet1/2", "192.168.1.9", "(incomplete)", None, " i ", None))
    leases = parse_dhcp_leases(SAMPLES["show-dhcp-server-lease-all__SYNTHETIC.xml"])
    users = (UserMapping("192.168.1.100", "corp\\ana", "AD", "vsys1"),)
    interfaces = [{"name": "ethernet1/2", "zone": "trust"}, {"name": "ethernet1/3.20", "zone": "guest", "tag": 20}]
    rows = {(r["mac"], r["ip"]): r for r in connected_devices(arp, leases, users, interfaces, now=now)}
    laptop = rows[("00:1b:17:aa:bb:01", "192.168.1.100")]
    assert laptop["dhcp_hostname"] == "laptop-finance" and laptop["user"] == "corp\\ana"
    assert laptop["zone"] == "trust" and laptop["static"] is False and laptop["vendor"] == "Palo Alto Networks"
    assert laptop["lease_expires"] == calendar.timegm(time.strptime("2026-12-05 09:30:00", "%Y-%m-%d %H:%M:%S"))
    # In ARP with an expired lease: current, static (no live lease), no expiry.
    old = rows[("3c:22:fb:00:00:02", "192.168.1.101")]
    assert old["static"] is True and old["lease_expires"] is None
    phone = rows[("da:a1:19:00:00:04", "10.20.0.50")]  # only a live lease: current, on VLAN 20
    assert phone["vlan"] == 20 and phone["zone"] == "guest" and phone["randomized_mac"] is True
    assert phone["vendor"] is None
    assert ("b8:27:eb:00:00:03", "192.168.1.5") in rows  # a reservation never expires
    assert not any(r["ip"] == "192.168.1.9" for r in rows.values())  # incomplete ARP: no MAC, no host


def test_it_drops_an_expired_lease_that_arp_does_not_show():
    lease = DhcpLease("e1", "10.0.0.7", "00:1b:17:00:00:07", "gone", "committed", 60, "Fri Dec  4 10:00:00 2026")
    now = calendar.timegm(time.strptime("2026-12-04 12:00:00", "%Y-%m-%d %H:%M:%S"))
    assert connected_devices((), (lease,), (), [], now=now) == []


def test_it_keeps_memory_bounded_with_50000_arp_entries():
    body = ['<response status="success"><result><entries>']
    for i in range(50_000):
        body.append(f"<entry><status> c </status><ip>10.{i >> 16}.{(i >> 8) & 255}.{i & 255}</ip>"
                    f"<mac>00:1b:17:{i >> 16:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}</mac><ttl>100</ttl>"
                    "<interface>ethernet1/2</interface><port>ethernet1/2</port></entry>")
    body.append("</entries></result></response>")
    arp = parse_arp("".join(body).encode())
    assert len(arp) == 50_000
    rows = connected_devices(arp, (), (), [], now=time.time(), limit=20_000)
    assert len(rows) == 20_000


def test_it_answers_from_cache_and_never_waits_past_its_budget_on_a_hanging_dns():
    import threading

    release = threading.Event()
    calls = []

    def lookup(ip):
        calls.append(ip)
        if ip.startswith("10.9."):
            release.wait(30)  # a DNS server that hangs
            return None
        return f"host-{ip}"

    dns = ReverseDns(lookup, workers=2, budget_s=0.3)
    try:
        ips = [f"10.9.0.{i}" for i in range(20)] + ["10.1.0.1"]
        names = dns.names(ips)
        assert "10.1.0.1" not in names or names["10.1.0.1"] == "host-10.1.0.1"
        assert len(calls) <= 2  # two threads, both stuck: nothing else ran
        assert len(dns._pending) <= 8  # never more queued than workers * 4
        release.set()
        deadline = time.monotonic() + 5
        while dns._pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dns.names(["10.1.0.1"], 2.0) == {"10.1.0.1": "host-10.1.0.1"}
        before = len(calls)
        assert dns.names(["10.1.0.1"]) == {"10.1.0.1": "host-10.1.0.1"} and len(calls) == before  # cached
    finally:
        release.set()
        dns.close()


def test_reverse_dns_does_not_deadlock_when_a_lookup_is_done_before_its_callback_is_added():
    # A lookup that fails at once (no DNS server) can finish before `names` adds its callback; the
    # callback then runs in the calling thread and takes the lock. Taken inside the lock, that hung
    # this thread and then every inventory waiting in names(): whole batches "0/100 gathered".
    import threading
    from concurrent.futures import Future

    class DoneAtOnce:
        def submit(self, fn, *args):
            fut: Future = Future()
            fut.set_result(fn(*args))
            return fut

        def shutdown(self, **_kw):
            pass

    rdns = ReverseDns(lambda ip: "host-" + ip.replace(".", "-"), budget_s=1.0)
    rdns._pool.shutdown()
    rdns._pool = DoneAtOnce()
    got: dict = {}
    caller = threading.Thread(target=lambda: got.update(rdns.names(["10.0.0.1", "10.0.0.2"])), daemon=True)
    caller.start()
    caller.join(5)
    assert not caller.is_alive(), "names() deadlocked"
    assert got == {"10.0.0.1": "host-10-0-0-1", "10.0.0.2": "host-10-0-0-2"}
    assert rdns.names(["10.0.0.1"]) == {"10.0.0.1": "host-10-0-0-1"}  # cached, and the lock is free
