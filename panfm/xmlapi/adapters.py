"""The requests adapters of the transport: no retries, guarded and timed pools, each TLS mode's trust."""

from __future__ import annotations

import functools
import ssl
from typing import Any

from requests.adapters import HTTPAdapter

from panfm.models import AddressPolicy
from panfm.xmlapi.addresses import GuardedHTTPSConnectionPool


class TimedAdapter(HTTPAdapter):
    """An adapter without retries whose HTTPS connections check their address and time each request."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy  # set before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            **self.poolmanager.pool_classes_by_scheme,
            "https": functools.partial(GuardedHTTPSConnectionPool, policy=self._policy),
        }


class PinningAdapter(TimedAdapter):
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


class SystemTrustAdapter(TimedAdapter):
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
