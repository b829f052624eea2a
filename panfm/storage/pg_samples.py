"""The sample writer on PostgreSQL: `PgSampleStore`, the same interface as `SampleStore` on SQLite.

Writes of a cycle go in one transaction. Raw rows go in with `INSERT ... SELECT FROM unnest(...)
ON CONFLICT DO NOTHING`: one statement per table, whatever the fleet's size, and never a second
row for a device and slot. With a fence `(owner, {device_id: fence})` (several clocks, see
docs/postgres.md) each row is written only if `device_lease` still grants that device to that
owner with that fence and `lease_until > now()`, in the same statement; the rows refused are
counted and returned, and neither the device's state nor its counters are touched by a clock
that lost its lease.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from panfm.models import CounterBaseline, CycleResult, DataplaneCpu, DeviceStatus
from panfm.storage import latest as latest_q
from panfm.storage import pg_series
from panfm.storage.postgres import PgConn, PgDatabase
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS, INT_METRICS

Fence = tuple[str, Mapping[str, int]]  # (owner, fence per device id)

# The lease check of a fenced write (device_lease is created and kept by the coordination side).
_LEASE_OK = ("EXISTS (SELECT 1 FROM device_lease l WHERE l.device_id = {col} AND l.owner = ?"
             " AND l.fence = {fence} AND l.lease_until > now())")


def _dev_sql_type(m: str) -> str:
    return "int[]" if m in INT_METRICS else "real[]"


def _if_sql_type(m: str) -> str:
    return "bigint[]" if m in pg_series.IFACE_WHOLE else "real[]"


def _device_insert(fenced: bool) -> str:
    cols = ", ".join(DEVICE_METRICS)
    arrays = ", ".join(["?::text[]", "?::bigint[]", "?::int[]", "?::bigint[]",
                        *(f"?::{_dev_sql_type(m)}" for m in DEVICE_METRICS), "?::real[]", "?::bool[]"])
    names = f"device_id, slot, off_ms, fence, {cols}, rtt_ms, approx"
    check = _LEASE_OK.format(col="u.device_id", fence="u.fence") if fenced else "TRUE"
    return (
        f"WITH u AS (SELECT * FROM unnest({arrays}) AS u({names})),"  # noqa: S608  # nosec B608 (constant names)
        f" ok AS (SELECT u.* FROM u WHERE {check}),"
        f" ins AS (INSERT INTO device_samples (dk, slot, off_ms, {cols}, rtt_ms, approx)"
        f" SELECT d.dk, ok.slot, ok.off_ms, {', '.join('ok.' + m for m in DEVICE_METRICS)}, ok.rtt_ms, ok.approx"
        " FROM ok JOIN ts_device d ON d.device_id = ok.device_id ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT (SELECT count(*) FROM u) - (SELECT count(*) FROM ok) AS refused, (SELECT count(*) FROM ins) AS written"
    )


def _iface_insert(fenced: bool) -> str:
    cols = ", ".join(IFACE_METRICS)
    arrays = ", ".join(["?::text[]", "?::text[]", "?::bigint[]", "?::int[]", "?::bigint[]",
                        *(f"?::{_if_sql_type(m)}" for m in IFACE_METRICS), "?::bool[]", "?::bool[]"])
    names = f"device_id, interface, slot, off_ms, fence, {cols}, counted, approx"
    check = _LEASE_OK.format(col="u.device_id", fence="u.fence") if fenced else "TRUE"
    return (
        f"WITH u AS (SELECT * FROM unnest({arrays}) AS u({names})),"  # noqa: S608  # nosec B608 (constant names)
        f" ok AS (SELECT u.* FROM u WHERE {check})"
        f" INSERT INTO iface_samples (ik, slot, off_ms, {cols}, counted, approx)"
        f" SELECT i.ik, ok.slot, ok.off_ms, {', '.join('ok.' + m for m in IFACE_METRICS)}, ok.counted, ok.approx"
        " FROM ok JOIN ts_device d ON d.device_id = ok.device_id"
        " JOIN ts_iface i ON i.dk = d.dk AND i.interface = ok.interface ON CONFLICT DO NOTHING"
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


class PgSampleStore:
    """The writer of the time series on PostgreSQL (a clock; thread-safe like `SampleStore`)."""

    def __init__(self, db: PgDatabase, interval_s: int = 30, clock_now: float | None = None) -> None:
        self.db = db
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._dks: dict[str, int] = {}
        self._iks: set[tuple[str, str]] = set()
        self._partitions_until = -math.inf  # the day partitions exist up to this epoch second
        self.path = None  # no file: `db backup` uses pg_dump on PostgreSQL

    def set_interval(self, seconds: int) -> None:
        """The refresh interval now (slots are counted in it)."""
        self.interval_s = max(1, int(seconds))

    def slot_of(self, ts: float) -> int:
        """The start (epoch seconds) of the slot `ts` falls in."""
        return int(ts // self.interval_s) * self.interval_s

    # ---- writes ---------------------------------------------------------------------

    def _keys(self, tx: PgConn, devices: set[str], ifaces: set[tuple[str, str]]) -> None:
        new = sorted(devices - self._dks.keys())
        if new:
            tx.execute("INSERT INTO ts_device (device_id) SELECT unnest(?::text[]) ON CONFLICT DO NOTHING", (new,))
            for r in tx.fetchall("SELECT device_id, dk FROM ts_device WHERE device_id = ANY(?)", (new,)):
                self._dks[r["device_id"]] = r["dk"]
        new_if = sorted(ifaces - self._iks)
        if new_if:
            tx.execute(
                "INSERT INTO ts_iface (dk, interface) SELECT d.dk, u.name FROM unnest(?::text[], ?::text[])"
                " AS u(device_id, name) JOIN ts_device d ON d.device_id = u.device_id ON CONFLICT DO NOTHING",
                ([d for d, _ in new_if], [n for _, n in new_if]),
            )

    def _ensure_partitions(self, now: float) -> None:
        if now + pg_series.DAY_S < self._partitions_until:
            return
        pg_series.ensure_partitions(self.db, now)
        self._partitions_until = pg_series.day_start(pg_series.day_of(now)) + (pg_series.DAYS_AHEAD + 1) * 86400

    def write_cycle(self, cycle: CycleResult, clock_stats: dict[str, Any] | None = None,
                    fence: Fence | None = None) -> int:
        """Write one collection cycle in one transaction; return how many sample rows the fence refused.

        Every sample of the cycle counts in the slot the cycle started in. Without a fence
        (one clock) the rollups of the buckets that closed are advanced in the same
        transaction; with one, rollups are the leader's job (`advance_rollups`).
        """
        slot = self.slot_of(cycle.started)
        fences = dict(fence[1]) if fence is not None else {}
        owner = fence[0] if fence is not None else ""
        self._ensure_partitions(cycle.started)

        def off(ts: float) -> int:
            return max(-2**31, min(2**31 - 1, round(ts * 1000) - slot * 1000))

        s = cycle.samples
        dev_params: list[Any] = [
            [x.device_id for x in s], [slot] * len(s), [off(x.ts) for x in s], [fences.get(x.device_id, -1) for x in s],
            *([getattr(x, m) for x in s] for m in DEVICE_METRICS), [x.rtt_ms for x in s], [x.approx for x in s],
        ]
        i = cycle.interfaces
        if_params: list[Any] = [
            [x.device_id for x in i], [x.name for x in i], [slot] * len(i), [off(x.ts) for x in i],
            [fences.get(x.device_id, -1) for x in i],
            *([_whole(getattr(x, m)) if m in pg_series.IFACE_WHOLE else getattr(x, m) for x in i]
              for m in IFACE_METRICS),
            [x.counted for x in i], [x.approx for x in i],
        ]
        fenced = fence is not None
        lease_args = [owner] if fenced else []
        with self._lock, self.db.transaction() as tx:
            self._keys(tx, {x.device_id for x in s} | {x.device_id for x in i}, {(x.device_id, x.name) for x in i})
            counts = tx.fetchone(_device_insert(fenced), [*dev_params[:4], *dev_params[4:], *lease_args])
            refused = int(counts["refused"]) if counts else 0
            if i:
                tx.execute(_iface_insert(fenced), [*if_params, *lease_args])
            allowed = self._allowed(tx, owner, fences) if fenced else None
            self._put_baselines(tx, [b for b in cycle.baselines if allowed is None or b.device_id in allowed])
            self._put_statuses(tx, [st for st in cycle.statuses if allowed is None or st.device_id in allowed])
            self._put_dataplanes(tx, [d for d in cycle.dataplanes if allowed is None or d.device_id in allowed])
            if not fenced:
                earliest = min((x.ts for x in s), default=None)
                _advance(tx, cycle.started, None if earliest is None else self.slot_of(earliest))
            if clock_stats is not None:
                self._put_clock_stats(tx, clock_stats, cycle.finished)
            else:
                tx.execute("INSERT INTO clock_stats (id, doc, heartbeat) VALUES (1, '{}', ?)"
                           " ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat", (cycle.finished,))
        self._iks |= {(x.device_id, x.name) for x in i}
        return refused

    @staticmethod
    def _allowed(tx: PgConn, owner: str, fences: Mapping[str, int]) -> set[str]:
        ids = sorted(fences)
        rows = tx.fetchall(
            "SELECT l.device_id FROM device_lease l JOIN unnest(?::text[], ?::bigint[]) AS u(device_id, fence)"
            " ON u.device_id = l.device_id AND u.fence = l.fence WHERE l.owner = ? AND l.lease_until > now()",
            (ids, [fences[d] for d in ids], owner),
        )
        return {r["device_id"] for r in rows}

    @staticmethod
    def _put_baselines(tx: PgConn, baselines: Sequence[CounterBaseline]) -> None:
        if baselines:
            tx.executemany(
                "INSERT INTO baselines (device_id, ts, serial, uptime_seconds, counters, rtt_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, serial = excluded.serial,"
                " uptime_seconds = excluded.uptime_seconds, counters = excluded.counters, rtt_ms = excluded.rtt_ms",
                [(b.device_id, b.ts, b.serial, b.uptime_seconds, latest_q.encode_counters(b.counters), b.rtt_ms)
                 for b in baselines],
            )

    @staticmethod
    def _put_statuses(tx: PgConn, statuses: Sequence[DeviceStatus]) -> None:
        if statuses:
            tx.executemany(
                "INSERT INTO device_status (device_id, state, last_poll, last_success, last_error,"
                " consecutive_failures) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                " state = excluded.state, last_poll = excluded.last_poll, last_success = excluded.last_success,"
                " last_error = excluded.last_error, consecutive_failures = excluded.consecutive_failures",
                [(s.device_id, s.state, s.last_poll, s.last_success, s.last_error, s.consecutive_failures)
                 for s in statuses],
            )

    @staticmethod
    def _put_dataplanes(tx: PgConn, dataplanes: Sequence[DataplaneCpu]) -> None:
        from panfm.storage.samples import dataplane_doc

        if dataplanes:
            tx.executemany(
                "INSERT INTO dataplane_latest (device_id, ts, doc) VALUES (?, ?, ?) ON CONFLICT (device_id)"
                " DO UPDATE SET ts = excluded.ts, doc = excluded.doc",
                [(d.device_id, round(d.ts * 1000), json.dumps(dataplane_doc(d))) for d in dataplanes],
            )

    @staticmethod
    def _put_clock_stats(tx: PgConn, stats: dict[str, Any], heartbeat: float) -> None:
        doc = json.dumps({k: v for k, v in stats.items() if k != "heartbeat"}, default=str)
        tx.execute("INSERT INTO clock_stats (id, doc, heartbeat) VALUES (1, ?, ?) ON CONFLICT (id)"
                   " DO UPDATE SET doc = excluded.doc, heartbeat = excluded.heartbeat", (doc, heartbeat))

    def write_clock_stats(self, stats: dict[str, Any], heartbeat: float) -> None:
        """Store the clock's execution stats and heartbeat outside a cycle."""
        with self.db.transaction() as tx:
            self._put_clock_stats(tx, stats, heartbeat)

    def write_inventory(self, device_id: str, ts: float, info: dict[str, Any]) -> None:
        """Store a device's slow-changing inventory and context (a JSON document)."""
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO inventory (device_id, ts, doc) VALUES (?, ?, ?) ON CONFLICT (device_id)"
                       " DO UPDATE SET ts = excluded.ts, doc = excluded.doc",
                       (device_id, ts, json.dumps(info, default=str)))

    def advance_rollups(self, closed_before: float, since: float | None = None) -> None:
        """Roll up every bucket closed before `closed_before` not rolled up yet (and from `since` again).

        Idempotent upserts: running a bucket twice, or by two clocks, gives the same rows.
        """
        with self.db.transaction() as tx:
            _advance(tx, closed_before, None if since is None else int(since))

    # ---- reads the clock needs ------------------------------------------------------

    def load_baselines(self) -> dict[str, CounterBaseline]:
        """Return the persisted raw counters of every device."""
        from panfm.storage.pg_reader import baselines

        with self.db.connection() as conn:
            return baselines(conn, None)

    def load_statuses(self) -> dict[str, DeviceStatus]:
        """Return the stored state of every device."""
        from panfm.storage.pg_reader import statuses

        with self.db.connection() as conn:
            return statuses(conn)

    # ---- maintenance ----------------------------------------------------------------

    def cleanup(self, now: float, raw_days: int, fivemin_days: int, hourly_days: int,
                chunk: int = 5000) -> dict[str, int]:
        """Raw retention by dropping day partitions; rollup retention by DELETE; return rows/partitions gone."""
        dropped = pg_series.drop_partitions_before(self.db, now - raw_days * 86400)
        out = {"partitions": dropped}
        with self.db.transaction() as tx:
            for tier, days in (("5m", fivemin_days), ("1h", hourly_days)):
                for kind in ("device", "iface"):
                    cur = tx.execute(f"DELETE FROM {kind}_{tier} WHERE bucket < ?", (int(now - days * 86400),))  # noqa: S608  # nosec B608
                    out[f"{kind}_{tier}"] = int(cur.rowcount)
        pg_series.ensure_partitions(self.db, now)
        return out

    def checkpoint(self) -> None:
        """Nothing to do on PostgreSQL (the server checkpoints)."""

    def close(self) -> None:
        """Nothing of its own to close: the pool belongs to the stores."""

    def __enter__(self) -> PgSampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rollup_exprs(metrics: tuple[str, ...], src: str) -> tuple[str, str, str]:
    cols = ", ".join(f"{m}_avg, {m}_min, {m}_max, {m}_n" for m in metrics)
    if src == "raw":
        exprs = ", ".join(f"avg({m}), min({m}), max({m}), count({m})" for m in metrics)
    else:  # from the finer tier: averages weighted by each metric's own count
        exprs = ", ".join(f"sum({m}_avg * {m}_n) / nullif(sum({m}_n), 0), min({m}_min), max({m}_max), sum({m}_n)"
                          for m in metrics)
    sets = ", ".join(f"{m}_avg = excluded.{m}_avg, {m}_min = excluded.{m}_min, {m}_max = excluded.{m}_max,"
                     f" {m}_n = excluded.{m}_n" for m in metrics)
    return cols, exprs, sets


