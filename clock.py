"""The clock process: APScheduler's BlockingScheduler wiring the collection jobs to triggers.

    python clock.py

On SQLite, one clock per data folder (an OS lock on `data/clock.lock`); with `database_url`
set to PostgreSQL, any number of clocks share the fleet through leases (`lease_once`, every
I/3: a clock polls only the devices whose lease it renewed, and the round that starts a slot
triggers the poll). Each job is a plain function (`collect_once`, `collect_slow_once`,
`collect_inventory_once`, `cleanup_once`, `notify_on_leader`; the alert evaluation runs after
each committed cycle) that tests call directly; this module only wires them to triggers,
handles signals and keeps the execution stats and heartbeat that the web shows. Settings and
devices are re-read at every cycle, so edits need no restart. Singleton jobs run on the leader
only, once per slot (`job_run`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import IO, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_SHUTDOWN,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

import config
from alerts import evaluate_alerts, notify_once
from panfm.models import AddressPolicy, CycleResult, DeviceConfig
from panfm.ops import (
    ClockMetrics,
    ClockStats,
    LeaseKeeper,
    MetricsPortUnavailable,
    configure_logging,
    install_redaction,
)
from throughput_collector import Collector, PollObserver, ReverseDns, panos_client_factory, phase_due
from throughput_storage import (
    AuditLog,
    Backend,
    DeviceStore,
    NetworkStore,
    PgSampleReader,
    PgSampleStore,
    SampleStore,
    alerts_store,
    open_coordinator,
    open_stores,
)

log = logging.getLogger("panfm.clock")

LOCK_FILE = "clock.lock"
SLOW_INTERVAL_S = 300  # every device's inventory once per window, at its own phase in it
SLOW_TICK_S = 10  # how often the spread inventory job looks for devices whose phase came up
NOTIFY_INTERVAL_S = 10  # the outbox sender's period: a notification leaves within seconds
STOP_GRACE_S = 10.0
ROLLUP_CHECK_S = 60  # how often the leader rolls up closed buckets on PostgreSQL
CLEANUP_CHECK_S = 60  # how often the leader checks whether the 02:00 cleanup (database time) is due


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
    # Latest inventory-job document per device. Replaced whole, never changed in place (under
    # `inventory_lock`), so the alert hook can iterate the mapping it holds while a inventory job
    # stores newer documents: no "dictionary changed size during iteration".
    inventory: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
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
def _recorded(ctx: ClockContext, job: str) -> Iterator[None]:
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
                # Only the devices whose lease this clock renewed, and no call after they run out.
                held = ctx.keeper.slot_devices(settings.refresh_interval)
                devices = [d for d in devices if d.id in held]
                stop_at, fence = ctx.keeper.stop_at(), ctx.keeper.fence()
            cycle = ctx.collector.collect(devices, settings.refresh_interval, stop_at=stop_at)
            duration = time.monotonic() - t0
            up = sum(1 for s in cycle.statuses if s.state == "up")
            ctx.stats.last_cycle = {
                "devices": len(devices), "sampled": len(cycle.samples), "up": up, "duration_s": round(duration, 3),
            }
            ctx.stats.record("collect", started, duration)
            if ctx.keeper is not None:
                ctx.stats.coordination = ctx.keeper.snapshot()
            t_write = time.monotonic()
            rejected = ctx.store.write_cycle(cycle, clock_stats=ctx.stats.snapshot(), fence=fence)
            write_ms = (time.monotonic() - t_write) * 1000.0
            if rejected and ctx.keeper is not None:
                ctx.keeper.rejected_writes += rejected
                log.warning("[CLOCK JOB] collect: %d late sample(s) rejected by the fence (leases lost)", rejected)
            ctx.collector.commit(cycle)  # only now: a failed commit leaves the next poll both intervals
            if ctx.metrics is not None:
                ctx.metrics.cycle_done(time.monotonic() - t0, (s.state for s in cycle.statuses))
        except Exception as exc:
            ctx.stats.record("collect", started, time.monotonic() - t0, f"{type(exc).__name__}: {exc}"[:300])
            raise
    log.info("[CLOCK JOB] collect: %d/%d devices up, %d samples in %.2f s (write %.1f ms)",
             up, len(devices), len(cycle.samples), duration, write_ms)
    for hook in list(ctx.after_cycle):
        try:
            hook(ctx, cycle)
        except Exception:  # a failing hook must not stop collection
            log.exception("[CLOCK JOB] after-cycle hook %s failed", getattr(hook, "__name__", hook))
    _request_due_inventory(ctx, len(devices), settings.refresh_interval)
    return cycle


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
    with _recorded(ctx, job):
        ctx.refresh_settings()
        if devices is None:
            devices = ctx.devices.list(enabled_only=True)
        if ctx.keeper is not None and ctx.keeper.fenced:
            held = ctx.keeper.held()  # another clock gathers the inventory of the devices it holds
            devices = [d for d in devices if d.id in held]
            only = [i for i in only if i in held] if only is not None else [d.id for d in devices]
        docs = ctx.collector.collect_slow(devices, window_s=SLOW_INTERVAL_S, only=only)
        for device_id, ts, doc in docs:
            _record_network(ctx, device_id, ts, doc)
            ctx.store.write_inventory(device_id, ts, doc)
        ctx.publish_inventory({device_id: doc for device_id, _ts, doc in docs})
    wanted = len(devices) if only is None else len(only)
    log.log(level, "[CLOCK JOB] %s: inventory of %d/%d devices", job, len(docs), wanted)
    ctx.store.write_clock_stats(ctx.stats.snapshot(), ctx.clock())
    return len(docs)


MAX_NEW_DEVICES = 50  # new MACs named in one inventory document (the alert counts them all)


def _record_network(ctx: ClockContext, device_id: str, ts: float, doc: dict[str, Any]) -> None:
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
    if ctx.network is not None and isinstance(apps, dict):
        try:
            ctx.network.record_apps(device_id, ts, apps.get("apps") or [], apps.get("categories") or [])
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


def cleanup_once(ctx: ClockContext) -> dict[str, int]:
    """Apply retention per tier, to resolved alerts, sent notifications and the audit trail; checkpoint the WAL."""
    with _recorded(ctx, "cleanup"):
        s = ctx.refresh_settings()
        deleted = ctx.store.cleanup(ctx.clock(), s.raw_retention_days, s.throughput_retention_days,
                                    s.hourly_retention_days)
        alerts = alerts_store.cleanup(ctx.alerts_db, ctx.clock(), s.alert_history_retention_days)
        if ctx.network is not None:
            deleted = {**deleted, **ctx.network.cleanup(ctx.clock(), s.connected_devices_retention_days),
                       "log_entries": ctx.network.cleanup_logs(ctx.clock(), s.log_retention_hours)}
        deleted = {**deleted, **{f"alert_{k}": v for k, v in alerts.items()}}
        audit = AuditLog(s.data_path, ctx.backend)  # config.db, or PostgreSQL
        deleted["audit_entries"] = audit.cleanup(ctx.clock(), s.audit_retention_days)
    log.info("[CLOCK JOB] cleanup: %s", deleted)
    return deleted


def lease_once(ctx: ClockContext) -> None:
    """One lease round (every I/3); the round that starts a slot triggers that slot's poll (PostgreSQL)."""
    if ctx.stopping.is_set() or ctx.keeper is None:
        return
    interval = ctx.settings.refresh_interval
    try:
        ids = [d.id for d in ctx.devices.list(enabled_only=True)]
        result = ctx.keeper.round(ids, interval)
        ctx.stats.coordination = ctx.keeper.snapshot()
        if (result is not None and result.held and ctx.keeper.fenced and ctx.request_collect is not None
                and ctx.keeper.starts_slot(result, interval)):
            ctx.request_collect()
    finally:
        if ctx.next_round_in is not None:
            ctx.next_round_in(ctx.keeper.next_round_in(interval))


