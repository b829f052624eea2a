"""The PAN-OS XML API: transport (TLS modes, deadlines, keygen), `PanosClient`, pure parsers.

Other areas import from here, never from the modules inside. Imports nothing of the product
but `panfm.models`. (Never call this package `panos`: that is the vendor SDK's import name.)
"""

from panfm.xmlapi.client import (
    AddressNotAllowed,
    ApiError,
    AuthError,
    BadResponse,
    ConnectError,
    FingerprintMismatch,
    PanosClient,
    PanosError,
    PanosTimeout,
    PendingJob,
    TlsError,
    fetch_fingerprint,
)
from panfm.xmlapi.parse_dataplane import interface_kind
from panfm.xmlapi.parse_network import normalize_mac

__all__ = [
    "AddressNotAllowed",
    "ApiError",
    "AuthError",
    "BadResponse",
    "ConnectError",
    "FingerprintMismatch",
    "PanosClient",
    "PanosError",
    "PanosTimeout",
    "PendingJob",
    "TlsError",
    "fetch_fingerprint",
    "interface_kind",
    "normalize_mac",
]
