"""Where a store's tables live: a SQLite file of the data folder, or one PostgreSQL database.

A store asks its `Backend` for the `Handle` of its database (`backend.handle(CONFIG_DB, ...)`)
and runs the same code on either: `handle.read()` lends a connection for reads,
`handle.write()` one write transaction (`BEGIN IMMEDIATE` on SQLite, a PostgreSQL transaction
on one pooled connection). Both take SQL with `?` placeholders and give rows indexed by column
name. The DDL differs per backend (types: REAL is 4 bytes on PostgreSQL), the statements
that read and write mostly do not.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import panfm.storage.sqlite as sqlite_db
from panfm.storage.postgres import PgDatabase


class Conn(Protocol):
    """What a store may do with a lent connection (sqlite3.Connection and PgConn both do)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...


class Handle(Protocol):
    """One database of a store, on one backend."""

    rowid: str  # the hidden row identity: "rowid" on SQLite, "ctid" on PostgreSQL
    on_postgres: bool

    def exists(self) -> bool: ...

    def read(self) -> Any: ...  # context manager of a Conn

    def write(self) -> Any: ...  # context manager of a Conn, one transaction


class SqliteHandle:
    """A SQLite file of the data folder, migrated on the first write (as before)."""

    rowid = "rowid"
    on_postgres = False

    def __init__(self, path: Path, migrations: Sequence[str], kept: sqlite_db.KeptReadOnly | None = None) -> None:
        self.path = path
        self.migrations = migrations
        self.kept = kept  # the web's: this thread's read-only connection, kept between requests

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def read(self) -> Iterator[Conn]:
        """A read-only connection (the file must exist: check `exists()` first where absent is normal)."""
        if self.kept is not None:
            conn = self.kept.get()
            try:
                yield conn
            except sqlite3.Error:
                self.kept.drop()  # damaged, locked out: open anew at the next read
                raise
            return
        conn = sqlite_db.connect(self.path, self.migrations, readonly=True)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def read_write(self) -> Iterator[Conn]:
        """A writable connection, in autocommit (creates and migrates the file)."""
        conn = sqlite_db.connect(self.path, self.migrations)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[Conn]:
        conn = sqlite_db.connect(self.path, self.migrations)
        try:
            with sqlite_db.transaction(conn):
                yield conn
        finally:
            conn.close()


class KeptSqliteHandle(SqliteHandle):
    """A SQLite file used on every request: its writable connection is kept, one per thread and process.

    Closing the last connection to a WAL database checkpoints and deletes the WAL with fsyncs
    (~25 ms on a busy disk), and opening one reads the schema again. `read_write()` and
    `write()` lend this thread's connection instead (SQLite connections stay in the thread
    that opened them; a forked child opens its own); `read()` still uses a read-only one (kept
    when the backend keeps reads: the web).
    """

    def __init__(self, path: Path, migrations: Sequence[str], kept: sqlite_db.KeptReadOnly | None = None) -> None:
        super().__init__(path, migrations, kept)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = sqlite_db.connect(self.path, self.migrations)
            local.pid = os.getpid()
        conn: sqlite3.Connection = local.conn
        return conn

    @contextmanager
    def read_write(self) -> Iterator[Conn]:
        """This thread's writable connection, in autocommit."""
        yield self._conn()

    @contextmanager
    def write(self) -> Iterator[Conn]:
        """One write transaction (`BEGIN IMMEDIATE`) on this thread's connection."""
        with sqlite_db.transaction(self._conn()) as conn:
            yield conn


class PgHandle:
    """The tables of one component in the PostgreSQL database (migrated by `Backend.postgres`)."""

    rowid = "ctid"
    on_postgres = True

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    def exists(self) -> bool:
        return True

    @contextmanager
    def read(self) -> Iterator[Conn]:
        with self.db.connection() as conn:
            yield conn

    read_write = read

    @contextmanager
    def write(self) -> Iterator[Conn]:
        with self.db.transaction() as conn:
            yield conn


class Backend:
    """The stores' home: SQLite files in `data_dir` (db None), or the PostgreSQL database `db`.

    `keep_reads` (the web): each SQLite file's reads go through one read-only connection per
    thread, kept between requests (`sqlite.KeptReadOnly`), instead of one opened per read.
    """

    def __init__(self, data_dir: Path, db: PgDatabase | None = None, *, keep_reads: bool = False) -> None:
        self.data_dir = data_dir
        self.db = db
        self.keep_reads = keep_reads
        self._kept: dict[str, sqlite_db.KeptReadOnly] = {}
        self._kept_lock = threading.Lock()

    def _kept_reads(self, filename: str, migrations: Sequence[str]) -> sqlite_db.KeptReadOnly | None:
        if not self.keep_reads:
            return None
        with self._kept_lock:
            kept = self._kept.get(filename)
            if kept is None:
                path = self.data_dir / filename
                kept = self._kept[filename] = sqlite_db.KeptReadOnly(
                    path, lambda: sqlite_db.connect(path, migrations, readonly=True))
            return kept

    @property
    def on_postgres(self) -> bool:
        return self.db is not None

    def handle(self, filename: str, sqlite_migrations: Sequence[str], *, keep: bool = False) -> SqliteHandle | PgHandle:
        """The database `filename` of the data folder, or the shared PostgreSQL database.

        `keep`: a SQLite file used on every request keeps a connection per thread (`KeptSqliteHandle`);
        PostgreSQL's connections are pooled either way.
        """
        if self.db is not None:
            return PgHandle(self.db)
        kept = self._kept_reads(filename, sqlite_migrations)
        if keep:
            return KeptSqliteHandle(self.data_dir / filename, sqlite_migrations, kept)
        return SqliteHandle(self.data_dir / filename, sqlite_migrations, kept)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def sqlite_backend(data_dir: Path) -> Backend:
    """The default home: SQLite files in the data folder."""
    return Backend(data_dir)
