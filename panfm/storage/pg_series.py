"""The time series on PostgreSQL: compact tables, day partitions, and their upkeep (component "series").

Designed compact from the start (issue 17): a device is an integer key (`ts_device.dk`), an
interface another (`ts_iface.ik`), never the UUID text in every row; float gauges are 4-byte
`REAL`, counts and interface bits per second whole numbers. A raw row is keyed by its device
and its *slot* (epoch seconds of the start of the collection interval it belongs to), so a
device has at most one sample per slot whichever clock wrote it (`ON CONFLICT DO NOTHING`);
its exact time is kept as milliseconds after the slot start (`off_ms`). Interface raw rows
are packed (migration 4): one `iface_packed` row per device and slot holds its interfaces'
values as arrays in one order; `iface_samples` is the view of them one interface per row.

Raw device and interface rows are partitioned by day on the slot (`PARTITION BY RANGE`);
`ensure_partitions` creates today's and the next days' ahead, `drop_partitions_before` is the
raw retention (a `DROP TABLE` per day: no bulk DELETE, no vacuum). A default partition catches
a row dated outside every day partition (a host clock far off) rather than losing it.
"""

from __future__ import annotations

import datetime as dt
import re

from panfm.storage.postgres import PgConn, PgDatabase
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS, INT_METRICS

DAY_S = 86400
PARTITIONED = ("device_samples", "iface_packed")
DAYS_AHEAD = 2  # partitions created ahead of today
PARTITION_LOCK = 0x70616E666E  # advisory lock key of partition upkeep
_PART_NAME = re.compile(r"^(device_samples|iface_packed)_p(\d{8})$")

# Interface rates stored as whole numbers (bits per second); the others as REAL.
IFACE_WHOLE = frozenset({"in_bps", "out_bps"})
TIER_BUCKETS = {"5m": 300, "1h": 3600}


def _dev_type(m: str) -> str:
    return "INTEGER" if m in INT_METRICS else "REAL"


def _if_type(m: str) -> str:
    return "BIGINT" if m in IFACE_WHOLE else "REAL"


def _rollup_cols(metrics: tuple[str, ...]) -> str:
    return ", ".join(f"{m}_avg REAL, {m}_min REAL, {m}_max REAL, {m}_n INTEGER" for m in metrics)


def _ddl() -> str:
    dev_cols = ", ".join(f"{m} {_dev_type(m)}" for m in DEVICE_METRICS)
    if_cols = ", ".join(f"{m} {_if_type(m)}" for m in IFACE_METRICS)
    parts = [
        "CREATE TABLE ts_device (dk INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY, device_id TEXT NOT NULL UNIQUE)",
        "CREATE TABLE ts_iface (ik INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY, dk INTEGER NOT NULL,"
        " interface TEXT NOT NULL, UNIQUE (dk, interface))",
        f"CREATE TABLE device_samples (dk INTEGER NOT NULL, slot BIGINT NOT NULL, off_ms INTEGER NOT NULL, {dev_cols},"
        " rtt_ms REAL, approx BOOLEAN, PRIMARY KEY (dk, slot)) PARTITION BY RANGE (slot)",
        f"CREATE TABLE iface_samples (ik INTEGER NOT NULL, slot BIGINT NOT NULL, off_ms INTEGER NOT NULL, {if_cols},"
        " counted BOOLEAN NOT NULL, approx BOOLEAN, PRIMARY KEY (ik, slot)) PARTITION BY RANGE (slot)",
        "CREATE TABLE device_samples_default PARTITION OF device_samples DEFAULT",
        "CREATE TABLE iface_samples_default PARTITION OF iface_samples DEFAULT",
        # Fleet-wide windows (rollups of the closed buckets) read by time: a BRIN index is tiny.
        "CREATE INDEX device_samples_slot ON device_samples USING brin (slot)",
        "CREATE INDEX iface_samples_slot ON iface_samples USING brin (slot)",
    ]
    for tier in TIER_BUCKETS:
        parts.append(f"CREATE TABLE device_{tier} (dk INTEGER NOT NULL, bucket BIGINT NOT NULL, n INTEGER NOT NULL,"
                     f" {_rollup_cols(DEVICE_METRICS)}, PRIMARY KEY (dk, bucket))")
        parts.append(f"CREATE TABLE iface_{tier} (ik INTEGER NOT NULL, bucket BIGINT NOT NULL, n INTEGER NOT NULL,"
                     f" {_rollup_cols(IFACE_METRICS)}, PRIMARY KEY (ik, bucket))")
    parts += [
        "CREATE TABLE rollup_marks (tier TEXT PRIMARY KEY, done_until BIGINT NOT NULL)",
        "CREATE TABLE baselines (device_id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, serial TEXT,"
        " uptime_seconds BIGINT, counters TEXT NOT NULL, rtt_ms DOUBLE PRECISION)",
        "CREATE TABLE device_status (device_id TEXT PRIMARY KEY, state TEXT NOT NULL, last_poll DOUBLE PRECISION,"
        " last_success DOUBLE PRECISION, last_error TEXT, consecutive_failures INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE clock_stats (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL,"
        " heartbeat DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE inventory (device_id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, doc TEXT NOT NULL)",
        "CREATE TABLE dataplane_latest (device_id TEXT PRIMARY KEY, ts BIGINT NOT NULL, doc TEXT NOT NULL)",
    ]
    return ";\n".join(parts)


