"""Connect only to addresses the policy allows: host resolution and the guarded, timed HTTPS connections."""

from __future__ import annotations

import socket
import time
from typing import Any

from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

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


class TimedHTTPSConnection(HTTPSConnection):
    """An HTTPS connection that notes when each request was sent and how long its answer took.

    `sent` is the wall-clock time just before the request's last write (headers and body are
    separate writes; the device can act only once the whole request is there, and the TLS
    connection is already up: urllib3 connects before `request`). `round_trip` is the
    monotonic seconds from then until the answer's headers were read. A device reads its
    counters somewhere in between, so `round_trip` bounds how far `sent` can be from that
    moment — on any OS, TLS version or load; a busy machine makes the bound wider, never the
    date later.
    """

    sent: float | None = None
    round_trip: float | None = None
    _sent_mono = 0.0

    def request(self, *args: Any, **kwargs: Any) -> None:
        self.sent = self.round_trip = None
        super().request(*args, **kwargs)

    def send(self, data: Any) -> None:
        # Stamped right before each write, so no Python work of building the request (where a
        # busy interpreter may switch threads) lies between the date and the bytes leaving.
        self.sent, self._sent_mono = time.time(), time.monotonic()
        super().send(data)

    def getresponse(self) -> Any:  # urllib3's BaseHTTPResponse
        response = super().getresponse()
        self.round_trip = time.monotonic() - self._sent_mono
        return response


class GuardedHTTPSConnection(TimedHTTPSConnection):
    """An HTTPS connection that connects only to addresses its pool's policy allows (every new socket)."""

    policy = AddressPolicy()

    def _new_conn(self) -> socket.socket:
        name = self._dns_host
        try:
            addresses = allowed_addresses(name, self.port, self.policy)
        except socket.gaierror as exc:
            raise NewConnectionError(self, f"Failed to resolve the host name: {exc.strerror}") from exc
        last: Exception = NewConnectionError(self, "no address to connect to")
        for address in addresses:
            self._dns_host = address  # connect to the checked literal; TLS still names the host
            try:
                return super()._new_conn()
            except (NewConnectionError, ConnectTimeoutError) as exc:
                last = exc
            finally:
                self._dns_host = name
        raise last


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    """An HTTPS pool whose connections check each resolved address against the policy."""

    ConnectionCls = GuardedHTTPSConnection

    def __init__(self, *args: Any, policy: AddressPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        if isinstance(conn, GuardedHTTPSConnection):
            conn.policy = self.policy
        return conn