def _shared(ctx: ClockContext) -> bool:
    """Whether several clocks may run (PostgreSQL): singleton jobs then go through the leader and job_run."""
    return ctx.keeper is not None and ctx.keeper.fenced


def notify_on_leader(ctx: ClockContext) -> dict[str, int] | None:
    """Send the outbox: on PostgreSQL on the leader only, once per 10-second slot (`job_run`)."""
    if ctx.keeper is not None and _shared(ctx) and not ctx.keeper.singleton("notify", NOTIFY_INTERVAL_S):
        return None
    return notify_once(ctx)


def evaluate_on_leader(ctx: ClockContext, cycle: CycleResult) -> object:
    """The after-cycle alert evaluation: on PostgreSQL on the leader only, once per slot (`job_run`).

    On SQLite the one clock is the leader and evaluates after every committed cycle, as before.
    On PostgreSQL the leader's own cycle holds only its devices, so it evaluates the whole
    fleet as stored (`fleet_cycle`): the other clocks' devices at most one slot late.
    """
    if ctx.keeper is None or not _shared(ctx):
        return evaluate_alerts(ctx, cycle)
    if not ctx.keeper.singleton("evaluate", ctx.settings.refresh_interval):
        return None
    return evaluate_alerts(ctx, fleet_cycle(ctx, cycle))


