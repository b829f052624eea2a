"""The configuration people edit: `config.db` in the data folder (devices; more tables later).

The web writes it (short `BEGIN IMMEDIATE` transactions), the clock only reads it at the start
of every cycle, so an edit reaches the clock without a restart. Device secrets are stored
encrypted with `config.SecretBox` and decrypted only into `models.DeviceConfig`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panfm.storage.sqlite as sqlite_db
from config import ConfigError, SecretBox
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.backend import Backend, PgHandle, SqliteHandle

# The DDL lives in config_schema.py; its names stay importable from here (callers and tests use them).
from panfm.storage.config_schema import KEY_MARKER as KEY_MARKER
from panfm.storage.config_schema import MIGRATIONS as MIGRATIONS
from panfm.storage.config_schema import PG_MIGRATIONS as PG_MIGRATIONS

CONFIG_DB = "config.db"


Where = Path | Backend  # a data folder (SQLite, as before) or the stores' backend


def handle(where: Where) -> SqliteHandle | PgHandle:
    """config.db of a data folder, or the config tables of the backend's database."""
    backend = where if isinstance(where, Backend) else Backend(where)
    return backend.handle(CONFIG_DB, MIGRATIONS)


def connect(data_dir: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open config.db (migrating it when opened for writing)."""
    return sqlite_db.connect(data_dir / CONFIG_DB, MIGRATIONS, readonly=readonly)


def device_exists(where: Where, device_id: str) -> bool:
    """Check one id in config.db without decrypting any secret (False before config.db exists)."""
    h = handle(where)
    if not h.exists():
        return False
    with h.read() as conn:
        return conn.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,)).fetchone() is not None


def device_uplinks(where: Where, device_id: str) -> tuple[str, ...] | None:
    """The uplink (WAN) interfaces marked on one device, no secret decrypted: () when none, None when
    the device is unknown (so a request checks the id and reads its uplinks in one query)."""
    h = handle(where)
    if not h.exists():
        return None
    with h.read() as conn:
        row = conn.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()
    if row is None:
        return None
    # Not migrated yet: no uplink was marked. (`in row` would search a Row's values, not its keys.)
    if "uplinks_json" not in row.keys():  # noqa: SIM118
        return ()
    return tuple(json.loads(row["uplinks_json"]))


def device_names(where: Where) -> dict[str, str]:
    """Device names by id, no secret decrypted for a label ({} before config.db exists)."""
    h = handle(where)
    if not h.exists():
        return {}
    with h.read() as conn:
        return {r["id"]: r["name"] for r in conn.execute("SELECT id, name FROM devices")}


def device_catalogue(where: Where) -> list[dict[str, Any]]:
    """Every device's id, name, counted interfaces and enabled flag, no secret decrypted ([] before config.db).

    One read-only connection; for labels and selections (the web's /metrics), not for polling.
    """
    h = handle(where)
    if not h.exists():
        return []
    with h.read() as conn:
        return [
            {"id": r["id"], "name": r["name"], "interfaces": tuple(json.loads(r["interfaces_json"])),
             "enabled": bool(r["enabled"])}
            for r in conn.execute("SELECT id, name, interfaces_json, enabled FROM devices ORDER BY name")
        ]


def user_exists(where: Where, username: str) -> bool:
    """Whether an account of this name exists."""
    with handle(where).read_write() as conn:
        return conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone() is not None


def reencrypt_secrets(where: Where, reencrypt: Callable[[str | None], str | None]) -> tuple[int, int]:
    """Pass every stored secret through `reencrypt` in one transaction; (device secrets, document secrets).

    Device API keys and passwords, and every `*_enc` field of the document tables (channel
    URLs). An exception from `reencrypt` rolls the whole transaction back.
    """
    devices = documents = 0
    with handle(where).write() as conn:
        rows = conn.execute("SELECT id, api_key_enc, password_enc FROM devices").fetchall()
        for row in rows:
            key_enc, password_enc = reencrypt(row["api_key_enc"]), reencrypt(row["password_enc"])
            devices += (key_enc is not None) + (password_enc is not None)
            conn.execute(
                "UPDATE devices SET api_key_enc = ?, password_enc = ? WHERE id = ?",
                (key_enc, password_enc, row["id"]),
            )
        for table in DOC_TABLES:
            docs = conn.execute(f"SELECT id, doc FROM {table}").fetchall()  # noqa: S608  # nosec B608
            for doc_row in docs:
                doc = json.loads(doc_row["doc"])
                secret_fields = [k for k, v in doc.items() if k.endswith("_enc") and isinstance(v, str) and v]
                if not secret_fields:
                    continue
                for name in secret_fields:
                    doc[name] = reencrypt(doc[name])
                documents += len(secret_fields)
                conn.execute(
                    f"UPDATE {table} SET doc = ? WHERE id = ?",  # noqa: S608  # nosec B608
                    (json.dumps(doc, sort_keys=True), doc_row["id"]),
                )
        if isinstance(where, Backend) and where.on_postgres:  # the shared key's marker, in the same transaction
            marker = conn.execute("SELECT token FROM key_marker WHERE id = 1").fetchone()
            if marker is not None:
                conn.execute("UPDATE key_marker SET token = ? WHERE id = 1", (reencrypt(marker["token"]),))
    return devices, documents


def stored_settings(backend: Backend) -> dict[str, Any]:
    """The settings stored in the database (PostgreSQL), as raw JSON values; {} before any edit."""
    with handle(backend).read() as conn:
        row = conn.execute("SELECT doc FROM stored_settings WHERE id = 1").fetchone()
    doc = json.loads(row["doc"]) if row else {}
    return doc if isinstance(doc, dict) else {}


def save_stored_settings(backend: Backend, clean: dict[str, Any], now: float) -> dict[str, Any]:
    """Merge validated edits into the stored settings in one transaction (row locked); return them all.

    Two webs saving at once each keep the other's edit (the read-merge-write of settings.json
    under its folder lock, on SQLite).
    """
    with handle(backend).write() as conn:
        conn.execute("INSERT INTO stored_settings (id, doc, updated_at) VALUES (1, '{}', ?)"
                     " ON CONFLICT (id) DO NOTHING", (now,))
        row = conn.execute("SELECT doc FROM stored_settings WHERE id = 1 FOR UPDATE").fetchone()
        doc = {**json.loads(row["doc"]), **clean}
        conn.execute("UPDATE stored_settings SET doc = ?, updated_at = ? WHERE id = 1",
                     (json.dumps(doc, sort_keys=True), now))
    return doc


def check_key_marker(backend: Backend, box: SecretBox) -> None:
    """Refuse a key that cannot decrypt the stored secrets (PostgreSQL: the marker of the shared key).

    The first process stores the marker under its key; every later one must decrypt it.
    """
    with handle(backend).write() as conn:
        conn.execute("INSERT INTO key_marker (id, token) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
                     (box.encrypt(KEY_MARKER),))
        token = conn.execute("SELECT token FROM key_marker WHERE id = 1").fetchone()["token"]
    try:
        ok = box.decrypt(token) == KEY_MARKER
    except ConfigError:
        ok = False
    if not ok:
        raise ConfigError("setting encryption_key: this key cannot decrypt the secrets stored in the database"
                          " (checked against its key marker); start every host with the same PANFM_ENCRYPTION_KEY")


def _row_to_device(row: Any, box: SecretBox) -> DeviceConfig:
    return DeviceConfig(
        id=row["id"],
        name=row["name"],
        host=row["host"],
        port=row["port"],
        api_key=box.decrypt(row["api_key_enc"]) if row["api_key_enc"] else None,
        username=row["username"],
        password=box.decrypt(row["password_enc"]) if row["password_enc"] else None,
        tls=TlsConfig(mode=row["tls_mode"], fingerprint_sha256=row["tls_fingerprint"], ca_pem=row["tls_ca_pem"]),
        interfaces=tuple(json.loads(row["interfaces_json"])),
        enabled=bool(row["enabled"]),
        # A config.db the web has not migrated yet (read-only opens never migrate) has no uplinks.
        uplinks=tuple(json.loads(row["uplinks_json"])) if "uplinks_json" in row.keys() else (),  # noqa: SIM118
    )


DOC_TABLES = ("alert_rules", "alert_channels", "maintenance_windows")


class DocTable:
    """JSON documents by id in one of `DOC_TABLES` (alert rules, channels, maintenance).

    Validation belongs to the module that owns the meaning (alerts); this only stores.
    """

    def __init__(self, data_dir: Path, table: str, clock: Callable[[], float], backend: Backend | None = None) -> None:
        if table not in DOC_TABLES:
            raise ValueError(f"unknown document table {table!r}")
        self.data_dir = data_dir
        self.table = table
        self.clock = clock
        self.handle = handle(backend or data_dir)

    def list(self) -> list[dict[str, Any]]:
        if not self.handle.exists():
            return []
        with self.handle.read() as conn:
            # The table name comes from DOC_TABLES (checked in __init__), never from input.
            sql = f"SELECT id, doc FROM {self.table} ORDER BY id"  # noqa: S608  # nosec B608
            return [{**json.loads(r["doc"]), "id": r["id"]} for r in conn.execute(sql)]

    def get(self, doc_id: str) -> dict[str, Any] | None:
        return next((d for d in self.list() if d["id"] == doc_id), None)

    def put(self, doc: dict[str, Any]) -> str:
        """Insert or replace a document; an empty or missing id gets a new UUID."""
        doc_id = str(doc.get("id") or uuid.uuid4())
        body = json.dumps({k: v for k, v in doc.items() if k != "id"}, sort_keys=True)
        with self.handle.write() as conn:
            conn.execute(
                f"INSERT INTO {self.table} (id, doc, updated_at) VALUES (?, ?, ?) ON CONFLICT (id)"  # noqa: S608  # nosec B608
                " DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                (doc_id, body, self.clock()),
            )
        return doc_id

    def delete(self, doc_id: str) -> bool:
        with self.handle.write() as conn:
            sql = f"DELETE FROM {self.table} WHERE id = ?"  # noqa: S608  # nosec B608 (table from DOC_TABLES)
            cur = conn.execute(sql, (doc_id,))
            return int(cur.rowcount) == 1


class DeviceStore:
    """Devices in config.db (or PostgreSQL); every method uses its own connection."""

    def __init__(self, data_dir: Path, box: SecretBox, clock: Callable[[], float],
                 backend: Backend | None = None) -> None:
        self.data_dir = data_dir
        self.box = box
        self.clock = clock
        self.handle = handle(backend or data_dir)

    def list(self, *, enabled_only: bool = False) -> list[DeviceConfig]:
        if not self.handle.exists():
            return []
        with self.handle.read() as conn:
            rows = conn.execute("SELECT * FROM devices WHERE enabled >= ? ORDER BY name", (int(enabled_only),))
            return [_row_to_device(r, self.box) for r in rows]

    def get(self, device_id: str) -> DeviceConfig | None:
        return next((d for d in self.list() if d.id == device_id), None)

    def add(self, device: DeviceConfig) -> str:
        """Insert a device; its `id` is generated when empty. Raises IntegrityError on duplicates."""
        device_id = device.id or str(uuid.uuid4())
        now = self.clock()
        with self.handle.write() as conn:
            conn.execute(
                "INSERT INTO devices (id, name, host, port, api_key_enc, username, password_enc, tls_mode,"
                " tls_fingerprint, tls_ca_pem, interfaces_json, enabled, uplinks_json, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (device_id, *self._columns(device), now, now),
            )
        return device_id

    def update(self, device: DeviceConfig) -> bool:
        """Replace a stored device by id; False when it does not exist."""
        with self.handle.write() as conn:
            cur = conn.execute(
                "UPDATE devices SET name=?, host=?, port=?, api_key_enc=?, username=?, password_enc=?,"
                " tls_mode=?, tls_fingerprint=?, tls_ca_pem=?, interfaces_json=?, enabled=?, uplinks_json=?,"
                " updated_at=?"
                " WHERE id=?",
                (*self._columns(device), self.clock(), device.id),
            )
            return int(cur.rowcount) == 1

    def remove(self, device_id: str) -> bool:
        with self.handle.write() as conn:
            return int(conn.execute("DELETE FROM devices WHERE id = ?", (device_id,)).rowcount) == 1

    def _columns(self, d: DeviceConfig) -> tuple[Any, ...]:
        return (
            d.name,
            d.host,
            d.port,
            self.box.encrypt(d.api_key) if d.api_key else None,
            d.username,
            self.box.encrypt(d.password) if d.password else None,
            d.tls.mode,
            d.tls.fingerprint_sha256,
            d.tls.ca_pem,
            json.dumps(list(d.interfaces)),
            int(d.enabled),
            json.dumps(list(d.uplinks)),
        )
