"""The simulator's XML API: keys, the real 403, op commands, code 17, log jobs, stats."""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest

FORBIDDEN = b"<response status = 'error' code = '403'><result><msg>Invalid Credential</msg></result></response>"


def api(fleet, entry, params, *, method="POST", key=True, header=True):
    """Call /api/ with PARAMS; the key goes in X-PAN-KEY unless header=False (then key=)."""
    params = dict(params)
    headers = {}
    if key and header:
        headers["X-PAN-KEY"] = entry["api_key"]
    elif key:
        params["key"] = entry["api_key"]
    if method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return fleet.request(entry, "POST", "/api/", urlencode(params).encode(), headers)
    return fleet.request(entry, "GET", "/api/?" + urlencode(params), None, headers)


def op(fleet, entry, cmd):
    status, _, headers, body = api(fleet, entry, {"type": "op", "cmd": cmd})
    assert status == 200
    assert headers["Content-Type"] == "application/xml; charset=UTF-8"
    return ET.fromstring(body)


def test_it_writes_an_inventory_with_every_contract_field(sim_fleet):
    fields = {"name", "host", "port", "serial", "model", "sw_version", "username", "password", "api_key",
              "tls_fingerprint_sha256"}
    assert [d["model"] for d in sim_fleet.inventory] == ["PA-440", "PA-3220", "PA-5450", "PA-VM"]
    for d in sim_fleet.inventory:
        assert set(d) == fields
        fp = d["tls_fingerprint_sha256"]
        assert len(fp) == 64 and fp == fp.lower() and ":" not in fp
    assert len({d["port"] for d in sim_fleet.inventory}) == 4
    assert len({d["tls_fingerprint_sha256"] for d in sim_fleet.inventory}) == 4


def test_it_returns_the_same_key_for_every_keygen_by_get_or_post(sim_fleet):
    entry = sim_fleet.inventory[0]
    creds = {"type": "keygen", "user": entry["username"], "password": entry["password"]}
    for method in ("GET", "POST", "POST"):
        status, _, _, body = api(sim_fleet, entry, creds, method=method, key=False)
        assert status == 200
        assert ET.fromstring(body).findtext("result/key") == entry["api_key"]


def test_it_accepts_posted_passwords_with_special_characters(sim_fleet):
    specials = [e for e in sim_fleet.inventory if any(c in e["password"] for c in "&<\"!")]
    assert specials, "every fleet has passwords with & < \" or !"
    for entry in specials:
        creds = {"type": "keygen", "user": entry["username"], "password": entry["password"]}
        status, _, _, body = api(sim_fleet, entry, creds, key=False)
        assert status == 200, entry["password"]
        assert ET.fromstring(body).findtext("result/key") == entry["api_key"]


@pytest.mark.parametrize("params", [
    {"type": "keygen", "user": "admin", "password": "wrong"},
    {"type": "op", "cmd": "<show><system><info/></system></show>", "key": "not-the-key"},
])
def test_it_answers_bad_credentials_with_the_real_403(sim_fleet, params):
    status, reason, headers, body = api(sim_fleet, sim_fleet.inventory[1], params, key=False)
    assert (status, reason) == (403, "Invalid Credential")
    assert body == FORBIDDEN and len(body) == 97
    assert headers["Content-Type"] == "application/xml; charset=UTF-8"


def test_it_accepts_basic_auth_and_the_key_in_the_url_and_counts_the_latter(sim_fleet):
    entry = sim_fleet.inventory[2]
    before = sim_fleet.stats(entry)[entry["name"]]["key_in_url"]
    status, _, _, _ = api(sim_fleet, entry, {"type": "version"}, method="GET", header=False)
    assert status == 200
    basic = base64.b64encode(f"{entry['username']}:{entry['password']}".encode()).decode()
    headers = {"Authorization": "Basic " + basic}
    status, _, _, body = sim_fleet.request(entry, "GET", "/api/?type=version", None, headers)
    assert status == 200 and ET.fromstring(body).findtext("result/serial") == entry["serial"]
    assert sim_fleet.stats(entry)[entry["name"]]["key_in_url"] == before + 1


