"""The compact layout of the sample database (schema version 6, issue 17).

Every sample, rollup and grouping row is keyed by a small integer series key, never by the
device UUID text (`ts_device.dk`) or the interface name (`ts_iface.ik`), as on PostgreSQL.
Values are whole numbers in a fixed unit per metric (`SCALE`): throughput in kbit/s, packet
rates in packets/s, interface rates in bit/s, percentages in hundredths, error and drop rates
in thousandths per second, the round trip in microseconds. SQLite stores an integer in 0-4
bytes where a REAL takes 8. A device row's time is the poll's epoch milliseconds; an interface
row's is that poll's whole second (floored; schema 9, `raw_migrate.py`): four bytes where
milliseconds took six, in most of a poll's rows; its rates were computed from the exact times.
Nothing is stored twice: `total_mbps` is inbound + outbound (the collector computes it so),
only its maximum is kept in rollups. Rollups keep the average and
the maximum (no minimum: no answer reads one), and each metric's own sample count only where
it differs from the bucket's `n` (NULL otherwise: `weight_sql` reads NULL that way).

The old table names stay readable as views (`device_samples`, `device_5m`, `known_devices`...)
that decode the values into the old units (raw times in milliseconds); ad-hoc SQL,
scripts and the history queries read them. The clock writes the physical tables (`dev_raw`,
`if_raw`, `dev_5m`, ...).
"""

from __future__ import annotations

import math

from panfm.storage.series_def import DEVICE_METRICS, IFACE_METRICS, INT_METRICS

# Unit of the stored integer per metric: stored = round(value * scale).
SCALE: dict[str, int] = {
    "inbound_mbps": 1000, "outbound_mbps": 1000, "total_mbps": 1000,  # kbit/s
    "inbound_pps": 1, "outbound_pps": 1,
    "sessions_utilization_pct": 100, "cpu_dataplane_pct": 100, "cpu_management_pct": 100,
    "memory_pct": 100, "packet_buffer_pct": 100, "packet_descriptor_pct": 100,
    "in_bps": 1, "out_bps": 1, "in_pps": 1, "out_pps": 1, "errors_per_s": 1000, "drops_per_s": 1000,
    **{m: 1 for m in INT_METRICS},
}
RTT_SCALE = 1000  # rtt_ms stored in microseconds

# Device metrics stored as columns (total_mbps is derived: inbound + outbound).
DEV_STORED: tuple[str, ...] = tuple(m for m in DEVICE_METRICS if m != "total_mbps")

# Physical tables: old (view) name -> physical name.
RAW_TABLES = {"device_samples": "dev_raw", "interface_samples": "if_raw"}
TIER_TABLES = {"device_5m": "dev_5m", "iface_5m": "if_5m", "device_1h": "dev_1h", "iface_1h": "if_1h"}
GROUP_TABLES = {"device_5m_g30m": "dev_5m_g30m", "iface_5m_g30m": "if_5m_g30m"}
PHYSICAL = {**RAW_TABLES, **TIER_TABLES, **GROUP_TABLES}


def round_half_away(x: float) -> int:
    """Round as SQLite's round() does (half away from zero), so Python and SQL writes agree."""
    r = math.floor(abs(x) + 0.5)
    return int(r if x >= 0 else -r)


def encode(metric: str, value: float | None) -> int | None:
    """A value in its stored unit (whole number), None kept."""
    return None if value is None else round_half_away(value * SCALE[metric])


def encode_sql(metric: str, expr: str) -> str:
    """SQL turning a value in the metric's API unit into its stored integer."""
    scale = SCALE[metric]
    return f"CAST(round({expr} * {scale}) AS INTEGER)" if scale != 1 else f"CAST(round({expr}) AS INTEGER)"


def decode_sql(metric: str, expr: str, keep_int: bool = False) -> str:
    """SQL turning a stored integer back into the API unit (REAL; the integer gauges stay whole when `keep_int`)."""
    if keep_int and metric in INT_METRICS:
        return expr
    return f"{expr} / {SCALE[metric]}.0"


# --------------------------------------------------------------------------------------
# DDL
# --------------------------------------------------------------------------------------


def _rollup_cols(metrics: tuple[str, ...], total: bool) -> str:
    cols = ", ".join(f"{m}_avg INTEGER, {m}_max INTEGER, {m}_n INTEGER" for m in metrics)
    return cols + (", total_mbps_max INTEGER" if total else "")


