"""The raw rows of a cycle on PostgreSQL as binary array parameters, and the statements that take them.

`PgSampleStore.write_cycle` (pg_samples.py) builds the columns here before its transaction and
sends `PUT_DEVICE` and `PUT_IFACE` in its pipeline: the device rows as they are, the interface
rows as flat arrays in device order that the server cuts into one `iface_packed` row per device
and slot (`a[lo:hi]`). Keyed by the integer series keys the writer caches, with no object per
sample (thousands per cycle).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from panfm.models import CycleResult, DeviceSample, InterfaceSample
from panfm.storage import pg_arrays, pg_series, pg_state
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS, INT_METRICS

# The raw rows of a cycle go as binary array parameters (`pg_arrays`), one statement per table:
# the device rows as they are, the interface rows cut by the server into one `iface_packed` row
# per device and slot. `{where}`: the fence's filter, when there is one.
_DEV_COLS = ("dk", "slot", "off_ms", *DEVICE_METRICS, "rtt_ms", "approx")
_DEV_ARRAYS = ("dk", "off_ms", *DEVICE_METRICS, "rtt_ms", "approx")
_DEV_ARRAY_TYPES = ("int4", "int4", *("int8" if m in INT_METRICS else "float8" for m in DEVICE_METRICS),
                    "float8", "bool")
PUT_DEVICE = (f"INSERT INTO device_samples ({', '.join(_DEV_COLS)}) SELECT u.dk, ?::bigint, "  # noqa: S608  # nosec B608 (constant names)
             + ", ".join(f"u.{c}" for c in _DEV_ARRAYS[1:])
             + " FROM unnest(" + ", ".join(f"?::{t}[]" for t in _DEV_ARRAY_TYPES)
             + f") AS u({', '.join(_DEV_ARRAYS)}){{where}}")
DEV_FENCE = " WHERE u.dk IN (SELECT dk FROM panfm_allowed)"
# The interface rows go as flat arrays in device order plus, per device, its key and the 1-based
# bounds of its run in them; the server cuts each device's arrays out by slicing (`a[lo:hi]`: no
# per-interface row, join, sort or aggregate on its side: bench/pg_write.py, docs/benchmarks.md).
# The REAL metrics go as float4 (packed by the writer); the whole ones as float8, rounded by the server's cast.
_IF_FLAT_TYPES = ("int4", "int4", *("float8" if m in pg_series.IFACE_WHOLE else "float4" for m in IFACE_METRICS),
                  "bool", "bool")
_IF_CASTS = ("", "", *("::int8[]" if m in pg_series.IFACE_WHOLE else "" for m in IFACE_METRICS), "", "")
_IF_PACK = tuple(pg_arrays.Float8Array if m in pg_series.IFACE_WHOLE else pg_arrays.Float4Array
                 for m in IFACE_METRICS)
_IF_SLICES = ", ".join(f"((?::{t}[])[u.lo:u.hi]){cast}" for t, cast in zip(_IF_FLAT_TYPES, _IF_CASTS, strict=True))
PUT_IFACE = (f"INSERT INTO iface_packed (dk, slot, {', '.join(pg_series.IFACE_ARRAYS)}) SELECT u.dk, ?::bigint,"  # noqa: S608  # nosec B608 (constant names)
             f" {_IF_SLICES} FROM unnest(?::int4[], ?::int4[], ?::int4[]) AS u(dk, lo, hi){{where}}")
# A slice of an array with a NULL in it costs a walk from the array's start (PostgreSQL finds an
# element past a null bitmap by counting): one NULL anywhere made every device's slice of that
# column linear in the fleet, the whole write quadratic (a 500-firewall write with 166 first
# polls: 39 -> 101 ms, bench/pg_write.py --no-rates). A cycle with a missing value (a firewall's
# first poll, a survivor's first poll of the firewalls it took over) sends no NULL: NaN for a
# metric, -1 for `approx` (sent as int4), and a flag per device; the devices flagged get them
# back as NULL. The arrays come in once, in `p`, so each can be named twice.
_IF_NULLS_TYPES = (*_IF_FLAT_TYPES[:-1], "int4")  # approx as 0 / 1 / -1
_IF_NULLS_COLS: list[str] = []
for _k, (_t, _cast) in enumerate(zip(_IF_NULLS_TYPES, _IF_CASTS, strict=True)):
    _slice = f"p.a{_k}[u.lo:u.hi]"
    if _t.startswith("float"):
        _IF_NULLS_COLS.append(f"(CASE WHEN u.nul THEN array_replace({_slice}, 'NaN', NULL) ELSE {_slice} END){_cast}")
    elif _k == len(_IF_NULLS_TYPES) - 1:
        _IF_NULLS_COLS.append(f"(CASE WHEN u.nul THEN array_replace({_slice}, -1, NULL) ELSE {_slice} END)::bool[]")
    else:
        _IF_NULLS_COLS.append(f"{_slice}{_cast}")
_IF_NULLS_ARRAYS = ", ".join(f"?::{t}[] AS a{k}" for k, t in enumerate(_IF_NULLS_TYPES))
PUT_IFACE_NULLS = (f"INSERT INTO iface_packed (dk, slot, {', '.join(pg_series.IFACE_ARRAYS)}) SELECT u.dk, p.slot,"  # noqa: S608  # nosec B608 (constant names)
                   f" {', '.join(_IF_NULLS_COLS)} FROM (SELECT ?::bigint AS slot, {_IF_NULLS_ARRAYS}) AS p,"
                   " unnest(?::int4[], ?::int4[], ?::int4[], ?::bool[]) AS u(dk, lo, hi, nul){where}")
KEEP_FIRST = " ON CONFLICT DO NOTHING"  # never a second row for a key and slot
# Getters of the metrics, in column order (a cycle reads thousands of samples).
_DEV_GET = attrgetter(*DEVICE_METRICS)
_IF_GETS = tuple(attrgetter(m) for m in IFACE_METRICS)


def _off(ts: float, slot: int) -> int:
    """Milliseconds of `ts` after its slot's start (clamped to the column's range): a device row's time."""
    return max(-2**31, min(2**31 - 1, round(ts * 1000) - slot * 1000))


