"""The OpenAPI 3.1 description of every JSON route (`/api/...`), kept beside the code.

tests/test_openapi.py checks that every `/api/` rule of the app's `url_map` (with each method)
is described here and that every path described exists; schemathesis (tests/test_api_fuzz.py)
checks the live app's answers against it. Each operation names its lowest role
(`x-panfm-role`), read from the one access table (panfm/web/roles.py).
"""

from __future__ import annotations

import re
from typing import Any

from panfm.web.roles import PUBLIC, SESSION_ONLY, required_role

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], props: Schema | None = None, *, extra: bool = True) -> Schema:
    return {"type": "object", "required": required, "properties": props or {}, "additionalProperties": extra}


def _list_of(key: str, item: Schema | None = None) -> Schema:
    return _obj([key], {key: {"type": "array", "items": item or {"type": "object"}}})


_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "description": "ISO-8601 UTC (Z)"}
_ROLE = {"type": "string", "enum": ["admin", "operator", "viewer"]}
_ANY_OBJ = {"type": "object"}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(["error", "message"], {
        "error": {"type": "string", "description": "a stable code: invalid, unauthorized, forbidden, not_found, ..."},
        "message": _STR,
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "one message per field in error"},
        "required_role": {**_ROLE, "description": "with 403 forbidden: the lowest role that is allowed"},
        "role": {**_ROLE, "description": "with 403 forbidden: the caller's role"},
    }),
    "User": _obj(["id", "username", "role", "disabled", "must_change_password", "created_at", "updated_at"], {
        "id": _STR, "username": _STR, "role": _ROLE, "disabled": {"type": "boolean"},
        "must_change_password": {"type": "boolean"}, "created_at": _TIME, "updated_at": _TIME,
    }, extra=False),
    "NewUser": _obj(["username", "password", "role"], {
        "username": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"},
        "password": {"type": "string", "minLength": 12, "maxLength": 1024},
        "role": _ROLE,
    }, extra=False),
    "UserChange": {**_obj([], {
        "role": _ROLE, "disabled": {"type": "boolean"},
        "password": {"type": "string", "minLength": 12, "maxLength": 1024,
                     "description": "an admin's reset: must be changed at the next login"},
    }, extra=False), "minProperties": 1},
    "Token": _obj(["id", "name", "role", "username", "created_at", "expires_at", "expired", "last_used"], {
        "id": _STR, "name": _STR, "role": _ROLE, "username": _STR, "created_at": _TIME, "expires_at": _TIME,
        "expired": {"type": "boolean"}, "last_used": _TIME,
    }, extra=False),
    "CreatedToken": _obj(
        ["id", "name", "role", "username", "created_at", "expires_at", "expired", "last_used", "token"], {
            "id": _STR, "name": _STR, "role": _ROLE, "username": _STR, "created_at": _TIME, "expires_at": _TIME,
            "expired": {"type": "boolean"}, "last_used": _TIME,
            "token": {"type": "string", "pattern": "^pfm_[A-Za-z0-9_-]{43}$", "description": "the secret, shown once"},
        }, extra=False),
    "NewToken": _obj(["name", "role"], {
        "name": {"type": "string", "minLength": 1, "maxLength": 64}, "role": _ROLE,
        "expires_at": {**_TIME, "description": "optional expiry, ISO-8601 UTC in the future; null: never"},
    }, extra=False),
    "AuditEntry": _obj(["t", "actor", "action", "target", "fields"], {
        "t": {"type": "string", "description": "ISO-8601 UTC with microseconds; pass it as `before` to page"},
        "actor": _STR, "action": _STR, "target": _STR, "fields": _ANY_OBJ,
    }, extra=False),
    "Deleted": _obj(["deleted"], {"deleted": _STR}),
    "Health": _obj(["status", "clock", "database"], {"status": {"enum": ["ok", "degraded"]}}),
    "Login": _obj(["username", "password"], {"username": _STR, "password": _STR}),
}

_ERR = {"description": "error", "content": {"application/json": {"schema": _ref("Error")}}}
_ERROR_TEXT = {
    "400": "invalid input (one message per field)", "401": "not logged in, or the token is unknown, expired or its"
    " user disabled", "403": "the role does not allow it (names the role that would)", "404": "no such thing",
    "409": "conflicts with what is stored", "415": "send application/json", "429": "rate limited (Retry-After)",
    "503": "a database cannot be read right now",
}


def _ok(schema: Schema, text: str = "success") -> Schema:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _q(name: str, text: str, required: bool = False, **schema: Any) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": text,
            "schema": {"type": "string", **schema}}


_DEVICE = _q("device_id", "a device id (GET /api/devices)", required=True)
_RANGE = [_q("range", "1h, 6h, 24h, 7d, 30d or 90d (default 1h)", enum=["1h", "6h", "24h", "7d", "30d", "90d"]),
          _q("start", "ISO-8601 UTC start (with end, instead of range)"), _q("end", "ISO-8601 UTC end")]
