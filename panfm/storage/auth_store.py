"""Who may log in: users and login failures (config.db), server-side sessions (web_sessions.db).

The web's login logic (panfm/web/auth.py) decides; these stores load and save, each method in
its own short transaction, so several gunicorn workers see one state. Session ids arrive here
already hashed: a stolen web_sessions.db yields no live cookie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panfm.storage.sqlite as sqlite_db
from panfm.storage import config_store
from panfm.storage.backend import Backend, Conn

SESSIONS_DB = "web_sessions.db"
SESSIONS_MIGRATIONS = [
    "CREATE TABLE IF NOT EXISTS sessions (sid_hash TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " must_change_password INTEGER NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS session_actions (sid_hash TEXT NOT NULL, action TEXT NOT NULL, ts REAL NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS session_actions_by_sid ON session_actions (sid_hash, action, ts)",
    # 3: per-key request counts in fixed windows (API tokens: one upsert per call, not a row each).
    "CREATE TABLE IF NOT EXISTS rate_windows (key TEXT NOT NULL, window_start INTEGER NOT NULL,"
    " hits INTEGER NOT NULL, PRIMARY KEY (key, window_start))",
]
# The same tables on PostgreSQL (component "sessions").
PG_SESSIONS_MIGRATIONS = [
    "CREATE TABLE sessions (sid_hash TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " must_change_password INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
    " expires_at DOUBLE PRECISION NOT NULL);"
    "CREATE TABLE session_actions (sid_hash TEXT NOT NULL, action TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL);"
    "CREATE INDEX session_actions_by_sid ON session_actions (sid_hash, action, ts)",
    # 2: SQLite's 3: per-key request counts in fixed windows (API tokens).
    "CREATE TABLE rate_windows (key TEXT NOT NULL, window_start BIGINT NOT NULL, hits INTEGER NOT NULL,"
    " PRIMARY KEY (key, window_start))",
]


class UserStore:
    """The `users` table of config.db (or PostgreSQL): password hashes and the must-change flag."""

    def __init__(self, data_dir: Path, backend: Backend | None = None) -> None:
        self.data_dir = data_dir
        self.handle = config_store.handle(backend or data_dir)

    def create_first(self, username: str, password_hash: str, now: float) -> bool:
        """Add `username` (must change its password) only when no user exists; True when added.

        Two processes starting together (two webs on PostgreSQL) add one: the second insert
        meets the first one's name and does nothing.
        """
        with self.handle.write() as conn:
            if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone():
                return False
            cur = conn.execute(
                "INSERT INTO users (username, password_hash, must_change_password, created_at, updated_at)"
                " VALUES (?, ?, 1, ?, ?) ON CONFLICT (username) DO NOTHING",
                (username, password_hash, now, now),
            )
            return int(cur.rowcount) == 1

    def password_of(self, username: str) -> tuple[str, bool] | None:
        """(password hash, must change it) of an enabled user, or None when there is no such user or it is disabled."""
        with self.handle.read_write() as conn:
            row = conn.execute(
                "SELECT password_hash, must_change_password FROM users WHERE username = ? AND disabled = 0",
                (username,),
            ).fetchone()
        return (str(row["password_hash"]), bool(row["must_change_password"])) if row else None

    def account(self, username: str) -> Account | None:
        """The role, state and dates of one user (never its hash), or None (read-only: every request asks)."""
        with self.handle.read() as conn:
            row = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM users WHERE username = ?", (username,)).fetchone()  # noqa: S608  # nosec B608
        return _account(row) if row else None

    def accounts(self) -> list[Account]:
        """Every user, by name (never a hash)."""
        with self.handle.read_write() as conn:
            rows = conn.execute(f"SELECT {_ACCOUNT_COLS} FROM users ORDER BY username").fetchall()  # noqa: S608  # nosec B608
        return [_account(r) for r in rows]

    def create(self, username: str, password_hash: str, role: str, *, must_change: bool, now: float) -> bool:
        """Add a user; False when the name is taken (compared without case: `Bob` and `bob` are one person)."""
        with self.handle.write() as conn:
            self._serialise(conn)
            taken = conn.execute("SELECT 1 FROM users WHERE lower(username) = lower(?)", (username,)).fetchone()
            if taken:
                return False
            conn.execute(
                "INSERT INTO users (username, password_hash, must_change_password, created_at, updated_at, role,"
                " disabled) VALUES (?, ?, ?, ?, ?, ?, 0)",
                (username, password_hash, int(must_change), now, now, role),
            )
        return True

    def change(self, username: str, *, role: str | None, disabled: bool | None, now: float) -> str:
        """Set a user's role and/or disabled flag: "ok", "missing", or "last_admin" (nothing changed).

        The check that an enabled admin remains is made inside the write transaction, so two
        admins demoting each other at the same moment cannot both succeed.
        """
        with self.handle.write() as conn:
            self._serialise(conn)
            row = conn.execute("SELECT role, disabled FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                return "missing"
            new_role = role if role is not None else str(row["role"])
            new_disabled = int(disabled) if disabled is not None else int(row["disabled"])
            if not (new_role == "admin" and not new_disabled) and not _other_admin(conn, username):
                return "last_admin"
            conn.execute("UPDATE users SET role = ?, disabled = ?, updated_at = ? WHERE username = ?",
                         (new_role, new_disabled, now, username))
        return "ok"

    def delete(self, username: str) -> str:
        """Delete a user and its API tokens: "ok", "missing", or "last_admin" (nothing deleted)."""
        with self.handle.write() as conn:
            self._serialise(conn)
            if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone() is None:
                return "missing"
            if not _other_admin(conn, username):
                return "last_admin"
            conn.execute("DELETE FROM api_tokens WHERE username = ?", (username,))
            conn.execute("DELETE FROM users WHERE username = ?", (username,))
        return "ok"

    def _serialise(self, conn: Conn) -> None:
        """Make a check-then-write on users one at a time across web processes (SQLite: BEGIN IMMEDIATE does)."""
        if self.handle.on_postgres:
            conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")

    def set_password(self, username: str, password_hash: str, *, must_change: bool, now: float) -> None:
        """Replace a user's password hash and must-change flag."""
        with self.handle.write() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE username = ?",
                (password_hash, int(must_change), now, username),
            )


