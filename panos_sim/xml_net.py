"""Render interface, counter, ARP and GlobalProtect responses as a real firewall does."""

from __future__ import annotations

import time
from html import escape

from panos_sim import hosts
from panos_sim.device import Device
from panos_sim.platforms import Port

OK = '<response status="success"><result>'
END = "</result></response>"
HW_TYPE = {"physical": 0, "aggregate": 1, "loopback-base": 5, "tunnel-base": 6}
ZERO_LOGICAL = ("ierrors", "idrops", "flowstate", "ifwderrors", "noroute", "noarp", "noneigh", "neighpend", "nomac",
                "zonechange", "land", "pod", "teardrop", "ipspoof", "macspoof", "icmp_frag", "l2_encap", "l2_decap")


def _mac(dev: Device, port: Port) -> str:
    """Return a stable MAC for PORT."""
    v = dev.mac_base + port.ifid
    return ":".join(f"{(v >> (8 * i)) & 0xFF:02x}" for i in range(5, -1, -1))


def _ip(dev: Device, port: Port) -> str:
    """Return the interface address or N/A (aggregate members and base interfaces have none)."""
    if port.kind in ("loopback-base", "tunnel-base") or (port.kind == "physical" and port.parent):
        return "N/A"
    return f"10.{(dev.index >> 8) & 0xFF}.{port.ifid % 250}.1/24"


def _fwd(port: Port) -> str:
    """Return the forwarding target as show interface all prints it."""
    if port.kind in ("loopback-base", "tunnel-base") or (port.kind == "physical" and port.parent):
        return "N/A"
    return "vr:default"


def _hw_ports(dev: Device) -> list[Port]:
    """Return the entries of the hw list: ethernet ports, the aggregate, loopback and tunnel."""
    return [p for p in dev.platform.ports if p.kind in HW_TYPE]


def _logical_ports(dev: Device) -> list[Port]:
    """Return the entries of the ifnet list (every interface)."""
    return list(dev.platform.ports)


def _link(port: Port) -> tuple[str, str, str]:
    """Return (speed, duplex, state) of a hw entry."""
    if port.kind in ("physical", "aggregate"):
        return str(port.speed_mbps), "full", "up"
    return "[n/a]", "[n/a]", "up"


def interface_all(dev: Device) -> str:
    """Answer show interface all: logical ifnet entries then physical hw entries, no counters."""
    parts = [OK, "<ifnet>"]
    for p in _logical_ports(dev):
        parts.append(
            f"<entry><name>{p.name}</name><zone>{p.zone}</zone><fwd>{_fwd(p)}</fwd><vsys>1</vsys><dyn-addr/>"
            f"<addr6/><tag>{p.tag}</tag><ip>{_ip(dev, p)}</ip><id>{p.ifid}</id><addr/></entry>"
        )
    parts.append("</ifnet><hw>")
    for p in _hw_ports(dev):
        speed, duplex, state = _link(p)
        mode = "(autoneg)" if p.kind == "physical" else "(unknown)"
        ae = f"<ae_member>{p.parent}</ae_member>" if p.kind == "physical" and p.parent else ""
        parts.append(
            f"<entry><name>{p.name}</name><duplex>{duplex}</duplex><type>{HW_TYPE[p.kind]}</type><state>{state}</state>"
            f"<st>{speed}/{duplex}/{state}</st><mac>{_mac(dev, p)}</mac><mode>{mode}</mode><speed>{speed}</speed>"
            f"<id>{p.ifid}</id>{ae}</entry>"
        )
    parts.append("</hw>" + END)
    return "".join(parts)


