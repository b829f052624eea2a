"""The fast cycle comes first: inventory calls wait while a collection cycle runs."""

from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from helpers.collector import MONITOR, T0, FakeClient, ctr

import panfm.collector.admission as admission
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


def fast_then_slow(collector, box, fast_devices, slow_device):
    """Start a fast cycle in a thread, wait until it is polling, then start an inventory in another."""
    cycles, gathered = [], []

    def fast():
        cycles.append(collector.collect(fast_devices, 30))
        box["events"].append("cycle done")

    fast_thread = threading.Thread(target=fast)
    fast_thread.start()
    assert box["in_fast"].wait(5)
    slow_thread = threading.Thread(target=lambda: gathered.extend(collector.collect_slow([slow_device], 300)))
    slow_thread.start()
    return fast_thread, slow_thread, cycles, gathered


def test_it_holds_inventory_calls_until_the_running_fast_cycle_is_done():
    box = {"snapshots": [[ctr("ethernet1/1", 0, 0)]], "now": [T0], "polls": 0, "inventories": 0, "monitor": MONITOR,
           "in_fast": threading.Event(), "release": threading.Event(), "inventory_started": threading.Event(),
           "events": []}
    collector = Collector(workers=4, request_timeout=5.0, client_factory=lambda cfg, t, on_key: GatedClient(box),
                          clock=lambda: box["now"][0])
    try:
        fast_thread, slow_thread, _cycles, slow_result = fast_then_slow(collector, box, [dev(1)], dev(2))
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


class StragglerClient(GatedClient):
    """Firewall fw-1 hangs in its fast poll until released (a slow one); the others answer at once."""

    def __init__(self, box, host):
        super().__init__(box)
        self.host = host

    def counters(self):
        if self.host == "127.0.0.1":
            return super().counters()
        return FakeClient.counters(self)


def test_the_inventory_goes_on_while_only_a_slow_firewall_keeps_the_fast_cycle_open(monkeypatch):
    import panfm.collector.cycle as cycle_mod

    monkeypatch.setattr(cycle_mod, "SLOW_POLL_S", 0.3)
    box = {"snapshots": [[ctr("ethernet1/1", 0, 0)] for _ in range(2)], "now": [T0], "polls": 0, "inventories": 0,
           "monitor": MONITOR, "in_fast": threading.Event(), "release": threading.Event(),
           "inventory_started": threading.Event(), "events": []}
    collector = Collector(workers=4, request_timeout=5.0, clock=lambda: box["now"][0],
                          client_factory=lambda cfg, t, on_key: StragglerClient(box, cfg.host))
    try:
        fast_thread, slow_thread, cycle_result, slow_result = fast_then_slow(collector, box, [dev(1), dev(2)], dev(3))
        # fw-2 has answered; once every poll has run SLOW_POLL_S, only the straggler fw-1 is left.
        assert box["inventory_started"].wait(5)
        slow_thread.join(10)
        assert [d for d, _t, _doc in slow_result] == ["d3"]
        assert box["events"] == ["inventory"]  # gathered while the cycle still waited for fw-1
        box["release"].set()
        fast_thread.join(10)
        assert box["events"] == ["inventory", "cycle done"]
        assert sorted(s.device_id for s in cycle_result[0].samples) == ["d1", "d2"]
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


class StuckClient(FakeClient):
    """Firewalls named in box["stuck"] answer a poll's (or an inventory's) first call only when the test ends."""

    def __init__(self, box, device_id):
        super().__init__(box)
        self.device_id = device_id

    def _slow(self):
        if self.device_id in self.box["stuck"]:
            assert self.box["release"].wait(30)

    def counters(self):
        self._slow()
        return super().counters()

    def system_info(self):
        self._slow()
        return super().system_info()


def test_slow_firewalls_give_their_slot_back_so_the_healthy_ones_are_all_polled(monkeypatch):
    monkeypatch.setattr(admission, "SLOW_POLL_S", 0.2)
    devices = [dev(n) for n in range(1, 31)]
    stuck = {d.id for d in devices[:6]}  # the first six in the queue are slow: more than the 2 slots
    box = {"snapshots": [[ctr("ethernet1/1", 0, 0)] for _ in range(30)], "now": [T0], "polls": 0,
           "inventories": 0, "monitor": MONITOR, "stuck": stuck, "release": threading.Event()}
    collector = Collector(workers=2, request_timeout=5.0, clock=lambda: box["now"][0],
                          client_factory=lambda cfg, t, on_key: StuckClient(box, cfg.id))
    try:
        cycle = collector.collect(devices, 5)  # a 2.5 s deadline
    finally:
        box["release"].set()
        collector.close()
    statuses = {s.device_id: s for s in cycle.statuses}
    # Every healthy firewall was polled: the slow ones held a slot for 0.2 s each, not the cycle.
    assert {s.device_id for s in cycle.samples} == {d.id for d in devices} - stuck
    assert all("deadline" in (statuses[i].last_error or "") for i in stuck)
    assert not any("collector was busy" in (s.last_error or "") for s in cycle.statuses)


