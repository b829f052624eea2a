"""The sample reader on PostgreSQL: `PgSampleReader`, the same interface as `SampleReader` on SQLite.

Each read borrows one pooled connection (autocommit: one snapshot per statement). The
history follows the SQLite reader's rules (tier choice, on-the-fly grouping to round widths,
gap markers: `queries.group_width`, `queries.mark_gaps`); rows are found by the integer device
or interface key, then by slot or bucket, along the primary key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from panfm.models import (
    CounterBaseline,
    DeviceSample,
    DeviceStatus,
    History,
    HistoryTier,
    InterfaceCounters,
    InterfaceSample,
)
from panfm.storage import device_reads, pg_series
from panfm.storage import queries as q
from panfm.storage.postgres import PgConn, PgDatabase
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS, INT_METRICS


def _sample(r: dict[str, Any], device_id: str) -> DeviceSample:
    values: dict[str, Any] = {m: (r[m] if m in INT_METRICS or r[m] is None else float(r[m])) for m in DEVICE_METRICS}
    return DeviceSample(device_id=device_id, ts=(r["slot"] * 1000 + r["off_ms"]) / 1000, **values,
                        rtt_ms=r["rtt_ms"], approx=r["approx"])


def _iface(r: dict[str, Any], device_id: str) -> InterfaceSample:
    return InterfaceSample(
        device_id=device_id, name=r["interface"], ts=(r["slot"] * 1000 + r["off_ms"]) / 1000,
        counted=bool(r["counted"]), **{m: None if r[m] is None else float(r[m]) for m in IFACE_METRICS},
        approx=r["approx"],
    )


def baselines(conn: PgConn, keep: Callable[[str, Collection[str]], Iterable[str]] | None) -> dict[str, CounterBaseline]:
    """Every device's persisted raw counters (JSON numbers, or decimal strings in older rows: exact ints)."""
    out = {}
    for r in conn.fetchall("SELECT device_id, ts, serial, uptime_seconds, counters, rtt_ms FROM baselines"):
        raw = json.loads(r["counters"])
        names = raw if keep is None else [n for n in keep(r["device_id"], raw.keys()) if n in raw]
        parsed = {}
        for name in names:
            ib, ob, ip, op, ie, idr, src = raw[name]
            parsed[name] = InterfaceCounters(name, int(ib), int(ob), int(ip), int(op), int(ie), int(idr), source=src)
        out[r["device_id"]] = CounterBaseline(r["device_id"], r["ts"], r["serial"], r["uptime_seconds"], parsed,
                                              r["rtt_ms"])
    return out


def statuses(conn: PgConn) -> dict[str, DeviceStatus]:
    """Every device's stored state."""
    return {
        r["device_id"]: DeviceStatus(r["device_id"], r["state"], r["last_poll"], r["last_success"], r["last_error"],
                                     r["consecutive_failures"])
        for r in conn.fetchall("SELECT device_id, state, last_poll, last_success, last_error, consecutive_failures"
                               " FROM device_status")
    }


# Each interface's newest packed row holding it (along the (dk, slot) key, newest first: the
# device's newest row for an interface still polled), and its values at its position there.
_LATEST_IFACES = (
    "SELECT i.interface, s.* FROM ts_device d JOIN ts_iface i ON i.dk = d.dk CROSS JOIN LATERAL"  # noqa: S608  # nosec B608 (constant names)
    f" (SELECT x.slot, {pg_series.iface_element_cols('x', 'array_position(x.iks, i.ik)')} FROM iface_packed x"
    " WHERE x.dk = d.dk AND i.ik = ANY(x.iks) ORDER BY x.slot DESC LIMIT 1) s"
    " WHERE d.device_id = ? ORDER BY i.interface"
)


# Every device's newest packed interface row at or after a slot (its arrays, unnested by the
# reader): one probe of each device's primary key (dk, slot), backwards, in one statement.
_IFACES_SINCE = (
    f"SELECT d.device_id, d.dk, p.slot, {', '.join(f'p.{a}' for a in pg_series.IFACE_ARRAYS)}"  # noqa: S608  # nosec B608 (constant names)
    " FROM ts_device d CROSS JOIN LATERAL (SELECT * FROM iface_packed x WHERE x.dk = d.dk AND x.slot >= ?"
    " ORDER BY x.slot DESC LIMIT 1) p"
)
# Their interfaces' names, as two arrays in one row (thousands of rows would each be a dict).
_IFACE_NAMES = "SELECT array_agg(ik) AS iks, array_agg(interface) AS names FROM ts_iface WHERE dk = ANY(?::int4[])"


