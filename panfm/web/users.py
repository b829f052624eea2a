"""Users JSON API (admins): `GET/POST /api/users`, `PUT/DELETE /api/users/<id>`.

A user's id is its name (names are limited to letters, digits and `._@-`, so they are safe in
a URL). No answer ever carries a password hash. A new user, and a user whose password an
admin resets, must change the password at the next login. The last enabled admin cannot be
disabled, demoted or deleted (checked inside the store's write transaction).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from panfm.timefmt import iso_s
from panfm.web.audit import record
from panfm.web.auth import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Auth
from panfm.web.identity import current_user
from panfm.web.roles import ROLES
from panfm.web.security import api_error
from throughput_storage import Account

log = logging.getLogger("panfm.web")

bp = Blueprint("users", __name__)

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
USERNAME_RULE = "1 to 64 letters, digits or . _ @ - (starting with a letter or digit)"


def username_problem(value: Any) -> str | None:
    """Why `value` is not a usable user name, or None."""
    if not isinstance(value, str) or not value:
        return "required text"
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value):
        return "control characters are not allowed"
    if not USERNAME.fullmatch(value):
        return USERNAME_RULE
    return None


def password_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "required text"
    if not MIN_PASSWORD_LENGTH <= len(value) <= MAX_PASSWORD_LENGTH:
        return f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
    return None


def user_json(a: Account) -> dict[str, Any]:
    """The API shape of a user: never a password hash."""
    return {
        "id": a.username,
        "username": a.username,
        "role": a.role,
        "disabled": a.disabled,
        "must_change_password": a.must_change_password,
        "created_at": iso_s(a.created_at),
        "updated_at": iso_s(a.updated_at),
    }


def _auth() -> Auth:
    auth: Auth = current_app.extensions["panfm_auth"]
    return auth


def _body(allowed: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return {}, {"body": "a JSON object"}
    errors = {str(k)[:64]: "unknown field" for k in body if k not in allowed}
    return body, errors


def _last_admin() -> Any:
    return api_error(409, "last_admin", "This is the last enabled admin: make another user admin first.")


@bp.get("/api/users")
def list_users() -> Any:
    return jsonify({"users": [user_json(a) for a in _auth().users.accounts()]})


@bp.post("/api/users")
def create_user() -> Any:
    body, errors = _body(("username", "password", "role"))
    if "body" not in errors:
        for name, problem in (("username", username_problem(body.get("username"))),
                              ("password", password_problem(body.get("password")))):
            if problem:
                errors[name] = problem
        if body.get("role") not in ROLES:
            errors["role"] = "one of " + ", ".join(ROLES)
    if errors:
        return api_error(400, "invalid", "Check the highlighted fields.", fields=errors)
    auth = _auth()
    username, role = str(body["username"]), str(body["role"])
    if not auth.users.create(username, auth.hasher.hash(str(body["password"])), role, must_change=True,
                             now=auth.clock()):
        return api_error(409, "user_exists", "A user of this name already exists.",
                         fields={"username": "already taken"})
    record("user.create", username, {"role": role, "password": "(set)"})  # nosec B105 (a marker, no password)
    log.info("user %r (%s) created", username, role)
    account = auth.users.account(username)
    assert account is not None  # nosec B101 (just created)
    return jsonify(user_json(account)), 201


@bp.put("/api/users/<user_id>")
def update_user(user_id: str) -> Any:
    auth = _auth()
    if auth.users.account(user_id) is None:
        return api_error(404, "not_found", "No such user.")
    body, errors = _body(("role", "disabled", "password"))
    if "body" not in errors:
        if not body:
            errors["body"] = "name at least one of role, disabled, password"
        if "role" in body and body["role"] not in ROLES:
            errors["role"] = "one of " + ", ".join(ROLES)
        if "disabled" in body and not isinstance(body["disabled"], bool):
            errors["disabled"] = "true or false"
        if "password" in body and (problem := password_problem(body["password"])):
            errors["password"] = problem
    if errors:
        return api_error(400, "invalid", "Check the highlighted fields.", fields=errors)
    role = body.get("role")
    disabled = body.get("disabled")
    if role is not None or disabled is not None:
        outcome = auth.users.change(user_id, role=role, disabled=disabled, now=auth.clock())
        if outcome == "missing":
            return api_error(404, "not_found", "No such user.")
        if outcome == "last_admin":
            return _last_admin()
        if disabled:
            auth.end_sessions(user_id)
    if "password" in body:
        auth.reset_password(user_id, str(body["password"]))
    record("user.update", user_id, body)
    account = auth.users.account(user_id)
    if account is None:
        return api_error(404, "not_found", "No such user.")
    return jsonify(user_json(account))


@bp.delete("/api/users/<user_id>")
def delete_user(user_id: str) -> Any:
    user = current_user()
    if user is not None and user.username == user_id:
        return api_error(409, "own_account", "You cannot delete your own account; another admin can.")
    auth = _auth()
    outcome = auth.users.delete(user_id)
    if outcome == "missing":
        return api_error(404, "not_found", "No such user.")
    if outcome == "last_admin":
        return _last_admin()
    auth.end_sessions(user_id)
    record("user.delete", user_id)
    log.info("user %r deleted", user_id)
    return jsonify({"deleted": user_id})
