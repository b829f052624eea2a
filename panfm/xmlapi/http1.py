"""A lean HTTP/1.1 client for the XML API: one guarded, verified or pinned TLS socket per connection.

Every call of the collector is the same small exchange: one form POST to `/api/`, one answer
of a few KB. requests, urllib3 and http.client spent more CPU on that exchange than the XML
parse of the answer (request preparation, header objects, `email.feedparser` for the answer's
headers, a socket timeout set per read); this module does only what that exchange needs:

- connect only to addresses the policy allows (`addresses.connect_allowed`), then the TLS
  handshake of the device's mode: chain and host name checked ("verify"), the leaf's SHA-256
  compared in constant time before a byte is sent ("pin"), or nothing ("insecure", chosen
  explicitly);
- send the request line, headers and body in one write, stamped just before it;
- read the status line and headers by hand (only Content-Length, Transfer-Encoding and
  Connection matter), then the body by length, by chunks, or to the close, never past the
  call's deadline or `MAX_BODY_BYTES`.

Failures are raised as the built-in exceptions (`OSError`, `TimeoutError`, `ssl.SSLError`) or
`HttpError`; the transport maps them to the error tree without a URL, header or key.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import select
import socket
import ssl
import sys
import threading
import time

from panfm.models import AddressPolicy
from panfm.xmlapi.addresses import connect_allowed

MAX_HEAD_BYTES = 64 * 1024  # status line and headers; a firewall's are a few hundred bytes
_RECV = 64 * 1024
_SLACK = 0.02  # seconds a socket timeout may differ from the exact one before it is set again
# CPython's `SSLSocket.session` getter leaks a copy of the session (~6 KB of native memory) on
# every read before 3.12.8 and 3.13.1 (gh-116810; 3.11 never got the fix). Reading it once per
# new connection, to resume the session on the next one, was most of the clock's memory growth: the
# inventory opens a connection per firewall every 5 minutes, 12,000 an hour at 1,000 firewalls,
# ~74 MB an hour (docs/benchmarks.md). On those versions sessions are not resumed (a full
# handshake every 5 minutes per firewall instead).
SESSION_GETTER_LEAKS = sys.version_info[:3] < (3, 12, 8) or (3, 13, 0) <= sys.version_info[:3] < (3, 13, 1)


class HttpError(Exception):
    """The answer broke HTTP/1.1 (bad status line, oversized headers or body, cut short)."""


class PinMismatch(Exception):
    """The leaf certificate's SHA-256 (`actual`) is not the pinned one."""

    def __init__(self, actual: str) -> None:
        super().__init__(actual)
        self.actual = actual


