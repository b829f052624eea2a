"""What keeps the inventory cheap and quick (issue 17): interfaces first, ACC every 15 minutes, one `get` per job."""

from __future__ import annotations

import functools
import time
from datetime import datetime

import pytest
from conftest import LOOPBACK, device_for, start_sim
from helpers.collector import FakeClient

import clock
import config
from panfm.collector.cycle import Collector, panos_client_factory
from panfm.collector.slow import ACC_INTERVAL_S, acc_due, gather_inventory
from panfm.models import DeviceConfig, TlsConfig
from panfm.ops import record_network
from panfm.storage.network_reader import NetworkReader
from panfm.storage.network_store import NETWORK_DB
from panfm.xmlapi import PanosClient

SIM_CLIENTS = functools.partial(panos_client_factory, policy=LOOPBACK)
FMT = "%Y/%m/%d %H:%M:%S"


class Recording(FakeClient):
    """The scripted firewall, noting every call in order and answering reports with one row."""

    def __init__(self, box):
        super().__init__(box)
        self.calls: list[str] = []

    def system_info(self):
        self.calls.append("system_info")
        return super().system_info()

    def interfaces(self):
        self.calls.append("interfaces")
        return super().interfaces()

    def log_query(self, log_type, query, nlogs, deadline_s, fields=None, first_wait_s=0.0):
        self.calls.append(f"log:{log_type}")
        self.box.setdefault("waits", []).append(first_wait_s)
        return []

    def report(self, name, *, start=None, end=None, period=None, topn=25, deadline_s=30.0, first_wait_s=0.0):
        self.calls.append(f"report:{name}")
        self.box.setdefault("waits", []).append(first_wait_s)
        return [{"name": "ssl", "nbytes": "10", "nsess": "1"}] if name == "top-app-summary" else []


def test_the_acc_reports_run_on_the_first_inventory_and_then_every_third():
    assert acc_due(None, 1000.0, 300)
    assert not acc_due(1000.0, 1300.0, 300) and not acc_due(1000.0, 1600.0, 300)
    assert acc_due(1000.0, 1000.0 + ACC_INTERVAL_S, 300)
    assert acc_due(1000.0, 1000.0 + ACC_INTERVAL_S - 10, 300)  # a tick early is still the third inventory


def test_interfaces_and_zones_are_handed_over_before_any_log_query_or_report():
    box = {"inventories": 0}
    client = Recording(box)
    seen = []

    def early(info, doc):
        seen.append((list(client.calls), doc))

    _info, doc = gather_inventory(client, now=time.time(), window_s=300, deadline=time.monotonic() + 30, early=early)
    [(calls, partial)] = seen
    assert calls == ["system_info", "interfaces"]
    assert partial["partial"] is True and partial["interfaces"][0]["zone"] == "trust"
    assert partial["system"]["serial"] == "0001" and "logs" not in partial and "applications" not in partial
    assert "partial" not in doc and doc["applications"]["apps"][0]["name"] == "ssl"
    assert any(c.startswith("report:") for c in client.calls)
    assert box["waits"] and all(w > 0 for w in box["waits"])  # every job is left alone before its first get


def test_an_inventory_between_acc_runs_makes_no_report_call_and_keeps_what_was_unavailable():
    client = Recording({"inventories": 0})
    now = time.time()
    _info, doc = gather_inventory(client, now=now, window_s=300, deadline=time.monotonic() + 30, acc_last=now - 300)
    assert not any(c.startswith("report:") for c in client.calls)
    assert [c for c in client.calls if c.startswith("log:")]  # the security counts and logs still come every time
    assert doc["applications"] == {"skipped": True}


def test_the_collector_runs_acc_every_third_inventory_and_carries_the_reasons_in_between():
    box = {"inventories": 0}

    class NoUrlReport(Recording):
        def report(self, name, **kw):
            if name == "top-blocked-url-categories-summary":
                from panfm.xmlapi import ApiError
                raise ApiError(17, "no such report")
            return super().report(name, **kw)

    clients = []

    def factory(cfg, timeout, on_key):
        clients.append(NoUrlReport(box))
        return clients[-1]

    now = [1_800_000_000.0]
    collector = Collector(workers=1, request_timeout=5.0, client_factory=factory, clock=lambda: now[0])
    dev = DeviceConfig(id="d1", name="fw", host="127.0.0.1", tls=TlsConfig("insecure"), api_key="k")
    try:
        docs = []
        for _ in range(4):
            [(_id, _ts, doc)] = collector.collect_slow([dev], window_s=300)
            docs.append(doc)
            now[0] += 300
    finally:
        collector.close()
    ran = ["apps" in d["applications"] for d in docs]
    assert ran == [True, False, False, True]
    assert docs[1]["applications"]["unavailable"]["acc_url_categories"].startswith("PAN-OS error 17")
    # The run after the gap covers the time since the last one, not only its own 5 minutes.
    apps = docs[3]["applications"]
    span = datetime.strptime(apps["end"], FMT) - datetime.strptime(apps["start"], FMT)
    assert span.total_seconds() == 900 and docs[0]["window_s"] == 300


