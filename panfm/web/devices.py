"""Devices JSON API: list, add, edit, delete, and the explicit "test connection".

Validation answers 400 with a message per field. Credentials are written encrypted by
`config_store` and never come back in any answer. "Test connection" is the one place the
web talks to a firewall, with a short timeout and a coarse answer (never a body or a raw
exception).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
from typing import Any

from cryptography import x509
from flask import Blueprint, jsonify, request, session

from panfm.models import AddressPolicy, DeviceConfig, DeviceStatus, TlsConfig
from panfm.web.api import BadRequest, UnknownDevice, ctx, status_json
from panfm.web.auth import auth_of_app, current_user
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
from throughput_storage import IntegrityError

log = logging.getLogger("panfm.web")

TEST_TIMEOUT_S = 5.0
TEST_LIMIT = 10  # connection tests per session and window (all workers together)
TEST_WINDOW_S = 60.0
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_INTERFACE = re.compile(r"[A-Za-z0-9./:_-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

bp = Blueprint("devices", __name__)


# ---- validation ------------------------------------------------------------------------


def valid_host(value: Any) -> str | None:
    """Return an error message for a bad host (IP address or DNS name), None when fine."""
    if not isinstance(value, str) or not value.strip():
        return "required: an IP address or a DNS name"
    host = value.strip()
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "not a valid IP address or DNS name (no scheme, path or port)"
    return None


def valid_port(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return "a whole number from 1 to 65535"
    return None


def parse_tls(value: Any, errors: dict[str, str]) -> TlsConfig | None:
    """Read a `tls` object: pin with a SHA-256 fingerprint, verify with an optional CA, or insecure."""
    if not isinstance(value, dict):
        errors["tls"] = 'an object: {"mode": "pin" | "verify" | "insecure", ...}'
        return None
    mode = value.get("mode")
    if mode == "pin":
        raw = value.get("fingerprint_sha256")
        fp = raw.replace(":", "").strip().lower() if isinstance(raw, str) else ""
        if not _FINGERPRINT.fullmatch(fp):
            errors["tls.fingerprint_sha256"] = "64 hex digits (colons allowed), the SHA-256 of the certificate"
            return None
        return TlsConfig(mode="pin", fingerprint_sha256=fp)
    if mode == "verify":
        ca = value.get("ca_pem")
        if ca is None or ca == "":
            return TlsConfig(mode="verify")
        try:
            if not isinstance(ca, str) or len(ca) > 256 * 1024:
                raise ValueError
            x509.load_pem_x509_certificates(ca.encode("ascii"))
        except ValueError:
            errors["tls.ca_pem"] = "one or more PEM certificates (-----BEGIN CERTIFICATE-----)"
            return None
        return TlsConfig(mode="verify", ca_pem=ca)
    if mode == "insecure":
        return TlsConfig(mode="insecure")
    errors["tls.mode"] = "one of pin, verify, insecure"
    return None


def _text(value: Any, name: str, errors: dict[str, str], limit: int = 100) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors[name] = "required text"
        return None
    if len(value) > limit or _CONTROL.search(value):
        errors[name] = f"at most {limit} printable characters"
        return None
    return value.strip()


def device_from_body(body: dict[str, Any], current: DeviceConfig | None) -> DeviceConfig:
    """Validate a create (current None) or partial update body into a DeviceConfig; raise BadRequest."""
    errors: dict[str, str] = {}
    known = {"name", "host", "port", "api_key", "username", "password", "tls", "interfaces", "enabled"}
    for extra in sorted(set(body) - known - {"id"}):
        errors[extra] = "unknown field"

    def given(name: str) -> bool:
        return current is None or name in body

    name = _text(body.get("name"), "name", errors) if given("name") else current.name  # type: ignore[union-attr]
    host: str | None = None
    if given("host"):
        err = valid_host(body.get("host"))
        if err:
            errors["host"] = err
        else:
            host = str(body["host"]).strip().rstrip(".").lower()
    else:
        host = current.host  # type: ignore[union-attr]
    port = body.get("port", 443 if current is None else current.port)
    if err := valid_port(port):
        errors["port"] = err
    tls = parse_tls(body.get("tls"), errors) if given("tls") else current.tls  # type: ignore[union-attr]

    # A request refused for its target anyway needs no second message about credentials.
    reuse = bool(errors) or same_target(current, host, port, tls)
    api_key, username, password = _credentials(body, current, errors, reuse)

    interfaces: tuple[str, ...] = () if current is None else current.interfaces
    if "interfaces" in body:
        raw = body["interfaces"]
        if not isinstance(raw, list) or not all(isinstance(i, str) and _INTERFACE.fullmatch(i) for i in raw):
            errors["interfaces"] = "a list of interface names such as ethernet1/1"
        elif len(raw) > 1024:
            errors["interfaces"] = "at most 1024 interfaces"
        else:
            interfaces = tuple(dict.fromkeys(raw))
    enabled = True if current is None else current.enabled
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            errors["enabled"] = "true or false"
        else:
            enabled = body["enabled"]
    if errors:
        raise BadRequest(errors)
    if name is None or host is None or tls is None:  # each None came with an error above
        raise BadRequest({"body": "incomplete device"})
    return DeviceConfig(
        id=current.id if current else "",
        name=name,
        host=host,
        port=port,
        tls=tls,
        api_key=api_key,
        username=username,
        password=password,
        interfaces=interfaces,
        enabled=enabled,
    )


def _credential_types(body: dict[str, Any], errors: dict[str, str]) -> bool:
    """Check that given credentials are non-empty text; False (with errors) when one is not."""
    ok = True
    for name in ("api_key", "username", "password"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 1024):
            errors[name] = "non-empty text (at most 1024 characters)"
            ok = False
    return ok


AGAIN = "required again: the host, port or TLS settings changed, and stored credentials go only where they were given"


def same_target(current: DeviceConfig | None, host: str | None, port: Any, tls: TlsConfig | None) -> bool:
    """Tell whether host, port and TLS are all the stored device's: only then may its secrets be reused."""
    return current is not None and (current.host, current.port, current.tls) == (host, port, tls)