# Contexts shared by every client of the same mode and CA bundle: a context holds no per-device
# state (a pinned leaf is checked after the handshake, the TLS session is kept per client), and
# one per client cost ~13 KB ("pin") to ~1 MB ("verify" with the system store) per firewall.
_CONTEXTS: dict[tuple[object, ...], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()
_MAX_SHARED_CONTEXTS = 256  # distinct CA bundles kept; past that a context is made per client


def tls_context(mode: str, ca_pem: str | None) -> ssl.SSLContext:
    """The TLS context of a device's mode, shared by every client with the same mode and CA bundle.

    "pin" and "insecure" load no CA store at all (about 1 MB per context otherwise); "pin"
    checks the leaf itself after the handshake. "verify" checks the chain and the host name,
    against the device's own CA bundle when it has one, else the operating system's store.
    A context is never changed once made, so sharing it across threads is safe.
    """
    key: tuple[object, ...] = (mode if mode == "verify" else "no-ca", ca_pem if mode == "verify" else None)
    if mode == "verify" and not ca_pem:
        key += _system_store_stamp()  # an updated system store (update-ca-certificates) makes a new context
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
    if ctx is not None:
        return ctx
    ctx = _new_context(mode, ca_pem)
    with _CONTEXTS_LOCK:
        if mode == "verify" and not ca_pem:  # the system store changed: contexts of its old contents go
            for old in [k for k in _CONTEXTS if k[:2] == ("verify", None) and k != key]:
                del _CONTEXTS[old]
        if len(_CONTEXTS) < _MAX_SHARED_CONTEXTS:
            ctx = _CONTEXTS.setdefault(key, ctx)
    return ctx


def _system_store_stamp() -> tuple[object, ...]:
    """Where OpenSSL finds the system CAs now (SSL_CERT_FILE / SSL_CERT_DIR honoured) and when they changed."""
    paths = ssl.get_default_verify_paths()
    stamp: list[object] = []
    for path in (paths.cafile, paths.capath):
        try:
            stamp += [path, os.stat(path).st_mtime_ns] if path else [None, None]
        except OSError:
            stamp += [path, None]
    return tuple(stamp)


def _new_context(mode: str, ca_pem: str | None) -> ssl.SSLContext:
    if mode == "verify":
        if ca_pem:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
            ctx.load_verify_locations(cadata=ca_pem)
        else:
            ctx = ssl.create_default_context()
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Answer:
    """One HTTP answer: status, body, and whether the connection may carry another request."""

    __slots__ = ("body", "keep_alive", "status")

    def __init__(self, status: int, body: bytes, keep_alive: bool) -> None:
        self.status = status
        self.body = body
        self.keep_alive = keep_alive


class Connection:
    """One TLS connection to one device, used by one thread at a time (the transport hands it out).

    `sent` (wall clock, just before the request's one write) and `round_trip` (monotonic
    seconds from then until the answer's headers were read) date each answer.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ctx: ssl.SSLContext,
        *,
        policy: AddressPolicy,
        fingerprint: str | None,
        connect_timeout: float,
        session: ssl.SSLSession | None = None,
    ) -> None:
        self.sent = 0.0
        self.round_trip = 0.0
        self.generation = 0  # the owner's mark (the transport's close() count when it was made)
        self._buf = bytearray()
        self._timeout = connect_timeout  # create_connection leaves it on the socket, for the handshake too
        raw = connect_allowed(host, port, connect_timeout, policy)
        try:
            sock = ctx.wrap_socket(raw, server_hostname=host.strip("[]"), session=session)
        except BaseException:
            raw.close()
            raise
        self.sock: ssl.SSLSocket = sock
        if fingerprint is not None:
            der = sock.getpeercert(binary_form=True) or b""
            actual = hashlib.sha256(der).hexdigest()
            if not hmac.compare_digest(actual, fingerprint):
                self.close()
                raise PinMismatch(actual)
        self.session_reused = bool(sock.session_reused)

    @property
    def session(self) -> ssl.SSLSession | None:
        """The TLS session, for resuming it on the next connection to the same device."""
        return self.sock.session

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def dropped(self) -> bool:
        """Tell whether an idle connection was closed by the device (or has stray bytes): do not reuse."""
        if self._buf or self.sock.pending():
            return True
        try:
            poller = select.poll()  # not select.select: descriptors of a large fleet pass 1024
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    # -- one exchange -------------------------------------------------------------------

    def exchange(self, head: bytes, body: bytes, timeout: float, end: float, max_body: int) -> Answer:
        """Send one request (`head` ends with the blank line) and read its whole answer before `end`."""
        self._wait(timeout, end)
        self.sent, sent_mono = time.time(), time.monotonic()
        self.sock.sendall(head + body)
        status, length, chunked, keep_alive = self._read_head(timeout, end)
        self.round_trip = time.monotonic() - sent_mono
        if status < 200 or status in (204, 304):
            data = b""
        elif chunked:
            data = self._read_chunked(timeout, end, max_body)
        elif length is not None:
            if length > max_body:
                raise HttpError(f"response body exceeds {max_body} bytes")
            data = self._read_exactly(length, timeout, end)
        else:
            data = self._read_to_close(timeout, end, max_body)
            keep_alive = False
        return Answer(status, data, keep_alive)

    def _wait(self, timeout: float, end: float) -> None:
        """Let the next socket operation wait at most `timeout`, and never past `end`.

        Changed only when it is off by more than `_SLACK` (each change is a system call): a
        call's reads keep the timeout the previous call left, lowered as its deadline nears.
        """
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        wanted = timeout if timeout < remaining else remaining
        if self._timeout > remaining + _SLACK or self._timeout < wanted - _SLACK:
            self.sock.settimeout(wanted)
            self._timeout = wanted

    def _fill(self, timeout: float, end: float, started: bool = True) -> None:
        """Read more bytes into the buffer; fail at the end of the stream.

        Closed before a byte of the answer (`started` false) is a lost connection (OSError),
        after it an answer cut short (HttpError).
        """
        self._wait(timeout, end)
        data = self.sock.recv(_RECV)
        if not data:
            if not started:
                raise ConnectionResetError(errno.ECONNRESET, "connection closed by the device before an answer")
            raise HttpError("connection closed before the answer was complete")
        self._buf += data

    def _read_head(self, timeout: float, end: float) -> tuple[int, int | None, bool, bool]:
        while True:
            cut = self._buf.find(b"\r\n\r\n")
            while cut < 0:
                if len(self._buf) > MAX_HEAD_BYTES:
                    raise HttpError("response headers too large")
                self._fill(timeout, end, started=bool(self._buf))
                cut = self._buf.find(b"\r\n\r\n")
            if cut > MAX_HEAD_BYTES:
                raise HttpError("response headers too large")
            head = bytes(self._buf[:cut])
            del self._buf[:cut + 4]
            lines = head.split(b"\r\n")
            parts = lines[0].split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
                raise HttpError("bad status line")
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue): the real one follows
            length: int | None = None
            chunked = False
            keep_alive = parts[0] != b"HTTP/1.0"
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    continue
                name = name.strip().lower()
                if name == b"content-length":
                    value = value.strip()
                    if not value.isdigit() or (length is not None and int(value) != length):
                        raise HttpError("bad Content-Length")
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = value.strip().lower().endswith(b"chunked")
                elif name == b"connection":
                    tokens = {t.strip() for t in value.lower().split(b",")}
                    if b"close" in tokens:
                        keep_alive = False
                    elif b"keep-alive" in tokens:
                        keep_alive = True
            return status, (None if chunked else length), chunked, keep_alive

    def _read_exactly(self, n: int, timeout: float, end: float) -> bytes:
        while len(self._buf) < n:
            self._fill(timeout, end)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_line(self, timeout: float, end: float) -> bytes:
        cut = self._buf.find(b"\r\n")
        while cut < 0:
            if len(self._buf) > 4096:
                raise HttpError("chunk header too long")
            self._fill(timeout, end)
            cut = self._buf.find(b"\r\n")
        line = bytes(self._buf[:cut])
        del self._buf[:cut + 2]
        return line

    def _read_chunked(self, timeout: float, end: float, max_body: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self._read_line(timeout, end).split(b";", 1)[0].strip()
            try:
                n = int(line, 16)
            except ValueError:
                raise HttpError("bad chunk size") from None
            if n < 0:
                raise HttpError("bad chunk size")
            if n == 0:
                while self._read_line(timeout, end):  # trailers, up to the blank line
                    pass
                return b"".join(chunks)
            size += n
            if size > max_body:
                raise HttpError(f"response body exceeds {max_body} bytes")
            chunks.append(self._read_exactly(n, timeout, end))
            if self._read_exactly(2, timeout, end) != b"\r\n":
                raise HttpError("bad chunk end")

    def _read_to_close(self, timeout: float, end: float, max_body: int) -> bytes:
        while True:
            if len(self._buf) > max_body:
                raise HttpError(f"response body exceeds {max_body} bytes")
            self._wait(timeout, end)
            data = self.sock.recv(_RECV)
            if not data:
                body = bytes(self._buf)
                self._buf.clear()
                return body
            self._buf += data


def is_timeout(exc: BaseException) -> bool:
    """Tell a timed-out socket operation (plain or inside TLS) from other failures."""
    return isinstance(exc, TimeoutError | socket.timeout)
