"""The DDL of the configuration tables: config.db's migrations (SQLite) and their PostgreSQL twins.

Devices, users and login failures, alert rules, channels and maintenance windows, API tokens,
the audit trail, device metadata; on PostgreSQL also the shared key's marker and the stored
settings. Forward-only: append a migration, never edit a shipped one. The stores that use these
tables (`config_store`, `auth_store`, `tokens_store`, `audit_store`, `metadata_store`) open them
through `config_store.handle`, which runs `MIGRATIONS`; `stores.PG_COMPONENTS["config"]` runs
`PG_MIGRATIONS`.
"""

from __future__ import annotations

# Forward-only migrations; index i brings the schema from user_version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        api_key_enc TEXT,
        username TEXT,
        password_enc TEXT,
        tls_mode TEXT NOT NULL,
        tls_fingerprint TEXT,
        tls_ca_pem TEXT,
        interfaces_json TEXT NOT NULL DEFAULT '[]',
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (host, port)
    );
    """,
    """
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        must_change_password INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE login_failures (
        key TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE INDEX login_failures_key_ts ON login_failures (key, ts);
    CREATE TABLE alert_rules (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE alert_channels (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE maintenance_windows (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at REAL NOT NULL);
    """,
    # 3: roles and disabled accounts (every existing user was the one admin: it stays `admin`),
    # personal API tokens (SHA-256 of the secret only) and the audit trail (`t`: epoch
    # microseconds, unique and increasing, which is what `GET /api/audit?before=` pages on).
    # Tables of auth_store.UserStore, tokens_store.TokenStore and audit_store.AuditLog.
    # (PG_MIGRATIONS 4 is the PostgreSQL twin, with BIGINT for audit_log.t: microseconds outgrow 32 bits.)
    """
    ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        last_used REAL
    );
    CREATE INDEX api_tokens_by_user ON api_tokens (username);
    CREATE TABLE audit_log (
        t INTEGER PRIMARY KEY,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        fields TEXT NOT NULL
    );
    """,
    # 4: uplink (WAN) interfaces of a device: In/Out are theirs, "through the box" is all counted ports.
    """
    ALTER TABLE devices ADD COLUMN uplinks_json TEXT NOT NULL DEFAULT '[]';
    """,
    # 5: the admin's names, comments, tags and locations of connected devices (metadata_store.py).
    """
    CREATE TABLE device_metadata (
        mac TEXT PRIMARY KEY,
        name TEXT,
        comment TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        location TEXT,
        updated_at REAL NOT NULL
    );
    """,
]


# The same tables on PostgreSQL (component "config"): epoch seconds in DOUBLE PRECISION.
PG_MIGRATIONS: list[str] = [
    """
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        api_key_enc TEXT,
        username TEXT,
        password_enc TEXT,
        tls_mode TEXT NOT NULL,
        tls_fingerprint TEXT,
        tls_ca_pem TEXT,
        interfaces_json TEXT NOT NULL DEFAULT '[]',
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        UNIQUE (host, port)
    );
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        must_change_password INTEGER NOT NULL DEFAULT 1,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE login_failures (key TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL);
    CREATE INDEX login_failures_key_ts ON login_failures (key, ts);
    CREATE TABLE alert_rules (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE alert_channels (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE maintenance_windows (id TEXT PRIMARY KEY, doc TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL);
    """,
    # 2: a known text encrypted with the shared key: a host started with another key is refused.
    "CREATE TABLE key_marker (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL)",
    # 3: the settings people edit (settings.json of a data folder, on SQLite), shared by every host.
    "CREATE TABLE stored_settings (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL,"
    " updated_at DOUBLE PRECISION NOT NULL)",
    # 4: SQLite's 3: roles and disabled accounts, personal API tokens, the audit trail (`t`: epoch
    # microseconds, BIGINT).
    """
    ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION,
        last_used DOUBLE PRECISION
    );
    CREATE INDEX api_tokens_by_user ON api_tokens (username);
    CREATE TABLE audit_log (
        t BIGINT PRIMARY KEY,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        fields TEXT NOT NULL
    );
    """,
    # 5: SQLite's 4: uplink (WAN) interfaces of a device.
    "ALTER TABLE devices ADD COLUMN uplinks_json TEXT NOT NULL DEFAULT '[]'",
    # 6: SQLite's 5: the admin's metadata of connected devices, per MAC (metadata_store.py).
    """
    CREATE TABLE device_metadata (
        mac TEXT PRIMARY KEY,
        name TEXT,
        comment TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        location TEXT,
        updated_at DOUBLE PRECISION NOT NULL
    );
    """,
]

# The text the PostgreSQL key_marker row holds encrypted (config_store.check_key_marker).
KEY_MARKER = "panfm-encryption-key-marker"