def _credentials(
    body: dict[str, Any], current: DeviceConfig | None, errors: dict[str, str], reuse: bool = True
) -> tuple[str | None, str | None, str | None]:
    """Pick the credentials: new ones replace the stored ones; omitted secrets keep what is stored.

    With `reuse` False (the device now points elsewhere) no stored secret is kept: an edit
    that only changes the host would otherwise hand the old firewall's key to the new one.
    """
    if not _credential_types(body, errors):
        return None, None, None
    stored = current if reuse else None
    api_key, username, password = body.get("api_key"), body.get("username"), body.get("password")
    if api_key:
        return api_key, None, None  # an API key replaces a username and password
    if username or password:
        stored_user = current.username if current else None  # a user name is no secret
        stored_password = stored.password if stored else None
        username = username or stored_user
        # Keep the stored password only for the same user: a new user name needs its own.
        password = password or (stored_password if username == stored_user else None)
        if not username:
            errors["username"] = "required with a password"
        if not password:
            errors["password"] = AGAIN if current and current.password and username == stored_user else (
                "required with a username")
        return None, username, password
    if stored is not None:
        return stored.api_key, stored.username, stored.password
    if current is not None:
        errors["password" if current.password else "api_key"] = AGAIN
        return None, None, None
    errors["api_key"] = "give an api_key, or a username and a password"
    return None, None, None


# ---- listing ---------------------------------------------------------------------------


