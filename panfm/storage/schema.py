"""Schema, migrations and connections of `throughput_history.db` (the sample database).

Layout chosen for the access pattern "one device (or interface), a time range":
wide `WITHOUT ROWID` tables keyed (series, ts), so a range query reads one contiguous stretch
of the B-tree. Sample times are integer epoch milliseconds (rates need them); rollup bucket
starts are whole epoch seconds. Migrations 1-5 built the layout keyed by the device id text
(their DDL stays here, for old files and tests); migration 6 converts it to the compact one
(`compact.py`, `compact_migrate.py`), and migration 7 packs its rollup tiers twelve buckets a
row (`tiers.py`, `pack_migrate.py`): that is what the code reads and writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import panfm.storage.compact as c
import panfm.storage.compact_migrate as compact_migrate
import panfm.storage.pack_migrate as pack_migrate
import panfm.storage.raw_migrate as raw_migrate
import panfm.storage.sqlite as sqlite_db
import panfm.storage.tier_head as tier_head
import panfm.storage.tier_views as tier_views

# The metric names, tiers and groupings live in series_def.py (compact.py needs them too).
from panfm.storage.series_def import DEVICE_METRICS as DEVICE_METRICS
from panfm.storage.series_def import GROUPINGS as GROUPINGS
from panfm.storage.series_def import IFACE_METRICS as IFACE_METRICS
from panfm.storage.series_def import INT_METRICS as INT_METRICS
from panfm.storage.series_def import TIERS as TIERS

HISTORY_DB = "throughput_history.db"

WAL_LIMIT_BYTES = 64 * 1024 * 1024  # checkpoint(TRUNCATE) once the WAL passes this
BUSY_TIMEOUT_MS = 10_000


def _rollup_cols(metrics: tuple[str, ...]) -> str:
    return ",\n".join(f"{m}_avg REAL, {m}_min REAL, {m}_max REAL" for m in metrics)


def _raw_device_cols() -> str:
    return ",\n".join(f"{m} {'INTEGER' if m in INT_METRICS else 'REAL'}" for m in DEVICE_METRICS)


def _rollup_tables() -> str:
    parts = []
    for dev_table, if_table, _ in TIERS.values():
        parts.append(
            f"CREATE TABLE {dev_table} (device_id TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,\n"
            f"{_rollup_cols(DEVICE_METRICS)},\nPRIMARY KEY (device_id, bucket)) WITHOUT ROWID;\n"
        )
        parts.append(
            f"CREATE TABLE {if_table} (device_id TEXT NOT NULL, interface TEXT NOT NULL, bucket INTEGER NOT NULL,\n"
            f"n INTEGER NOT NULL, {_rollup_cols(IFACE_METRICS)},\n"
            "PRIMARY KEY (device_id, interface, bucket)) WITHOUT ROWID;\n"
        )
    return "".join(parts)


def _grouping_cols(metrics: tuple[str, ...]) -> str:
    # No minimum: charts draw the average and the maximum; summary() reads the tier itself.
    return ", ".join(f"{m}_avg REAL, {m}_max REAL" for m in metrics)


def _grouping_tables() -> str:
    parts = []
    for dev_table, if_table, _ in GROUPINGS.values():
        parts.append(
            f"CREATE TABLE {dev_table} (device_id TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,\n"
            f"{_grouping_cols(DEVICE_METRICS)},\nPRIMARY KEY (device_id, bucket)) WITHOUT ROWID;\n"
        )
        parts.append(
            f"CREATE TABLE {if_table} (device_id TEXT NOT NULL, interface TEXT NOT NULL, bucket INTEGER NOT NULL,\n"
            f"n INTEGER NOT NULL, {_grouping_cols(IFACE_METRICS)},\n"
            "PRIMARY KEY (device_id, interface, bucket)) WITHOUT ROWID;\n"
        )
    return "".join(parts)


def weight_sql(metric: str, alias: str = "") -> str:
    """SQL for how many samples a rollup row's average of `metric` stands for.

    Its own count (`<metric>_n`, schema version 4). A row written before that has none: it
    weighs its bucket's sample count `n` when it has an average (the best it can do; a metric
    missing in only some of its samples is then slightly off), nothing when it has none.
    """
    a = f"{alias}." if alias else ""
    return f"coalesce({a}{metric}_n, CASE WHEN {a}{metric}_avg IS NOT NULL THEN {a}n END)"


def weighted_avg_sql(metric: str, alias: str = "") -> str:
    """SQL for the average of rollup rows' averages of `metric`, each weighted by its own count."""
    a = f"{alias}." if alias else ""
    w = weight_sql(metric, alias)
    return f"sum({a}{metric}_avg * {w}) / sum({w})"


