"""Who is on the network behind a firewall: ARP, DHCP leases and User-ID merged per MAC and IP.

Pure merge (`connected_devices`) plus the two lookups it needs: the vendor from the IEEE OUI
registry that `netaddr` ships (never a download at run time), and reverse DNS done by the
clock with a small bounded pool (`ReverseDns`), so a resolver that hangs costs at most its
budget per firewall and never more threads than the pool holds.
"""

from __future__ import annotations

import calendar
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from netaddr import EUI, NotRegisteredError

from panfm.models import ArpEntry, DhcpLease, UserMapping
from panfm.xmlapi import normalize_mac

log = logging.getLogger("panfm.collector")

MAX_HOSTS = 100_000  # rows kept per firewall and cycle: a flooded ARP table must not exhaust memory
LEASE_TIME_FORMAT = "%a %b %d %H:%M:%S %Y"
LIVE_LEASE_STATES = frozenset({"committed", "offered", "bound", "active", "reserved"})


def randomized(mac: str) -> bool:
    """A locally administered address (bit 1 of the first octet): phones and laptops randomise these."""
    return bool(int(mac[:2], 16) & 0x02)


@functools.lru_cache(maxsize=4096)
def _oui_org(prefix: str) -> str | None:
    try:
        return str(EUI(prefix + ":00:00:00").oui.registration().org).strip() or None
    except (NotRegisteredError, ValueError, IndexError, KeyError):
        return None


def mac_vendor(mac: str) -> str | None:
    """The IEEE registrant of the MAC's OUI (None for a randomised or unregistered one)."""
    if randomized(mac) or int(mac[:2], 16) & 0x01:
        return None
    return _oui_org(mac[:8])


def vlan_of(interface: str, tags: Mapping[str, int | None]) -> int | None:
    """The 802.1Q tag of a sub-interface: the inventory's tag, else the `.N` unit of an ethernet/ae name."""
    tag = tags.get(interface)
    if isinstance(tag, int) and 0 < tag < 4095:
        return tag
    base, dot, unit = interface.partition(".")
    if dot and unit.isdigit() and base.startswith(("ethernet", "ae")) and 0 < int(unit) < 4095:
        return int(unit)
    return None


def lease_expiry(lease: DhcpLease, clock_offset_s: float) -> float | None:
    """UTC epoch when the lease runs out; None for a reservation (duration 0) or an unreadable time.

    `lease_time` is when it was granted, on the firewall's clock; `clock_offset_s` is that clock
    minus UTC (the firewall's local time zone and drift).
    """
    if not lease.duration_s or lease.lease_time is None:
        return None
    try:
        granted = datetime.strptime(" ".join(lease.lease_time.split()), LEASE_TIME_FORMAT)
    except ValueError:
        return None
    return calendar.timegm(granted.timetuple()) - clock_offset_s + lease.duration_s


def connected_devices(
    arp: Sequence[ArpEntry],
    leases: Sequence[DhcpLease],
    users: Sequence[UserMapping],
    interfaces: Iterable[Mapping[str, Any]],
    *,
    now: float,
    clock_offset_s: float = 0.0,
    limit: int = MAX_HOSTS,
) -> list[dict[str, Any]]:
    """Merge the tables into one row per (MAC, IP) seen now.

    1. ARP rows with a usable MAC are current hosts (incomplete entries have none).
    2. A live lease (state committed/offered..., not past its expiry) is a current host too,
       and lends its hostname and expiry; an expired lease only lends its hostname to a host
       ARP still shows ("an expired lease is not a current device").
    3. User-ID maps by IP; zone and VLAN come from the interface inventory.
    `static` is true for an address without a live lease (configured on the host, or a
    static ARP entry).
    """
    ifaces = [i for i in interfaces if isinstance(i, Mapping)]
    zones = {str(i.get("name")): i.get("zone") for i in ifaces}
    tags: dict[str, int | None] = {str(i.get("name")): i["tag"] for i in ifaces if isinstance(i.get("tag"), int)}
    by_ip_user = {u.ip: u.user for u in users}
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(mac: str, ip: str, interface: str) -> dict[str, Any] | None:
        key = (mac, ip)
        if key not in rows:
            if len(rows) >= limit:
                return None
            rows[key] = {"mac": mac, "ip": ip, "interface": interface or None, "dhcp_hostname": None,
                         "lease_expires": None, "static": True, "arp_static": False}
        return rows[key]

    for entry in arp:
        mac = normalize_mac(entry.mac)
        if mac is None or mac == "00:00:00:00:00:00" or not entry.ip:
            continue
        r = row(mac, entry.ip.strip(), entry.interface.strip())
        if r is not None and entry.status.strip().lower().startswith("s"):
            r["arp_static"] = True
    for lease in leases:
        mac = normalize_mac(lease.mac)
        if mac is None:
            continue
        expires = lease_expiry(lease, clock_offset_s)
        live = (lease.state is None or lease.state in LIVE_LEASE_STATES) and (expires is None or expires > now)
        key = (mac, lease.ip)
        if live:
            r = row(mac, lease.ip, lease.interface)
            if r is None:
                continue
            r["static"] = False
            r["lease_expires"] = expires
            r["interface"] = r["interface"] or lease.interface or None
            r["dhcp_hostname"] = lease.hostname or r["dhcp_hostname"]
        elif key in rows and lease.hostname and rows[key]["dhcp_hostname"] is None:
            rows[key]["dhcp_hostname"] = lease.hostname
    out = []
    for r in rows.values():
        iface = r["interface"] or ""
        r["static"] = bool(r.pop("arp_static")) or r["static"]
        r["zone"] = zones.get(iface)
        r["vlan"] = vlan_of(iface, tags)
        r["user"] = by_ip_user.get(r["ip"])
        r["randomized_mac"] = randomized(r["mac"])
        r["vendor"] = mac_vendor(r["mac"])
        out.append(r)
    return out