def ddl(groupings: bool) -> list[str]:
    """CREATE statements of the compact tables (IF NOT EXISTS: a resumed conversion re-runs them)."""
    dev_raw = ", ".join(f"{m} INTEGER" for m in DEV_STORED)
    if_raw = ", ".join(f"{m} INTEGER" for m in IFACE_METRICS)
    parts = [
        "CREATE TABLE IF NOT EXISTS ts_device (dk INTEGER PRIMARY KEY, device_id TEXT NOT NULL UNIQUE)",
        "CREATE TABLE IF NOT EXISTS ts_iface (ik INTEGER PRIMARY KEY, dk INTEGER NOT NULL, interface TEXT NOT NULL,"
        " UNIQUE (dk, interface))",
        f"CREATE TABLE IF NOT EXISTS dev_raw (dk INTEGER NOT NULL, ts INTEGER NOT NULL, {dev_raw},"
        " rtt_us INTEGER, approx INTEGER, PRIMARY KEY (dk, ts)) WITHOUT ROWID",
        f"CREATE TABLE IF NOT EXISTS if_raw (ik INTEGER NOT NULL, ts INTEGER NOT NULL, {if_raw},"
        " counted INTEGER NOT NULL, approx INTEGER, PRIMARY KEY (ik, ts)) WITHOUT ROWID",
    ]
    tables = [("dev_5m", "if_5m"), ("dev_1h", "if_1h")] + ([("dev_5m_g30m", "if_5m_g30m")] if groupings else [])
    for dev, ifc in tables:
        parts.append(f"CREATE TABLE IF NOT EXISTS {dev} (dk INTEGER NOT NULL, bucket INTEGER NOT NULL,"
                     f" n INTEGER NOT NULL, {_rollup_cols(DEV_STORED, True)}, PRIMARY KEY (dk, bucket)) WITHOUT ROWID")
        parts.append(f"CREATE TABLE IF NOT EXISTS {ifc} (ik INTEGER NOT NULL, bucket INTEGER NOT NULL,"
                     f" n INTEGER NOT NULL, {_rollup_cols(IFACE_METRICS, False)}, PRIMARY KEY (ik, bucket))"
                     " WITHOUT ROWID")
    return parts


def dev_raw_select(alias: str = "s") -> str:
    """Select list decoding a `dev_raw` row (joined with ts_device as `k`) into the old columns."""
    a = alias
    cols = []
    for m in DEVICE_METRICS:
        if m == "total_mbps":
            cols.append(f"({a}.inbound_mbps + {a}.outbound_mbps) / 1000.0 AS total_mbps")
        else:
            cols.append(f"{decode_sql(m, f'{a}.{m}', keep_int=True)} AS {m}")
    return (f"k.device_id AS device_id, {a}.ts AS ts, {', '.join(cols)}, "
            f"{a}.rtt_us / {RTT_SCALE}.0 AS rtt_ms, {a}.approx AS approx")


def if_raw_select(alias: str = "s") -> str:
    """Select list decoding an `if_raw` row (joined with ts_iface as `i`, ts_device as `k`; ts in ms, as before)."""
    a = alias
    cols = ", ".join(f"{decode_sql(m, f'{a}.{m}')} AS {m}" for m in IFACE_METRICS)
    return (f"k.device_id AS device_id, i.interface AS interface, {a}.ts * 1000 AS ts, {cols}, "
            f"{a}.counted AS counted, {a}.approx AS approx")


def _dev_rollup_select() -> str:
    cols = []
    for m in DEVICE_METRICS:
        if m == "total_mbps":
            cols.append("(s.inbound_mbps_avg + s.outbound_mbps_avg) / 1000.0 AS total_mbps_avg, "
                        "s.total_mbps_max / 1000.0 AS total_mbps_max, s.inbound_mbps_n AS total_mbps_n")
        else:
            cols.append(f"{decode_sql(m, f's.{m}_avg')} AS {m}_avg, {decode_sql(m, f's.{m}_max')} AS {m}_max, "
                        f"s.{m}_n AS {m}_n")
    return "k.device_id AS device_id, s.bucket AS bucket, s.n AS n, " + ", ".join(cols)


def _if_rollup_select() -> str:
    cols = ", ".join(f"{decode_sql(m, f's.{m}_avg')} AS {m}_avg, {decode_sql(m, f's.{m}_max')} AS {m}_max, "
                     f"s.{m}_n AS {m}_n" for m in IFACE_METRICS)
    return f"k.device_id AS device_id, i.interface AS interface, s.bucket AS bucket, s.n AS n, {cols}"


DEV_JOIN = "ts_device k JOIN {t} s ON s.dk = k.dk"
IF_JOIN = "ts_iface i JOIN ts_device k ON k.dk = i.dk JOIN {t} s ON s.ik = i.ik"


def raw_views() -> list[str]:
    """The raw tables' old names as views (old units: values decoded, times in milliseconds)."""
    return [
        f"CREATE VIEW device_samples AS SELECT {dev_raw_select()} FROM {DEV_JOIN.format(t='dev_raw')}",  # noqa: S608  # nosec B608
        f"CREATE VIEW interface_samples AS SELECT {if_raw_select()} FROM {IF_JOIN.format(t='if_raw')}",  # noqa: S608  # nosec B608
    ]


