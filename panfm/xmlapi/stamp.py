"""The moment a firewall's answer reached this machine, as the kernel saw it.

A rate is Δbytes / Δt, so the time a counter answer is stamped with matters as much as the
counter: over a 10 s interval, 100 ms of error in Δt is 1 % of error in the rate. Stamping in
Python, after the worker thread has woken up and got the interpreter lock, adds whatever the
machine was busy with meanwhile (on two busy cores, 50-150 ms). The kernel stamps every
packet when it arrives; with `SO_TIMESTAMPNS` on the socket, peeking at the first byte of the
answer (before the TLS layer reads it) returns that stamp, which no amount of load delays.

`StampingHTTPSConnection.answer_time` holds the kernel time of the first packet of the last
answer, or None when no trustworthy stamp exists; the caller then falls back to its own clock:

- not Linux (or an architecture with other option numbers), or the kernel refuses the option;
- the first answer on a TLS 1.3 connection: session tickets the server sends after the
  handshake may arrive first, and their stamp would be the ticket's, not the answer's;
- decrypted data already waiting inside the TLS layer (nothing left to peek at);
- a stamp older than the request (data that was waiting before it was sent is not its answer).
"""

from __future__ import annotations

import platform
import re
import socket
import ssl
import struct
import sys
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool

# Linux asm-generic values (x86, Arm, RISC-V, POWER, s390; not SPARC or PA-RISC); Python's
# socket module does not export them.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")  # struct timespec as SO_TIMESTAMPNS(_OLD) delivers it
_GENERIC_MACHINES = re.compile(r"x86_64|amd64|i[3-6]86|aarch64|arm.*|riscv64|ppc64(le)?|s390x", re.IGNORECASE)


def _supported() -> bool:
    """Tell whether this kernel takes SO_TIMESTAMPNS (a refused option would fail every connection)."""
    if sys.platform != "linux" or not _GENERIC_MACHINES.fullmatch(platform.machine()):
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


ENABLED = _supported()

SOCKET_OPTIONS: list[tuple[int, int, int | bytes]] = list(HTTPConnection.default_socket_options)
if ENABLED:
    SOCKET_OPTIONS.append((socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1))


def first_byte_time(sock: socket.socket, timeout: float | None) -> float | None:
    """Wait up to TIMEOUT for the answer's first byte without consuming it; return its kernel time.

    Raises TimeoutError when nothing arrives in time (the caller's read would have timed out
    the same way). Returns None when the peer closed the connection or gave no stamp.
    """
    peek = socket.socket(fileno=sock.fileno())  # same descriptor: detached below, never closed
    try:
        peek.settimeout(timeout)
        data, ancillary, _flags, _addr = peek.recvmsg(1, socket.CMSG_SPACE(_TIMESPEC.size), socket.MSG_PEEK)
    finally:
        peek.detach()
    if not data:
        return None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            return float(sec + nsec / 1e9)
    return None


class StampingHTTPSConnection(HTTPSConnection):
    """An HTTPS connection that records the kernel arrival time of each answer's first byte."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer_time: float | None = None
        self._answers = 0
        self._stamps = ENABLED
        self._sent = 0.0

    def connect(self) -> None:
        self._answers = 0
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._sent = time.time()
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:  # urllib3's BaseHTTPResponse
        self.answer_time = None
        sock = self.sock
        if self._stamps and isinstance(sock, ssl.SSLSocket) and not sock.pending():
            tickets_possible = self._answers == 0 and sock.version() == "TLSv1.3"
            try:
                stamp = first_byte_time(sock, self.timeout if isinstance(self.timeout, int | float) else None)
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise  # urllib3 turns it into its read timeout, as for the read itself
                self._stamps = False  # e.g. no recvmsg on this socket: stamp in Python from now on
            else:
                if not tickets_possible and stamp is not None and stamp >= self._sent:
                    self.answer_time = stamp
        response = super().getresponse()
        self._answers += 1
        return response


class StampingHTTPSConnectionPool(HTTPSConnectionPool):
    """An HTTPS pool whose connections are `StampingHTTPSConnection`s."""

    ConnectionCls = StampingHTTPSConnection