_BODY_ANY = {"required": True, "content": {"application/json": {"schema": _ANY_OBJ}}}

# (rule, method) -> operation details: summary, answer schema, status, parameters, body, error codes.
OPERATIONS: dict[tuple[str, str], Schema] = {
    ("/api/version", "GET"): {"summary": "PANfm version", "ok": _obj(["version"], {"version": _STR}), "errors": []},
    ("/api/health", "GET"): {"summary": "Liveness: clock heartbeat and database (503 when degraded)",
                             "ok": _ref("Health"), "extra": {"503": _ok(_ref("Health"), "degraded")}, "errors": []},
    ("/api/login", "POST"): {"summary": "Log in (session cookie); answers the CSRF token for later changes",
                             "ok": _obj(["csrf_token", "must_change_password"]), "body": _ref("Login"),
                             "errors": ["400", "401", "415", "429"]},
    ("/api/logout", "POST"): {"summary": "End the session", "ok": _obj(["logged_out"]), "errors": ["400"]},
    ("/api/change-password", "POST"): {
        "summary": "Change your own password (session only)", "ok": _obj(["changed", "must_change_password"]),
        "body": _obj(["old_password", "new_password"], {"old_password": _STR, "new_password": _STR}),
        "errors": ["400", "415", "429"]},
    ("/api/overview", "GET"): {"summary": "Every firewall with its latest sample", "ok": _list_of("devices")},
    ("/api/overview/history", "GET"): {
        "summary": "Fleet totals over a range: each enabled firewall's through-the-box Mbps and sessions on one grid",
        "params": [_q("range", "1h, 24h, 7d or 30d (default 1h)", enum=["1h", "24h", "7d", "30d"])],
        "ok": _obj(["range", "step_s", "t", "devices"]), "errors": ["400"]},
    ("/api/clock", "GET"): {"summary": "The clock's heartbeat and job statistics",
                            "ok": _obj(["running", "heartbeat", "age_seconds", "stats"])},
    ("/api/throughput", "GET"): {"summary": "Latest sample of one firewall", "params": [_DEVICE],
                                 "ok": _obj(["device_id", "age_seconds", "sample"])},
    ("/api/throughput/history", "GET"): {"summary": "Throughput history of one firewall",
                                         "params": [_DEVICE, *_RANGE],
                                         "ok": _obj(["device_id", "tier", "bucket_s", "points"])},
    ("/api/throughput/history/export", "GET"): {
        "summary": "Throughput history as CSV", "params": [_DEVICE, *_RANGE],
        "ok_content": {"text/csv": {"schema": {"type": "string"}}}},
    ("/api/interfaces", "GET"): {"summary": "Interfaces of one firewall with their latest rates",
                                 "params": [_DEVICE], "ok": _list_of("interfaces")},
    ("/api/interfaces/history", "GET"): {
        "summary": "History of one interface", "params": [_DEVICE, _q("name", "interface name", True), *_RANGE],
        "ok": _obj(["device_id", "name", "tier", "bucket_s", "points"])},
    ("/api/devices", "GET"): {"summary": "Devices (never a credential)", "ok": _list_of("devices")},
    ("/api/devices", "POST"): {"summary": "Add a firewall", "ok": _obj(["id"]), "status": "201", "body": _ANY_OBJ,
                               "errors": ["400", "415"]},
    ("/api/devices/test", "POST"): {"summary": "Test a connection to a firewall (the one call the web makes)",
                                    "ok": _ANY_OBJ, "body": _ANY_OBJ, "errors": ["400", "415"]},
    ("/api/devices/<device_id>", "GET"): {"summary": "One device", "ok": _obj(["id", "name", "host", "port"])},
    ("/api/devices/<device_id>", "PUT"): {"summary": "Edit a device", "ok": _obj(["id"]), "body": _ANY_OBJ,
                                          "errors": ["400", "415"]},
    ("/api/devices/<device_id>", "DELETE"): {"summary": "Delete a device", "ok": _ref("Deleted")},
    ("/api/settings", "GET"): {"summary": "Every setting with value, bounds and editability",
                               "ok": _obj(["settings"], {"settings": _ANY_OBJ})},
    ("/api/settings", "PUT"): {"summary": "Change settings", "ok": _obj(["settings"]), "body": _ANY_OBJ,
                               "errors": ["400", "409"]},
    ("/api/alerts/active", "GET"): {"summary": "Active alerts", "ok": _list_of("alerts")},
    ("/api/alerts/history", "GET"): {
        "summary": "Alert history", "ok": _list_of("history"),
        "params": [_q("device_id", "only this device"), _q("since", "ISO-8601 UTC"),
                   _q("severity", "info, warning or critical"), _q("limit", "1 to 1000 (default 500)")]},
    ("/api/alerts/<alert_id>/acknowledge", "POST"): {
        "summary": "Acknowledge an alert (recorded with your user name)",
        "ok": _obj(["id", "acknowledged_by", "at"])},
    ("/api/alerts/rules", "GET"): {"summary": "Alert rules", "ok": _list_of("rules")},
    ("/api/alerts/rules", "POST"): {"summary": "Add an alert rule", "ok": _obj(["id"]), "status": "201",
                                    "body": _ANY_OBJ},
    ("/api/alerts/rules/<rule_id>", "PUT"): {"summary": "Edit an alert rule (partial)", "ok": _obj(["id"]),
                                             "body": _ANY_OBJ},
    ("/api/alerts/rules/<rule_id>", "DELETE"): {"summary": "Delete an alert rule", "ok": _ref("Deleted")},
    ("/api/alerts/rules/apply-template", "POST"): {"summary": "Add the rules of a template",
                                                   "ok": _obj(["template", "rules"]), "status": "201",
                                                   "body": _ANY_OBJ},
    ("/api/alerts/channels", "GET"): {"summary": "Notification channels (URLs masked)", "ok": _list_of("channels")},
    ("/api/alerts/channels", "POST"): {"summary": "Add a channel (Apprise URL)", "ok": _obj(["id"]), "status": "201",
                                       "body": _ANY_OBJ},
    ("/api/alerts/channels/<channel_id>", "PUT"): {"summary": "Edit a channel", "ok": _obj(["id"]), "body": _ANY_OBJ},
    ("/api/alerts/channels/<channel_id>", "DELETE"): {"summary": "Delete a channel", "ok": _ref("Deleted")},
    ("/api/alerts/channels/<channel_id>/test", "POST"): {"summary": "Send a test notification",
                                                         "ok": _obj(["ok", "error"])},
    ("/api/alerts/maintenance", "GET"): {"summary": "Maintenance windows", "ok": _list_of("windows")},
    ("/api/alerts/maintenance", "POST"): {"summary": "Add a maintenance window", "ok": _obj(["id"]), "status": "201",
                                          "body": _ANY_OBJ},
    ("/api/alerts/maintenance/<window_id>", "DELETE"): {"summary": "Delete a maintenance window",
                                                        "ok": _ref("Deleted")},
    ("/api/users", "GET"): {"summary": "Users (never a password hash)", "ok": _list_of("users", _ref("User"))},
    ("/api/users", "POST"): {"summary": "Add a user (must change the password at the first login)",
                             "ok": _ref("User"), "status": "201", "body": _ref("NewUser"), "errors": ["400", "409"]},
    ("/api/users/<user_id>", "PUT"): {"summary": "Change a user's role or state, or reset its password",
                                      "ok": _ref("User"), "body": _ref("UserChange"), "errors": ["400", "409"]},
    ("/api/users/<user_id>", "DELETE"): {"summary": "Delete a user and its tokens", "ok": _ref("Deleted"),
                                         "errors": ["409"]},
    ("/api/tokens", "GET"): {"summary": "Your API tokens (admins: everyone's); never the secret",
                             "ok": _list_of("tokens", _ref("Token"))},
    ("/api/tokens", "POST"): {
        "summary": "Create an API token (session only); the answer's `token` is the only place the secret appears",
        "ok": _ref("CreatedToken"),
        "status": "201", "body": _ref("NewToken"), "errors": ["400", "409"]},
    ("/api/tokens/<token_id>", "DELETE"): {"summary": "Revoke an API token (session only)", "ok": _ref("Deleted")},
    ("/api/audit", "GET"): {
        "summary": "The audit trail, newest first",
        "params": [_q("before", "only entries older than this t (ISO-8601 UTC)"),
                   _q("limit", "1 to 500 (default 100)")],
        "ok": _obj(["entries"], {"entries": {"type": "array", "items": _ref("AuditEntry")}}, extra=False)},
    ("/api/connected-devices", "GET"): {
        "summary": "Connected devices (ARP, DHCP, User-ID) of one firewall, or a search over every firewall",
        "params": [_q("device_id", "one firewall (else q or fleet=1)"), _q("q", "search text (at most 200 characters)"),
                   _q("fleet", "1: every firewall", enum=["1"]),
                   _q("sort", "sort key", enum=["ip", "mac", "hostname", "vendor", "interface", "vlan", "zone", "user",
                                                "first_seen", "last_seen", "device", "lease_expires"]),
                   _q("order", "asc or desc", enum=["asc", "desc"]),
                   _q("seen", "current (default) or all", enum=["current", "all"]),
                   *[_q(f, f"only devices whose {f} is this") for f in
                     ("zone", "vlan", "interface", "vendor", "user", "hostname_source")],
                   _q("randomized", "1: only randomised MACs, 0: none", enum=["0", "1"]),
                   _q("static", "1: only static entries, 0: only dynamic", enum=["0", "1"]),
                   _q("page", "1 or more (default 1)"), _q("per_page", "1 to 1000 (default 100)"),
                   _q("format", "csv: the whole selection as CSV", enum=["csv"])],
        "ok": _obj(["devices", "total", "page", "per_page"]),
        "ok_content_extra": {"text/csv": {"schema": {"type": "string"}}}, "errors": ["400", "404"]},
    ("/api/connected-devices/metadata/<mac>", "PUT"): {
        "summary": "Set a connected device's name, comment, tags or location (by MAC)",
        "ok": _obj(["mac"]), "body": _ANY_OBJ, "errors": ["400"]},
    ("/api/applications", "GET"): {
        "summary": "Top applications and categories of one firewall (ACC reports)",
        "params": [_DEVICE, _q("range", "15m, 1h or 24h (default 1h)", enum=["15m", "1h", "24h"])],
        "ok": _obj(["range", "source", "as_of", "applications", "categories"]), "errors": ["400", "404"]},
    ("/api/threats", "GET"): {
        "summary": "Threat counts, blocked URLs, latest threats of one firewall",
        "params": [_DEVICE, _q("range", "15m, 1h or 24h (default 1h)", enum=["15m", "1h", "24h"])],
        "ok": _obj(["counts", "blocked_urls", "latest", "top_threats", "top_url_categories"]),
        "errors": ["400", "404"]},
    ("/api/logs", "GET"): {
        "summary": "System or traffic log entries of one firewall, as the clock last fetched them",
        "params": [_DEVICE, _q("type", "system or traffic", True, enum=["system", "traffic"]),
                   _q("range", "15m, 1h, 6h or 24h (default 1h)", enum=["15m", "1h", "6h", "24h"]),
                   _q("q", "search text (at most 200 characters)")],
        "ok": _obj(["entries", "cap", "fetched_at"]), "errors": ["400", "404"]},
    ("/api/network/summary", "GET"): {
        "summary": "Per firewall: threat counts and blocked URLs of the last hour (overview tiles)",
        "ok": _obj(["window_s", "devices"])},
    ("/api/openapi.json", "GET"): {"summary": "This description (OpenAPI 3.1)", "ok": _obj(["openapi", "paths"])},
}


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: `<device_id>` becomes `{device_id}`."""
    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule)


def _operation(rule: str, method: str, spec: Schema) -> Schema:
    role = required_role(rule, method) or "none"
    status = spec.get("status", "200")
    ok = {"description": "success", "content": spec["ok_content"]} if "ok_content" in spec else _ok(spec["ok"])
    if "ok_content_extra" in spec:  # a second answer format (`format=csv`)
        ok = {**ok, "content": {**ok["content"], **spec["ok_content_extra"]}}
    responses: Schema = {status: ok, **spec.get("extra", {})}
    errors = list(spec.get("errors", ["400"]))
    if role != PUBLIC:
        errors += ["401", "403", "429"]
    if "<" in rule:
        errors.append("404")
    if rule.startswith("/api/alerts"):
        errors.append("503")
    for code in sorted(set(errors)):
        responses[code] = {**_ERR, "description": _ERROR_TEXT[code]}
    responses["default"] = {**_ERR, "description": "any other error, in the same shape"}
    op: Schema = {
        "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', rule).strip('_')}",
        "summary": spec["summary"],
        "x-panfm-role": role,
        "parameters": list(spec.get("params", [])),
        "responses": responses,
    }
    for name in re.findall(r"<(?:[a-z]+:)?([A-Za-z_]+)>", rule):
        op["parameters"].append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if "body" in spec:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": spec["body"]}}}
    if role == PUBLIC:
        op["security"] = []
    elif (rule, method) in SESSION_ONLY:
        op["security"] = [{"session": []}]
        op["description"] = "Needs a logged-in session (and its CSRF token); an API token is refused (403)."
    return op


def build_spec(version: str) -> Schema:
    """The OpenAPI 3.1 document of the JSON API."""
    paths: dict[str, Schema] = {}
    for (rule, method), spec in OPERATIONS.items():
        paths.setdefault(openapi_path(rule), {})[method.lower()] = _operation(rule, method, spec)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PANfm API",
            "version": version,
            "description": "Monitor Palo Alto Networks firewalls. Roles: viewer (read), operator (alerts), admin"
                           " (everything). Errors answer {\"error\", \"message\"} (+ \"fields\" per field).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a personal API token (pfm_...), in the Authorization header only"},
                "session": {"type": "apiKey", "in": "cookie", "name": "panfm_session",
                            "description": "the browser session of POST /api/login; changes also need X-CSRFToken"},
            },
        },
    }
