"""Users, login throttling, server-side sessions, the login gate and the auth JSON API.

Users and login failures live in `config.db`, sessions in `web_sessions.db`; the SQL is in
`panfm/storage/auth_store.py` (UserStore, LoginFailures, SessionStore), the decisions here. The cookie carries a random
session id only, so logging out (or changing the password) really ends a session, even one
whose cookie was copied.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Flask, Response, current_app, jsonify, request, session
from flask_wtf.csrf import CSRFProtect, generate_csrf
from werkzeug.wrappers import Response as BaseResponse

from panfm.web.audit import printable, record
from panfm.web.identity import SessionUser, current_user
from panfm.web.security import api_error
from throughput_storage import (
    CONFIG_DB,
    DatabaseError,
    LoginFailures,
    SessionStore,
    Stores,
    UserStore,
    check_usable,
    database_away,
)

log = logging.getLogger("panfm.web")

THROTTLE_WINDOW_S = 300.0
# Hard gates answer 429: they stop one address, never an account. A per-account lock would let
# anyone lock the only admin out, from anywhere, with ten wrong passwords.
MAX_FAILURES_PER_PAIR = 10  # one account from one address
MAX_FAILURES_PER_ADDRESS = 30  # one address across accounts
# Past this many failures from all addresses, each attempt on the account waits (see account_delay).
ACCOUNT_FREE_FAILURES = 10
ACCOUNT_DELAY_BASE_S = 0.25
ACCOUNT_DELAY_CAP_S = 3.0  # small: the right password from elsewhere must still get in quickly
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything, but a megabyte password is an attack, not a password
SESSION_TTL_S = 24 * 3600.0

bp = Blueprint("auth", __name__)


class Throttled(Exception):
    """Too many recent login failures from this client address (for one account, or for all)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed logins")
        self.retry_after = retry_after


def account_delay(failures: int) -> float:
    """Seconds an attempt on an account waits, given its failures in the window from all addresses.

    Doubles from ACCOUNT_DELAY_BASE_S per failure past ACCOUNT_FREE_FAILURES, capped at
    ACCOUNT_DELAY_CAP_S: slows a guesser spread over many addresses without ever refusing the
    account's owner.
    """
    over = failures - ACCOUNT_FREE_FAILURES
    if over < 0:
        return 0.0
    return min(ACCOUNT_DELAY_CAP_S, ACCOUNT_DELAY_BASE_S * 2.0 ** min(over, 16))


@dataclass(frozen=True)
class Attempt:
    """One login attempt recorded as a failure until it succeeds: its keys, time and wait."""

    keys: tuple[str, ...]
    ts: float
    delay_s: float


