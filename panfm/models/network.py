"""What is on the network behind a firewall: DHCP leases and User-ID mappings as parsed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DhcpLease:
    """One lease of `show dhcp server lease interface all`.

    `lease_time` is the firewall's own clock text (when the lease was granted); `duration_s`
    0 marks a reservation that never expires.
    """

    interface: str
    ip: str
    mac: str
    hostname: str | None
    state: str | None  # committed, offered, expired ... as the firewall says it, lowercase
    duration_s: int | None
    lease_time: str | None


@dataclass(frozen=True)
class UserMapping:
    """One entry of `show user ip-user-mapping all` (AD, GP, XMLAPI, syslog ...)."""

    ip: str
    user: str
    source: str | None
    vsys: str | None


@dataclass(frozen=True)
class ReportJob:
    """An ACC dynamic report job (`type=report&action=get`): `ACT` without rows, `FIN` with them."""

    job_id: str
    status: str
    entries: tuple[dict[str, str], ...] = ()
