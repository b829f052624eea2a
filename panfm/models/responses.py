"""Parsed PAN-OS responses: what the XML API parsers (`panos_xml`) return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal


@dataclass(frozen=True)
class SystemInfo:
    """`show system info`."""

    hostname: str
    model: str
    serial: str
    sw_version: str
    uptime_seconds: int | None
    family: str | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    multi_vsys: bool | None = None
    operational_mode: str | None = None
    device_time: str | None = None
    app_version: str | None = None
    threat_version: str | None = None
    av_version: str | None = None
    wildfire_version: str | None = None
    url_filtering_version: str | None = None


@dataclass(frozen=True)
class SystemResources:
    """`show system resources` (the management plane's `top` output)."""

    cpu_user_pct: float
    cpu_system_pct: float
    cpu_idle_pct: float
    mem_total_bytes: int
    mem_used_bytes: int
    mem_free_bytes: int

    @property
    def management_cpu_pct(self) -> float:
        return max(0.0, min(100.0, 100.0 - self.cpu_idle_pct))

    @property
    def memory_pct(self) -> float | None:
        if self.mem_total_bytes <= 0:
            return None
        return self.mem_used_bytes / self.mem_total_bytes * 100.0


@dataclass(frozen=True)
class SessionInfo:
    """`show session info`; kbps/pps/cps are the device's own gauges."""

    active: int
    tcp: int
    udp: int
    icmp: int
    max: int
    kbps: int
    pps: int
    cps: int
    installed: int | None = None  # cumulative since dataplane start


@dataclass(frozen=True)
class DataplaneLoad:
    """One dataplane of `show running resource-monitor`; value lists as the device sends them."""

    name: str  # dp0, dp1, s1dp0 ...
    cpu_average: dict[int, tuple[int, ...]]  # coreid -> history
    cpu_maximum: dict[int, tuple[int, ...]]
    tasks: dict[str, tuple[int, ...]]  # task group -> history (% suffix stripped)
    utilization: dict[str, tuple[int, ...]]  # 'session', 'packet buffer', ... incl. '(average)'


@dataclass(frozen=True)
class ResourceMonitor:
    period: str  # second | minute | hour | day | week
    dataplanes: tuple[DataplaneLoad, ...]


@dataclass(frozen=True)
class InterfaceCounters:
    """Cumulative counters of one interface since the dataplane started (64-bit)."""

    name: str
    ibytes: int
    obytes: int
    ipackets: int
    opackets: int
    ierrors: int
    idrops: int
    source: Literal["hw", "ifnet"]


@dataclass(frozen=True)
class CounterSnapshot:
    """`show counter interface all`: physical (`hw`) and logical (`ifnet`) counters by name."""

    hw: dict[str, InterfaceCounters]
    ifnet: dict[str, InterfaceCounters]


InterfaceKind = Literal["physical", "subinterface", "aggregate", "tunnel", "loopback", "vlan", "other"]


@dataclass(frozen=True)
class InterfaceInfo:
    """One interface of `show interface all` (hw and ifnet merged by name)."""

    name: str
    kind: InterfaceKind
    state: str | None = None  # up / down / None for logical without state
    speed_mbps: int | None = None
    duplex: str | None = None
    zone: str | None = None
    vsys: str | None = None
    ip: str | None = None
    mac: str | None = None
    aggregate_group: str | None = None  # ae parent for members
    tag: int | None = None


@dataclass(frozen=True)
class HaState:
    enabled: bool
    mode: str | None = None
    local_state: str | None = None
    peer_state: str | None = None
    running_sync: str | None = None
    peer_ip: str | None = None


@dataclass(frozen=True)
class License:
    feature: str
    description: str | None
    issued: date | None
    expires: date | None  # None means "Never"
    expired: bool


@dataclass(frozen=True)
class ArpEntry:
    interface: str
    ip: str
    mac: str
    port: str | None
    status: str
    ttl: int | None


@dataclass(frozen=True)
class GpUser:
    username: str
    domain: str | None
    computer: str | None
    client: str | None
    virtual_ip: str | None
    public_ip: str | None
    login_time_utc: int | None


@dataclass(frozen=True)
class LogJob:
    """A log query job: `ACT`/`PEND` without entries, `FIN` with them."""

    job_id: str
    status: str
    entries: tuple[dict[str, str], ...] = ()
