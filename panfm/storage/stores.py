"""Opening the stores of one data folder: what the web and the clock build at start."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config import SecretBox, Settings
from panfm.storage.alerts_store import ALERTS_DB
from panfm.storage.config_store import CONFIG_DB, DeviceStore
from panfm.storage.coord_pg import PgCoordinator
from panfm.storage.coord_sqlite import SqliteCoordinator
from panfm.storage.coordination import COORDINATION_DB, Coordinator
from panfm.storage.samples import HISTORY_DB, SampleStore
from panfm.storage.sqlite import check_usable


@dataclass(frozen=True)
class Stores:
    """The stores of one data folder (see `open_stores`)."""

    data_dir: Path
    box: SecretBox  # decrypts device and channel secrets
    devices: DeviceStore

    @property
    def history_db(self) -> Path:
        return self.data_dir / HISTORY_DB

    @property
    def alerts_db(self) -> Path:
        return self.data_dir / ALERTS_DB

    def open_sample_writer(self) -> SampleStore:
        """Open throughput_history.db for writing (the clock: its only writer)."""
        return SampleStore.open(self.history_db)


def open_stores(settings: Settings, *, writer: bool = False, clock: Callable[[], float] = time.time) -> Stores:
    """Open the stores of the settings' data folder; a damaged file stops the start with its name (ConfigError).

    config.db is checked always, throughput_history.db too for the `writer` (the clock): the web
    reads samples per request and answers 503 while that file cannot be read.
    """
    data_dir = settings.data_path
    for name in (CONFIG_DB, HISTORY_DB) if writer else (CONFIG_DB,):
        check_usable(data_dir / name)
    box = SecretBox.for_data_dir(data_dir)
    return Stores(data_dir, box, DeviceStore(data_dir, box, clock))


def open_coordinator(database_url: str, data_dir: Path, *, readonly: bool = False) -> Coordinator:
    """Open the coordination store: PostgreSQL when `database_url` is set, else `coordination.db` (SQLite).

    Nothing connects here: the first call does (and a failed call retries on the next), so a
    database that is away at start delays nothing but that call.
    """
    if database_url:
        return PgCoordinator(database_url)
    return SqliteCoordinator(data_dir / COORDINATION_DB, readonly=readonly)
