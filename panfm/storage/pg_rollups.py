"""Rollups of the time series on PostgreSQL: closed 5-minute and hourly buckets, and the 30-minute groups.

Idempotent upserts (`ON CONFLICT ... DO UPDATE`): a bucket rolled up twice, or by two clocks,
gives the same rows; a late sample is counted when its bucket is rolled up again. Used by the
sample writer (`PgSampleStore`: in the cycle's transaction on one clock, by the leader's job
with several) and by the SQLite -> PostgreSQL copy (`regroup`).
"""

from __future__ import annotations

from panfm.storage import pg_series
from panfm.storage.postgres import PgConn
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS


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


def advance_closed(tx: PgConn, closed_before: float, since_slot: int | None) -> None:
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