def _count_columns() -> str:
    tables = [(dev, DEVICE_METRICS) for dev, _, _ in (*TIERS.values(), *GROUPINGS.values())]
    tables += [(ifc, IFACE_METRICS) for _, ifc, _ in (*TIERS.values(), *GROUPINGS.values())]
    return "".join(f"ALTER TABLE {t} ADD COLUMN {m}_n INTEGER;\n" for t, metrics in tables for m in metrics)


def grouping_sql(tier: str, ranged: bool = True, counts: bool = True) -> tuple[str, str]:
    """Return the INSERT OR REPLACE statements that (re)compute a tier's materialised grouping.

    With `ranged`, they take (start_s, end_s) and recompute the groups of the tier's buckets
    in that range; without, they compute every group (the migration that adds the tables).
    Each metric's average weighs every bucket by that metric's own count, and the group keeps
    the summed count (`<metric>_n`) for wider regrouping. `counts=False` is the statement of
    schema version 2, before those columns existed (kept for its migration).
    """
    tier_dev, tier_if, _ = TIERS[tier]
    dev_table, if_table, width = GROUPINGS[tier]
    rng = " AND s.bucket >= ? AND s.bucket < ?" if ranged else ""

    def agg(metrics: tuple[str, ...]) -> tuple[str, str]:
        if not counts:
            cols = ", ".join(f"{m}_avg, {m}_max" for m in metrics)
            exprs = ", ".join(
                f"sum(s.{m}_avg * s.n) / sum(CASE WHEN s.{m}_avg IS NOT NULL THEN s.n END), max(s.{m}_max)"
                for m in metrics
            )
            return cols, exprs
        cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in metrics)
        exprs = ", ".join(
            f"{weighted_avg_sql(m, 's')}, max(s.{m}_max), coalesce(sum({weight_sql(m, 's')}), 0)" for m in metrics
        )
        return cols, exprs

    cols, exprs = agg(DEVICE_METRICS)
    dev_sql = (
        f"INSERT OR REPLACE INTO {dev_table} (device_id, bucket, n, {cols}) "  # noqa: S608  # nosec B608
        f"SELECT s.device_id, (s.bucket / {width}) * {width} AS g, sum(s.n), {exprs} "
        f"FROM known_devices k JOIN {tier_dev} s ON s.device_id = k.device_id{rng} GROUP BY s.device_id, g"
    )
    cols, exprs = agg(IFACE_METRICS)
    if_sql = (
        f"INSERT OR REPLACE INTO {if_table} (device_id, interface, bucket, n, {cols}) "  # noqa: S608  # nosec B608
        f"SELECT s.device_id, s.interface, (s.bucket / {width}) * {width} AS g, sum(s.n), {exprs} "
        f"FROM known_interfaces k JOIN {tier_if} s ON s.device_id = k.device_id AND s.interface = k.interface{rng} "
        "GROUP BY s.device_id, s.interface, g"
    )
    return dev_sql, if_sql


def _compact(conn: sqlite3.Connection) -> None:
    # 6: the compact layout (compact.py), converted in chunks outside one long transaction.
    from panfm.storage.compact_migrate import convert

    convert(conn)


