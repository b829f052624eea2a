"""Applications from the ACC dynamic reports: simulator truth, a job that never finishes, storage, the API."""

from __future__ import annotations

import calendar
import functools
import time

import pytest
from conftest import LOOPBACK, start_sim
from helpers.parsers import SAMPLES
from helpers.web import add_device, make_client

from panfm.collector.cycle import Collector, panos_client_factory
from panfm.collector.slow import app_rows, category_rows
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.network_reader import NetworkReader
from panfm.storage.network_store import NETWORK_DB, NetworkStore
from panfm.xmlapi.parsers import parse_report_job

SIM_CLIENTS = functools.partial(panos_client_factory, policy=LOOPBACK)


def device(entry):
    tls = TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"])
    return DeviceConfig(id=entry["name"], name=entry["name"], host=entry["host"], port=entry["port"],
                        api_key=entry["api_key"], tls=tls)


def epoch(text):
    return float(calendar.timegm(time.strptime(text, "%Y/%m/%d %H:%M:%S")))


def test_it_reads_a_report_job_and_maps_acc_fields_by_name():
    job = parse_report_job(SAMPLES["report-dynamic-top-app-summary-fin__SYNTHETIC.xml"])
    assert job.status == "FIN" and len(job.entries) == 3
    apps = app_rows(job.entries)
    assert apps[0]["name"] == "ssl" and apps[0]["category"] == "networking" and apps[0]["risk"] == 4
    assert all(a["bytes"] > 0 and a["sessions"] > 0 and a["sources"] for a in apps)
    # Another release's spelling: app/bytes/sessions; a row without a name is skipped.
    assert app_rows([{"app": "dns", "bytes": "10", "sessions": "2"}, {"nbytes": "5"}]) == [
        {"name": "dns", "category": None, "risk": None, "bytes": 10, "sessions": 2, "sources": None}]
    assert category_rows([{"category-of-name": "media", "nbytes": "7", "nsess": "1"}]) == [
        {"name": "media", "bytes": 7, "sessions": 1}]


@pytest.mark.slow
def test_it_stores_the_simulators_top_applications_for_the_window_since_the_last_run(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-440") as sim:
        entry = sim.inventory[0]
        collector = Collector(workers=2, request_timeout=5.0, client_factory=SIM_CLIENTS)
        try:
            [(_id, _ts, doc)] = collector.collect_slow([device(entry)], window_s=300)
        finally:
            collector.close()
        apps = doc["applications"]
        truth = sim.truth(entry, epoch(apps["start"]), epoch(apps["end"]))
        stats = sim.stats(entry)[entry["name"]]
    assert epoch(apps["end"]) - epoch(apps["start"]) == 300
    expected = {a["name"]: a for a in truth["applications"]}
    assert [a["name"] for a in apps["apps"]] == [a["name"] for a in truth["applications"]]
    for a in apps["apps"]:
        assert (a["bytes"], a["sessions"], a["sources"], a["risk"]) == (
            expected[a["name"]]["bytes"], expected[a["name"]]["sessions"], expected[a["name"]]["sources"],
            expected[a["name"]]["risk"])
    assert {c["name"]: c["bytes"] for c in apps["categories"]} == {c["name"]: c["bytes"]
                                                                   for c in truth["app_categories"]}
    assert stats["max_concurrency"] <= 2  # the inventory's calls go one at a time


@pytest.mark.slow
def test_a_report_job_that_never_finishes_is_stopped_and_the_rest_is_kept(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-VM") as sim:
        entry = sim.inventory[0]
        sim.fault(entry, "report_stuck", 120)
        collector = Collector(workers=2, request_timeout=5.0, client_factory=SIM_CLIENTS)
        try:
            [(_id, _ts, doc)] = collector.collect_slow([device(entry)], window_s=300, deadline_s=12)
        finally:
            collector.close()
        requests = sim.stats(entry)[entry["name"]]["requests"]
    assert "applications" not in doc and doc["errors"]["applications"].startswith("PanosTimeout")
    assert doc["system"]["serial"] == entry["serial"] and doc["connected_devices"]  # the rest is stored
    assert requests.get("report:finish", 0) >= 1  # the stuck job was stopped, not left running


def test_the_api_sums_the_runs_inside_the_range(tmp_path):
    _app, client = make_client(tmp_path)
    fw = add_device(client, "fw", "192.0.2.5")
    now = time.time()
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        for i, age in enumerate((7200, 600, 300, 0)):
            store.record_apps(fw, now - age - 1, [
                {"name": "ssl", "category": "networking", "risk": 4, "bytes": 1000 * (i + 1), "sessions": 10,
                 "sources": 3 + i},
                {"name": "<b>evil</b>", "category": "media", "risk": 5, "bytes": 1, "sessions": 1, "sources": 1},
            ], [{"name": "networking", "bytes": 1000 * (i + 1), "sessions": 10}])
    finally:
        store.close()
    r = client.get(f"/api/applications?device_id={fw}&range=15m")
    assert r.status_code == 200
    body = r.get_json()
    assert {"range", "source", "as_of", "applications", "categories"} <= set(body)
    assert body["range"] == "15m" and body["source"] == "acc" and body["as_of"].endswith("Z")
    ssl = body["applications"][0]
    assert (ssl["name"], ssl["bytes"], ssl["sessions"], ssl["sources"]) == ("ssl", 2000 + 3000 + 4000, 30, 6)
    assert set(ssl) >= {"name", "category", "risk", "bytes", "sessions", "sources"}
    assert body["categories"] == [{"name": "networking", "bytes": 9000, "sessions": 30, "category": None,
                                   "risk": None, "sources": None}]
    assert len(body["timeline"]) == 3
    day = client.get(f"/api/applications?device_id={fw}&range=24h").get_json()
    assert day["applications"][0]["bytes"] == 10000 and len(day["timeline"]) == 4
    assert client.get(f"/api/applications?device_id={fw}&range=7d").status_code == 400
    assert client.get("/api/applications?device_id=nope").status_code == 404
    with NetworkReader.open(tmp_path / NETWORK_DB) as reader:
        assert reader.top_application(now - 900) == {fw: "ssl"}
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        assert store.cleanup(now + 2 * 86400 - 3600, 30)["app_stats"] == 3  # the 2-hour-old run: 2 apps, 1 category
    finally:
        store.close()


def test_the_api_answers_empty_before_any_run_and_serves_the_page(tmp_path):
    _app, client = make_client(tmp_path)
    fw = add_device(client, "fw", "192.0.2.6")
    body = client.get(f"/api/applications?device_id={fw}").get_json()
    assert body["applications"] == [] and body["as_of"] is None and body["range"] == "1h"
    page = client.get("/applications")
    assert page.status_code == 200 and b"applications.js" in page.data
