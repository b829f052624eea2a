"""Device configuration: a firewall's record, its TLS trust and the address policy (config, config_store)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

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
    uplinks: tuple[str, ...] = ()  # interfaces the admin marks as uplinks (WAN): In/Out are theirs


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