def _gethostbyaddr(ip: str) -> str | None:
    try:
        name = socket.gethostbyaddr(ip)[0]
    except (OSError, UnicodeError, ValueError):
        return None
    return name if name and name != ip else None


class ReverseDns:
    """Reverse DNS by the clock: cached, bounded in threads, time and lookups per call.

    A lookup cannot be cancelled (the resolver call blocks its thread), so a hanging DNS server
    holds at most `workers` threads; `names` never waits past `budget_s` and never queues more
    than `workers * 4` lookups. Names (and "no name") are kept `ttl_s`.
    """

    def __init__(
        self,
        lookup: Callable[[str], str | None] = _gethostbyaddr,
        *,
        workers: int = 4,
        budget_s: float = 2.0,
        ttl_s: float = 86400.0,
        max_cache: int = 200_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="panfm-rdns")
        self._workers = workers
        self.budget_s = budget_s
        self.ttl_s = ttl_s
        self.max_cache = max_cache
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._pending: dict[str, Future[str | None]] = {}

    def names(self, ips: Iterable[str], budget_s: float | None = None) -> dict[str, str]:
        """Return the names known for `ips` now, starting lookups for the rest (waits at most the budget)."""
        now = self._monotonic()
        started: list[tuple[str, Future[str | None]]] = []
        out: dict[str, str] = {}
        with self._lock:
            for ip in dict.fromkeys(ips):
                cached = self._cache.get(ip)
                if cached is not None and now - cached[1] < self.ttl_s:
                    if cached[0]:
                        out[ip] = cached[0]
                    continue
                if ip in self._pending or len(self._pending) >= self._workers * 4:
                    continue
                fut = self._pool.submit(self._lookup, ip)
                self._pending[ip] = fut
                started.append((ip, fut))
        # Outside the lock: a lookup already finished runs its callback here, at once, and `_done`
        # takes the lock (inside it, that deadlocked this thread and then every inventory's names()).
        for ip, fut in started:
            fut.add_done_callback(functools.partial(self._done, ip))
        if started:
            wait([fut for _ip, fut in started], timeout=self.budget_s if budget_s is None else max(0.0, budget_s))
        with self._lock:
            for ip in ips:
                cached = self._cache.get(ip)
                if cached is not None and cached[0]:
                    out[ip] = cached[0]
        return out

    def _done(self, ip: str, fut: Future[str | None]) -> None:
        try:
            name = fut.result()
        except Exception:  # a resolver bug is "no name", not a lost inventory
            log.debug("reverse DNS of %s failed", ip, exc_info=True)
            name = None
        with self._lock:
            self._pending.pop(ip, None)
            if len(self._cache) >= self.max_cache:
                self._cache.clear()  # crude but bounded: names come back within one TTL
            self._cache[ip] = (name[:253] if name else None, self._monotonic())

    def close(self) -> None:
        """Stop taking lookups (threads blocked in the resolver finish on their own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
