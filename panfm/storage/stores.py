"""Opening the stores of one data folder, or of one PostgreSQL database: what the web and the clock build at start."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import config
from config import ConfigError, SecretBox, Settings, load_settings
from panfm.storage import alerts_store, auth_store, config_store, network_store, pg_series
from panfm.storage.alerts_store import ALERTS_DB
from panfm.storage.audit_store import AuditLog
from panfm.storage.backend import Backend
from panfm.storage.config_store import CONFIG_DB, DeviceStore, DocTable
from panfm.storage.coord_pg import PgCoordinator
from panfm.storage.coord_sqlite import SqliteCoordinator
from panfm.storage.coordination import COORDINATION_DB, Coordinator
from panfm.storage.kept_samples import KeptReaders
from panfm.storage.metadata_store import MetadataStore
from panfm.storage.network_reader import NetworkReader
from panfm.storage.network_store import NetworkStore
from panfm.storage.pg_reader import PgSampleReader
from panfm.storage.pg_samples import PgSampleStore
from panfm.storage.postgres import PgDatabase, check_database
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore, StorageUnavailable
from panfm.storage.sqlite import DatabaseError, check_usable
from panfm.storage.tokens_store import TokenStore

# Every component's PostgreSQL migrations, applied at start in this order (one advisory lock).
PG_COMPONENTS: dict[str, list[str]] = {
    "config": config_store.PG_MIGRATIONS,
    "sessions": auth_store.PG_SESSIONS_MIGRATIONS,
    "series": pg_series.PG_MIGRATIONS,
    "alerts": alerts_store.PG_MIGRATIONS,
    "network": network_store.PG_MIGRATIONS,
}


@dataclass(frozen=True)
class Stores:
    """The stores of one data folder, or of the PostgreSQL database of `database_url` (see `open_stores`)."""

    data_dir: Path
    box: SecretBox  # decrypts device and channel secrets
    devices: DeviceStore
    backend: Backend  # SQLite files of data_dir, or the PostgreSQL database
    clock: Callable[[], float] = time.time
    kept_readers: KeptReaders | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kept_readers is None:
            object.__setattr__(self, "kept_readers", KeptReaders(self.data_dir / HISTORY_DB))

    @property
    def on_postgres(self) -> bool:
        return self.backend.on_postgres

    @property
    def history_db(self) -> Path:
        return self.data_dir / HISTORY_DB

    @property
    def alerts_db(self) -> Path | Backend:
        """Where `alerts_store` finds the alerts: alerts.db of the data folder, or PostgreSQL."""
        return self.backend if self.backend.on_postgres else self.data_dir / ALERTS_DB

    def request_scope(self) -> AbstractContextManager[None]:
        """One web request's reads and writes on one PostgreSQL connection (`PgDatabase.request_scope`)."""
        if self.backend.db is not None:
            return self.backend.db.request_scope()
        return nullcontext()

    def open_sample_writer(self, interval_s: int = 30) -> SampleStore | PgSampleStore:
        """Open throughput_history.db for writing (the clock), or the time series on PostgreSQL.

        `interval_s` (the refresh interval) is how PostgreSQL counts slots: one sample per device and slot.
        """
        if self.backend.db is not None:
            return PgSampleStore(self.backend.db, interval_s)
        return SampleStore.open(self.history_db)

    def open_sample_reader(self) -> SampleReader | PgSampleReader:
        """A read view of the samples (SQLite: raises StorageUnavailable before the clock created the file)."""
        if self.backend.db is not None:
            return PgSampleReader(self.backend.db)
        return SampleReader.open(self.history_db)

    def request_sample_reader(self) -> SampleReader | PgSampleReader:
        """`open_sample_reader` for a web request: on SQLite this thread's kept connection (`KeptReaders`)."""
        if self.backend.db is not None or self.kept_readers is None:
            return self.open_sample_reader()
        return self.kept_readers.reader()

    def doc_table(self, table: str) -> DocTable:
        """Alert rules, channels or maintenance windows (`config_store.DOC_TABLES`)."""
        return DocTable(self.data_dir, table, self.clock, self.backend)

    def users(self) -> auth_store.UserStore:
        return auth_store.UserStore(self.data_dir, self.backend)

    def login_failures(self) -> auth_store.LoginFailures:
        return auth_store.LoginFailures(self.data_dir, self.backend)

    def sessions(self) -> auth_store.SessionStore:
        return auth_store.SessionStore(self.data_dir, self.backend)

    def tokens(self) -> TokenStore:
        """Personal API tokens (config.db, or PostgreSQL)."""
        return TokenStore(self.data_dir, self.backend)

    def audit(self) -> AuditLog:
        """The audit trail (config.db, or PostgreSQL)."""
        return AuditLog(self.data_dir, self.backend)

    def metadata(self) -> MetadataStore:
        """The admin's per-MAC metadata of connected devices (config.db, or PostgreSQL)."""
        return MetadataStore(self.data_dir, self.clock, self.backend)

    def open_network_writer(self) -> NetworkStore:
        """The clock's writer of connected devices, applications, threats and logs (network.db, or PostgreSQL)."""
        return NetworkStore.open_backend(self.backend)

    def open_network_reader(self) -> AbstractContextManager[NetworkReader | None]:
        """A read view of network.db for one request (None before the clock wrote it), or of PostgreSQL."""
        return NetworkReader.open_backend(self.backend)

    def stored_settings(self) -> dict[str, Any] | None:
        """The settings kept in the database on PostgreSQL (raw values); None on SQLite (settings.json)."""
        return config_store.stored_settings(self.backend) if self.backend.on_postgres else None

    def save_settings(self, clean: dict[str, Any]) -> dict[str, Any]:
        """Store validated settings edits in the database (PostgreSQL only; SQLite keeps settings.json)."""
        return config_store.save_stored_settings(self.backend, clean, self.clock())

    def load_settings(self) -> Settings:
        """The effective settings now: the environment over the stored ones (database or settings.json)."""
        return load_settings(stored=self.stored_settings())

    def close(self) -> None:
        """Close the PostgreSQL pool (nothing to do on SQLite: every call opens its own file)."""
        self.backend.close()


