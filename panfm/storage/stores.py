"""Opening the stores of one data folder, or of one PostgreSQL database: what the web and the clock build at start."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config import SecretBox, Settings
from panfm.storage import alerts_store, auth_store, config_store, pg_series
from panfm.storage.alerts_store import ALERTS_DB
from panfm.storage.backend import Backend
from panfm.storage.config_store import CONFIG_DB, DeviceStore, DocTable
from panfm.storage.coord_pg import PgCoordinator
from panfm.storage.coord_sqlite import SqliteCoordinator
from panfm.storage.coordination import COORDINATION_DB, Coordinator
from panfm.storage.pg_reader import PgSampleReader
from panfm.storage.pg_samples import PgSampleStore
from panfm.storage.postgres import PgDatabase, check_database
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.sqlite import check_usable

# Every component's PostgreSQL migrations, applied at start in this order (one advisory lock).
PG_COMPONENTS: dict[str, list[str]] = {
    "config": config_store.PG_MIGRATIONS,
    "sessions": auth_store.PG_SESSIONS_MIGRATIONS,
    "series": pg_series.PG_MIGRATIONS,
    "alerts": alerts_store.PG_MIGRATIONS,
}


@dataclass(frozen=True)
class Stores:
    """The stores of one data folder, or of the PostgreSQL database of `database_url` (see `open_stores`)."""

    data_dir: Path
    box: SecretBox  # decrypts device and channel secrets
    devices: DeviceStore
    backend: Backend  # SQLite files of data_dir, or the PostgreSQL database
    clock: Callable[[], float] = time.time

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

    def doc_table(self, table: str) -> DocTable:
        """Alert rules, channels or maintenance windows (`config_store.DOC_TABLES`)."""
        return DocTable(self.data_dir, table, self.clock, self.backend)

    def users(self) -> auth_store.UserStore:
        return auth_store.UserStore(self.data_dir, self.backend)

    def login_failures(self) -> auth_store.LoginFailures:
        return auth_store.LoginFailures(self.data_dir, self.backend)

    def sessions(self) -> auth_store.SessionStore:
        return auth_store.SessionStore(self.data_dir, self.backend)

    def close(self) -> None:
        """Close the PostgreSQL pool (nothing to do on SQLite: every call opens its own file)."""
        self.backend.close()


def open_backend(settings: Settings, *, name: str = "panfm") -> Backend:
    """The stores' home of the settings: the data folder, or PostgreSQL checked and migrated (ConfigError)."""
    if not settings.on_postgres:
        return Backend(settings.data_path)
    check_database(settings.database_url)  # wrong URL, server away, no rights, too old: ConfigError
    db = PgDatabase(settings.database_url, name=name)
    try:
        for component, migrations in PG_COMPONENTS.items():
            db.migrate(component, migrations)
    except BaseException:
        db.close()
        raise
    return Backend(settings.data_path, db)


def open_stores(settings: Settings, *, writer: bool = False, clock: Callable[[], float] = time.time) -> Stores:
    """Open the stores of the settings' data folder or database; an unusable one stops the start (ConfigError).

    On PostgreSQL (`database_url`) the server is checked and every component migrated first.
    On SQLite config.db is checked always, throughput_history.db too for the `writer` (the
    clock): the web reads samples per request and answers 503 while that file cannot be read.
    """
    data_dir = settings.data_path
    backend = open_backend(settings, name="panfm-clock" if writer else "panfm-web")
    if not backend.on_postgres:
        for name in (CONFIG_DB, HISTORY_DB) if writer else (CONFIG_DB,):
            check_usable(data_dir / name)
    box = SecretBox.for_data_dir(data_dir)
    return Stores(data_dir, box, DeviceStore(data_dir, box, clock, backend), backend, clock)

def open_coordinator(database_url: str, data_dir: Path, *, readonly: bool = False) -> Coordinator:
    """Open the coordination store: PostgreSQL when `database_url` is set, else `coordination.db` (SQLite).

    Nothing connects here: the first call does (and a failed call retries on the next), so a
    database that is away at start delays nothing but that call.
    """
    if database_url:
        return PgCoordinator(database_url)
    return SqliteCoordinator(data_dir / COORDINATION_DB, readonly=readonly)
