"""Log queries of more than a page are read page by page, over a window whose newest end is fixed.

A real firewall's log entry is ~3-4 kB of XML, so the 5,000 entries one query may return
(15-20 MB) passed the client's 10 MB body limit and lost the whole count. The inventory asks for
`LOG_PAGE` entries at a time (`skip` for the next page) with `receive_time leq` the window's end,
so the pages neither overlap nor leave gaps while the firewall keeps logging.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import LOOPBACK, device_for
from helpers.collector import FakeClient

from panfm.collector import jobs
from panfm.collector.jobs import LOG_PAGE
from panfm.collector.slow import MAX_LOGS, gather_inventory
from panfm.xmlapi import BadResponse, PanosClient, PanosTimeout

SEVERITIES = ("critical", "high", "medium", "low")


class Threats(FakeClient):
    """A firewall whose window holds `n` threat entries (severities in turn), read in pages."""

    def __init__(self, box, n, fail_at=None):
        super().__init__(box)
        self.entries = [{"severity": SEVERITIES[i % 4], "threatid": f"t{i}", "receive_time": "2026/12/06 10:00:00"}
                        for i in range(n)]
        self.fail_at, self.asked = fail_at, []

    def log_query(self, log_type, query, nlogs, deadline_s, fields=None, first_wait_s=0.0, skip=0):
        if log_type != "threat":
            return []
        self.asked.append((nlogs, skip, query))
        if skip == self.fail_at:
            raise PanosTimeout("threat job not finished within 20 s")
        return self.entries[skip:skip + nlogs]


def gather(fw):
    now = time.time()
    return gather_inventory(fw, now=now, window_s=300, deadline=time.monotonic() + 30, acc_last=now)[1]


def test_a_count_past_one_page_is_read_page_by_page_and_adds_up():
    fw = Threats({"inventories": 0}, 2 * LOG_PAGE + 345)
    doc = gather(fw)
    assert [(n, skip) for n, skip, _ in fw.asked] == [(LOG_PAGE, 0), (LOG_PAGE, LOG_PAGE), (LOG_PAGE, 2 * LOG_PAGE)]
    assert len({q for _, _, q in fw.asked}) == 1 and "receive_time leq" in fw.asked[0][2]
    per = (2 * LOG_PAGE + 345) // 4
    assert doc["threats"] == {"critical": per + 1, "high": per, "medium": per}  # 2,345 in turn: critical one more
    assert "threats" not in doc["errors"]


def test_pages_stop_at_the_query_cap_of_5000():
    fw = Threats({"inventories": 0}, MAX_LOGS + 800)
    doc = gather(fw)
    assert sum(n for n, _, _ in fw.asked) == MAX_LOGS and fw.asked[-1][1] == MAX_LOGS - LOG_PAGE
    assert sum(doc["threats"].values()) + MAX_LOGS // 4 == MAX_LOGS  # low is fetched but not a tile


def test_a_page_that_fails_fails_the_count_instead_of_counting_the_pages_before_it():
    fw = Threats({"inventories": 0}, 3 * LOG_PAGE, fail_at=LOG_PAGE)
    doc = gather(fw)
    assert "threats" not in doc and doc["errors"]["threats"].startswith("PanosTimeout")
    assert doc["security"]["counts"] is None


def test_on_the_simulator_the_pages_of_a_window_neither_overlap_nor_leave_a_gap(sim_fleet, monkeypatch):
    monkeypatch.setattr(jobs, "LOG_PAGE", 40)  # the window's ~150 traffic entries in four pages
    entry = sim_fleet.inventory[1]
    before = sim_fleet.stats(entry)[entry["name"]]["requests"].get("log:traffic", 0)
    now = time.time()
    with PanosClient(device_for(entry), policy=LOOPBACK) as fw:
        _info, doc = gather_inventory(fw, now=now, window_s=300, deadline=time.monotonic() + 60, acc_last=now,
                                      log_cap=200)
    assert sim_fleet.stats(entry)[entry["name"]]["requests"]["log:traffic"] - before == 4  # 40 + 40 + 40 + 30
    logids = [int(e["id"]) for e in doc["logs"]["traffic"]]
    assert len(logids) == 150  # one entry every 2 s over the window's 300 whole seconds (tests/test_log_windows.py)
    assert logids == list(range(logids[0], logids[0] - len(logids), -1))  # consecutive, newest first


def test_the_simulator_ends_a_log_query_at_its_receive_time_leq(sim_fleet):
    entry = sim_fleet.inventory[1]
    fmt = "%Y/%m/%d %H:%M:%S"
    until = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(seconds=30)
    since = until - timedelta(seconds=60)
    query = f"( receive_time geq '{since:{fmt}}' ) and ( receive_time leq '{until:{fmt}}' )"
    with PanosClient(device_for(entry), policy=LOOPBACK) as fw:
        got = fw.log_query("traffic", query, nlogs=100, deadline_s=20, first_wait_s=0.25)
    times = [datetime.strptime(e["receive_time"], fmt) for e in got]
    assert len(got) in (30, 31) and max(times) <= until and min(times) >= since  # 2 s apart, both ends in


def test_on_the_simulator_5000_real_size_entries_pass_the_body_limit_in_one_answer_and_arrive_in_pages(sim_fleet):
    entry = sim_fleet.inventory[2]
    with PanosClient(device_for(entry), policy=LOOPBACK) as fw:
        # One answer of 5,000 traffic entries of the real entry's size (~3.3 kB each): ~16 MB.
        with pytest.raises(BadResponse, match="exceeds"):
            fw.log_query("traffic", nlogs=MAX_LOGS, deadline_s=60, first_wait_s=0.25)
        now = time.time()
        # A window of 12,000 s holds 6,000 traffic entries; the Logs page's cap at its largest.
        _info, doc = gather_inventory(fw, now=now, window_s=12_000, deadline=time.monotonic() + 120, acc_last=now,
                                      log_cap=MAX_LOGS)
    assert "traffic_log" not in doc["errors"]
    logids = [int(e["id"]) for e in doc["logs"]["traffic"]]
    assert logids == list(range(logids[0], logids[0] - MAX_LOGS, -1))  # five pages, consecutive, newest first