# Set by gunicorn's master (gunicorn.conf.py) once it has checked and migrated PostgreSQL: its
# workers then open their pool without a check of their own. A worker forked again while the
# server restarts (a crash, a recycled worker) must boot and answer 503 until the server is back;
# failing its boot would make gunicorn stop the whole web ("Worker failed to boot").
CHECKED_BY_MASTER_ENV = "PANFM_INTERNAL_DATABASE_CHECKED"


def open_backend(settings: Settings, *, name: str = "panfm", checked: bool = False,
                 keep_reads: bool = False) -> Backend:
    """The stores' home of the settings: the data folder, or PostgreSQL checked and migrated (ConfigError).

    `checked`: the database was checked and migrated by this process's parent (gunicorn's
    master): only the pool is made, and it connects at its first use.
    """
    if not settings.on_postgres:
        return Backend(settings.data_path, keep_reads=keep_reads)
    missing = [f"{name} (PANFM_{name.upper()} or PANFM_{name.upper()}_FILE)"
               for name in ("encryption_key", "secret_key") if not getattr(settings, name)]
    if missing:
        # A key generated per host would encrypt secrets the other hosts cannot read (sessions alike).
        raise ConfigError("setting database_url: on PostgreSQL every host must share its keys;"
                          f" set {' and '.join(missing)}")
    if checked:
        return Backend(settings.data_path, PgDatabase(settings.database_url, name=name))
    check_database(settings.database_url)  # wrong URL, server away, no rights, too old: ConfigError
    db = PgDatabase(settings.database_url, name=name)
    try:
        for component, migrations in PG_COMPONENTS.items():
            db.migrate(component, migrations)
    except BaseException:
        db.close()
        raise
    return Backend(settings.data_path, db)


