"""The collector's memory of each device between cycles, and what each poll was sent for."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import panfm.collector.metrics as cm
from panfm.collector.breaker import Breaker
from panfm.collector.poll import Client, Poll
from panfm.models import CounterBaseline, DeviceConfig, DeviceStatus


@dataclass
class DeviceEntry:
    """One device as the collector knows it: its record, client, breaker, baseline and identity."""

    config: DeviceConfig
    breaker: Breaker = field(default_factory=Breaker)
    client: Client | None = None
    slow_client: Client | None = None
    running: Future[Poll] | None = None
    slow_running: Future[Any] | None = None
    status: DeviceStatus | None = None
    baseline: CounterBaseline | None = None  # the last committed reading: rates are measured from it
    uncommitted: CounterBaseline | None = None  # this cycle's reading, the baseline once committed
    restored_at: float | None = None  # time of the stored poll read back at start, until a new one commits
    serial: str | None = None
    uptime: int | None = None
    speeds: dict[str, int | None] = field(default_factory=dict)
    mp_cpu_supported: bool = True
    dataplane: cm.DataplaneMetrics | None = None
    cert_changed: tuple[str, str] | None = None  # (pinned, seen): refused until the record changes
    inventory_for: DeviceConfig | None = None  # the record the last gathered inventory belongs to
    inventory_tried: float | None = None  # when the last inventory gathering started
    acc_at: float | None = None  # `now` of the last inventory that ran the ACC reports (slow.acc_due)
    acc_unavailable: dict[str, str] = field(default_factory=dict)  # what that run found missing or failing
    window_end: datetime | None = None  # the firewall's clock at the end of the last counted log window


@dataclass(frozen=True)
class Asked:
    """What a poll was sent for: the record, and the box's identity known when it left."""

    config: DeviceConfig
    serial: str | None
    uptime: int | None

    def moved(self, dev: DeviceEntry) -> bool:
        """Tell whether the record now names another address (its answer is the old box's)."""
        return (self.config.host, self.config.port) != (dev.config.host, dev.config.port)

    def identity_changed(self, dev: DeviceEntry) -> bool:
        """Tell whether the inventory job met another box (serial) or a reboot (uptime) while the poll ran.

        Which box answered the poll is then unknown, so its reading must not become a baseline.
        A first serial (after a restart) is a change only when the baseline names another one.
        """
        known = self.serial if self.serial is not None else (dev.baseline.serial if dev.baseline else None)
        swapped = known is not None and dev.serial is not None and dev.serial != known
        rebooted = self.uptime is not None and dev.uptime is not None and dev.uptime < self.uptime
        return swapped or rebooted
