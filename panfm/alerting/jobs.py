"""The clock's alert jobs: evaluate the rules after each committed cycle, send the outbox.

Rules, channels and maintenance windows are read from config.db at every call, so an edit made
in the web applies on the next cycle without a restart. Functions take the clock's context.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import panfm.alerting.notify as alerts_notify
from config import Settings
from panfm.alerting.run import run_evaluation
from panfm.models import AddressPolicy, CycleResult, DeviceConfig, Transition
from throughput_storage import Backend, DocTable


class _Devices(Protocol):
    def list(self) -> list[DeviceConfig]: ...

    @property
    def box(self) -> Any: ...


class _Collector(Protocol):
    def certificate_changes(self) -> Any: ...

    def seen_fingerprints(self) -> Mapping[str, str]: ...


class ClockContext(Protocol):
    """What the alert jobs use of the clock's context (clock.ClockContext has it; no import of clock)."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def devices(self) -> _Devices: ...

    @property
    def collector(self) -> _Collector: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def stopping(self) -> threading.Event: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def inventory(self) -> Mapping[str, Mapping[str, Any]]: ...

    @property
    def alerts_db(self) -> Path | Backend: ...

    @property
    def backend(self) -> Backend | None: ...

log = logging.getLogger("panfm.alerting")


def _docs(ctx: ClockContext, table: str) -> list[dict[str, Any]]:
    """Alert rules, channels or maintenance windows as stored now (web edits apply next cycle)."""
    return DocTable(ctx.data_dir, table, ctx.clock, ctx.backend).list()


def evaluate_alerts(ctx: ClockContext, cycle: CycleResult,
                    inventory: Mapping[str, Mapping[str, Any]] | None = None,
                    certificates: tuple[Mapping[str, tuple[str, str]], Mapping[str, str]] | None = None,
                    devices: Sequence[DeviceConfig] | None = None) -> list[Transition]:
    """Evaluate the alert rules against a committed cycle; states, incidents and outbox in one commit.

    `inventory`: what the alerts read of each device's inventory; `certificates`: (devices
    refused for a changed certificate: (pinned, seen), the certificate each pinned device
    presents). This clock's own by default; the leader of several clocks passes every clock's,
    as stored. `devices`: the device records when the caller has read them already (a list of
    1,000 decrypts each secret: ~35 ms).
    """
    devices = ctx.devices.list() if devices is None else devices
    enabled = {d.id for d in devices if d.enabled}
    changed, seen = certificates if certificates is not None else (
        ctx.collector.certificate_changes(), ctx.collector.seen_fingerprints())
    if changed:
        # A box refused for its new certificate is not "unreachable": tls_fingerprint_changed
        # says what happened, and one incident must not raise two alerts.
        statuses = tuple(
            dataclasses.replace(s, state="unknown") if s.device_id in changed else s for s in cycle.statuses
        )
        cycle = dataclasses.replace(cycle, statuses=statuses)
    return run_evaluation(
        ctx.alerts_db,
        _docs(ctx, "alert_rules"),
        _docs(ctx, "alert_channels"),
        _docs(ctx, "maintenance_windows"),
        cycle,
        # One read of the published mapping: read-only, replaced whole by the inventory job, never
        # changed while this iterates. A removed device raises nothing.
        {k: v for k, v in (ctx.inventory if inventory is None else inventory).items() if k in enabled},
        ctx.clock(),
        fingerprints=seen,
        device_names={d.id: d.name for d in devices},
        device_enabled={d.id: d.enabled for d in devices},  # removing or disabling a device closes its alerts
    )


def notify_once(ctx: ClockContext) -> dict[str, int]:
    """Send the due notifications of the outbox (retries with backoff live in the outbox rows)."""
    if ctx.stopping.is_set():
        return {"sent": 0, "retrying": 0, "dead": 0}
    counts = alerts_notify.send_pending(
        ctx.alerts_db, _docs(ctx, "alert_channels"), ctx.devices.box, ctx.clock(), ctx.settings.base_url,
        policy=AddressPolicy.of(ctx.settings.allowed_device_networks),
    )
    if any(counts.values()):  # an idle outbox every 10 s is not worth a line in the stats
        log.info("[CLOCK JOB] notify: %s", counts)
    return counts