STATE_TABLES = ("baselines", "device_status", "dataplane_latest")  # one row per device, upserted each cycle
STATE_FILLFACTOR = 40
GROUP_S = 1800  # the materialised grouping of the 5-minute tier (30-day charts read it)


def _grouping_ddl() -> str:
    parts = []
    for kind, key, metrics in (("device", "dk", DEVICE_METRICS), ("iface", "ik", IFACE_METRICS)):
        cols = ", ".join(f"{m}_avg REAL, {m}_max REAL, {m}_n INTEGER" for m in metrics)
        parts.append(f"CREATE TABLE {kind}_5m_g30m ({key} INTEGER NOT NULL, bucket BIGINT NOT NULL,"
                     f" n INTEGER NOT NULL, {cols}, PRIMARY KEY ({key}, bucket))")
    return ";\n".join(parts)


# Interface raw rows packed: one row per device and slot, its interfaces' values as arrays in the
# same order (`iks[k]` is the interface of `in_bps[k]`, `off_ms[k]`...). A cycle of 1,000 firewalls
# x 15 interfaces on three clocks writes ~333 rows per clock instead of ~5,000 (bench/pg_iface_layouts.py,
# docs/benchmarks.md): the writer sends flat arrays in device order and the server slices each device's run.
IFACE_ARRAYS = ("iks", "off_ms", *IFACE_METRICS, "counted", "approx")
_IF_ELEMENTS = ("ik", "off_ms", *IFACE_METRICS, "counted", "approx")


def _packed_ddl() -> str:
    arrays = ", ".join(f"{m} {_if_type(m)}[]" for m in IFACE_METRICS)
    elements = ", ".join(f"p.{a}" for a in IFACE_ARRAYS)
    names = ", ".join(_IF_ELEMENTS)
    aggs = ", ".join(f"array_agg(s.{c} ORDER BY s.ik)" for c in _IF_ELEMENTS)
    return ";\n".join([
        # Every raw interface row is read once (7 days by default): minutes on a big fleet, far
        # past the pool's statement timeout; the migration's transaction lifts it for itself.
        "SET LOCAL statement_timeout = 0",
        f"CREATE TABLE iface_packed (dk INTEGER NOT NULL, slot BIGINT NOT NULL, iks INTEGER[] NOT NULL,"
        f" off_ms INTEGER[] NOT NULL, {arrays}, counted BOOLEAN[] NOT NULL, approx BOOLEAN[],"
        " PRIMARY KEY (dk, slot)) PARTITION BY RANGE (slot)",
        "CREATE TABLE iface_packed_default PARTITION OF iface_packed DEFAULT",
        "CREATE INDEX iface_packed_slot ON iface_packed USING brin (slot)",
        # The same day partitions as the old table (its bounds copied), so its rows land in them.
        "DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS b"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname = 'iface_samples' AND left(c.relname, 15) = 'iface_samples_p' LOOP"
        " EXECUTE 'CREATE TABLE iface_packed_p' || substr(r.name, 16) || ' PARTITION OF iface_packed ' || r.b;"
        " END LOOP; END $$",
        f"INSERT INTO iface_packed (dk, slot, {', '.join(IFACE_ARRAYS)}) SELECT i.dk, s.slot, {aggs}"  # noqa: S608  # nosec B608 (constant names)
        " FROM iface_samples s JOIN ts_iface i ON i.ik = s.ik GROUP BY i.dk, s.slot",
        "DROP TABLE iface_samples",
        # The old name as a view of one row per interface and slot (rollups, checks, ad-hoc SQL);
        # give it `dk` and `slot` to find rows along the key (it cannot use an interface index).
        f"CREATE VIEW iface_samples AS SELECT p.dk, p.slot, u.* FROM iface_packed p"  # noqa: S608  # nosec B608
        f" CROSS JOIN LATERAL unnest({elements}) AS u({names})",
    ])


def iface_element_cols(alias: str, k: str) -> str:
    """The columns of one interface (position `k` of its packed row `alias`), named as the old rows' columns."""
    return ", ".join(f"{alias}.{a}[{k}] AS {n}" for a, n in zip(IFACE_ARRAYS, _IF_ELEMENTS, strict=True)
                     if a != "iks")