def _ifnet_counter(name: str, c: dict[str, int]) -> str:
    """Return one logical counter entry."""
    conns = c["ipackets"] // 20
    return (
        f"<entry><name>{name}</name><ibytes>{c['ibytes']}</ibytes><obytes>{c['obytes']}</obytes>"
        f"<ipackets>{c['ipackets']}</ipackets><opackets>{c['opackets']}</opackets>"
        + "".join(f"<{k}>0</{k}>" for k in ZERO_LOGICAL)
        + f"<tcp_conn>{conns * 7 // 10}</tcp_conn><udp_conn>{conns * 3 // 10}</udp_conn><sctp_conn>0</sctp_conn>"
        "<other_conn>0</other_conn></entry>"
    )


def _hw_counter(name: str, c: dict[str, int]) -> str:
    """Return one hardware counter entry with the MAC-level <port> block (bytes include the FCS)."""
    ip, op = c["ipackets"], c["opackets"]
    return (
        f"<entry><name>{name}</name><ibytes>{c['ibytes']}</ibytes><obytes>{c['obytes']}</obytes>"
        f"<ipackets>{ip}</ipackets><opackets>{op}</opackets><ierrors>0</ierrors><idrops>0</idrops>"
        f"<port><rx-bytes>{c['ibytes'] + 4 * ip}</rx-bytes><rx-unicast>{ip - ip // 50}</rx-unicast>"
        f"<rx-multicast>{ip // 100}</rx-multicast><rx-broadcast>{ip // 50 - ip // 100}</rx-broadcast>"
        f"<tx-bytes>{c['obytes'] + 4 * op}</tx-bytes><tx-unicast>{op - op // 50}</tx-unicast>"
        f"<tx-multicast>{op // 100}</tx-multicast><tx-broadcast>{op // 50 - op // 100}</tx-broadcast></port></entry>"
    )


def counter_interface_all(dev: Device, now: float) -> str:
    """Answer show counter interface all: the doubled result/ifnet/ifnet/entry plus result/hw/entry."""
    counters = dev.counters(now)
    zero = {"ibytes": 0, "obytes": 0, "ipackets": 0, "opackets": 0}
    parts = [OK, "<ifnet><ifnet>"]
    for p in _logical_ports(dev):
        parts.append(_ifnet_counter(p.name, counters.get(p.name, zero)))
    parts.append("</ifnet></ifnet><hw>")
    for p in dev.platform.ports:
        if p.kind in ("physical", "aggregate"):
            parts.append(_hw_counter(p.name, counters[p.name]))
    parts.append("</hw>" + END)
    return "".join(parts)


def interface_one(dev: Device, name: str, now: float) -> str:
    """Answer show interface NAME, or the success-with-<error> form when it does not exist."""
    port = dev.platform.port(name)
    if port is None:
        return OK + f"<dp>dp0</dp><error>Interface '{escape(name)}' not found</error>" + END
    c = dev.counters(now).get(port.name, {"ibytes": 0, "obytes": 0, "ipackets": 0, "opackets": 0})
    hw_counters = _hw_counter(port.name, c) if port.kind in ("physical", "aggregate") else ""
    addr = "" if _ip(dev, port) == "N/A" else f"<member>{_ip(dev, port)}</member>"
    parts = [
        OK,
        f"<dp>dp0</dp><ifnet><name>{port.name}</name><id>{port.ifid}</id><tag>{port.tag}</tag><mode>layer3</mode>"
        f"<fwd_type>vr</fwd_type><vr>default</vr><mtu>1500</mtu><df_ignore>False</df_ignore>"
        f"<addr>{addr}</addr><dyn-addr/><addr6/><ndpmon>False</ndpmon><dad>False</dad>"
        "<ipv6_client>False</ipv6_client><ra>False</ra><dhcpv6_client>False</dhcpv6_client>"
        "<inherited>False</inherited><service/><mgt_subnet>False</mgt_subnet><vsys>vsys1</vsys>"
        f"<zone>{port.zone or 'N/A'}</zone><tcpmss>False</tcpmss><mssadjv4>0</mssadjv4><mssadjv6>0</mssadjv6>"
        "<policing>False</policing><circuitonly>False</circuitonly><tunnel/><sdwan>False</sdwan>"
        "<proxy-protocol>no</proxy-protocol><gre>False</gre>"
        f"<counters><hw>{hw_counters}</hw><ifnet>{_ifnet_counter(port.name, c)}</ifnet></counters></ifnet>",
    ]
    if port.kind in HW_TYPE:
        speed, duplex, state = _link(port)
        parts.append(
            f"<hw><name>{port.name}</name><duplex>{duplex}</duplex><type>{HW_TYPE[port.kind]}</type>"
            f"<state_c>auto</state_c><mac>{_mac(dev, port)}</mac><state>{state}</state><duplex_c>auto</duplex_c>"
            f"<mode>layer3</mode><speed_c>auto</speed_c><speed>{speed}</speed><id>{port.ifid}</id>"
            "<untag>False</untag></hw>"
        )
    parts.append(END)
    return "".join(parts)


