"""Open, migrate and use a PostgreSQL database the same way everywhere (every store on `database_url`).

The one connection layer of the PostgreSQL backend:

- `PgDatabase(url)`: a bounded `psycopg_pool` pool of autocommit connections, each with a
  statement timeout; a connection is checked when taken from the pool, and the first dead one
  found (a server restart) drains the whole pool, so the next use waits only for a new
  connection (reconnection attempts last `RECONNECT_S`, then the next use starts another): a
  clock writes again within an interval of the server's return. A use while the server is
  away fails as `PgUnavailable`.
- `PgDatabase.transaction()`: one explicit transaction on one pooled connection; the stores'
  SQL keeps SQLite's `?` placeholders (the house style), translated once to psycopg's `%s`
  by `qmark`, so a statement that serves both backends is written once.
- `PgDatabase.migrate(component, migrations)`: versioned forward migrations per component
  (`panfm_schema`), run under a transaction-scoped advisory lock: two processes starting
  together migrate once, the second finds the work done.
- `check_database(url)`: what the web and the clock run at start; a wrong URL, an unreachable
  server, a refused password, missing rights or a server older than 13 become a `ConfigError`
  naming the setting and the cause, never a traceback and never the password.

Errors leave as `PgDatabaseError` / `PgIntegrityError`, subclasses of the storage front door's
`DatabaseError` / `IntegrityError`, so callers catch one name whatever the backend.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
import psycopg.errors
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from config import ConfigError
from panfm.redact import without

log = logging.getLogger("panfm.storage")

MIN_SERVER_VERSION = 130000  # PostgreSQL 13: the oldest release still supported when this was written
SETTING = "database_url"
STATEMENT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 15.0  # waiting for a free connection of the pool
# One background reconnection attempt (backoff 1, 2, 4 s) before it is given up; the next use
# starts a new one at once. Short, so a server back after a restart is found within seconds
# (a long attempt backs off to 8, 16, 32 s between tries).
RECONNECT_S = 5.0
MAX_LIFETIME_S = 1800.0  # connections are replaced now and then (server-side memory, failovers)
# One key for every migration of every component: migrations are rare and short, serialising
# them all keeps `panfm_schema` itself free of races (CREATE TABLE IF NOT EXISTS is not).
MIGRATION_LOCK = 0x70616E666D  # "panfm"


class PgDatabaseError(sqlite3.DatabaseError):
    """A PostgreSQL error, as the storage front door's `DatabaseError` (callers import no driver)."""


class PgIntegrityError(sqlite3.IntegrityError, PgDatabaseError):
    """A unique name or key already taken, on PostgreSQL."""


class PgUnavailable(PgDatabaseError):
    """The server cannot be reached right now (restarting, paused, pool exhausted)."""


_SQLITE_AWAY = ("database is locked", "disk is full", "disk i/o error", "unable to open", "readonly database")


def database_away(exc: BaseException) -> bool:
    """Whether `exc` says the database is away, full or busy right now, on either backend.

    PostgreSQL restarting, a full disk on its server, an exhausted pool (`PgUnavailable`); a
    SQLite file locked, on a full disk or unreadable. Not an error in the SQL (a bug).
    """
    if isinstance(exc, PgUnavailable):
        return True
    return isinstance(exc, sqlite3.OperationalError) and any(w in str(exc).lower() for w in _SQLITE_AWAY)


def url_password(url: str) -> str | None:
    """The password inside a libpq URL, if any (to keep it out of every message)."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


_USERINFO = re.compile(r"(postgres(?:ql)?://[^:/@\s]*):[^@\s]*@")


def hide_password(text: str, url: str = "") -> str:
    """`text` with the URL's password (and any `scheme://user:password@`) masked."""
    text = _USERINFO.sub(r"\1:***@", text)
    password = url_password(url) if url else None
    return without(text, [password]) if password else text


def describe(url: str) -> str:
    """`host:port/dbname` of a URL, for messages (no user, no password)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "(unparsable URL)"


@functools.lru_cache(maxsize=1024)
def qmark(sql: str, binary: bool = False) -> str:
    """SQLite's `?` placeholders as psycopg's `%s` (`%b`: sent in binary), and a literal `%` as `%%`, outside quotes."""
    mark = "%b" if binary else "%s"
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append(mark)
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def _wrap(exc: BaseException) -> PgDatabaseError:
    """The storage error for a driver or pool error (message without the password)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, psycopg.IntegrityError):
        return PgIntegrityError(text)
    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
        return PgUnavailable(hide_password(text))
    return PgDatabaseError(hide_password(text))


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except PgDatabaseError:
        raise
    except (psycopg.Error, PoolTimeout) as exc:
        raise _wrap(exc) from None


