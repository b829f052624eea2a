"""The transport's failures: the connect, timeout, TLS and server errors under `PanosError`.

Every failure of a call is one of these (`PanosError` and its API subclasses come from `panos_xml`):

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
"""

from __future__ import annotations

from panfm.xmlapi.parsers import PanosError


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


class AddressNotAllowed(ConnectError):
    """Every address the host resolves to is refused by the address policy; nothing was sent."""
