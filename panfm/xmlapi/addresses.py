"""Connect only to addresses the policy allows: host resolution and the guarded TCP connect."""

from __future__ import annotations

import socket

from panfm.models import AddressPolicy
from panfm.xmlapi.errors import AddressNotAllowed


def allowed_addresses(host: str, port: int, policy: AddressPolicy) -> list[str]:
    """Resolve `host` and return the addresses the policy allows, in resolver order.

    Raises AddressNotAllowed (naming the first refused address) when none is left, and
    socket.gaierror when the name does not resolve. Callers connect to the returned literals,
    so a second lookup (DNS rebinding) cannot swap in a refused address.
    """
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    allowed: list[str] = []
    refused: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        why = policy.refusal(address)
        if why is None:
            allowed.append(address)
        else:
            refused.append(why)
    if not allowed:
        raise AddressNotAllowed(f"{host}:{port}: {refused[0] if refused else 'no address'}")
    return list(dict.fromkeys(allowed))


def connect_allowed(host: str, port: int, timeout: float, policy: AddressPolicy) -> socket.socket:
    """Open a TCP connection to the first allowed address of `host` that accepts it."""
    last = OSError("no address to connect to")
    for address in allowed_addresses(host, port, policy):
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last = exc
    raise last
