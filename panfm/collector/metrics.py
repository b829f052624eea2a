"""Pure metric math of one collection: counter rates, device totals, CPU, buffers, sessions.

Nothing here does I/O or reads the clock: every function takes the parsed responses and the
response times it needs, so the rules of the issue's "Metric definitions" are tested as tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from panfm.models import (
    CounterBaseline,
    CounterSnapshot,
    InterfaceCounters,
    InterfaceSample,
    ResourceMonitor,
    SessionInfo,
    SystemResources,
)

# Physical ports are `hw` entries named ethernetN/M (aggregate members included).
PHYSICAL_RE = re.compile(r"ethernet\d+/\d+")
# A rate above this multiple of the link speed is a counter artefact, not traffic.
LINK_SPEED_SLACK = 1.1
# A rate whose two samples' round trips add up to more than this share of Δt is approximate.
APPROX_SHARE = 0.02
U64 = 2**64
# An interval longer than max(3 × refresh_interval, this) is a gap (clock stopped, breaker open).
MAX_INTERVAL_FLOOR_S = 300.0


def is_physical(name: str) -> bool:
    """Tell whether an interface name is a physical Ethernet port (ethernetN/M)."""
    return PHYSICAL_RE.fullmatch(name) is not None


def select_counters(snapshot: CounterSnapshot) -> dict[str, InterfaceCounters]:
    """Merge physical ports (from `hw`) and logical interfaces (from `ifnet`), each name once.

    A physical port's bytes are read from `hw` only: its `ifnet` twin would count them twice.
    """
    merged = {name: c for name, c in snapshot.hw.items() if is_physical(name)}
    for name, c in snapshot.ifnet.items():
        if name not in merged and not is_physical(name):
            merged[name] = c
    return merged


def counted_names(
    counters: Mapping[str, InterfaceCounters], chosen: Iterable[str], previous: Iterable[str] = ()
) -> tuple[str, ...]:
    """Names whose rates make the device totals: the chosen ones, else every physical port.

    Names of the `previous` reading count too: a counted interface missing from this poll must
    turn the interval's totals into a gap (see `interface_rates`), not silently shrink them.
    """
    known = set(counters).union(previous)
    wanted = tuple(chosen)
    if wanted:
        return tuple(n for n in wanted if n in known)
    return tuple(sorted(n for n in known if is_physical(n)))


def max_interval(refresh_interval: float) -> float:
    """The longest interval that still makes one rate: max(3 × refresh_interval, 5 minutes)."""
    return max(3.0 * refresh_interval, MAX_INTERVAL_FLOOR_S)


def reset_reason(
    prev: CounterBaseline | None,
    counters: Mapping[str, InterfaceCounters],
    ts: float,
    *,
    serial: str | None,
    uptime_seconds: int | None,
    max_interval_s: float | None = None,
) -> str | None:
    """Say why the interval since `prev` has no rate at all (None: it is continuous).

    1. no baseline, time did not advance, or more than `max_interval_s` passed (the clock
       stopped, the breaker was open): one average over hours would pass for a measurement,
       flatten every peak in the rollups and feed alert rules a number nobody saw;
    2. the serial changed (another box answers at the same address);
    3. the system uptime decreased (reboot);
    4. a physical port's counter decreased (dataplane restart): every counter restarted, so
       no difference means anything.

    `num-installed` of session info is no signal: it is a 32-bit count that wraps on a busy box
    (a real PA-5000 reads 4,142,667,796, 96.5 % of 2**32), so its decrease is not a restart.
    """
    if prev is None:
        return "no baseline"
    if ts <= prev.ts:
        return "time did not advance"
    if max_interval_s is not None and ts - prev.ts > max_interval_s:
        return f"interval too long ({ts - prev.ts:.0f} s > {max_interval_s:.0f} s)"
    if serial and prev.serial and serial != prev.serial:
        return "serial changed"
    if uptime_seconds is not None and prev.uptime_seconds is not None and uptime_seconds < prev.uptime_seconds:
        return "uptime decreased"
    for name, cur in counters.items():
        old = prev.counters.get(name)
        if old is not None and is_physical(name) and _decreased(old, cur):
            return "counters decreased"
    return None


def _decreased(old: InterfaceCounters, cur: InterfaceCounters) -> bool:
    return (
        cur.ibytes < old.ibytes
        or cur.obytes < old.obytes
        or cur.ipackets < old.ipackets
        or cur.opackets < old.opackets
    )


def approximate(prev_rtt_ms: float | None, rtt_ms: float | None, dt: float) -> bool:
    """Tell whether a rate over `dt` seconds between two samples with these round trips is approximate.

    1. Each sample is dated when its counters request was sent; the device read its counters
       later, but before its answer came back: within that request's round trip.
    2. So Δt is off by less than the larger of the two round trips (less than their sum), and
       the rate by less than that share of Δt.
    3. Above `APPROX_SHARE` (2 %) of Δt the rate is approximate; an unknown round trip (a
       baseline stored before round trips were kept) cannot vouch for it either.
    """
    if prev_rtt_ms is None or rtt_ms is None or dt <= 0:
        return True
    return (prev_rtt_ms + rtt_ms) / 1000.0 > APPROX_SHARE * dt


def _per_s(new: int, old: int, dt: float) -> float | None:
    if new < old or new >= U64:
        return None
    return (new - old) / dt


@dataclass(frozen=True)
class Rates:
    """Rates of one device over one interval; None fields are gaps."""

    interfaces: tuple[InterfaceSample, ...]
    in_bps: float | None
    out_bps: float | None
    in_pps: float | None
    out_pps: float | None
    reset: str | None  # why the whole interval is a gap, if it is
    approx: bool | None = None  # see `approximate`; None when the interval has no rate

    @property
    def inbound_mbps(self) -> float | None:
        return None if self.in_bps is None else self.in_bps / 1e6

    @property
    def outbound_mbps(self) -> float | None:
        return None if self.out_bps is None else self.out_bps / 1e6

    @property
    def total_mbps(self) -> float | None:
        if self.in_bps is None or self.out_bps is None:
            return None
        return (self.in_bps + self.out_bps) / 1e6


def interface_rates(
    device_id: str,
    prev: CounterBaseline | None,
    counters: Mapping[str, InterfaceCounters],
    ts: float,
    *,
    counted: Iterable[str],
    link_speed_mbps: Mapping[str, int | None] | None = None,
    reset: str | None = None,
    approx: bool | None = None,
) -> Rates:
    """Turn two counter readings into per-interface rates and device totals.

    1. Δt is the difference of the two counters requests' send times (ms precision, not whole s);
       `approx` (see `approximate`) marks every rate of the interval.
    2. in_bps = Δibytes × 8 / Δt (out likewise, packets without × 8).
    3. A whole-device `reset` (see `reset_reason`) or an interface without a previous reading or
       with a decreasing counter gives a gap (None), never a negative value, a zero or a spike.
    4. A rate above 1.1 × the link speed is dropped as an artefact.
    5. Device totals sum the counted interfaces; any counted gap makes the total a gap, since a
       partial sum would look like a traffic drop. So does a counted interface missing from this
       poll; the per-interface samples that exist are kept.
    """
    speeds = link_speed_mbps or {}
    counted_set = set(counted)
    samples: list[InterfaceSample] = []
    totals: dict[str, float | None] = {"ib": 0.0, "ob": 0.0, "ip": 0.0, "op": 0.0}
    if not counted_set or not counted_set.issubset(counters):
        totals = dict.fromkeys(totals)
    for name in sorted(counters):
        cur = counters[name]
        old = None if (reset or prev is None) else prev.counters.get(name)
        if old is None:
            ib = ob = ip = op = er = dr = None
        else:
            dt = ts - (prev.ts if prev else ts)
            ib, ob = _per_s(cur.ibytes, old.ibytes, dt), _per_s(cur.obytes, old.obytes, dt)
            ip, op = _per_s(cur.ipackets, old.ipackets, dt), _per_s(cur.opackets, old.opackets, dt)
            er, dr = _per_s(cur.ierrors, old.ierrors, dt), _per_s(cur.idrops, old.idrops, dt)
            ib = None if ib is None else ib * 8
            ob = None if ob is None else ob * 8
            if None in (ib, ob, ip, op):  # one decreasing counter: the interface was reset
                ib = ob = ip = op = er = dr = None
            speed = speeds.get(name)
            limit = speed * 1e6 * LINK_SPEED_SLACK if speed else None
            if limit is not None and ((ib or 0.0) > limit or (ob or 0.0) > limit):
                ib = ob = ip = op = None
        samples.append(
            InterfaceSample(
                device_id=device_id, name=name, ts=ts, in_bps=ib, out_bps=ob, in_pps=ip, out_pps=op,
                errors_per_s=er, drops_per_s=dr, counted=name in counted_set,
                approx=None if ib is None else approx,
            )
        )
        if name in counted_set:
            for key, value in (("ib", ib), ("ob", ob), ("ip", ip), ("op", op)):
                acc = totals[key]
                totals[key] = None if acc is None or value is None else acc + value
    return Rates(
        interfaces=tuple(samples), in_bps=totals["ib"], out_bps=totals["ob"], in_pps=totals["ip"],
        out_pps=totals["op"], reset=reset, approx=None if reset or prev is None else approx,
    )


@dataclass(frozen=True)
class SessionMetrics:
    active: int
    tcp: int
    udp: int
    icmp: int
    max: int
    utilization_pct: float | None
    kbps: int
    pps: int
    cps: int


def session_metrics(info: SessionInfo) -> SessionMetrics:
    """Session counts, utilisation = active / max × 100, and the device's own gauges."""
    util = info.active / info.max * 100.0 if info.max > 0 else None
    return SessionMetrics(
        active=info.active, tcp=info.tcp, udp=info.udp, icmp=info.icmp, max=info.max, utilization_pct=util,
        kbps=info.kbps, pps=info.pps, cps=info.cps,
    )