class PgConn:
    """One pooled connection lent to a store: `execute` takes `?` SQL, rows come back as dicts."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None, *,
                binary: bool = False) -> psycopg.Cursor[dict[str, Any]]:
        """Run one statement; `binary`: send the parameters in binary (big arrays: no text quoting or parsing)."""
        with _translated():
            return self.raw.execute(qmark(sql, binary), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        with _translated(), self.raw.cursor() as cur:
            cur.executemany(qmark(sql), params)

    def copy_rows(self, table: str, columns: Sequence[str], types: Sequence[str],
                  rows: Iterable[Sequence[Any]]) -> None:
        """`COPY table (columns) FROM STDIN` in binary, each value dumped as its PostgreSQL type (`types`).

        The bulk path of the sample writer: thousands of rows cost a few milliseconds, where
        text arrays or one statement per row cost tens or hundreds. `table` and `columns` are
        constant names of the caller, never input.
        """
        cols = ", ".join(columns)
        with _translated(), self.raw.cursor() as cur, cur.copy(
                f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)".encode()) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Send the statements inside without waiting for each result (psycopg's pipeline mode).

        The client builds the next statement's parameters while the server runs the last one;
        errors surface at the block's end at the latest. No COPY inside.
        """
        with _translated(), self.raw.pipeline():
            yield

    def fetchone(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, Any] | None:
        return self.execute(sql, params).fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return self.execute(sql, params).fetchall()