PG_MIGRATIONS: list[str] = [
    _ddl(),
    # 2: 30-minute groups of the 5-minute rows, kept as buckets close: a 30-day chart reads 1,440
    # rows instead of grouping 8,640 per request (the same as GROUPINGS on SQLite).
    _grouping_ddl(),
    # 3: one clock_stats row per clock (node_id), not one row shared by every clock. `id` stays
    # (defaulting to 1) so a copy of SQLite's one row still fits; it lands as node "".
    "ALTER TABLE clock_stats ADD COLUMN node_id TEXT NOT NULL DEFAULT '';\n"
    "ALTER TABLE clock_stats DROP CONSTRAINT clock_stats_pkey;\n"
    "ALTER TABLE clock_stats DROP CONSTRAINT clock_stats_id_check;\n"
    "ALTER TABLE clock_stats ALTER COLUMN id SET DEFAULT 1;\n"
    "ALTER TABLE clock_stats ADD PRIMARY KEY (node_id)",
    # 4: interface raw rows packed per device and slot (`iface_packed`); `iface_samples` a view.
    _packed_ddl(),
    # 5: the devices' newest state is rewritten every cycle, one row per device: pages filled to
    # 40 % leave room for each row's next version on its own page (a HOT update: no index entry,
    # no dead row elsewhere). Full pages sent every update to another page: the 500-firewall
    # write's upserts took ~40 % longer and baselines grew 7x in 20 cycles (bench/pg_write.py).
    # Existing pages keep their fill until rows move; new pages get it.
    ";\n".join(f"ALTER TABLE {t} SET (fillfactor = {STATE_FILLFACTOR})" for t in STATE_TABLES),
    # 6: what the alerts read of each inventory (`alert_inputs`, a few hundred bytes) beside the
    # whole document: the leader evaluates every clock's devices and reads these, not documents
    # of log entries. NULL in rows written before (the reader falls back to the document).
    "ALTER TABLE inventory ADD COLUMN inputs TEXT",
]


def day_of(epoch_s: float) -> dt.date:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).date()


def day_start(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def ensure_partitions(db: PgDatabase, now: float, days_ahead: int = DAYS_AHEAD) -> int:
    """Create the day partitions from yesterday to `days_ahead` days after today; return how many were new.

    Under an advisory lock (two clocks doing upkeep at once create each partition once). A
    partition is created only when the default partition holds none of its rows (else its
    creation would fail): those rows stay readable where they are.
    """
    today = day_of(now)
    created = 0
    with db.transaction() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
        existing = {r["relname"] for r in tx.fetchall(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('device_samples', 'iface_packed')")}
        for offset in range(-1, days_ahead + 1):
            day = today + dt.timedelta(days=offset)
            lo = day_start(day)
            for table in PARTITIONED:
                name = f"{table}_p{day:%Y%m%d}"
                if name in existing:
                    continue
                stray = tx.fetchone(f"SELECT 1 AS x FROM {table}_default WHERE slot >= ? AND slot < ? LIMIT 1",  # noqa: S608  # nosec B608
                                    (lo, lo + DAY_S))
                if stray:
                    continue
                # Names and bounds are built from dates and constants, never from input.
                tx.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ({lo}) TO ({lo + DAY_S})")
                created += 1
    return created


def partitions(conn: PgConn) -> dict[str, list[dt.date]]:
    """The day partitions of each partitioned table, oldest first."""
    out: dict[str, list[dt.date]] = {t: [] for t in PARTITIONED}
    for r in conn.fetchall("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                           " JOIN pg_class p ON p.oid = i.inhparent"
                           " WHERE p.relname IN ('device_samples', 'iface_packed')"):
        m = _PART_NAME.match(r["relname"])
        if m:
            out[m.group(1)].append(dt.datetime.strptime(m.group(2), "%Y%m%d").replace(tzinfo=dt.UTC).date())
    return {t: sorted(days) for t, days in out.items()}


def drop_partitions_before(db: PgDatabase, cutoff_s: float) -> int:
    """Drop every day partition that ends at or before `cutoff_s` (raw retention); return how many.

    Rows of the default partition older than the cutoff are deleted (there should be none).
    """
    dropped = 0
    with db.transaction() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
        for table, days in partitions(tx).items():
            for day in days:
                if day_start(day) + DAY_S <= cutoff_s:
                    tx.execute(f"DROP TABLE {table}_p{day:%Y%m%d}")
                    dropped += 1
            tx.execute(f"DELETE FROM {table}_default WHERE slot < ?", (int(cutoff_s),))  # noqa: S608  # nosec B608
    return dropped
