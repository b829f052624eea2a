"""A new, edited or re-enabled device gets its inventory right after a fast cycle, not up to 5 minutes later."""

from __future__ import annotations

import time

import pytest
from helpers.collector import MONITOR, FakeClient, ctr

import clock
import config
from panfm.collector.cycle import Collector
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import DeviceStore
from panfm.storage.samples import HISTORY_DB, SampleReader


@pytest.fixture
def rig(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "refresh_interval": 5})
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    ctx.collector.close()
    box = {"snapshots": [[ctr("ethernet1/1", 1000 * i, 1000 * i)] for i in range(10)], "now": [time.time()],
           "polls": 0, "inventories": 0, "monitor": MONITOR}
    ctx.collector = Collector(workers=2, request_timeout=5.0, client_factory=lambda cfg, t, on_key: FakeClient(box))
    devices = DeviceStore(ctx.data_dir, config.SecretBox.for_data_dir(ctx.data_dir), clock=time.time)
    yield ctx, box, devices
    ctx.collector.close()
    ctx.store.close()


def test_it_stores_a_new_devices_inventory_right_after_its_first_fast_cycle(rig):
    ctx, box, devices = rig
    requested = []

    def run_now(ids):  # what build_scheduler's one-off job does, synchronously
        requested.append(ids)
        clock.collect_inventory_once(ctx, ids)

    ctx.request_inventory = run_now
    dev_id = devices.add(DeviceConfig(id="", name="fw-new", host="127.0.0.1", api_key="k", tls=TlsConfig("insecure")))
    clock.collect_once(ctx)
    assert requested == [[dev_id]]
    with SampleReader.open(ctx.data_dir / HISTORY_DB) as reader:
        doc = reader.inventory(dev_id)
    assert doc is not None and doc["interfaces"][0]["speed_mbps"] == 1000 and doc["system"]["serial"] == "0001"
    assert dev_id in ctx.inventory
    clock.collect_once(ctx)
    assert requested == [[dev_id]] and box["inventories"] == 1  # once, not after every cycle
    dev = devices.get(dev_id)
    devices.update(DeviceConfig(**{**dev.__dict__, "enabled": False}))
    clock.collect_once(ctx)
    devices.update(DeviceConfig(**{**dev.__dict__, "enabled": True}))
    clock.collect_once(ctx)
    assert requested == [[dev_id], [dev_id]] and box["inventories"] == 2  # re-enabled: gathered again


def test_it_wires_inventory_requests_to_a_one_off_job_of_the_scheduler(rig):
    ctx, _box, _devices = rig
    sched = clock.build_scheduler(ctx)
    assert ctx.request_inventory is not None
    ctx.request_inventory(["a", "b"])
    job = sched.get_job("collect_inventory")
    assert job.func is clock.collect_inventory_once and job.args == (ctx, ["a", "b"])
    ctx.request_inventory(["c"])  # a request not started yet is replaced, not queued twice
    assert [j.id for j in sched.get_jobs()].count("collect_inventory") == 1
    assert tuple(sched.get_job("collect_inventory").args) == (ctx, ["c"])


def test_it_skips_an_inventory_job_while_another_one_runs(rig):
    ctx, box, devices = rig
    dev_id = devices.add(DeviceConfig(id="", name="fw-new", host="127.0.0.1", api_key="k", tls=TlsConfig("insecure")))
    clock.collect_once(ctx)
    with ctx.inventory_busy:
        assert clock.collect_inventory_once(ctx, [dev_id]) == 0
    assert box["inventories"] == 0
    assert clock.collect_inventory_once(ctx, [dev_id]) == 1


def test_each_fast_cycle_gives_the_allocators_free_memory_back(rig, monkeypatch):
    import platform

    import panfm.ops.clock_jobs as clock_jobs
    from panfm.ops import memory

    ctx, _box, devices = rig
    devices.add(DeviceConfig(id="", name="fw-trim", host="192.0.2.60", port=443, api_key="k",
                             tls=TlsConfig("insecure")))
    calls = []
    monkeypatch.setattr(clock_jobs, "release_free_memory", lambda: calls.append(1) or True)
    clock.collect_once(ctx)
    clock.collect_once(ctx)
    assert len(calls) == 2  # once per cycle, after its write
    # On glibc (this box, the Docker image) the trim and the fixed mmap threshold apply; elsewhere they say not.
    glibc = platform.libc_ver()[0] == "glibc"
    assert memory.release_free_memory() is glibc
    assert memory.configure_allocator() is glibc


def test_the_inventory_waits_while_the_clock_writes_the_cycle(rig):
    ctx, _box, devices = rig
    devices.add(DeviceConfig(id="", name="fw-1", host="127.0.0.1", api_key="k", tls=TlsConfig("insecure")))
    write = ctx.store.write_cycle
    during_write = []

    def watched_write(cycle, **kw):
        during_write.append(ctx.collector._fast_idle.is_set())  # would an inventory call go ahead now?
        return write(cycle, **kw)

    ctx.store.write_cycle = watched_write
    clock.collect_once(ctx)
    assert during_write == [False]
    assert ctx.collector._fast_idle.is_set()  # and it goes on once the write is done


