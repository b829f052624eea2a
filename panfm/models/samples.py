"""Collected samples and cycles (throughput_collector -> throughput_storage -> web / alerts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from panfm.models.responses import InterfaceCounters

DeviceState = Literal["up", "down", "breaker_open", "unknown"]


@dataclass(frozen=True)
class InterfaceSample:
    """Rates of one interface over one interval; None marks a gap (reset, first poll)."""

    device_id: str
    name: str
    ts: float
    in_bps: float | None
    out_bps: float | None
    in_pps: float | None
    out_pps: float | None
    errors_per_s: float | None
    drops_per_s: float | None
    counted: bool
    approx: bool | None = None  # the two samples' round trips exceed 2 % of Δt; None without a rate


@dataclass(frozen=True)
class DeviceSample:
    """One device's metrics at one poll. Rate fields are None for a gap, never a fake zero."""

    device_id: str
    ts: float
    inbound_mbps: float | None = None
    outbound_mbps: float | None = None
    total_mbps: float | None = None
    inbound_pps: float | None = None
    outbound_pps: float | None = None
    sessions_active: int | None = None
    sessions_tcp: int | None = None
    sessions_udp: int | None = None
    sessions_icmp: int | None = None
    sessions_max: int | None = None
    sessions_utilization_pct: float | None = None
    sessions_cps: int | None = None
    sessions_kbps: int | None = None
    sessions_pps: int | None = None
    cpu_dataplane_pct: float | None = None
    cpu_management_pct: float | None = None
    memory_pct: float | None = None
    packet_buffer_pct: float | None = None
    packet_descriptor_pct: float | None = None
    rtt_ms: float | None = None  # round trip of the counters request this sample is dated by
    approx: bool | None = None  # the rates' two round trips exceed 2 % of Δt; None without rates


@dataclass(frozen=True)
class CounterBaseline:
    """The last raw counters of a device, persisted so a restart still yields a rate."""

    device_id: str
    ts: float
    serial: str | None
    uptime_seconds: int | None
    counters: dict[str, InterfaceCounters]
    rtt_ms: float | None = None  # round trip of the counters request (None: stored before it was kept)


@dataclass(frozen=True)
class DeviceStatus:
    device_id: str
    state: DeviceState
    last_poll: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True)
class CycleResult:
    """Everything one collection cycle produced, written by storage in one transaction."""

    started: float
    finished: float
    samples: tuple[DeviceSample, ...]
    interfaces: tuple[InterfaceSample, ...]
    baselines: tuple[CounterBaseline, ...]
    statuses: tuple[DeviceStatus, ...]
    dataplanes: tuple[DataplaneCpu, ...] = ()  # per-dataplane CPU of each sampled device


HistoryTier = Literal["raw", "5m", "1h"]


@dataclass(frozen=True)
class History:
    """A chart-ready series: the tier it came from, the bucket width (None for raw) and flat points."""

    tier: HistoryTier
    bucket_s: int | None
    points: list[dict[str, float | None]]


@dataclass(frozen=True)
class DataplaneCpu:
    """Per-dataplane CPU and the busiest core of one device's poll (the latest is kept per device)."""

    device_id: str
    ts: float  # the poll's sample time
    dataplanes: tuple[tuple[str, float | None], ...]  # (dp name, pct); None: its cores returned no values
    busiest_core: tuple[str, int, float] | None = None  # (dp name, core id, pct)
