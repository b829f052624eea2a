"""The `/metrics` metric families, built from plain data read out of the database (no I/O here).

`build_devices` picks each device's series inputs (interfaces by `metrics_interfaces`, as the
collector counts them); `families(snapshot)` turns a `Snapshot` into prometheus_client metric
families; `PanfmCollector` is the custom collector a `CollectorRegistry` calls, with the
reading of the database passed in as `load` (see `panfm/web/metrics.py`). Series whose value
is unknown are left out: Prometheus sees a gap, never a NaN or a made-up 0.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from panfm.models import CounterBaseline, DeviceSample, DeviceStatus, InterfaceCounters
from throughput_collector import counted_names

INTERFACE_MODES = ("counted", "all", "none")
DEVICE_STATES = ("up", "down", "breaker_open", "unknown")

# (metric name, help, InterfaceCounters field): the firewall's raw counters, as last polled.
INTERFACE_COUNTERS = (
    ("panfm_interface_receive_bytes_total", "Bytes received by the interface (firewall counter).", "ibytes"),
    ("panfm_interface_transmit_bytes_total", "Bytes sent by the interface (firewall counter).", "obytes"),
    ("panfm_interface_receive_packets_total", "Packets received by the interface (firewall counter).", "ipackets"),
    ("panfm_interface_transmit_packets_total", "Packets sent by the interface (firewall counter).", "opackets"),
    ("panfm_interface_receive_errors_total", "Receive errors of the interface (firewall counter).", "ierrors"),
    ("panfm_interface_receive_drops_total", "Received packets dropped (firewall counter).", "idrops"),
)

# (metric name, help, DeviceSample field): device gauges read from the newest sample.
DEVICE_GAUGES = (
    ("panfm_device_sessions_active", "Active sessions.", "sessions_active"),
    ("panfm_device_sessions_max", "Session capacity of the platform.", "sessions_max"),
    ("panfm_device_connections_per_second", "New connections per second (firewall's rate).", "sessions_cps"),
    ("panfm_device_dataplane_cpu_busiest_percent", "CPU of the busiest dataplane, percent.", "cpu_dataplane_pct"),
    ("panfm_device_management_cpu_percent", "Management-plane CPU, percent.", "cpu_management_pct"),
    ("panfm_device_memory_used_percent", "Management-plane memory used, percent.", "memory_pct"),
    ("panfm_device_packet_buffer_percent", "Packet buffer use of the busiest dataplane, percent.", "packet_buffer_pct"),
)
SESSION_PROTOCOLS = (("tcp", "sessions_tcp"), ("udp", "sessions_udp"), ("icmp", "sessions_icmp"))


@dataclass(frozen=True)
class InterfaceView:
    """One interface's series inputs: its raw counters and descriptive labels ("" when unknown)."""

    name: str
    counters: InterfaceCounters
    kind: str = ""
    zone: str = ""
    speed: str = ""


