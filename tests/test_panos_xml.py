"""Every parser against the real PAN-OS samples in tests/fixtures/panos (see PROVENANCE.md)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

import panfm.xmlapi.parsers as panos_xml
from panfm.models import HaState
from panfm.xmlapi.parsers import (
    BadResponse,
    InterfaceNotFound,
    NoMatches,
    parse_arp,
    parse_counter_interface,
    parse_gp_users,
    parse_ha_state,
    parse_interface_detail,
    parse_interfaces,
    parse_job_enqueued,
    parse_keygen,
    parse_licenses,
    parse_log_job,
    parse_mp_cpu,
    parse_resource_monitor,
    parse_session_info,
    parse_system_info,
    parse_system_resources,
    parse_version,
)

FIXTURES = Path(__file__).parent / "fixtures" / "panos"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --------------------------------------------------------------------------------------
# keygen, version, jobs, logs
# --------------------------------------------------------------------------------------


def test_it_reads_the_api_key_from_a_keygen_reply() -> None:
    assert parse_keygen(load("keygen-success__panos-docs-9.1.xml")) == "gJlQWE56987nBxIqyfa62sZeRtYuIo2BgzEA9UOnlZBhU=="


def test_it_reads_the_same_key_from_str_and_bytes() -> None:
    body = load("keygen-success__panos-docs-9.1.xml")
    assert parse_keygen(body.decode()) == parse_keygen(body)


@pytest.mark.parametrize(
    ("name", "version", "model"),
    [("version__panos-docs-9.1.xml", "7.1.0", "pa-vm"), ("version__pan-os-ansible-pavm-10.0.2.xml", "10.0.2", "PA-VM")],
)
def test_it_reads_type_version_replies_including_spaced_status(name: str, version: str, model: str) -> None:
    fields = parse_version(load(name))
    assert fields == {"sw-version": version, "multi-vsys": "off", "model": model, "serial": "007000001222"}


@pytest.mark.parametrize(
    ("name", "job"),
    [
        ("log-enqueue-traffic__panos-docs-9.1.xml", "18"),
        ("commit-enqueue__puppetlabs-panos.xml", "2"),
        ("request-content-upgrade-download-enqueue__panos-docs-9.1.xml", "2"),
    ],
)
def test_it_reads_the_job_id_of_code_19_enqueue_replies(name: str, job: str) -> None:
    assert parse_job_enqueued(load(name)) == job


def test_it_reads_the_job_id_from_the_message_when_no_job_element_exists() -> None:
    body = (
        '<response status="success" code="19"><result><msg>'
        "<line>query job enqueued with jobid 77</line></msg></result></response>"
    )
    assert parse_job_enqueued(body) == "77"


def test_it_refuses_a_code_19_reply_without_any_job_id() -> None:
    with pytest.raises(BadResponse, match="no job id"):
        parse_job_enqueued(load("commit-no-changes-code19__puppetlabs-panos.xml"))


def test_it_reads_a_finished_traffic_log_job_with_its_entry_fields() -> None:
    job = parse_log_job(load("log-get-traffic-fin__demisto-content.xml"))
    assert (job.job_id, job.status, len(job.entries)) == ("1", "FIN", 1)
    entry = job.entries[0]
    assert entry["type"] == "TRAFFIC"
    assert entry["subtype"] == "end"
    assert entry["bytes"] == "392"
    assert entry["dstloc"] == "Singapore"
    assert entry["rule"] == "LAN to Internet - Default Applications"
    assert entry["logid"] == "1234"  # the <entry logid="..."> attribute
    assert entry["imsi"] == ""


def test_it_keeps_only_the_asked_fields_of_each_log_entry() -> None:
    whole = parse_log_job(load("log-get-traffic-fin__demisto-content.xml")).entries[0]
    job = parse_log_job(load("log-get-traffic-fin__demisto-content.xml"), fields={"bytes", "rule", "logid", "nope"})
    assert job.entries == ({"bytes": "392", "rule": "LAN to Internet - Default Applications", "logid": "1234"},)
    assert all(whole[k] == v for k, v in job.entries[0].items())


def test_it_reads_a_finished_config_log_job_and_ignores_the_meta_block() -> None:
    job = parse_log_job(load("log-get-config-fin__pan-os-python.xml"))
    assert (job.job_id, job.status) == ("729", "FIN")
    assert [e["admin"] for e in job.entries] == ["admin1", "admin2"]
    assert [e["logid"] for e in job.entries] == ["6947456634637516808", "6947456634637516805"]
    assert job.entries[0]["comment"] == "newest comment"


def test_it_reads_an_active_log_job_without_entries() -> None:
    job = parse_log_job(load("log-get-threat-act__SYNTHETIC.xml"))
    assert (job.job_id, job.status, job.entries) == ("730", "ACT", ())


def test_it_reads_a_pending_log_job_in_lower_case() -> None:
    job = parse_log_job(
        '<response status="success"><result><job><id>5</id><status>pend</status></job></result></response>'
    )
    assert (job.job_id, job.status, job.entries) == ("5", "PEND", ())


# --------------------------------------------------------------------------------------
# system info, resources, MP CPU, sessions
# --------------------------------------------------------------------------------------


def test_it_reads_system_info_of_a_pa7050_with_the_newline_inside_time() -> None:
    info = parse_system_info(load("show-system-info__pan-os-upgrade-assurance-pa7050.xml"))
    assert (info.hostname, info.model, info.serial, info.sw_version) == (
        "testfw",
        "PA-7050",
        "11111111111",
        "9.1.12-h3",
    )
    assert info.uptime_seconds == 179 * 86400 + 5 * 3600 + 7 * 60 + 34
    assert info.device_time == "Sun Dec  3 18:27:29 2023"
    assert info.multi_vsys is True
    assert info.family == "7000"
    assert (info.app_version, info.threat_version, info.av_version) == ("8709-8047", "8709-8047", "4455-4972")
    assert info.url_filtering_version == "20231204.20037"
    assert info.operational_mode == "normal"


def test_it_keeps_the_serial_unknown_of_an_unlicensed_vm() -> None:
    info = parse_system_info(load("show-system-info__device-firewall-paloalto-pavm-8.1.3.xml"))
    assert (info.hostname, info.model, info.serial, info.sw_version) == ("PA-VM", "PA-VM", "unknown", "8.1.3")
    assert info.uptime_seconds == 19 * 60 + 41
    assert info.ip_address == "192.168.122.20"
    assert info.mac_address == "52:54:00:3d:87:97"
    assert info.multi_vsys is False
    assert info.device_time == "Mon Apr  1 14:34:27 2019"


def test_it_reads_system_info_of_the_vendor_docs_pa3050() -> None:
    info = parse_system_info(load("show-system-info__panos-docs-9.1-pa3050.xml"))
    assert (info.model, info.serial, info.sw_version, info.uptime_seconds) == (
        "PA-3050",
        "001701000529",
        "9.0.0-b36",
        66518,
    )
    assert info.wildfire_version == "0"


def test_it_reads_system_info_of_panorama_without_threat_version() -> None:
    info = parse_system_info(load("show-system-info__demisto-content-panorama-10.0.9.xml"))
    assert (info.model, info.family, info.sw_version) == ("Panorama", "pc", "10.0.9")
    assert info.uptime_seconds == 3 * 86400 + 5 * 3600 + 35 * 60 + 41
    assert info.threat_version is None
    assert info.device_time == "Wed Mar  9 05:10:06 2022"


def test_it_reads_cpu_and_the_mib_mem_line_never_swap() -> None:
    res = parse_system_resources(load("show-system-resources__pan-os-upgrade-assurance.xml"))
    assert (res.cpu_user_pct, res.cpu_system_pct, res.cpu_idle_pct) == (0.2, 0.4, 99.3)
    mib = 1024 * 1024
    assert res.mem_total_bytes == round(63739.8 * mib)
    assert res.mem_free_bytes == round(46728.6 * mib)
    assert res.mem_used_bytes == round(10179.2 * mib)
    assert res.management_cpu_pct == pytest.approx(0.7)
    assert res.memory_pct == pytest.approx(10179.2 / 63739.8 * 100)


TOP_KIB = """<response status="success"><result><![CDATA[top - 10:00:00 up 2 days
%Cpu(s): 12.5 us,  3.1 sy,  0.0 ni, 80.0 id,  4.4 wa,  0.0 hi,  0.0 si,  0.0 st
KiB Swap:  2000000 total,  2000000 free,        0 used.   100 avail Mem
KiB Mem :  4000000 total,  1000000 free,  2500000 used,   500000 buff/cache
]]></result></response>"""

TOP_OLD = """<response status="success"><result><![CDATA[top - 10:00:00 up 2 days
Cpu(s):  7.1%us,  2.0%sy,  0.0%ni, 89.8%id,  1.1%wa,  0.0%hi,  0.0%si,  0.0%st
Mem:   4048016k total,  3846324k used,   201692k free,   197440k buffers
Swap:  2000000k total,        0k used,  2000000k free,  1000000k cached
]]></result></response>"""

TOP_GIB = """<response status="success"><result><![CDATA[
%Cpu(s):  1.0 us,  1.0 sy,  0.0 ni, 98.0 id
GiB Mem :     62.2 total,     45.6 free,      9.9 used,      6.7 buff/cache
GiB Swap:      1.0 total,      1.0 free,      0.0 used.     54.7 avail Mem
]]></result></response>"""


def test_it_reads_the_kib_mem_line_even_after_a_swap_line() -> None:
    res = parse_system_resources(TOP_KIB)
    assert (res.cpu_user_pct, res.cpu_system_pct, res.cpu_idle_pct) == (12.5, 3.1, 80.0)
    assert (res.mem_total_bytes, res.mem_free_bytes, res.mem_used_bytes) == (
        4_096_000_000,
        1_024_000_000,
        2_560_000_000,
    )


def test_it_reads_the_old_top_format_with_k_suffixes() -> None:
    res = parse_system_resources(TOP_OLD)
    assert (res.cpu_user_pct, res.cpu_system_pct, res.cpu_idle_pct) == (7.1, 2.0, 89.8)
    assert res.mem_total_bytes == 4048016 * 1024
    assert res.mem_used_bytes == 3846324 * 1024
    assert res.mem_free_bytes == 201692 * 1024


def test_it_reads_the_gib_mem_line() -> None:
    res = parse_system_resources(TOP_GIB)
    assert res.mem_total_bytes == round(62.2 * 1024**3)
    assert res.mem_used_bytes == round(9.9 * 1024**3)


def test_it_refuses_resources_text_with_only_a_swap_line() -> None:
    body = TOP_KIB.replace("KiB Mem :  4000000 total,  1000000 free,  2500000 used,   500000 buff/cache\n", "")
    with pytest.raises(BadResponse, match="Mem line"):
        parse_system_resources(body)


def test_it_reads_the_management_cpu_one_minute_average() -> None:
    assert parse_mp_cpu(load("show-system-state-filter-sys-monitor-mp-exports__pan-os-upgrade-assurance.xml")) == 3.0


def test_it_raises_no_matches_when_the_state_filter_matched_nothing() -> None:
    with pytest.raises(NoMatches, match="NO_MATCHES") as caught:
        parse_mp_cpu(load("show-system-state-filter-no-matches__pan-os-upgrade-assurance.xml"))
    assert isinstance(caught.value, panos_xml.ApiError)


def test_it_reads_the_busy_pa5000_session_info() -> None:
    info = parse_session_info(load("show-session-info__irom77-go-public-pa5000.xml"))
    assert (info.active, info.tcp, info.udp, info.icmp) == (102448, 72139, 29570, 114)
    assert (info.max, info.kbps, info.pps, info.cps) == (4194302, 1519, 1124, 750)
    assert info.installed == 4142667796


def test_it_reads_the_idle_10x_session_info_in_its_other_element_order() -> None:
    info = parse_session_info(load("show-session-info__pan-os-upgrade-assurance.xml"))
    assert (info.active, info.max, info.kbps, info.pps, info.cps, info.installed) == (0, 1800000, 0, 0, 0, 0)


# --------------------------------------------------------------------------------------
# resource monitor
# --------------------------------------------------------------------------------------


def test_it_reads_three_dataplanes_of_twelve_cores_with_the_edited_spikes() -> None:
    mon = parse_resource_monitor(load("show-running-resource-monitor-second__irom77-go-public-pa5000.xml"))
    assert mon.period == "second"
    assert [dp.name for dp in mon.dataplanes] == ["dp2", "dp1", "dp0"]
    for dp in mon.dataplanes:
        assert sorted(dp.cpu_average) == list(range(12))
        assert sorted(dp.cpu_maximum) == list(range(12))
        assert all(len(values) == 60 for values in [*dp.cpu_average.values(), *dp.cpu_maximum.values()])
        assert set(dp.utilization) == {"session", "packet buffer", "packet descriptor", "packet descriptor (on-chip)"}
        assert all(len(values) == 60 for values in dp.utilization.values())
        assert len(dp.tasks) == 15
    dp2, dp1, dp0 = mon.dataplanes
    # The test author's inserted spikes (INDEX.md): 89 on dp2 core 0, 57 on dp0 core 2, ...
    assert dp2.cpu_average[0][3] == 89 and max(dp2.cpu_average[0][:3] + dp2.cpu_average[0][4:]) == 0
    assert dp0.cpu_average[2][13] == 57
    assert max(dp0.cpu_maximum[2]) == 8
    assert dp0.utilization["session"][5] == 87
    assert max(dp1.utilization["session"]) == 12
    assert dp1.utilization["packet buffer"][58] == 20
    assert dp0.utilization["packet buffer"][59] == 20
    assert dp2.cpu_average[1][:4] == (5, 5, 10, 6)
    # Task groups arrive as "12%": the suffix is stripped.
    assert dp2.tasks["flow_lookup"] == (12,)
    assert dp2.tasks["aho_result"] == (15,)
    assert dp1.tasks["lwm"] == (0,)


def test_it_reads_a_minute_monitor_trimmed_with_last_5() -> None:
    mon = parse_resource_monitor(load("show-running-resource-monitor-minute-last-5__pan-os-upgrade-assurance.xml"))
    assert mon.period == "minute"
    (dp0,) = mon.dataplanes
    assert dp0.name == "dp0"
    assert dp0.cpu_average == {0: (0,) * 5, 1: (0,) * 5, 2: (1,) * 5, 3: (0,) * 5}
    assert dp0.cpu_maximum == {}
    assert (dp0.tasks, dp0.utilization) == ({}, {})


HOUR_CHASSIS = """<response status="success"><result><resource-monitor><data-processors>
<s1dp0><hour>
<cpu-load-average><entry><coreid>1</coreid><value>10,20</value></entry></cpu-load-average>
<cpu-load-maximum><entry><coreid>1</coreid><value>30,40</value></entry></cpu-load-maximum>
<task><flow_lookup>10%,20%</flow_lookup></task>
<resource-utilization>
<entry><name>session (average)</name><value>1,2</value></entry>
<entry><name>session (maximum)</name><value>3,4</value></entry>
<entry><name>packet buffer (maximum)</name><value>5,6</value></entry>
</resource-utilization>
</hour></s1dp0>
<s1dp1><hour><cpu-load-average><entry><coreid>1</coreid><value>7</value></entry></cpu-load-average></hour></s1dp1>
</data-processors></resource-monitor></result></response>"""


def test_it_reads_chassis_dataplane_names_and_average_maximum_utilization_rows() -> None:
    mon = parse_resource_monitor(HOUR_CHASSIS)
    assert mon.period == "hour"
    assert [dp.name for dp in mon.dataplanes] == ["s1dp0", "s1dp1"]
    first = mon.dataplanes[0]
    assert first.cpu_average == {1: (10, 20)} and first.cpu_maximum == {1: (30, 40)}
    assert first.tasks == {"flow_lookup": (10, 20)}
    assert first.utilization == {
        "session (average)": (1, 2),
        "session (maximum)": (3, 4),
        "packet buffer (maximum)": (5, 6),
    }


def test_it_refuses_a_history_value_that_is_not_a_number() -> None:
    with pytest.raises(BadResponse, match="not an integer"):
        parse_resource_monitor(HOUR_CHASSIS.replace("10,20", "10,abc"))


# --------------------------------------------------------------------------------------
# counters and interfaces
# --------------------------------------------------------------------------------------


def test_it_reads_the_doubled_ifnet_form_and_hw_entries_with_64_bit_values() -> None:
    snap = parse_counter_interface(load("show-counter-interface-all-doubled__SYNTHETIC.xml"))
    assert sorted(snap.ifnet) == ["ethernet1/1", "ethernet1/1.100"]  # tunnel.1 has ibytes N/A: dropped
    eth = snap.ifnet["ethernet1/1"]
    assert (eth.ibytes, eth.obytes) == (1099511627776, 18446744073709551000)
    assert (eth.ipackets, eth.opackets, eth.ierrors, eth.idrops, eth.source) == (1203334455, 2203334455, 3, 17, "ifnet")
    assert sorted(snap.hw) == ["ethernet1/1", "ethernet1/2"]
    assert snap.hw["ethernet1/1"].obytes == 18446744073709551001
    assert snap.hw["ethernet1/2"].source == "hw"
    assert (snap.hw["ethernet1/2"].ibytes, snap.hw["ethernet1/2"].obytes) == (41, 42)


def test_it_reads_the_flat_ifnet_form() -> None:
    snap = parse_counter_interface(load("show-counter-interface-all-flat__SYNTHETIC.xml"))
    assert list(snap.ifnet) == ["ethernet1/3"]
    counters = snap.ifnet["ethernet1/3"]
    assert (counters.ibytes, counters.obytes, counters.ierrors, counters.idrops) == (6992300789, 6992300790, 1, 2)
    assert snap.hw["ethernet1/3"].ibytes == 7


def test_it_refuses_a_counter_reply_without_ifnet_or_hw() -> None:
    with pytest.raises(BadResponse, match="neither"):
        parse_counter_interface('<response status="success"><result><dp>dp0</dp></result></response>')


def test_it_reads_every_interface_of_show_interface_all() -> None:
    infos = {i.name: i for i in parse_interfaces(load("show-interface-all__device-firewall-paloalto-pavm-8.1.3.xml"))}
    assert len(infos) == 19  # 8 ports + vlan, loopback, tunnel and their logical units
    eth1 = infos["ethernet1/1"]
    assert (eth1.kind, eth1.state, eth1.speed_mbps, eth1.duplex) == ("physical", "up", 100, "full")
    assert (eth1.zone, eth1.vsys, eth1.ip, eth1.mac) == ("UNTRUST", "vsys1", "192.168.122.21/24", "52:54:00:7d:fc:5d")
    eth3 = infos["ethernet1/3"]
    assert (eth3.state, eth3.speed_mbps, eth3.duplex) == ("down", None, None)  # "ukn" is no value
    sub = infos["ethernet1/3.16"]
    assert (sub.kind, sub.tag, sub.zone, sub.state, sub.ip) == ("subinterface", 16, "TRUST", None, "1.1.3.1/24")
    assert infos["ethernet1/4"].zone is None and infos["ethernet1/4"].ip is None  # <zone/> and "N/A"
    assert (infos["vlan"].kind, infos["vlan"].speed_mbps, infos["vlan"].state) == ("vlan", None, "up")  # "[n/a]"
    assert infos["vlan.32"].kind == "vlan"
    assert (infos["loopback.1"].kind, infos["loopback.1"].zone) == ("loopback", "TRUST")
    assert (infos["tunnel.2"].kind, infos["tunnel.2"].zone) == ("tunnel", "TUNNEL")
    assert all(i.aggregate_group is None for i in infos.values())
    assert sum(i.kind == "physical" for i in infos.values()) == 8


AGGREGATE = """<response status="success"><result>
<ifnet><entry><name>ae1</name><zone>TRUST</zone><vsys>1</vsys><tag>0</tag><ip>10.0.0.1/24</ip></entry>
<entry><name>ae1.5</name><zone>TRUST</zone><vsys>1</vsys><tag>5</tag><ip>N/A</ip></entry></ifnet>
<hw><entry><name>ethernet1/3</name><state>up</state><speed>10000</speed><duplex>full</duplex><ae>ae1</ae></entry>
<entry><name>ethernet1/4</name><state>up</state><speed>10000</speed><duplex>full</duplex><aggregate-group>ae1</aggregate-group></entry>
<entry><name>ae1</name><state>up</state><speed>20000</speed><duplex>full</duplex></entry></hw>
</result></response>"""


def test_it_reads_aggregate_membership_where_the_data_shows_it() -> None:
    infos = {i.name: i for i in parse_interfaces(AGGREGATE)}
    assert infos["ethernet1/3"].aggregate_group == "ae1"
    assert infos["ethernet1/4"].aggregate_group == "ae1"
    assert (infos["ae1"].kind, infos["ae1"].speed_mbps, infos["ae1"].zone) == ("aggregate", 20000, "TRUST")
    assert (infos["ae1.5"].kind, infos["ae1.5"].tag) == ("subinterface", 5)
    assert list(infos) == ["ethernet1/3", "ethernet1/4", "ae1", "ae1.5"]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ethernet1/1", "physical"),
        ("ethernet1/1/3", "physical"),
        ("ethernet1/1.100", "subinterface"),
        ("ae2", "aggregate"),
        ("ae2.7", "subinterface"),
        ("tunnel", "tunnel"),
        ("tunnel.12", "tunnel"),
        ("loopback.3", "loopback"),
        ("vlan.32", "vlan"),
        ("ha1-a", "other"),
        ("hsci", "other"),
    ],
)
def test_it_classifies_interfaces_by_name(name: str, kind: str) -> None:
    assert panos_xml.interface_kind(name) == kind


def test_it_reads_the_detail_and_both_counter_blocks_of_a_physical_port() -> None:
    info, hw, ifnet = parse_interface_detail(load("show-interface-ethernet1-1__cbt4all-netaut.xml"))
    assert (info.name, info.kind, info.state, info.zone, info.vsys) == (
        "ethernet1/1",
        "physical",
        "up",
        "ZONE1",
        "vsys1",
    )
    assert (info.ip, info.mac, info.speed_mbps, info.duplex) == ("1.1.1.254/24", "0c:8a:bc:48:a7:01", None, "auto")
    assert hw is not None and ifnet is not None
    assert (hw.name, hw.source, hw.ibytes, hw.obytes) == ("ethernet1/1", "hw", 0, 0)
    assert (ifnet.name, ifnet.source, ifnet.idrops) == ("ethernet1/1", "ifnet", 0)


def test_it_reads_a_subinterface_detail_with_empty_hw_counters() -> None:
    info, hw, ifnet = parse_interface_detail(load("show-interface-ethernet1-6.123__pan-os-upgrade-assurance.xml"))
    assert (info.name, info.kind, info.tag, info.vsys, info.zone) == (
        "ethernet1/6.123",
        "subinterface",
        123,
        "vsys6",
        None,
    )
    assert hw is None
    assert ifnet is not None and ifnet.name == "ethernet1/6.123"


def test_it_raises_interface_not_found_for_a_success_with_an_error_element() -> None:
    with pytest.raises(InterfaceNotFound, match="ethernet1/123") as caught:
        parse_interface_detail(load("show-interface-not-found__pan-os-upgrade-assurance.xml"))
    assert caught.value.code is None


# --------------------------------------------------------------------------------------
# HA, licenses, ARP, GlobalProtect
# --------------------------------------------------------------------------------------


def test_it_reads_a_passive_local_and_active_peer() -> None:
    ha = parse_ha_state(load("show-high-availability-state-enabled-passive__demisto-content-pavm-10.0.9.xml"))
    assert (ha.enabled, ha.mode, ha.local_state, ha.peer_state) == (True, "Active-Passive", "passive", "active")
    assert (ha.running_sync, ha.peer_ip) == ("not synchronized", "1.1.1.141")


def test_it_reads_ha_disabled() -> None:
    ha = parse_ha_state(load("show-high-availability-state-disabled__demisto-content.xml"))
    assert ha == HaState(enabled=False)
    assert (ha.enabled, ha.local_state, ha.peer_state) == (False, None, None)


def test_it_reads_panorama_ha_state_without_a_group() -> None:
    body = """<response status="success"><result><enabled>yes</enabled><local-info><state>primary-active</state>
    <mode>Active-Passive</mode></local-info><peer-info><state>secondary-passive</state><mgmt-ip>10.0.0.2</mgmt-ip>
    </peer-info></result></response>"""
    ha = parse_ha_state(body)
    assert (ha.enabled, ha.mode, ha.local_state, ha.peer_state, ha.peer_ip) == (
        True,
        "Active-Passive",
        "primary-active",
        "secondary-passive",
        "10.0.0.2",
    )


def test_it_reads_license_dates_and_expiry() -> None:
    licenses = parse_licenses(load("request-license-info__pan-os-upgrade-assurance.xml"))
    assert [lic.feature for lic in licenses] == ["PAN-DB URL Filtering", "Logging Service", "Premium"]
    url = licenses[0]
    assert (url.issued, url.expires, url.expired) == (date(2023, 4, 20), date(2023, 12, 31), False)
    assert url.description == "Palo Alto Networks URL Filtering License"
    assert licenses[1].expires == date(2024, 8, 4)
    assert licenses[2].expires == date(2028, 6, 30)


def test_it_reads_a_never_expiring_license_and_an_expired_one() -> None:
    # SYNTHETIC: no public sample shows "Never"; structure copied from the real license reply.
    body = """<response status="success"><result><licenses>
    <entry><feature>PA-VM</feature><description>Standard VM-100</description><serial>0001</serial>
    <issued>May 02, 2023</issued><expires>Never</expires><expired>no</expired><authcode/></entry>
    <entry><feature>Threat Prevention</feature><description>Threat Prevention</description><serial>0001</serial>
    <issued>January 01, 2020</issued><expires>January 01, 2021</expires><expired>yes</expired><authcode/></entry>
    </licenses></result></response>"""
    vm, threat = parse_licenses(body)
    assert (vm.feature, vm.issued, vm.expires, vm.expired) == ("PA-VM", date(2023, 5, 2), None, False)
    assert (threat.expires, threat.expired) == (date(2021, 1, 1), True)


def test_it_reads_an_unlicensed_box_as_no_licenses() -> None:
    assert parse_licenses('<response status="success"><result><licenses/></result></response>') == ()


def test_it_strips_padded_arp_status_and_reads_static_ttl_as_none() -> None:
    entries = parse_arp(load("show-arp-all__device-firewall-paloalto-pavm-8.1.3.xml"))
    assert len(entries) == 4
    first = entries[0]
    assert (first.interface, first.ip, first.mac, first.port, first.status, first.ttl) == (
        "ethernet1/1",
        "192.168.122.1",
        "52:54:00:d8:ec:73",
        "ethernet1/1",
        "c",
        1798,
    )
    assert [e.status for e in entries] == ["c", "s", "s", "s"]
    assert [e.ttl for e in entries[1:]] == [None, None, None]
    assert (entries[3].interface, entries[3].port) == ("ethernet1/3.16", "ethernet1/3")


@pytest.mark.parametrize(
    ("name", "count", "ttl"),
    [("show-arp-all__demisto-content.xml", 2, 1778), ("show-arp-all__pan-os-upgrade-assurance.xml", 1, 1777)],
)
def test_it_reads_arp_tables_in_any_element_order(name: str, count: int, ttl: int) -> None:
    entries = parse_arp(load(name))
    assert len(entries) == count
    assert (entries[0].status, entries[0].ttl, entries[0].interface) == ("c", ttl, "ethernet1/1")


def test_it_reads_globalprotect_users_from_the_vendor_docs() -> None:
    (user,) = parse_gp_users(load("show-global-protect-gateway-current-user__panos-docs-9.1.xml"))
    assert (user.username, user.domain, user.computer, user.client) == (
        "dward",
        None,
        "Dan’s iPhone",
        "Apple iOS 8.1.2",
    )
    assert (user.virtual_ip, user.public_ip, user.login_time_utc) == ("192.168.2.1", "166.173.63.240", 1421916636)


def test_it_reads_a_globalprotect_user_with_a_wrapped_client_string() -> None:
    (user,) = parse_gp_users(load("show-global-protect-gateway-current-user-user__forescout-eyeextend-panos-8.1.xml"))
    assert user.username == "labvpnuser1"
    assert user.client == "Microsoft Windows 7 Ultimate Edition Service Pack 1, 64-bit"
    assert (user.virtual_ip, user.public_ip, user.login_time_utc) == ("10.100.76.13", "10.100.3.126", 1582055460)


def test_it_reads_no_globalprotect_users_from_an_empty_result() -> None:
    assert parse_gp_users('<response status="success"><result/></response>') == ()