@pytest.mark.parametrize("name", ["x-pan-key", "X-Pan-Key"])
def test_it_reads_header_names_case_insensitively_like_any_http_server(sim_fleet, name):
    # HTTP header names are case-insensitive (RFC 9110); HTTP/2 clients and urllib send them lower-
    # or title-cased, and PAN-OS accepts them. A case-sensitive sim would fail correct clients.
    entry = sim_fleet.inventory[1]
    status, _, _, body = sim_fleet.request(entry, "GET", "/api/?type=version", None, {name: entry["api_key"]})
    assert status == 200 and ET.fromstring(body).findtext("result/serial") == entry["serial"]
    basic = base64.b64encode(f"{entry['username']}:{entry['password']}".encode()).decode()
    status, _, _, _ = sim_fleet.request(entry, "GET", "/api/?type=version", None, {"authorization": "Basic " + basic})
    assert status == 200


def test_it_answers_an_unknown_op_with_code_17(sim_fleet):
    root = op(sim_fleet, sim_fleet.inventory[0], "<show><redistribution><status/></redistribution></show>")
    assert root.get("status") == "error" and root.get("code") == "17"
    assert root.findtext("msg/line").strip() == "show -> redistribution  is unexpected"


def test_it_compares_commands_structurally_ignoring_whitespace(sim_fleet):
    entry = sim_fleet.inventory[3]
    root = op(sim_fleet, entry, "<show>\n  <system>  <info></info> </system>\n</show>")
    assert root.findtext("result/system/serial") == entry["serial"]
    assert root.findtext("result/system/time").endswith("\n")


def test_it_reports_a_missing_interface_inside_a_success(sim_fleet):
    root = op(sim_fleet, sim_fleet.inventory[0], "<show><interface>ethernet1/99</interface></show>")
    assert root.get("status") == "success"
    assert root.findtext("result/error") == "Interface 'ethernet1/99' not found"


@pytest.mark.parametrize(("flt", "matches"), [
    ("sys.monitor.s*.mp.exports", True), ("sys.monitor.s0.mp.exports", True), ("sys.monitor.s1.mp.exports", False),
    ("no.such.thing", False),
])
def test_it_filters_system_state_and_answers_no_matches(sim_fleet, flt, matches):
    root = op(sim_fleet, sim_fleet.inventory[0], f"<show><system><state><filter>{flt}</filter></state></system></show>")
    text = root.findtext("result")
    assert ("'1minavg':" in text) is matches
    assert ("NO_MATCHES" in text) is (not matches)


def test_it_serves_resource_monitor_histories_of_the_right_length(sim_fleet):
    entry = sim_fleet.inventory[2]  # PA-5450: three dataplanes
    for period, count in (("second", 60), ("minute", 5), ("hour", 24)):
        last = "<last>5</last>" if period == "minute" else ""
        root = op(sim_fleet, entry, f"<show><running><resource-monitor><{period}>{last}</{period}>"
                                    "</resource-monitor></running></show>")
        dps = root.find("result/resource-monitor/data-processors")
        assert [dp.tag for dp in dps] == ["dp2", "dp1", "dp0"]
        for dp in dps:
            avg = dp.findall(f"{period}/cpu-load-average/entry")
            assert len(avg) == 16
            assert all(len(e.findtext("value").split(",")) == count for e in avg)
            assert set(avg[0].findtext("value").split(",")) == {"0"}
            names = [e.findtext("name") for e in dp.findall(f"{period}/resource-utilization/entry")]
            if period == "hour":
                assert "packet buffer (maximum)" in names and "session (average)" in names
            else:
                assert names == ["session", "packet buffer", "packet descriptor", "packet descriptor (on-chip)"]


def test_it_runs_a_log_job_act_then_fin_then_forgets_it(sim_fleet):
    entry = sim_fleet.inventory[1]
    since = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(time.time() - 3600))
    _, _, _, body = api(sim_fleet, entry, {"type": "log", "log-type": "threat", "nlogs": "50",
                                           "query": f"( receive_time geq '{since}' )"})
    root = ET.fromstring(body)
    assert root.get("code") == "19"
    job = root.findtext("result/job")
    assert f"jobid {job}" in root.findtext("result/msg/line")
    seen = []
    for _ in range(5):
        root = ET.fromstring(api(sim_fleet, entry, {"type": "log", "action": "get", "job-id": job})[3])
        state = root.findtext("result/job/status")
        seen.append(state)
        if state == "FIN":
            break
        assert root.find("result/log") is None
    assert seen[0] == "ACT" and seen[-1] == "FIN"
    logs = root.find("result/log/logs")
    entries = logs.findall("entry")
    assert logs.get("count") == str(len(entries)) and 0 < len(entries) <= 50
    assert {e.findtext("severity") for e in entries} <= {"critical", "high", "medium", "low", "informational"}
    times = [e.findtext("receive_time") for e in entries]
    assert times == sorted(times, reverse=True) and min(times) >= since
    gone = ET.fromstring(api(sim_fleet, entry, {"type": "log", "action": "get", "job-id": job})[3])
    assert gone.get("status") == "error"


