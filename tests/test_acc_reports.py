"""The ACC's threat, blocked-URL-category and source reports: parsers, the simulator's truth, the API."""

from __future__ import annotations

import calendar
import functools
import time

import pytest
from conftest import LOOPBACK, start_sim
from helpers.parsers import SAMPLES
from helpers.web import add_device, make_client

from panfm.collector.acc import source_rows, threat_rows, url_category_rows
from panfm.collector.cycle import Collector, panos_client_factory
from panfm.collector.slow import app_rows
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.network_store import NETWORK_DB, NetworkStore
from panfm.xmlapi import BadResponse
from panfm.xmlapi.parsers import parse_report_at_once, parse_report_job

SIM_CLIENTS = functools.partial(panos_client_factory, policy=LOOPBACK)


def epoch(text):
    return float(calendar.timegm(time.strptime(text, "%Y/%m/%d %H:%M:%S")))


def test_it_reads_the_real_capture_of_a_report_answered_at_once():
    # pan-python's capture: <response><report><result ...><entry> (rows one level down, no job).
    job = parse_report_at_once(SAMPLES["report-dynamic-acc-summary-at-once__pan-python-docs.xml"])
    assert job is not None and job.status == "FIN"
    assert app_rows(job.entries) == [{"name": "paloalto-wildfire-cloud", "category": None, "risk": 1,
                                      "bytes": 9005951, "sessions": 723, "sources": None}]
    # An enqueue reply is not a report answered at once; a job reply's rows come from parse_report_job.
    enqueued = b'<response status="success" code="19"><result><job>7</job></result></response>'
    assert parse_report_at_once(enqueued) is None
    assert parse_report_at_once(SAMPLES["report-dynamic-top-attacks-acc-fin__SYNTHETIC.xml"]) is None


def test_it_reads_the_threat_url_category_and_source_reports_by_field_name():
    threats = threat_rows(parse_report_job(SAMPLES["report-dynamic-top-attacks-acc-fin__SYNTHETIC.xml"]).entries)
    names = [t["name"] for t in threats]
    assert len(names) == len(set(names))  # one row per threat, its severities summed
    smb = next(t for t in threats if t["tid"] == "91820")
    assert smb["severity"] == "critical" and smb["count"] >= 4 and smb["subtype"] == "vulnerability"
    assert [t["count"] for t in threats] == sorted((t["count"] for t in threats), reverse=True)
    urls = url_category_rows(parse_report_job(
        SAMPLES["report-dynamic-top-blocked-url-categories-summary-fin__SYNTHETIC.xml"]).entries)
    assert urls == [{"name": "computer-and-internet-info", "count": 150}]
    sources = source_rows(parse_report_job(SAMPLES["report-dynamic-top-src-summary-fin__SYNTHETIC.xml"]).entries)
    assert sources[0] == {"name": "10.1.188.195", "user": None, "bytes": 1566338, "sessions": 2}
    # Odd rows: no name is skipped, a huge or non-numeric count reads 0, hostile text is kept as text (clipped).
    assert threat_rows([{"count": "3"}, {"threatid": "<img src=x>", "count": "9" * 30},
                        {"threatid": "x" * 500, "count": "n/a", "severity": "HIGH"}]) == [
        {"name": "x" * 300, "count": 0, "severity": "high", "tid": None, "subtype": None},  # ties: most severe first
        {"name": "<img src=x>", "count": 0, "severity": None, "tid": None, "subtype": None}]


def test_a_report_reply_without_a_job_status_is_refused():
    with pytest.raises(BadResponse):
        parse_report_job(b'<response status="success"><result><report><entry/></report></result></response>')


@pytest.mark.slow
def test_the_inventory_stores_the_acc_tops_the_simulator_states(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-3220") as sim:
        entry = sim.inventory[0]
        tls = TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"])
        device = DeviceConfig(id=entry["name"], name=entry["name"], host=entry["host"], port=entry["port"],
                              api_key=entry["api_key"], tls=tls)
        collector = Collector(workers=2, request_timeout=5.0, client_factory=SIM_CLIENTS)
        try:
            [(_id, _ts, doc)] = collector.collect_slow([device], window_s=300)
        finally:
            collector.close()
        apps = doc["applications"]
        truth = sim.truth(entry, epoch(apps["start"]), epoch(apps["end"]))
        stats = sim.stats(entry)[entry["name"]]
    assert not apps["unavailable"]
    expected: dict[str, int] = {}
    for t in truth["acc_threats"]:
        expected[t["name"]] = expected.get(t["name"], 0) + t["count"]
    assert {t["name"]: t["count"] for t in apps["threats"]} == expected
    assert apps["url_categories"] == truth["acc_url_categories"]
    assert [(s["name"], s["bytes"], s["sessions"]) for s in apps["sources"]] == [
        (s["src"], s["bytes"], s["sessions"]) for s in truth["acc_sources"][:25]]
    assert stats["max_concurrency"] <= 2 and stats["requests"].get("report:finish", 0) == 0


def test_the_threats_api_takes_the_acc_tops_and_says_so(tmp_path):
    _app, client = make_client(tmp_path)
    fw = add_device(client, "fw", "192.0.2.5")
    now = time.time()
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        store.record_security(fw, now - 60, {"counts": {"critical": 1, "high": 0, "medium": 0, "low": 0},
                                             "blocked_urls": 2, "latest": [],
                                             "top_threats": [{"name": "log-threat", "count": 1}],
                                             "top_url_categories": [{"name": "log-cat", "count": 2}]})
        before = client.get(f"/api/threats?device_id={fw}&range=15m").get_json()
        store.record_acc(fw, now - 60, [{"name": "<script>x</script>", "count": 9, "severity": "high"}],
                         [{"name": "malware", "count": 4}],
                         [{"name": "10.0.0.7", "user": None, "bytes": 100, "sessions": 1}])
    finally:
        store.close()
    body = client.get(f"/api/threats?device_id={fw}&range=15m").get_json()
    assert before["top_threats"] == [{"name": "log-threat", "count": 1}]
    assert before["tops_from"] == {"top_threats": "logs", "top_url_categories": "logs"}
    assert {"counts", "blocked_urls", "latest", "top_threats", "top_url_categories"} <= set(body)
    assert body["top_threats"] == [{"name": "<script>x</script>", "count": 9, "severity": "high"}]
    assert body["top_url_categories"] == [{"name": "malware", "count": 4}]
    assert body["tops_from"] == {"top_threats": "acc", "top_url_categories": "acc"}
    assert body["counts"]["critical"] == 1 and body["blocked_urls"] == 2  # counts stay the windowed logs'
    apps = client.get(f"/api/applications?device_id={fw}&range=15m").get_json()
    assert apps["top_sources"] == [{"name": "10.0.0.7", "user": None, "bytes": 100, "sessions": 1}]
