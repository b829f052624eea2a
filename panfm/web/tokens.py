"""Personal API tokens: `Authorization: Bearer pfm_...`, and `GET/POST /api/tokens`, `DELETE /api/tokens/<id>`.

A token is `pfm_` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: with
that much entropy nobody can guess it back from the digest, so a slow hash (argon2) would add
~50 ms and 64 MiB per API call and stop the indexed lookup by digest, and protect nothing more.
The secret is in the 201 answer of the POST, and nowhere else, ever.

A token acts with the lower of its own role and its owner's role now: demoting a user demotes
their tokens, disabling or deleting the user kills them. Tokens travel only in the header; one
in a URL query (where proxies and logs keep it) is refused.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.wrappers import Response as BaseResponse

from panfm.timefmt import iso_s
from panfm.web.audit import record
from panfm.web.identity import SessionUser, current_user
from panfm.web.roles import RANK, ROLES
from panfm.web.security import api_error
from throughput_storage import TokenRecord, TokenStore

log = logging.getLogger("panfm.web")

bp = Blueprint("tokens", __name__)

PREFIX = "pfm_"
TOKEN_SHAPE = re.compile(r"pfm_[A-Za-z0-9_-]{43}")
MAX_TOKENS_PER_USER = 100
MAX_NAME = 64
MAX_HEADER_TOKEN = 200  # a bearer value longer than this is no token of ours: refuse before hashing
LAST_USED_EVERY_S = 60.0
RATE_WINDOW_S = 60  # a fixed (calendar) minute
# Query names that would carry a token (refused with a clear error rather than ignored).
_QUERY_NAMES = frozenset({"token", "access_token", "api_token", "bearer", "auth", "authorization"})


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def token_store() -> TokenStore:
    store: TokenStore = current_app.extensions["panfm_tokens"]
    return store


def token_in_query() -> bool:
    """Whether the URL query carries something that looks like a token (a name or a value)."""
    for name, value in request.args.items(multi=True):
        if name.lower() in _QUERY_NAMES or TOKEN_SHAPE.search(value) or TOKEN_SHAPE.search(name):
            return True
    return False


def bearer() -> str | None:
    """The bearer value of the Authorization header, or None when there is none."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


class TokenRefused(Exception):
    """The bearer token cannot be used: unknown, revoked, expired, its user disabled, or over its rate."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def response(self) -> BaseResponse:
        resp, status = api_error(self.status, self.code, self.message)
        resp.status_code = status
        if self.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="panfm", error="invalid_token"'
        if self.retry_after is not None:
            resp.headers["Retry-After"] = str(self.retry_after)
        return resp


def authenticate(secret: str, now: float, hit: Any, rate_limit: int) -> SessionUser:
    """The user a bearer token acts as, or TokenRefused; counts the call against the token's rate."""
    if len(secret) > MAX_HEADER_TOKEN or not TOKEN_SHAPE.fullmatch(secret):
        raise TokenRefused(401, "invalid_token", "Unknown or revoked API token.")
    found = token_store().find(digest(secret))
    if found is None:
        raise TokenRefused(401, "invalid_token", "Unknown or revoked API token.")
    if found.expires_at is not None and found.expires_at <= now:
        raise TokenRefused(401, "token_expired", "This API token has expired; create a new one.")
    if found.user_role is None or found.user_disabled:
        raise TokenRefused(401, "user_disabled", "The owner of this API token is disabled or deleted.")
    wait = hit("token:" + found.id, rate_limit, RATE_WINDOW_S)
    if wait is not None:
        raise TokenRefused(429, "rate_limited", f"This API token is limited to {rate_limit} requests per minute.",
                           retry_after=int(wait))
    if found.last_used is None or found.last_used < now - LAST_USED_EVERY_S:
        token_store().touch(found.id, now, LAST_USED_EVERY_S)  # a write at most once a minute per token
    role = min(found.role, found.user_role, key=lambda r: RANK.get(r, -1))
    return SessionUser(found.username, False, role, via="token", token_id=found.id)


def token_json(t: TokenRecord, now: float) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "username": t.username,
        "created_at": iso_s(t.created_at),
        "expires_at": iso_s(t.expires_at),
        "expired": t.expires_at is not None and t.expires_at <= now,
        "last_used": iso_s(t.last_used),
    }


def _clock() -> float:
    now: float = current_app.extensions["panfm"].clock()
    return now


def _parse_expiry(value: Any, now: float) -> float | str | None:
    """Epoch seconds, None (never expires), or an error message."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        return "an ISO-8601 UTC time such as 2027-01-31T00:00:00Z, or null"
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return "an ISO-8601 UTC time such as 2027-01-31T00:00:00Z, or null"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.utcoffset() != UTC.utcoffset(None):
        return "a UTC time (ending in Z)"
    ts = parsed.timestamp()
    if ts <= now:
        return "must be in the future"
    return ts


@bp.get("/api/tokens")
def list_tokens() -> Any:
    user = current_user()
    assert user is not None  # nosec B101 (the gate lets no anonymous request through)
    now = _clock()
    # An admin sees (and may revoke) everyone's tokens; others their own.
    tokens = token_store().list(None if user.role == "admin" else user.username)
    return jsonify({"tokens": [token_json(t, now) for t in tokens]})


@bp.post("/api/tokens")
def create_token() -> Any:
    user = current_user()
    assert user is not None  # nosec B101
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, "invalid", "The body must be a JSON object.", fields={"body": "a JSON object"})
    now = _clock()
    errors: dict[str, str] = {}
    for key in body:
        if key not in ("name", "role", "expires_at"):
            errors[str(key)[:64]] = "unknown field"
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        errors["name"] = f"required text of 1 to {MAX_NAME} characters"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        errors["name"] = "control characters are not allowed"
    role = body.get("role")
    if role not in ROLES:
        errors["role"] = "one of " + ", ".join(ROLES)
    elif RANK[str(role)] > RANK.get(user.role, -1):
        errors["role"] = f"at most your own role ({user.role})"
    expires = _parse_expiry(body.get("expires_at"), now)
    if isinstance(expires, str):
        errors["expires_at"] = expires
    if errors:
        return api_error(400, "invalid", "Check the highlighted fields.", fields=errors)
    secret = PREFIX + secrets.token_urlsafe(32)
    rec = TokenRecord(secrets.token_hex(8), user.username, str(name).strip(), str(role), now,
                      expires if isinstance(expires, float) else None, None)
    if not token_store().create(rec, digest(secret), MAX_TOKENS_PER_USER):
        return api_error(409, "too_many_tokens",
                         f"You hold {MAX_TOKENS_PER_USER} tokens already; revoke one you no longer use.")
    record("token.create", rec.id, {"name": rec.name, "role": rec.role, "expires_at": iso_s(rec.expires_at)})
    log.info("API token %s (%s) created by %r", rec.id, rec.role, user.username)
    # The only place the secret ever appears: it is not stored, logged or shown again.
    return jsonify({**token_json(rec, now), "token": secret}), 201


@bp.delete("/api/tokens/<token_id>")
def delete_token(token_id: str) -> Any:
    user = current_user()
    assert user is not None  # nosec B101
    store = token_store()
    found = store.get(token_id)
    # Someone else's token answers 404 like a missing one: its id tells nothing.
    if found is None or (found.username != user.username and user.role != "admin"):
        return api_error(404, "not_found", "No such token.")
    store.delete(token_id)
    record("token.revoke", token_id, {"name": found.name, "owner": found.username})
    return jsonify({"deleted": token_id})