class PgDatabase:
    """A bounded pool of connections to one PostgreSQL database (one per process and URL)."""

    def __init__(self, url: str, *, max_size: int = 8, name: str = "panfm",
                 statement_timeout_ms: int = STATEMENT_TIMEOUT_MS, pool_timeout_s: float = POOL_TIMEOUT_S) -> None:
        self.url = url
        self.where = describe(url)
        self.pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_S,
                "application_name": name,
                "options": f"-c statement_timeout={int(statement_timeout_ms)}",
            },
            # Checked when lent: a connection the server dropped (restart) is replaced, not lent;
            # and the first dead one found drains the whole pool (see `_check`).
            check=self._check,
            timeout=pool_timeout_s,
            reconnect_timeout=RECONNECT_S,  # then give the attempt up; the next request starts another
            max_lifetime=MAX_LIFETIME_S,
            name=name,
            open=False,
        )
        self._drain_lock = threading.Lock()
        self._drained_at = -math.inf
        self._scoped = threading.local()  # the connection a `request_scope` of this thread holds
        self.pool.open(wait=False)

    def _check(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """The pool's check of a connection it lends; a dead one means the server restarted: drop every idle one.

        Without the drain the pool would find its dead connections one by one, each costing a
        failed check and a growing pause (1, 2, 4, 8 s...): 15 s and more before the first good
        connection after a restart. Drained, the next request waits only for a new connection.
        """
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            now = time.monotonic()
            with self._drain_lock:
                drain = now - self._drained_at > 1.0  # the other dead connections: one drain is enough
                if drain:
                    self._drained_at = now
            if drain:
                log.warning("[STORAGE] PostgreSQL %s: a pooled connection is dead (server restarted?);"
                            " replacing every idle one", self.where)
                self.pool.drain()
            raise

    @contextmanager
    def request_scope(self) -> Iterator[None]:
        """Inside, this thread's `connection()` and `transaction()` share one pooled connection.

        A web request asked the pool six times (its session, its user, the device, the samples),
        and the pool checked each connection it lent with a round trip of its own: twelve round
        trips for six statements, each a wait for the interpreter again on a busy worker. In a
        scope the first `connection()` or `transaction()` takes one from the pool (checked once)
        and the scope keeps it until it ends; a request that reads nothing takes none (so
        `/api/health` still answers while the database is away). A nested scope, or a
        connection asked for while the held one is inside a transaction or broken, goes to the
        pool as before.
        """
        scoped = self._scoped
        if getattr(scoped, "stack", None) is not None:
            yield
            return
        scoped.stack, scoped.conn = contextlib.ExitStack(), None
        try:
            yield
        finally:
            stack, scoped.stack, scoped.conn = scoped.stack, None, None
            with _translated():
                stack.close()

    def _held(self) -> PgConn | None:
        """The scope's connection (taken from the pool at the first ask), or None outside a scope."""
        scoped = self._scoped
        stack = getattr(scoped, "stack", None)
        if stack is None:
            return None
        held: PgConn | None = scoped.conn
        if held is None:
            with _translated():
                held = scoped.conn = PgConn(stack.enter_context(self.pool.connection()))
        if held.raw.closed or held.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return None
        return held

    @contextmanager
    def connection(self) -> Iterator[PgConn]:
        """One pooled connection in autocommit (each statement its own transaction): reads."""
        held = self._held()
        if held is not None:
            yield held
            return
        with _translated(), self.pool.connection() as conn:
            yield PgConn(conn)

    @contextmanager
    def transaction(self) -> Iterator[PgConn]:
        """One explicit transaction on one pooled connection, rolled back on any error."""
        held = self._held()
        if held is not None:
            with _translated(), held.raw.transaction():
                yield held
            return
        with _translated(), self.pool.connection() as conn, conn.transaction():
            yield PgConn(conn)

    def migrate(self, component: str, migrations: Sequence[str]) -> int:
        """Bring `component` to the last of its migrations (index i: version i to i + 1); return how many ran.

        One transaction under the migration advisory lock: a process that waited for the lock
        reads the version the other one committed and finds nothing left to do.
        """
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            tx.execute("CREATE TABLE IF NOT EXISTS panfm_schema (component TEXT PRIMARY KEY,"
                       " version INTEGER NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            row = tx.fetchone("SELECT version FROM panfm_schema WHERE component = ?", (component,))
            version = int(row["version"]) if row else 0
            for i in range(version, len(migrations)):
                tx.execute(migrations[i])
            if len(migrations) > version:
                tx.execute(
                    "INSERT INTO panfm_schema (component, version) VALUES (?, ?) ON CONFLICT (component)"
                    " DO UPDATE SET version = excluded.version, updated_at = now()",
                    (component, len(migrations)),
                )
                log.info("[STORAGE] PostgreSQL %s: %s schema %d -> %d", self.where, component, version,
                         len(migrations))
        return max(0, len(migrations) - version)

    def close(self) -> None:
        self.pool.close()


def check_database(url: str) -> int:
    """Connect once and check the server (version 13 or newer, rights to create tables); return its version.

    Raises `ConfigError` naming the setting and the cause; the message never holds the password.
    """
    where = describe(url)
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ConfigError(f"setting {SETTING}: cannot connect to PostgreSQL at {where}: "
                          f"{_first_line(hide_password(str(exc), url))}") from None
    except (psycopg.Error, ValueError) as exc:  # ProgrammingError: not a valid connection string
        raise ConfigError(f"setting {SETTING}: not a usable PostgreSQL URL: "
                          f"{_first_line(hide_password(str(exc), url))}") from None
    try:
        version = conn.info.server_version
        if version < MIN_SERVER_VERSION:
            raise ConfigError(f"setting {SETTING}: PostgreSQL at {where} is version {version // 10000}; "
                              "PANfm needs 13 or newer")
        try:
            with conn.transaction():
                conn.execute("CREATE TABLE panfm_rights_probe (x INTEGER)")
                raise _Probe
        except _Probe:
            pass
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigError(f"setting {SETTING}: the user may not create tables in PostgreSQL at {where} "
                          f"({_first_line(str(exc))}); grant it CREATE on the schema, or own the database") from None
    except psycopg.errors.DuplicateTable:
        pass  # a probe left by a crashed start: the right to create is proven anyway
    except psycopg.Error as exc:
        raise ConfigError(f"setting {SETTING}: PostgreSQL at {where}: "
                          f"{_first_line(hide_password(str(exc), url))}") from None
    finally:
        conn.close()
    return version


class _Probe(Exception):
    """Rolls the rights probe back."""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"


def database_check(db: PgDatabase) -> list[tuple[str, str]]:
    """What `db check` reports on PostgreSQL: (item, "ok" or the problem), read-only."""
    out: list[tuple[str, str]] = []
    try:
        with db.connection() as conn:
            row = conn.fetchone("SELECT version() AS v, pg_database_size(current_database()) AS size")
            out.append(("server", f"ok ({str(row['v']).split(',')[0]})" if row else "no answer"))
            if row:
                out.append(("size", f"{int(row['size']) // (1024 * 1024)} MB"))
            for r in conn.fetchall("SELECT component, version FROM panfm_schema ORDER BY component"):
                out.append((f"schema {r['component']}", f"ok (version {r['version']})"))
            bad = conn.fetchall("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                                " WHERE NOT i.indisvalid")
            out.append(("indexes", "ok" if not bad else "invalid: " + ", ".join(r["relname"] for r in bad)))
    except PgDatabaseError as exc:
        out.append(("server", str(exc)))
    return out


def dump(url: str, dest_file: str, pg_dump: str) -> None:
    """Write a `pg_dump` custom-format archive of the database to `dest_file` (the password via PGPASSWORD)."""
    import os
    import subprocess  # nosec B404 (pg_dump, found on PATH by the caller, with a fixed argument list)

    env = dict(os.environ)
    password = url_password(url)
    if password:
        env["PGPASSWORD"] = password
    parts = urlsplit(url)
    target = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc else parts.netloc)
    user = parts.username
    argv = [pg_dump, "--format=custom", "--no-owner", f"--file={dest_file}"]
    if user:
        argv.append(f"--username={user}")
    argv.append(f"--dbname={target.geturl()}")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600, check=False)  # noqa: S603  # nosec B603
    if done.returncode != 0:
        raise PgDatabaseError(f"pg_dump failed: {hide_password(done.stderr.strip(), url)[:500]}")
