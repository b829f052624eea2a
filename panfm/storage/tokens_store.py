"""Personal API tokens (`api_tokens` in config.db): only a SHA-256 digest of each secret is stored.

The web (panfm/web/tokens.py) makes the secret, shows it once and decides who may use it;
this store keeps the digest with its owner, name, role, expiry and last use. Its DDL is in
`config_schema.MIGRATIONS` (version 3), config.db's one migration list, and on PostgreSQL in
`config_schema.PG_MIGRATIONS` (version 4): the same class serves both through the backend's handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panfm.storage import config_store
from panfm.storage.backend import Backend

_COLS = "t.id, t.username, t.name, t.role, t.created_at, t.expires_at, t.last_used"


@dataclass(frozen=True)
class TokenRecord:
    """One token as stored, without its digest; `user_role`/`user_disabled` are its owner's now."""

    id: str
    username: str
    name: str
    role: str
    created_at: float
    expires_at: float | None
    last_used: float | None
    user_role: str | None = None
    user_disabled: bool = True


def _record(row: Any, with_user: bool = False) -> TokenRecord:
    def opt(v: object) -> float | None:
        return None if v is None else float(v)  # type: ignore[arg-type]

    user_role = str(row["user_role"]) if with_user and row["user_role"] is not None else None
    user_disabled = bool(row["user_disabled"]) if with_user and row["user_disabled"] is not None else True
    return TokenRecord(str(row["id"]), str(row["username"]), str(row["name"]), str(row["role"]),
                       float(row["created_at"]), opt(row["expires_at"]), opt(row["last_used"]), user_role,
                       user_disabled)


class TokenStore:
    """Create, find, list and delete API tokens; each method is one short transaction."""

    def __init__(self, data_dir: Path, backend: Backend | None = None) -> None:
        self.data_dir = data_dir
        self.handle = config_store.handle(backend or data_dir)

    def create(self, record: TokenRecord, token_hash: str, limit: int) -> bool:
        """Store a token unless its owner already holds `limit` tokens (False: nothing stored)."""
        with self.handle.write() as conn:
            if self.handle.on_postgres:
                # Serialise the count-then-insert of every web process (SQLite: BEGIN IMMEDIATE does).
                conn.execute("LOCK TABLE api_tokens IN SHARE ROW EXCLUSIVE MODE")
            held = conn.execute("SELECT count(*) AS n FROM api_tokens WHERE username = ?",
                                (record.username,)).fetchone()["n"]
            if held >= limit:
                return False
            conn.execute(
                "INSERT INTO api_tokens (id, token_hash, username, name, role, created_at, expires_at, last_used)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (record.id, token_hash, record.username, record.name, record.role, record.created_at,
                 record.expires_at),
            )
        return True

    def find(self, token_hash: str) -> TokenRecord | None:
        """The token with this digest and its owner's current role and state, or None (read-only)."""
        with self.handle.read() as conn:
            row = conn.execute(
                f"SELECT {_COLS}, u.role AS user_role, u.disabled AS user_disabled FROM api_tokens t"  # noqa: S608  # nosec B608
                " LEFT JOIN users u ON u.username = t.username WHERE t.token_hash = ?",
                (token_hash,),
            ).fetchone()
        return _record(row, with_user=True) if row else None

    def list(self, username: str | None) -> list[TokenRecord]:
        """The tokens of one user (None: of everyone), newest first."""
        with self.handle.read_write() as conn:
            if username is None:
                rows = conn.execute(f"SELECT {_COLS} FROM api_tokens t ORDER BY t.created_at DESC").fetchall()  # noqa: S608  # nosec B608
            else:
                rows = conn.execute(
                    f"SELECT {_COLS} FROM api_tokens t WHERE t.username = ? ORDER BY t.created_at DESC",  # noqa: S608  # nosec B608
                    (username,),
                ).fetchall()
        return [_record(r) for r in rows]

    def get(self, token_id: str) -> TokenRecord | None:
        with self.handle.read_write() as conn:
            row = conn.execute(f"SELECT {_COLS} FROM api_tokens t WHERE t.id = ?", (token_id,)).fetchone()  # noqa: S608  # nosec B608
        return _record(row) if row else None

    def delete(self, token_id: str) -> bool:
        """Revoke a token: its row is gone, so its secret never matches again."""
        with self.handle.write() as conn:
            cur = conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
            return int(cur.rowcount) > 0

    def touch(self, token_id: str, now: float, every_s: float) -> None:
        """Record a use, at most once per `every_s` (a write per API call would serialise every worker)."""
        with self.handle.write() as conn:
            conn.execute(
                "UPDATE api_tokens SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)",
                (now, token_id, now - every_s),
            )