_ACCOUNT_COLS = "username, role, disabled, must_change_password, created_at, updated_at"


@dataclass(frozen=True)
class Account:
    """A user as the web shows it: no password hash ever leaves the store in one."""

    username: str
    role: str
    disabled: bool
    must_change_password: bool
    created_at: float
    updated_at: float


def _account(row: Any) -> Account:
    return Account(str(row["username"]), str(row["role"]), bool(row["disabled"]), bool(row["must_change_password"]),
                   float(row["created_at"]), float(row["updated_at"]))


def _other_admin(conn: Conn, username: str) -> bool:
    """Whether an enabled admin other than `username` exists (inside the caller's transaction)."""
    row = conn.execute(
        "SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0 AND username != ? LIMIT 1", (username,)
    ).fetchone()
    return row is not None


@dataclass(frozen=True)
class Reservation:
    """What `LoginFailures.reserve` found: a gate's refusal, or the attempt recorded."""

    retry_after: int | None  # a gate is full: seconds until its oldest counted failure ages out; nothing recorded
    reaching: tuple[str, ...] = ()  # gates this attempt filled to their limit
    account_failures: int = 0  # the account key's failures in the window, this attempt not included


class LoginFailures:
    """The `login_failures` table of config.db: failed (or pending) login attempts by key and time."""

    def __init__(self, data_dir: Path, backend: Backend | None = None) -> None:
        self.data_dir = data_dir
        self.handle = config_store.handle(backend or data_dir)

    def reserve(self, gates: Sequence[tuple[str, int]], account_key: str, now: float, window_s: float) -> Reservation:
        """Check the (key, limit) gates, then record the attempt under every key, in one write transaction.

        Checking and recording together is what makes the limits hold when several workers
        receive guesses at the same moment.
        """
        since = now - window_s
        with self.handle.write() as conn:
            if self.handle.on_postgres:
                # Serialise the check-then-record of every web process (SQLite: BEGIN IMMEDIATE does).
                conn.execute("LOCK TABLE login_failures IN SHARE ROW EXCLUSIVE MODE")
            conn.execute("DELETE FROM login_failures WHERE ts < ?", (since,))
            reaching = []
            for key, limit in gates:
                rows = conn.execute(
                    "SELECT ts FROM login_failures WHERE key = ? AND ts >= ? ORDER BY ts", (key, since)
                ).fetchall()
                if len(rows) >= limit:
                    oldest_that_counts = rows[len(rows) - limit]["ts"]
                    return Reservation(max(1, int(oldest_that_counts + window_s - now) + 1))
                if len(rows) + 1 == limit:
                    reaching.append(key)
            failures = conn.execute(
                "SELECT count(*) AS n FROM login_failures WHERE key = ? AND ts >= ?", (account_key, since)
            ).fetchone()["n"]
            keys = [key for key, _ in gates] + [account_key]
            conn.executemany("INSERT INTO login_failures (key, ts) VALUES (?, ?)", [(k, now) for k in keys])
        return Reservation(None, tuple(reaching), int(failures))

    def forget(self, every: str, one_each: Sequence[str], ts: float) -> None:
        """Delete every failure under `every`, and the one recorded at `ts` under each of `one_each`."""
        rowid = self.handle.rowid  # "rowid" or "ctid": a constant, never input
        with self.handle.write() as conn:
            conn.execute("DELETE FROM login_failures WHERE key = ?", (every,))
            for key in one_each:
                conn.execute(
                    f"DELETE FROM login_failures WHERE {rowid} IN (SELECT {rowid} FROM login_failures"  # noqa: S608  # nosec B608
                    " WHERE key = ? AND ts = ? LIMIT 1)",
                    (key, ts),
                )