def migrate_to(settings: Settings, target: Settings, progress: Callable[[str], None],
               chunk: int = 20_000) -> dict[str, int]:
    """Copy the SQLite data folder of `settings` into the PostgreSQL database of `target`; rows per table.

    Raises ConfigError (target unusable, or not empty); resumable: run it again after a kill.
    """
    from panfm.storage import pg_migrate

    # The folder's secrets are under its encryption.key when it has one (the environment's key
    # is the one PostgreSQL gets); else under encryption_key, as the folder ran with it.
    has_file = (settings.data_path / config.KEY_FILE).exists()
    source_box = SecretBox.for_data_dir(settings.data_path) if has_file else SecretBox.for_settings(settings)
    stores = open_stores(target)  # checks the server and the shared keys, creates the schema, the marker
    try:
        db = stores.backend.db
        assert db is not None  # nosec B101 (target.database_url is set)

        def reencrypt(token: str | None) -> str | None:
            return stores.box.encrypt(source_box.decrypt(token)) if token else token

        try:
            return pg_migrate.migrate_folder(settings.data_path, db, reencrypt,
                                             config.read_settings_file(settings.data_path),
                                             settings.refresh_interval, progress, chunk)
        except pg_migrate.TargetNotEmpty as exc:
            raise ConfigError(f"setting database_url: {exc}") from None
    finally:
        stores.close()


def open_stores(settings: Settings, *, writer: bool = False, clock: Callable[[], float] = time.time,
                checked: bool = False, keep_reads: bool = False) -> Stores:
    """Open the stores of the settings' data folder or database; an unusable one stops the start (ConfigError).

    On PostgreSQL (`database_url`) the server is checked and every component migrated first
    (not when `checked`: see `open_backend`). `keep_reads` (the web): on SQLite every file's reads
    go through one read-only connection per thread, kept between requests (`Backend`).
    On SQLite config.db is checked always, throughput_history.db too for the `writer` (the
    clock): the web reads samples per request and answers 503 while that file cannot be read.
    """
    data_dir = settings.data_path
    backend = open_backend(settings, name="panfm-clock" if writer else "panfm-web", checked=checked,
                           keep_reads=keep_reads)
    if not backend.on_postgres:
        for name in (CONFIG_DB, HISTORY_DB) if writer else (CONFIG_DB,):
            check_usable(data_dir / name)
    box = SecretBox.for_settings(settings)
    if backend.on_postgres and not checked:
        try:
            config_store.check_key_marker(backend, box)  # a key the other hosts do not share: ConfigError
        except BaseException:
            backend.close()
            raise
    return Stores(data_dir, box, DeviceStore(data_dir, box, clock, backend), backend, clock)


def pg_check(backend: Backend) -> list[tuple[str, str]]:
    """`db check` on PostgreSQL: server, size, schema versions, indexes."""
    from panfm.storage.postgres import database_check

    return database_check(backend.db) if backend.db is not None else []


def pg_backup(url: str, dest_file: str, pg_dump: str) -> None:
    """`db backup` on PostgreSQL: a pg_dump archive (DatabaseError when pg_dump fails)."""
    from panfm.storage.postgres import dump

    dump(url, dest_file, pg_dump)


def clock_stats_of(settings: Settings) -> dict[str, Any] | None:
    """The clock stats and heartbeat of the settings' store, read once (healthchecks); StorageUnavailable if unreadable.

    On PostgreSQL one short connection, no migration: the newest heartbeat any clock wrote.
    """
    if not settings.on_postgres:
        with SampleReader.open(settings.data_path / HISTORY_DB) as reader:
            return reader.clock_stats()
    db = PgDatabase(settings.database_url, max_size=1, name="panfm-healthcheck")
    try:
        return PgSampleReader(db).clock_stats()
    except DatabaseError as exc:
        raise StorageUnavailable(f"PostgreSQL: {exc}") from None
    finally:
        db.close()


def open_coordinator(database_url: str, data_dir: Path, *, readonly: bool = False) -> Coordinator:
    """Open the coordination store: PostgreSQL when `database_url` is set, else `coordination.db` (SQLite).

    Nothing connects here: the first call does (and a failed call retries on the next), so a
    database that is away at start delays nothing but that call.
    """
    if database_url:
        return PgCoordinator(database_url)
    return SqliteCoordinator(data_dir / COORDINATION_DB, readonly=readonly)
