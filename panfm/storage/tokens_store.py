"""Personal API tokens (`api_tokens` in config.db): only a SHA-256 digest of each secret is stored.

The web (panfm/web/tokens.py) makes the secret, shows it once and decides who may use it;
this store keeps the digest with its owner, name, role, expiry and last use. Its DDL is in
`config_store.MIGRATIONS` (version 3), config.db's one migration list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import panfm.storage.sqlite as sqlite_db
from panfm.storage import config_store

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


def _record(row: Sequence[object], with_user: bool = False) -> TokenRecord:
    def opt(v: object) -> float | None:
        return None if v is None else float(v)  # type: ignore[arg-type]

    user_role = str(row[7]) if with_user and row[7] is not None else None
    user_disabled = bool(row[8]) if with_user and row[8] is not None else True
    return TokenRecord(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]),  # type: ignore[arg-type]
                       opt(row[5]), opt(row[6]), user_role, user_disabled)


class TokenStore:
    """Create, find, list and delete API tokens; each method is one short transaction."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def create(self, record: TokenRecord, token_hash: str, limit: int) -> bool:
        """Store a token unless its owner already holds `limit` tokens (False: nothing stored)."""
        conn = config_store.connect(self.data_dir)
        try:
            with sqlite_db.transaction(conn):
                (held,) = conn.execute("SELECT count(*) FROM api_tokens WHERE username = ?",
                                       (record.username,)).fetchone()
                if held >= limit:
                    return False
                conn.execute(
                    "INSERT INTO api_tokens (id, token_hash, username, name, role, created_at, expires_at, last_used)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (record.id, token_hash, record.username, record.name, record.role, record.created_at,
                     record.expires_at),
                )
        finally:
            conn.close()
        return True

    def find(self, token_hash: str) -> TokenRecord | None:
        """The token with this digest and its owner's current role and state, or None (read-only)."""
        conn = config_store.connect(self.data_dir, readonly=True)
        try:
            row = conn.execute(
                f"SELECT {_COLS}, u.role, u.disabled FROM api_tokens t"  # noqa: S608  # nosec B608
                " LEFT JOIN users u ON u.username = t.username WHERE t.token_hash = ?",
                (token_hash,),
            ).fetchone()
        finally:
            conn.close()
        return _record(row, with_user=True) if row else None

    def list(self, username: str | None) -> list[TokenRecord]:
        """The tokens of one user (None: of everyone), newest first."""
        conn = config_store.connect(self.data_dir)
        try:
            if username is None:
                rows = conn.execute(f"SELECT {_COLS} FROM api_tokens t ORDER BY t.created_at DESC").fetchall()  # noqa: S608  # nosec B608
            else:
                rows = conn.execute(
                    f"SELECT {_COLS} FROM api_tokens t WHERE t.username = ? ORDER BY t.created_at DESC",  # noqa: S608  # nosec B608
                    (username,),
                ).fetchall()
        finally:
            conn.close()
        return [_record(r) for r in rows]

    def get(self, token_id: str) -> TokenRecord | None:
        conn = config_store.connect(self.data_dir)
        try:
            row = conn.execute(f"SELECT {_COLS} FROM api_tokens t WHERE t.id = ?", (token_id,)).fetchone()  # noqa: S608  # nosec B608
        finally:
            conn.close()
        return _record(row) if row else None

    def delete(self, token_id: str) -> bool:
        """Revoke a token: its row is gone, so its secret never matches again."""
        conn = config_store.connect(self.data_dir)
        try:
            with sqlite_db.transaction(conn):
                cur = conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
        finally:
            conn.close()
        return cur.rowcount > 0

    def touch(self, token_id: str, now: float, every_s: float) -> None:
        """Record a use, at most once per `every_s` (a write per API call would serialise every worker)."""
        conn = config_store.connect(self.data_dir)
        try:
            with sqlite_db.transaction(conn):
                conn.execute(
                    "UPDATE api_tokens SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)",
                    (now, token_id, now - every_s),
                )
        finally:
            conn.close()