def test_a_skipped_acc_run_records_nothing_and_keeps_the_reasons_in_the_inventory(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "reverse_dns": False})
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    try:
        doc = {"applications": {"skipped": True, "unavailable": {"applications": "no licence"}}}
        record_network(ctx, "fw", time.time(), doc)
        assert doc["applications"] == {"unavailable": {"applications": "no licence"}}
        with NetworkReader.open(tmp_path / NETWORK_DB) as reader:
            assert reader.applications("fw", 0)["timeline"] == []
    finally:
        ctx.store.close()
        ctx.network.close()
        ctx.collector.close()


@pytest.mark.slow
def test_a_job_left_alone_for_its_run_time_is_fetched_with_one_get(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-440") as sim:
        entry = sim.inventory[0]
        with PanosClient(device_for(entry), policy=LOOPBACK) as fw:
            entries = fw.log_query("traffic", nlogs=5, deadline_s=20, first_wait_s=0.25)
            rows = fw.report("top-app-summary", period="last-hour", deadline_s=20, first_wait_s=0.25)
        requests = sim.stats(entry)[entry["name"]]["requests"]
    assert entries and rows
    assert requests.get("log:get") == 1 and requests.get("report:get") == 1


@pytest.mark.slow
def test_jobs_enqueued_together_are_read_with_one_get_each_after_one_wait(tmp_path):
    with start_sim(tmp_path, devices=1, models="PA-440") as sim:
        entry = sim.inventory[0]
        with PanosClient(device_for(entry), policy=LOOPBACK) as fw:
            jobs = [fw.start_log_query(t, nlogs=5) for t in ("traffic", "system", "threat", "url")]
            jobs.append(fw.start_report("top-app-summary", period="last-hour"))
            got = [fw.job_entries(job, 20, first_wait_s=0.25) for job in jobs]
            # A job nobody reads is stopped on the firewall (action=finish).
            fw.stop_job(fw.start_log_query("traffic", nlogs=5))
        requests = sim.stats(entry)[entry["name"]]["requests"]
    assert got[0] and got[1] and got[4]  # the simulator logs traffic and system entries; the report has rows
    assert requests.get("log:get") == 4 and requests.get("report:get") == 1  # all FIN at their first get
    assert requests.get("log:finish") == 1


def test_the_inventory_enqueues_its_log_queries_together_and_reads_them_after_the_network_calls():
    order = []

    class Ordered(Recording):
        def start_log_query(self, log_type, query=None, nlogs=20, *, fields=None, deadline_s=None):
            order.append(f"start:{log_type}")
            return super().start_log_query(log_type, query, nlogs, fields=fields, deadline_s=deadline_s)

        def arp(self):
            order.append("arp")
            return []

        def log_query(self, log_type, query, nlogs, deadline_s, fields=None, first_wait_s=0.0):
            order.append(f"read:{log_type}")
            return super().log_query(log_type, query, nlogs, deadline_s, fields, first_wait_s)

    now = time.time()
    _info, doc = gather_inventory(Ordered({"inventories": 0}), now=now, window_s=300,
                                  deadline=time.monotonic() + 30, acc_last=now - 300)
    assert order == ["start:threat", "start:url", "start:system", "start:traffic", "arp",
                     "read:threat", "read:url", "read:system", "read:traffic"]
    assert doc["threats"] == {"critical": 0, "high": 0, "medium": 0} and doc["blocked_urls"] == 0
    assert not {"threats", "blocked_urls", "system_log", "traffic_log"} & set(doc["errors"])


def test_a_log_job_the_deadline_leaves_no_time_to_read_is_stopped_on_the_firewall():
    box = {"inventories": 0}
    clock = [0.0]

    class LateArp(Recording):
        def arp(self):
            clock[0] = 100.0  # the ARP call uses up the rest of the deadline
            return []

    _info, doc = gather_inventory(LateArp(box), now=time.time(), window_s=300, deadline=50.0,
                                  monotonic=lambda: clock[0], acc_last=time.time() - 300)
    assert box["stopped"] == ["threat", "url", "system", "traffic"]
    assert all(doc["errors"][p] == "deadline exceeded" for p in ("threats", "blocked_urls", "system_log",
                                                                 "traffic_log"))


def test_a_report_the_firewall_refuses_at_its_enqueue_is_unavailable_and_the_others_are_read():
    from panfm.xmlapi import ApiError

    class RefusesSources(Recording):
        def start_report(self, name, **kw):
            if name == "top-src-summary":
                raise ApiError(17, "no such report")
            return super().start_report(name, **kw)

    box = {"inventories": 0}
    _info, doc = gather_inventory(RefusesSources(box), now=time.time(), window_s=300, deadline=time.monotonic() + 30)
    apps = doc["applications"]
    assert apps["unavailable"]["acc_sources"].startswith("PAN-OS error 17")
    assert apps["sources"] is None and apps["apps"][0]["name"] == "ssl"  # the other four were read
    assert "acc_sources" not in doc["errors"] and box.get("stopped") is None
