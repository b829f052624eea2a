"""Every table of every database: the stores the rest of PANfm uses, and nothing else.

The front door of the storage area (the work lives in `panfm/storage/`):

- `open_stores(settings)`: the stores of one data folder, as the web and the clock open them.

- `SampleStore` / `SampleReader`: `throughput_history.db` (samples, rollups, device states,
  inventory, clock stats and heartbeat); the clock is its only writer, one transaction per cycle.
- `PgSampleStore` / `PgSampleReader`: the same on PostgreSQL (`database_url`), partitioned by day,
  one row per device and slot, writes optionally fenced by the coordination's device leases.
- `DeviceStore`, `DocTable`: `config.db` (devices with encrypted secrets, alert rules,
  channels, maintenance windows).
- `UserStore`, `LoginFailures`, `SessionStore`: who may log in (users with their roles and login
  failures in `config.db`, sessions in `web_sessions.db`); `TokenStore`: personal API tokens
  (digests only); `AuditLog`: the audit trail (both in `config.db`).
- `alerts_store`: `alerts.db` (alert states, incidents, acknowledgements, notification
  outbox); `alerts_store.evaluation()` is the one transaction of an alert evaluation.
- `NetworkStore` / `NetworkReader`: `network.db` (connected devices per firewall; the clock writes,
  the web reads); `MetadataStore`: the admin's per-MAC names, tags and notes in `config.db`.
- `open_coordinator(database_url, data_dir)`: the clocks' coordination store (`Coordinator`: live
  clocks, device leases with fences, the leader lease, insert-once `job_run`), PostgreSQL or SQLite.
- `legacy_history_rows`: PANfm 1.x's history database, read-only, for `import-panfm`.
- `check_database(url)`: the start check of the PostgreSQL backend (setting `database_url`).
- `check_usable`, `online_backup`, `integrity_check`: what other areas need at start, for backups and
  `db check`; `DatabaseError` and `IntegrityError` are what the stores raise (no caller imports a driver);
  `database_away(exc)`: whether an error says the database is away, full or busy (either backend).
"""

import panfm.storage.alerts_store as alerts_store
import panfm.storage.config_store as config_store
from panfm.storage.alerts_store import ALERTS_DB
from panfm.storage.audit_store import AuditEntry, AuditLog
from panfm.storage.auth_store import Account, LoginFailures, SessionStore, UserStore
from panfm.storage.backend import Backend
from panfm.storage.config_store import CONFIG_DB, DeviceStore, DocTable
from panfm.storage.coordination import (
    COORDINATION_DB,
    CoordinationUnavailable,
    Coordinator,
    cleanup_day,
    slot_of,
)
from panfm.storage.legacy import legacy_history_rows
from panfm.storage.metadata_store import MetadataStore
from panfm.storage.network_reader import NetworkReader
from panfm.storage.network_store import NETWORK_DB, NetworkStore
from panfm.storage.pg_reader import PgSampleReader
from panfm.storage.pg_rows import PackedCycle
from panfm.storage.pg_samples import PgSampleStore
from panfm.storage.postgres import check_database, database_away
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore, StorageUnavailable
from panfm.storage.sqlite import DatabaseError, IntegrityError, check_usable, integrity_check, online_backup
from panfm.storage.stores import (
    CHECKED_BY_MASTER_ENV,
    Stores,
    clock_stats_of,
    migrate_to,
    open_coordinator,
    open_stores,
    pg_backup,
    pg_check,
)
from panfm.storage.tokens_store import TokenRecord, TokenStore

__all__ = [
    "ALERTS_DB",
    "CHECKED_BY_MASTER_ENV",
    "CONFIG_DB",
    "COORDINATION_DB",
    "HISTORY_DB",
    "NETWORK_DB",
    "Account",
    "AuditEntry",
    "AuditLog",
    "Backend",
    "CoordinationUnavailable",
    "Coordinator",
    "DatabaseError",
    "DeviceStore",
    "DocTable",
    "IntegrityError",
    "LoginFailures",
    "MetadataStore",
    "NetworkReader",
    "NetworkStore",
    "PackedCycle",
    "PgSampleReader",
    "PgSampleStore",
    "SampleReader",
    "SampleStore",
    "SessionStore",
    "StorageUnavailable",
    "Stores",
    "TokenRecord",
    "TokenStore",
    "UserStore",
    "alerts_store",
    "check_database",
    "check_usable",
    "cleanup_day",
    "clock_stats_of",
    "config_store",
    "database_away",
    "integrity_check",
    "legacy_history_rows",
    "migrate_to",
    "online_backup",
    "open_coordinator",
    "open_stores",
    "pg_backup",
    "pg_check",
    "slot_of",
]