def test_with_every_slot_held_by_a_running_poll_the_rest_stay_pending_for_the_cycle_to_cancel():
    release = threading.Event()
    started = []

    def blocking(n):
        started.append(n)
        release.wait(10)
        return n

    jobs = [(Future(), functools.partial(blocking, n)) for n in range(5)]
    pool = ThreadPoolExecutor(max_workers=admission.pool_threads(2))
    try:
        # A slow mark longer than the deadline: the two slots stay held, the other three never start.
        n_started = admission.dispatch(pool, jobs, 2, deadline=time.monotonic() + 0.5, monotonic=time.monotonic,
                                       slow_after=60.0)
        assert n_started == 2
        for _ in range(200):  # the two submitted jobs are taken by threads of their own
            if len(started) == 2:
                break
            time.sleep(0.05)
        assert sorted(started) == [0, 1]
        assert [f.running() for f, _c in jobs] == [True, True, False, False, False]
        assert all(f.cancel() for f, _c in jobs[2:])  # pending: the cycle's end cancels them
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert [f.result() for f, _c in jobs[:2]] == [0, 1]


def stuck_inventory_rig(n: int, n_stuck: int, workers: int):
    """`n` devices, the first `n_stuck` stuck in every call until `box["release"]` is set; a Collector over them."""
    devices = [dev(i) for i in range(1, n + 1)]
    stuck = {d.id for d in devices[:n_stuck]}
    box = {"snapshots": [], "now": [T0], "polls": 0, "inventories": 0, "monitor": MONITOR, "stuck": stuck,
           "release": threading.Event()}
    collector = Collector(workers=workers, request_timeout=5.0, clock=lambda: box["now"][0],
                          client_factory=lambda cfg, t, on_key: StuckClient(box, cfg.id))
    return devices, stuck, box, collector


def test_slow_firewalls_give_their_inventory_slot_back_so_the_others_are_gathered(monkeypatch):
    import panfm.collector.inventory as inventory

    monkeypatch.setattr(inventory, "SLOW_INVENTORY_S", 0.2)
    # More slow firewalls than the 2 inventory slots, first in line.
    devices, stuck, box, collector = stuck_inventory_rig(10, 3, workers=2)
    try:
        docs = collector.collect_slow(devices, 300, deadline_s=4.0)
    finally:
        box["release"].set()
        collector.close()
    assert {d for d, _t, _doc in docs} == {d.id for d in devices} - stuck


def test_a_job_waiting_for_a_thread_keeps_its_slot_so_the_pool_queue_never_fills_past_the_deadline():
    # One thread, two slots: the first job holds the thread past the slow mark and gives its slot
    # back; the jobs queued behind it never ran, so they keep theirs and the dispatcher stops there.
    # (Timed from their submission, every queued job looked "slow" too and all five were queued:
    # how every inventory of a 1,000-firewall fleet started past its deadline.)
    release = threading.Event()
    jobs = [(Future(), functools.partial(release.wait, 10)) for _ in range(5)]
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        n_started = admission.dispatch(pool, jobs, 2, deadline=time.monotonic() + 0.6, monotonic=time.monotonic,
                                       slow_after=0.1)
        assert n_started == 3  # the running one (slot back after 0.1 s) and two queued, each holding a slot
        assert [f.running() for f, _c in jobs] == [True, False, False, False, False]
        assert all(f.cancel() for f, _c in jobs[1:])
    finally:
        release.set()
        pool.shutdown(wait=True)


def counted_job(body):
    """A job running `body`, and [running now, most at once] counted across its runs."""
    lock = threading.Lock()
    running = [0, 0]

    def job():
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        body()
        with lock:
            running[0] -= 1
        return True

    return running, job


