"""Device bodies: parse and validate what the devices API receives, and when stored credentials may be reused."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from cryptography import x509
from flask import request

from panfm.models import DeviceConfig, TlsConfig
from panfm.web.api import BadRequest

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_INTERFACE = re.compile(r"[A-Za-z0-9./:_-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    known = {"name", "host", "port", "api_key", "username", "password", "tls", "interfaces", "enabled", "uplinks"}
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
    uplinks: tuple[str, ...] = () if current is None else current.uplinks
    if "uplinks" in body:
        raw = body["uplinks"]
        if not isinstance(raw, list) or not all(isinstance(i, str) and _INTERFACE.fullmatch(i) for i in raw):
            errors["uplinks"] = "a list of interface names such as ethernet1/1"
        elif len(raw) > 64:
            errors["uplinks"] = "at most 64 uplinks"
        else:
            uplinks = tuple(dict.fromkeys(raw))
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
        uplinks=uplinks,
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


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest({"body": "a JSON object"})
    return body