def arp_all(dev: Device, now: float) -> str:
    """Answer show arp entry name='all' (padded status, N/A ttl for static entries), then the LAN hosts."""
    entries = []
    ports = [p for p in dev.platform.ports if p.kind in ("physical", "subif") and not p.parent.startswith("ae")]
    ports.append(Port("ae1", "aggregate", ifid=99))
    for i, p in enumerate(ports[:6]):
        static = i % 3 == 2
        port_name = p.parent if p.kind == "subif" else p.name
        mac = f"00:1b:17:{dev.index % 256:02x}:{i:02x}:{(i * 37) % 256:02x}"
        entries.append(
            f"<entry><status>  {'s' if static else 'c'}  </status>"
            f"<ip>10.{(dev.index >> 8) & 0xFF}.{p.ifid % 250}.{10 + i}</ip><mac>{mac}</mac>"
            f"<ttl>{'N/A' if static else 1800 - (i * 113) % 1700}</ttl>"
            f"<interface>{p.name}</interface><port>{port_name}</port></entry>"
        )
    entries.extend(hosts.arp_entries(dev, now))
    return (OK + f"<max>{dev.platform.arp_max}</max><total>{len(entries)}</total><timeout>1800</timeout><dp>dp0</dp>"
            f"<entries>{''.join(entries)}</entries>" + END)


def gp_mappings(dev: Device, now: float) -> list[tuple[str, str]]:
    """The (virtual ip, user) of the GlobalProtect users `gp_current_users` lists."""
    return [(f"10.200.{dev.index % 250}.{10 + i}", f"user{dev.index}-{i}") for i in range(1 + dev.index % 3)]


def gp_current_users(dev: Device, now: float) -> str:
    """Answer show global-protect-gateway current-user."""
    count = 1 + dev.index % 3
    parts = [OK]
    for i in range(count):
        login = int(now - 3600 * (i + 1) - dev.index * 7)
        lt = time.strftime("%b.%d %H:%M:%S", time.gmtime(login))
        parts.append(
            f"<entry><domain/><islocal>yes</islocal><username>user{dev.index}-{i}</username>"
            f"<primary-username>user{dev.index}-{i}</primary-username><computer>LAPTOP-{dev.index:04d}{i}</computer>"
            "<client>Microsoft Windows 10 Pro , 64-bit</client><vpn-type>Device Level VPN</vpn-type>"
            f"<virtual-ip>10.200.{dev.index % 250}.{10 + i}</virtual-ip><virtual-ipv6>::</virtual-ipv6>"
            f"<public-ip>198.51.100.{(dev.index + i) % 250 + 1}</public-ip><public-ipv6>::</public-ipv6>"
            "<tunnel-type>IPSec</tunnel-type><public-connection-ipv6>no</public-connection-ipv6>"
            f"<login-time>{lt}</login-time><login-time-utc>{login}</login-time-utc><lifetime>2592000</lifetime></entry>"
        )
    parts.append(END)
    return "".join(parts)
