"""The audit trail (`audit_log` in config.db): who did what, when, with the fields changed.

Entries are keyed by `t`, epoch microseconds made unique and increasing inside the write
transaction, so paging with "entries before t" never skips or repeats one. The DDL is in
`config_store.MIGRATIONS` (version 3). The web writes entries; the clock's nightly cleanup
applies the retention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panfm.storage.sqlite as sqlite_db
from panfm.storage import config_store


@dataclass(frozen=True)
class AuditEntry:
    t_us: int  # epoch microseconds, unique
    actor: str
    action: str
    target: str
    fields: dict[str, Any]


class AuditLog:
    """Append entries, read them newest first, drop the ones past retention."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def append(self, actor: str, action: str, target: str, fields: dict[str, Any], now: float) -> int:
        """Add one entry at `now` (or just after the newest one); return its `t` in microseconds."""
        t_us = int(now * 1_000_000)
        conn = config_store.connect(self.data_dir)
        try:
            with sqlite_db.transaction(conn):
                (newest,) = conn.execute("SELECT max(t) FROM audit_log").fetchone()
                if newest is not None and t_us <= newest:
                    t_us = int(newest) + 1  # same microsecond, or a clock step back: keep order
                conn.execute("INSERT INTO audit_log (t, actor, action, target, fields) VALUES (?, ?, ?, ?, ?)",
                             (t_us, actor, action, target, json.dumps(fields, sort_keys=True)))
        finally:
            conn.close()
        return t_us

    def page(self, before_us: int | None, limit: int) -> list[AuditEntry]:
        """Up to `limit` entries older than `before_us` (None: the newest), newest first."""
        conn = config_store.connect(self.data_dir)
        try:
            if before_us is None:
                rows = conn.execute("SELECT t, actor, action, target, fields FROM audit_log ORDER BY t DESC LIMIT ?",
                                    (limit,)).fetchall()
            else:
                rows = conn.execute(
                    "SELECT t, actor, action, target, fields FROM audit_log WHERE t < ? ORDER BY t DESC LIMIT ?",
                    (before_us, limit),
                ).fetchall()
        finally:
            conn.close()
        return [AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), json.loads(r[4])) for r in rows]

    def cleanup(self, now: float, retention_days: int) -> int:
        """Delete entries older than `retention_days`; return how many."""
        cutoff = int((now - retention_days * 86400) * 1_000_000)
        conn = config_store.connect(self.data_dir)
        try:
            with sqlite_db.transaction(conn):
                cur = conn.execute("DELETE FROM audit_log WHERE t < ?", (cutoff,))
        finally:
            conn.close()
        return cur.rowcount
