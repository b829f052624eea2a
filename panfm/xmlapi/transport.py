"""The XML API transport under `panos_api.PanosClient`: session, TLS, deadlines, keys and the error tree.

Every failure is one of these (`PanosError` and its API subclasses come from `panos_xml`):

    PanosError
    ├── ConnectError          refused, unreachable, connection lost before an answer
    │   └── AddressNotAllowed    the host resolves only to refused addresses; nothing was sent
    ├── PanosTimeout          connect timeout, read timeout, or the call's total deadline passed
    ├── TlsError              certificate verification (chain or host name) failed
    │   └── FingerprintMismatch  pinned SHA-256 differs (.expected, .actual); no request was sent
    ├── ServerError           HTTP 5xx (.status); any other unexpected status is a BadResponse
    ├── BadResponse           truncated, oversized, not XML, or missing elements (panos_xml)
    └── ApiError(code, msg)   the device said status="error" (panos_xml), with its subclasses:
        ├── AuthError         HTTP 403 / invalid key or credentials (after one transparent re-keygen)
        ├── ObjectNotPresent, InterfaceNotFound, NoMatches

No message raised here contains a key, a password or a URL with parameters: requests'
exceptions embed URLs and headers, so they are re-raised as these classes `from None`.
The key travels only in the `X-PAN-KEY` header; every call is a form POST to `/api/`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, InsecureRequestWarning, NewConnectionError, ReadTimeoutError

import panfm.xmlapi.parsers as panos_xml
from panfm.models import AddressPolicy, DeviceConfig
from panfm.xmlapi.parsers import AuthError, BadResponse, PanosError

log = logging.getLogger("panfm.xmlapi")  # one logger name for the whole client

MAX_BODY_BYTES = panos_xml.MAX_BODY_BYTES
_CHUNK = 64 * 1024
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")
_MISMATCH_RE = re.compile(r'Expected "([0-9a-f:]+)", got "([0-9a-f]+)"')


class ConnectError(PanosError):
    """The device refused or dropped the connection, or could not be reached."""


class PanosTimeout(PanosError):
    """No connection, no answer, or no complete answer within the allowed time."""


class TlsError(PanosError):
    """The device's certificate failed verification."""


