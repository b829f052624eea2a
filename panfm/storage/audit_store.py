"""The audit trail (`audit_log` in config.db): who did what, when, with the fields changed.

Entries are keyed by `t`, epoch microseconds made unique and increasing inside the write
transaction, so paging with "entries before t" never skips or repeats one. The DDL is in
`config_schema.MIGRATIONS` (version 3), and on PostgreSQL in `config_schema.PG_MIGRATIONS`
(version 4, `t` a BIGINT). The web writes entries; the clock's nightly cleanup applies the
retention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panfm.storage import config_store
from panfm.storage.backend import Backend


@dataclass(frozen=True)
class AuditEntry:
    t_us: int  # epoch microseconds, unique
    actor: str
    action: str
    target: str
    fields: dict[str, Any]


class AuditLog:
    """Append entries, read them newest first, drop the ones past retention."""

    def __init__(self, data_dir: Path, backend: Backend | None = None) -> None:
        self.data_dir = data_dir
        self.handle = config_store.handle(backend or data_dir)

    def append(self, actor: str, action: str, target: str, fields: dict[str, Any], now: float) -> int:
        """Add one entry at `now` (or just after the newest one); return its `t` in microseconds."""
        t_us = int(now * 1_000_000)
        with self.handle.write() as conn:
            if self.handle.on_postgres:
                # Serialise the read-newest-then-insert of every web process (SQLite: BEGIN IMMEDIATE does).
                conn.execute("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
            newest = conn.execute("SELECT max(t) AS newest FROM audit_log").fetchone()["newest"]
            if newest is not None and t_us <= newest:
                t_us = int(newest) + 1  # same microsecond, or a clock step back: keep order
            conn.execute("INSERT INTO audit_log (t, actor, action, target, fields) VALUES (?, ?, ?, ?, ?)",
                         (t_us, actor, action, target, json.dumps(fields, sort_keys=True)))
        return t_us

    def page(self, before_us: int | None, limit: int) -> list[AuditEntry]:
        """Up to `limit` entries older than `before_us` (None: the newest), newest first."""
        with self.handle.read_write() as conn:
            if before_us is None:
                rows = conn.execute("SELECT t, actor, action, target, fields FROM audit_log ORDER BY t DESC LIMIT ?",
                                    (limit,)).fetchall()
            else:
                rows = conn.execute(
                    "SELECT t, actor, action, target, fields FROM audit_log WHERE t < ? ORDER BY t DESC LIMIT ?",
                    (before_us, limit),
                ).fetchall()
        return [AuditEntry(int(r["t"]), str(r["actor"]), str(r["action"]), str(r["target"]), json.loads(r["fields"]))
                for r in rows]

    def cleanup(self, now: float, retention_days: int) -> int:
        """Delete entries older than `retention_days`; return how many."""
        cutoff = int((now - retention_days * 86400) * 1_000_000)
        with self.handle.write() as conn:
            return max(int(conn.execute("DELETE FROM audit_log WHERE t < ?", (cutoff,)).rowcount), 0)
