"""PostgreSQL: a cycle's write prepared before its fenced transaction (issue 13).

The clock makes the day partitions and a new pooled connection's setup ready before it waits for
its turn to write (`prepare`, `PgSampleStore.prepare_write`) and packs the write's parameters
(`pack`) before its transaction: the transaction then only sends. The first clock in the order
packs at once; a later one once its wait is over, since packing during the earlier clocks'
writes took the processor their transactions needed (S8, docs/benchmarks.md).
A cycle with devices or interfaces that have no series key yet makes them once its turn has
come, in the clocks' order, then packs (`keys_then_pack`): a fresh fleet's clocks made ~4,300
keys each at the same moment as each other's writes. A failure in either is logged and left to
the write, which makes missing keys and packs itself.
"""

from __future__ import annotations

import logging
import time

from panfm.models import CycleResult
from throughput_storage import PackedCycle, PgSampleStore, SampleStore

log = logging.getLogger("panfm.clock")


def prepare(store: SampleStore | PgSampleStore, cycle: CycleResult) -> None:
    """A fresh database's day partitions and a new pooled connection's setup, made now (nothing on SQLite)."""
    if not isinstance(store, PgSampleStore):
        return
    try:
        store.prepare_write(cycle.started)
    except Exception as exc:
        log.warning("[CLOCK JOB] collect: preparing the write failed (%s); the write prepares it", type(exc).__name__)


def pack(store: SampleStore | PgSampleStore, cycle: CycleResult) -> tuple[PackedCycle | None, float]:
    """The write's parameters packed now over the cached keys, and the CPU ms it took.

    None on SQLite, when a key is not cached yet, or when packing failed (logged).
    """
    if not isinstance(store, PgSampleStore):
        return None, 0.0
    return _pack(store, cycle)


def _pack(store: PgSampleStore, cycle: CycleResult) -> tuple[PackedCycle | None, float]:
    t0 = time.thread_time()
    try:
        packed = store.pack_cycle(cycle)
    except Exception as exc:
        log.warning("[CLOCK JOB] collect: packing the write failed (%s); the write packs it", type(exc).__name__)
        packed = None
    return packed, (time.thread_time() - t0) * 1000.0


def keys_then_pack(store: PgSampleStore, cycle: CycleResult) -> tuple[PackedCycle | None, float, int, float]:
    """Make the cycle's missing keys in their own transaction, then pack: (packed, its CPU ms, new keys, keys' s)."""
    t0 = time.monotonic()
    try:
        new_keys = store.ensure_keys(cycle)
    except Exception as exc:
        log.warning("[CLOCK JOB] collect: creating series keys failed (%s); the write creates them",
                    type(exc).__name__)
        new_keys = 0
    keys_s = time.monotonic() - t0
    packed, pack_ms = _pack(store, cycle)  # prepared already (`prepare`, before the wait)
    return packed, pack_ms, new_keys, keys_s
