"""State of one simulated firewall: identity, credentials, boot, HA, faults, counters and stats."""

from __future__ import annotations

import base64
import math
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from panos_sim.platforms import Platform, Port
from panos_sim.traffic import LOAD_MAX, DeviceLoad, Flow, port_scale, rng_for

DAY_S = 86400.0
PASSIVE_SHARE = 0.002  # a passive HA peer still sees heartbeats and link traffic, never exactly zero
SESSION_LIFE_S = 40.0
EVENT_MODES = ("reboot", "failover", "replace")
STATE_MODES = ("down", "blackhole", "slow", "http500", "bad_xml", "revoke_key", "report_stuck")
FAULT_MODES = ("none", *STATE_MODES, *EVENT_MODES)


POLL_TIMES_KEPT = 20_000


@dataclass
class Stats:
    """Per-device request statistics served by /_sim/stats."""

    requests: Counter[str] = field(default_factory=Counter)
    keygen: int = 0
    key_in_url: int = 0
    active: int = 0
    inflight: int = 0
    max_concurrency: int = 0
    max_inflight: int = 0
    # When each fast poll arrived (its first call, `show counter interface`), the newest last:
    # tests count polls per device per slot across every clock (at most one).
    poll_times: deque[float] = field(default_factory=lambda: deque(maxlen=POLL_TIMES_KEPT))

    def as_dict(self, calls: bool = False) -> dict[str, Any]:
        """Return the JSON form (with `poll_times` when `calls`)."""
        extra: dict[str, Any] = {"poll_times": list(self.poll_times)} if calls else {}
        return {
            **extra,
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "keygen": self.keygen,
            "key_in_url": self.key_in_url,
            "max_concurrency": self.max_concurrency,
            "max_inflight": self.max_inflight,
        }


@dataclass
class LogJob:
    """An enqueued log query."""

    job_id: int
    log_type: str
    nlogs: int
    skip: int
    direction: str
    since: float | None
    enqueued: float
    act_polls: int
    where: Callable[[Mapping[str, str]], bool] | None = None  # the query's filter (None: every entry)
    until: float | None = None  # its `receive_time leq` bound (None: up to the job's start)


def _serial(rng_bits: int, model: str) -> str:
    """Return a 12-digit serial in the style of the model family."""
    prefix = "0070" if model == "PA-VM" else "0151"
    return prefix + f"{rng_bits % 10**8:08d}"


