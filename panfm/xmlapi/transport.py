"""The XML API transport under `panos_api.PanosClient`: connections, TLS modes, deadlines and keys.

Every failure is one of the error tree's classes (`panfm/xmlapi/errors.py`, with `PanosError`
and its API subclasses from `panos_xml`). Connections reach only the addresses the policy
allows (`addresses.py`); the HTTP/1.1 exchange and each TLS mode's context are `http1.py`'s.

No message raised here contains a key, a password or a URL with parameters: socket and TLS
errors are re-raised as these classes `from None`, with only their reason.
The key travels only in the `X-PAN-KEY` header; every call is a form POST to `/api/`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from typing import Self
from urllib.parse import urlencode

import panfm.xmlapi.http1 as http1
import panfm.xmlapi.parsers as panos_xml
from panfm.models import AddressPolicy, DeviceConfig
from panfm.xmlapi.addresses import connect_allowed
from panfm.xmlapi.errors import (
    AddressNotAllowed,
    ConnectError,
    FingerprintMismatch,
    PanosTimeout,
    ServerError,
    TlsError,
)
from panfm.xmlapi.parsers import AuthError, BadResponse, PanosError

log = logging.getLogger("panfm.xmlapi")  # one logger name for the whole client

MAX_BODY_BYTES = panos_xml.MAX_BODY_BYTES
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_VALUE_RE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no line break can reach the request
_FIXED_HEADERS = b"\r\nUser-Agent: PANfm\r\nAccept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\n"


@functools.lru_cache(maxsize=256)
def _op_body(cmd: str) -> bytes:
    """The encoded form of an op command: the fast poll sends the same five every cycle.

    `urlencode` quotes character by character in Python; this is a pure function of the
    command (no key, no password: those travel in a header or in keygen's form, never here).
    """
    return urlencode({"type": "op", "cmd": cmd}).encode("utf-8")


def _where(device: DeviceConfig) -> str:
    return f"{device.name} ({device.host}:{device.port})"


def _reason(exc: OSError) -> str:
    """Describe a transport failure without any URL, header or parameter."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or "certificate verify failed"
    return exc.strerror or type(exc).__name__


def fetch_fingerprint(host: str, port: int, timeout: float = 5.0, policy: AddressPolicy | None = None) -> str:
    """Return the SHA-256 (lowercase hex) of the leaf certificate the server presents."""
    # Trust on first use: the caller shows this to an admin, who pins it. No data is sent.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    where = f"{host}:{port}"
    try:
        with (
            connect_allowed(host, port, timeout, policy or AddressPolicy()) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except TimeoutError:
        raise PanosTimeout(f"{where}: no TLS handshake within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise TlsError(f"{where}: TLS handshake failed: {exc.reason or type(exc).__name__}") from None
    except OSError as exc:
        raise ConnectError(f"{where}: {exc.strerror or type(exc).__name__}") from None
    if not der:
        raise TlsError(f"{where}: the server presented no certificate")
    return hashlib.sha256(der).hexdigest()


class PanosTransport:
    """Send keyed form POSTs to one firewall's /api/ over keep-alive connections (`http1.py`).

    `timeout` is the total time one call may take (keygen and one retry included) and the
    longest wait for any single read; `connect_timeout` bounds the TCP+TLS connect. Idle
    connections wait in a small pool (a client is used by one thread at a time in the collector,
    so it holds one; a second thread gets its own). The last TLS session is kept after `close()`
    so the next connection resumes it instead of a full handshake (where the Python running it
    reads a session without leaking it: `resume_sessions`).
    """

    def __init__(
        self,
        device: DeviceConfig,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
        on_key: Callable[[str], None] | None = None,
        policy: AddressPolicy | None = None,
    ) -> None:
        if not device.api_key and not (device.username and device.password):
            raise AuthError(None, f"device {device.name!r} has no API key and no username and password")
        self.device = device
        # Checked at every new connection, not once: a DNS name may later resolve elsewhere.
        self.policy = policy or AddressPolicy()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.on_key = on_key
        self.last_sent_time: float = 0.0  # when the last answered request was sent (epoch s)
        self.last_round_trip: float = 0.0  # seconds from that send until its answer's headers arrived
        self.connections_made = 0  # TCP+TLS connections opened (keep-alive keeps this at 1)
        self.sessions_resumed = 0  # of those, TLS handshakes that resumed the previous session
        self.insecure = device.tls.mode == "insecure"
        self._where = _where(device)
        self._key: str | None = device.api_key or None
        self._key_lock = threading.Lock()
        self._closed = threading.Event()
        self._idle: list[http1.Connection] = []
        self._idle_lock = threading.Lock()
        self._generation = 0  # bumped by close(): a connection made before it is not kept afterwards
        self._tls_session: ssl.SSLSession | None = None
        # Keep the last TLS session and resume it on the next connection; off where reading the
        # session leaks native memory (http1.SESSION_GETTER_LEAKS: Python before 3.12.8).
        self.resume_sessions = not http1.SESSION_GETTER_LEAKS
        self._host_header = self._request_host()
        self._fingerprint: str | None = None
        self._ctx = self._configure_tls()

    def _request_host(self) -> bytes:
        host = self.device.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        value = host if self.device.port == 443 else f"{host}:{self.device.port}"
        if not _HEADER_VALUE_RE.fullmatch(value):
            raise ConnectError(f"{self._where}: the host name is not usable in an HTTP request")
        return value.encode("ascii")

    def _configure_tls(self) -> ssl.SSLContext:
        tls = self.device.tls
        if tls.mode == "pin":
            fp = (tls.fingerprint_sha256 or "").replace(":", "").lower()
            if not _FINGERPRINT_RE.fullmatch(fp):
                raise TlsError(f"{self._where}: TLS mode 'pin' needs a 64-digit hex SHA-256 fingerprint")
            self._fingerprint = fp
        if self.insecure:
            log.warning("TLS certificate checks are OFF for %s (mode 'insecure' chosen explicitly)", self._where)
        try:
            # Chain and host name only in "verify" mode; "pin" checks the leaf itself, "insecure" nothing.
            return http1.tls_context(tls.mode, tls.ca_pem if tls.mode == "verify" else None)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsError(f"{self._where}: the CA bundle is not usable ({type(exc).__name__})") from None

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the idle connections; the next call connects again (resuming the TLS session)."""
        self._closed.set()
        with self._idle_lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        for conn in idle:
            self._keep_session(conn)
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------

    def _keep_session(self, conn: http1.Connection) -> None:
        if not self.resume_sessions:
            return
        try:
            session = conn.session
        except (OSError, ValueError):
            return
        if session is not None:
            self._tls_session = session

    def _connection(self, remaining: float) -> http1.Connection:
        """An idle keep-alive connection the device has not closed, else a new one."""
        while True:
            with self._idle_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if not conn.dropped():
                return conn
            conn.close()
        generation = self._generation
        conn = http1.Connection(
            self.device.host, self.device.port, self._ctx, policy=self.policy, fingerprint=self._fingerprint,
            connect_timeout=min(self.connect_timeout, remaining), session=self._tls_session,
        )
        conn.generation = generation
        self.connections_made += 1
        self.sessions_resumed += conn.session_reused
        return conn

    def _release(self, conn: http1.Connection, keep_alive: bool) -> None:
        """Keep a connection for the next call, unless the answer ended it or close() came meanwhile."""
        if keep_alive:
            with self._idle_lock:
                if conn.generation == self._generation:
                    self._idle.append(conn)
                    return
        self._keep_session(conn)
        conn.close()

    def _post(self, form: dict[str, str], key: str | None, end: float) -> tuple[int, bytes]:
        """POST one form to /api/ and return (HTTP status, body) read entirely before `end`."""
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise PanosTimeout(f"{self._where}: call deadline passed before the request was sent")
        if len(form) == 2 and form.get("type") == "op" and "cmd" in form:
            body = _op_body(form["cmd"])
        else:
            body = urlencode(form).encode("utf-8")
        head = [b"POST /api/ HTTP/1.1\r\nHost: ", self._host_header, _FIXED_HEADERS]
        if key:
            if not _HEADER_VALUE_RE.fullmatch(key):
                raise AuthError(None, "the API key has characters an HTTP header cannot carry")
            head += (b"X-PAN-KEY: ", key.encode("ascii"), b"\r\n")
        head += (b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n\r\n")
        try:
            conn = self._connection(remaining)
        except AddressNotAllowed:
            raise
        except http1.PinMismatch as exc:
            raise FingerprintMismatch(self._where, self._fingerprint or "", exc.actual) from None
        except ssl.SSLError as exc:
            raise self._tls_error(exc) from None
        except TimeoutError:
            raise PanosTimeout(f"{self._where}: no connection within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise ConnectError(f"{self._where}: {_reason(exc)}") from None
        try:
            answer = conn.exchange(b"".join(head), body, self.timeout, end, MAX_BODY_BYTES)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise PanosTimeout(f"{self._where}: no complete answer within the call's deadline") from None
            if isinstance(exc, http1.HttpError):
                raise BadResponse(f"{self._where}: {exc}") from None
            if isinstance(exc, OSError):  # reset, broken pipe, TLS failure mid-answer
                raise ConnectError(f"{self._where}: {_reason(exc)}") from None
            raise
        # The device read its counters between sending and answering: date the answer at the
        # send (a late worker thread cannot move it) and keep the round trip as its error bound.
        self.last_sent_time, self.last_round_trip = conn.sent, conn.round_trip
        self._release(conn, answer.keep_alive)
        if log.isEnabledFor(logging.DEBUG):  # the form's type only: a keygen form holds the password
            log.debug("%s: POST /api/ type=%s: HTTP %d, %d bytes in %.1f ms", self._where, form.get("type"),
                      answer.status, len(answer.body), 1000 * conn.round_trip)
        return answer.status, answer.body

    def _tls_error(self, exc: ssl.SSLError) -> TlsError:
        if isinstance(exc, ssl.SSLCertVerificationError):
            why = exc.verify_message or "certificate verify failed"
            return TlsError(f"{self._where}: TLS verification failed: {why}")
        return TlsError(f"{self._where}: TLS handshake failed: {exc.reason or type(exc).__name__}")

    def _check(self, status: int, body: bytes) -> bytes:
        """Map the HTTP status and envelope to the documented exceptions; return a success body."""
        if status == 403:
            try:
                panos_xml.parse_envelope(body)
            except AuthError:
                raise
            except PanosError:
                pass
            raise AuthError(403, "invalid credentials or API key")
        if status >= 500:
            raise ServerError(self._where, status)
        if status not in (200, 400):
            raise BadResponse(f"{self._where}: unexpected HTTP status {status}")
        panos_xml.parse_envelope(body)  # raises ApiError/BadResponse for error answers
        return body

    # -- keys -----------------------------------------------------------------------

    @property
    def _can_keygen(self) -> bool:
        return bool(self.device.username and self.device.password)

    def _generate_key(self, end: float) -> str:
        if not self._can_keygen:
            raise AuthError(None, "no username and password to generate an API key")
        form = {"type": "keygen", "user": self.device.username or "", "password": self.device.password or ""}
        key = panos_xml.parse_keygen(self._check(*self._post(form, None, end)))
        if self.on_key is not None:
            try:
                self.on_key(key)
            except Exception:
                log.exception("storing the new API key of %s failed", self._where)
        return key

    def keygen(self) -> str:
        """Generate the device's API key from the username and password, and cache it."""
        end = time.monotonic() + self.timeout
        with self._key_lock:
            self._key = self._generate_key(end)
            return self._key

    def _current_key(self, end: float) -> str:
        with self._key_lock:
            if self._key is None:
                self._key = self._generate_key(end)
            return self._key

    def _call(self, form: dict[str, str], end: float) -> bytes:
        """Send one keyed request; after a 403, generate a new key once and retry."""
        key = self._current_key(end)
        try:
            return self._check(*self._post(form, key, end))
        except AuthError:
            if not self._can_keygen:
                raise
        with self._key_lock:
            if self._key in (key, None):  # another thread may have renewed it already
                log.info("API key of %s was refused; generating a new one", self._where)
                self._key = self._generate_key(end)
            key = self._key
        return self._check(*self._post(form, key, end))

    # -- commands -------------------------------------------------------------------