@dataclass(frozen=True)
class DataplaneMetrics:
    """Dataplane CPU per DP, the busiest DP and core, and buffer utilisation (latest minute)."""

    cpu_pct: float | None  # busiest dataplane
    per_dp_cpu: dict[str, float | None]  # None: the DP's cores returned no values (no data)
    busiest_dp: str | None
    busiest_core: tuple[str, int, float] | None  # (dp, core id, pct)
    packet_buffer_pct: float | None
    packet_descriptor_pct: float | None


def _latest(values: tuple[int, ...]) -> int | None:
    # The device lists the history newest first (PROTOCOL.md §7).
    return values[0] if values else None


def _utilization(util: Mapping[str, tuple[int, ...]], what: str) -> float | None:
    """Latest value of `what`, preferring the `(average)` entry when average and maximum exist."""
    values = util.get(f"{what} (average)", util.get(what))
    latest = _latest(values) if values is not None else None
    return None if latest is None else float(latest)


def dataplane_metrics(monitor: ResourceMonitor) -> DataplaneMetrics:
    """Apply the dataplane rules to `show running resource-monitor minute`.

    1. Per DP: mean over cores of the latest 1-minute average, leaving out cores that read 0 in
       every returned sample (control cores, which would halve a busy DP's value). A DP whose
       cores all read 0 is idle (0.0); one whose cores returned no values at all has no data
       (None), never a fabricated 0.
    2. Device value: the busiest DP with data; also keep the busiest core.
    3. Packet buffer / descriptor: latest value, `(average)` entry when present, busiest DP.
    """
    per_dp: dict[str, float | None] = {}
    core: tuple[str, int, float] | None = None
    buffers: list[float] = []
    descriptors: list[float] = []
    for dp in monitor.dataplanes:
        latest: list[int] = []
        reported = False  # any core returned a value at all
        for core_id, values in sorted(dp.cpu_average.items()):
            value = _latest(values)
            reported = reported or value is not None
            if value is None or not any(values):
                continue
            latest.append(value)
            if core is None or value > core[2]:
                core = (dp.name, core_id, float(value))
        if dp.cpu_average:
            if latest:
                per_dp[dp.name] = sum(latest) / len(latest)
            else:  # every core idle reads 0 honestly; no values at all is no data, not 0
                per_dp[dp.name] = 0.0 if reported else None
        buf = _utilization(dp.utilization, "packet buffer")
        desc = _utilization(dp.utilization, "packet descriptor")
        if buf is not None:
            buffers.append(buf)
        if desc is not None:
            descriptors.append(desc)
    measured = {k: v for k, v in per_dp.items() if v is not None}
    busiest = max(measured, key=lambda k: measured[k]) if measured else None
    return DataplaneMetrics(
        cpu_pct=measured[busiest] if busiest is not None else None,
        per_dp_cpu=per_dp,
        busiest_dp=busiest,
        busiest_core=core,
        packet_buffer_pct=max(buffers) if buffers else None,
        packet_descriptor_pct=max(descriptors) if descriptors else None,
    )


def management_cpu(mp_cpu_1min: float | None, resources: SystemResources | None) -> float | None:
    """MP CPU: the 1-minute average when the device reports it, else 100 − idle of `top`."""
    if mp_cpu_1min is not None:
        return float(mp_cpu_1min)
    return resources.management_cpu_pct if resources is not None else None


def memory_pct(resources: SystemResources | None) -> float | None:
    """Memory %: used / total of the `Mem` line (never Swap), as parsed."""
    return resources.memory_pct if resources is not None else None
