"""The fast cycle comes first: inventory calls wait while a collection cycle runs."""

from __future__ import annotations

import threading

from test_collector_gaps import MONITOR, T0, FakeClient, ctr

from models import DeviceConfig, TlsConfig
from throughput_collector import Collector


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