def fleet_cycle(ctx: ClockContext, cycle: CycleResult) -> CycleResult:
    """`cycle` with every device's newest stored sample (younger than 2 intervals), interfaces and state."""
    if ctx.backend is None or ctx.backend.db is None:
        return cycle
    horizon = cycle.started - 2 * ctx.settings.refresh_interval
    reader = PgSampleReader(ctx.backend.db)
    samples = tuple(s for s in reader.latest_all().values() if s.ts >= horizon)
    interfaces = tuple(i for s in samples for i in reader.interfaces_latest(s.device_id) if i.ts >= horizon)
    statuses = tuple(reader.device_statuses().values())
    return dataclasses.replace(cycle, samples=samples, interfaces=interfaces, statuses=statuses)


def rollups_on_leader(ctx: ClockContext) -> bool:
    """Roll up the closed buckets of the whole fleet (PostgreSQL, several clocks): leader only, once a minute.

    A fenced writer leaves rollups to this job; the upserts are idempotent, so a stale leader
    running it as well changes nothing.
    """
    if ctx.stopping.is_set() or ctx.keeper is None or not _shared(ctx) or not isinstance(ctx.store, PgSampleStore):
        return False
    now = ctx.keeper.db_now()
    if now is None or not ctx.keeper.singleton("rollups", ROLLUP_CHECK_S):
        return False
    with _recorded(ctx, "rollups"):
        ctx.store.advance_rollups(now)
    return True


def cleanup_if_due(ctx: ClockContext) -> dict[str, int] | None:
    """Run the nightly cleanup once the latest 02:00 UTC (database time) has no run: on the leader, once.

    Checked every minute and right after start, so a cleanup missed while every clock was down
    runs at the next start, on SQLite as on PostgreSQL.
    """
    if ctx.stopping.is_set() or ctx.keeper is None:
        return None
    day = ctx.keeper.cleanup_due()
    if day is None:
        return None
    log.info("[CLOCK JOB] cleanup of day %d due (02:00 UTC, database time)", day)
    return cleanup_once(ctx)


# ---- process wiring ---------------------------------------------------------------------


class AlreadyRunning(Exception):
    """Another clock holds the data folder's lock."""


def acquire_lock(data_dir: Path) -> IO[str]:
    """Hold `clock.lock` for the life of the process (the OS drops it when the process dies)."""
    fh = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held open until exit on purpose)
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise AlreadyRunning(f"another clock (pid {holder}) already runs for data folder {data_dir}") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def build_context(settings: config.Settings, metrics: ClockMetrics | None = None) -> ClockContext:
    """Build every dependency of the jobs from the settings (raises ConfigError when unusable).

    `metrics` (built and served by `main` when clock_metrics_port is set) gets the collector's
    call timings and errors, and the cycle and job events.
    """
    data_dir = config.ensure_data_dir(settings.data_path)
    # A damaged file stops the start with its name, not a traceback from the first query.
    stores = open_stores(settings, writer=True)
    store = stores.open_sample_writer(settings.refresh_interval)
    # Every connection the clock opens checks the resolved address (setting allowed_device_networks).
    policy = AddressPolicy.of(settings.allowed_device_networks)
    collector = Collector(workers=settings.collector_workers, request_timeout=settings.request_timeout,
                          client_factory=functools.partial(panos_client_factory, policy=policy),
                          observer=metrics.poll_observer() if metrics is not None else PollObserver(),
                          resolver=ReverseDns().names if settings.reverse_dns else None)
    collector.restore(store.load_baselines(), store.load_statuses())
    with stores.open_sample_reader() as reader:
        inventory = reader.inventory_all()  # alerts on inventory facts work before the first inventory job
    return ClockContext(
        data_dir=data_dir,
        devices=stores.devices,
        store=store,
        collector=collector,
        settings=settings,
        load_settings=stores.load_settings,  # environment over settings.json, or over the database's
        after_cycle=[evaluate_on_leader],
        inventory=MappingProxyType(inventory),
        metrics=metrics,
        network=stores.open_network_writer(),  # network.db, or PostgreSQL
        keeper=LeaseKeeper(open_coordinator(settings.database_url, data_dir)),
        backend=stores.backend,
    )


