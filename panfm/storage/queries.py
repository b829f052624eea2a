"""Read queries of the sample database: chart history (tier choice, grouping, gaps) and summaries.

Column names in the generated SQL come from the constant metric tuples of storage_schema
(caller-chosen metrics are checked against them); every value is a bound parameter. The
newest rows and stored state are read in `latest.py`.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import panfm.storage.compact as c
import panfm.storage.tier_reads as tier_reads
from panfm.models import History, HistoryTier
from panfm.storage.latest import _flag
from panfm.storage.schema import DEVICE_METRICS, GROUPINGS, IFACE_METRICS, TIERS
from panfm.storage.tier_reads import Series as Series
from panfm.storage.tier_rows import first_bucket

# Widths the on-the-fly grouping picks from, so buckets line up on round clock times.
NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


# What a chart shows unless the caller asks for more (any of DEVICE_METRICS may be asked for).
CHART_METRICS: tuple[str, ...] = (
    "inbound_mbps",
    "outbound_mbps",
    "total_mbps",
    "inbound_pps",
    "outbound_pps",
    "sessions_active",
    "sessions_utilization_pct",
    "sessions_cps",
    "cpu_dataplane_pct",
    "cpu_management_pct",
    "memory_pct",
    "packet_buffer_pct",
)


def device_series(
    device_id: str, metrics: Sequence[str] | None = None, default: tuple[str, ...] = CHART_METRICS
) -> Series:
    """Describe the device-metric series of one device (default: the chart metrics)."""
    return Series(
        "dev_raw",
        {t: c.PHYSICAL[v[0]] for t, v in TIERS.items()},
        ("dk",),
        ("SELECT dk FROM ts_device WHERE device_id = ?", (device_id,)),
        _check(metrics, DEVICE_METRICS) if metrics is not None else default,
        {t: (c.PHYSICAL[v[0]], v[2]) for t, v in GROUPINGS.items()},
    )


def iface_series(device_id: str, name: str, metrics: Sequence[str] | None = None) -> Series:
    """Describe the rate series of one interface."""
    return Series(
        "if_raw",
        {t: c.PHYSICAL[v[1]] for t, v in TIERS.items()},
        ("ik",),
        ("SELECT i.ik FROM ts_device k JOIN ts_iface i ON i.dk = k.dk WHERE k.device_id = ? AND i.interface = ?",
         (device_id, name)),
        _check(metrics, IFACE_METRICS),
        {t: (c.PHYSICAL[v[1]], v[2]) for t, v in GROUPINGS.items()},
    )


def resolve(conn: sqlite3.Connection, s: Series) -> Series | None:
    """The series with its integer key filled in, or None when the database has no such series."""
    row = conn.execute(s.lookup[0], s.lookup[1]).fetchone()
    return None if row is None else replace(s, key=(int(row[0]),))


def _check(metrics: Sequence[str] | None, known: tuple[str, ...]) -> tuple[str, ...]:
    if metrics is None:
        return known
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"unknown metrics: {', '.join(unknown)}")
    return tuple(metrics)


# --------------------------------------------------------------------------------------
# Tier choice
# --------------------------------------------------------------------------------------

_ORDER: tuple[tuple[HistoryTier, int], ...] = (("raw", 0), ("5m", 300), ("1h", 3600))


def _first_times(conn: sqlite3.Connection, s: Series) -> dict[HistoryTier, float | None]:
    if not s.key:
        found = resolve(conn, s)
        if found is None:
            return {"raw": None, "5m": None, "1h": None}
        s = found
    raw = conn.execute(f"SELECT min(ts) FROM {s.raw_table} WHERE {s.where}", s.key).fetchone()[0]  # noqa: S608  # nosec B608
    firsts: dict[HistoryTier, float | None] = {"raw": None if raw is None else raw / _raw_scale(s)}
    for tier, table in s.tier_tables.items():
        b = first_bucket(conn, table, s.key[0])
        firsts["5m" if tier == "5m" else "1h"] = None if b is None else float(b)
    return firsts


def choose_tier(
    conn: sqlite3.Connection, s: Series, start: float, end: float, max_points: int
) -> tuple[HistoryTier, int]:
    """Pick the tier to read: the coarsest covering tier not coarser than the needed width.

    1. The width one point must cover is range / max_points; a tier whose buckets are no
       wider than that loses nothing the chart could show, and reads fewer rows than a
       finer tier grouped on the fly to the same width (7 days: 5-minute rows, not raw).
    2. A tier covers the range when its first row is no later than the range start (or than
       the first row of any tier, for a series younger than the range), give or take one
       bucket of the next tier.
    3. If no such tier qualifies, the finest covering tier is used and grouped on the fly.
    """
    return tier_for(_first_times(conn, s), start, end, max_points)


def tier_for(firsts: dict[HistoryTier, float | None], start: float, end: float,
             max_points: int) -> tuple[HistoryTier, int]:
    """`choose_tier`'s rules over each tier's first time (None: empty); both backends use it."""
    width = (end - start) / max(1, max_points - 2)
    known = [f for f in firsts.values() if f is not None]
    if not known:
        return "raw", 0
    # When the series' data begins: a rollup's first bucket starts up to one bucket before the
    # first sample in it, so while raw rows still reach back to the rollups' start (nothing
    # pruned yet) the first raw sample is the truth; otherwise the earliest rollup is.
    # (Without this, a device younger than its first closed hour looked older than its raw
    # rows, and its 1-hour chart came from 5-minute buckets.)
    raw_first = firsts["raw"]
    rollup_firsts = [f for t, f in firsts.items() if t != "raw" and f is not None]
    if raw_first is not None and (not rollup_firsts or raw_first < min(rollup_firsts) + _ORDER[-1][1]):
        data_start = raw_first
    else:
        data_start = min(known)
    eff_start = max(start, data_start)
    covering: list[tuple[HistoryTier, int]] = []
    for i, (tier, bucket) in enumerate(_ORDER):
        first = firsts[tier]
        slack = _ORDER[i + 1][1] if i + 1 < len(_ORDER) else math.inf
        if first is not None and first <= eff_start + slack:
            covering.append((tier, bucket))
    if not covering:  # fall back to the tier reaching furthest back
        tier = min(firsts, key=lambda t: math.inf if firsts[t] is None else firsts[t])  # type: ignore[return-value,arg-type]
        return tier, dict(_ORDER)[tier]
    fitting = [c for c in covering if c[1] <= width]
    return fitting[-1] if fitting else covering[0]


def group_width(tier_bucket: int, needed: float) -> int:
    """Smallest round width >= needed that is a whole multiple of the tier's bucket."""
    for w in NICE_WIDTHS:
        if w >= needed and (tier_bucket == 0 or w % tier_bucket == 0):
            return w
    step = max(tier_bucket, 86400)
    return int(math.ceil(needed / step) * step)


