"""The clock's jobs and their context: what `clock.py` wires to APScheduler's triggers.

Each job is a plain function of a `ClockContext` (`collect_once`, `collect_slow_tick`,
`collect_slow_once`, `collect_inventory_once` here; `cleanup_once`, `lease_once` and the
leader-only `notify_on_leader`, `evaluate_on_leader`, `rollups_on_leader`, `cleanup_if_due` in
`clock_leader.py`) that tests call directly; `clock.py` builds the context, the scheduler, the
signals and the lock. Logs as `panfm.clock`, as the process does.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import config
from alerts import alert_inputs
from panfm.models import CycleResult, DeviceConfig
from panfm.ops.clock_metrics import ClockMetrics
from panfm.ops.clock_stats import ClockStats
from panfm.ops.lease_keeper import LeaseKeeper
from panfm.ops.memory import collect_garbage, log_automatic_collections, release_free_memory
from panfm.ops.write_prep import keys_then_pack, pack, prepare
from throughput_collector import Collector, phase_due
from throughput_storage import (
    Backend,
    DeviceStore,
    NetworkStore,
    PgSampleStore,
    SampleStore,
    alerts_store,
)

log = logging.getLogger("panfm.clock")

SLOW_INTERVAL_S = 300  # every device's inventory once per window, at its own phase in it
SLOW_TICK_S = 10  # how often the spread inventory job looks for devices whose phase came up


# Called after every committed cycle with (context, cycle): `build_context` wires the alert
# evaluation here; it runs after the commit, so an alert never sees samples that were rolled back.
AfterCycleHook = Callable[["ClockContext", CycleResult], object]


@dataclass
class ClockContext:
    """Everything the jobs need; built by `build_context`, or by tests with their own parts."""

    data_dir: Path
    devices: DeviceStore
    store: SampleStore | PgSampleStore
    collector: Collector
    settings: config.Settings
    load_settings: Callable[[], config.Settings]
    stats: ClockStats = field(default_factory=ClockStats)
    after_cycle: list[AfterCycleHook] = field(default_factory=list)
    on_interval_change: Callable[[int], None] | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    busy: threading.Lock = field(default_factory=threading.Lock)
    clock: Callable[[], float] = time.time
    # What the alerts read of the latest inventory per device (`alerts.alert_inputs`, not the
    # whole document: docs/benchmarks.md, the clock's memory). Replaced whole, never changed in place (under
    # `inventory_lock`), so the alert hook can iterate the mapping it holds while a inventory job
    # stores newer documents: no "dictionary changed size during iteration".
    inventory: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    # The leader's copy of every clock's stored alert inputs (PostgreSQL): device -> (time, inputs).
    fleet_inventory: dict[str, tuple[float, Mapping[str, Any]]] = field(default_factory=dict)
    # Set by build_scheduler: run collect_inventory_once(ctx, ids) soon, in its own job (never in collect's).
    request_inventory: Callable[[list[str]], None] | None = None
    inventory_busy: threading.Lock = field(default_factory=threading.Lock)
    inventory_lock: threading.Lock = field(default_factory=threading.Lock)
    # The process metrics served on clock_metrics_port (None: off).
    metrics: ClockMetrics | None = None
    # network.db: connected devices per firewall (None: not kept, e.g. a test's bare context).
    network: NetworkStore | None = None
    # End of the span of the window the last `collect_slow_tick` covered (None: no tick yet).
    slow_mark: float | None = None
    slow_mark_lock: threading.Lock = field(default_factory=threading.Lock)
    # This clock's leases (None: tests that build a context without coordination poll everything).
    keeper: LeaseKeeper | None = None
    # Set by build_scheduler on PostgreSQL: run collect_once(ctx) now, in its own job.
    request_collect: Callable[[], None] | None = None
    # Set by build_scheduler: move the next lease round to `seconds` from now (slot alignment).
    next_round_in: Callable[[float], None] | None = None
    # Where the stores live (None: the SQLite files of data_dir, as tests build it).
    backend: Backend | None = None

    def publish_inventory(self, docs: Mapping[str, Mapping[str, Any]]) -> None:
        """Hand out a new read-only inventory with `docs` merged in (collect_slow and collect_inventory may overlap)."""
        with self.inventory_lock:
            self.inventory = MappingProxyType({**self.inventory, **docs})

    @property
    def alerts_db(self) -> Path | Backend:
        """alerts.db of the data folder, or the PostgreSQL database (`alerts_store` takes either)."""
        if self.backend is not None and self.backend.on_postgres:
            return self.backend
        return self.data_dir / alerts_store.ALERTS_DB

    def refresh_settings(self) -> config.Settings:
        """Re-read settings (web edits apply next cycle); keep the last good ones on a bad file."""
        try:
            self.settings = self.load_settings()
        except config.ConfigError as exc:
            log.error("[CLOCK JOB] settings unusable, keeping the previous ones: %s", exc)
        return self.settings


@contextmanager
def recorded(ctx: ClockContext, job: str) -> Iterator[None]:
    started, t0 = ctx.clock(), time.monotonic()
    try:
        yield
    except Exception as exc:
        ctx.stats.record(job, started, time.monotonic() - t0, f"{type(exc).__name__}: {exc}"[:300])
        raise
    ctx.stats.record(job, started, time.monotonic() - t0)


def collect_once(ctx: ClockContext) -> CycleResult | None:
    """Run one collection cycle and commit it whole, with stats and heartbeat; then run the hooks."""
    if ctx.stopping.is_set():
        return None
    with ctx.busy:
        started, t0 = ctx.clock(), time.monotonic()
        try:
            old_interval = ctx.settings.refresh_interval
            settings = ctx.refresh_settings()
            if settings.refresh_interval != old_interval and ctx.on_interval_change is not None:
                log.info("[CLOCK JOB] refresh_interval %s s -> %s s", old_interval, settings.refresh_interval)
                ctx.on_interval_change(settings.refresh_interval)
            ctx.collector.resize(settings.collector_workers)
            if isinstance(ctx.store, PgSampleStore):
                ctx.store.set_interval(settings.refresh_interval)  # PostgreSQL keys samples by slot
            devices = ctx.devices.list(enabled_only=True)
            stop_at, fence = None, None
            if ctx.keeper is not None and ctx.keeper.fenced:
                # Only the devices whose lease this clock renewed, and no call after they run out
                # or after this slot ends.
                held = ctx.keeper.take_slot(settings.refresh_interval)
                devices = [d for d in devices if d.id in held]
                stop_at, fence = ctx.keeper.slot_stop_at(settings.refresh_interval), ctx.keeper.fence()
            # The inventory waits for the write too: parsing log answers in its threads, it held
            # the interpreter while the cycle's rows were being built and sent.
            with ctx.collector.fast_priority():
                cycle, rejected, (write_ms, write_cpu_ms, pack_ms, txn_ms), duration = _collect_and_write(
                    ctx, devices, settings, stop_at, fence, started, t0)
            up = ctx.stats.last_cycle["up"]  # counted once, by _collect_and_write
            if rejected and ctx.keeper is not None:
                ctx.keeper.rejected_writes += rejected
                log.warning("[CLOCK JOB] collect: %d late sample(s) rejected by the fence (leases lost)", rejected)
            ctx.collector.commit(cycle)  # only now: a failed commit leaves the next poll both intervals
            if ctx.metrics is not None:
                ctx.metrics.cycle_done(time.monotonic() - t0, (s.state for s in cycle.statuses))
        except Exception as exc:
            ctx.stats.record("collect", started, time.monotonic() - t0, f"{type(exc).__name__}: {exc}"[:300])
            raise
    # The write's wall time and its thread's CPU time: the difference is the server's share and
    # the waits for the interpreter and the processor (docs/benchmarks.md).
    # PostgreSQL: the write's parameters were packed before its transaction (CPU ms), not in it;
    # several clocks: the transaction's own time on the server.
    txn_note = "" if txn_ms is None else f", transaction {txn_ms:.1f} ms"
    packed_note = "" if pack_ms is None else f"; packed in {pack_ms:.1f} ms before"
    log.info("[CLOCK JOB] collect: %d/%d devices up, %d samples in %.2f s (write %.1f ms, CPU %.1f ms%s%s)",
             up, len(devices), len(cycle.samples), duration, write_ms, write_cpu_ms, txn_note, packed_note)
    for hook in list(ctx.after_cycle):
        try:
            hook(ctx, cycle)
        except Exception:  # a failing hook must not stop collection
            log.exception("[CLOCK JOB] after-cycle hook %s failed", getattr(hook, "__name__", hook))
    _request_due_inventory(ctx, len(devices), settings.refresh_interval)
    collect_garbage()  # here, not in the next write or lease round (ops/memory.py)
    log_automatic_collections()  # the long ones the safety net made since the last cycle
    release_free_memory()  # the cycle's freed native memory back to the system (ops/memory.py)
    return cycle


def _collect_and_write(ctx: ClockContext, devices: list[DeviceConfig], settings: config.Settings,
                       stop_at: float | None, fence: Any, started: float, t0: float,
                       ) -> tuple[CycleResult, int, tuple[float, float, float | None, float | None], float]:
    """Collect one cycle, record its stats, write it.

    Returns (cycle, rejected rows, (write ms, its CPU ms, the CPU ms of packing it before or
    None, its transaction's ms on the server or None), cycle seconds).
    """
    cycle = ctx.collector.collect(devices, settings.refresh_interval, stop_at=stop_at)
    duration = time.monotonic() - t0
    up = sum(1 for s in cycle.statuses if s.state == "up")
    ctx.stats.last_cycle = {
        "devices": len(devices), "sampled": len(cycle.samples), "up": up, "duration_s": round(duration, 3),
    }
    ctx.stats.record("collect", started, duration)
    # PostgreSQL: packed over the cached keys before the write's transaction; None when a device or
    # interface has no key yet (a fresh fleet, a new interface). Several clocks write one after
    # another, not all at once: the first packs now, a later one once its wait is over (packing
    # while the earlier ones write took the cores their transactions needed: ops/write_prep.py).
    t_wait = time.monotonic()
    delay = 0.0
    if ctx.keeper is not None:
        ctx.stats.coordination = ctx.keeper.snapshot()
        delay = ctx.keeper.write_delay_s()
    prepare(ctx.store, cycle)  # the partitions and a connection: I/O, no contest for the cores
    left = delay - (time.monotonic() - t_wait)
    if left > 0:
        ctx.stopping.wait(left)  # a SIGTERM cuts the wait short; the cycle is still written
    packed, pack_ms = pack(ctx.store, cycle)
    new_keys, keys_s = 0, 0.0
    if packed is None and isinstance(ctx.store, PgSampleStore):
        # The missing keys after the wait, in the clocks' order (ops/write_prep.py).
        packed, pack_ms, new_keys, keys_s = keys_then_pack(ctx.store, cycle)
    t_write, cpu_write = time.monotonic(), time.thread_time()
    if isinstance(ctx.store, PgSampleStore):  # each clock's stats in its own row
        rejected = ctx.store.write_cycle(cycle, clock_stats=ctx.stats.snapshot(), fence=fence,
                                         node_id=None if ctx.keeper is None else ctx.keeper.node_id, packed=packed)
    else:
        rejected = ctx.store.write_cycle(cycle, clock_stats=ctx.stats.snapshot(), fence=fence)
    write_ms = (time.monotonic() - t_write) * 1000.0
    write_cpu_ms = (time.thread_time() - cpu_write) * 1000.0
    txn_ms = ctx.store.last_txn_ms if isinstance(ctx.store, PgSampleStore) else None
    if new_keys:
        log.info("[CLOCK JOB] collect: %d new series key(s) in %.1f ms, before the write", new_keys, keys_s * 1000.0)
    if ctx.keeper is not None:
        hold = ctx.keeper.hold_after_write_s()  # the inventory stays paused until the last rank has written
        if hold > 0:
            ctx.stopping.wait(hold)
    return cycle, rejected, (write_ms, write_cpu_ms, None if packed is None else pack_ms, txn_ms), duration


def due_batch(fleet: int, refresh_interval: float) -> int:
    """How many new devices one fast cycle may send to the inventory: the fleet's share of a window.

    A fresh clock (or a restart) finds every device without an inventory; asking for all of
    them at once is the burst that made healthy devices miss a cycle. At this rate the whole
    fleet is gathered within one window, at the steady state's pace; one new device in a
    running fleet is still asked right away.
    """
    return max(1, math.ceil(fleet * refresh_interval / SLOW_INTERVAL_S))


def _request_due_inventory(ctx: ClockContext, fleet: int, refresh_interval: float) -> None:
    """Ask for the inventory of devices that answered but have none for their current record yet."""
    if ctx.request_inventory is None or ctx.inventory_busy.locked() or ctx.stopping.is_set():
        return
    due = ctx.collector.inventory_due(ctx.clock())
    if due:
        batch = due[:due_batch(fleet, refresh_interval)]
        log.info("[CLOCK JOB] inventory due now for %d new or edited device(s)%s", len(batch),
                 f" ({len(due) - len(batch)} more in the next cycles)" if len(due) > len(batch) else "")
        ctx.request_inventory(batch)


def _gather_inventory(
    ctx: ClockContext, job: str, only: list[str] | None, devices: list[DeviceConfig] | None = None,
    level: int = logging.INFO,
) -> int:
    with recorded(ctx, job):
        ctx.refresh_settings()
        if devices is None:
            devices = ctx.devices.list(enabled_only=True)
        keeper = ctx.keeper if ctx.keeper is not None and ctx.keeper.fenced else None
        if keeper is not None:
            held = keeper.held()  # another clock gathers the inventory of the devices it holds
            devices = [d for d in devices if d.id in held]
            only = [i for i in only if i in held] if only is not None else [d.id for d in devices]
        # Several clocks: no call to a device once this clock's lease on it is gone (a new owner
        # polls it now), and a document gathered under a lease since lost is not stored.
        may_call = None if keeper is None else (lambda device_id: device_id in keeper.held())
        stored: list[str] = []  # appended from the gathering threads (list.append is atomic)
        ctx.collector.collect_slow(devices, window_s=SLOW_INTERVAL_S, only=only,
                                   log_cap=ctx.settings.log_fetch_cap, may_call=may_call,
                                   early=functools.partial(_write_early, ctx, keeper),
                                   on_result=functools.partial(_store_inventory, ctx, keeper, job, stored))
    wanted = len(devices) if only is None else len(only)
    log.log(level, "[CLOCK JOB] %s: inventory of %d/%d devices", job, len(stored), wanted)
    write_clock_stats(ctx)
    return len(stored)


def _store_inventory(ctx: ClockContext, keeper: LeaseKeeper | None, job: str, stored: list[str],
                     device_id: str, ts: float, doc: dict[str, Any]) -> None:
    """Store one device's inventory as soon as it is gathered (from its gathering thread), then publish it.

    Several clocks: a document gathered under a lease since lost is not stored (its new owner polls it now).
    """
    if keeper is not None and isinstance(ctx.store, PgSampleStore):
        fence = keeper.held().get(device_id)
        if fence is None:
            log.info("[CLOCK JOB] %s: inventory of %s dropped: its lease was lost", job, device_id)
            return
        record_network(ctx, device_id, ts, doc)
        inputs = alert_inputs(doc)  # kept beside the document: the leader evaluates every clock's devices
        if not ctx.store.write_inventory(device_id, ts, doc, fence=(keeper.node_id, fence), inputs=inputs):
            log.info("[CLOCK JOB] %s: inventory of %s refused by the fence (lease lost)", job, device_id)
            return
    else:
        record_network(ctx, device_id, ts, doc)
        inputs = alert_inputs(doc)
        if isinstance(ctx.store, PgSampleStore):
            ctx.store.write_inventory(device_id, ts, doc, inputs=inputs)
        else:
            ctx.store.write_inventory(device_id, ts, doc)
    ctx.publish_inventory({device_id: inputs})  # what the alerts read, not the whole document
    stored.append(device_id)


def _write_early(ctx: ClockContext, keeper: LeaseKeeper | None, device_id: str, ts: float, doc: dict[str, Any]) -> None:
    """Store the first part of a new device's inventory (system, interfaces and their zones) at once.

    Called from the inventory's thread before its log queries and reports; the whole document
    replaces it when the gathering ends. Seconds for a new firewall's zones instead of the
    whole inventory's time (minutes on a loaded box, each call waiting for the fast cycles).
    """
    if keeper is not None and isinstance(ctx.store, PgSampleStore):
        fence = keeper.held().get(device_id)
        if fence is not None:
            ctx.store.write_inventory(device_id, ts, doc, fence=(keeper.node_id, fence), inputs=alert_inputs(doc))
        return
    if isinstance(ctx.store, PgSampleStore):
        ctx.store.write_inventory(device_id, ts, doc, inputs=alert_inputs(doc))
    else:
        ctx.store.write_inventory(device_id, ts, doc)


def write_clock_stats(ctx: ClockContext) -> None:
    """Store the clock's stats and heartbeat outside a cycle (on PostgreSQL in this clock's own row)."""
    if isinstance(ctx.store, PgSampleStore):
        ctx.store.write_clock_stats(ctx.stats.snapshot(), ctx.clock(),
                                    node_id="" if ctx.keeper is None else ctx.keeper.node_id)
    else:
        ctx.store.write_clock_stats(ctx.stats.snapshot(), ctx.clock())


MAX_NEW_DEVICES = 50  # new MACs named in one inventory document (the alert counts them all)


def record_network(ctx: ClockContext, device_id: str, ts: float, doc: dict[str, Any]) -> None:
    """Move the connected devices out of the inventory document into network.db; note the new MACs.

    The rows are many (a /16 behind one firewall) and have their own store; the inventory keeps
    the summary and `new_devices` (MACs this firewall never showed before) for the alert.
    """
    rows = doc.pop("connected_devices", None)
    apps = doc.pop("applications", None)
    security = doc.pop("security", None)
    logs = doc.pop("logs", None)
    if ctx.network is not None and isinstance(logs, dict):
        try:
            ctx.network.record_logs(device_id, ts, logs)
            ctx.network.cleanup_logs(ts, ctx.settings.log_retention_hours)  # short retention: not only at night
            doc["logs"] = {t: len(e) for t, e in logs.items()}
        except Exception as exc:  # the rest of the inventory is still worth storing
            log.error("[CLOCK JOB] log entries of %s not stored: %s", device_id, exc)
    if ctx.network is not None and isinstance(security, dict):
        try:
            ctx.network.record_security(device_id, ts, security)
        except Exception as exc:  # the rest of the inventory is still worth storing
            log.error("[CLOCK JOB] threats and URLs of %s not stored: %s", device_id, exc)
    if isinstance(apps, dict) and apps.get("skipped"):  # no ACC run this time (slow.acc_due): nothing to record
        doc["applications"] = {"unavailable": apps.get("unavailable") or {}}
    elif ctx.network is not None and isinstance(apps, dict):
        try:
            ctx.network.record_apps(device_id, ts, apps.get("apps") or [], apps.get("categories") or [])
            ctx.network.record_acc(device_id, ts, apps.get("threats"), apps.get("url_categories"), apps.get("sources"))
            doc["applications"] = {"unavailable": apps.get("unavailable") or {}}
        except Exception as exc:  # the rest of the inventory is still worth storing
            log.error("[CLOCK JOB] applications of %s not stored: %s", device_id, exc)
    if rows is None or ctx.network is None:
        return
    try:
        new = ctx.network.record(device_id, ts, rows)
    except Exception as exc:  # the rest of the inventory is still worth storing
        log.error("[CLOCK JOB] connected devices of %s not stored: %s", device_id, exc)
        doc.setdefault("errors", {})["connected_devices"] = type(exc).__name__
        return
    network = doc.setdefault("network", {})
    network["new_count"] = len(new)
    network["new_devices"] = [{k: r.get(k) for k in ("mac", "ip", "zone", "interface", "vendor", "dhcp_hostname")}
                              for r in new[:MAX_NEW_DEVICES]]


def collect_slow_once(ctx: ClockContext) -> int:
    """Gather inventory, HA, licences, GP users and threat/URL counts of every device now; return devices stored."""
    if ctx.stopping.is_set():
        return 0
    return _gather_inventory(ctx, "collect_slow", None)


def collect_slow_tick(ctx: ClockContext) -> int:
    """Gather the inventory of the devices whose phase came up since the last tick; return devices stored.

    Each device's phase is a stable point of the 300 s window derived from its id, so the fleet's
    inventory is spread over the window (about 1/30 of it per 10 s tick) instead of arriving as
    one burst; the spans of consecutive ticks join, so a late or skipped tick only makes the next
    one larger, and every device is gathered once per window. New devices in the list are found
    by the next tick (and, sooner, by `inventory_due` after their first fast cycle).
    """
    if ctx.stopping.is_set():
        return 0
    now = ctx.clock()
    with ctx.slow_mark_lock:
        since = ctx.slow_mark if ctx.slow_mark is not None else now - SLOW_TICK_S
        ctx.slow_mark = max(now, since)
    devices = ctx.devices.list(enabled_only=True)
    due = phase_due((d.id for d in devices), since, now, SLOW_INTERVAL_S)
    if not due:
        return 0
    # DEBUG: a line every 10 s would drown the log; failures are logged per device anyway.
    return _gather_inventory(ctx, "collect_slow", due, devices, logging.DEBUG)


def collect_inventory_once(ctx: ClockContext, device_ids: list[str]) -> int:
    """Gather the inventory job's documents for these devices now (new, edited or re-enabled ones)."""
    if ctx.stopping.is_set() or not ctx.inventory_busy.acquire(blocking=False):
        return 0  # one such job at a time; the next fast cycle asks again for what is still due
    try:
        return _gather_inventory(ctx, "collect_inventory", device_ids)
    finally:
        ctx.inventory_busy.release()

