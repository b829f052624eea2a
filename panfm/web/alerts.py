"""Alerts JSON API: rules, templates, active alerts, history, acknowledgements, channels, maintenance.

Rules, channels and maintenance windows live in config.db (`config_store.DocTable`); the clock
reads them at every cycle. Alert states and history are the clock's (`alerts.db`), read here
read-only; acknowledgements are the one web write there. A channel's URL (an Apprise URL with
tokens or passwords) is stored encrypted and only ever answered masked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, jsonify, request

from alerts import (
    SEVERITIES,
    TEMPLATES,
    address_refusal,
    apply_template,
    channel_to_stored,
    mask_channel,
    send_test,
    validate_channel,
    validate_maintenance,
    validate_rule,
)
from config import bounded_int
from panfm.models import AddressPolicy
from panfm.timefmt import iso_s
from panfm.web.api import BadRequest, device_exists, parse_iso
from panfm.web.audit import record
from panfm.web.context import WebContext, ctx
from panfm.web.identity import current_user
from panfm.web.security import api_error
from throughput_storage import DatabaseError, DocTable, alerts_store, config_store

log = logging.getLogger("panfm.web")

bp = Blueprint("alerts", __name__)

RULE_FIELDS = frozenset({"name", "device_id", "metric", "interface", "zone", "operator", "threshold",
                         "clear_threshold", "for_s", "severity", "repeat_s", "channel_ids", "enabled"})
CHANNEL_FIELDS = frozenset({"name", "url", "enabled"})
WINDOW_FIELDS = frozenset({"name", "device_id", "kind", "start", "end", "weekdays", "start_time", "duration_s"})
TEMPLATE_FIELDS = frozenset({"template", "device_id", "channel_ids"})
MAX_HISTORY = 1000


class NotFound(Exception):
    """No stored document (rule, channel, window) or alert with this id (404)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@bp.app_errorhandler(NotFound)
def not_found(exc: NotFound) -> Any:
    return api_error(404, "not_found", f"No such {exc.what}.")


@bp.errorhandler(DatabaseError)
def alerts_db_unreadable(exc: DatabaseError) -> Any:
    # A damaged alerts.db (or config.db) must not turn into a 500: say what is wrong, plainly.
    log.warning("alerts: database unreadable: %s", type(exc).__name__)
    return api_error(503, "alerts_unavailable", "The alerts database cannot be read; run `flask --app app db check`.")


def _table(c: WebContext, name: str) -> DocTable:
    return c.stores.doc_table(name)