# --------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------


def history(conn: sqlite3.Connection, s: Series, start: float, end: float, max_points: int = 2000) -> History:
    """Return at most `max_points` points (avg and `_max` of each metric) for [start, end)."""
    max_points = max(3, max_points)
    found = resolve(conn, s)
    if found is None:
        return History("raw", None, [])
    s = found
    tier, bucket = choose_tier(conn, s, start, end, max_points)
    if tier != "raw":
        grouped = group_width(bucket, (end - start) / (max_points - 2))
        points, step = tier_reads.tier_history(conn, s, tier, bucket, start, end, max_points, grouped)
        return History(tier, step, mark_gaps(points, step, max_points))
    scale = _raw_scale(s)
    lo, hi = _raw_range(s, start, end)
    rng = f"FROM {s.raw_table} WHERE {s.where} AND ts >= ? AND ts < ?"
    params = (*s.key, lo, hi)
    count = conn.execute(f"SELECT count(*) {rng}", params).fetchone()[0]  # nosec B608
    if count <= max_points:
        width = None
        cols = ", ".join(f"{c.raw_expr(m)} AS {m}, {c.raw_expr(m)} AS {m}_max" for m in s.metrics)
        sql = f"SELECT ts / {scale}.0 AS t, {cols}, approx {rng} ORDER BY ts"
    else:
        width = group_width(bucket, (end - start) / (max_points - 2))
        cols = ", ".join(f"{c.raw_agg('avg', m)} AS {m}, {c.raw_agg('max', m)} AS {m}_max"
                         for m in s.metrics) + ", max(approx) AS approx"
        sql = f"SELECT (ts / {width * scale}) * {width} AS t, {cols} {rng} GROUP BY 1 ORDER BY 1"
    cur = conn.execute(sql, params)  # nosec B608
    cur.row_factory = None  # plain tuples: building the dicts from them is twice as fast as from Rows
    names = [d[0] for d in cur.description]
    points = [dict(zip(names, r, strict=True)) for r in cur]
    for p in points:
        p["t"] = float(p["t"])
        if "approx" in p:
            p["approx"] = _flag(p["approx"])
    return History(tier, width, mark_gaps(points, width, max_points))