def build_scheduler(ctx: ClockContext) -> BlockingScheduler:
    """Wire the jobs to their triggers and the listeners to the scheduler's events."""
    sched = BlockingScheduler(
        timezone="UTC",
        # collect, collect_slow, collect_inventory, notify and cleanup may all run at once: a
        # long inventory job must never leave `collect` waiting for a worker.
        executors={"default": ThreadPoolExecutor(max_workers=6)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    now = datetime.now(UTC)
    fenced = ctx.keeper is not None and ctx.keeper.fenced
    if ctx.keeper is not None:
        # The first round before anything else: it registers the clock and takes its leases.
        lease_once(ctx)
        sched.add_job(lease_once, IntervalTrigger(seconds=ctx.settings.refresh_interval / 3), args=[ctx], id="lease",
                      name="lease", next_run_time=now + timedelta(seconds=ctx.keeper.next_round_in(
                          ctx.settings.refresh_interval)))
    if not fenced:  # SQLite: the one clock polls on its own interval; on PostgreSQL the slot's round does
        sched.add_job(collect_once, IntervalTrigger(seconds=ctx.settings.refresh_interval), args=[ctx], id="collect",
                      name="collect", next_run_time=now)
    # Up to 3 ticks at once: a tick's calls wait while a fast cycle runs (up to ~14 s), so the
    # next tick often starts before the last is done. They gather different devices (one being
    # gathered is skipped), and a tick skipped anyway loses no device: the next covers its span.
    # On PostgreSQL each clock gathers only the devices it holds (`_gather_inventory`).
    sched.add_job(collect_slow_tick, IntervalTrigger(seconds=SLOW_TICK_S), args=[ctx], id="collect_slow",
                  name="collect_slow", next_run_time=now + timedelta(seconds=1 if fenced else 0), max_instances=3)
    sched.add_job(notify_on_leader, IntervalTrigger(seconds=NOTIFY_INTERVAL_S), args=[ctx], id="notify",
                  name="notify")
    if fenced:
        sched.add_job(rollups_on_leader, IntervalTrigger(seconds=ROLLUP_CHECK_S), args=[ctx], id="rollups",
                      name="rollups", next_run_time=now + timedelta(seconds=5))
    if ctx.keeper is not None:
        sched.add_job(cleanup_if_due, IntervalTrigger(seconds=CLEANUP_CHECK_S), args=[ctx], id="cleanup",
                      name="cleanup", next_run_time=now)
    else:
        sched.add_job(cleanup_once, CronTrigger(hour=2, minute=0, timezone=UTC), args=[ctx], id="cleanup",
                      name="cleanup")

    def on_interval_change(seconds: int) -> None:
        if sched.get_job("collect") is not None:
            sched.reschedule_job("collect", trigger=IntervalTrigger(seconds=seconds))
        if sched.get_job("lease") is not None:
            sched.reschedule_job("lease", trigger=IntervalTrigger(seconds=seconds / 3))

    def request_collect() -> None:
        sched.add_job(collect_once, args=[ctx], id="collect", name="collect", next_run_time=datetime.now(UTC),
                      replace_existing=True)

    def next_round_in(seconds: float) -> None:
        job = sched.get_job("lease")
        if job is not None:  # keep the rounds on the database's slot thirds, whatever this host's clock says
            job.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=seconds))

    def request_inventory(device_ids: list[str]) -> None:
        # A one-off job right away; a request not started yet takes the newer list instead.
        waiting = sched.get_job("collect_inventory")
        if waiting is not None:
            waiting.modify(args=[ctx, device_ids])
            return
        sched.add_job(collect_inventory_once, args=[ctx, device_ids], id="collect_inventory",
                      name="collect_inventory", next_run_time=datetime.now(UTC), replace_existing=True)

    def next_runs() -> dict[str, str | None]:
        return {
            j.id: j.next_run_time.astimezone(UTC).isoformat().replace("+00:00", "Z") if j.next_run_time else None
            for j in sched.get_jobs()
        }

    def listener(event: SchedulerEvent) -> None:
        if event.code == EVENT_SCHEDULER_STARTED:
            log.info("[CLOCK EVENT] scheduler started")
        elif event.code == EVENT_SCHEDULER_SHUTDOWN:
            log.info("[CLOCK EVENT] scheduler shut down")
        elif isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_MISSED:
            ctx.stats.record_missed()
            if ctx.metrics is not None:
                ctx.metrics.job_missed()
            log.warning("[CLOCK EVENT] job %s missed its run at %s", event.job_id, event.scheduled_run_time)
        elif isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_ERROR:
            if ctx.metrics is not None:
                ctx.metrics.job_ran(event.job_id, failed=True)
            log.error("[CLOCK EVENT] job %s failed: %r", event.job_id, event.exception)
        elif isinstance(event, JobExecutionEvent):
            if ctx.metrics is not None:
                ctx.metrics.job_ran(event.job_id, failed=False)
            log.debug("[CLOCK EVENT] job %s executed", event.job_id)

    sched.add_listener(
        listener,
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_SCHEDULER_STARTED | EVENT_SCHEDULER_SHUTDOWN,
    )
    ctx.on_interval_change = on_interval_change
    ctx.request_inventory = request_inventory
    ctx.request_collect = request_collect
    ctx.next_round_in = next_round_in
    ctx.stats.next_runs = next_runs
    return sched


