"""Copy a SQLite data folder into PostgreSQL (`flask --app app db migrate-to URL`): chunked, resumable.

1. Config (devices with their secrets and uplinks, users with their roles, rules, channels,
   windows, API tokens, the audit trail, per-MAC metadata), settings.json, the alerts (states,
   incidents, acknowledgements, outbox) and network.db (connected devices, applications,
   threats, logs) are small: each table is copied in one transaction with `ON CONFLICT DO
   NOTHING`, so a second run copies nothing twice. A table the folder's older schema lacks is
   skipped (its columns missing there take their defaults: an existing user stays `admin`).
2. Samples and rollups are copied in chunks along their primary key; each chunk commits with
   its progress mark (`migrate_progress`), so a run killed at any moment resumes after the last
   committed chunk.
3. Secrets are re-encrypted on the way (decrypted with the folder's key, encrypted with the
   shared `encryption_key`); the key marker then proves the copy readable.

The source files are opened read-only; the target must be empty (or a run of this interrupted).
Reads the sample database through its old table names: tables up to schema version 5, the
views that decode the compact rows from version 6 (`compact.py`); both give the same values.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from panfm.storage import alerts_store, config_store, network_store, pg_series, tier_views
from panfm.storage.pg_samples import regroup
from panfm.storage.postgres import PgConn, PgDatabase
from panfm.storage.schema import DEVICE_METRICS, HISTORY_DB, IFACE_METRICS, INT_METRICS, TIERS

Progress = Callable[[str], None]
Reencrypt = Callable[[str | None], str | None]

PROGRESS_DDL = ("CREATE TABLE IF NOT EXISTS migrate_progress (name TEXT PRIMARY KEY, last_key TEXT,"
                " rows BIGINT NOT NULL DEFAULT 0, done BOOLEAN NOT NULL DEFAULT FALSE)")
CONFIG_TABLES = ("devices", "users", "alert_rules", "alert_channels", "maintenance_windows", "api_tokens", "audit_log",
                 "device_metadata")
ALERT_TABLES = ("states", "incidents", "acks", "outbox")
NETWORK_TABLES = ("connected_devices", "network_snapshots", "app_stats", "security_counts", "security_events",
                  "security_top", "log_entries")


class TargetNotEmpty(Exception):
    """The PostgreSQL database already holds PANfm data that no interrupted migration left."""


def _open(path: Path) -> sqlite3.Connection | None:
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    tier_views.register(conn)  # the old rollup names are views over the packed tiers (schema 7)
    return conn


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _mark(tx: PgConn, name: str, last_key: Any, rows: int, done: bool) -> None:
    tx.execute("INSERT INTO migrate_progress (name, last_key, rows, done) VALUES (?, ?, ?, ?) ON CONFLICT (name)"
               " DO UPDATE SET last_key = excluded.last_key, rows = migrate_progress.rows + excluded.rows,"
               " done = excluded.done", (name, json.dumps(last_key), rows, done))


def _progress(db: PgDatabase) -> dict[str, dict[str, Any]]:
    with db.connection() as conn:
        return {r["name"]: r for r in conn.fetchall("SELECT name, last_key, rows, done FROM migrate_progress")}


def check_empty(db: PgDatabase) -> None:
    """Refuse a target with devices, users or samples that no interrupted migration of ours wrote."""
    with db.transaction() as tx:
        tx.execute(PROGRESS_DDL)
        started = tx.fetchone("SELECT count(*) AS n FROM migrate_progress")
        if started and started["n"]:
            return
        for table in ("devices", "users", "ts_device", "incidents"):
            row = tx.fetchone(f"SELECT count(*) AS n FROM {table}")  # noqa: S608  # nosec B608 (constant names)
            if row and row["n"]:
                raise TargetNotEmpty(f"the PostgreSQL database already holds {table}; migrate into an empty one")


def _copy_small(db: PgDatabase, src: sqlite3.Connection, table: str, name: str, reencrypt: Reencrypt,
                progress: Progress) -> int:
    done = _progress(db).get(name)
    if done and done["done"]:
        progress(f"{name}: already copied ({done['rows']} rows)")
        return 0
    cols = _columns(src, table)
    if not cols:  # a table the folder's schema does not have yet (an older config.db): nothing to copy
        progress(f"{name}: not in this folder")
        with db.transaction() as tx:
            _mark(tx, name, None, 0, True)
        return 0
    rows = [dict(r) for r in src.execute(f"SELECT * FROM {table}")]  # noqa: S608  # nosec B608 (constant names)
    for r in rows:
        for c in ("api_key_enc", "password_enc"):
            if c in r:
                r[c] = reencrypt(r[c])
        if "doc" in r and table in config_store.DOC_TABLES:
            doc = json.loads(r["doc"])
            for k, v in list(doc.items()):
                if k.endswith("_enc") and isinstance(v, str) and v:
                    doc[k] = reencrypt(v)
            r["doc"] = json.dumps(doc, sort_keys=True)
    marks = ", ".join("?" * len(cols))
    with db.transaction() as tx:
        if rows:
            tx.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT DO NOTHING",  # noqa: S608  # nosec B608
                           [[r[c] for c in cols] for r in rows])
        _mark(tx, name, None, len(rows), True)
    progress(f"{name}: {len(rows)} rows")
    return len(rows)


def _keys(tx: PgConn, src: sqlite3.Connection) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """The integer keys of every device and interface of the sample database (created as needed)."""
    devices = [r[0] for r in src.execute("SELECT device_id FROM known_devices")]
    ifaces = [(r[0], r[1]) for r in src.execute("SELECT device_id, interface FROM known_interfaces")]
    tx.execute("INSERT INTO ts_device (device_id) SELECT unnest(?::text[]) ON CONFLICT DO NOTHING", (devices,))
    dks = {r["device_id"]: r["dk"] for r in tx.fetchall("SELECT device_id, dk FROM ts_device")}
    tx.execute("INSERT INTO ts_iface (dk, interface) SELECT d.dk, u.name FROM unnest(?::text[], ?::text[])"
               " AS u(device_id, name) JOIN ts_device d ON d.device_id = u.device_id ON CONFLICT DO NOTHING",
               ([d for d, _ in ifaces], [n for _, n in ifaces]))
    iks = {(r["device_id"], r["interface"]): r["ik"] for r in tx.fetchall(
        "SELECT d.device_id, i.interface, i.ik FROM ts_iface i JOIN ts_device d ON d.dk = i.dk")}
    return dks, iks


# Interface rows are packed per device and slot on PostgreSQL (`iface_packed`), but SQLite gives
# them one interface at a time: each chunk goes flat into a temporary table, then joins the
# device-slot rows already copied (arrays appended; a device-slot already holding one of the
# chunk's interfaces is left as it is: the first value of an interface-slot counts, as before).
_IF_COPY = "panfm_copy_ifrows"
_IF_COPY_COLS = ("dk", "ik", "slot", "off_ms", *IFACE_METRICS, "counted", "approx")
_IF_COPY_TYPES = ("int", "int", "bigint", "int",
                  *("bigint" if m in pg_series.IFACE_WHOLE else "real" for m in IFACE_METRICS), "bool", "bool")
_IF_COPY_DDL = (f"CREATE TEMP TABLE IF NOT EXISTS {_IF_COPY} ("
                + ", ".join(f"{c} {t}" for c, t in zip(_IF_COPY_COLS, _IF_COPY_TYPES, strict=True))
                + ") ON COMMIT DELETE ROWS")
_IF_AGGS = ", ".join(f"array_agg({c} ORDER BY ik)" for c in (*_IF_COPY_COLS[1:2], *_IF_COPY_COLS[3:]))
_IF_MERGE = (
    f"INSERT INTO iface_packed AS p (dk, slot, {', '.join(pg_series.IFACE_ARRAYS)}) SELECT dk, slot, {_IF_AGGS}"  # noqa: S608  # nosec B608
    f" FROM (SELECT DISTINCT ON (dk, slot, ik) * FROM {_IF_COPY} ORDER BY dk, slot, ik, off_ms) t GROUP BY dk, slot"
    " ON CONFLICT (dk, slot) DO UPDATE SET "
    + ", ".join(f"{a} = p.{a} || excluded.{a}" for a in pg_series.IFACE_ARRAYS)
    + " WHERE NOT (p.iks && excluded.iks)"
)


def _unnest_insert(tx: PgConn, table: str, cols: Sequence[str], types: Sequence[str], rows: list[list[Any]]) -> None:
    if table == _IF_COPY:
        tx.execute(_IF_COPY_DDL)
        _unnest_insert(tx, "pg_temp." + table, cols, types, rows)
        tx.execute(_IF_MERGE)
        return
    arrays = ", ".join(f"?::{t}[]" for t in types)
    tx.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",  # noqa: S608  # nosec B608
               [[r[i] for r in rows] for i in range(len(cols))])


def _chunks(src: sqlite3.Connection, table: str, key: Sequence[str], after: list[Any] | None,
            chunk: int) -> Iterator[list[sqlite3.Row]]:
    """Rows of `table` in primary-key order after `after`, `chunk` at a time (keyset pagination)."""
    order = ", ".join(key)
    while True:
        if after is None:
            sql, params = f"SELECT * FROM {table} ORDER BY {order} LIMIT ?", [chunk]  # noqa: S608  # nosec B608
        else:
            marks = ", ".join("?" * len(key))
            sql = f"SELECT * FROM {table} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT ?"  # noqa: S608  # nosec B608
            params = [*after, chunk]
        rows = src.execute(sql, params).fetchall()
        if not rows:
            return
        yield rows
        after = [rows[-1][k] for k in key]


def _dev_types() -> list[str]:
    return ["int" if m in INT_METRICS else "real" for m in DEVICE_METRICS]


def _rollup_row(r: sqlite3.Row, metrics: Sequence[str]) -> list[Any]:
    out: list[Any] = [r["n"]]
    names = r.keys()
    for m in metrics:
        n = r[f"{m}_n"] if f"{m}_n" in names else None
        if n is None:  # a row written before per-metric counts: its bucket's count when it has a value
            n = r["n"] if r[f"{m}_avg"] is not None else 0
        # Version 6 keeps no minimum (compact layout): PostgreSQL's stays NULL, as nothing reads it.
        out += [r[f"{m}_avg"], r[f"{m}_min"] if f"{m}_min" in names else None, r[f"{m}_max"], n]
    return out


def _copy_series(db: PgDatabase, src: sqlite3.Connection, interval_s: int, chunk: int, progress: Progress
                 ) -> dict[str, int]:
    with db.transaction() as tx:
        dks, iks = _keys(tx, src)
    marks = _progress(db)
    copied: dict[str, int] = {}
    if src.execute("SELECT min(ts) FROM device_samples").fetchone()[0] is not None:
        lo = src.execute("SELECT min(ts) FROM device_samples").fetchone()[0] / 1000
        hi = src.execute("SELECT max(ts) FROM device_samples").fetchone()[0] / 1000
        days = max(0, math.ceil((hi - lo) / 86400)) + 1
        pg_series.ensure_partitions(db, lo, days_ahead=days + 2)

    def slot(ts_ms: int) -> tuple[int, int]:
        s = int(ts_ms // 1000 // interval_s) * interval_s
        return s, int(ts_ms - s * 1000)

    plans: list[tuple[str, str, Sequence[str], Callable[[sqlite3.Row], list[Any] | None], str, list[str],
                      list[str]]] = []
    plans.append((
        "device_samples", "device_samples", ("device_id", "ts"),
        lambda r: None if r["device_id"] not in dks else [
            dks[r["device_id"]], *slot(r["ts"]), *(r[m] for m in DEVICE_METRICS), r["rtt_ms"],
            None if r["approx"] is None else bool(r["approx"])],
        "device_samples", ["dk", "slot", "off_ms", *DEVICE_METRICS, "rtt_ms", "approx"],
        ["int", "bigint", "int", *_dev_types(), "real", "bool"]))
    plans.append((
        "interface_samples", "interface_samples", ("device_id", "interface", "ts"),
        lambda r: None if (r["device_id"], r["interface"]) not in iks else [
            dks[r["device_id"]], iks[(r["device_id"], r["interface"])], *slot(r["ts"]),
            *(None if r[m] is None else (round(r[m]) if m in pg_series.IFACE_WHOLE else r[m]) for m in IFACE_METRICS),
            bool(r["counted"]), None if r["approx"] is None else bool(r["approx"])],
        _IF_COPY, list(_IF_COPY_COLS), list(_IF_COPY_TYPES)))
    for tier, (dev_table, if_table, _) in TIERS.items():
        dev_cols = [f"{m}_{k}" for m in DEVICE_METRICS for k in ("avg", "min", "max", "n")]
        if_cols = [f"{m}_{k}" for m in IFACE_METRICS for k in ("avg", "min", "max", "n")]
        plans.append((
            dev_table, dev_table, ("device_id", "bucket"),
            lambda r: None if r["device_id"] not in dks else [dks[r["device_id"]], r["bucket"],
                                                              *_rollup_row(r, DEVICE_METRICS)],
            f"device_{tier}", ["dk", "bucket", "n", *dev_cols],
            ["int", "bigint", "int", *(["real", "real", "real", "int"] * len(DEVICE_METRICS))]))
        plans.append((
            if_table, if_table, ("device_id", "interface", "bucket"),
            lambda r: None if (r["device_id"], r["interface"]) not in iks else [
                iks[(r["device_id"], r["interface"])], r["bucket"], *_rollup_row(r, IFACE_METRICS)],
            f"iface_{tier}", ["ik", "bucket", "n", *if_cols],
            ["int", "bigint", "int", *(["real", "real", "real", "int"] * len(IFACE_METRICS))]))
    for name, table, key, convert, target, cols, types in plans:
        mark = marks.get(name)
        if mark and mark["done"]:
            progress(f"{name}: already copied ({mark['rows']} rows)")
            continue
        after = json.loads(mark["last_key"]) if mark and mark["last_key"] else None
        total = int(mark["rows"]) if mark else 0
        for rows in _chunks(src, table, key, after, chunk):
            converted = [c for c in (convert(r) for r in rows) if c is not None]
            with db.transaction() as tx:
                if converted:
                    _unnest_insert(tx, target, cols, types, converted)
                _mark(tx, name, [rows[-1][k] for k in key], len(rows), False)
            total += len(rows)
            progress(f"{name}: {total} rows")
        with db.transaction() as tx:
            if target.endswith("_5m"):  # the 30-minute groups of the copied 5-minute rows
                bounds = tx.fetchone(f"SELECT min(bucket) AS lo, max(bucket) AS hi FROM {target}")  # noqa: S608  # nosec B608
                if bounds and bounds["lo"] is not None:
                    regroup(tx, int(bounds["lo"]), int(bounds["hi"]) + 300)
            _mark(tx, name, None, 0, True)
        copied[name] = total
    return copied


def _copy_state(db: PgDatabase, src: sqlite3.Connection, progress: Progress) -> int:
    """Baselines, device states, dataplane CPU, inventory, rollup marks, clock stats: the newest state."""
    done = _progress(db).get("state")
    if done and done["done"]:
        return 0
    n = 0
    with db.transaction() as tx:
        for table in ("baselines", "device_status", "dataplane_latest", "inventory", "rollup_marks", "clock_stats"):
            cols = _columns(src, table)
            rows = [list(r) for r in src.execute(f"SELECT {', '.join(cols)} FROM {table}")]  # noqa: S608  # nosec B608
            if rows:
                marks = ", ".join("?" * len(cols))
                tx.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks}) ON CONFLICT DO NOTHING",  # noqa: S608  # nosec B608
                               rows)
            n += len(rows)
        _mark(tx, "state", None, n, True)
    progress(f"state (baselines, device states, inventory, marks): {n} rows")
    return n


def migrate_folder(data_dir: Path, db: PgDatabase, reencrypt: Reencrypt, settings_doc: dict[str, Any],
                   interval_s: int, progress: Progress, chunk: int = 20_000) -> dict[str, int]:
    """Copy the SQLite databases and settings of `data_dir` into `db`; return rows copied per table."""
    check_empty(db)
    copied: dict[str, int] = {}
    cfg = _open(data_dir / config_store.CONFIG_DB)
    if cfg is not None:
        try:
            for table in CONFIG_TABLES:
                copied[table] = _copy_small(db, cfg, table, table, reencrypt, progress)
        finally:
            cfg.close()
    if settings_doc:
        with db.transaction() as tx:
            tx.execute("INSERT INTO stored_settings (id, doc, updated_at) VALUES (1, ?, extract(epoch FROM now()))"
                       " ON CONFLICT (id) DO NOTHING", (json.dumps(settings_doc, sort_keys=True),))
        copied["settings"] = len(settings_doc)
        progress(f"settings: {len(settings_doc)} values")
    alerts = _open(data_dir / alerts_store.ALERTS_DB)
    if alerts is not None:
        try:
            for table in ALERT_TABLES:
                copied[table] = _copy_small(db, alerts, table, f"alerts.{table}", reencrypt, progress)
        finally:
            alerts.close()
        with db.transaction() as tx:  # the outbox kept its ids: move the identity past them
            tx.execute("SELECT setval(pg_get_serial_sequence('outbox', 'id'),"
                       " greatest((SELECT max(id) FROM outbox), 1))")
    network = _open(data_dir / network_store.NETWORK_DB)
    if network is not None:
        try:
            for table in NETWORK_TABLES:
                copied[table] = _copy_small(db, network, table, f"network.{table}", reencrypt, progress)
        finally:
            network.close()
    history = _open(data_dir / HISTORY_DB)
    if history is not None:
        try:
            copied.update(_copy_series(db, history, interval_s, chunk, progress))
            copied["state"] = _copy_state(db, history, progress)
        finally:
            history.close()
    return copied