def _info(inventory: dict[str, Any] | None) -> dict[str, Any] | None:
    """Pick the system facts from the inventory job's inventory (absent until it ran)."""
    if not inventory:
        return None
    system = inventory.get("system") or inventory.get("system_info") or {}
    ha = inventory.get("ha") or inventory.get("ha_state") or {}
    if not isinstance(system, dict):
        system = {}
    return {
        "hostname": system.get("hostname"),
        "model": system.get("model"),
        "serial": system.get("serial"),
        "sw_version": system.get("sw_version"),
        "uptime_seconds": system.get("uptime_seconds"),
        "ha_state": (ha.get("local_state") if isinstance(ha, dict) else None),
    }


def device_json(d: DeviceConfig, status: DeviceStatus | None, inventory: dict[str, Any] | None) -> dict[str, Any]:
    """The API shape of a device: never a credential, only which kind is stored."""
    return {
        "id": d.id,
        "name": d.name,
        "host": d.host,
        "port": d.port,
        "enabled": d.enabled,
        "interfaces": list(d.interfaces),
        "auth": "api_key" if d.api_key else "password",
        "tls": {"mode": d.tls.mode, "fingerprint_sha256": d.tls.fingerprint_sha256},
        "status": status_json(status),
        "info": _info(inventory),
    }


@bp.get("/api/devices")
def list_devices() -> Any:
    c = ctx()
    devices = c.devices.list()
    statuses: dict[str, DeviceStatus] = {}
    inventories: dict[str, dict[str, Any]] = {}
    with c.reader() as reader:
        if reader:
            statuses = reader.device_statuses()
            inventories = reader.inventory_all()
    return jsonify({"devices": [device_json(d, statuses.get(d.id), inventories.get(d.id)) for d in devices]})


@bp.get("/api/devices/<device_id>")
def get_device(device_id: str) -> Any:
    c = ctx()
    device = c.devices.get(device_id)
    if device is None:
        raise UnknownDevice(device_id)
    with c.reader() as reader:
        status = reader.device_statuses().get(device_id) if reader else None
        inventory = reader.inventory(device_id) if reader else None
    return jsonify(device_json(device, status, inventory))


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest({"body": "a JSON object"})
    return body


def _duplicate(device: DeviceConfig) -> BadRequest | None:
    for other in ctx().devices.list():
        if other.id == device.id:
            continue
        if other.name == device.name:
            return BadRequest({"name": "another device already has this name"})
        if (other.host, other.port) == (device.host, device.port):
            return BadRequest({"host": f"another device ({other.name}) already uses this host and port"})
    return None


@bp.post("/api/devices")
def add_device() -> Any:
    device = device_from_body(_body(), None)
    if dup := _duplicate(device):
        raise dup
    try:
        device_id = ctx().devices.add(device)
    except IntegrityError:
        # Another request added the same name or host:port between the check and the insert.
        raise BadRequest({"name": "a device with this name or host and port already exists"}) from None
    log.info("device %s added (%s:%d)", device_id, device.host, device.port)
    return jsonify({"id": device_id}), 201


@bp.put("/api/devices/<device_id>")
def update_device(device_id: str) -> Any:
    c = ctx()
    current = c.devices.get(device_id)
    if current is None:
        raise UnknownDevice(device_id)
    device = device_from_body(_body(), current)
    if dup := _duplicate(device):
        raise dup
    try:
        if not c.devices.update(device):
            raise UnknownDevice(device_id)
    except IntegrityError:
        raise BadRequest({"name": "a device with this name or host and port already exists"}) from None
    if not same_target(current, device.host, device.port, device.tls):
        user = current_user()
        log.info(
            "device %s moved by %r: %s:%d -> %s:%d (TLS %s -> %s), with credentials given again",
            device_id, user.username if user else None, current.host, current.port, device.host, device.port,
            current.tls.mode, device.tls.mode,
        )
    return jsonify({"id": device_id})


@bp.delete("/api/devices/<device_id>")
def delete_device(device_id: str) -> Any:
    if not ctx().devices.remove(device_id):
        raise UnknownDevice(device_id)
    log.info("device %s deleted", device_id)
    return jsonify({"deleted": device_id})


# ---- test connection -------------------------------------------------------------------

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


@bp.post("/api/devices/test")
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
