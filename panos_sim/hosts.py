"""The hosts behind each simulated firewall: ARP, DHCP server leases and User-ID mappings.

Each device has a deterministic population of hosts. Some are always there (servers,
printers), the others come and go in 10-minute slots, so MACs appear and leave over time.
Dynamic hosts hold a DHCP lease (a host that left keeps its lease, shown `expired`, for one
slot), a few carry a locally administered (randomised) MAC, some have a User-ID mapping.
`truth(dev, t)` is what the firewall's tables hold at `t`: the ground truth of `/_sim/truth`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape

from panos_sim.device import Device
from panos_sim.traffic import rng_for

SLOT_S = 600.0  # a coming-and-going host is present or not for a whole slot
LEASE_S = 86400  # lease duration the simulated DHCP server hands out
# Real IEEE OUIs, so a vendor lookup has something to find.
OUIS = ("3c:22:fb", "00:50:56", "b8:27:eb", "f4:f5:d8", "00:17:88", "dc:a6:32", "a4:83:e7", "00:25:90")
NAMES = ("laptop", "printer", "phone", "cam", "nas", "tv", "thermostat", "desktop")


@dataclass(frozen=True)
class Host:
    """One host as the firewall's tables know it."""

    mac: str
    ip: str
    interface: str
    vlan: int | None
    zone: str
    hostname: str | None
    user: str | None
    dhcp: bool
    randomized: bool


def _lan_ports(dev: Device) -> list[tuple[str, int | None, str, int]]:
    """The (interface, vlan tag, zone, third octet) of the device's LAN-side L3 interfaces."""
    out: list[tuple[str, int | None, str, int]] = []
    for p in dev.platform.ports:
        if p.kind == "physical" and p.zone in ("trust", "dmz") and not p.parent:
            out.append((p.name, None, p.zone, p.ifid % 250))
        elif p.kind == "subif" and p.zone:
            out.append((p.name, p.tag or None, p.zone, p.ifid % 250))
    return out


def population(dev: Device) -> int:
    """How many hosts this device may ever see."""
    return 12 + dev.index % 5


def _host(dev: Device, k: int) -> Host:
    rng = rng_for(dev.seed, dev.name, "host", k)
    ports = _lan_ports(dev)
    interface, vlan, zone, octet = ports[k % len(ports)]
    randomized = k % 7 == 3
    if randomized:
        # Locally administered: bit 1 of the first octet set (x2, x6, xa, xe), as phones randomise.
        first = (rng.randrange(256) & 0xFC) | 0x02
        mac = f"{first:02x}:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(5))
    else:
        mac = OUIS[k % len(OUIS)] + ":" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
    dhcp = k % 4 != 0
    hostname = f"{NAMES[k % len(NAMES)]}-{dev.index}-{k}" if dhcp and k % 5 != 4 else None
    user = f"corp\\user{dev.index}-{k}" if k % 3 == 0 else None
    return Host(mac, f"10.{dev.index % 250}.{octet}.{100 + k}", interface, vlan, zone, hostname, user, dhcp,
                randomized)


def present(dev: Device, k: int, t: float) -> bool:
    """Whether host k is on the network at t (the first six never leave)."""
    if k < 6:
        return True
    slot = int(t // SLOT_S)
    return rng_for(dev.seed, dev.name, "presence", k, slot).random() < 0.6


def hosts_at(dev: Device, t: float) -> list[tuple[Host, bool, bool]]:
    """Every host with (present now, present in the previous slot)."""
    return [(_host(dev, k), present(dev, k, t), present(dev, k, t - SLOT_S)) for k in range(population(dev))]


def truth(dev: Device, t: float) -> list[dict[str, object]]:
    """The hosts present at t, as the firewall's tables show them."""
    return [
        {"mac": h.mac, "ip": h.ip, "interface": h.interface, "vlan": h.vlan, "zone": h.zone,
         "hostname": h.hostname, "user": h.user, "dhcp": h.dhcp, "randomized": h.randomized}
        for h, now_in, _before in hosts_at(dev, t) if now_in
    ]


def arp_entries(dev: Device, t: float) -> list[str]:
    """ARP entries of the present hosts (dynamic, status c, ttl counting down)."""
    out = []
    for i, (h, now_in, _before) in enumerate(hosts_at(dev, t)):
        if now_in:
            port = h.interface.split(".", 1)[0]
            out.append(f"<entry><status>  c  </status><ip>{h.ip}</ip><mac>{h.mac}</mac>"
                       f"<ttl>{1800 - (i * 71) % 1700}</ttl><interface>{h.interface}</interface>"
                       f"<port>{port}</port></entry>")
    return out


def _lease_time(t: float) -> str:
    """A lease time as the firewall prints it (its own clock: UTC here)."""
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(t))


def dhcp_leases(dev: Device, t: float) -> str:
    """Answer show dhcp server lease interface all (SYNTHETIC shape: no public capture exists).

    Per serving interface an `<interface name=...>` with one `<entry>` per lease: ip, mac,
    hostname, state (committed, or expired for a host that left in this slot), duration and
    leasetime (when the lease was granted, on the firewall's clock).
    """
    by_iface: dict[str, list[str]] = {}
    slot_start = (t // SLOT_S) * SLOT_S
    for h, now_in, before in hosts_at(dev, t):
        if not h.dhcp or not (now_in or before):
            continue
        state = "committed" if now_in else "expired"
        granted = slot_start - 3600 if now_in else slot_start - LEASE_S
        by_iface.setdefault(h.interface, []).append(
            f"<entry name=\"{h.ip}\"><ip>{h.ip}</ip><mac>{h.mac}</mac>"
            f"<hostname>{escape(h.hostname or '')}</hostname><state>{state}</state>"
            f"<duration>{LEASE_S}</duration><leasetime>{_lease_time(granted)}</leasetime></entry>"
        )
    parts = ['<response status="success"><result>']
    for iface, entries in sorted(by_iface.items()):
        parts.append(f'<interface name="{iface}">{"".join(entries)}</interface>')
    parts.append("</result></response>")
    return "".join(parts)


def user_mappings(dev: Device, t: float, gp: list[tuple[str, str]]) -> str:
    """Answer show user ip-user-mapping all: AD mappings of present hosts plus GlobalProtect ones."""
    parts = ['<response status="success"><result>']
    count = 0
    for h, now_in, _before in hosts_at(dev, t):
        if now_in and h.user:
            parts.append(f"<entry><ip>{h.ip}</ip><vsys>vsys1</vsys><type>AD</type><user>{escape(h.user)}</user>"
                         "<idle_timeout>2700</idle_timeout><timeout>2700</timeout></entry>")
            count += 1
    for ip, user in gp:
        parts.append(f"<entry><ip>{ip}</ip><vsys>vsys1</vsys><type>GP</type><user>{escape(user)}</user>"
                     "<idle_timeout>9576</idle_timeout><timeout>9576</timeout></entry>")
        count += 1
    parts.append(f"<count>{count}</count></result></response>")
    return "".join(parts)