def views(groupings: bool) -> list[str]:
    """The old table names as read-only views decoding the compact rows (old units, old columns)."""
    parts = [
        "CREATE VIEW known_devices AS SELECT device_id FROM ts_device",
        "CREATE VIEW known_interfaces AS SELECT k.device_id AS device_id, i.interface AS interface"
        " FROM ts_iface i JOIN ts_device k ON k.dk = i.dk",
        *raw_views(),
    ]
    tables = dict(TIER_TABLES)
    if groupings:
        tables.update(GROUP_TABLES)
    for view, table in tables.items():
        if view.startswith("device"):
            parts.append(f"CREATE VIEW {view} AS SELECT {_dev_rollup_select()} FROM {DEV_JOIN.format(t=table)}")  # noqa: S608  # nosec B608
        else:
            parts.append(f"CREATE VIEW {view} AS SELECT {_if_rollup_select()} FROM {IF_JOIN.format(t=table)}")  # noqa: S608  # nosec B608
    return parts


# --------------------------------------------------------------------------------------
# Read expressions (history and summaries read the physical tables with these)
# --------------------------------------------------------------------------------------


def raw_expr(m: str, a: str = "") -> str:
    """A raw row's value of metric `m` in its API unit (`a`: table alias with its dot)."""
    if m == "total_mbps":
        return f"({a}inbound_mbps + {a}outbound_mbps) / 1000.0"
    return decode_sql(m, f"{a}{m}", keep_int=True)


def avg_expr(m: str, a: str = "") -> str:
    """A rollup row's average of `m` in its API unit."""
    if m == "total_mbps":
        return f"({a}inbound_mbps_avg + {a}outbound_mbps_avg) / 1000.0"
    return decode_sql(m, f"{a}{m}_avg")


def max_expr(m: str, a: str = "") -> str:
    """A rollup row's maximum of `m` in its API unit."""
    return decode_sql(m, f"{a}{m}_max")


def weight_expr(m: str, a: str = "") -> str:
    """How many samples a rollup row's average of `m` stands for (NULL count: the bucket's n)."""
    base = "inbound_mbps" if m == "total_mbps" else m
    return f"coalesce({a}{base}_n, CASE WHEN {a}{base}_avg IS NOT NULL THEN {a}n END)"


def weighted_avg_expr(m: str, a: str = "") -> str:
    """The average of rollup rows' averages of `m`, each weighted by its own count (API unit).

    Summed in stored integers, scaled once per group (not once per row).
    """
    w = weight_expr(m, a)
    stored = f"({a}inbound_mbps_avg + {a}outbound_mbps_avg)" if m == "total_mbps" else f"{a}{m}_avg"
    return f"sum({stored} * {w}) / (sum({w}) * {SCALE[m]}.0)"


def raw_agg(fn: str, m: str) -> str:
    """SQL aggregate `fn` (avg, min, max) of raw metric `m` in its API unit, scaled after aggregating."""
    stored = "(inbound_mbps + outbound_mbps)" if m == "total_mbps" else m
    if fn != "avg" and m in INT_METRICS:
        return f"{fn}({stored})"  # whole gauges stay integers, as before
    return f"{fn}({stored}) / {SCALE[m]}.0"


def rollup_agg(fn: str, m: str) -> str:
    """SQL aggregate `fn` (min, max) over rollup rows of `m`'s maximum (max) or average (min), API unit."""
    if fn == "max":
        return f"max({m}_max) / {SCALE[m]}.0"
    stored = "(inbound_mbps_avg + outbound_mbps_avg)" if m == "total_mbps" else f"{m}_avg"
    return f"{fn}({stored}) / {SCALE[m]}.0"


# No conflict clause here: the outer statement's (INSERT OR REPLACE INTO device_samples) would
# override it, and replacing a ts_device row would give the device a new key.
def _ensure_device() -> str:
    return ("INSERT INTO ts_device (device_id) SELECT NEW.device_id "
            "WHERE NOT EXISTS (SELECT 1 FROM ts_device WHERE device_id = NEW.device_id);")


def _ensure_iface() -> str:
    return (_ensure_device() + " INSERT INTO ts_iface (dk, interface) "  # noqa: S608  # nosec B608
            "SELECT k.dk, NEW.interface FROM ts_device k WHERE k.device_id = NEW.device_id AND NOT EXISTS "
            "(SELECT 1 FROM ts_iface i WHERE i.dk = k.dk AND i.interface = NEW.interface);")


