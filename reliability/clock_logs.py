"""The figures S8 (`reliability.scaleout --bench`) reads from the clocks' own log lines.

The clock logs each cycle as `collect: UP/N devices up, S samples in D s (write W ms, CPU C ms)`
(docs/clock.md; several clocks add `, transaction T ms`, the write's transaction on the server),
each lease round at DEBUG as `lease round X ms (transaction T ms)`, the collector's long automatic
collections as `[CLOCK GC] ...`, and the samples the fence refused. `figures` turns the logs of
every clock into distributions (n, p50, p95, max). `after_write_ms`: from a cycle's collect line
to its job's end (`job collect executed`, DEBUG): the after-cycle hooks, on the leader the whole
fleet's alert evaluation.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Iterable
from typing import Any

WRITE = re.compile(r"collect: (\d+)/(\d+) devices up, (\d+) samples in ([\d.]+) s \(write ([\d.]+) ms"
                   r"(?:, CPU ([\d.]+) ms)?(?:, transaction ([\d.]+) ms)?(?:; packed in ([\d.]+) ms before)?\)")
LEASE = re.compile(r"lease round ([\d.]+) ms(?: \(transaction ([\d.]+) ms\))?")
GC = re.compile(r"\[CLOCK GC\] automatic collection of generation (\d+) in (\S+): ([\d.]+) ms")
REJECTED = re.compile(r"collect: (\d+) late sample\(s\) rejected by the fence")
NODE = re.compile(r"\[CLOCK COORD\] (\S+): \d+ device\(s\) held")  # the clock's node id (its rank's order)
WRITE_TARGET_MS = 50.0  # S8's write p95 target: writes above it are counted
# A line's time (the log format's ISO-8601 UTC prefix), then a cycle's collect line or its job's end.
_STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z .*?(\] collect: \d+/|job collect executed)",
                      re.MULTILINE)


def dist(values: list[float]) -> dict[str, float | int | None]:
    """n, median, 95th percentile and maximum (None for each when there is no value)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    q = statistics.quantiles(values, n=20) if len(values) > 1 else [values[0]] * 19
    # The exclusive method extrapolates past the largest value for a short list (a clock's ten writes).
    return {"n": len(values), "p50": round(statistics.median(values), 2), "p95": round(min(q[18], max(values)), 2),
            "max": round(max(values), 2)}


def figures(texts: Iterable[str]) -> dict[str, Any]:
    """The write, lease-round and collector figures of the clocks whose logs are `texts`."""
    writes, later, cpu, txns, packs, leases, lease_txns, gcs, hooks = [], [], [], [], [], [], [], [], []
    rejected, errors = 0, 0
    by_node: dict[str, dict[str, float | int | None]] = {}
    for k, text in enumerate(texts):
        hooks += _after_write_ms(text)
        found = WRITE.findall(text)
        mine = [float(m[4]) for m in found]
        node = NODE.search(text)
        # Each clock's writes under its node id: the write order's rank is the ids' order.
        by_node[node.group(1) if node else f"clock{k}"] = dist(mine)
        writes += mine
        later += mine[1:]  # a clock's first write fills its caches (and made its share's keys before)
        cpu += [float(m[5]) for m in found if m[5]]  # the writing thread's own CPU time
        txns += [float(m[6]) for m in found if m[6]]  # its transaction on the server (several clocks)
        packs += [float(m[7]) for m in found if m[7]]  # its parameters' packing before it (CPU), on PostgreSQL
        rounds = LEASE.findall(text)
        leases += [float(m[0]) for m in rounds]
        lease_txns += [float(m[1]) for m in rounds if m[1]]  # the round's transaction on the server
        gcs += [float(m[2]) for m in GC.findall(text)]  # the collector's safety net, 10 ms or more
        rejected += sum(int(m) for m in REJECTED.findall(text))
        errors += sum(text.count(w) for w in ("DeadlockDetected", "SerializationFailure"))
    return {"write_ms": dist(writes), "write_ms_after_each_first": dist(later),
            "writes_over_50ms": sum(1 for w in writes if w > WRITE_TARGET_MS), "write_ms_by_node": by_node,
            "write_cpu_ms": dist(cpu), "write_transaction_ms": dist(txns), "packed_before_cpu_ms": dist(packs),
            "automatic_gc_10ms_or_more": dist(gcs), "after_write_ms": dist(hooks),
            "lease_round_ms": dist(leases), "lease_transaction_ms": dist(lease_txns), "rejected_writes": rejected,
            "deadlocks_or_serialization_errors": errors}


def _after_write_ms(text: str) -> list[float]:
    """Each cycle's time from its collect line to its job's end, in ms (lines without the DEBUG end are skipped)."""
    out, started = [], None
    for stamp, what in _STAMPED.findall(text):
        at = dt.datetime.fromisoformat(stamp)
        if what.startswith("]"):
            started = at
        elif started is not None:
            out.append((at - started).total_seconds() * 1000.0)
            started = None
    return out
