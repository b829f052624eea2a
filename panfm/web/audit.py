"""The audit trail: `record()` for every change people make, and `GET /api/audit` to read it.

An entry names the actor (the logged-in user, or the name tried in a failed login), the
action (`device.update`, `user.create`, `alert.acknowledge`, ...), the target (an id or a
name) and the fields changed. A secret is never written: `changed_fields` replaces its value
with "(set)". Entries are stored in config.db (`throughput_storage.AuditLog`); the clock's
nightly cleanup drops those older than `audit_retention_days`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from config import bounded_int
from panfm.web.identity import current_user
from panfm.web.security import api_error
from throughput_storage import AuditEntry, AuditLog, DatabaseError

log = logging.getLogger("panfm.web")

bp = Blueprint("audit", __name__)

# Field names whose values are secrets: only the fact that they were set is recorded.
SECRET_FIELDS = frozenset({"password", "new_password", "old_password", "api_key", "url", "token", "secret",
                           "metrics_token", "admin_password", "secret_key"})
MAX_TEXT = 200
DEFAULT_PAGE = 100
MAX_PAGE = 500


def printable(text: str, limit: int = 64) -> str:
    """`text` with control characters shown as `\\xNN`, cut to `limit` (a name tried at the login)."""
    out = "".join(ch if 32 <= ord(ch) != 127 else f"\\x{ord(ch):02x}" for ch in text[:limit])
    return out.encode("utf-8", "replace").decode("utf-8")


def _plain(value: Any) -> Any:
    """A value as the audit shows it: short text, numbers, booleans, null, lists and objects of those."""
    if isinstance(value, str):
        return printable(value, MAX_TEXT)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in list(value)[:50]]
    if isinstance(value, dict):
        return changed_fields(value)
    return printable(str(value), MAX_TEXT)


def changed_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a change for the audit: secrets as "(set)" (or null when cleared), the rest as sent."""
    out: dict[str, Any] = {}
    for key, value in list(body.items())[:50]:
        name = printable(str(key))
        if name.lower() in SECRET_FIELDS or "password" in name.lower() or "token" in name.lower():
            out[name] = None if value in (None, "") else "(set)"
        else:
            out[name] = _plain(value)
    return out


def audit_log() -> AuditLog:
    store: AuditLog = current_app.extensions["panfm_audit"]
    return store


def record(action: str, target: str, fields: dict[str, Any] | None = None, *, actor: str | None = None) -> None:
    """Append one entry; the actor is the current user unless given. A failure is logged, never raised.

    The change itself is already stored: refusing the answer because the trail could not be
    written would make the user retry a change that happened.
    """
    if actor is None:
        user = current_user()
        actor = user.username if user else "-"
    entry_fields = changed_fields(fields or {})
    user = current_user()
    if user is not None and user.via == "token":
        entry_fields["via_token"] = user.token_id
    try:
        audit_log().append(actor, action, printable(target, MAX_TEXT), entry_fields,
                           current_app.extensions["panfm"].clock())
    except DatabaseError as exc:
        log.error("audit entry %s on %r not written: %s", action, target[:64], type(exc).__name__)


def iso_us(t_us: int) -> str:
    """Epoch microseconds as ISO-8601 UTC with six decimals (exact: `before` pages on it)."""
    dt = datetime.fromtimestamp(t_us // 1_000_000, UTC).replace(microsecond=t_us % 1_000_000)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_us(text: str) -> int:
    """Parse an ISO-8601 UTC time into epoch microseconds (ValueError when it is not one)."""
    parsed = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.utcoffset() != UTC.utcoffset(None):
        raise ValueError("not UTC")
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def entry_json(e: AuditEntry) -> dict[str, Any]:
    return {"t": iso_us(e.t_us), "actor": e.actor, "action": e.action, "target": e.target, "fields": e.fields}


@bp.get("/api/audit")
def list_audit() -> Any:
    errors: dict[str, str] = {}
    before: int | None = None
    before_text = request.args.get("before")
    if before_text:
        try:
            before = parse_us(before_text)
        except (ValueError, OverflowError):
            errors["before"] = "an ISO-8601 UTC time such as 2026-01-31T12:00:00.000000Z (an entry's t)"
    limit = DEFAULT_PAGE
    try:
        limit = bounded_int(request.args.get("limit", str(DEFAULT_PAGE)), 1, MAX_PAGE)
    except ValueError:
        errors["limit"] = f"a whole number from 1 to {MAX_PAGE}"
    if errors:
        return api_error(400, "invalid", "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors)
    return jsonify({"entries": [entry_json(e) for e in audit_log().page(before, limit)]})