@dataclass(frozen=True)
class DeviceView:
    """One enabled device's series inputs, labelled by its name."""

    name: str
    state: str = "unknown"
    last_success: float | None = None
    sample: DeviceSample | None = None
    dataplanes: tuple[tuple[str, float | None], ...] = ()
    serial: str = ""
    model: str = ""
    sw_version: str = ""
    ha_state: str = ""
    interfaces: tuple[InterfaceView, ...] = ()
    counters_ts: float | None = None  # when the counters were read (the sample's time, request sent)


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape shows; `clock` None leaves the clock series out (a one-device scrape)."""

    up: bool
    now: float
    devices: tuple[DeviceView, ...] = ()
    alerts: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # (device, rule, severity) → firing
    clock: Mapping[str, Any] | None = None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def ha_label(ha: Mapping[str, Any] | None) -> str:
    """The HA state label: the local state, "disabled" when HA is off, "" when unknown."""
    if not isinstance(ha, Mapping):
        return ""
    if ha.get("enabled") is False:
        return "disabled"
    return _text(ha.get("local_state"))


def select_interfaces(
    counters: Mapping[str, InterfaceCounters], chosen: Iterable[str], mode: str
) -> tuple[str, ...]:
    """Names of the interfaces with series: the counted ones (as the collector counts them), all, or none."""
    if mode == "none":
        return ()
    if mode == "all":
        return tuple(sorted(counters))
    return tuple(n for n in counted_names(counters, chosen) if n in counters)


def interface_picker(
    catalogue: Iterable[Mapping[str, Any]], mode: str
) -> Callable[[str, Collection[str]], tuple[str, ...]]:
    """`keep(device_id, names)` for `SampleReader.baselines`: the names `build_devices` will show (decode no other)."""
    chosen = {dev["id"]: tuple(dev.get("interfaces", ())) for dev in catalogue if dev.get("enabled", True)}

    def keep(device_id: str, names: Collection[str]) -> tuple[str, ...]:
        if device_id not in chosen:
            return ()
        # select_interfaces reads only the names of its mapping.
        return select_interfaces(cast(Mapping[str, InterfaceCounters], dict.fromkeys(names)), chosen[device_id], mode)

    return keep


def build_devices(
    catalogue: Iterable[Mapping[str, Any]],
    *,
    samples: Mapping[str, DeviceSample],
    statuses: Mapping[str, DeviceStatus],
    dataplanes: Mapping[str, Mapping[str, Any]],
    inventories: Mapping[str, Mapping[str, Any]],
    baselines: Mapping[str, CounterBaseline],
    mode: str,
) -> tuple[DeviceView, ...]:
    """Join what storage returned into one view per enabled device of the catalogue (by id, labelled by name)."""
    out = []
    for dev in catalogue:
        if not dev.get("enabled", True):
            continue
        dev_id = dev["id"]
        status = statuses.get(dev_id)
        inv = inventories.get(dev_id) or {}
        system_doc = inv.get("system")
        system: Mapping[str, Any] = system_doc if isinstance(system_doc, Mapping) else {}
        iface_docs = {
            str(i.get("name")): i for i in inv.get("interfaces") or () if isinstance(i, Mapping)
        }
        baseline = baselines.get(dev_id)
        counters = baseline.counters if baseline is not None else {}
        ifaces = []
        for name in select_interfaces(counters, dev.get("interfaces", ()), mode):
            doc = iface_docs.get(name, {})
            ifaces.append(InterfaceView(name, counters[name], _text(doc.get("kind")), _text(doc.get("zone")),
                                        _text(doc.get("speed_mbps"))))
        dp_doc = dataplanes.get(dev_id) or {}
        dps = tuple(
            (str(d.get("name")), d.get("pct")) for d in dp_doc.get("dataplanes") or () if isinstance(d, Mapping)
        )
        out.append(DeviceView(
            name=dev["name"],
            state=status.state if status is not None else "unknown",
            last_success=status.last_success if status is not None else None,
            sample=samples.get(dev_id),
            dataplanes=dps,
            serial=_text(system.get("serial")),
            model=_text(system.get("model")),
            sw_version=_text(system.get("sw_version")),
            ha_state=ha_label(inv.get("ha")),
            interfaces=tuple(ifaces),
            counters_ts=baseline.ts if baseline is not None else None,
        ))
    return tuple(out)


def families(snap: Snapshot) -> Iterator[Metric]:
    """Yield every metric family of one scrape (empty families are left out)."""
    yield from head_families(snap)
    yield from fleet_families(snap)
    yield from tail_families(snap)


def head_families(snap: Snapshot) -> Iterator[Metric]:
    """The first family of a scrape: `panfm_up` (changes with every read, never cached)."""
    yield GaugeMetricFamily("panfm_up", "1 when PANfm's databases could be read, else 0.", value=1 if snap.up else 0)


def tail_families(snap: Snapshot) -> Iterator[Metric]:
    """The clock's families (the heartbeat's age changes with every scrape, never cached)."""
    if snap.clock is not None:
        yield from _clock_families(snap.clock, snap.devices, snap.now)


def fleet_families(snap: Snapshot) -> Iterator[Metric]:
    """The device, interface and alert families: what only a committed write changes (the web caches them)."""
    yield from _device_families(snap.devices)
    yield from _interface_families(snap.devices)
    alerts = GaugeMetricFamily("panfm_alert_active", "Firing alerts of a rule on a device (1 for one series).",
                               labels=["device", "rule", "severity"])
    for (device, rule, severity), count in sorted(snap.alerts.items()):
        alerts.add_metric([device, rule, severity], count)
    yield alerts


def _device_families(devices: tuple[DeviceView, ...]) -> Iterator[Metric]:
    up = GaugeMetricFamily("panfm_device_up", "1 when the device's last poll succeeded, else 0.", labels=["device"])
    last = GaugeMetricFamily("panfm_device_last_poll_timestamp_seconds",
                             "Time of the device's last successful poll (Unix seconds).", labels=["device"])
    rtt = GaugeMetricFamily("panfm_device_poll_duration_seconds",
                            "Round trip of the last poll's counters request, seconds.", labels=["device"])
    info = GaugeMetricFamily("panfm_device_info", "Descriptive labels of a device (always 1).",
                             labels=["device", "serial", "model", "sw_version", "ha_state"])
    sessions = GaugeMetricFamily("panfm_device_sessions", "Active sessions by protocol.",
                                 labels=["device", "protocol"])
    dp_cpu = GaugeMetricFamily("panfm_device_dataplane_cpu_percent",
                               "Dataplane CPU, percent (core=\"\": mean of the dataplane's data cores).",
                               labels=["device", "dp", "core"])
    gauges = {name: GaugeMetricFamily(name, text, labels=["device"]) for name, text, _ in DEVICE_GAUGES}
    for d in devices:
        up.add_metric([d.name], 1 if d.state == "up" else 0)
        info.add_metric([d.name, d.serial, d.model, d.sw_version, d.ha_state], 1)
        if d.last_success is not None:
            last.add_metric([d.name], d.last_success)
        s = d.sample
        if d.state != "up" or s is None:
            continue  # a device that is not up shows no stale values: a gap
        if s.rtt_ms is not None:
            rtt.add_metric([d.name], s.rtt_ms / 1000)
        for name, _, attr in DEVICE_GAUGES:
            value = getattr(s, attr)
            if value is not None:
                gauges[name].add_metric([d.name], float(value))
        for proto, attr in SESSION_PROTOCOLS:
            value = getattr(s, attr)
            if value is not None:
                sessions.add_metric([d.name, proto], float(value))
        for dp, pct in d.dataplanes:
            if pct is not None:
                dp_cpu.add_metric([d.name, dp, ""], float(pct))
    yield from (up, last, rtt, sessions, dp_cpu, *gauges.values(), info)


def _interface_families(devices: tuple[DeviceView, ...]) -> Iterator[Metric]:
    counters = {name: CounterMetricFamily(name, text, labels=["device", "interface"])
                for name, text, _ in INTERFACE_COUNTERS}
    info = GaugeMetricFamily("panfm_interface_info", "Descriptive labels of an interface (always 1; speed in Mb/s).",
                             labels=["device", "interface", "kind", "zone", "speed"])
    for d in devices:
        for i in d.interfaces:
            info.add_metric([d.name, i.name, i.kind, i.zone, i.speed], 1)
            if d.state != "up":
                continue
            for name, _, attr in INTERFACE_COUNTERS:
                # Stamped with the poll's time, not the scrape's: rate() then divides by the time
                # between two readings of the firewall, whatever the scrape and poll phases are.
                counters[name].add_metric([d.name, i.name], getattr(i.counters, attr), timestamp=d.counters_ts)
    yield from (*counters.values(), info)


def _clock_families(stats: Mapping[str, Any], devices: tuple[DeviceView, ...], now: float) -> Iterator[Metric]:
    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    for name, key, text in (
        ("panfm_clock_executions_total", "total_executions", "Jobs the clock ran since it started."),
        ("panfm_clock_errors_total", "total_errors", "Jobs of the clock that failed since it started."),
        ("panfm_clock_missed_runs_total", "missed", "Job runs the clock missed since it started."),
    ):
        value = number(stats.get(key))
        if value is not None:
            yield CounterMetricFamily(name, text, value=value)
    heartbeat = number(stats.get("heartbeat"))
    if heartbeat is not None:
        yield GaugeMetricFamily("panfm_clock_heartbeat_age_seconds", "Seconds since the clock's last heartbeat.",
                                value=max(0.0, now - heartbeat))
    last_cycle = stats.get("last_cycle")
    duration = number(last_cycle.get("duration_s")) if isinstance(last_cycle, Mapping) else None
    if duration is not None:
        yield GaugeMetricFamily("panfm_clock_last_cycle_duration_seconds",
                                "Duration of the clock's last collection cycle, seconds.", value=duration)
    states = GaugeMetricFamily("panfm_clock_devices", "Enabled devices by state.", labels=["state"])
    counts = dict.fromkeys(DEVICE_STATES, 0)
    for d in devices:
        counts[d.state if d.state in counts else "unknown"] += 1
    for state, count in counts.items():
        states.add_metric([state], count)
    yield states


class PanfmCollector:
    """A prometheus_client custom collector: each `collect()` reads a fresh snapshot through `load`."""

    def __init__(self, load: Callable[[], Snapshot]) -> None:
        self._load = load

    def collect(self) -> Iterator[Metric]:
        """Read the database once (through `load`) and yield the families."""
        yield from families(self._load())

    def describe(self) -> list[Metric]:
        """Nothing to describe up front: registering must not read the database."""
        return []
