"""The web's dependencies (`WebContext`): built once per app by `make_context`, found by `ctx()`.

The API, pages and CLI of `panfm.web` read the data folder through it: the stores (SQLite
files opened read-only per request, or PostgreSQL), the device list and the clocks'
coordination store. No module-level state.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

import config
from config import ConfigError, SecretBox, Settings
from panfm.models import ClockNode
from throughput_storage import (
    CHECKED_BY_MASTER_ENV,
    HISTORY_DB,
    CoordinationUnavailable,
    Coordinator,
    DatabaseError,
    PgSampleReader,
    SampleReader,
    StorageUnavailable,
    Stores,
    config_store,
    open_coordinator,
    open_stores,
)

log = logging.getLogger("panfm.web")


@dataclass
class WebContext:
    """Everything the API needs, built once by `create_app` (no module-level state)."""

    settings: Settings  # as started: environment and overrides included
    box: SecretBox
    devices: config_store.DeviceStore
    clock: Callable[[], float]
    version: str
    stores: Stores
    # The clocks' coordination store, read-only here (live clocks, who polls which device).
    coordinator: Coordinator | None = None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_path

    @property
    def samples_path(self) -> Path:
        return self.data_dir / HISTORY_DB

    def current_settings(self) -> Settings:
        """The settings now: settings.json may have changed since start; the environment still wins."""
        try:
            in_database = self.stores.stored_settings()
            if in_database is None:
                stored = config.read_settings_file(self.data_dir)
            else:
                stored = config.check_stored(in_database, "settings stored in the database")
        except (ConfigError, DatabaseError) as exc:
            # Edited into nonsense since start: keep serving with the settings as started.
            log.warning("settings unusable, using the ones from start: %s", exc)
            return self.settings
        changes = {k: v for k, v in stored.items() if k not in self.settings.fixed_by_env}
        return dataclasses.replace(self.settings, **changes)

    @contextmanager
    def reader(self) -> Iterator[SampleReader | PgSampleReader | None]:
        """The sample database read-only for one request (a kept connection); None before the clock's first write."""
        if not self.stores.on_postgres and not self.samples_path.exists():
            yield None
            return
        with self.stores.request_sample_reader() as reader:
            try:
                yield reader
            except DatabaseError as exc:
                # A damaged or locked-out file is "cannot be read" (503), not a server bug (500).
                raise StorageUnavailable(f"sample database query failed: {type(exc).__name__}") from None


    def database_away(self) -> str | None:
        """Why the shared PostgreSQL database does not answer, asked on the coordination connection
        (quick: no pool wait); None when it answers or the stores are SQLite files."""
        if self.coordinator is None or self.coordinator.backend != "postgresql":
            return None
        try:
            self.coordinator.db_now()
        except CoordinationUnavailable as exc:
            return f"PostgreSQL: {exc}"
        return None

    def coordination(self) -> tuple[list[ClockNode], dict[str, str], str | None]:
        """The live clocks, device -> node id of its poller, and why they are unknown (None: known)."""
        if self.coordinator is None:
            return [], {}, "no coordination store"
        try:
            interval = self.current_settings().refresh_interval
            return self.coordinator.clocks(interval), self.coordinator.owners(), None
        except CoordinationUnavailable as exc:
            return [], {}, str(exc)


def ctx() -> WebContext:
    context: WebContext = current_app.extensions["panfm"]
    return context


def make_context(settings: Settings) -> WebContext:
    """Build the API's dependencies for one app."""
    # Under gunicorn the master checked and migrated PostgreSQL before forking (gunicorn.conf.py).
    stores = open_stores(settings, clock=time.time, checked=os.environ.get(CHECKED_BY_MASTER_ENV) == "1",
                         keep_reads=True)  # a request's reads of config.db, alerts.db...: no open and close each
    return WebContext(
        settings=settings,
        box=stores.box,
        devices=stores.devices,
        clock=time.time,
        version=read_version(),
        stores=stores,
        coordinator=open_coordinator(settings.database_url, settings.data_path, readonly=True),
    )


def read_version() -> str:
    """The version declared in pyproject.toml (the one place it is written)."""
    import tomllib

    path = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        with path.open("rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
