"""Read queries of the newest state: latest samples, counter baselines, device statuses, clock stats, inventory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable
from typing import Any

import panfm.storage.compact as c
from panfm.models import CounterBaseline, DeviceSample, DeviceStatus, InterfaceCounters, InterfaceSample
from panfm.storage import jsontext
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS


def row_to_sample(row: sqlite3.Row) -> DeviceSample:
    """Turn a device_samples row into a DeviceSample."""
    return DeviceSample(
        device_id=row["device_id"], ts=row["ts"] / 1000, **{m: row[m] for m in DEVICE_METRICS},
        rtt_ms=row["rtt_ms"], approx=_flag(row["approx"]),
    )


def row_to_iface(row: sqlite3.Row) -> InterfaceSample:
    """Turn an interface_samples row into an InterfaceSample."""
    return InterfaceSample(
        device_id=row["device_id"],
        name=row["interface"],
        ts=row["ts"] / 1000,
        counted=bool(row["counted"]),
        **{m: row[m] for m in IFACE_METRICS},
        approx=_flag(row["approx"]),
    )


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


# MATERIALIZED: find each series' newest time first (one index probe each), then fetch those
# rows by primary key. Written as a plain join, SQLite scans every sample and probes per row.
LATEST_ALL_SQL = (
    "WITH x AS MATERIALIZED (SELECT dk, (SELECT max(ts) FROM dev_raw m WHERE m.dk = k.dk) AS ts FROM ts_device k) "  # noqa: S608  # nosec B608
    f"SELECT {c.dev_raw_select()} FROM x JOIN dev_raw s ON s.dk = x.dk AND s.ts = x.ts "  # nosec B608
    "JOIN ts_device k ON k.dk = x.dk"
)
LATEST_SQL = (
    f"SELECT {c.dev_raw_select()} FROM ts_device k JOIN dev_raw s ON s.dk = k.dk "  # noqa: S608  # nosec B608
    "WHERE k.device_id = ? ORDER BY s.ts DESC LIMIT 1"
)
LATEST_IFACES_SQL = (
    "WITH x AS MATERIALIZED (SELECT i.ik, (SELECT max(ts) FROM if_raw m WHERE m.ik = i.ik) AS ts "  # noqa: S608  # nosec B608
    "FROM ts_device k JOIN ts_iface i ON i.dk = k.dk WHERE k.device_id = ?) "
    f"SELECT {c.if_raw_select()} FROM x JOIN if_raw s ON s.ik = x.ik AND s.ts = x.ts "  # nosec B608
    "JOIN ts_iface i ON i.ik = x.ik JOIN ts_device k ON k.dk = i.dk ORDER BY i.interface"
)


def latest(conn: sqlite3.Connection, device_id: str) -> DeviceSample | None:
    """Return the newest sample of one device."""
    row = conn.execute(LATEST_SQL, (device_id,)).fetchone()
    return None if row is None else row_to_sample(row)


def latest_all(conn: sqlite3.Connection) -> dict[str, DeviceSample]:
    """Return the newest sample of every device, in one query."""
    return {r["device_id"]: row_to_sample(r) for r in conn.execute(LATEST_ALL_SQL)}


def interfaces_latest(conn: sqlite3.Connection, device_id: str) -> list[InterfaceSample]:
    """Return the newest sample of each interface of a device, by name."""
    return [row_to_iface(r) for r in conn.execute(LATEST_IFACES_SQL, (device_id,))]


def load_baselines(
    conn: sqlite3.Connection, keep: Callable[[str, Collection[str]], Iterable[str]] | None = None
) -> dict[str, CounterBaseline]:
    """Return the persisted raw counters of every device (64-bit values kept exact).

    `keep(device_id, names)` picks the interfaces to decode (the others are left out); all when None.
    """
    out = {}
    for device_id, ts, serial, uptime, counters, rtt_ms in conn.execute(
        "SELECT device_id, ts, serial, uptime_seconds, counters, rtt_ms FROM baselines"
    ):
        raw = json.loads(counters)
        names = raw if keep is None else [n for n in keep(device_id, raw.keys()) if n in raw]
        parsed = {}
        for name in names:
            ib, ob, ip, op, ie, idr, src = raw[name]
            parsed[name] = InterfaceCounters(name, int(ib), int(ob), int(ip), int(op), int(ie), int(idr), source=src)
        out[device_id] = CounterBaseline(device_id, ts, serial, uptime, parsed, rtt_ms)
    return out


def encode_counters(counters: dict[str, InterfaceCounters]) -> str:
    """Serialise counters as compact JSON: `{name: [ibytes, obytes, ipackets, opackets, ierrors, idrops, source]}`.

    The counters as JSON numbers, encoded by orjson (`jsontext.dumps`): 500 firewalls x 15
    interfaces in ~1.8 ms, against ~3.7 ms for the same as decimal strings (each value through
    `str()`, the format before; its rows are still read: the readers take both). Exact for every
    64-bit value in PANfm's readers (`json.loads` reads integers exactly); a value past 64 bits (a
    malformed answer) makes orjson refuse the document and `jsontext.dumps` writes it with
    `json.dumps`, still exact.
    """
    return jsontext.dumps({n: [c.ibytes, c.obytes, c.ipackets, c.opackets, c.ierrors, c.idrops, c.source]
                           for n, c in counters.items()})


def load_statuses(conn: sqlite3.Connection) -> dict[str, DeviceStatus]:
    """Return the stored state of every device."""
    return {
        r[0]: DeviceStatus(r[0], r[1], r[2], r[3], r[4], r[5])
        for r in conn.execute(
            "SELECT device_id, state, last_poll, last_success, last_error, consecutive_failures FROM device_status"
        )
    }


def clock_stats(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """Return the clock's execution stats with its heartbeat, or None before the first cycle."""
    row = conn.execute("SELECT doc, heartbeat FROM clock_stats WHERE id = 1").fetchone()
    if row is None:
        return None
    doc: dict[str, Any] = json.loads(row[0])
    doc["heartbeat"] = row[1]
    return doc


def inventory(conn: sqlite3.Connection, device_id: str | None) -> dict[str, dict[str, Any]]:
    """Return inventory documents (with `collected_at`) by device id; all devices when id is None."""
    sql, params = "SELECT device_id, ts, doc FROM inventory", ()
    if device_id is not None:
        sql, params = sql + " WHERE device_id = ?", (device_id,)  # type: ignore[assignment]
    return {r[0]: {**json.loads(r[2]), "collected_at": r[1]} for r in conn.execute(sql, params)}