def _bad_text(value: Any) -> bool:
    """Tell whether a string holds control characters or lone surrogates (unstorable, unprintable)."""
    if not isinstance(value, str):
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _body(fields: frozenset[str], errors: dict[str, str]) -> dict[str, Any]:
    """The request's JSON object; unknown fields and unprintable text go into `errors` by field."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest({"body": "a JSON object"})
    for key, value in body.items():
        if key not in fields and key != "id":  # an id in the body is ignored: the path names the document
            errors[str(key)[:64]] = "unknown field"
        elif _bad_text(value) or (isinstance(value, list) and any(_bad_text(v) for v in value)):
            errors[key] = "contains control characters or invalid unicode"
    body.pop("id", None)
    return body


def _refuse(errors: dict[str, str], *more: dict[str, str]) -> None:
    """Answer 400 with every problem found, one message per field (nothing is stored)."""
    merged = {k: v for e in more for k, v in e.items()} | errors
    if merged:
        raise BadRequest(merged)


def _check_refs(c: WebContext, doc: Mapping[str, Any], errors: dict[str, str]) -> None:
    """Refuse a device or channel id that does not exist (a rule aimed at nothing never fires)."""
    device_id = doc.get("device_id")
    if device_id and "device_id" not in errors and not device_exists(c, device_id):
        errors["device_id"] = "no such device"
    channel_ids = doc.get("channel_ids") or []
    if channel_ids and "channel_ids" not in errors:
        known = {ch["id"] for ch in _table(c, "alert_channels").list()}
        missing = [cid for cid in channel_ids if cid not in known]
        if missing:
            errors["channel_ids"] = "no such channel: " + ", ".join(missing[:5])


def _device_names(c: WebContext) -> dict[str, str]:
    """Device names by id straight from config.db (no secret decrypted for a label)."""
    return config_store.device_names(c.stores.backend)


# ---- rules ---------------------------------------------------------------------------------


def _save_rule(
    c: WebContext, doc: dict[str, Any], rule_id: str | None, body_errors: dict[str, str] | None = None
) -> dict[str, Any]:
    clean, errors = validate_rule(doc)
    _check_refs(c, clean, errors)
    _refuse(body_errors or {}, errors)
    clean.pop("id", None)
    if rule_id is not None:
        clean["id"] = rule_id
    new_id = _table(c, "alert_rules").put(clean)
    return {"id": new_id, **{k: v for k, v in clean.items() if k != "id"}}


@bp.get("/api/alerts/rules")
def list_rules() -> Any:
    return jsonify({"rules": _table(ctx(), "alert_rules").list()})


@bp.post("/api/alerts/rules")
def create_rule() -> Any:
    errors: dict[str, str] = {}
    rule = _save_rule(ctx(), _body(RULE_FIELDS, errors), None, errors)
    log.info("alert rule %s created (%s)", rule["id"], rule["metric"])
    record("rule.create", rule["id"], rule)
    return jsonify(rule), 201


@bp.put("/api/alerts/rules/<rule_id>")
def update_rule(rule_id: str) -> Any:
    c = ctx()
    current = _table(c, "alert_rules").get(rule_id)
    if current is None:
        raise NotFound("alert rule")
    # A partial body changes only what it names; null clears an optional field.
    errors: dict[str, str] = {}
    body = _body(RULE_FIELDS, errors)
    saved = _save_rule(c, {**current, **body}, rule_id, errors)
    record("rule.update", rule_id, body)
    return jsonify(saved)


@bp.delete("/api/alerts/rules/<rule_id>")
def delete_rule(rule_id: str) -> Any:
    if not _table(ctx(), "alert_rules").delete(rule_id):
        raise NotFound("alert rule")
    log.info("alert rule %s deleted", rule_id)
    record("rule.delete", rule_id)
    return jsonify({"deleted": rule_id})


@bp.post("/api/alerts/rules/apply-template")
def apply_rule_template() -> Any:
    c = ctx()
    errors: dict[str, str] = {}
    body = _body(TEMPLATE_FIELDS, errors)
    name = body.get("template")
    if not isinstance(name, str) or name not in TEMPLATES:
        errors["template"] = "one of " + ", ".join(TEMPLATES)
    device_id = body.get("device_id")
    if device_id is not None and not isinstance(device_id, str):
        errors["device_id"] = "a device id, or null for every device"
    channel_ids = body.get("channel_ids", [])
    if not isinstance(channel_ids, list) or not all(isinstance(x, str) for x in channel_ids):
        errors["channel_ids"] = "a list of channel ids"
    _check_refs(c, {"device_id": device_id, "channel_ids": channel_ids}, errors)
    if errors:
        raise BadRequest(errors)
    docs = apply_template(str(name), device_id or None, list(channel_ids))
    created = [_save_rule(c, doc, None) for doc in docs]
    log.info("alert template %s applied: %d rules", name, len(created))
    record("rule.apply_template", str(name), {"device_id": device_id, "rules": [r["id"] for r in created]})
    return jsonify({"template": name, "rules": created}), 201


# ---- active alerts, history, acknowledgements ----------------------------------------------


def _labelled(c: WebContext, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add device and rule names for people (ids stay the contract)."""
    names = _device_names(c)
    rules = {r["id"]: r.get("name") for r in _table(c, "alert_rules").list()}
    return [
        {**a, "device_name": names.get(a["device_id"]), "rule_name": a.get("rule_name") or rules.get(a["rule_id"])}
        for a in alerts
    ]


@bp.get("/api/alerts/active")
def active() -> Any:
    c = ctx()
    return jsonify({"alerts": _labelled(c, alerts_store.active_alerts(c.stores.alerts_db))})


@bp.get("/api/alerts/history")
def alert_history() -> Any:
    c = ctx()
    errors: dict[str, str] = {}
    device_id = request.args.get("device_id") or None
    if device_id is not None and (len(device_id) > 64 or _bad_text(device_id)):
        errors["device_id"] = "a device id"
    since_text = request.args.get("since")
    since = parse_iso(since_text, "since") if since_text else None
    severity = request.args.get("severity") or None
    if severity is not None and severity not in SEVERITIES:
        errors["severity"] = "one of " + ", ".join(SEVERITIES)
    limit = 500
    try:
        limit = bounded_int(request.args.get("limit", "500"), 1, MAX_HISTORY)
    except ValueError:
        errors["limit"] = f"a whole number from 1 to {MAX_HISTORY}"
    if errors:
        raise BadRequest(errors)
    rows = alerts_store.history(c.stores.alerts_db, device_id=device_id, since=since,
                                severity=severity, limit=limit)
    return jsonify({"history": _labelled(c, rows)})