def _setup_logging(settings: config.Settings | None) -> None:
    if settings is not None:
        configure_logging(settings, "clock")
    else:  # settings unusable: still say why, on stderr
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    install_redaction()


def main(argv: list[str] | None = None) -> int:
    """Run the clock until SIGINT/SIGTERM; return the exit code."""
    config.private_umask()  # before any file is created (databases, -wal/-shm, lock, log file)
    try:
        settings = config.load_settings()
    except config.ConfigError as exc:
        _setup_logging(None)
        log.error("[CLOCK INIT] cannot start: %s", exc)
        return 2
    _setup_logging(settings)
    try:
        data_dir = config.ensure_data_dir(settings.data_path)
        # SQLite: one clock per data folder. PostgreSQL: the leases share the fleet among any number.
        lock = acquire_lock(data_dir) if not settings.database_url else None
    except config.ConfigError as exc:
        log.error("[CLOCK INIT] cannot start: %s", exc)
        return 2
    except AlreadyRunning as exc:
        log.error("[CLOCK INIT] refusing to start: %s", exc)
        return 3
    metrics = None
    if settings.clock_metrics_port:
        metrics = ClockMetrics()
        try:
            metrics.serve(settings.bind_host, settings.clock_metrics_port,
                          token=settings.metrics_token, public=settings.metrics_public)
        except MetricsPortUnavailable as exc:
            log.error("[CLOCK INIT] cannot start: %s", exc)
            return 2
        log.info("[CLOCK INIT] process metrics on %s:%d", settings.bind_host, settings.clock_metrics_port)
        if not (settings.metrics_token or settings.metrics_public):
            log.warning("[CLOCK INIT] clock_metrics_port is set but neither metrics_token nor metrics_public:"
                        " every scrape of the clock's metrics gets 401")
    try:
        ctx = build_context(settings, metrics)
    except config.ConfigError as exc:
        log.error("[CLOCK INIT] cannot start: %s", exc)
        return 2
    sched = build_scheduler(ctx)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if ctx.stopping.is_set():
            return
        log.info("[CLOCK EVENT] %s: finishing the running cycle (at most %.0f s)", signal.Signals(signum).name,
                 STOP_GRACE_S)
        ctx.stopping.set()
        sched.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("[CLOCK INIT] data folder %s, every %d s, %d workers", data_dir, settings.refresh_interval,
             settings.collector_workers)
    sched.start()
    # 1. No new work (stopping is set). 2. Wait for a cycle in flight, within the grace.
    # 3. Close the store: a commit in progress finishes first (the store's lock), a cycle not
    #    yet committed is abandoned whole. 4. Leave without joining threads stuck in calls.
    finished = ctx.busy.acquire(timeout=STOP_GRACE_S - 1.0)
    if not finished:
        log.warning("[CLOCK EVENT] abandoning the running cycle (nothing of it is committed)")
    ctx.store.close()
    if ctx.network is not None:
        ctx.network.close()
    ctx.collector.close()
    if ctx.keeper is not None:
        # After the last write: the others claim these devices at their next round and poll
        # them from the next slot, so a deploy misses no slot.
        ctx.keeper.release()
        ctx.keeper.coordinator.close()
    log.info("[CLOCK EVENT] stopped")
    logging.shutdown()
    if lock is not None:
        lock.close()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
