"""The 5-minute inventory is spread over its window: each firewall at its own phase, once per window."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter

import pytest
from helpers.collector import MONITOR, FakeClient

import clock
import config
import panfm.ops as ops
from panfm.collector.cycle import Collector
from panfm.models import DeviceConfig, TlsConfig
from panfm.ops import SLOW_INTERVAL_S
from panfm.storage.config_store import DeviceStore
from panfm.storage.samples import HISTORY_DB, SampleReader
from throughput_collector import inventory_phase, phase_due

WINDOW = SLOW_INTERVAL_S


def test_each_devices_phase_is_stable_and_inside_the_window():
    ids = [str(uuid.uuid4()) for _ in range(200)]
    phases = [inventory_phase(i, WINDOW) for i in ids]
    assert all(0 <= p < WINDOW for p in phases)
    assert phases == [inventory_phase(i, WINDOW) for i in ids]  # derived from the id alone
    assert len(set(phases)) > 190  # not a handful of shared slots


def test_a_fleet_of_2000_spreads_evenly_over_the_ticks_of_a_window():
    rng = random.Random(17)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2000)]
    per_tick = [len(phase_due(ids, t, t + clock.SLOW_TICK_S, WINDOW)) for t in range(0, WINDOW, clock.SLOW_TICK_S)]
    mean = 2000 / len(per_tick)
    assert sum(per_tick) == 2000
    # No burst: the busiest 10 s tick holds well under twice its share (a single job held all 2,000).
    assert max(per_tick) < 1.6 * mean and min(per_tick) > 0.4 * mean


def test_joined_spans_of_any_length_name_every_device_once_per_window():
    rng = random.Random(3)
    ids = [f"dev-{n}" for n in range(300)]
    start = 1_700_000_100.0  # a window boundary (a multiple of 300)
    seen: Counter[str] = Counter()
    t = start
    while t < start + 3 * WINDOW:
        step = min(rng.choice([0.5, 3, 10, 10, 10, 27, 95]), start + 3 * WINDOW - t)
        seen.update(phase_due(ids, t, t + step, WINDOW))
        t += step
    assert set(seen) == set(ids) and set(seen.values()) == {3}


def test_a_span_of_a_whole_window_or_more_names_everyone_and_an_empty_span_no_one():
    ids = ["a", "b", "c"]
    assert phase_due(ids, 1000.0, 1000.0 + WINDOW, WINDOW) == ids
    assert phase_due(ids, 1000.0, 1000.0 + 3 * WINDOW, WINDOW) == ids
    assert phase_due(ids, 1000.0, 1000.0, WINDOW) == []
    assert phase_due(ids, 1000.0, 990.0, WINDOW) == []  # a clock stepped back names nobody twice


class CountingClient(FakeClient):
    def __init__(self, box, device_id):
        super().__init__(box)
        self.device_id = device_id

    def system_info(self):
        self.box["asked"].append((self.device_id, self.box["now"][0]))
        return super().system_info()


@pytest.fixture
def rig(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "refresh_interval": 30})
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    ctx.collector.close()
    box = {"snapshots": [], "now": [0.0], "polls": 0, "inventories": 0, "monitor": MONITOR, "asked": []}
    ctx.collector = Collector(workers=2, request_timeout=5.0,
                              client_factory=lambda cfg, t, on_key: CountingClient(box, cfg.id))
    ctx.clock = lambda: box["now"][0]
    devices = DeviceStore(ctx.data_dir, config.SecretBox.for_data_dir(ctx.data_dir), clock=time.time)
    yield ctx, box, devices
    ctx.collector.close()
    ctx.store.close()


def add(devices, name):
    port = 20000 + len(devices.list())  # one box per record: host and port are unique
    return devices.add(DeviceConfig(id="", name=name, host="127.0.0.1", port=port, api_key="k",
                                    tls=TlsConfig("insecure")))


def run_window(ctx, box, start):
    """Tick every SLOW_TICK_S through one window (start, start + 300]; return devices gathered per tick."""
    per_tick = []
    for n in range(1, WINDOW // clock.SLOW_TICK_S + 1):
        box["now"][0] = start + n * clock.SLOW_TICK_S
        per_tick.append(clock.collect_slow_tick(ctx))
    return per_tick


def test_the_clock_gathers_every_device_once_per_window_at_its_own_phase(rig):
    ctx, box, devices = rig
    ids = [add(devices, f"fw-{n:02d}") for n in range(24)]
    start = 1_700_000_100.0
    ctx.slow_mark = start
    per_tick = run_window(ctx, box, start)
    assert sorted(d for d, _t in box["asked"]) == sorted(ids)  # each once
    assert max(per_tick) < len(ids) // 2 and sum(1 for n in per_tick if n) >= 8  # spread, not one burst
    for device_id, asked_at in box["asked"]:  # at its phase: in the tick whose span holds the phase point
        assert asked_at - clock.SLOW_TICK_S < start + inventory_phase(device_id, WINDOW) <= asked_at
    with SampleReader.open(ctx.data_dir / HISTORY_DB) as reader:
        assert all(reader.inventory(i) is not None for i in ids)
    assert set(ctx.inventory) == set(ids)


def test_a_device_added_mid_window_is_gathered_from_the_next_ticks_on(rig):
    ctx, box, devices = rig
    old = [add(devices, f"fw-{n:02d}") for n in range(6)]
    start = 1_700_000_100.0
    ctx.slow_mark = start
    run_window(ctx, box, start)
    new = add(devices, "fw-new")
    box["asked"].clear()
    run_window(ctx, box, start + WINDOW)
    run_window(ctx, box, start + 2 * WINDOW)
    assert Counter(d for d, _t in box["asked"]) == Counter({**dict.fromkeys(old, 2), new: 2})


def test_a_late_tick_covers_the_time_it_missed(rig):
    ctx, box, devices = rig
    ids = [add(devices, f"fw-{n:02d}") for n in range(10)]
    start = 1_700_000_100.0
    ctx.slow_mark = start
    box["now"][0] = start + 10 * WINDOW  # the job was held up for a long time: everyone is due, once
    assert clock.collect_slow_tick(ctx) == len(ids)
    late = box["now"][0]
    box["now"][0] = late + 20  # the next tick covers only its own span, from where the late one stopped
    assert clock.collect_slow_tick(ctx) == len(phase_due(ids, late, late + 20, WINDOW))


def test_new_devices_are_sent_to_the_inventory_at_the_fleets_pace_not_all_at_once(rig):
    ctx, box, devices = rig
    assert ops.due_batch(1000, 30) == 100  # a fresh 1,000-device clock: a tenth per 30 s cycle
    assert ops.due_batch(2000, 10) == 67
    assert ops.due_batch(1, 30) == 1  # one new device in a running fleet: right away
    ids = [add(devices, f"fw-{n:02d}") for n in range(30)]
    box["snapshots"] = [[] for _ in range(200)]
    requested = []
    ctx.request_inventory = requested.append
    box["now"][0] = time.time()
    clock.collect_once(ctx)
    assert len(requested) == 1 and len(requested[0]) == ops.due_batch(30, 30) == 3
    assert set(requested[0]) <= set(ids)


def test_the_scheduler_runs_the_spread_tick_as_collect_slow(rig):
    ctx, _box, _devices = rig
    sched = clock.build_scheduler(ctx)
    job = sched.get_job("collect_slow")
    assert job.func is clock.collect_slow_tick and job.trigger.interval.total_seconds() == clock.SLOW_TICK_S
    assert job.max_instances == 3  # a tick held by a fast cycle does not make the next one log a skip