class Device:
    """One virtual firewall; pure state, no sockets (the fleet owns those)."""

    def __init__(self, index: int, name: str, platform: Platform, seed: int, now: float) -> None:
        self.index = index
        self.name = name
        self.platform = platform
        self.seed = seed
        rng = rng_for(seed, name, "identity")
        self.serial = _serial(rng.getrandbits(40), platform.model)
        self.hardware_gen = 0
        # Credentials and keys are random per run (secrets), unlike the deterministic traffic.
        self.username = "monitor" if index % 2 else "admin"
        self.password = secrets.token_urlsafe(9) + "&<\"!"[index % 4] + secrets.token_urlsafe(3)
        self.api_key = self._new_key()
        self.key_revoked = False
        self.mac_base = 0x0000_00_1B_17_00_0000 | (rng.getrandbits(16) << 8)
        self.mgmt_ip = f"10.{index // 250 % 250}.{index % 250}.{1 + rng.getrandbits(7)}"
        self.load = DeviceLoad(seed, name)
        self.flows: dict[str, Flow] = {}
        self.pkt_size: dict[str, float] = {}
        for port in platform.physical():
            for direction in ("in", "out"):
                key = f"{port.name}/{direction}"
                scale = port_scale(seed, name, key, port.speed_mbps)
                self.flows[key] = Flow(seed, name, key, scale, self.load)
            self.pkt_size[port.name] = rng_for(seed, name, port.name, "pkt").uniform(450.0, 1100.0)
        self.session_util = rng.uniform(0.03, 0.4)
        self.cpu_weight = rng.uniform(0.25, 0.9)
        self.core_offsets = [rng.uniform(-4.0, 4.0) for _ in range(platform.cores)]
        self.mem_used = rng.uniform(0.45, 0.7)
        self.ha_enabled = index % 4 != 0
        self.ha_state = "active"
        self.ha_since = now - rng.uniform(3600.0, 40 * DAY_S)
        self.boot = now - rng.uniform(3 * DAY_S, 200 * DAY_S)
        self.counter_base = (1 << 40) + rng.getrandbits(36)
        self.segments: list[tuple[float, float]] = [(self.boot, 1.0 if self.ha_state == "active" else PASSIVE_SHARE)]
        # Every boot's (start, counter base, HA segments), the current one last: the truth of a
        # window reaching back before a reboot is what each boot's counters grew by in it.
        self.boots: list[tuple[float, int, list[tuple[float, float]]]] = [
            (self.boot, self.counter_base, self.segments)
        ]
        self.fault_mode = "none"
        self.fault_until: float | None = None
        self.latency_s = 0.0
        self.jobs: dict[int, LogJob] = {}
        self.report_jobs: dict[int, Any] = {}  # reports.ReportJob by id
        self.next_job = 1 + rng.getrandbits(10)
        self.stats = Stats()

    @staticmethod
    def _new_key() -> str:
        """Return a fresh key shaped like a PAN-OS 10.x/11.x key: `LUFRPT…`, 104 characters, one '='.

        A real key is base64 of an ASCII string, `-AQ==` + base64(20 bytes) + base64(32 bytes);
        base64 of base64 text never yields '+' or '/' (their 6-bit values need bytes such as
        '>' or '?'), which is why the vendor's SDK can send it unencoded in a form body.
        """
        inner = "-AQ==" + base64.b64encode(secrets.token_bytes(20)).decode() + base64.b64encode(
            secrets.token_bytes(32)
        ).decode()
        return base64.b64encode(inner.encode()).decode()

    # --- faults -------------------------------------------------------------------------------
    def fault(self, now: float) -> str:
        """Return the state fault in force at NOW, expiring it when its time is up."""
        if self.fault_until is not None and now >= self.fault_until:
            self.fault_mode, self.fault_until = "none", None
        return self.fault_mode

    def set_state_fault(self, mode: str, duration_s: float, now: float) -> None:
        """Start MODE for DURATION_S seconds (0 = until changed)."""
        self.fault_mode = mode
        self.fault_until = now + duration_s if duration_s > 0 else None
        if mode == "revoke_key":
            self.key_revoked = True
        if mode == "none":
            self.key_revoked = False

    def keygen(self) -> str:
        """Return the key for the device's credentials; a revoked key is replaced by a new one."""
        if self.key_revoked:
            self.api_key = self._new_key()
            self.key_revoked = False
            if self.fault_mode == "revoke_key":
                self.fault_mode, self.fault_until = "none", None
        return self.api_key

    def reboot(self, now: float) -> None:
        """Restart counters, session totals and uptime from zero."""
        self.boot = now
        self.counter_base = 0
        self.segments = [(now, 1.0 if self.ha_state == "active" else PASSIVE_SHARE)]
        self.boots.append((self.boot, self.counter_base, self.segments))
        self.jobs.clear()

    def replace(self, now: float) -> None:
        """Swap the hardware: new serial and MACs, counters from zero (the fleet swaps the certificate)."""
        self.hardware_gen += 1
        rng = rng_for(self.seed, self.name, "identity", self.hardware_gen)
        self.serial = _serial(rng.getrandbits(40), self.platform.model)
        self.mac_base ^= rng.getrandbits(16) << 8
        self.reboot(now)

    def failover(self, now: float) -> None:
        """Flip the HA state; the traffic follows the active peer."""
        self.ha_enabled = True
        self.ha_state = "passive" if self.ha_state == "active" else "active"
        self.ha_since = now
        self.segments.append((now, 1.0 if self.ha_state == "active" else PASSIVE_SHARE))

    # --- traffic ------------------------------------------------------------------------------
    def share_at(self, t: float) -> float:
        """Return the HA traffic share at t."""
        share = self.segments[0][1]
        for start, s in self.segments:
            if start <= t:
                share = s
        return share

    def carried(self, flow: Flow, t1: float, t2: float, segments: list[tuple[float, float]] | None = None) -> float:
        """Return the real-valued bytes FLOW carried in [t1, t2] (this boot's HA shares unless SEGMENTS)."""
        segments = self.segments if segments is None else segments
        total = 0.0
        for i, (start, share) in enumerate(segments):
            end = segments[i + 1][0] if i + 1 < len(segments) else math.inf
            a, b = max(t1, start), min(t2, end)
            if b > a:
                total += share * flow.bytes_between(a, b)
        return total

    def _raw(self, port: Port, direction: str, t: float, epoch: int = -1) -> tuple[int, int]:
        """Return (bytes, packets) since boot EPOCH (default: the current one) for PORT at t, base included."""
        boot, counter_base, segments = self.boots[epoch]
        t = max(t, boot)
        kind = port.kind
        if kind == "physical":
            since = self.carried(self.flows[f"{port.name}/{direction}"], boot, t, segments)
            size = self.pkt_size[port.name]
            return counter_base + math.floor(since), counter_base // 900 + math.floor(since / size)
        if kind == "aggregate":
            members = [p for p in self.platform.ports if p.parent == port.name and p.kind == "physical"]
            pairs = [self._raw(m, direction, t, epoch) for m in members]
            return sum(b for b, _ in pairs), sum(p for _, p in pairs)
        if kind in ("subif", "tunnel", "loopback"):
            since = self.carried(self.flows[f"{port.parent}/{direction}"], boot, t, segments) * port.share
            base = math.floor(counter_base * port.share)
            return base + math.floor(since), base // 900 + math.floor(since / 300.0)
        return 0, 0

    def counters(self, t: float, epoch: int = -1) -> dict[str, dict[str, int]]:
        """Return cumulative counters of every interface that counts traffic, at t (in boot EPOCH)."""
        out: dict[str, dict[str, int]] = {}
        for port in self.platform.ports:
            if port.kind in ("tunnel-base", "loopback-base"):
                continue
            ib, ip = self._raw(port, "in", t, epoch)
            ob, op = self._raw(port, "out", t, epoch)
            out[port.name] = {"ibytes": ib, "obytes": ob, "ipackets": ip, "opackets": op}
        return out

    def rate_bps(self, t: float) -> float:
        """Return the device throughput (ingress, bits/s) at t."""
        share = self.share_at(t)
        return share * 8.0 * sum(f.rate(t) for k, f in self.flows.items() if k.endswith("/in"))

    def level(self, t: float) -> float:
        """Return the load as a fraction of its maximum (0..1], HA share applied."""
        share = self.share_at(t)
        return max(share * self.load.value(t) / LOAD_MAX, 1e-4)

    def sessions(self, t: float) -> dict[str, int]:
        """Return active sessions, cps, kbps, pps and the installed total at t."""
        lvl = self.level(t)
        active = max(1, math.floor(self.platform.num_max * self.session_util * lvl))
        per_s = self.platform.num_max * self.session_util / LOAD_MAX / SESSION_LIFE_S
        installed_f = 0.0
        for i, (start, share) in enumerate(self.segments):
            end = self.segments[i + 1][0] if i + 1 < len(self.segments) else math.inf
            a, b = max(self.boot, start), min(t, end)
            if b > a:
                installed_f += share * per_s * (self.load.integral(b) - self.load.integral(a))
        bps = self.rate_bps(t)
        avg_pkt = sum(self.pkt_size.values()) / max(len(self.pkt_size), 1)
        return {
            "active": active,
            "cps": max(1, round(active / SESSION_LIFE_S)),
            "kbps": max(1, round(bps / 1000.0)),
            "pps": max(1, round(bps / 8.0 / avg_pkt)),
            "installed": (self.counter_base >> 24) + math.floor(installed_f),
        }

    def dp_cpu(self, t: float, dp: int, core: int) -> int:
        """Return a dataplane core's load in percent at t (core 0 is the control core: 0)."""
        if core == 0:
            return 0
        pct = 2.0 + 90.0 * self.cpu_weight * self.level(t) * (1.0 - 0.08 * dp) + self.core_offsets[core]
        return int(min(max(pct, 1.0), 100.0))

    def dp_cpu_avg(self, t: float) -> float:
        """Return the mean dataplane load over every data core of every DP at t."""
        cores = range(1, self.platform.cores)
        vals = [self.dp_cpu(t, dp, c) for dp in range(self.platform.dataplanes) for c in cores]
        return sum(vals) / max(len(vals), 1)

    def mp_cpu(self, t: float) -> float:
        """Return the management-plane CPU in percent at t."""
        return round(3.0 + 12.0 * self.level(t) + 2.0 * math.sin(t / 97.0 + self.index), 1)

    def truth(self, t1: float, t2: float) -> dict[str, Any]:
        """Return the exact counter increase over [t1, t2] and the true session and CPU values at t2.

        A window that holds reboots adds up what each boot's counters grew by in its part of it.
        """
        interfaces: dict[str, dict[str, int]] = {}
        for epoch, (start, _base, _segments) in enumerate(self.boots):
            end = self.boots[epoch + 1][0] if epoch + 1 < len(self.boots) else math.inf
            a, b = max(t1, start), min(t2, end)
            if b < a or (b == a and interfaces):
                continue
            c1, c2 = self.counters(a, epoch), self.counters(b, epoch)
            for name in c2:
                row = interfaces.setdefault(name, {"in_bytes": 0, "out_bytes": 0})
                row["in_bytes"] += c2[name]["ibytes"] - c1[name]["ibytes"]
                row["out_bytes"] += c2[name]["obytes"] - c1[name]["obytes"]
        if not interfaces:  # the window ends before the first boot: nothing counted
            interfaces = {name: {"in_bytes": 0, "out_bytes": 0} for name in self.counters(t2)}
        return {
            "device": self.name,
            "serial": self.serial,
            "from": t1,
            "to": t2,
            "boot": self.boot,
            "ha_state": self.ha_state if self.ha_enabled else "disabled",
            "interfaces": interfaces,
            "sessions": self.sessions(t2),
            "cpu": {"dataplane_avg": round(self.dp_cpu_avg(t2), 2), "management": self.mp_cpu(t2)},
        }



def now() -> float:
    """Return the wall-clock time (the only clock the simulator reads)."""
    return time.time()
