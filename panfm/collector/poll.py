"""One device's calls in one cycle, made in a worker thread (no shared state touched here), and its sample."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import panfm.collector.metrics as cm
from panfm.collector.breaker import safe_error
from panfm.collector.slow import SlowClient
from panfm.models import (
    AddressPolicy,
    CounterSnapshot,
    DataplaneCpu,
    DeviceConfig,
    DeviceSample,
    InterfaceCounters,
    ResourceMonitor,
    SessionInfo,
    SystemResources,
)
from panfm.xmlapi import ApiError, AuthError, BadResponse, FingerprintMismatch

T = TypeVar("T")
RESOURCE_MONITOR_LAST = 5  # five 1-minute samples: enough to tell idle control cores from data cores


class Client(SlowClient, Protocol):
    """What the collector needs of `panos_api.PanosClient`."""

    last_sent_time: float
    last_round_trip: float

    def counters(self) -> CounterSnapshot: ...
    def session_info(self) -> SessionInfo: ...
    def resource_monitor(self, period: str = "minute", last: int = 1) -> ResourceMonitor: ...
    def mp_cpu(self) -> float: ...
    def system_resources(self) -> SystemResources: ...
    def close(self) -> None: ...


ClientFactory = Callable[[DeviceConfig, float, Callable[[str], None]], Client]


def panos_client_factory(
    device: DeviceConfig, timeout: float, on_key: Callable[[str], None], policy: AddressPolicy | None = None
) -> Client:
    """Build a real `panos_api.PanosClient` (imported here so tests of the math need no network code)."""
    from panfm.xmlapi import PanosClient

    client: Client = PanosClient(
        device, timeout=timeout, connect_timeout=min(5.0, timeout), on_key=on_key, policy=policy
    )
    return client


def _ignore_call(command: str, seconds: float) -> None:
    return None


def _ignore_error(kind: str) -> None:
    return None


@dataclass(frozen=True)
class PollObserver:
    """Plain callbacks the collector reports to (the clock's process metrics); no-ops by default.

    `call(command, seconds)` after every XML API call of the fast cycle, answered or failed;
    `error(kind)` with the exception class name of every failed call (or `DeadlineExceeded`).
    Called from the poll workers: they must be thread-safe and must not raise.
    """

    call: Callable[[str, float], None] = _ignore_call
    error: Callable[[str], None] = _ignore_error


NO_OBSERVER = PollObserver()


class DeadlineExceeded(Exception):
    """The device's share of the cycle ran out before all its calls were made."""


@dataclass
class Poll:
    """What one device's calls returned; built in a worker thread, applied in the cycle's thread."""

    ts: float | None = None  # when the counters request was sent
    rtt_ms: float | None = None  # its round trip (the device read the counters within it)
    counters: dict[str, InterfaceCounters] | None = None
    session: SessionInfo | None = None
    monitor: ResourceMonitor | None = None
    mp_cpu: float | None = None
    mp_cpu_supported: bool = True
    resources: SystemResources | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    cert_changed: tuple[str, str] | None = None  # (pinned, seen) SHA-256 when the certificate changed
    # No call was made: the cycle's deadline passed while the poll waited for a worker.
    not_started: bool = False


def _soft(exc: BaseException) -> bool:
    """Tell whether a failed secondary call only loses its metric (the device still answered)."""
    return isinstance(exc, ApiError | BadResponse) and not isinstance(exc, AuthError)


def poll_device(
    client: Client,
    deadline: float,
    monotonic: Callable[[], float],
    mp_cpu_supported: bool,
    secrets: tuple[str | None, ...] = (),
    observer: PollObserver = NO_OBSERVER,
) -> Poll:
    """Make one device's (at most five) calls in order, stopping at the first transport failure."""
    poll = Poll(mp_cpu_supported=mp_cpu_supported)

    def timed(command: str, call: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return call()
        finally:
            observer.call(command, time.perf_counter() - t0)

    def check() -> None:
        if monotonic() >= deadline:
            raise DeadlineExceeded("deadline exceeded")

    if monotonic() >= deadline:
        return Poll(mp_cpu_supported=mp_cpu_supported, error="not polled: the collector was busy", not_started=True)
    try:
        snapshot = timed("counters", client.counters)
        poll.ts = client.last_sent_time or time.time()
        poll.rtt_ms = client.last_round_trip * 1000.0 if client.last_sent_time else None
        poll.counters = cm.select_counters(snapshot)
        for name in ("session", "monitor", "mp_cpu", "resources"):
            if name == "mp_cpu" and not poll.mp_cpu_supported:
                continue
            check()
            try:
                if name == "session":
                    poll.session = timed("session_info", client.session_info)
                elif name == "monitor":
                    poll.monitor = timed("resource_monitor", lambda: client.resource_monitor(
                        period="minute", last=RESOURCE_MONITOR_LAST))
                elif name == "mp_cpu":
                    poll.mp_cpu = timed("mp_cpu", client.mp_cpu)
                else:
                    poll.resources = timed("system_resources", client.system_resources)
            except Exception as exc:
                if not _soft(exc):
                    raise
                observer.error(type(exc).__name__)
                if name == "mp_cpu":
                    poll.mp_cpu_supported = False  # NO_MATCHES: this platform has no such export
                else:
                    poll.warnings.append(f"{name}: {type(exc).__name__}")
    except Exception as exc:
        observer.error(type(exc).__name__)
        if isinstance(exc, FingerprintMismatch):
            poll.cert_changed = (exc.expected, exc.actual)
        poll.error = safe_error(exc, secrets)
    return poll


def poll_sample(
    device_id: str, poll: Poll, ts: float, rates: cm.Rates
) -> tuple[DeviceSample, DataplaneCpu, cm.DataplaneMetrics | None]:
    """Build the device sample, its per-dataplane CPU and the dataplane metrics from one good poll."""
    dp = cm.dataplane_metrics(poll.monitor) if poll.monitor else None
    sess = cm.session_metrics(poll.session) if poll.session else None
    sample = DeviceSample(
        device_id=device_id,
        ts=ts,
        inbound_mbps=rates.inbound_mbps,
        outbound_mbps=rates.outbound_mbps,
        total_mbps=rates.total_mbps,
        inbound_pps=rates.in_pps,
        outbound_pps=rates.out_pps,
        sessions_active=sess.active if sess else None,
        sessions_tcp=sess.tcp if sess else None,
        sessions_udp=sess.udp if sess else None,
        sessions_icmp=sess.icmp if sess else None,
        sessions_max=sess.max if sess else None,
        sessions_utilization_pct=sess.utilization_pct if sess else None,
        sessions_cps=sess.cps if sess else None,
        sessions_kbps=sess.kbps if sess else None,
        sessions_pps=sess.pps if sess else None,
        cpu_dataplane_pct=dp.cpu_pct if dp else None,
        cpu_management_pct=cm.management_cpu(poll.mp_cpu, poll.resources),
        memory_pct=cm.memory_pct(poll.resources),
        packet_buffer_pct=dp.packet_buffer_pct if dp else None,
        packet_descriptor_pct=dp.packet_descriptor_pct if dp else None,
        rtt_ms=poll.rtt_ms,
        approx=rates.approx,
    )
    # Stored with every sample (empty without a resource monitor answer), so the latest
    # per-dataplane values always belong to the latest sample.
    detail = DataplaneCpu(
        device_id=device_id, ts=ts, dataplanes=tuple(dp.per_dp_cpu.items()) if dp else (),
        busiest_core=dp.busiest_core if dp else None,
    )
    return sample, detail, dp