def test_overlapping_gatherings_share_one_set_of_slots():
    slots = admission.Slots(2, time.monotonic)
    pool = ThreadPoolExecutor(max_workers=8)
    running, job = counted_job(lambda: time.sleep(0.05))

    batches = [[(Future(), job) for _ in range(6)] for _ in range(3)]
    callers = [threading.Thread(target=slots.dispatch, args=(pool, b, time.monotonic() + 20, 60.0)) for b in batches]
    try:
        for t in callers:
            t.start()
        for t in callers:
            t.join(20)
        assert all(f.result(timeout=10) for b in batches for f, _c in b)  # all 18 ran
    finally:
        pool.shutdown(wait=True)
    assert running[1] == 2  # never more than the shared two at once, across the three callers


def test_a_larger_fleet_gets_more_inventory_slots_within_the_workers_and_the_cap():
    from panfm.collector.inventory import SLOW_SLOTS_MAX, SLOW_WORKERS, slow_slots

    assert slow_slots(10, 300, 64) == SLOW_WORKERS  # a small fleet: the floor
    assert slow_slots(1000, 300, 64) == 17 and slow_slots(2000, 300, 64) == 34  # 5 s each, once a window
    assert slow_slots(2000, 300, 20) == 20  # never more than collector_workers
    assert slow_slots(2000, 300, 4) == 4
    assert slow_slots(100_000, 300, 512) == SLOW_SLOTS_MAX


def test_resized_slots_start_more_jobs_at_once_and_fewer_after_the_running_ones_end():
    slots = admission.Slots(1, time.monotonic)
    pool = ThreadPoolExecutor(max_workers=8)
    gate = threading.Event()
    running, job = counted_job(lambda: gate.wait(5))

    try:
        slots.resize(3)
        batch = [(Future(), job) for _ in range(3)]
        assert slots.dispatch(pool, batch, time.monotonic() + 5, 60.0) == 3  # three free slots: no wait
        gate.set()
        assert all(f.result(timeout=5) for f, _c in batch) and running[1] == 3
        slots.resize(1)
        gate.clear()
        running[1] = 0
        batch = [(Future(), job) for _ in range(2)]
        caller = threading.Thread(target=slots.dispatch, args=(pool, batch, time.monotonic() + 5, 60.0))
        caller.start()
        time.sleep(0.3)
        assert running[1] == 1  # one slot now: the second job waits for the first
        gate.set()
        caller.join(5)
        assert all(f.result(timeout=5) for f, _c in batch) and running[1] == 1
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_inventories_that_never_got_a_slot_are_not_failures_of_their_devices(monkeypatch, caplog):
    import panfm.collector.inventory as inventory

    monkeypatch.setattr(inventory, "SLOW_INVENTORY_S", 60.0)  # the stuck one keeps the only slot
    devices, _stuck, box, collector = stuck_inventory_rig(4, 1, workers=1)
    caplog.set_level(logging.INFO, logger="panfm.collector")
    try:
        docs = collector.collect_slow(devices, 300, deadline_s=1.0)
    finally:
        box["release"].set()
        collector.close()
    assert docs == []
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed == [f"inventory of {devices[0].name} failed: deadline exceeded"]  # only the stuck one
    assert any("inventory of 3 device(s) not started within the deadline" in r.getMessage() for r in caplog.records)
    # Not tried, as far as the retry pause goes: due again at the next fast cycle.
    assert all(collector._devices[d.id].inventory_tried is None for d in devices[1:])


def test_each_inventory_is_delivered_as_soon_as_it_is_gathered_not_at_the_gatherings_end():
    # A gathering lasts until its slowest firewall's deadline; its finished documents (log entries,
    # connected devices) waiting for that was most of a 1,000-firewall clock's memory.
    devices, stuck, box, collector = stuck_inventory_rig(3, 1, workers=2)
    delivered = []
    returned = []
    gathering = threading.Thread(target=lambda: returned.append(collector.collect_slow(
        devices, 300, deadline_s=20.0, on_result=lambda i, ts, doc: delivered.append((i, doc)))))
    try:
        gathering.start()
        for _ in range(100):
            if len(delivered) == 2:
                break
            time.sleep(0.05)
        assert {i for i, _doc in delivered} == {d.id for d in devices} - stuck
        assert gathering.is_alive()  # still waiting for the stuck one: the other two did not wait for it
        assert all(doc["system"]["serial"] for _i, doc in delivered)
    finally:
        box["release"].set()
        gathering.join(30)
        collector.close()
    assert returned == [[]]  # delivered, not returned
    assert {i for i, _doc in delivered} == {d.id for d in devices}  # the stuck one too, once released
