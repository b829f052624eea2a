"""The fast cycle comes first: inventory calls wait while a collection cycle runs."""

from __future__ import annotations

import threading

import pytest
from helpers.collector import MONITOR, T0, FakeClient, ctr

from panfm.collector.cycle import Collector
from panfm.collector.slow import gather_inventory
from panfm.models import DeviceConfig, TlsConfig


class GatedClient(FakeClient):
    """A firewall whose counters call blocks until the test lets it go."""

    def counters(self):
        self.box["in_fast"].set()
        assert self.box["release"].wait(10)
        return super().counters()

    def system_info(self):
        self.box["events"].append("inventory")
        self.box["inventory_started"].set()
        return super().system_info()


def dev(n: int) -> DeviceConfig:
    return DeviceConfig(id=f"d{n}", name=f"fw-{n}", host=f"127.0.0.{n}", tls=TlsConfig("insecure"), api_key="k")


def test_it_holds_inventory_calls_until_the_running_fast_cycle_is_done():
    box = {"snapshots": [[ctr("ethernet1/1", 0, 0)]], "now": [T0], "polls": 0, "inventories": 0, "monitor": MONITOR,
           "in_fast": threading.Event(), "release": threading.Event(), "inventory_started": threading.Event(),
           "events": []}
    collector = Collector(workers=4, request_timeout=5.0, client_factory=lambda cfg, t, on_key: GatedClient(box),
                          clock=lambda: box["now"][0])
    try:
        def fast():
            collector.collect([dev(1)], 30)
            box["events"].append("cycle done")

        fast_thread = threading.Thread(target=fast)
        fast_thread.start()
        assert box["in_fast"].wait(5)
        slow_result = []
        slow_thread = threading.Thread(target=lambda: slow_result.extend(collector.collect_slow([dev(2)], 300)))
        slow_thread.start()
        # While the cycle runs, the inventory job must not make its first call.
        assert not box["inventory_started"].wait(0.3)
        box["release"].set()
        fast_thread.join(10)
        slow_thread.join(10)
        assert box["events"] == ["cycle done", "inventory"]
        assert [d for d, _t, _doc in slow_result] == ["d2"]
        # With no cycle running, inventory goes straight ahead.
        box["inventory_started"].clear()
        assert [d for d, _t, _doc in collector.collect_slow([dev(3)], 300)] == ["d3"]
    finally:
        box["release"].set()
        collector.close()


class SlowFirstClient(FakeClient):
    """A firewall whose last call uses up the whole cycle (the clock's time runs on past the deadline)."""

    def __init__(self, box, fake_time):
        super().__init__(box)
        self.fake_time = fake_time

    def system_resources(self):
        self.fake_time[0] += 60.0
        return super().system_resources()


def test_it_does_not_count_a_device_the_busy_collector_never_asked_as_failed():
    box = {"snapshots": [[ctr("ethernet1/1", 0, 0)] for _ in range(3)], "now": [T0], "polls": 0, "inventories": 0,
           "monitor": MONITOR}
    fake_time = [1000.0]
    collector = Collector(workers=1, request_timeout=5.0, clock=lambda: box["now"][0], monotonic=lambda: fake_time[0],
                          client_factory=lambda cfg, t, on_key: SlowFirstClient(box, fake_time))
    try:
        for _ in range(3):  # three cycles: a failure each time would open the breaker
            cycle = collector.collect([dev(1), dev(2)], 30)
            box["now"][0] += 30
        statuses = {s.device_id: s for s in cycle.statuses}
        assert [s.device_id for s in cycle.samples] == ["d1"]
        assert statuses["d2"].state == "unknown" and statuses["d2"].consecutive_failures == 0
        assert statuses["d2"].last_error == "not polled: the collector was busy"
        assert box["polls"] == 3
    finally:
        collector.close()


def test_it_makes_no_inventory_call_once_the_slow_jobs_deadline_has_passed():
    box = {"inventories": 0}
    with pytest.raises(TimeoutError):
        gather_inventory(FakeClient(box), now=T0, window_s=300, deadline=10.0, monotonic=lambda: 11.0)
    assert box["inventories"] == 0


class CountingClient(FakeClient):
    """A firewall that counts every inventory call made to it."""

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name in ("system_info", "ha_state", "licenses", "interfaces", "gp_users", "log_query"):
            super().__getattribute__("box")["calls"].append(name)
        return attr


def test_an_inventory_stops_calling_and_stores_nothing_once_the_lease_is_lost():
    box = {"snapshots": [], "now": [T0], "polls": 0, "inventories": 0, "monitor": MONITOR, "calls": []}
    collector = Collector(workers=2, request_timeout=5.0, clock=lambda: box["now"][0],
                          client_factory=lambda cfg, t, on_key: CountingClient(box))
    try:
        # Held for the first call only (the lease runs out while the inventory is under way).
        asked: list[str] = []

        def may_call(device_id):
            asked.append(device_id)
            return len(asked) <= 1

        assert collector.collect_slow([dev(1)], 300, may_call=may_call) == []
        assert box["calls"] == ["system_info"] and asked == ["d1", "d1"]
        # Never held: not one call.
        box["calls"].clear()
        assert collector.collect_slow([dev(2)], 300, may_call=lambda d: False) == []
        assert box["calls"] == []
        # Held throughout: the whole inventory, as without a lease.
        assert [d for d, _t, _doc in collector.collect_slow([dev(3)], 300, may_call=lambda d: True)] == ["d3"]
        assert "system_info" in box["calls"] and "interfaces" in box["calls"]
    finally:
        collector.close()
