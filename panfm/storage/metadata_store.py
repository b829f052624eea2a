"""Per-MAC metadata the admin edits (name, comment, tags, location), in `config.db`.

The web writes it (one short write transaction per edit, or per 1.x import); the web reads it
to show beside every connected device. On PostgreSQL the same table lives in the database
(`config_schema.PG_MIGRATIONS` version 6), through the backend's handle. Keys are MACs in lowercase colon form: callers
normalise first (`panfm.xmlapi.normalize_mac`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from panfm.storage import config_store
from panfm.storage.backend import Backend, Conn

FIELDS = ("name", "comment", "tags", "location")
_UPSERT = (
    "INSERT INTO device_metadata (mac, name, comment, tags, location, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (mac) DO UPDATE SET name = excluded.name, comment = excluded.comment, tags = excluded.tags, "
    "location = excluded.location, updated_at = excluded.updated_at"
)


def empty() -> dict[str, Any]:
    """The metadata of a MAC nobody described."""
    return {"name": None, "comment": None, "tags": [], "location": None}


def _from_row(row: Any) -> dict[str, Any]:
    try:
        tags = json.loads(row["tags"])
    except ValueError:
        tags = []
    return {"name": row["name"], "comment": row["comment"],
            "tags": [str(t) for t in tags] if isinstance(tags, list) else [], "location": row["location"]}


class MetadataStore:
    """device_metadata in config.db (or PostgreSQL); every method opens, uses and closes its own connection."""

    def __init__(self, data_dir: Path, clock: Callable[[], float], backend: Backend | None = None) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.handle = config_store.handle(backend or data_dir)

    def all(self) -> dict[str, dict[str, Any]]:
        """Every described MAC (read-only connection; {} before config.db exists)."""
        if not self.handle.exists():
            return {}
        with self.handle.read() as conn:
            try:
                rows = conn.execute("SELECT * FROM device_metadata").fetchall()
            except sqlite3.OperationalError:  # config.db of an older schema, opened read-only
                return {}
            return {r["mac"]: _from_row(r) for r in rows}

    def _serialise(self, conn: Conn) -> None:
        if self.handle.on_postgres:
            # One read-merge-write at a time across web processes (SQLite: BEGIN IMMEDIATE does).
            conn.execute("LOCK TABLE device_metadata IN SHARE ROW EXCLUSIVE MODE")

    def update(self, mac: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `changes` (validated FIELDS) into the MAC's metadata and return it (one write transaction)."""
        with self.handle.write() as conn:
            self._serialise(conn)
            row = conn.execute("SELECT * FROM device_metadata WHERE mac = ?", (mac,)).fetchone()
            doc = _from_row(row) if row is not None else empty()
            doc.update({k: v for k, v in changes.items() if k in FIELDS})
            conn.execute(_UPSERT, (mac, doc["name"], doc["comment"], json.dumps(doc["tags"]), doc["location"],
                                   self.clock()))
        return doc

    def import_many(self, docs: Mapping[str, Mapping[str, Any]], *, overwrite: bool = False) -> int:
        """Store many MACs' metadata in one write transaction (kept unless `overwrite`); return rows written."""
        written = 0
        with self.handle.write() as conn:
            self._serialise(conn)
            for mac, doc in docs.items():
                if not overwrite and conn.execute(
                        "SELECT 1 FROM device_metadata WHERE mac = ?", (mac,)).fetchone() is not None:
                    continue
                full = {**empty(), **{k: v for k, v in doc.items() if k in FIELDS}}
                conn.execute(_UPSERT, (mac, full["name"], full["comment"], json.dumps(full["tags"]),
                                       full["location"], self.clock()))
                written += 1
        return written
