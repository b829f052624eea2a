"""Threat and blocked-URL tiles: the windowed logs summarised per run, stored, summed over a range."""

from __future__ import annotations

import functools
import time

import pytest
from conftest import LOOPBACK, start_sim
from helpers.web import add_device, make_client

from panfm.collector.cycle import Collector, panos_client_factory
from panfm.collector.security import LATEST, summarize
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.network_store import NETWORK_DB, NetworkStore

SIM_CLIENTS = functools.partial(panos_client_factory, policy=LOOPBACK)
HOSTILE = "<img src=x onerror=window.__pwned=4>"


def threat(sev, name="Eicar File Detected", **kw):
    return {"severity": sev, "threatid": name, "receive_time": "2026/12/04 10:00:00", "src": "10.0.0.5",
            "dst": "203.0.113.9", "action": "reset-both", "thr_category": "virus", **kw}


def test_it_counts_severities_keeps_the_latest_and_ranks_names():
    threats = [threat("critical"), threat("high", "X"), threat("high", "X"), threat("low", HOSTILE * 50),
               threat("informational", "Y")]
    urls = [{"category": "malware", "misc": "bad.example/x", "action": "block-url", "severity": "informational"},
            {"category": "malware", "misc": "bad.example/y"}, {"category": "gambling", "misc": "bet.example/"}]
    s = summarize(threats, urls)
    assert s["counts"] == {"critical": 1, "high": 2, "medium": 0, "low": 1} and s["blocked_urls"] == 3
    assert s["top_threats"][0] == {"name": "X", "count": 2}
    assert s["top_url_categories"] == [{"name": "malware", "count": 2}, {"name": "gambling", "count": 1}]
    assert len(s["latest"]) == 8 and {e["kind"] for e in s["latest"]} == {"threat", "url"}
    assert max(len(e["name"] or "") for e in s["latest"]) == 300  # a log field is clipped, never a payload
    failed = summarize(None, [])
    assert failed["counts"] is None and failed["blocked_urls"] == 0  # a failed query is unknown, not zero
    assert len(summarize([threat("high")] * 500, None)["latest"]) == LATEST


@pytest.mark.slow
def test_the_inventory_job_summarises_the_simulators_threat_and_url_logs(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-3220") as sim:
        entry = sim.inventory[0]
        tls = TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"])
        dev = DeviceConfig(id="fw", name=entry["name"], host=entry["host"], port=entry["port"],
                           api_key=entry["api_key"], tls=tls)
        collector = Collector(workers=2, request_timeout=5.0, client_factory=SIM_CLIENTS)
        try:
            [(_id, _ts, doc)] = collector.collect_slow([dev], window_s=3600)
        finally:
            collector.close()
    s = doc["security"]
    assert {k: s["counts"][k] for k in ("critical", "high", "medium")} == doc["threats"]
    assert sum(s["counts"].values()) > 0 and s["blocked_urls"] == doc["blocked_urls"]
    assert s["top_threats"] and all(t["count"] > 0 for t in s["top_threats"])
    assert 0 < len([e for e in s["latest"] if e["kind"] == "threat"]) <= LATEST


def test_the_api_sums_runs_and_returns_the_latest_events(tmp_path):
    _app, client = make_client(tmp_path)
    fw = add_device(client, "fw", "192.0.2.5")
    now = time.time()
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        for age, name in ((7200, "old"), (600, "A"), (0, "B")):
            store.record_security(fw, now - age - 1, summarize([threat("critical", name), threat("medium", name)],
                                                               [{"category": "malware", "misc": f"{name}.example"}]))
    finally:
        store.close()
    body = client.get(f"/api/threats?device_id={fw}&range=1h").get_json()
    assert body["counts"] == {"critical": 2, "high": 0, "medium": 2, "low": 0} and body["blocked_urls"] == 2
    assert [e["name"] or e["url"] for e in body["latest"]][:3] == ["B", "B", "B.example"]  # newest run first
    assert {t["name"] for t in body["top_threats"]} == {"A", "B"}
    assert body["top_url_categories"] == [{"name": "malware", "count": 2}]
    assert client.get(f"/api/threats?device_id={fw}&range=24h").get_json()["counts"]["critical"] == 3
    assert client.get(f"/api/threats?device_id={fw}&range=2d").status_code == 400
    other = add_device(client, "fw2", "192.0.2.6")
    empty = client.get(f"/api/threats?device_id={other}").get_json()
    assert empty["counts"] == {"critical": None, "high": None, "medium": None, "low": None} and empty["latest"] == []
    assert client.get("/threats").status_code == 200
    summary = client.get("/api/network/summary").get_json()["devices"][fw]
    assert summary["threats"]["critical"] == 2 and summary["blocked_urls"] == 2  # the last hour
    assert summary["top_application"] is None and summary["connected_devices"] is None
