"""The clock process: APScheduler's BlockingScheduler wiring the collection jobs to triggers.

    python clock.py

On SQLite, one clock per data folder (an OS lock on `data/clock.lock`); with `database_url`
set to PostgreSQL, any number of clocks share the fleet through leases (`lease_once`, every
I/3: a clock polls only the devices whose lease it renewed, and the round that starts a slot
triggers the poll). Each job is a plain function (`collect_once`, `collect_slow_once`,
`collect_inventory_once`, `cleanup_once`, `notify_on_leader`; the alert evaluation runs after
each committed cycle), kept with their `ClockContext` in `panfm/ops/clock_jobs.py` and called
directly by tests; this module builds the context and only wires the jobs to triggers,
handles signals and keeps the execution stats and heartbeat that the web shows. Settings and
devices are re-read at every cycle, so edits need no restart. Singleton jobs run on the leader
only, once per slot (`job_run`).
"""

from __future__ import annotations

import faulthandler
import fcntl
import functools
import logging
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import IO

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
from alerts import alert_inputs
from panfm.models import AddressPolicy
from panfm.ops import (
    CLEANUP_CHECK_S,
    NOTIFY_INTERVAL_S,
    ROLLUP_CHECK_S,
    SLOW_TICK_S,
    ClockContext,
    ClockMetrics,
    LeaseKeeper,
    MetricsPortUnavailable,
    cleanup_if_due,
    cleanup_once,
    collect_inventory_once,
    collect_once,
    collect_slow_tick,
    configure_allocator,
    configure_gc,
    configure_logging,
    evaluate_on_leader,
    install_redaction,
    lease_once,
    notify_on_leader,
    rollup_schedule,
    rollups_on_leader,
)
from throughput_collector import Collector, PollObserver, ReverseDns, panos_client_factory
from throughput_storage import (
    open_coordinator,
    open_stores,
)

log = logging.getLogger("panfm.clock")

LOCK_FILE = "clock.lock"
STOP_GRACE_S = 10.0  # what a stopping clock gives its running jobs

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
        # Alerts on inventory facts work before the first inventory job (what they read of it only).
        inventory = {device_id: alert_inputs(doc) for device_id, doc in reader.inventory_all().items()}
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
    db_now = ctx.keeper.db_now() if ctx.keeper is not None else None
    if fenced and db_now is not None:
        # In the middle of a slot, away from the clocks' writes (`clock_leader.ROLLUP_PHASE`).
        first, period = rollup_schedule(ctx.settings.refresh_interval, db_now)
        sched.add_job(rollups_on_leader, IntervalTrigger(seconds=period), args=[ctx], id="rollups",
                      name="rollups", next_run_time=now + timedelta(seconds=first))
    elif fenced:  # the first round failed (the database is away): once a minute, aligned at an interval change
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
        db_now = ctx.keeper.db_now() if ctx.keeper is not None else None
        if sched.get_job("rollups") is not None and db_now is not None:
            first, period = rollup_schedule(seconds, db_now)
            sched.reschedule_job("rollups", trigger=IntervalTrigger(seconds=period))
            sched.modify_job("rollups", next_run_time=datetime.now(UTC) + timedelta(seconds=first))

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


CLOCK_SWITCH_INTERVAL_S = 0.001


def main(argv: list[str] | None = None) -> int:
    """Run the clock until SIGINT/SIGTERM; return the exit code."""
    config.private_umask()  # before any file is created (databases, -wal/-shm, lock, log file)
    # The lease round and the cycle's write wait for the GIL after every database round trip
    # while the poll threads parse answers; 1 ms instead of 5 ms between forced switches halved
    # the lease round's median under that contention (bench/pg_write.py --busy-threads 1,
    # docs/benchmarks.md), at the cost of a few more thread switches.
    sys.setswitchinterval(CLOCK_SWITCH_INTERVAL_S)
    configure_allocator()  # big blocks in mappings of their own (panfm/ops/memory.py)
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
    configure_gc()  # the start's objects frozen, young collections rarer (panfm/ops/memory.py)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if ctx.stopping.is_set():
            return
        log.info("[CLOCK EVENT] %s: finishing the running cycle (at most %.0f s)", signal.Signals(signum).name,
                 STOP_GRACE_S)
        ctx.stopping.set()
        sched.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # `kill -USR1 <pid>`: every thread's stack on stderr, the process goes on (what is a stuck job waiting for?).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
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
