"""The clock's singleton jobs and its lease round: the nightly cleanup, and what only the leader runs.

On SQLite the one clock is the leader. On PostgreSQL (several clocks) `lease_once` renews this
clock's device leases every I/3 and starts its slot's poll; the leader-only jobs
(`notify_on_leader`, `evaluate_on_leader`, `rollups_on_leader`, `cleanup_if_due`) run once per
slot through `job_run`. Split from `clock_jobs.py`, which keeps the context and the collection jobs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from alerts import alert_inputs, evaluate_alerts, notify_once
from panfm.models import CycleResult, DeviceConfig
from panfm.ops.clock_jobs import ClockContext, recorded
from throughput_collector import cert_change_of
from throughput_storage import AuditLog, PgSampleReader, PgSampleStore, alerts_store

log = logging.getLogger("panfm.clock")

NOTIFY_INTERVAL_S = 10  # the outbox sender's period: a notification leaves within seconds
ROLLUP_CHECK_S = 60  # how often the leader rolls up closed buckets on PostgreSQL
# ... at this fraction of the refresh interval into a slot (database time): the slot's middle,
# away from the clocks' writes, which follow each slot's polls. Started 5 s after the clock, the
# job ran at the same point of every minute; in S8 that was the :00 slot's writes (the leader's
# 5-minute rollup beside them: the survivors' first writes after a kill, 97-121 ms).
ROLLUP_PHASE = 0.5
CLEANUP_CHECK_S = 60  # how often the leader checks whether the 02:00 cleanup (database time) is due
WARM_THREAD = "panfm-warm-keys"


def cleanup_once(ctx: ClockContext) -> dict[str, int]:
    """Apply retention per tier, to resolved alerts, sent notifications and the audit trail; checkpoint the WAL."""
    with recorded(ctx, "cleanup"):
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
        with ctx.collector.fast_priority():  # no new inventory call while the round holds its rows
            result = ctx.keeper.round(ids, interval)
        ctx.stats.coordination = ctx.keeper.snapshot()
        if ctx.metrics is not None:  # metrics hook (issue 14): lease grants, takeovers, held, leader
            ctx.metrics.lease_round(ctx.keeper, result)
        if (result is not None and result.held and ctx.keeper.fenced and ctx.request_collect is not None
                and ctx.keeper.starts_slot(result, interval)):
            ctx.request_collect()
        if result is not None and result.granted and isinstance(ctx.store, PgSampleStore):
            # In a thread of its own: the lease job must never wait for the store (its lock is
            # held through a cycle's write, its pool may be busy). A lease job that runs past the
            # next round's time makes the slot's poll start late (`next_round_in` catches a missed
            # starting round up) or, past the slot's first third, not at all.
            threading.Thread(target=warm_keys, args=(ctx.store, result.granted), name=WARM_THREAD,
                             daemon=True).start()
    finally:
        if ctx.next_round_in is not None:
            ctx.next_round_in(ctx.keeper.next_round_in(interval))


def warm_keys(store: PgSampleStore, granted: frozenset[str]) -> None:
    """Cache the series keys of devices just granted (while the slot's poll runs): their first write looks up none."""
    try:
        store.warm_keys(granted)
    except Exception:  # only a cache: the write looks the keys up itself
        log.debug("[CLOCK COORD] warming the keys of %d granted device(s) failed", len(granted), exc_info=True)


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
    fleet, devices = fleet_cycle(ctx, cycle), ctx.devices.list()  # listed once: it decrypts every secret
    return evaluate_alerts(ctx, fleet, fleet_inventory(ctx), fleet_certificates(ctx, fleet, devices), devices)


def fleet_certificates(ctx: ClockContext, fleet: CycleResult, devices: Sequence[DeviceConfig],
                       ) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """(devices refused for a changed certificate: (pinned, seen), the certificate each pinned device presents).

    For the whole fleet: this clock's own from its collector, the other clocks' from their
    stored statuses (`cert_change_of`) and the devices' pins. Without them the leader raised
    "down" for another clock's device whose certificate changed, not `tls_fingerprint_changed`.
    """
    changed = {s.device_id: found for s in fleet.statuses if (found := cert_change_of(s)) is not None}
    changed.update(ctx.collector.certificate_changes())
    seen = {d.id: str(d.tls.fingerprint_sha256) for d in devices if d.tls.mode == "pin" and d.tls.fingerprint_sha256}
    seen.update({device_id: new for device_id, (_, new) in changed.items()})
    seen.update(ctx.collector.seen_fingerprints())
    return changed, seen


def fleet_inventory(ctx: ClockContext) -> Mapping[str, Mapping[str, Any]]:
    """What the alerts read of every device's stored inventory, whichever clock gathered it (PostgreSQL).

    The leader's own inventories cover only the devices it holds: HA state, licences, new
    connected devices, critical threats, link speeds and certificates of the other clocks'
    devices come from the store. Kept in `ctx.fleet_inventory` and refreshed every slot with
    the rows whose time changed (about a tenth of the fleet per slot at a 30-s interval).
    """
    if ctx.backend is None or ctx.backend.db is None:
        return ctx.inventory
    kept = ctx.fleet_inventory
    rows = PgSampleReader(ctx.backend.db).alert_inputs_changed({d: ts for d, (ts, _) in kept.items()})
    fresh: dict[str, tuple[float, Mapping[str, Any]]] = {}
    for device_id, (ts, inputs) in rows.items():
        if inputs is None and device_id in kept:
            fresh[device_id] = kept[device_id]
        elif inputs is not None:
            fresh[device_id] = (ts, alert_inputs(inputs))  # a row from before `inputs`: its whole document
    ctx.fleet_inventory = fresh  # a device whose row went is dropped
    return MappingProxyType({d: inputs for d, (_, inputs) in fresh.items()})


def fleet_cycle(ctx: ClockContext, cycle: CycleResult) -> CycleResult:
    """`cycle` with every device's newest stored sample (younger than 2 intervals), interfaces and state."""
    if ctx.backend is None or ctx.backend.db is None:
        return cycle
    interval = ctx.settings.refresh_interval
    horizon = cycle.started - 2 * interval
    reader = PgSampleReader(ctx.backend.db)
    samples = tuple(s for s in reader.latest_all().values() if s.ts >= horizon)
    # A sample at or after the horizon is in a slot starting less than an interval before it
    # (a slot's polls stop at its end); one more for margin, a row per device.
    by_device = reader.interfaces_since(horizon - 2 * interval)
    interfaces = tuple(i for s in samples for i in by_device.get(s.device_id, ()) if i.ts >= horizon)
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
    with recorded(ctx, "rollups"):
        ctx.store.advance_rollups(now)
    return True


def rollup_schedule(interval_s: float, db_now: float) -> tuple[float, float]:
    """(seconds to the rollup job's next run, its period): runs in the middle of a slot, about once a minute.

    The period is a whole number of intervals (at least ROLLUP_CHECK_S), so every run falls at
    the same point of its slot; the next run is at least a second away.
    """
    period = interval_s * math.ceil(ROLLUP_CHECK_S / interval_s)
    phase = ROLLUP_PHASE * interval_s
    at = phase + math.ceil((db_now - phase) / interval_s) * interval_s
    if at - db_now < 1.0:
        at += interval_s
    return at - db_now, period


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