# The newest raw row of one device. The key as a subquery, not a join: with `s.dk = d.dk` the
# planner read every raw row of the device (2,880 a day) and sorted them; with `s.dk = (SELECT
# ...)` each day partition's primary key is read backwards, one row each (4.6 -> 0.16 ms per call
# at 500 devices x 1 day of raw rows; tests/test_pg_reads.py checks the rows read).
LATEST_SQL = ("SELECT s.* FROM device_samples s WHERE s.dk = (SELECT dk FROM ts_device WHERE device_id = ?)"
              " ORDER BY s.slot DESC LIMIT 1")


def _one_iface(dk: int, ik: int) -> str:
    """One interface's raw rows as a table (slot, off_ms, its metrics...), from its device's packed rows."""
    return (f"(SELECT x.slot, {pg_series.iface_element_cols('x', 'j.k')} FROM iface_packed x"  # noqa: S608  # nosec B608 (integer keys)
            f" CROSS JOIN LATERAL (SELECT array_position(x.iks, {int(ik)}) AS k) j"
            f" WHERE x.dk = {int(dk)} AND j.k IS NOT NULL) AS r")


class PgSampleReader:
    """A read view of the time series on PostgreSQL (the web opens one per request; cheap: a pool)."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    def close(self) -> None:
        """Nothing to close: every read returns its connection to the pool."""

    def __enter__(self) -> PgSampleReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- newest rows ------------------------------------------------------------------

    def latest(self, device_id: str) -> DeviceSample | None:
        """Return the newest sample of one device."""
        with self.db.connection() as conn:
            r = conn.fetchone(LATEST_SQL, (device_id,))
        return None if r is None else _sample(r, device_id)

    def latest_all(self) -> dict[str, DeviceSample]:
        """Return the newest sample of every device (one index probe per device)."""
        with self.db.connection() as conn:
            rows = conn.fetchall("SELECT d.device_id, s.* FROM ts_device d CROSS JOIN LATERAL (SELECT * FROM"
                                 " device_samples x WHERE x.dk = d.dk ORDER BY x.slot DESC LIMIT 1) s")
        return {r["device_id"]: _sample(r, r["device_id"]) for r in rows}

    def interfaces_latest(self, device_id: str) -> list[InterfaceSample]:
        """Return the newest sample of each interface of a device, by name."""
        with self.db.connection() as conn:
            rows = conn.fetchall(_LATEST_IFACES, (device_id,))
        return [_iface(r, device_id) for r in rows]

    def interfaces_since(self, since: float) -> dict[str, list[InterfaceSample]]:
        """Every device's interfaces as its newest poll at or after `since` gave them (its newest raw row).

        One statement for the fleet (the leader's alert evaluation reads it every slot; one
        `interfaces_latest` per device was 1,000 statements, ~0.7-1 s at 1,000 firewalls). Unlike
        `interfaces_latest`, an interface missing from that poll has no sample here.
        """
        with self.db.connection() as conn:
            rows = conn.fetchall(_IFACES_SINCE, (math.ceil(since),))
            both = conn.fetchone(_IFACE_NAMES, ([r["dk"] for r in rows],)) if rows else None
        names = dict(zip(both["iks"] or (), both["names"] or (), strict=True)) if both else {}
        out: dict[str, list[InterfaceSample]] = {}
        for r in rows:
            device_id, slot_ms, iks = r["device_id"], r["slot"] * 1000, r["iks"]
            metrics = [[None if v is None else float(v) for v in r[m]] for m in IFACE_METRICS]  # BIGINTs too
            approx = r["approx"] or [None] * len(iks)
            columns = zip(iks, r["off_ms"], r["counted"], approx, *metrics, strict=True)
            samples = [InterfaceSample(device_id, names[ik], (slot_ms + off) / 1000, *values, bool(counted),
                                       apx)  # type: ignore[call-arg]  # the six metrics, positional
                       for ik, off, counted, apx, *values in columns]
            out[device_id] = sorted(samples, key=lambda x: x.name)
        return out

    def clock_stats(self) -> dict[str, Any] | None:
        """Return the stats of the clock that wrote last, including "heartbeat", or None before any write.

        Each clock keeps its own row (`clock_stats_by_node`); the newest heartbeat is the
        fleet's: the health check and the web's "clock running" use it.
        """
        with self.db.connection() as conn:
            r = conn.fetchone("SELECT doc, heartbeat FROM clock_stats ORDER BY heartbeat DESC LIMIT 1")
        if r is None:
            return None
        doc: dict[str, Any] = json.loads(r["doc"])
        doc["heartbeat"] = r["heartbeat"]
        return doc

    def clock_stats_by_node(self) -> dict[str, dict[str, Any]]:
        """node id -> that clock's own stats (with "heartbeat"); "" is a row written without a node id."""
        with self.db.connection() as conn:
            rows = conn.fetchall("SELECT node_id, doc, heartbeat FROM clock_stats")
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            doc: dict[str, Any] = json.loads(r["doc"])
            doc["heartbeat"] = r["heartbeat"]
            out[str(r["node_id"])] = doc
        return out

    def device_statuses(self) -> dict[str, DeviceStatus]:
        with self.db.connection() as conn:
            return statuses(conn)

    def change_marker(self) -> tuple[Any, ...]:
        """A cheap value that changes with every committed cycle or inventory write (the web's cache key)."""
        with self.db.connection() as conn:
            r = conn.fetchone(
                "SELECT (SELECT max(last_poll) FROM device_status) AS a, (SELECT max(last_success) FROM device_status)"
                " AS b, (SELECT count(*) FROM device_status) AS c, (SELECT max(ts) FROM baselines) AS d,"
                " (SELECT count(*) FROM baselines) AS e, (SELECT max(ts) FROM inventory) AS f,"
                " (SELECT count(*) FROM inventory) AS g, (SELECT max(ts) FROM dataplane_latest) AS h,"
                " (SELECT count(*) FROM dataplane_latest) AS i")
        return tuple(r.values()) if r else ()

    def dataplane_cpu(self, device_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            r = conn.fetchone("SELECT ts, doc FROM dataplane_latest WHERE device_id = ?", (device_id,))
        return None if r is None else {**json.loads(r["doc"]), "ts": r["ts"] / 1000}

    def dataplane_cpu_all(self) -> dict[str, dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.fetchall("SELECT device_id, ts, doc FROM dataplane_latest")
        return {r["device_id"]: {**json.loads(r["doc"]), "ts": r["ts"] / 1000} for r in rows}

    def baselines(self, keep: Callable[[str, Collection[str]], Iterable[str]] | None = None
                  ) -> dict[str, CounterBaseline]:
        with self.db.connection() as conn:
            return baselines(conn, keep)

    def inventory(self, device_id: str) -> dict[str, Any] | None:
        return self._inventory(device_id).get(device_id)

    def inventory_all(self) -> dict[str, dict[str, Any]]:
        return self._inventory(None)

    def alert_inputs_changed(self, known: Mapping[str, float]) -> dict[str, tuple[float, dict[str, Any] | None]]:
        """Every device with a stored inventory: (its time, what the alerts read of it), None when unchanged.

        Unchanged: its time is the one in `known` (the caller keeps what it read before); only
        changed rows are sent. What the alerts read is the `inputs` kept beside the document by
        the clock that wrote it; a row from before those were kept gives its whole document (the
        caller extracts the inputs; extracting twice gives the same).
        """
        ids, times = list(known), [float(known[d]) for d in known]
        with self.db.connection() as conn:
            rows = conn.fetchall(
                "SELECT i.device_id, i.ts, CASE WHEN k.ts IS DISTINCT FROM i.ts THEN COALESCE(i.inputs, i.doc) END"
                " AS inputs FROM inventory i LEFT JOIN unnest(?::text[], ?::float8[]) AS k(device_id, ts)"
                " ON k.device_id = i.device_id", (ids, times))
        return {r["device_id"]: (float(r["ts"]), None if r["inputs"] is None else json.loads(r["inputs"]))
                for r in rows}

    def device_parts(self, device_id: str, keep: device_reads.Keep | None = None) -> dict[str, dict[str, Any]]:
        """Return one device's newest rows in the whole-fleet reads' shapes (`/metrics?device=`; read-only)."""
        def fetch_one(sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
            with self.db.connection() as conn:
                return conn.fetchone(sql, params)

        return device_reads.device_parts(device_id, keep, fetch_one=fetch_one, latest=self.latest,
                                         dataplane=self.dataplane_cpu, inventory=self.inventory)

    def _inventory(self, device_id: str | None) -> dict[str, dict[str, Any]]:
        sql, params = "SELECT device_id, ts, doc FROM inventory", ()
        if device_id is not None:
            sql, params = sql + " WHERE device_id = ?", (device_id,)  # type: ignore[assignment]
        with self.db.connection() as conn:
            rows = conn.fetchall(sql, params)
        return {r["device_id"]: {**json.loads(r["doc"]), "collected_at": r["ts"]} for r in rows}

    # ---- history --------------------------------------------------------------------

    def history(self, device_id: str, start: float, end: float, max_points: int = 2000,
                metrics: Sequence[str] | None = None) -> History:
        """Chart points of a device for [start, end): at most max_points, peaks kept (as `SampleReader`)."""
        s = q.device_series(device_id, metrics)
        with self.db.connection() as conn:
            key = conn.fetchone("SELECT dk AS k FROM ts_device WHERE device_id = ?", (device_id,))
            return _history(conn, "device", None if key is None else key["k"], s.metrics, start, end, max_points)

    def interface_history(self, device_id: str, name: str, start: float, end: float, max_points: int = 2000,
                          metrics: Sequence[str] | None = None) -> History:
        s = q.iface_series(device_id, name, metrics)
        with self.db.connection() as conn:
            key = conn.fetchone("SELECT i.ik AS k, i.dk FROM ts_device d JOIN ts_iface i ON i.dk = d.dk"
                                " WHERE d.device_id = ? AND i.interface = ?", (device_id, name))
            return _history(conn, "iface", None if key is None else key["k"], s.metrics, start, end, max_points,
                            dk=None if key is None else key["dk"])

    def summary(self, device_id: str, start: float, end: float) -> dict[str, dict[str, float | None]]:
        """Min/avg/max of every device metric over [start, end), from the tier history would read."""
        with self.db.connection() as conn:
            key = conn.fetchone("SELECT dk AS k FROM ts_device WHERE device_id = ?", (device_id,))
            if key is None:
                return {m: {"min": None, "avg": None, "max": None} for m in DEVICE_METRICS}
            tier, bucket = _choose(conn, "device", key["k"], start, end, 2000)
            if tier == "raw":
                cols = ", ".join(f"min({m}) AS {m}_lo, avg({m}) AS {m}_av, max({m}) AS {m}_hi" for m in DEVICE_METRICS)
                r = conn.fetchone(f"SELECT {cols} FROM device_samples WHERE dk = ? AND slot >= ? AND slot < ?",  # noqa: S608  # nosec B608
                                  (key["k"], math.floor(start), math.ceil(end)))
            else:
                cols = ", ".join(f"min({m}_min) AS {m}_lo, sum({m}_avg * {m}_n) / nullif(sum({m}_n), 0) AS {m}_av,"
                                 f" max({m}_max) AS {m}_hi" for m in DEVICE_METRICS)
                r = conn.fetchone(f"SELECT {cols} FROM device_{tier} WHERE dk = ? AND bucket >= ? AND bucket < ?",  # noqa: S608  # nosec B608
                                  (key["k"], int(start // bucket * bucket), math.ceil(end)))
        r = r or {}  # an aggregate always returns its row
        return {m: {"min": _num(r.get(f"{m}_lo")), "avg": _num(r.get(f"{m}_av")), "max": _num(r.get(f"{m}_hi"))}
                for m in DEVICE_METRICS}


def _num(v: Any) -> float | None:  # a numeric (Decimal) average as a float
    return None if v is None else float(v)


def _firsts(conn: PgConn, kind: str, key: int, dk: int | None = None) -> dict[HistoryTier, float | None]:
    k = "dk" if kind == "device" else "ik"
    raw = ("SELECT min(slot) FROM device_samples WHERE dk = ?" if kind == "device"
           else "SELECT min(slot) FROM iface_packed WHERE dk = ? AND ? = ANY(iks)")
    raw_params = (key,) if kind == "device" else (dk, key)
    r = conn.fetchone(
        f"SELECT ({raw}) AS raw,"  # noqa: S608  # nosec B608
        f" (SELECT min(bucket) FROM {kind}_5m WHERE {k} = ?) AS m5, (SELECT min(bucket) FROM {kind}_1h WHERE {k} = ?)"
        " AS h1", (*raw_params, key, key))
    r = r or {}  # an aggregate always returns its row
    return {"raw": _num(r.get("raw")), "5m": _num(r.get("m5")), "1h": _num(r.get("h1"))}


def _choose(conn: PgConn, kind: str, key: int, start: float, end: float, max_points: int,
            dk: int | None = None) -> tuple[HistoryTier, int]:
    """The tier to read: `queries.tier_for` (the SQLite rules) over this backend's first times."""
    return q.tier_for(_firsts(conn, kind, key, dk), start, end, max_points)


def _grouped_sql(table: str, k: str, metrics: Sequence[str], width: int) -> str:
    cols = ", ".join(f"(sum({m}_avg * {m}_n) / nullif(sum({m}_n), 0))::float8 AS {m}, max({m}_max) AS {m}_max"
                     for m in metrics)
    return (f"SELECT (bucket / {width}) * {width} AS t, {cols} FROM {table}"  # noqa: S608  # nosec B608
            f" WHERE {k} = ? AND bucket >= ? AND bucket < ? GROUP BY 1 ORDER BY 1")


def _from_groups(conn: PgConn, kind: str, k: str, key: int, metrics: Sequence[str], width: int, lo: int,
                 hi: int) -> list[dict[str, Any]]:
    """5-minute rows grouped to `width`: whole 30-minute groups from the materialised table, the edges on the fly.

    The same points as grouping the 5-minute rows of [lo, hi) directly (`queries._grouped_from_materialised`).
    """
    g = pg_series.GROUP_S
    a, b = -(-lo // width) * width, hi // width * width
    segments = ([(f"{kind}_5m", lo, a), (f"{kind}_5m_g30m", a, b), (f"{kind}_5m", b, hi)] if a < b
                else [(f"{kind}_5m", lo, hi)])
    points: list[dict[str, Any]] = []
    for table, seg_lo, seg_hi in segments:
        if seg_lo >= seg_hi:
            continue
        if table.endswith("_g30m") and width == g:
            cols = ", ".join(f"{m}_avg AS {m}, {m}_max" for m in metrics)
            sql = (f"SELECT bucket AS t, {cols} FROM {table} WHERE {k} = ? AND bucket >= ? AND bucket < ?"  # noqa: S608  # nosec B608
                   " ORDER BY bucket")
        else:
            sql = _grouped_sql(table, k, metrics, width)
        rows = conn.fetchall(sql, (key, seg_lo, seg_hi))  # dicts already; every value a float or None
        for r in rows:
            r["t"] = float(r["t"])
        points.extend(rows)
    return points


def _history(conn: PgConn, kind: str, key: int | None, metrics: tuple[str, ...], start: float, end: float,
             max_points: int, dk: int | None = None) -> History:
    max_points = max(3, max_points)
    if key is None:
        return History("raw", None, [])
    k = "dk" if kind == "device" else "ik"
    tier, bucket = _choose(conn, kind, key, start, end, max_points, dk)
    params: tuple[int, ...]
    if tier == "raw":
        lo, hi = math.floor(start), math.ceil(end)
        if kind == "device":
            rng, params = "FROM device_samples WHERE dk = ? AND slot >= ? AND slot < ?", (key, lo, hi)
        else:  # the interface's values picked out of its device's packed rows
            rng, params = f"FROM {_one_iface(int(dk or 0), key)} WHERE slot >= ? AND slot < ?", (lo, hi)
    else:
        table, lo, hi = f"{kind}_{tier}", int(start // bucket * bucket), math.ceil(end)
        rng = f"FROM {table} WHERE {k} = ? AND bucket >= ? AND bucket < ?"
        params = (key, lo, hi)
    count_row = conn.fetchone(f"SELECT count(*) AS n {rng}", params)  # nosec B608
    count = int(count_row["n"]) if count_row else 0
    width: int | None = None
    t_raw = "((slot * 1000 + off_ms) / 1000.0)::float8"
    if count <= max_points:
        if tier == "raw":
            cols = ", ".join(f"{m}, {m} AS {m}_max" for m in metrics)
            sql = f"SELECT {t_raw} AS t, {cols}, approx {rng} ORDER BY slot"
        else:
            cols = ", ".join(f"{m}_avg AS {m}, {m}_max" for m in metrics)
            sql = f"SELECT bucket AS t, {cols} {rng} ORDER BY bucket"
    else:
        width = q.group_width(bucket, (end - start) / (max_points - 2))
        if tier == "raw":
            cols = (", ".join(f"avg({m})::float8 AS {m}, max({m}) AS {m}_max" for m in metrics)
                    + ", bool_or(approx) AS approx")
            sql = f"SELECT (slot / {width}) * {width} AS t, {cols} {rng} GROUP BY 1 ORDER BY 1"
        elif tier == "5m" and width % pg_series.GROUP_S == 0:
            return History(tier, width, q.mark_gaps(_from_groups(conn, kind, k, key, metrics, width, lo, hi),
                                                    width, max_points))
        else:
            sql = _grouped_sql(f"{kind}_{tier}", k, metrics, width)
    points = conn.fetchall(sql, params)  # dicts; averages cast to float8 in the SQL (no Decimal)
    for p in points:
        p["t"] = float(p["t"])
    step = width or (bucket if tier != "raw" else None)
    return History(tier, width or (bucket or None), q.mark_gaps(points, step, max_points))
