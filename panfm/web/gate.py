"""The login gate: who is calling (session or API token), whether their role reaches the route, and CSRF.

One `before_request` for every request, in this order:
1. a token in the URL query: 400 (tokens travel only in the Authorization header);
2. `Authorization: Bearer ...`: the token's user (panfm/web/tokens.py), else the session's;
3. the route's row in the access table (panfm/web/roles.py): none is a 403 for everybody;
4. no user: 401 (API) or the login page; a password to change first: 403 or that page;
5. a session-only route with a token, or a role too low: 403 naming the role that allows it.
Then CSRF is checked for session requests only (a token is not sent by a browser on its own).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import Flask, current_app, g, redirect, request, session
from flask_wtf.csrf import CSRFProtect
from markupsafe import escape

from panfm.web.auth import Auth
from panfm.web.roles import CHANGE_PASSWORD_RULES, PUBLIC, allows, required_role, session_only
from panfm.web.security import api_error, is_api_request
from panfm.web.tokens import TokenRefused, authenticate, bearer, token_in_query
from throughput_storage import DatabaseError, Stores

log = logging.getLogger("panfm.web")

METRICS_RULE = "/metrics"


def url_for_path(path: str, **query: str) -> str:
    """Build a local URL (pages refer to each other by path)."""
    return path + ("?" + urlencode(query) if query else "")


def _forbidden(message: str, code: str, **extra: Any) -> Any:
    if is_api_request():
        return api_error(403, code, message, **extra)
    page = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Forbidden</title></head>"
            f"<body><h1>403 Forbidden</h1><p>{escape(message)}</p><p><a href=\"/\">PANfm</a></p></body></html>")
    return page, 403


def install_db_scope(app: Flask, stores: Stores) -> None:
    """Each request's reads and writes on one database connection (PostgreSQL; a no-op on SQLite).

    Installed before the login gate, whose session and user lookups are a request's first reads.
    The connection is taken at the first read and given back when the request ends.
    """

    @app.before_request
    def open_db_scope() -> None:
        scope = stores.request_scope()
        scope.__enter__()
        g.panfm_db_scope = scope

    @app.teardown_request
    def close_db_scope(_exc: BaseException | None) -> None:
        scope = g.pop("panfm_db_scope", None)
        if scope is None:
            return
        try:
            scope.__exit__(None, None, None)
        except DatabaseError as exc:  # the connection broke with the request: the pool replaces it
            log.warning("[WEB] giving a database connection back failed: %s", exc)


def install_login_gate(app: Flask, auth: Auth, csrf: CSRFProtect) -> None:
    """Require a login and the right role for every endpoint, and CSRF for session changes."""
    # The gate decides which requests need CSRF (session ones), so Flask-WTF's own hook stays off.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False

    @app.before_request
    def login_gate() -> Any:
        g.user = None
        rule = request.url_rule
        if rule is None or request.endpoint == "static":
            return None  # 404/405 or a static file: nothing to protect
        if token_in_query():
            return api_error(400, "token_in_query", "API tokens are accepted only in the Authorization header"
                             " (Authorization: Bearer <token>), never in the URL: revoke a token that was sent there.")
        needed = required_role(rule.rule, request.method)
        secret = bearer()
        try:
            if secret is not None and not (rule.rule == METRICS_RULE and not secret.startswith("pfm_")):
                # /metrics also takes the metrics_token setting, checked by its own route.
                settings = current_app.extensions["panfm"].current_settings()
                try:
                    g.user = authenticate(secret, auth.clock(), auth.hit, settings.api_token_rate_limit)
                except TokenRefused as refused:
                    return refused.response()
            elif secret is None:
                sid = session.get("sid")
                g.user = auth.session_user(sid) if isinstance(sid, str) else None
        except DatabaseError:
            # The users' or sessions' database is away (PostgreSQL restarting): public answers
            # such as /api/health still say so themselves; the rest is 503, never a 500 or a logout.
            if needed != PUBLIC:
                return api_error(503, "database_unavailable", "The database is unavailable; try again shortly.")
            g.user = None
        user = g.user
        if needed is None:
            log.error("no access rule for %s %s: refused to everybody (add it to panfm/web/roles.py)",
                      request.method, rule.rule)
            return _forbidden("This route has no access rule yet.", "no_access_rule")
        if needed == PUBLIC:
            return None
        if user is None:
            if is_api_request():
                return api_error(401, "unauthorized", "Log in first, or send Authorization: Bearer <API token>.")
            return redirect(url_for_path("/login", next=request.full_path.rstrip("?")))
        if user.must_change_password and rule.rule not in CHANGE_PASSWORD_RULES:
            if is_api_request():
                return api_error(403, "must_change_password", "Change the initial password first.")
            return redirect(url_for_path("/change-password"))
        if user.via == "token" and session_only(rule.rule, request.method):
            return _forbidden("This needs a logged-in session; an API token cannot do it.", "session_required")
        if not allows(user.role, needed):
            return _forbidden(f"This needs the {needed} role; you are {user.role}.", "forbidden",
                              required_role=needed, role=user.role)
        return None

    @app.before_request
    def csrf_check() -> None:
        user = g.get("user")
        if user is not None and user.via == "token":
            return  # no cookie involved: a cross-site page cannot make the browser send a token
        csrf.protect(apply_exemptions=True)