# Forward-only migrations; index i brings the schema from user_version i to i + 1. A callable
# step runs its own transactions and sets the version itself (a long, resumable conversion).
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    f"""
    CREATE TABLE device_samples (device_id TEXT NOT NULL, ts INTEGER NOT NULL,
    {_raw_device_cols()},
    PRIMARY KEY (device_id, ts)) WITHOUT ROWID;
    CREATE TABLE interface_samples (device_id TEXT NOT NULL, interface TEXT NOT NULL, ts INTEGER NOT NULL,
    {", ".join(f"{m} REAL" for m in IFACE_METRICS)}, counted INTEGER NOT NULL,
    PRIMARY KEY (device_id, interface, ts)) WITHOUT ROWID;
    {_rollup_tables()}
    CREATE TABLE known_devices (device_id TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE known_interfaces (device_id TEXT NOT NULL, interface TEXT NOT NULL,
    PRIMARY KEY (device_id, interface)) WITHOUT ROWID;
    CREATE TABLE rollup_marks (tier TEXT PRIMARY KEY, done_until INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE baselines (device_id TEXT PRIMARY KEY, ts REAL NOT NULL, serial TEXT, uptime_seconds INTEGER,
    counters TEXT NOT NULL);
    CREATE TABLE device_status (device_id TEXT PRIMARY KEY, state TEXT NOT NULL, last_poll REAL,
    last_success REAL, last_error TEXT, consecutive_failures INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE clock_stats (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL, heartbeat REAL NOT NULL);
    CREATE TABLE inventory (device_id TEXT PRIMARY KEY, ts REAL NOT NULL, doc TEXT NOT NULL);
    """,
    # 2: materialised 30-minute grouping of the 5-minute tier, filled from the rows already there.
    _grouping_tables() + ";\n".join(grouping_sql("5m", ranged=False, counts=False)) + ";\n",
    # 3: the latest per-dataplane CPU and busiest core of each device (ts in ms, as its sample).
    "CREATE TABLE dataplane_latest (device_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, doc TEXT NOT NULL);\n",
    # 4: each metric's own sample count in every rollup and grouping row, so averages of rows
    # where a metric was missing in some samples weigh only the samples that have it. Rows
    # already stored keep NULL (see weight_sql); adding a column rewrites no row.
    _count_columns(),
    # 5: a sample is dated when its counters request was sent; its round trip (ms) bounds that date,
    # and a rate whose two round trips exceed 2 % of Δt is flagged approximate (1, else 0; NULL: no rate).
    "ALTER TABLE device_samples ADD COLUMN rtt_ms REAL;\n"
    "ALTER TABLE device_samples ADD COLUMN approx INTEGER;\n"
    "ALTER TABLE interface_samples ADD COLUMN approx INTEGER;\n"
    "ALTER TABLE baselines ADD COLUMN rtt_ms REAL;\n",
    # 6: the compact layout (compact.py), converted in chunks outside one long transaction.
    compact_migrate.convert,
    # 7: the rollup tiers packed twelve buckets a row (tiers.py), converted in chunks likewise.
    pack_migrate.convert,
    # 8: each packed tier's open period kept unpacked, one row per bucket (tier_head.py); the
    # old-name views read it too.
    ";\n".join([*tier_head.ddl(), *(f"DROP VIEW IF EXISTS {v}" for v in (*c.TIER_TABLES, *c.GROUP_TABLES)),
                *tier_views.views()]) + ";\n",
    # 9: raw rows' times in whole seconds (raw_migrate.py: four bytes a key instead of six),
    # converted in chunks likewise.
    raw_migrate.convert,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StorageUnavailable(Exception):
    """The sample database is missing, unreadable or not yet created by the clock."""


def connect_writer(path: Path, wal_limit_bytes: int = WAL_LIMIT_BYTES) -> sqlite3.Connection:
    """Open (creating and migrating) the database for the clock, the only writer."""
    # check_same_thread=False: the clock's jobs run in a thread pool; SampleStore serialises
    # access with its own lock.
    conn = sqlite_db.connect(path, MIGRATIONS, busy_timeout_ms=BUSY_TIMEOUT_MS, wal_limit_bytes=wal_limit_bytes,
                             rows=False, check_same_thread=False)
    tier_views.register(conn)
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """Open a read-only connection (the web, one per request) or raise StorageUnavailable."""
    if not path.is_file():
        raise StorageUnavailable("sample database not found (has the clock started?)")
    try:
        conn = sqlite_db.connect(path, MIGRATIONS, readonly=True, busy_timeout_ms=BUSY_TIMEOUT_MS)
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"sample database unreadable: {exc}") from exc
    tier_views.register(conn)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        conn.close()
        raise StorageUnavailable(f"sample database unreadable: {exc}") from exc
    if version < SCHEMA_VERSION:
        conn.close()
        raise StorageUnavailable(f"sample database schema {version} < {SCHEMA_VERSION} (clock not migrated yet)")
    return conn


def migrate(conn: sqlite3.Connection,
            migrations: list[str | Callable[[sqlite3.Connection], None]] | None = None) -> None:
    """Bring the sample database to the latest schema (or to `migrations`, for tests of old files)."""
    sqlite_db.migrate(conn, MIGRATIONS if migrations is None else migrations)
