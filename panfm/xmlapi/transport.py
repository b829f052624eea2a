"""The XML API transport under `panos_api.PanosClient`: session, TLS modes, deadlines and keys.

Every failure is one of the error tree's classes (`panfm/xmlapi/errors.py`, with `PanosError`
and its API subclasses from `panos_xml`). Connections reach only the addresses the policy
allows (`addresses.py`); each TLS mode has its adapter (`adapters.py`).

No message raised here contains a key, a password or a URL with parameters: requests'
exceptions embed URLs and headers, so they are re-raised as these classes `from None`.
The key travels only in the `X-PAN-KEY` header; every call is a form POST to `/api/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlencode

import requests
import urllib3.exceptions as urllib3_exc
from urllib3 import Timeout
from urllib3.exceptions import InsecureRequestWarning, ReadTimeoutError

import panfm.xmlapi.parsers as panos_xml
from panfm.models import AddressPolicy, DeviceConfig
from panfm.xmlapi.adapters import PinningAdapter, SystemTrustAdapter, TimedAdapter
from panfm.xmlapi.addresses import connect_allowed
from panfm.xmlapi.errors import ConnectError, FingerprintMismatch, PanosTimeout, ServerError, TlsError
from panfm.xmlapi.parsers import AuthError, BadResponse, PanosError

log = logging.getLogger("panfm.xmlapi")  # one logger name for the whole client

MAX_BODY_BYTES = panos_xml.MAX_BODY_BYTES
_CHUNK = 64 * 1024
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")
_MISMATCH_RE = re.compile(r'Expected "([0-9a-f:]+)", got "([0-9a-f]+)"')


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
        self._pool_cache: Any = None
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
            self._session.mount("https://", PinningAdapter(fp, self.policy))
        elif tls.mode == "verify" and not tls.ca_pem:
            self._session.mount("https://", SystemTrustAdapter(self.policy))
        else:
            self._session.mount("https://", TimedAdapter(self.policy))
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
        self._pool_cache = None  # closed with the session; a later call builds a new one, as requests did
        if self._ca_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._ca_file)
            self._ca_file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------

    def _pool(self) -> Any:
        """The urllib3 pool of this device, as requests' adapter for its TLS mode builds and checks it.

        Built once through the mounted adapter (TLS context, pin, address guard, CA file), then
        used directly: requests' per-call work (merging settings, preparing the request, its
        runtime protocol checks) cost about as much CPU as the parse of the answer, on every call.
        """
        if self._pool_cache is None:
            adapter = self._session.get_adapter(self._url)
            request = requests.Request("POST", self._url).prepare()
            pool = adapter.get_connection_with_tls_context(request, self._session.verify)  # type: ignore[attr-defined]
            adapter.cert_verify(pool, self._url, self._session.verify, None)  # type: ignore[attr-defined]
            self._pool_cache = pool
        return self._pool_cache

    def _post(self, form: dict[str, str], key: str | None, end: float) -> tuple[int, bytes]:
        """POST one form to /api/ and return (HTTP status, body) read entirely before `end`."""
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise PanosTimeout(f"{self._where}: call deadline passed before the request was sent")
        headers = {"User-Agent": "PANfm", "Accept": "*/*", "Content-Type": "application/x-www-form-urlencoded"}
        if key:
            headers["X-PAN-KEY"] = key
        before_wall, before = time.time(), time.monotonic()  # used when the connection gives no times
        try:
            resp = self._pool().urlopen(
                "POST", "/api/", body=urlencode(form).encode("utf-8"), headers=headers,
                timeout=Timeout(connect=min(self.connect_timeout, remaining), read=min(self.timeout, remaining)),
                retries=False, redirect=False, assert_same_host=False, preload_content=False,
                decode_content=False,
            )
        except urllib3_exc.SSLError as exc:
            raise self._tls_error(exc) from None
        except urllib3_exc.NewConnectionError as exc:  # a subclass of ConnectTimeoutError: test it first
            raise ConnectError(f"{self._where}: {_reason(exc)}") from None
        except urllib3_exc.ConnectTimeoutError:
            raise PanosTimeout(f"{self._where}: no connection within {self.connect_timeout:g} s") from None
        except urllib3_exc.ReadTimeoutError:
            raise PanosTimeout(f"{self._where}: no answer within {min(self.timeout, remaining):.3g} s") from None
        except (urllib3_exc.ProtocolError, urllib3_exc.ClosedPoolError, OSError) as exc:
            raise ConnectError(f"{self._where}: {_reason(exc)}") from None
        except urllib3_exc.HTTPError as exc:
            raise ConnectError(f"{self._where}: request failed ({type(exc).__name__})") from None
        # The device read its counters between sending and answering: date the answer at the
        # send (a late worker thread cannot move it) and keep the round trip as its error bound.
        conn = getattr(resp, "connection", None)
        sent, round_trip = getattr(conn, "sent", None), getattr(conn, "round_trip", None)
        if sent is None or round_trip is None:
            sent, round_trip = before_wall, time.monotonic() - before
        with resp:
            body = self._read_body(resp, end)
        self.last_sent_time, self.last_round_trip = sent, round_trip
        return int(resp.status), body

    def _read_body(self, resp: Any, end: float) -> bytes:
        """Read the body in chunks, enforcing the total deadline even against a trickling server."""
        raw = resp  # urllib3's HTTPResponse
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

    def _tls_error(self, exc: Exception) -> TlsError:
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
