"""The sample database as versions 1-5 wrote it (the layout before the compact one), for migration tests.

`old_file` creates a file at an old schema version; `fill_old` writes raw rows into its old
tables and rolls them up with the SQL those versions ran (copied here: the product no longer
writes that layout).
"""

import sqlite3
from pathlib import Path

from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS, MIGRATIONS, grouping_sql, migrate


def _aggregates(metrics: tuple[str, ...], counts: bool) -> tuple[str, str]:
    if not counts:
        return (", ".join(f"{m}_avg, {m}_min, {m}_max" for m in metrics),
                ", ".join(f"avg(s.{m}), min(s.{m}), max(s.{m})" for m in metrics))
    return (", ".join(f"{m}_avg, {m}_min, {m}_max, {m}_n" for m in metrics),
            ", ".join(f"avg(s.{m}), min(s.{m}), max(s.{m}), count(s.{m})" for m in metrics))


def old_rollup_sql(tier: str, counts: bool = True) -> tuple[str, str]:
    """The device and interface rollup statements of schema versions 1-5, taking (start ms, end ms)."""
    dev, ifc, bucket_s = {"5m": ("device_5m", "iface_5m", 300), "1h": ("device_1h", "iface_1h", 3600)}[tier]
    cols, exprs = _aggregates(DEVICE_METRICS, counts)
    dev_sql = (
        f"INSERT OR REPLACE INTO {dev} (device_id, bucket, n, {cols}) "
        f"SELECT s.device_id, (s.ts / {bucket_s * 1000}) * {bucket_s} AS b, count(*), {exprs} "
        "FROM known_devices k JOIN device_samples s ON s.device_id = k.device_id AND s.ts >= ? AND s.ts < ? "
        "GROUP BY s.device_id, b"
    )
    cols, exprs = _aggregates(IFACE_METRICS, counts)
    if_sql = (
        f"INSERT OR REPLACE INTO {ifc} (device_id, interface, bucket, n, {cols}) "
        f"SELECT s.device_id, s.interface, (s.ts / {bucket_s * 1000}) * {bucket_s} AS b, count(*), {exprs} "
        "FROM known_interfaces k JOIN interface_samples s "
        "ON s.device_id = k.device_id AND s.interface = k.interface AND s.ts >= ? AND s.ts < ? "
        "GROUP BY s.device_id, s.interface, b"
    )
    return dev_sql, if_sql


def old_file(db: Path, version: int = 5) -> None:
    """Create `db` at schema `version` (1-5: the layout keyed by device id text)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        migrate(conn, MIGRATIONS[:version])
    finally:
        conn.close()


def fill_old(db: Path, dev_rows, if_rows, start_s: int, end_s: int) -> None:
    """Write raw rows into a version-5 file and roll up the buckets closed by `end_s`, as it did.

    dev_rows: (device_id, ts_ms, *DEVICE_METRICS, rtt_ms, approx); if_rows: (device_id, name, ts_ms,
    *IFACE_METRICS, counted, approx).
    """
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO known_devices VALUES (?)", {(r[0],) for r in dev_rows})
        conn.executemany("INSERT OR IGNORE INTO known_interfaces VALUES (?, ?)", {(r[0], r[1]) for r in if_rows})
        cols = ", ".join(("device_id", "ts", *DEVICE_METRICS, "rtt_ms", "approx"))
        conn.executemany(f"INSERT INTO device_samples ({cols}) VALUES ({', '.join('?' * (len(DEVICE_METRICS) + 4))})",
                         dev_rows)
        cols = ", ".join(("device_id", "interface", "ts", *IFACE_METRICS, "counted", "approx"))
        conn.executemany(f"INSERT INTO interface_samples ({cols}) VALUES ({', '.join('?' * (len(IFACE_METRICS) + 5))})",
                         if_rows)
        for tier, width in (("5m", 300), ("1h", 3600)):  # the buckets closed by end_s, as the clock leaves them
            for sql in old_rollup_sql(tier):
                conn.execute(sql, (start_s * 1000, end_s // width * width * 1000))
        for sql in grouping_sql("5m"):
            conn.execute(sql, (start_s // 1800 * 1800, end_s))
        conn.execute("INSERT OR REPLACE INTO rollup_marks VALUES ('5m', ?), ('1h', ?)",
                     (end_s // 300 * 300, end_s // 3600 * 3600))
        conn.execute("COMMIT")
    finally:
        conn.close()