def log_entries(fleet, entry, log_type, query, nlogs=5000):
    """Run one log query to FIN and return its entries."""
    root = ET.fromstring(api(fleet, entry, {"type": "log", "log-type": log_type, "nlogs": str(nlogs),
                                            "query": query})[3])
    job = root.findtext("result/job")
    for _ in range(20):
        root = ET.fromstring(api(fleet, entry, {"type": "log", "action": "get", "job-id": job})[3])
        if root.findtext("result/job/status") == "FIN":
            return root.findall("result/log/logs/entry")
        time.sleep(0.05)
    raise AssertionError("log job never finished")


def test_it_applies_a_log_query_filter_before_counting_entries_as_the_firewall_does(sim_fleet):
    entry = sim_fleet.inventory[2]
    t2 = time.time()
    t1 = t2 - 1800
    since = f"( receive_time geq '{time.strftime('%Y/%m/%d %H:%M:%S', time.gmtime(t1))}' )"
    every = log_entries(sim_fleet, entry, "url", since)
    blocked = log_entries(sim_fleet, entry, "url", since + " and ( action eq block-url )")
    allowed = log_entries(sim_fleet, entry, "url", since + " and not ( action eq block-url )")
    assert {e.findtext("action") for e in every} == {"alert", "block-url"}
    assert {e.findtext("action") for e in blocked} == {"block-url"}
    assert {e.findtext("action") for e in allowed} == {"alert"}
    assert 0 < len(blocked) < len(every) and len(blocked) + len(allowed) == len(every)
    # nlogs counts matching entries (the newest two blocked ones, not the blocked ones among the newest two).
    two = log_entries(sim_fleet, entry, "url", since + " and ( action eq block-url )", nlogs=2)
    assert [e.get("logid") for e in two] == [e.get("logid") for e in blocked[:2]]
    # The ACC's blocked-URL report counts the same entries (the simulator's truth of it).
    truth = sim_fleet.truth(entry, t1, t2)
    assert sum(row["count"] for row in truth["acc_url_categories"]) in range(len(blocked) - 1, len(blocked) + 2)
    severe = log_entries(sim_fleet, entry, "threat",
                         since + " and ( ( severity eq critical ) or ( severity eq high ) )")
    assert severe and {e.findtext("severity") for e in severe} <= {"critical", "high"}
    assert len(log_entries(sim_fleet, entry, "threat", since)) > len(severe)


def test_a_log_filter_it_cannot_read_filters_nothing_and_never_breaks_the_answer():
    from panos_sim.xml_logs import compile_filter

    assert compile_filter("( action eq block-url )")({"action": "alert"}) is False
    deep = "(" * 5000 + "action eq x" + ")" * 5000
    for unreadable in ("((( action eq block-url )", "( addr.src in 10.0.0.0/8 )", deep):
        assert compile_filter(unreadable) is None


def test_it_stops_a_log_job_with_finish(sim_fleet):
    entry = sim_fleet.inventory[1]
    root = ET.fromstring(api(sim_fleet, entry, {"type": "log", "log-type": "system"})[3])
    job = root.findtext("result/job")
    done = ET.fromstring(api(sim_fleet, entry, {"type": "log", "action": "finish", "job-id": job})[3])
    assert done.get("status") == "success"
    gone = ET.fromstring(api(sim_fleet, entry, {"type": "log", "action": "get", "job-id": job})[3])
    assert gone.get("status") == "error"


def test_it_counts_requests_by_command(sim_fleet):
    entry = sim_fleet.inventory[3]
    before = sim_fleet.stats(entry)[entry["name"]]["requests"].get("op:show session info", 0)
    op(sim_fleet, entry, "<show><session><info/></session></show>")
    op(sim_fleet, entry, "<show><session><info/></session></show>")
    after = sim_fleet.stats()[entry["name"]]
    assert after["requests"]["op:show session info"] == before + 2
    assert after["max_concurrency"] >= 1
