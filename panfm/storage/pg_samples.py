"""The sample writer on PostgreSQL: `PgSampleStore`, the same interface as `SampleStore` on SQLite.

Writes of a cycle go in one transaction sent as one pipeline (one round trip from BEGIN to
COMMIT), shaped for thousands of rows (S8 of the scale-out brief: ~333 devices with ~15
interfaces each per clock and cycle):

- The fence is checked once: with `(owner, {device_id: fence})` (several clocks, see
  docs/postgres.md) the transaction's first statement keeps, in the session table
  `panfm_allowed`, the devices whose lease `device_lease` still grants (owner, fence,
  `lease_until > now()`, the transaction's start); every later statement writes only their
  rows, state and counters, and the last one counts the refused device samples.
- Raw rows go as binary array parameters built a column at a time (`pg_arrays`), keyed by the
  integer series keys the writer caches (no text ids, no per-row lookups, no object per
  sample): the device rows by one `INSERT ... SELECT FROM unnest(...)`, the interface rows
  as flat arrays in device order that the server cuts into one `iface_packed` row per device
  and slot (`a[lo:hi]` per device). Both under a savepoint: when a device and slot already
  has its row (another clock's, a retried cycle) the unique key refuses the batch and it goes
  again with `ON CONFLICT DO NOTHING`: never a second row for a device and slot.
- State (baselines, statuses, dataplane CPU, the clock's own stats row) goes as one
  `INSERT ... SELECT FROM unnest(arrays)` upsert per table (`pg_state`).
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from panfm.models import (
    CounterBaseline,
    CycleResult,
    DeviceStatus,
)
from panfm.storage import jsontext, pg_arrays, pg_rows, pg_series, pg_state
from panfm.storage.pg_rollups import advance_closed
from panfm.storage.pg_rollups import regroup as regroup  # pg_migrate and bench_pg_web import it from here
from panfm.storage.postgres import PgConn, PgDatabase, PgDatabaseError, PgIntegrityError

Fence = tuple[str, Mapping[str, int]]  # (owner, fence per device id)

_ALLOWED_DDL = ("CREATE TEMP TABLE IF NOT EXISTS panfm_allowed (device_id TEXT PRIMARY KEY, dk INTEGER)"
                " ON COMMIT DELETE ROWS")


class PgSampleStore:
    """The writer of the time series on PostgreSQL (a clock; thread-safe like `SampleStore`)."""

    def __init__(self, db: PgDatabase, interval_s: int = 30, clock_now: float | None = None) -> None:
        self.db = db
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._dks: dict[str, int] = {}
        self._iks: dict[tuple[str, str], int] = {}
        self._ikd: dict[str, dict[str, int]] = {}  # the same keys by device, then name
        # Pooled connections whose session has the fence table and the array dumpers (a
        # reconnection is a new object).
        self._staged: weakref.WeakSet[Any] = weakref.WeakSet()
        self._partitions_until = -math.inf  # the day partitions exist up to this epoch second
        self.path = None  # no file: `db backup` uses pg_dump on PostgreSQL
        # The last fenced write's transaction on the server, from its BEGIN to its last statement
        # (ms; None: unfenced, or not written): the rest of the write's wall time is the client's.
        self.last_txn_ms: float | None = None

    def set_interval(self, seconds: int) -> None:
        """The refresh interval now (slots are counted in it)."""
        self.interval_s = max(1, int(seconds))

    def slot_of(self, ts: float) -> int:
        """The start (epoch seconds) of the slot `ts` falls in."""
        return int(ts // self.interval_s) * self.interval_s

    # ---- writes ---------------------------------------------------------------------

    @staticmethod
    def _keys(tx: PgConn, devices: set[str],
              ifaces: set[tuple[str, str]]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """The integer keys of devices and interfaces not cached yet (created when new).

        Returned, not cached here: the caller caches them once the transaction committed (a
        rolled-back key does not exist, and a row written with it would be lost).
        """
        dks: dict[str, int] = {}
        new = sorted(devices)
        if new:
            tx.execute("INSERT INTO ts_device (device_id) SELECT unnest(?::text[]) ON CONFLICT DO NOTHING", (new,))
            for r in tx.fetchall("SELECT device_id, dk FROM ts_device WHERE device_id = ANY(?)", (new,)):
                dks[r["device_id"]] = int(r["dk"])
        iks: dict[tuple[str, str], int] = {}
        new_if = sorted(ifaces)
        if new_if:
            params = ([d for d, _ in new_if], [n for _, n in new_if])
            tx.execute(
                "INSERT INTO ts_iface (dk, interface) SELECT d.dk, u.name FROM unnest(?::text[], ?::text[])"
                " AS u(device_id, name) JOIN ts_device d ON d.device_id = u.device_id ON CONFLICT DO NOTHING",
                params,
            )
            for r in tx.fetchall(
                "SELECT u.device_id, u.name, i.ik FROM unnest(?::text[], ?::text[]) AS u(device_id, name)"
                " JOIN ts_device d ON d.device_id = u.device_id"
                " JOIN ts_iface i ON i.dk = d.dk AND i.interface = u.name",
                params,
            ):
                iks[(r["device_id"], r["name"])] = int(r["ik"])
        return dks, iks

    def warm_keys(self, device_ids: Iterable[str]) -> int:
        """Cache the stored keys of these devices and their interfaces; return how many keys were new here.

        For devices this clock was just granted (a takeover, or every device at its start): their
        keys exist once any clock wrote them, and the first write of a device the cache misses
        otherwise opens its transaction early to look them up (`_keys`: four more round trips
        inside the fenced write). Read-only and outside any write; keys not stored yet are
        created by the write as before.
        """
        wanted = sorted(set(device_ids) - self._dks.keys())
        if not wanted:
            return 0
        with self.db.connection() as conn:
            rows = conn.fetchall(
                "SELECT d.device_id, d.dk, i.interface, i.ik FROM ts_device d LEFT JOIN ts_iface i ON i.dk = d.dk"
                " WHERE d.device_id = ANY(?)", (wanted,))
        found_d = {r["device_id"]: int(r["dk"]) for r in rows}
        found_i = {(r["device_id"], r["interface"]): int(r["ik"]) for r in rows if r["ik"] is not None}
        return self._remember(found_d, found_i)  # committed keys: safe to cache at once

    def ensure_keys(self, cycle: CycleResult) -> int:
        """Create and cache the keys of the cycle's devices and interfaces not cached yet; return how many.

        In a short transaction of its own, before the cycle's fenced write (the clock calls it
        while it waits for its turn to write): a fresh fleet's first cycle, or a new interface,
        then costs the write nothing (creating 5,000 interface keys took the first write from
        ~40 to 80-330 ms). A key is only a name's number: made for a device whose lease is lost
        meanwhile, it is the key the next owner uses. `write_cycle` still creates any key
        missing here (this call failed, or was not made).
        """
        dks, iks = self._dks, self._iks
        devices = {x.device_id for x in cycle.samples if x.device_id not in dks}
        devices |= {x.device_id for x in cycle.interfaces if x.device_id not in dks}
        ifaces = {k for x in cycle.interfaces if (k := (x.device_id, x.name)) not in iks}
        if not devices and not ifaces:
            return 0
        with self.db.connection() as tx:
            tx.execute("BEGIN")
            try:
                new_dks, new_iks = self._keys(tx, devices, ifaces)
                tx.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(PgDatabaseError):
                    tx.execute("ROLLBACK")
                raise
        self._remember(new_dks, new_iks)  # committed
        return len(new_dks) + len(new_iks)

    def _remember(self, dks: Mapping[str, int], iks: Mapping[tuple[str, str], int]) -> int:
        """Merge committed keys into the cache (the writer's and `warm_keys`'s); return how many were new.

        Merged under the lock, never swapped: the writer and a warm in another thread may each
        bring keys the other has not seen. The maps are replaced, not changed in place, so a
        write reading the old ones meanwhile keeps a consistent view.
        """
        with self._lock:
            new_d = {k: v for k, v in dks.items() if k not in self._dks}
            new_i = {k: v for k, v in iks.items() if k not in self._iks}
            if new_d:
                self._dks = {**self._dks, **new_d}
            if new_i:
                self._iks = {**self._iks, **new_i}
                self._ikd = pg_rows.nested(self._iks)
        return len(new_d) + len(new_i)

    def _ensure_partitions(self, now: float) -> None:
        if now + pg_series.DAY_S < self._partitions_until:
            return
        pg_series.ensure_partitions(self.db, now)
        self._partitions_until = pg_series.day_start(pg_series.day_of(now)) + (pg_series.DAYS_AHEAD + 1) * 86400

    def prepare_write(self, now: float) -> None:
        """What a write needs first, done ahead of it: the day partitions (a fresh database, or once a
        day), and a pooled connection's fence table and array dumpers (its first write).

        The clock calls it before it waits for its turn to write; `write_cycle` does the same
        itself when they are missing (then inside its own time: the first write on a fresh
        database took ~50 ms more for the partitions' DDL, S8 in docs/benchmarks.md).
        """
        self._ensure_partitions(now)
        with self.db.connection() as tx:
            self._prepare(tx)

    def pack_cycle(self, cycle: CycleResult) -> pg_rows.PackedCycle | None:
        """Every parameter of the cycle's write, packed now over the cached keys (None: a key is not cached).

        The clock calls it before it waits for its turn to write (and again after `ensure_keys`
        when a key was missing), and hands the result to `write_cycle`: the transaction then only
        sends (~21 ms of a 500-firewall write's ~28 ms of client CPU were the packing,
        docs/benchmarks.md).
        """
        return pg_rows.pack_cycle(cycle, self.slot_of(cycle.started), self._dks, self._ikd)

    def write_cycle(self, cycle: CycleResult, clock_stats: dict[str, Any] | None = None,
                    fence: Fence | None = None, node_id: str | None = None,
                    packed: pg_rows.PackedCycle | None = None) -> int:
        """Write one collection cycle in one transaction; return how many device samples the fence refused.

        Every sample of the cycle counts in the slot the cycle started in. With a fence
        `(owner, {device: fence})` the transaction's first statement keeps, in a session table,
        the devices whose lease `device_lease` still grants (owner, fence, `lease_until > now()`:
        the transaction's start); every later statement writes the rows, state and counters of
        those devices only, and the refused device samples are counted. Without a fence (one
        clock) the rollups of the buckets that closed are advanced in the same transaction;
        with one, rollups are the leader's job (`advance_rollups`). The clock's stats go to its
        own row (`node_id`, or the fence's owner; one clock: the only row).

        Round trips, not work, are what a busy clock host makes slow (each one waits for the
        GIL again): the keys are looked up before the transaction, then BEGIN, every statement
        and COMMIT go in one pipeline (one round trip; a new device or interface first costs
        BEGIN and its keys' statements, unless `ensure_keys` made them). Each statement's
        columns are packed once the statements before it are on their way, so the server
        works while the writer packs; or, given `packed` (`pack_cycle` of this cycle), before.
        """
        slot = self.slot_of(cycle.started)
        if packed is not None and (packed.cycle is not cycle or packed.slot != slot):
            packed = None  # another cycle's, or the interval changed since: packed again below
        self._ensure_partitions(cycle.started)
        samples, ifaces = cycle.samples, cycle.interfaces
        fenced = fence is not None
        node = node_id if node_id is not None else (fence[0] if fence is not None else "")
        with self._lock, self.db.connection() as tx:
            self._prepare(tx)
            dks, iks, ikd = self._dks, self._iks, self._ikd
            # The interface rows' keys from the cache (the steady state: one pass, before the transaction).
            keyed = None if packed is not None else pg_rows.iface_keys(ifaces, dks, ikd)
            began = False
            try:
                if packed is None and (keyed is None or any(x.device_id not in dks for x in samples)):
                    # A new device or interface: its keys first, in this transaction.
                    tx.execute("BEGIN")
                    began = True
                    new_dks, new_iks = self._keys(
                        tx, {x.device_id for x in samples if x.device_id not in dks}
                        | {x.device_id for x in ifaces if x.device_id not in dks},
                        {k for x in ifaces if (k := (x.device_id, x.name)) not in iks})
                    dks = {**dks, **new_dks} if new_dks else dks
                    if new_iks:
                        iks = {**iks, **new_iks}
                        ikd = pg_rows.nested(iks)
                    keyed = pg_rows.iface_keys(ifaces, dks, ikd)
                    if keyed is None:  # not after `_keys`: every key is made or found there
                        raise RuntimeError("interface keys missing after they were made")
                cols: dict[str, Any] = {}  # packed once, before or in the pipeline (kept for a second send)
                if packed is not None:
                    cols.update(dev=packed.dev, state=packed.state, ids=packed.sample_ids)
                    if packed.iface is not None:
                        cols["if"] = packed.iface
                refused_cur: list[Any] = []

                def send(keep_first: bool) -> None:
                    """The raw rows and the devices' state, sent without waiting for each result.

                    Each column set is packed after the statements before it went: the server
                    runs those meanwhile.
                    """
                    keep = pg_rows.KEEP_FIRST if keep_first else ""
                    where = pg_rows.DEV_FENCE if fenced else ""
                    if samples:
                        if cols.get("dev") is None:
                            cols["dev"] = pg_rows.device_columns(samples, slot, dks)
                        tx.execute(pg_rows.PUT_DEVICE.format(where=where) + keep, [slot, *cols["dev"]], binary=True)
                    if ifaces:
                        if "if" not in cols:
                            if keyed is None:  # only with `packed`, which then has the interface rows
                                raise RuntimeError("interface rows neither packed nor keyed")
                            cols["if"] = pg_rows.iface_columns(keyed, slot)
                        arrays = cols["if"]
                        tx.execute(arrays.sql.format(where=where) + keep, [slot, *arrays.params], binary=True)
                    if not keep_first:
                        tx.execute("RELEASE SAVEPOINT panfm_raw")
                    if "state" not in cols:
                        cols["state"] = pg_state.state_params(cycle.baselines, cycle.statuses, cycle.dataplanes)
                    pg_state.put_state(tx, cols["state"], fenced)
                    if clock_stats is not None:
                        pg_state.put_clock_stats(tx, clock_stats, cycle.finished, node)
                    else:
                        tx.execute("INSERT INTO clock_stats (node_id, doc, heartbeat) VALUES (?, '{}', ?)"
                                   " ON CONFLICT (node_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                                   (node, cycle.finished))
                    if fenced:
                        refused_cur[:] = [tx.execute(
                            "SELECT count(*) AS n, extract(epoch FROM clock_timestamp() - now())::float8 * 1000.0"
                            " AS txn_ms FROM unnest(?::text[]) AS s(device_id) WHERE NOT EXISTS"
                            " (SELECT 1 FROM panfm_allowed a WHERE a.device_id = s.device_id)",
                            (cols.get("ids") or pg_arrays.pack(pg_arrays.TextArray, [x.device_id for x in samples]),),
                            binary=True)]
                        tx.execute("COMMIT")  # skipped by the server when a statement above failed

                # A plain INSERT costs about half of one with ON CONFLICT; a device and slot written
                # already (another clock's row, a cycle retried) is rare: then the unique key refuses
                # the batch, and it goes again keeping the rows that were there first.
                try:
                    with tx.pipeline():
                        if not began:
                            tx.execute("BEGIN")
                            began = True
                        if fence is not None:
                            self._allow(tx, fence[0], fence[1])
                        tx.execute("SAVEPOINT panfm_raw")
                        send(keep_first=False)
                except PgIntegrityError:
                    tx.execute("ROLLBACK TO SAVEPOINT panfm_raw")
                    with tx.pipeline():
                        send(keep_first=True)
                if fence is None:
                    earliest = min((x.ts for x in samples), default=None)
                    advance_closed(tx, cycle.started, None if earliest is None else self.slot_of(earliest))
                    tx.execute("COMMIT")
            except BaseException:
                if began:
                    with contextlib.suppress(PgDatabaseError):
                        tx.execute("ROLLBACK")
                raise
        if dks is not self._dks or iks is not self._iks:  # committed: the new keys exist
            self._remember(dks, iks)
        self.last_txn_ms = None
        if not refused_cur:
            return 0
        row = refused_cur[0].fetchone()
        if row is None:
            return 0
        self.last_txn_ms = float(row["txn_ms"])
        return int(row["n"])

    def _prepare(self, tx: PgConn) -> None:
        """This session's fence table and array dumpers, set up once per connection (outside any transaction)."""
        if tx.raw not in self._staged:
            tx.execute(_ALLOWED_DDL)
            pg_arrays.register(tx.raw)
            self._staged.add(tx.raw)

    @staticmethod
    def _allow(tx: PgConn, owner: str, fences: Mapping[str, int]) -> None:
        """Keep the devices whose lease is still this owner's with this fence (for the transaction's statements)."""
        ids = sorted(fences)
        tx.execute(
            "INSERT INTO panfm_allowed (device_id, dk) SELECT l.device_id, d.dk FROM device_lease l"
            " JOIN unnest(?::text[], ?::bigint[]) AS u(device_id, fence) ON u.device_id = l.device_id"
            " AND u.fence = l.fence LEFT JOIN ts_device d ON d.device_id = l.device_id"
            " WHERE l.owner = ? AND l.lease_until > now()",
            (pg_arrays.pack(pg_arrays.TextArray, ids), pg_arrays.pack(pg_arrays.Int8Array, [fences[d] for d in ids]),
             owner), binary=True,
        )

    def write_clock_stats(self, stats: dict[str, Any], heartbeat: float, node_id: str = "") -> None:
        """Store the clock's execution stats and heartbeat outside a cycle (its own row: `node_id`)."""
        with self.db.transaction() as tx:
            pg_state.put_clock_stats(tx, stats, heartbeat, node_id)

    def write_inventory(self, device_id: str, ts: float, info: dict[str, Any],
                        fence: tuple[str, int] | None = None, inputs: Mapping[str, Any] | None = None) -> bool:
        """Store a device's slow-changing inventory and context (a JSON document); False: the fence refused it.

        `fence` (owner, fence): written only while `device_lease` still grants the device to
        that owner with that fence (the check and the write in one statement). `inputs`: what
        the alerts read of it (`alert_inputs`), kept beside it for the leader (`alert_inputs_changed`).
        """
        doc = jsontext.dumps(info)
        kept = None if inputs is None else jsontext.dumps(dict(inputs))
        with self.db.transaction() as tx:
            if fence is None:
                tx.execute("INSERT INTO inventory (device_id, ts, doc, inputs) VALUES (?, ?, ?, ?) ON CONFLICT"
                           " (device_id) DO UPDATE SET ts = excluded.ts, doc = excluded.doc, inputs = excluded.inputs",
                           (device_id, ts, doc, kept))
                return True
            cur = tx.execute(
                "INSERT INTO inventory (device_id, ts, doc, inputs) SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM"
                " device_lease l WHERE l.device_id = ? AND l.owner = ? AND l.fence = ? AND l.lease_until > now())"
                " ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, doc = excluded.doc, inputs = excluded.inputs",
                (device_id, ts, doc, kept, device_id, fence[0], fence[1]))
            return int(cur.rowcount) > 0

    def advance_rollups(self, closed_before: float, since: float | None = None) -> None:
        """Roll up every bucket closed before `closed_before` not rolled up yet (and from `since` again).

        Idempotent upserts: running a bucket twice, or by two clocks, gives the same rows.
        """
        with self.db.transaction() as tx:
            advance_closed(tx, closed_before, None if since is None else int(since))

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
            # The stats rows of clocks gone for a day (each start is a new node id).
            cur = tx.execute("DELETE FROM clock_stats WHERE heartbeat < ?", (now - 86400,))
            out["clock_stats"] = int(cur.rowcount)
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
