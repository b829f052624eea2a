"""The devices API's "test connection": the one place the web talks to a firewall, throttled per session."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import jsonify, session

from panfm.models import AddressPolicy, DeviceConfig, TlsConfig
from panfm.web.api import BadRequest, UnknownDevice
from panfm.web.auth import auth_of_app
from panfm.web.context import ctx
from panfm.web.device_input import (
    _body,
    _credential_types,
    _credentials,
    parse_tls,
    same_target,
    valid_host,
    valid_port,
)
from panfm.web.security import api_error
from panfm.xmlapi import (
    AddressNotAllowed,
    AuthError,
    ConnectError,
    FingerprintMismatch,
    PanosClient,
    PanosError,
    PanosTimeout,
    TlsError,
    fetch_fingerprint,
)

TEST_TIMEOUT_S = 5.0
TEST_LIMIT = 10  # connection tests per session and window (all workers together)
TEST_WINDOW_S = 60.0

_COARSE = (
    (FingerprintMismatch, "fingerprint_mismatch", "The certificate does not match the pinned fingerprint."),
    (AuthError, "auth_failed", "The firewall refused the credentials."),
    (PanosTimeout, "timeout", "The firewall did not answer in time."),
    (TlsError, "tls_error", "The TLS handshake or certificate check failed."),
    (ConnectError, "unreachable", "The firewall cannot be reached at this host and port."),
    (PanosError, "bad_response", "The firewall answered, but not as a PAN-OS XML API does."),
)


def _coarse(exc: PanosError) -> tuple[str, str]:
    for cls, code, message in _COARSE:
        if isinstance(exc, cls):
            return code, message
    return "bad_response", "The firewall answered, but not as a PAN-OS XML API does."


def test_connection() -> Any:
    body = _body()
    errors: dict[str, str] = {}
    if err := valid_host(body.get("host")):
        errors["host"] = err
    port = body.get("port", 443)
    if err := valid_port(port):
        errors["port"] = err
    # Refuse a malformed body before connecting: an unreachable host must not hide bad input.
    _credential_types(body, errors)
    tls = parse_tls(body["tls"], errors) if "tls" in body else None
    if "device_id" in body and not isinstance(body["device_id"], str):
        errors["device_id"] = "the id of a stored device"
    if errors:
        raise BadRequest(errors)
    host = str(body["host"]).strip().rstrip(".").lower()
    # Which secrets may go to this host is decided before any connection is made.
    device = _test_device(body, host, port, tls)
    result: dict[str, Any] = {
        "reachable": False,
        "fingerprint_sha256": None,
        "hostname": None,
        "model": None,
        "sw_version": None,
    }
    if (throttled := _throttled()) is not None:
        return throttled
    policy = AddressPolicy.of(ctx().settings.allowed_device_networks)
    try:
        result["fingerprint_sha256"] = fetch_fingerprint(host, port, timeout=TEST_TIMEOUT_S, policy=policy)
    except AddressNotAllowed as exc:
        raise BadRequest({"host": _refusal(exc)}) from None
    except PanosError as exc:
        result["error"], result["message"] = _coarse(exc)
        return jsonify(result)
    result["reachable"] = True
    if device is None:
        return jsonify(result)  # no credentials: the fingerprint is all the admin asked for
    if device.tls.mode == "pin" and not device.tls.fingerprint_sha256:
        # No TLS given with new credentials: trust what was just seen, for this check only.
        device = dataclasses.replace(device, tls=TlsConfig(mode="pin", fingerprint_sha256=result["fingerprint_sha256"]))
    try:
        with PanosClient(device, timeout=TEST_TIMEOUT_S, connect_timeout=TEST_TIMEOUT_S, policy=policy) as client:
            info = client.system_info()
    except AddressNotAllowed as exc:  # the name now resolves elsewhere than a moment ago
        raise BadRequest({"host": _refusal(exc)}) from None
    except PanosError as exc:
        result["error"], result["message"] = _coarse(exc)
        return jsonify(result)
    result.update(hostname=info.hostname, model=info.model, sw_version=info.sw_version)
    return jsonify(result)


def _throttled() -> Any:
    """A 429 when this session used up its connection tests (counted only for tests that connect)."""
    sid = session.get("sid")
    wait = auth_of_app().spend(sid, "device_test", TEST_LIMIT, TEST_WINDOW_S) if isinstance(sid, str) else None
    if wait is None:
        return None
    # The one route where the web opens connections: no session may use it to sweep a network.
    resp, status = api_error(
        429, "too_many_attempts",
        f"At most {TEST_LIMIT} connection tests per {TEST_WINDOW_S:g} seconds; try again in {wait} s.",
    )
    resp.headers["Retry-After"] = str(wait)
    return resp, status


def _refusal(exc: AddressNotAllowed) -> str:
    """The policy's reason, without the "host:port: " prefix the transport puts first."""
    return str(exc).split(": ", 1)[-1]


def _test_device(body: dict[str, Any], host: str, port: int, tls: TlsConfig | None) -> DeviceConfig | None:
    """Build a throwaway device for the test from the given credentials, or a stored device's.

    A stored device lends its secrets only to its own host, port and TLS settings (its TLS is
    used when none is given); anything else needs the credential again (400). A device
    without TLS settings gets a pin without a fingerprint: the caller pins what it sees.
    """
    current = None
    if isinstance(body.get("device_id"), str):
        current = ctx().devices.get(body["device_id"])
        if current is None:
            raise UnknownDevice(body["device_id"])
    errors: dict[str, str] = {}
    creds: dict[str, Any] = {k: body[k] for k in ("api_key", "username", "password") if k in body}
    if not creds and current is None:
        return None
    if tls is None and current is not None and (current.host, current.port) == (host, port):
        tls = current.tls
    api_key, username, password = _credentials(creds, current, errors, same_target(current, host, port, tls))
    if errors:
        raise BadRequest(errors)
    base = current or DeviceConfig(id="test", name="test", host=host, port=port, tls=TlsConfig(mode="pin"))
    return dataclasses.replace(
        base, host=host, port=port, tls=tls or TlsConfig(mode="pin"), api_key=api_key, username=username,
        password=password,
    )
