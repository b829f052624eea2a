"""The web's kept read-only connections to throughput_history.db (`KeptReaders`), one per worker thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType

import panfm.storage.sqlite as sqlite_db
from panfm.storage.samples import SampleReader
from panfm.storage.schema import StorageUnavailable, connect_reader


class _KeptReader(SampleReader):
    """A `SampleReader` on a kept connection: leaving it keeps the connection, unless a query failed."""

    def __init__(self, conn: sqlite3.Connection, owner: KeptReaders) -> None:
        super().__init__(conn)
        self._owner = owner

    def close(self) -> None:
        """Keep the connection for this thread's next request."""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, (sqlite3.Error, StorageUnavailable)) or isinstance(getattr(exc, "__context__", None),
                                                                             sqlite3.Error):
            self._owner.drop()  # damaged, locked out, replaced: open anew next time


class KeptReaders:
    """The web's read-only connections to throughput_history.db: one per worker thread, kept (`KeptReadOnly`).

    Opening a connection and its first statement (SQLite reads the schema then) cost ~2 ms of a
    request that reads the samples, and closing it more: a kept connection pays that once per
    worker thread. A file replaced (a restore) or deleted is noticed at the next request, with
    the same checks as `SampleReader.open` (StorageUnavailable when missing or not migrated).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._kept = sqlite_db.KeptReadOnly(path, lambda: connect_reader(path))

    def reader(self) -> SampleReader:
        """This thread's reader; raise StorageUnavailable when the file is missing or unreadable."""
        return _KeptReader(self._kept.get(), self)

    def drop(self) -> None:
        """Close and forget this thread's connection (after an error on it)."""
        self._kept.drop()