class Auth:
    """Password checks, throttling and sessions over one data folder (one per app)."""

    def __init__(
        self,
        data_dir: Path,
        clock: Callable[[], float],
        hasher: PasswordHasher | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stores: Stores | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.sleep = sleep
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._dummy_hash: str | None = None
        # Refuse to start on a damaged file, naming it, rather than fail on the first login.
        if stores is not None:  # the app's stores: SQLite files or PostgreSQL (database_url)
            if not stores.on_postgres:
                check_usable(data_dir / CONFIG_DB)
            self.users, self.failures, self.sessions = stores.users(), stores.login_failures(), stores.sessions()
            return
        check_usable(data_dir / CONFIG_DB)
        self.users = UserStore(data_dir)
        self.failures = LoginFailures(data_dir)
        self.sessions = SessionStore(data_dir)

    # ---- users ---------------------------------------------------------------------

    def ensure_admin(self, password: str) -> str | None:
        """Create `admin` when no user exists; return the generated password (None if given or existing)."""
        generated = None if password else secrets.token_urlsafe(15)
        chosen = password or generated or ""
        if not self.users.create_first("admin", self.hasher.hash(chosen), self.clock()):
            return None
        return generated

    def _verify(self, stored: str | None, password: str) -> bool:
        if stored is None:
            # Spend the same time on unknown users, so timing does not reveal which names exist.
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
            stored = self._dummy_hash
            password = password + "\0unknown"
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def login(self, username: str, password: str, address: str) -> SessionUser:
        """Check a password under the throttle; return the user or raise PermissionError / Throttled."""
        account = username.casefold()
        attempt = self._reserve_attempt(account, address)
        if attempt.delay_s:
            # Before the check, for right and wrong passwords alike: a guesser who hangs up early
            # must not learn the answer sooner than one who waits.
            self.sleep(attempt.delay_s)
        found = self.users.password_of(username)  # None for a disabled user: it cannot log in
        if not self._verify(found[0] if found else None, password) or found is None:
            log.info("failed login for account %r from %s", username[:64], address)
            raise PermissionError("invalid username or password")
        self._forget_failures(attempt)
        if self.hasher.check_needs_rehash(found[0]):
            self._set_hash(username, self.hasher.hash(password), must_change=found[1])
        found_account = self.users.account(username)
        return SessionUser(username, found[1], found_account.role if found_account else "viewer")

    def _reserve_attempt(self, account: str, address: str) -> Attempt:
        """Apply the gates, then record this attempt as a failure, atomically across processes.

        1. (account, address) and address alone are hard gates: past their limit, Throttled (429).
        2. The account's failures from every address only set a delay (`account_delay`), so
           an attacker can never lock the owner out, from another address, with the right password.
        The store checks and records in one write transaction, which is what makes the limits
        hold when several gunicorn workers receive guesses at the same moment; a successful
        login removes its reservation again.
        """
        pair, addr, acct = f"pair:{address} {account}", "addr:" + address, "account:" + account
        now = self.clock()
        gates = ((pair, MAX_FAILURES_PER_PAIR), (addr, MAX_FAILURES_PER_ADDRESS))
        found = self.failures.reserve(gates, acct, now, THROTTLE_WINDOW_S)
        if found.retry_after is not None:
            raise Throttled(found.retry_after)
        reaching, failures, keys = found.reaching, found.account_failures, (pair, addr, acct)
        minutes = int(THROTTLE_WINDOW_S // 60)
        for key in reaching:
            # Once, when the limit is reached: later refusals are not recorded, so not logged either.
            log.warning("login throttled for %r after too many failures in %d minutes: 429 until they age out",
                        key[:128], minutes)
        delay = account_delay(failures)
        if failures == ACCOUNT_FREE_FAILURES or (delay and failures % 100 == 0):
            # At the start of a slowdown and every 100 failures after: a line per guess would flood.
            log.warning(
                "login throttled for account %r: %d failures from all addresses in %d minutes;"
                " each attempt waits %.2f s (at most %.1f s)",
                account[:64], failures, minutes, delay, ACCOUNT_DELAY_CAP_S,
            )
        return Attempt(keys, now, delay)

    def _forget_failures(self, attempt: Attempt) -> None:
        pair, addr, acct = attempt.keys
        # A success clears this address's count for the account, and only this attempt's
        # reservation elsewhere: the owner logging in must not reset an attacker's slowdown.
        self.failures.forget(pair, (addr, acct), attempt.ts)

    def change_password(self, username: str, old: str, new: str, address: str) -> None:
        """Replace a user's password after checking the old one (throttled like a login)."""
        self.login(username, old, address)
        self._set_hash(username, self.hasher.hash(new), must_change=False)

    def _set_hash(self, username: str, password_hash: str, *, must_change: bool) -> None:
        self.users.set_password(username, password_hash, must_change=must_change, now=self.clock())

    def reset_password(self, username: str, password: str) -> None:
        """An admin's reset: a new password that must be changed at the next login; every session ends."""
        self._set_hash(username, self.hasher.hash(password), must_change=True)
        self.end_sessions(username)

    def end_sessions(self, username: str) -> None:
        """End every session of a user (disabled, deleted, demoted or reset by an admin)."""
        self.sessions.keep_only(username, "")

    # ---- sessions ------------------------------------------------------------------

    @staticmethod
    def _digest(sid: str) -> str:
        # Store only a digest: a stolen web_sessions.db must not yield live cookies.
        return hashlib.sha256(sid.encode()).hexdigest()

    def open_session(self, user: SessionUser) -> str:
        """Start a server-side session and return its new random id."""
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        self.sessions.open(self._digest(sid), user.username, user.must_change_password, now, now + SESSION_TTL_S)
        return sid

    def session_user(self, sid: str) -> SessionUser | None:
        """The user of a live session id, or None when unknown or expired."""
        found = self.sessions.user_of(self._digest(sid), self.clock())
        if not found:
            return None
        # The role is read now, not at login: a demotion or a disable takes effect at once.
        account = self.users.account(found[0])
        if account is None or account.disabled:
            return None
        return SessionUser(found[0], found[1], account.role)

    def spend(self, sid: str, action: str, limit: int, window_s: float) -> int | None:
        """Count one `action` of a session; None when within `limit` per `window_s`, else seconds to wait.

        Counted in web_sessions.db inside one write transaction, so every worker sees the same
        count and two requests at the same moment cannot both take the last slot.
        """
        return self.sessions.spend(self._digest(sid), action, limit, window_s, self.clock())

    def hit(self, key: str, limit: int, window_s: int) -> int | None:
        """Count one request of `key` (an API token's id) per fixed window; None within `limit`, else seconds."""
        return self.sessions.hit(key, limit, window_s, self.clock())

    def close_session(self, sid: str) -> None:
        self.sessions.close(self._digest(sid))

    def password_changed(self, username: str, keep_sid: str) -> None:
        """End every other session of the user and clear the must-change flag on this one."""
        self.sessions.keep_only(username, self._digest(keep_sid))


def auth_of_app() -> Auth:
    auth: Auth = current_app.extensions["panfm_auth"]
    return auth


def _json_body() -> dict[str, Any] | BaseResponse | tuple[Response, int]:
    if request.mimetype != "application/json":
        return api_error(415, "unsupported_media_type", "Send the body as application/json.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return api_error(400, "invalid_json", "The body must be a JSON object.")
    return body


def _text_fields(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    errors = {}
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            errors[name] = "required text"
        elif len(value) > MAX_PASSWORD_LENGTH:
            errors[name] = f"at most {MAX_PASSWORD_LENGTH} characters"
    return errors


def _throttled(exc: Throttled) -> tuple[Response, int]:
    resp, status = api_error(429, "too_many_attempts", "Too many failed logins; try again later.")
    resp.headers["Retry-After"] = str(exc.retry_after)
    return resp, status


@bp.post("/api/login")
def api_login() -> Any:
    body = _json_body()
    if not isinstance(body, dict):
        return body
    errors = _text_fields(body, ("username", "password"))
    if errors:
        return api_error(400, "invalid", "Username and password are required.", fields=errors)
    auth = auth_of_app()
    try:
        user = auth.login(body["username"], body["password"], request.remote_addr or "unknown")
    except Throttled as exc:
        return _throttled(exc)
    except PermissionError:
        record("login.failed", "session", {"address": request.remote_addr or "unknown"},
               actor=printable(body["username"]))
        return api_error(401, "invalid_credentials", "Invalid username or password.")
    old = session.get("sid")
    if isinstance(old, str):
        auth.close_session(old)
    # A fresh session (new id, new CSRF token) defeats session fixation.
    session.clear()
    session["sid"] = auth.open_session(user)
    session.permanent = True
    log.info("login of %r from %s", user.username, request.remote_addr)
    record("login", "session", {"address": request.remote_addr or "unknown"}, actor=user.username)
    return jsonify({"csrf_token": generate_csrf(), "must_change_password": user.must_change_password})


@bp.post("/api/logout")
def api_logout() -> Any:
    sid = session.get("sid")
    if isinstance(sid, str):
        auth_of_app().close_session(sid)
    session.clear()
    return jsonify({"logged_out": True})


@bp.post("/api/change-password")
def api_change_password() -> Any:
    user = current_user()
    sid = session.get("sid")
    if user is None or not isinstance(sid, str):  # the gate lets none through; never rely on that alone
        return api_error(401, "unauthorized", "Log in first.")
    body = _json_body()
    if not isinstance(body, dict):
        return body
    errors = _text_fields(body, ("old_password", "new_password"))
    new = body.get("new_password")
    if "new_password" not in errors and isinstance(new, str):
        if len(new) < MIN_PASSWORD_LENGTH:
            errors["new_password"] = f"at least {MIN_PASSWORD_LENGTH} characters"
        elif new == body.get("old_password"):
            errors["new_password"] = "must differ from the current password"  # noqa: S105 (a message)  # nosec B105
    if errors:
        return api_error(400, "invalid", "Check the highlighted fields.", fields=errors)
    auth = auth_of_app()
    try:
        auth.change_password(user.username, body["old_password"], new, request.remote_addr or "unknown")  # type: ignore[arg-type]
    except Throttled as exc:
        return _throttled(exc)
    except PermissionError:
        return api_error(
            400, "invalid", "The current password is wrong.", fields={"old_password": "wrong password"}  # nosec B105
        )
    auth.password_changed(user.username, keep_sid=sid)
    log.info("password changed for %r", user.username)
    record("user.change_password", user.username, {"password": "(set)"})  # nosec B105 (a marker, no password)
    return jsonify({"changed": True, "must_change_password": False})  # nosec B105


def init_auth(app: Flask, auth: Auth, csrf: CSRFProtect, admin_password: str,
              probe_database: Callable[[], str | None] | None = None) -> None:
    """Install the gate and the auth API, and create the first user when there is none.

    `probe_database`: a quick probe of the shared database on a connection of its own (None: it
    answers; else why not). When it says the database is away the boot does not try (a pooled
    read would wait the pool's whole timeout) and the first-user check waits for a login.
    """
    app.extensions["panfm_auth"] = auth
    # The login has no session yet, so no token; requiring application/json stops cross-site forms.
    csrf.exempt(api_login)
    app.register_blueprint(bp)
    away = probe_database() if probe_database is not None else None
    if away is not None:
        log.warning("[WEB] the database is away (%s): the first-user check runs again at the next login", away)
    elif _ensure_admin(auth, admin_password):
        return
    # The database is away while this worker boots (PostgreSQL restarting as gunicorn forks it
    # again): boot anyway, answer 503 meanwhile, and make sure of the first user at a login, the
    # one request that needs it (any other, /api/health first, must not wait for the database).
    pending, done = threading.Lock(), threading.Event()
    login = f"{bp.name}.{api_login.__name__}"

    @app.before_request
    def ensure_admin_later() -> None:
        if request.endpoint != login or done.is_set():
            return
        if pending.acquire(blocking=False):  # one login tries at a time
            try:
                if _ensure_admin(auth, admin_password):
                    done.set()
            finally:
                pending.release()


def _ensure_admin(auth: Auth, admin_password: str) -> bool:
    """Create the first user if there is none; False (and a warning) while the database is away."""
    try:
        generated = auth.ensure_admin(admin_password)
    except DatabaseError as exc:
        if not database_away(exc):
            raise
        log.warning("[WEB] the database is away (%s): the first-user check runs again at the next login", exc)
        return False
    if generated:
        # Shown exactly once, by design: the operator needs it for the first login.
        log.warning("created user 'admin' with the initial password: %s (you must change it at first login)", generated)
    return True