def _off_s(ts: float, slot: int) -> int:
    """An interface row's `off_ms`: its poll's whole second, floored, as on SQLite (clamped likewise)."""
    return max(-2**31, min(2**31 - 1, (math.floor(ts) - slot) * 1000))


def nested(iks: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """The interface keys by device, then name (looked up without building a tuple per sample)."""
    out: dict[str, dict[str, int]] = {}
    for (device_id, name), ik in iks.items():
        out.setdefault(device_id, {})[name] = ik
    return out


_NO_KEYS: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class IfaceKeys:
    """A cycle's interface samples with their keys, grouped by device: what `iface_columns` packs.

    The key pass (`iface_keys`) runs before the write's transaction: a missing key must be known
    before BEGIN. The packing (`iface_columns`) runs inside the pipeline, while the server
    works on the statements sent before it.
    """

    ifaces: Sequence[InterfaceSample]
    ik_col: list[int]
    dk_col: list[int]
    run_dk: list[int]  # each device's key, in run order
    run_len: list[int]  # and the length of its run


def iface_keys(ifaces: Sequence[InterfaceSample], dks: Mapping[str, int],
               ikd: Mapping[str, Mapping[str, int]]) -> IfaceKeys | None:
    """The interface samples' keys over the cached ones, each device's run together; None when a key is missing.

    Column at a time, with no object per sample (thousands per cycle: a tuple each would wake
    the garbage collector a dozen times per cycle). Each device's interfaces stay together, in
    the cycle's order (the collector's, device by device; reordered, stably, when they come
    interleaved); an interface twice in one cycle: the first one counts.
    """
    ik_col: list[Any] = [ikd.get(x.device_id, _NO_KEYS).get(x.name) for x in ifaces]
    dk_col: list[Any] = [dks.get(x.device_id) for x in ifaces]
    if None in ik_col or None in dk_col:
        return None
    if len(set(ik_col)) != len(ik_col):
        first: dict[Any, int] = {}
        for i, ik in enumerate(ik_col):
            first.setdefault(ik, i)
        keep = sorted(first.values())
        ifaces = [ifaces[i] for i in keep]
        ik_col, dk_col = [ik_col[i] for i in keep], [dk_col[i] for i in keep]
    run_dk, run_len = _runs(dk_col)
    if len(set(run_dk)) != len(run_dk):  # a device's interfaces not together: group them, stably
        order = sorted(range(len(dk_col)), key=dk_col.__getitem__)
        ifaces = [ifaces[i] for i in order]
        ik_col, dk_col = [ik_col[i] for i in order], [dk_col[i] for i in order]
        run_dk, run_len = _runs(dk_col)
    return IfaceKeys(ifaces, ik_col, dk_col, run_dk, run_len)


@dataclass(frozen=True)
class IfaceArrays:
    """`PUT_IFACE`'s parameters, or `PUT_IFACE_NULLS`'s when a metric was missing (sent as NaN)."""

    params: list[bytes]
    nulls: bool

    @property
    def sql(self) -> str:
        return PUT_IFACE_NULLS if self.nulls else PUT_IFACE


def iface_columns(keyed: IfaceKeys, slot: int) -> IfaceArrays:
    """The keyed interface samples as binary array parameters of `PUT_IFACE` (or `PUT_IFACE_NULLS`).

    The flat columns in device order; the last three parameters name each device's run in them.
    """
    ifaces, run_len = keyed.ifaces, keyed.run_len
    hi = list(itertools.accumulate(run_len))
    lo = [h - n + 1 for h, n in zip(hi, run_len, strict=True)]
    ts_col = [x.ts for x in ifaces]
    offs = {ts: _off_s(ts, slot) for ts in set(ts_col)}  # a device's interfaces share their poll's time
    metrics = [list(map(get, ifaces)) for get in _IF_GETS]
    approx = [x.approx for x in ifaces]
    head = [pg_arrays.pack(pg_arrays.Int4Array, keyed.ik_col),
            pg_arrays.pack(pg_arrays.Int4Array, list(map(offs.__getitem__, ts_col)))]
    runs = [pg_arrays.pack(pg_arrays.Int4Array, keyed.run_dk), pg_arrays.pack(pg_arrays.Int4Array, lo),
            pg_arrays.pack(pg_arrays.Int4Array, hi)]
    counted = pg_arrays.pack(pg_arrays.BoolArray, [x.counted for x in ifaces])
    if None not in approx and not any(None in col for col in metrics):
        return IfaceArrays([*head, *(pg_arrays.pack(cls, col) for cls, col in zip(_IF_PACK, metrics, strict=True)),
                            counted, pg_arrays.pack(pg_arrays.BoolArray, approx), *runs], False)
    # No NULL in any array (PUT_IFACE_NULLS): each device with one is flagged instead.
    missing = [x.approx is None or any(get(x) is None for get in _IF_GETS) for x in ifaces]
    flags = [any(missing[i - 1] for i in range(a, b + 1)) for a, b in zip(lo, hi, strict=True)]
    return IfaceArrays([*head, *(pg_arrays.pack(cls, [math.nan if v is None else v for v in col])
                                 for cls, col in zip(_IF_PACK, metrics, strict=True)),
                        counted, pg_arrays.pack(pg_arrays.Int4Array, [-1 if a is None else int(a) for a in approx]),
                        *runs, pg_arrays.pack(pg_arrays.BoolArray, flags)], True)


def _runs(keys: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The runs of equal neighbours in `keys`: each run's key and its length."""
    run_key: list[Any] = []
    run_len: list[int] = []
    for key, group in itertools.groupby(keys):
        run_key.append(key)
        run_len.append(len(list(group)))
    return run_key, run_len


def device_columns(samples: Sequence[DeviceSample], slot: int, dks: Mapping[str, int]) -> list[bytes]:
    """The device samples as binary array parameters of `PUT_DEVICE`."""
    values = list(zip(*(_DEV_GET(x) for x in samples), strict=True))
    cols = [pg_arrays.pack(pg_arrays.Int4Array, [dks[x.device_id] for x in samples]),
            pg_arrays.pack(pg_arrays.Int4Array, [_off(x.ts, slot) for x in samples])]
    for m, col in zip(DEVICE_METRICS, values, strict=True):
        cols.append(pg_arrays.pack(pg_arrays.Int8Array, [_int(v) for v in col]) if m in INT_METRICS
                    else pg_arrays.pack(pg_arrays.Float8Array, col))
    cols.append(pg_arrays.pack(pg_arrays.Float8Array, [x.rtt_ms for x in samples]))
    cols.append(pg_arrays.pack(pg_arrays.BoolArray, [x.approx for x in samples]))
    return cols


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class PackedCycle:
    """A cycle's parameters, packed before the write's transaction (`PgSampleStore.pack_cycle`).

    Only for the cycle, slot and keys it was packed for: `write_cycle` packs again (in its
    pipeline) when it is given another cycle's, or when the slot changed meanwhile.
    """

    cycle: CycleResult
    slot: int
    dev: list[bytes] | None  # PUT_DEVICE's arrays (None: no device sample)
    iface: IfaceArrays | None  # the interface rows' statement and arrays (None: no interface sample)
    state: pg_state.StateParams
    sample_ids: bytes  # the device samples' ids, for counting those the fence refused


def pack_cycle(cycle: CycleResult, slot: int, dks: Mapping[str, int],
               ikd: Mapping[str, Mapping[str, int]]) -> PackedCycle | None:
    """Every parameter of the cycle's write over these (committed) keys; None when a key is missing."""
    keyed = iface_keys(cycle.interfaces, dks, ikd)
    if keyed is None or any(x.device_id not in dks for x in cycle.samples):
        return None
    return PackedCycle(
        cycle, slot,
        device_columns(cycle.samples, slot, dks) if cycle.samples else None,
        iface_columns(keyed, slot) if cycle.interfaces else None,
        pg_state.state_params(cycle.baselines, cycle.statuses, cycle.dataplanes),
        pg_arrays.pack(pg_arrays.TextArray, [x.device_id for x in cycle.samples]))