@bp.post("/api/alerts/<alert_id>/acknowledge")
def acknowledge(alert_id: str) -> Any:
    c = ctx()
    user = current_user()
    if user is None:  # the login gate stops anonymous requests first; this keeps the type honest
        return api_error(401, "unauthorized", "Log in first.")
    now = c.clock()
    # The session's user, never a name from the body: an acknowledgement says who looked.
    if not alerts_store.acknowledge(c.stores.alerts_db, alert_id, user.username, now):
        raise NotFound("alert")
    record("alert.acknowledge", alert_id)
    return jsonify({"id": alert_id, "acknowledged_by": user.username, "at": iso_s(now)})


# ---- channels ------------------------------------------------------------------------------


@bp.get("/api/alerts/channels")
def list_channels() -> Any:
    return jsonify({"channels": [mask_channel(ch) for ch in _table(ctx(), "alert_channels").list()]})


@bp.post("/api/alerts/channels")
def create_channel() -> Any:
    c = ctx()
    errors: dict[str, str] = {}
    clean, invalid = validate_channel(_body(CHANNEL_FIELDS, errors))
    _check_address(c, clean, invalid)
    _refuse(errors, invalid)
    clean.pop("id", None)
    stored = channel_to_stored(clean, c.box)
    stored["id"] = _table(c, "alert_channels").put(stored)
    log.info("alert channel %s created (%s)", stored["id"], stored["url_masked"])
    record("channel.create", stored["id"], clean)
    return jsonify(mask_channel(stored)), 201


@bp.put("/api/alerts/channels/<channel_id>")
def update_channel(channel_id: str) -> Any:
    c = ctx()
    table = _table(c, "alert_channels")
    current = table.get(channel_id)
    if current is None:
        raise NotFound("channel")
    errors: dict[str, str] = {}
    body = _body(CHANNEL_FIELDS, errors)
    # Without a URL (or with the masked one sent back) the stored secret is kept.
    clean, invalid = validate_channel({"name": current.get("name"), "enabled": current.get("enabled", True), **body},
                                      url_required=False)
    _check_address(c, clean, invalid)
    _refuse(errors, invalid)
    clean["id"] = channel_id
    stored = channel_to_stored(clean, c.box, existing=current)
    table.put(stored)
    record("channel.update", channel_id, body)
    return jsonify(mask_channel(stored))


def _check_address(c: WebContext, clean: Mapping[str, Any], errors: dict[str, str]) -> None:
    """Refuse a webhook aimed at this host, link-local (cloud metadata) or multicast addresses."""
    if clean.get("url") and "url" not in errors:
        policy = AddressPolicy.of(c.settings.allowed_device_networks)
        if refused := address_refusal(clean["url"], policy):
            errors["url"] = refused


@bp.delete("/api/alerts/channels/<channel_id>")
def delete_channel(channel_id: str) -> Any:
    c = ctx()
    if not _table(c, "alert_channels").delete(channel_id):
        raise NotFound("channel")
    rules = _table(c, "alert_rules")
    for rule in rules.list():  # no rule keeps pointing at a channel that is gone
        if channel_id in (rule.get("channel_ids") or []):
            rules.put({**rule, "channel_ids": [x for x in rule["channel_ids"] if x != channel_id]})
    log.info("alert channel %s deleted", channel_id)
    record("channel.delete", channel_id)
    return jsonify({"deleted": channel_id})


@bp.post("/api/alerts/channels/<channel_id>/test")
def test_channel(channel_id: str) -> Any:
    c = ctx()
    channel = _table(c, "alert_channels").get(channel_id)
    if channel is None:
        raise NotFound("channel")
    # An explicit admin action, like "test connection": the one send the web makes itself.
    policy = AddressPolicy.of(c.settings.allowed_device_networks)
    ok, error = send_test(channel, c.box, c.current_settings().base_url, policy)
    return jsonify({"ok": ok, "error": error})


# ---- maintenance windows -------------------------------------------------------------------


@bp.get("/api/alerts/maintenance")
def list_windows() -> Any:
    return jsonify({"windows": _table(ctx(), "maintenance_windows").list()})


@bp.post("/api/alerts/maintenance")
def create_window() -> Any:
    c = ctx()
    errors: dict[str, str] = {}
    clean, invalid = validate_maintenance(_body(WINDOW_FIELDS, errors))
    _check_refs(c, clean, invalid)
    _refuse(errors, invalid)
    clean.pop("id", None)
    window_id = _table(c, "maintenance_windows").put(clean)
    record("maintenance.create", window_id, clean)
    return jsonify({"id": window_id, **clean}), 201


@bp.delete("/api/alerts/maintenance/<window_id>")
def delete_window(window_id: str) -> Any:
    if not _table(ctx(), "maintenance_windows").delete(window_id):
        raise NotFound("maintenance window")
    record("maintenance.delete", window_id)
    return jsonify({"deleted": window_id})
