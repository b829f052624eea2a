"""Consecutive inventories count each log entry once: a window starts the second after the last one ended.

Each run's window used to be the 300 s before its own start, both ends included. An entry in the
boundary second was counted by two runs, and a run that came late (held by a fast cycle, a busy
slot) or failed overlapped the last window or left a gap in the threat and blocked-URL counts
the overview adds up over an hour.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta

from conftest import LOOPBACK, device_for
from helpers.collector import T0, FakeClient, device

from panfm.collector.cycle import Collector, panos_client_factory
from panfm.collector.slow import CATCH_UP_WINDOWS, window_start
from panfm.xmlapi import PanosTimeout

UNTIL = datetime(2026, 12, 6, 10, 0, 0)
FMT = "%Y/%m/%d %H:%M:%S"


def test_a_window_starts_the_second_after_the_last_one_ended():
    assert window_start(UNTIL, 300, UNTIL - timedelta(seconds=312)) == UNTIL - timedelta(seconds=311)  # a late run
    assert window_start(UNTIL, 300, UNTIL - timedelta(seconds=1)) == UNTIL  # a run one second after the last
    caught_up = UNTIL - timedelta(seconds=CATCH_UP_WINDOWS * 300)
    assert window_start(UNTIL, 300, caught_up) == caught_up + timedelta(seconds=1)  # a failed run's window too


def test_without_a_usable_last_end_the_window_is_the_last_300_seconds():
    last_300 = UNTIL - timedelta(seconds=299)  # 300 whole seconds with `until` itself
    assert window_start(UNTIL, 300, None) == last_300  # the first run since the clock started
    assert window_start(UNTIL, 300, UNTIL - timedelta(seconds=CATCH_UP_WINDOWS * 300 + 1)) == last_300  # an outage
    assert window_start(UNTIL, 300, UNTIL + timedelta(seconds=5)) == last_300  # the firewall's clock was set back
    assert window_start(UNTIL, 300, UNTIL) == last_300  # the same second again


class Windows(FakeClient):
    """A firewall that notes each threat query's window, and fails it when told to."""

    def log_query(self, log_type, query, nlogs, deadline_s, fields=None, first_wait_s=0.0, skip=0):
        if log_type == "threat":
            self.box["windows"].append(tuple(datetime.strptime(t, FMT) for t in re.findall(r"'([^']+)'", query)))
            if self.box.pop("fail", False):
                raise PanosTimeout("threat job not finished within 20 s")
        return []


def test_runs_count_consecutive_windows_and_a_failed_count_is_counted_by_the_next_run():
    box = {"now": [T0], "polls": 0, "inventories": 0, "windows": []}
    collector = Collector(workers=2, request_timeout=5.0, client_factory=lambda cfg, t, on_key: Windows(box),
                          clock=lambda: box["now"][0])

    def run(offset, fail=False):
        box["now"][0], box["fail"] = T0 + offset, fail
        [(_id, _ts, doc)] = collector.collect_slow([device()], window_s=300)
        return box["windows"][-1], doc

    def at(offset):
        return datetime.fromtimestamp(T0 + offset, UTC).replace(tzinfo=None)

    try:
        assert run(0)[0] == (at(-299), at(0))
        window, doc = run(307)  # late: the window stretches, nothing is left out
        assert window == (at(1), at(307)) and doc["window_s"] == 307 and "window_end" not in doc
        window, doc = run(600, fail=True)
        assert window == (at(308), at(600)) and "threats" not in doc
        window, doc = run(900)  # the failed window is counted now, with this one
        assert window == (at(308), at(900)) and doc["threats"] == {"critical": 0, "high": 0, "medium": 0}
        assert run(2000)[0] == (at(1701), at(2000))  # after an outage of more than two windows: the last 300 s
    finally:
        collector.close()


def test_on_the_simulator_two_runs_read_each_traffic_entry_once(sim_fleet):
    entry = sim_fleet.inventory[3]
    collector = Collector(workers=2, request_timeout=10.0,
                          client_factory=functools.partial(panos_client_factory, policy=LOOPBACK))
    try:
        [(_id, _ts, first)] = collector.collect_slow([device_for(entry)], window_s=300, log_cap=200)
        time.sleep(5)  # the simulated firewall logs a traffic entry every 2 s
        [(_id, _ts, second)] = collector.collect_slow([device_for(entry)], window_s=300, log_cap=200)
    finally:
        collector.close()
    one = [int(e["id"]) for e in first["logs"]["traffic"]]
    two = [int(e["id"]) for e in second["logs"]["traffic"]]
    assert first["window_s"] == 300 and len(one) == 150 and two
    assert min(two) == max(one) + 1  # the second window starts where the first ended: nothing twice, nothing missed
    assert sorted(one + two) == list(range(min(one), max(two) + 1))
