"""Open, migrate and write SQLite databases the same way everywhere (samples, config, alerts, sessions).

Each database module keeps its own schema (a list of forward migrations, index i bringing
`PRAGMA user_version` from i to i + 1) and calls `connect` with it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from config import ConfigError

# A migration: SQL statements run in one transaction, or a callable that runs its own
# transactions (a long conversion in chunks) and sets `user_version` to its index + 1 itself.
Migration = str | Callable[[sqlite3.Connection], None]


def connect(
    path: Path,
    migrations: Sequence[Migration],
    *,
    readonly: bool = False,
    busy_timeout_ms: int = 10_000,
    wal_limit_bytes: int | None = None,
    rows: bool = True,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open `path` read-only (URI `mode=ro`), or for writing (WAL, migrated to the latest schema).

    The one way PANfm opens a SQLite file: every database passes its own migrations, and the
    sample database its busy timeout and WAL size limit. `rows` gives name-indexed rows
    (`sqlite3.Row`); `check_same_thread=False` is for a connection that a lock serialises
    across threads (the clock's sample writer).
    """
    timeout = busy_timeout_ms / 1000
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=check_same_thread)
    else:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not readonly:
            _wal(conn, timeout)
            conn.execute("PRAGMA synchronous=NORMAL")
            if wal_limit_bytes is not None:
                # Truncate the WAL file back to this size after a checkpoint resets it.
                conn.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")
            migrate(conn, migrations)
    except BaseException:
        conn.close()
        raise
    if rows:
        conn.row_factory = sqlite3.Row
    return conn


class KeptReadOnly:
    """One read-only connection to a SQLite file per thread and process, kept between uses (the web's reads).

    Opening a connection and running its first statement (SQLite reads the file's schema then)
    cost more than a request's small reads themselves; the web's worker threads live as long as
    the process, so each keeps its own. Between uses it holds no transaction (autocommit, and a
    SELECT's cursor is done), so the writers' checkpoints are not held back. A file replaced
    (another inode: a restore) or deleted is noticed by a `stat` at every use: the old connection
    is closed and `open_` asked again (raising as it would have). A caller drops the connection
    after an error on it. SQLite connections stay in the thread that opened them; a forked child
    opens its own.
    """

    def __init__(self, path: Path, open_: Callable[[], sqlite3.Connection]) -> None:
        self.path = path
        self._open = open_
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened (again) when there is none or the file changed."""
        local = self._local
        try:
            st = os.stat(self.path)
            ident: tuple[int, int, int] | None = (os.getpid(), st.st_dev, st.st_ino)
        except OSError:
            ident = None  # missing: `open_` says so its own way
        if ident is None or getattr(local, "ident", None) != ident:
            self.drop()
            local.conn = self._open()
            local.ident = ident
        conn: sqlite3.Connection = local.conn
        return conn

    def drop(self) -> None:
        """Close and forget this thread's connection (a forked child's inherited one is only forgotten)."""
        local = self._local
        conn, ident = getattr(local, "conn", None), getattr(local, "ident", None)
        local.conn = local.ident = None
        if conn is not None and ident is not None and ident[0] == os.getpid():
            with suppress(sqlite3.Error):
                conn.close()


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    """Apply the migrations the database has not seen yet, each in its own transaction (or its own way)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for i in range(version, len(migrations)):
        step = migrations[i]
        if callable(step):
            step(conn)
            if conn.execute("PRAGMA user_version").fetchone()[0] != i + 1:
                raise sqlite3.OperationalError(f"migration {i + 1} did not finish")
            continue
        with transaction(conn):
            # Re-check inside the write lock: another process may have migrated meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] != i:
                continue
            for stmt in step.split(";\n"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {i + 1}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (`BEGIN IMMEDIATE`), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def online_backup(src: Path, dest: Path) -> None:
    """Copy the database at `src` to `dest` (mode 0600) consistently, safe while another process writes.

    VACUUM INTO reads one snapshot (WAL readers never block the writer) into a temporary file
    that is renamed into place, so `dest` is either the old file or a whole copy.
    """
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=10, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("VACUUM INTO ?", (str(tmp),))
    finally:
        conn.close()
    tmp.chmod(0o600)  # VACUUM INTO uses the umask (0644); config.db holds secrets
    os.replace(tmp, dest)


# What the stores raise, for callers outside storage (which never import a driver):
DatabaseError = sqlite3.DatabaseError  # damaged, unreadable or locked-out database
IntegrityError = sqlite3.IntegrityError  # a unique name or key already taken


def integrity_check(path: Path) -> str:
    """PRAGMA integrity_check of one file, read-only: "ok", or the first problems found."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return "; ".join(str(r[0]) for r in rows[:5])


def check_usable(path: Path) -> None:
    """Refuse a SQLite file that is not one or is damaged, naming it (ConfigError); absent is fine."""
    if not path.exists():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path}: not a usable SQLite database ({exc}); restore it from a backup") from None
    if row is None or row[0] != "ok":
        raise ConfigError(f"{path}: damaged SQLite database (quick_check: {row[0] if row else '?'}); restore a backup")


def _wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch to WAL. Several processes or threads opening a new file at once can get "database is
    locked" here at once: SQLite does not always call the busy handler for the journal-mode change.
    So retry it, within the busy timeout."""
    end = time.monotonic() + max(timeout_s, 1.0)
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= end:
                raise
            time.sleep(0.02)
