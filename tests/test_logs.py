"""Logs: system and traffic entries fetched by the inventory job, trimmed, kept briefly, read back."""

from __future__ import annotations

import calendar
import functools
import time

import pytest
from conftest import LOOPBACK, start_sim
from helpers.web import add_device, make_client

import config
from panfm.collector.cycle import Collector, panos_client_factory
from panfm.collector.logs import LOG_CAP, entry_epoch, trim
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.network_store import NETWORK_DB, NetworkStore
from panfm.storage.samples import HISTORY_DB, SampleStore

SIM_CLIENTS = functools.partial(panos_client_factory, policy=LOOPBACK)


def fw_time(epoch):
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(epoch))


def test_it_trims_entries_to_the_shown_fields_with_their_utc_time():
    entries = [{"logid": str(i), "receive_time": "2026/12/04 11:00:00", "severity": "high", "opaque": "x" * 900,
                "serial": "007", "subtype": "general"} for i in range(LOG_CAP + 50)]
    out = trim("system", entries, clock_offset_s=3600.0)  # the firewall runs an hour ahead of UTC
    assert len(out) == LOG_CAP
    first = out[0]
    assert first["id"] == "0" and "serial" not in first and len(first["opaque"]) == 512
    assert first["epoch"] == calendar.timegm(time.strptime("2026-12-04 10:00:00", "%Y-%m-%d %H:%M:%S"))
    assert trim("traffic", [{"receive_time": "garbage", "src": "10.0.0.1"}], 0.0)[0]["epoch"] is None


