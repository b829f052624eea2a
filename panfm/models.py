"""Frozen dataclasses passed between PANfm's layers.

Parsers (`panos_xml`) turn PAN-OS responses into the first group, the collector turns
those into samples (second group), storage persists samples, the web and the alerts read
them. Nothing here does I/O. Times are UTC epoch seconds (floats, millisecond precision).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

# --------------------------------------------------------------------------------------
# Device configuration (owned and validated by config.py / config_store.py)
# --------------------------------------------------------------------------------------

TlsMode = Literal["pin", "verify", "insecure"]


@dataclass(frozen=True)
class TlsConfig:
    """How the client trusts one firewall's certificate."""

    mode: TlsMode
    fingerprint_sha256: str | None = None  # lowercase hex, no colons (mode "pin")
    ca_pem: str | None = None  # PEM bundle (mode "verify"); None = system CAs


@dataclass(frozen=True)
class DeviceConfig:
    """One monitored firewall, secrets decrypted (never logged: repr hides them)."""

    id: str
    name: str
    host: str
    tls: TlsConfig
    port: int = 443
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    interfaces: tuple[str, ...] = ()  # counted interfaces; empty = all physical ports
    enabled: bool = True


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # Linux connects 0.x.x.x to this very host


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses PANfm may connect to (setting `allowed_device_networks`).

    Without networks every address is allowed but loopback, link-local, unspecified and
    multicast ones: the "test connection" button and webhooks must not reach services of the
    PANfm host itself or cloud metadata (169.254.169.254). Private ranges stay allowed, since
    management networks live there. With networks, a firewall must be inside one of them; a
    webhook may be anywhere but those four kinds, unless a listed network holds it.
    """

    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def of(cls, cidrs: tuple[str, ...]) -> AddressPolicy:
        """Build from validated CIDR strings (config checks them at start)."""
        return cls(tuple(ipaddress.ip_network(c) for c in cidrs))

    def refusal(self, address: str, *, device: bool = True) -> str | None:
        """Why `address` (an IP literal) may not be connected to, or None when it may."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(ip in net for net in self.networks):
            return None
        if ip.is_loopback:
            kind = "a loopback"
        elif ip.is_link_local:
            kind = "a link-local"
        elif ip.is_unspecified or ip in _THIS_NETWORK:
            kind = "an unspecified"
        elif ip.is_multicast:
            kind = "a multicast"
        elif self.networks and device:
            return f"{ip} is outside allowed_device_networks"
        else:
            return None
        return f"{ip} is {kind} address (allow it with the setting allowed_device_networks)"


# --------------------------------------------------------------------------------------
# Parsed PAN-OS responses (panos_xml)
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Collected samples (throughput_collector -> throughput_storage -> web / alerts)
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Alerts (alerts_rules validates, alerts evaluates, alerts_store persists, alerts_notify sends)
# --------------------------------------------------------------------------------------

AlertSeverity = Literal["critical", "warning", "info"]
AlertOperator = Literal[">", ">=", "<", "<="]
AlertStateName = Literal["inactive", "pending", "firing"]
TransitionKind = Literal["pending", "cancelled", "firing", "repeat", "resolved"]


@dataclass(frozen=True)
class Rule:
    """One validated alert rule; event metrics carry no operator or threshold."""

    id: str
    name: str
    metric: str
    severity: AlertSeverity
    device_id: str | None = None  # None = every device
    interface: str | None = None  # interface metrics: None = every interface
    operator: AlertOperator | None = None
    threshold: float | None = None
    clear_threshold: float | None = None  # hysteresis: firing clears only past this value
    for_s: int = 0
    repeat_s: int = 0  # 0 = never re-notify while firing
    channel_ids: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class MaintenanceWindow:
    """A one-off (start/end epoch) or weekly (weekdays 0=Monday, start minute UTC, duration) window."""

    id: str
    device_id: str | None = None  # None = every device
    start: float | None = None
    end: float | None = None
    weekdays: tuple[int, ...] = ()
    start_minute: int = 0
    duration_s: int = 0
    name: str = ""


StateKey = tuple[str, str, str]  # (rule_id, device_id, series): one alert state


@dataclass(frozen=True)
class AlertState:
    """The persisted state of one (rule, device, series); series is "" for device-wide metrics."""

    rule_id: str
    device_id: str
    series: str
    state: AlertStateName
    alert_id: str | None = None
    since: float | None = None  # when the condition began to hold
    fired_at: float | None = None
    value: float | None = None
    peak: float | None = None
    last_notified: float | None = None  # None while firing = not notified yet (maintenance)
    observed: str | None = None  # last seen text of a change event (HA state, certificate)
    observed_at: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Transition:
    """One state change of one alert; `notify` asks the outbox for a message per channel."""

    kind: TransitionKind
    at: float
    alert_id: str
    rule_id: str
    device_id: str
    series: str
    metric: str
    severity: AlertSeverity
    value: float | None
    threshold: float | None
    started_at: float
    notify: bool
    suppressed: bool = False  # a notification was due but a maintenance window muted it
    peak: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class DataplaneCpu:
    """Per-dataplane CPU and the busiest core of one device's poll (the latest is kept per device)."""

    device_id: str
    ts: float  # the poll's sample time
    dataplanes: tuple[tuple[str, float | None], ...]  # (dp name, pct); None: its cores returned no values
    busiest_core: tuple[str, int, float] | None = None  # (dp name, core id, pct)