class FingerprintMismatch(TlsError):
    """The leaf certificate's SHA-256 differs from the pinned one (fingerprints are not secrets)."""

    def __init__(self, where: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{where}: certificate fingerprint {actual} does not match the pinned {expected}")


class ServerError(PanosError):
    """The device's web server answered HTTP 5xx."""

    def __init__(self, where: str, status: int) -> None:
        self.status = status
        super().__init__(f"{where}: HTTP {status} from the device's web server")


class _TimedHTTPSConnection(HTTPSConnection):
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


class AddressNotAllowed(ConnectError):
    """Every address the host resolves to is refused by the address policy; nothing was sent."""


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


class _GuardedHTTPSConnection(_TimedHTTPSConnection):
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


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    """An HTTPS pool whose connections check each resolved address against the policy."""

    ConnectionCls = _GuardedHTTPSConnection

    def __init__(self, *args: Any, policy: AddressPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        if isinstance(conn, _GuardedHTTPSConnection):
            conn.policy = self.policy
        return conn


class _TimedAdapter(HTTPAdapter):
    """An adapter without retries whose HTTPS connections check their address and time each request."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy  # set before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": functools.partial(_GuardedHTTPSConnectionPool, policy=self._policy),
        }


class _PinningAdapter(_TimedAdapter):
    """Check the leaf certificate's SHA-256 after the handshake, before a request byte is sent."""

    def __init__(self, fingerprint: str, policy: AddressPolicy) -> None:
        self._fingerprint = fingerprint  # set before super().__init__, which builds the pool manager
        super().__init__(policy)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        # urllib3 compares with hmac.compare_digest (constant time) inside connect(). The chain is
        # not checked (the pin is the trust), so the context loads no CA store: without this one
        # context urllib3 builds a new one per connection and loads the system CAs into it (about
        # 1 MB each, 1 GB for a 1,000-firewall fleet).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        super().init_poolmanager(
            connections, maxsize, block, assert_fingerprint=self._fingerprint, ssl_context=ctx, **pool_kwargs
        )


class _SystemTrustAdapter(_TimedAdapter):
    """Verify chains against the operating system's CA store (requests alone uses certifi's bundle)."""

    def __init__(self, policy: AddressPolicy) -> None:
        # One context per client, holding the system store (where update-ca-certificates puts a
        # company CA); built before super().__init__, which builds the pool manager.
        self._ctx = ssl.create_default_context()
        super().__init__(policy)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, ssl_context=self._ctx, **pool_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        # requests points verify=True at certifi's file, which urllib3 would load on top of the
        # system store at every connection: the context already holds the trust.
        conn.ca_certs = None
        conn.ca_cert_dir = None


def _where(device: DeviceConfig) -> str:
    return f"{device.name} ({device.host}:{device.port})"


def _root_oserror(exc: BaseException) -> OSError | None:
    """Find the innermost OSError behind a requests/urllib3 exception chain."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    found: OSError | None = None
    while todo:  # breadth first: the last OSError seen is the deepest
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, OSError) and not isinstance(cur, requests.RequestException):
            found = cur
        links = (cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args)
        todo.extend(a for a in links if isinstance(a, BaseException))
    return found


def _reason(exc: BaseException) -> str:
    """Describe a transport failure without any URL, header or parameter."""
    err = _root_oserror(exc)
    if isinstance(err, ssl.SSLCertVerificationError):
        return err.verify_message or "certificate verify failed"
    if err is not None and err.strerror:
        return err.strerror
    if err is not None:
        return type(err).__name__
    return type(exc).__name__


def _connect(host: str, port: int, timeout: float, policy: AddressPolicy) -> socket.socket:
    """Open a TCP connection to the first allowed address of `host` that accepts it."""
    last = OSError("no address to connect to")
    for address in allowed_addresses(host, port, policy):
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last = exc
    raise last


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
            _connect(host, port, timeout, policy or AddressPolicy()) as sock,
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
    """Send keyed form POSTs to one firewall's /api/ over one keep-alive session.

    `timeout` is the total time one call may take (keygen and one retry included) and the
    longest wait for any single read; `connect_timeout` bounds the TCP+TLS connect.
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
        self.insecure = device.tls.mode == "insecure"
        self._where = _where(device)
        self._key: str | None = device.api_key or None
        self._key_lock = threading.Lock()
        self._closed = threading.Event()
        self._ca_file: str | None = None
        host = f"[{device.host}]" if ":" in device.host and not device.host.startswith("[") else device.host
        self._url = f"https://{host}:{device.port}/api/"
        self._session = requests.Session()
        # Firewall management access is direct: no proxy or netrc from the environment, and no
        # REQUESTS_CA_BUNDLE overriding the device's own trust choice.
        self._session.trust_env = False
        self._session.headers["User-Agent"] = "PANfm"
        self._configure_tls()

    def _configure_tls(self) -> None:
        tls = self.device.tls
        if tls.mode == "pin":
            fp = (tls.fingerprint_sha256 or "").replace(":", "").lower()
            if not _FINGERPRINT_RE.fullmatch(fp):
                raise TlsError(f"{self._where}: TLS mode 'pin' needs a 64-digit hex SHA-256 fingerprint")
            self._session.mount("https://", _PinningAdapter(fp, self.policy))
        elif tls.mode == "verify" and not tls.ca_pem:
            self._session.mount("https://", _SystemTrustAdapter(self.policy))
        else:
            self._session.mount("https://", _TimedAdapter(self.policy))
        if tls.mode == "verify" and tls.ca_pem:
            # requests takes a CA bundle as a path; the file lives as long as this client.
            fd, self._ca_file = tempfile.mkstemp(prefix="panfm-ca-", suffix=".pem")
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(tls.ca_pem)
        if self.insecure:
            log.warning("TLS certificate checks are OFF for %s (mode 'insecure' chosen explicitly)", self._where)
            # The warning above is the report; urllib3's per-request warning for this host only is muted.
            warnings.filterwarnings(
                "ignore",
                message=re.escape(f"Unverified HTTPS request is being made to host '{self.device.host}'"),
                category=InsecureRequestWarning,
            )
        # Chain checks only in "verify" mode; "pin" checks the leaf itself, "insecure" nothing.
        self._session.verify = self._ca_file or (tls.mode == "verify")

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the session's connections and remove the temporary CA file."""
        self._closed.set()
        self._session.close()
        if self._ca_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._ca_file)
            self._ca_file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------

    def _post(self, form: dict[str, str], key: str | None, end: float) -> tuple[int, bytes]:
        """POST one form to /api/ and return (HTTP status, body) read entirely before `end`."""
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise PanosTimeout(f"{self._where}: call deadline passed before the request was sent")
        headers = {"X-PAN-KEY": key} if key else {}
        before_wall, before = time.time(), time.monotonic()  # used when the connection gives no times
        try:
            resp = self._session.post(
                self._url,
                data=form,
                headers=headers,
                timeout=(min(self.connect_timeout, remaining), min(self.timeout, remaining)),
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise self._tls_error(exc) from None
        except requests.exceptions.ConnectTimeout:
            raise PanosTimeout(f"{self._where}: no connection within {self.connect_timeout:g} s") from None
        except requests.exceptions.ReadTimeout:
            raise PanosTimeout(f"{self._where}: no answer within {min(self.timeout, remaining):.3g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise ConnectError(f"{self._where}: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise ConnectError(f"{self._where}: request failed ({type(exc).__name__})") from None
        # The device read its counters between sending and answering: date the answer at the
        # send (a late worker thread cannot move it) and keep the round trip as its error bound.
        conn = getattr(resp.raw, "connection", None)
        sent, round_trip = getattr(conn, "sent", None), getattr(conn, "round_trip", None)
        if sent is None or round_trip is None:
            sent, round_trip = before_wall, time.monotonic() - before
        with resp:
            body = self._read_body(resp, end)
        self.last_sent_time, self.last_round_trip = sent, round_trip
        return resp.status_code, body

    def _read_body(self, resp: requests.Response, end: float) -> bytes:
        """Read the body in chunks, enforcing the total deadline even against a trickling server."""
        raw = resp.raw
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise PanosTimeout(f"{self._where}: answer not complete within the call's deadline")
                if sock is not None:
                    # Each recv may wait only for what is left of the deadline.
                    sock.settimeout(min(self.timeout, remaining))
                data = raw.read1(_CHUNK)
                if not data:
                    break
                size += len(data)
                if size > MAX_BODY_BYTES:
                    raise BadResponse(f"{self._where}: response body exceeds {MAX_BODY_BYTES} bytes")
                chunks.append(data)
        except PanosError:
            raw.close()
            raise
        except (TimeoutError, ReadTimeoutError):
            raw.close()
            raise PanosTimeout(f"{self._where}: answer not complete within the call's deadline") from None
        except Exception as exc:  # urllib3 ProtocolError / IncompleteRead / DecodeError, OSError
            raw.close()
            if isinstance(_root_oserror(exc), TimeoutError):
                raise PanosTimeout(f"{self._where}: answer not complete within the call's deadline") from None
            raise BadResponse(f"{self._where}: response body cut short ({type(exc).__name__})") from None
        raw.release_conn()  # fully read: the connection goes back to the pool (keep-alive)
        return b"".join(chunks)

    def _tls_error(self, exc: requests.exceptions.SSLError) -> TlsError:
        match = _MISMATCH_RE.search(str(exc))
        if match:
            return FingerprintMismatch(self._where, match.group(1).replace(":", ""), match.group(2))
        return TlsError(f"{self._where}: TLS verification failed: {_reason(exc)}")

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
