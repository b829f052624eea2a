"""Who may log in: users and login failures (config.db), server-side sessions (web_sessions.db).

The web's login logic (panfm/web/auth.py) decides; these stores load and save, each method in
its own short transaction, so several gunicorn workers see one state. Session ids arrive here
already hashed: a stolen web_sessions.db yields no live cookie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import panfm.storage.sqlite as sqlite_db
from panfm.storage import config_store
from panfm.storage.backend import Backend

SESSIONS_DB = "web_sessions.db"
SESSIONS_MIGRATIONS = [
    "CREATE TABLE IF NOT EXISTS sessions (sid_hash TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " must_change_password INTEGER NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS session_actions (sid_hash TEXT NOT NULL, action TEXT NOT NULL, ts REAL NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS session_actions_by_sid ON session_actions (sid_hash, action, ts)",
]
# The same tables on PostgreSQL (component "sessions").
PG_SESSIONS_MIGRATIONS = [
    "CREATE TABLE sessions (sid_hash TEXT PRIMARY KEY, username TEXT NOT NULL,"
    " must_change_password INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL,"
    " expires_at DOUBLE PRECISION NOT NULL);"
    "CREATE TABLE session_actions (sid_hash TEXT NOT NULL, action TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL);"
    "CREATE INDEX session_actions_by_sid ON session_actions (sid_hash, action, ts)",
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
        """(password hash, must change it) of a user, or None when there is no such user."""
        with self.handle.read_write() as conn:
            row = conn.execute(
                "SELECT password_hash, must_change_password FROM users WHERE username = ?", (username,)
            ).fetchone()
        return (str(row["password_hash"]), bool(row["must_change_password"])) if row else None

    def set_password(self, username: str, password_hash: str, *, must_change: bool, now: float) -> None:
        """Replace a user's password hash and must-change flag."""
        with self.handle.write() as conn:
            conn.execute(
                "UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE username = ?",
                (password_hash, int(must_change), now, username),
            )


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
        self.handle = (backend or Backend(data_dir)).handle(SESSIONS_DB, SESSIONS_MIGRATIONS)
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

    def close(self, sid_hash: str) -> None:
        """End one session."""
        with self.handle.write() as conn:
            conn.execute("DELETE FROM sessions WHERE sid_hash = ?", (sid_hash,))

    def keep_only(self, username: str, keep_hash: str) -> None:
        """End every other session of `username` and clear the must-change flag on the kept one."""
        with self.handle.write() as conn:
            conn.execute("DELETE FROM sessions WHERE username = ? AND sid_hash != ?", (username, keep_hash))
            conn.execute("UPDATE sessions SET must_change_password = 0 WHERE sid_hash = ?", (keep_hash,))
