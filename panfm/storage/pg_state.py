"""The devices' newest state on PostgreSQL, as a cycle writes it: baselines, statuses, dataplane CPU, clock stats.

One `INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT DO UPDATE` per table with binary
array parameters built by `pg_arrays` (one statement whatever the fleet's size;
`PgSampleStore.write_cycle` sends them in its pipeline, on a connection `pg_arrays.register`ed).
`fenced`: only the devices the transaction's fence kept (`panfm_allowed`). The parameters are
built apart from the statements (`state_params`), so the clock can pack them while it waits
for its turn to write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from panfm.models import CounterBaseline, DataplaneCpu, DeviceStatus
from panfm.storage import jsontext
from panfm.storage import latest as latest_q
from panfm.storage.pg_arrays import Float8Array, Int4Array, Int8Array, TextArray, pack
from panfm.storage.postgres import PgConn

STATE_FENCE = " WHERE u.device_id IN (SELECT device_id FROM panfm_allowed)"
# The devices' state: one upsert per table from binary arrays.
PUT_BASELINES = (
    "INSERT INTO baselines (device_id, ts, serial, uptime_seconds, counters, rtt_ms)"
    " SELECT * FROM unnest(?::text[], ?::float8[], ?::text[], ?::bigint[], ?::text[], ?::float8[]) AS u(device_id)"
    "{where} ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, serial = excluded.serial,"
    " uptime_seconds = excluded.uptime_seconds, counters = excluded.counters, rtt_ms = excluded.rtt_ms")
PUT_STATUSES = (
    "INSERT INTO device_status (device_id, state, last_poll, last_success, last_error, consecutive_failures)"
    " SELECT * FROM unnest(?::text[], ?::text[], ?::float8[], ?::float8[], ?::text[], ?::int[]) AS u(device_id)"
    "{where} ON CONFLICT (device_id) DO UPDATE SET state = excluded.state, last_poll = excluded.last_poll,"
    " last_success = excluded.last_success, last_error = excluded.last_error,"
    " consecutive_failures = excluded.consecutive_failures")
PUT_DATAPLANES = (
    "INSERT INTO dataplane_latest (device_id, ts, doc) SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[])"
    " AS u(device_id){where} ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, doc = excluded.doc")


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


# A cycle's state as the upserts' parameters: packed before the write's transaction
# (`PgSampleStore.pack_cycle`) or inside its pipeline, then sent by `put_state`.
StateParams = tuple[tuple[bytes, ...] | None, tuple[bytes, ...] | None, tuple[bytes, ...] | None]


def baselines_params(baselines: Sequence[CounterBaseline]) -> tuple[bytes, ...] | None:
    if not baselines:
        return None
    return (pack(TextArray, [b.device_id for b in baselines]), pack(Float8Array, [float(b.ts) for b in baselines]),
            pack(TextArray, [b.serial for b in baselines]),
            pack(Int8Array, [_int(b.uptime_seconds) for b in baselines]),
            pack(TextArray, [latest_q.encode_counters(b.counters) for b in baselines]),
            pack(Float8Array, [_float(b.rtt_ms) for b in baselines]))


def statuses_params(statuses: Sequence[DeviceStatus]) -> tuple[bytes, ...] | None:
    if not statuses:
        return None
    return (pack(TextArray, [s.device_id for s in statuses]), pack(TextArray, [s.state for s in statuses]),
            pack(Float8Array, [_float(s.last_poll) for s in statuses]),
            pack(Float8Array, [_float(s.last_success) for s in statuses]),
            pack(TextArray, [s.last_error for s in statuses]),
            pack(Int4Array, [int(s.consecutive_failures) for s in statuses]))


def dataplanes_params(dataplanes: Sequence[DataplaneCpu]) -> tuple[bytes, ...] | None:
    from panfm.storage.samples import dataplane_doc

    if not dataplanes:
        return None
    return (pack(TextArray, [d.device_id for d in dataplanes]),
            pack(Int8Array, [round(d.ts * 1000) for d in dataplanes]),
            pack(TextArray, [jsontext.dumps(dataplane_doc(d)) for d in dataplanes]))


def state_params(baselines: Sequence[CounterBaseline], statuses: Sequence[DeviceStatus],
                 dataplanes: Sequence[DataplaneCpu]) -> StateParams:
    """The three upserts' parameters (None: nothing to write to that table)."""
    return baselines_params(baselines), statuses_params(statuses), dataplanes_params(dataplanes)


def put_state(tx: PgConn, params: StateParams, fenced: bool = False) -> None:
    """Send the baselines', statuses' and dataplanes' upserts (`state_params`); `fenced`: the kept devices only."""
    where = STATE_FENCE if fenced else ""
    for sql, args in zip((PUT_BASELINES, PUT_STATUSES, PUT_DATAPLANES), params, strict=True):
        if args is not None:
            tx.execute(sql.format(where=where), args, binary=True)


def put_clock_stats(tx: PgConn, stats: dict[str, Any], heartbeat: float, node_id: str) -> None:
    doc = json.dumps({k: v for k, v in stats.items() if k != "heartbeat"}, default=str)
    tx.execute("INSERT INTO clock_stats (node_id, doc, heartbeat) VALUES (?, ?, ?) ON CONFLICT (node_id)"
               " DO UPDATE SET doc = excluded.doc, heartbeat = excluded.heartbeat", (node_id, doc, heartbeat))