_DK = "(SELECT dk FROM ts_device WHERE device_id = {r}.device_id)"
_RAW_TS = "(CAST({r}.ts AS INTEGER) / 1000)"  # a view's time (ms) as interface rows store it (whole s)
_IK = ("(SELECT i.ik FROM ts_iface i JOIN ts_device k ON k.dk = i.dk "
       "WHERE k.device_id = {r}.device_id AND i.interface = {r}.interface)")


def raw_triggers() -> list[str]:
    """INSTEAD OF triggers of the raw views: scripts write and delete raw rows through the old names."""
    dev_vals = ", ".join(encode_sql(m, f"NEW.{m}") for m in DEV_STORED)
    if_vals = ", ".join(encode_sql(m, f"NEW.{m}") for m in IFACE_METRICS)
    return [
        f"CREATE TRIGGER device_samples_ins INSTEAD OF INSERT ON device_samples BEGIN {_ensure_device()} "  # noqa: S608  # nosec B608
        f"INSERT OR REPLACE INTO dev_raw (dk, ts, {', '.join(DEV_STORED)}, rtt_us, approx) VALUES ("
        f"{_DK.format(r='NEW')}, NEW.ts, {dev_vals}, CAST(round(NEW.rtt_ms * {RTT_SCALE}) AS INTEGER), "
        "NEW.approx); END",
        f"CREATE TRIGGER interface_samples_ins INSTEAD OF INSERT ON interface_samples BEGIN {_ensure_iface()} "  # noqa: S608  # nosec B608
        f"INSERT OR REPLACE INTO if_raw (ik, ts, {', '.join(IFACE_METRICS)}, counted, approx) VALUES ("
        f"{_IK.format(r='NEW')}, {_RAW_TS.format(r='NEW')}, {if_vals}, coalesce(NEW.counted, 1), NEW.approx); END",
        f"CREATE TRIGGER device_samples_del INSTEAD OF DELETE ON device_samples BEGIN "  # noqa: S608  # nosec B608
        f"DELETE FROM dev_raw WHERE dk = {_DK.format(r='OLD')} AND ts = OLD.ts; END",
        f"CREATE TRIGGER interface_samples_del INSTEAD OF DELETE ON interface_samples BEGIN "  # noqa: S608  # nosec B608
        f"DELETE FROM if_raw WHERE ik = {_IK.format(r='OLD')} AND ts = {_RAW_TS.format(r='OLD')}; END",
    ]


def triggers(groupings: bool) -> list[str]:
    """INSTEAD OF triggers that let scripts write and delete through the old names (values encoded)."""
    parts = [
        f"CREATE TRIGGER known_devices_ins INSTEAD OF INSERT ON known_devices BEGIN {_ensure_device()} END",
        f"CREATE TRIGGER known_interfaces_ins INSTEAD OF INSERT ON known_interfaces BEGIN {_ensure_iface()} END",
        *raw_triggers(),
    ]
    tables = dict(TIER_TABLES)
    if groupings:
        tables.update(GROUP_TABLES)
    for view, table in tables.items():
        if view.startswith("device"):
            cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in DEV_STORED)
            vals = ", ".join(f"{encode_sql(m, f'NEW.{m}_avg')}, {encode_sql(m, f'NEW.{m}_max')}, "
                             f"NULLIF(NEW.{m}_n, NEW.n)" for m in DEV_STORED)
            body = (f"{_ensure_device()} INSERT OR REPLACE INTO {table} (dk, bucket, n, {cols}, total_mbps_max) "  # noqa: S608  # nosec B608
                    f"VALUES ({_DK.format(r='NEW')}, NEW.bucket, NEW.n, {vals}, "
                    f"{encode_sql('total_mbps', 'NEW.total_mbps_max')});")
            key = f"dk = {_DK.format(r='OLD')}"
        else:
            cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in IFACE_METRICS)
            vals = ", ".join(f"{encode_sql(m, f'NEW.{m}_avg')}, {encode_sql(m, f'NEW.{m}_max')}, "
                             f"NULLIF(NEW.{m}_n, NEW.n)" for m in IFACE_METRICS)
            body = (f"{_ensure_iface()} INSERT OR REPLACE INTO {table} (ik, bucket, n, {cols}) "  # noqa: S608  # nosec B608
                    f"VALUES ({_IK.format(r='NEW')}, NEW.bucket, NEW.n, {vals});")
            key = f"ik = {_IK.format(r='OLD')}"
        parts.append(f"CREATE TRIGGER {view}_ins INSTEAD OF INSERT ON {view} BEGIN {body} END")
        parts.append(f"CREATE TRIGGER {view}_del INSTEAD OF DELETE ON {view} BEGIN "  # noqa: S608  # nosec B608
                     f"DELETE FROM {table} WHERE {key} AND bucket = OLD.bucket; END")
    return parts