def _advance(tx: PgConn, closed_before: float, since_slot: int | None) -> None:
    """Roll up the closed 5-minute buckets from the raw rows, then the closed hours from them."""
    for tier, src in (("5m", "raw"), ("1h", "5m")):
        width = pg_series.TIER_BUCKETS[tier]
        end = int(closed_before // width) * width
        mark = tx.fetchone("SELECT done_until FROM rollup_marks WHERE tier = ?", (tier,))
        start = int(mark["done_until"]) if mark else None
        if start is None:
            col, table = ("slot", "device_samples") if src == "raw" else ("bucket", "device_5m")
            first = tx.fetchone(f"SELECT min({col}) AS s FROM {table}")  # noqa: S608  # nosec B608
            if first is None or first["s"] is None:
                continue
            start = int(first["s"])
        if since_slot is not None:
            start = min(start, since_slot)
        start = start // width * width
        if start >= end:
            continue
        for kind, key, metrics in (("device", "dk", DEVICE_METRICS), ("iface", "ik", IFACE_METRICS)):
            # A sample counts in the bucket of its slot (the cycle it belongs to), like its key.
            cols, exprs, sets = _rollup_exprs(metrics, src)
            col, source, n = (("slot", f"{kind}_samples", "count(*)") if src == "raw"
                              else ("bucket", f"{kind}_5m", "sum(n)"))
            tx.execute(
                f"INSERT INTO {kind}_{tier} ({key}, bucket, n, {cols})"  # noqa: S608  # nosec B608 (constant names)
                f" SELECT {key}, ({col} / {width}) * {width} AS b, {n}, {exprs}"
                f" FROM {source} WHERE {col} >= ? AND {col} < ? GROUP BY {key}, b"
                f" ON CONFLICT ({key}, bucket) DO UPDATE SET n = excluded.n, {sets}",
                (start, end),
            )
        if tier == "5m":
            regroup(tx, start, end)
        tx.execute("INSERT INTO rollup_marks (tier, done_until) VALUES (?, ?) ON CONFLICT (tier)"
                   " DO UPDATE SET done_until = greatest(rollup_marks.done_until, excluded.done_until)", (tier, end))


def regroup(tx: PgConn, start: int, end: int) -> None:
    """(Re)compute the 30-minute groups of the 5-minute rows in [start, end): weighted averages, maxima, counts."""
    width = pg_series.GROUP_S
    lo, hi = start // width * width, -(-end // width) * width
    for kind, key, metrics in (("device", "dk", DEVICE_METRICS), ("iface", "ik", IFACE_METRICS)):
        cols = ", ".join(f"{m}_avg, {m}_max, {m}_n" for m in metrics)
        exprs = ", ".join(f"sum({m}_avg * {m}_n) / nullif(sum({m}_n), 0), max({m}_max), sum({m}_n)" for m in metrics)
        sets = ", ".join(f"{m}_avg = excluded.{m}_avg, {m}_max = excluded.{m}_max, {m}_n = excluded.{m}_n"
                         for m in metrics)
        tx.execute(
            f"INSERT INTO {kind}_5m_g30m ({key}, bucket, n, {cols})"  # noqa: S608  # nosec B608 (constant names)
            f" SELECT {key}, (bucket / {width}) * {width} AS b, sum(n), {exprs} FROM {kind}_5m"
            f" WHERE bucket >= ? AND bucket < ? GROUP BY {key}, b"
            f" ON CONFLICT ({key}, bucket) DO UPDATE SET n = excluded.n, {sets}",
            (lo, hi),
        )