def _raw_scale(s: Series) -> int:
    """Stored units of a raw row's time per second: device rows ms, interface rows whole seconds (schema 9)."""
    return 1000 if s.raw_table == "dev_raw" else 1


def _raw_range(s: Series, start: float, end: float) -> tuple[int, int]:
    """[start, end) as bounds on the series' raw row times: ts >= lo AND ts < hi."""
    if _raw_scale(s) == 1000:
        return int(start * 1000), int(end * 1000)
    return math.ceil(start), math.ceil(end)


def mark_gaps(points: list[dict[str, Any]], step: float | None, max_points: int) -> list[dict[str, Any]]:
    """Insert one all-None point after each hole in the series, so a chart breaks its line.

    `step` is the expected spacing (the bucket width); for raw rows it is the median spacing.
    A hole is a spacing over 1.5 steps (2.5 for raw, whose spacing jitters). Markers are
    added only while the series stays within `max_points`.
    """
    if len(points) < 2:
        return points
    factor = 1.5
    if step is None:
        step = statistics.median(b["t"] - a["t"] for a, b in itertools.pairwise(points))
        factor = 2.5
    if step <= 0:
        return points
    keys = [k for k in points[0] if k != "t"]
    out: list[dict[str, Any]] = [points[0]]
    room = max_points - len(points)
    for prev, cur in itertools.pairwise(points):
        if room > 0 and cur["t"] - prev["t"] > factor * step:
            out.append({"t": prev["t"] + step, **dict.fromkeys(keys)})
            room -= 1
        out.append(cur)
    return out


def summary(conn: sqlite3.Connection, s: Series, start: float, end: float) -> dict[str, dict[str, float | None]]:
    """Return min, avg and max of each metric over [start, end) from the tier history would use.

    Rollup rows keep no minimum (nothing else reads one): over a rollup tier, "min" is the
    lowest bucket average.
    """
    found = resolve(conn, s)
    if found is None:
        return {m: {"min": None, "avg": None, "max": None} for m in s.metrics}
    s = found
    tier, bucket = choose_tier(conn, s, start, end, 2000)
    if tier != "raw":
        return tier_reads.tier_summary(conn, s, tier, bucket, start, end)
    cols = ", ".join(f"{c.raw_agg('min', m)}, {c.raw_agg('avg', m)}, {c.raw_agg('max', m)}" for m in s.metrics)
    sql = f"SELECT {cols} FROM {s.raw_table} WHERE {s.where} AND ts >= ? AND ts < ?"  # noqa: S608  # nosec B608
    row = conn.execute(sql, (*s.key, *_raw_range(s, start, end))).fetchone()
    return {m: {"min": row[3 * i], "avg": row[3 * i + 1], "max": row[3 * i + 2]} for i, m in enumerate(s.metrics)}