class SessionStore:
    """web_sessions.db: live sessions by id hash, and per-session action counts (rate limits)."""

    def __init__(self, data_dir: Path, backend: Backend | None = None) -> None:
        self.path = data_dir / SESSIONS_DB
        # Every request checks its session: on SQLite each worker thread keeps its connection.
        self.handle = (backend or Backend(data_dir)).handle(SESSIONS_DB, SESSIONS_MIGRATIONS, keep=True)
        if not self.handle.on_postgres:
            sqlite_db.check_usable(self.path)  # refuse a damaged file at start, naming it
            sqlite_db.connect(self.path, SESSIONS_MIGRATIONS).close()  # create and migrate it now

    def open(self, sid_hash: str, username: str, must_change: bool, now: float, expires_at: float) -> None:
        """Store a new session (and drop the expired ones)."""
        with self.handle.write() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                         (sid_hash, username, int(must_change), now, expires_at))

    def user_of(self, sid_hash: str, now: float) -> tuple[str, bool] | None:
        """(username, must change password) of a live session, or None."""
        with self.handle.read_write() as conn:
            row = conn.execute(
                "SELECT username, must_change_password FROM sessions WHERE sid_hash = ? AND expires_at > ?",
                (sid_hash, now),
            ).fetchone()
        return (str(row["username"]), bool(row["must_change_password"])) if row else None

    def spend(self, sid_hash: str, action: str, limit: int, window_s: float, now: float) -> int | None:
        """Count one `action` of a session; None when within `limit` per `window_s`, else seconds to wait.

        One write transaction: two requests at the same moment cannot both take the last slot.
        """
        with self.handle.write() as conn:
            if self.handle.on_postgres:
                # Serialise the count-then-record of every web process (SQLite: BEGIN IMMEDIATE does).
                conn.execute("LOCK TABLE session_actions IN SHARE ROW EXCLUSIVE MODE")
            conn.execute("DELETE FROM session_actions WHERE ts <= ?", (now - window_s,))
            rows = conn.execute(
                "SELECT ts FROM session_actions WHERE sid_hash = ? AND action = ? ORDER BY ts",
                (sid_hash, action),
            ).fetchall()
            if len(rows) >= limit:
                return max(1, int(rows[0]["ts"] + window_s - now + 0.999))
            conn.execute("INSERT INTO session_actions VALUES (?, ?, ?)", (sid_hash, action, now))
        return None

    def hit(self, key: str, limit: int, window_s: int, now: float) -> int | None:
        """Count one request of `key` in the current fixed window; None within `limit`, else seconds to wait.

        One upsert in one write transaction (all workers share the count); windows older than
        the previous one are dropped on the way.
        """
        start = int(now // window_s) * window_s
        with self.handle.write() as conn:  # SQLite: this thread's kept connection; PostgreSQL: a pooled one
            hits = self._count(conn, key, start, window_s)
        return None if hits <= limit else max(1, int(start + window_s - now + 0.999))

    @staticmethod
    def _count(conn: Conn, key: str, start: int, window_s: int) -> int:
        hits = int(conn.execute(
            "INSERT INTO rate_windows (key, window_start, hits) VALUES (?, ?, 1)"
            " ON CONFLICT (key, window_start) DO UPDATE SET hits = rate_windows.hits + 1 RETURNING hits",
            (key, start),
        ).fetchone()["hits"])
        if hits == 1:
            conn.execute("DELETE FROM rate_windows WHERE window_start < ?", (start - window_s,))
        return hits

    def close(self, sid_hash: str) -> None:
        """End one session."""
        with self.handle.write() as conn:
            conn.execute("DELETE FROM sessions WHERE sid_hash = ?", (sid_hash,))

    def keep_only(self, username: str, keep_hash: str) -> None:
        """End every other session of `username` and clear the must-change flag on the kept one."""
        with self.handle.write() as conn:
            conn.execute("DELETE FROM sessions WHERE username = ? AND sid_hash != ?", (username, keep_hash))
            conn.execute("UPDATE sessions SET must_change_password = 0 WHERE sid_hash = ?", (keep_hash,))