@pytest.mark.slow
def test_the_inventory_job_fetches_the_windows_system_and_traffic_logs(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-440") as sim:
        entry = sim.inventory[0]
        tls = TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"])
        dev = DeviceConfig(id="fw", name=entry["name"], host=entry["host"], port=entry["port"],
                           api_key=entry["api_key"], tls=tls)
        collector = Collector(workers=2, request_timeout=5.0, client_factory=SIM_CLIENTS)
        try:
            started = time.time()
            [(_id, _ts, doc)] = collector.collect_slow([dev], window_s=3600)
        finally:
            collector.close()
    logs = doc["logs"]
    assert 0 < len(logs["traffic"]) <= LOG_CAP and 0 < len(logs["system"]) <= LOG_CAP
    for e in logs["traffic"] + logs["system"]:
        assert started - 3600 - 5 <= e["epoch"] <= time.time() + 5  # inside the window, never older
    assert {"src", "dst", "app", "action"} <= set(logs["traffic"][0])


def test_the_api_reads_entries_by_type_range_and_text_and_states_cap_lag_and_reason(tmp_path):
    _app, client = make_client(tmp_path)
    fw = add_device(client, "fw", "192.0.2.5")
    now = time.time()
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        store.record_logs(fw, now - 30, {
            "system": [{"id": "1", "epoch": now - 90, "receive_time": fw_time(now - 90), "severity": "critical",
                        "opaque": "HA Group 1: Moved from state Active to state Passive"},
                       {"id": "2", "epoch": now - 7200, "receive_time": fw_time(now - 7200), "severity": "low",
                        "opaque": "old"}],
            "traffic": [{"id": "9", "epoch": now - 60, "src": "10.0.0.1", "app": "<script>x</script>"}],
        })
        assert store.record_logs(fw, now, {"system": [{"id": "1", "epoch": now - 90}]}) == 0  # no duplicates
    finally:
        store.close()
    body = client.get(f"/api/logs?device_id={fw}&type=system").get_json()
    assert {"entries", "cap", "fetched_at"} <= set(body) and body["cap"] == LOG_CAP
    assert [e["id"] for e in body["entries"]] == ["1"] and body["entries"][0]["time"].endswith("Z")
    assert body["lag_s"] == pytest.approx(60, abs=2) and body["unavailable"] is None
    assert [e["id"] for e in client.get(f"/api/logs?device_id={fw}&type=system&range=24h").get_json()["entries"]] == [
        "1", "2"]
    assert client.get(f"/api/logs?device_id={fw}&type=system&range=24h&q=passive").get_json()["entries"][0]["id"] == "1"
    assert client.get(f"/api/logs?device_id={fw}&type=system&q=nothing").get_json()["entries"] == []
    assert client.get(f"/api/logs?device_id={fw}&type=traffic").get_json()["entries"][0]["app"] == "<script>x</script>"
    assert client.get(f"/api/logs?device_id={fw}&type=config").status_code == 400
    assert client.get(f"/api/logs?device_id={fw}&type=system&range=1y").status_code == 400
    # A firewall whose log query failed (no licence, logging off) says why, with no entries.
    other = add_device(client, "fw2", "192.0.2.6")
    history = SampleStore.open(tmp_path / HISTORY_DB)
    try:
        history.write_inventory(other, now, {"system": {}, "errors": {"traffic_log": "ApiError: PAN-OS error 16"}})
    finally:
        history.close()
    empty = client.get(f"/api/logs?device_id={other}&type=traffic").get_json()
    assert empty["entries"] == [] and empty["unavailable"] == "ApiError: PAN-OS error 16"
    assert client.get("/logs").status_code == 200


def test_the_clock_keeps_log_entries_only_for_the_retention(tmp_path):
    store = NetworkStore.open(tmp_path / NETWORK_DB)
    try:
        store.record_logs("fw", 1000.0, {"system": [{"id": "a", "epoch": 990.0}]})
        store.record_logs("fw", 1000.0 + 7200, {"system": [{"id": "b", "epoch": 8190.0}]})
        assert store.cleanup_logs(1000.0 + 3600 + 1, 1) == 1
        assert store.cleanup_logs(1000.0 + 3600 + 1, 1) == 0
    finally:
        store.close()


@pytest.mark.parametrize("text", [
    "2026/12/04 20:31:05", " 2024/02/29 00:00:00 ", "2026/1/4 2:3:5", "2026/12/31 23:59:60", "1970/01/01 00:00:00",
    "2023/02/29 00:00:00", "2026/13/01 00:00:00", "2026/12/04 24:00:00", "2026/12/04 23:60:00", "2026/12/04 23:59:62",
    "garbage", "", None,
])
def test_it_reads_a_log_time_as_strptime_did(text):
    def by_strptime(value):
        try:
            return calendar.timegm(time.strptime(value.strip(), "%Y/%m/%d %H:%M:%S")) - 3600.5 if value else None
        except ValueError:
            return None

    assert entry_epoch(text, 3600.5) == by_strptime(text)


@pytest.mark.slow
def test_a_lower_log_fetch_cap_asks_the_firewall_for_fewer_entries(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-440") as sim:
        entry = sim.inventory[0]
        tls = TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"])
        dev = DeviceConfig(id="fw", name=entry["name"], host=entry["host"], port=entry["port"],
                           api_key=entry["api_key"], tls=tls)
        collector = Collector(workers=2, request_timeout=5.0, client_factory=SIM_CLIENTS)
        try:
            # An hour of traffic is 1,800 simulated entries: the cap, not the window, decides.
            [(_id, _ts, doc)] = collector.collect_slow([dev], window_s=3600, log_cap=20)
        finally:
            collector.close()
    assert len(doc["logs"]["traffic"]) == 20 and 0 < len(doc["logs"]["system"]) <= 20
    assert doc["log_cap"] == 20
    newest = [e["epoch"] for e in doc["logs"]["traffic"]]
    assert newest == sorted(newest, reverse=True)  # the newest 20, not any 20


def test_the_log_fetch_cap_is_bounded_and_stated_by_the_api(tmp_path):
    for bad in ("5", "5001", "many"):
        with pytest.raises(config.ConfigError, match="log_fetch_cap"):
            config.load_settings(env={"PANFM_LOG_FETCH_CAP": bad}, overrides={"data_dir": str(tmp_path)})
    _app, client = make_client(tmp_path, env={"PANFM_LOG_FETCH_CAP": "50"})
    fw = add_device(client, "fw", "192.0.2.5")
    body = client.get(f"/api/logs?device_id={fw}&type=traffic").get_json()
    assert body["cap"] == 50 and body["last_fetch_cap"] is None  # no fetch yet
    history = SampleStore.open(tmp_path / HISTORY_DB)
    try:
        history.write_inventory(fw, time.time(), {"system": {}, "errors": {}, "log_cap": 200})
    finally:
        history.close()
    body = client.get(f"/api/logs?device_id={fw}&type=traffic").get_json()
    assert (body["cap"], body["last_fetch_cap"]) == (50, 200)  # the setting changed after the last fetch