def test_nested_fast_priority_blocks_hold_the_inventory_until_the_outermost_ends(rig):
    ctx, _box, _devices = rig
    collector = ctx.collector
    with collector.fast_priority():
        with collector.fast_priority():
            assert not collector._fast_idle.is_set()
        assert not collector._fast_idle.is_set()
    assert collector._fast_idle.is_set()


def test_the_clocks_collector_freezes_the_start_and_collects_cycles_after_each_cycles_write(rig, monkeypatch):
    """`configure_gc` (clock.main) freezes the start's objects and leaves collections to
    `collect_garbage`, which every fast cycle runs after its write (a full one every tenth time);
    a reference cycle made afterwards is found by it."""
    import gc
    import weakref

    import panfm.ops.clock_jobs as clock_jobs
    from panfm.ops import memory

    before = gc.get_threshold()
    try:
        memory.configure_gc()
        assert gc.get_threshold() == memory.GC_THRESHOLD
        assert gc.get_freeze_count() > 1000  # the modules, classes and functions loaded so far

        class Node:
            other: object = None

        a, b = Node(), Node()
        a.other, b.other = b, a
        gone: list[int] = []
        weakref.finalize(a, gone.append, 1)
        del a, b
        assert gone == []  # a cycle: reference counts never free it
        generations = [memory.collect_garbage() for _ in range(memory.FULL_EVERY_CYCLES)]
        assert gone == [1]
        assert sorted(generations) == [1] * (memory.FULL_EVERY_CYCLES - 1) + [2]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    ctx, _box, devices = rig
    devices.add(DeviceConfig(id="", name="fw-gc", host="192.0.2.61", port=443, api_key="k",
                             tls=TlsConfig("insecure")))
    order: list[str] = []
    write = ctx.store.write_cycle
    ctx.store.write_cycle = lambda cycle, **kw: order.append("write") or write(cycle, **kw)
    monkeypatch.setattr(clock_jobs, "collect_garbage", lambda: order.append("gc") or 1)
    clock.collect_once(ctx)
    clock.collect_once(ctx)
    assert order == ["write", "gc", "write", "gc"]


def test_the_collectors_automatic_collections_are_counted_and_the_clocks_own_are_not(caplog):
    """The safety net's collections (not chosen by the cycle) are counted and, when long, logged."""
    import gc

    from panfm.ops import memory

    before = gc.get_threshold()
    try:
        memory.configure_gc()
        memory.configure_gc()  # twice: one callback
        assert gc.callbacks.count(memory._note_automatic) == 1
        counted = memory.automatic_collections
        memory.collect_garbage()
        assert memory.automatic_collections == counted  # the clock's own
        gc.set_threshold(5)
        with caplog.at_level("DEBUG", logger="panfm.clock"):
            memory.AUTOMATIC_LOG_MS, was = 0.0, memory.AUTOMATIC_LOG_MS
            try:
                kept = [[i] for i in range(100)]  # tracked allocations past the threshold
            finally:
                memory.AUTOMATIC_LOG_MS = was
            assert len(kept) == 100
            assert memory.automatic_collections > counted
            assert "[CLOCK GC]" not in caplog.text  # never from inside the collection
            assert memory.log_automatic_collections() > 0
        assert "[CLOCK GC] automatic collection of generation 0" in caplog.text
        assert memory.log_automatic_collections() == 0  # logged once
    finally:
        gc.callbacks[:] = [c for c in gc.callbacks if c is not memory._note_automatic]
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_collect_line_the_clock_logs_is_what_the_scaleout_bench_reads(rig, caplog):
    """`reliability.clock_logs` parses the clock's own collect line (write and CPU) and the long
    automatic collections' line: the figures of `make bench-scaleout` come from these."""
    from panfm.ops import memory
    from reliability import clock_logs

    ctx, _box, devices = rig
    devices.add(DeviceConfig(id="", name="fw-log", host="192.0.2.62", port=443, api_key="k",
                             tls=TlsConfig("insecure")))
    with caplog.at_level("DEBUG", logger="panfm.clock"):
        clock.collect_once(ctx)
        memory._long.append((0, "poll-1", 12.5))
        memory.log_automatic_collections()
    got = clock_logs.figures([caplog.text + "\ncollect: 3 late sample(s) rejected by the fence\n"])
    assert got["write_ms"]["n"] == 1 and got["write_ms"]["p50"] >= 0
    assert got["write_cpu_ms"]["n"] == 1 and got["write_cpu_ms"]["p50"] >= 0
    assert got["write_ms_after_each_first"]["n"] == 0  # the clock's first write is left out there
    assert got["write_ms_by_node"] == {"clock0": got["write_ms"]}  # no lease round here: keyed by its place
    assert got["writes_over_50ms"] == (1 if got["write_ms"]["max"] > 50 else 0)
    assert got["automatic_gc_10ms_or_more"] == {"n": 1, "p50": 12.5, "p95": 12.5, "max": 12.5}
    assert got["rejected_writes"] == 3 and got["deadlocks_or_serialization_errors"] == 0
    assert clock_logs.dist([]) == {"n": 0, "p50": None, "p95": None, "max": None}
