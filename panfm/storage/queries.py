"""Read queries of the sample database: chart history (tier choice, grouping, gaps) and summaries.

Column names in the generated SQL come from the constant metric tuples of storage_schema
(caller-chosen metrics are checked against them); every value is a bound parameter. The
newest rows and stored state are read in `latest.py`.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import panfm.storage.compact as c
import panfm.storage.tiers as tiers
from panfm.models import History, HistoryTier
from panfm.storage.latest import _flag
from panfm.storage.schema import DEVICE_METRICS, GROUPINGS, IFACE_METRICS, TIERS

# Widths the on-the-fly grouping picks from, so buckets line up on round clock times.
NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Series:
    """Where one chartable series lives: its (compact) tables, integer key, metrics."""

    raw_table: str
    tier_tables: dict[str, str]  # "5m"/"1h" -> table
    key_cols: tuple[str, ...]  # ("dk",) or ("ik",)
    lookup: tuple[str, tuple[str, ...]]  # SQL and parameters finding the integer key
    metrics: tuple[str, ...]
    # "5m" -> (table, width): materialised grouping of a tier, read instead of grouping on the fly.
    group_tables: dict[str, tuple[str, int]] = field(default_factory=dict)
    key: tuple[int, ...] = ()  # filled by `resolve`

    @property
    def where(self) -> str:
        return " AND ".join(f"{c} = ?" for c in self.key_cols)


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
    firsts: dict[HistoryTier, float | None] = {"raw": None if raw is None else raw / 1000}
    for tier, table in s.tier_tables.items():
        b = tiers.first_bucket(conn, table, s.key[0])
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
        return _tier_history(conn, s, tier, bucket, start, end, max_points)
    lo, hi = int(start * 1000), int(end * 1000)
    rng = f"FROM {s.raw_table} WHERE {s.where} AND ts >= ? AND ts < ?"
    params = (*s.key, lo, hi)
    count = conn.execute(f"SELECT count(*) {rng}", params).fetchone()[0]  # nosec B608
    if count <= max_points:
        width = None
        cols = ", ".join(f"{c.raw_expr(m)} AS {m}, {c.raw_expr(m)} AS {m}_max" for m in s.metrics)
        sql = f"SELECT ts / 1000.0 AS t, {cols}, approx {rng} ORDER BY ts"
    else:
        width = group_width(bucket, (end - start) / (max_points - 2))
        cols = ", ".join(f"{c.raw_agg('avg', m)} AS {m}, {c.raw_agg('max', m)} AS {m}_max"
                         for m in s.metrics) + ", max(approx) AS approx"
        sql = f"SELECT (ts / {width * 1000}) * {width} AS t, {cols} {rng} GROUP BY 1 ORDER BY 1"
    cur = conn.execute(sql, params)  # nosec B608
    cur.row_factory = None  # plain tuples: building the dicts from them is twice as fast as from Rows
    names = [d[0] for d in cur.description]
    points = [dict(zip(names, r, strict=True)) for r in cur]
    for p in points:
        p["t"] = float(p["t"])
        if "approx" in p:
            p["approx"] = _flag(p["approx"])
    return History(tier, width, mark_gaps(points, width, max_points))


# --------------------------------------------------------------------------------------
# Rollup tiers (packed rows, tiers.py): decoded and grouped here
# --------------------------------------------------------------------------------------


Pick = tuple[str, int, int, int, float]  # metric, avg column (-1: in + out), max column, metric number, scale


def _picks(s: Series) -> list[Pick]:
    """Per metric: where its average and maximum are in a bucket's values, and its scale."""
    kind = "dev" if s.key_cols == ("dk",) else "if"
    idx = tiers.col_index(kind)
    stored = tiers.metrics(kind)
    out = []
    for m in s.metrics:
        if m == "total_mbps":
            out.append((m, -1, idx["total_mbps_max"], stored.index("inbound_mbps"), float(c.SCALE[m])))
        else:
            out.append((m, idx[f"{m}_avg"], idx[f"{m}_max"], stored.index(m), float(c.SCALE[m])))
    return out


def _avg_col(cols: tiers.Columns, ca: int, i: int) -> list[int | None]:
    if ca >= 0:
        return cols.cols[ca]
    a, b = cols.cols[1 + 2 * i], cols.cols[3 + 2 * i]  # inbound, outbound averages
    if None not in a and None not in b:
        return list(map(operator.add, a, b))
    return [None if x is None or y is None else x + y for x, y in zip(a, b, strict=True)]


def _weights(kind: str, cols: tiers.Columns, i: int) -> list[int]:
    """How many samples each bucket's average of metric number `i` stands for."""
    n, a = cols.cols[0], cols.cols[1 + 2 * i]
    if cols.counts is None:
        if None not in a:
            return n  # type: ignore[return-value]
        return [0 if x is None else int(y or 0) for x, y in zip(a, n, strict=True)]
    return [int(cn[i] or 0) if cn is not None else (0 if x is None else int(y or 0))
            for x, y, cn in zip(a, n, cols.counts, strict=True)]


def _scaled(vals: Sequence[int | float | None], scale: float) -> list[float | None]:
    if None not in vals:
        return list(map(operator.truediv, vals, itertools.repeat(scale, len(vals))))
    return [None if v is None else v / scale for v in vals]


def _points(cols: tiers.Columns, picks: list[Pick]) -> list[dict[str, Any]]:
    """One point per bucket (its average and maximum in the API unit)."""
    names = ["t"]
    columns: list[list[Any]] = [list(map(float, cols.starts))]
    for m, ca, cm, i, scale in picks:
        names += [m, f"{m}_max"]
        columns += [_scaled(_avg_col(cols, ca, i), scale), _scaled(cols.cols[cm], scale)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _bounds(starts: list[int], width: int) -> list[tuple[int, int, int]]:
    """(group start, first index, end index) of each `width` group of the (sorted) bucket starts."""
    out = []
    i = 0
    cur = starts[0] // width
    for j in range(1, len(starts)):
        g = starts[j] // width
        if g != cur:
            out.append((cur * width, i, j))
            i, cur = j, g
    out.append((cur * width, i, len(starts)))
    return out


def _group_slow(a: list[int | None], w: list[int], mx: list[int | None], i: int, j: int,
                scale: float) -> tuple[float | None, float | None]:
    num = 0
    den = 0
    seen = False
    for x, y in zip(a[i:j], w[i:j], strict=True):
        den += y
        if x is not None:
            num += x * y
            seen = True
    tops = [v for v in mx[i:j] if v is not None]
    return (num / (den * scale) if den and seen else None), (max(tops) / scale if tops else None)


def _grouped(kind: str, cols: tiers.Columns, picks: list[Pick], width: int, bucket: int) -> list[dict[str, Any]]:
    """Points `width` wide: averages weighted by each metric's own count, maxima of the maxima.

    Runs of whole groups are summed with strided slices (C loops), the rest group by group.
    """
    if not cols.starts:
        return []
    bounds = _bounds(cols.starts, width)
    r = width // bucket
    # Runs of consecutive whole groups: [first group, end group).
    runs: list[tuple[int, int]] = []
    k = 0
    while k < len(bounds):
        e = k
        while e < len(bounds) and bounds[e][2] - bounds[e][1] == r and (
                e == k or bounds[e][0] - bounds[e - 1][0] == width):
            e += 1
        if e - k >= 2:
            runs.append((k, e))
            k = e
        else:
            k += 1
    names = ["t"]
    columns: list[list[Any]] = [[float(g) for g, _, _ in bounds]]
    for m, ca, cm, i, scale in picks:
        a, w, mx = _avg_col(cols, ca, i), _weights(kind, cols, i), cols.cols[cm]
        avg: list[float | None] = [None] * len(bounds)
        top: list[float | None] = [None] * len(bounds)
        fast = [False] * len(bounds)
        for k0, k1 in runs:
            p, q = bounds[k0][1], bounds[k1 - 1][2]
            a_s, w_s, m_s = a[p:q], w[p:q], mx[p:q]
            if None in a_s or None in m_s:
                continue
            den = list(map(sum, zip(*(w_s[o::r] for o in range(r)), strict=True)))
            if 0 in den:
                continue
            prods = list(map(operator.mul, a_s, w_s))
            num = map(sum, zip(*(prods[o::r] for o in range(r)), strict=True))
            avg[k0:k1] = map(operator.truediv, num, map(operator.mul, den, itertools.repeat(scale)))
            top[k0:k1] = map(operator.truediv, map(max, zip(*(m_s[o::r] for o in range(r)), strict=True)),
                             itertools.repeat(scale))
            fast[k0:k1] = [True] * (k1 - k0)
        for g, (_, lo, hi) in enumerate(bounds):
            if not fast[g]:
                avg[g], top[g] = _group_slow(a, w, mx, lo, hi, scale)
        names += [m, f"{m}_max"]
        columns += [avg, top]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _tier_history(conn: sqlite3.Connection, s: Series, tier: str, bucket: int, start: float, end: float,
                  max_points: int) -> History:
    lo, hi = int(start // bucket * bucket), math.ceil(end)
    table = s.tier_tables[tier]
    kind = "dev" if s.key_cols == ("dk",) else "if"
    picks = _picks(s)
    cols = tiers.read_columns(conn, table, s.key[0], lo, hi)
    if len(cols.starts) <= max_points:
        return History(tier, bucket, mark_gaps(_points(cols, picks), bucket, max_points))  # type: ignore[arg-type]
    width = group_width(bucket, (end - start) / (max_points - 2))
    if tier in s.group_tables and width % s.group_tables[tier][1] == 0:
        points = _grouped_from_materialised(conn, s, tier, width, lo, hi, cols)
    else:
        points = _grouped(kind, cols, picks, width, bucket)
    return History(tier, width, mark_gaps(points, width, max_points))  # type: ignore[arg-type]


def _slice(cols: tiers.Columns, i: int, j: int) -> tiers.Columns:
    return tiers.Columns(cols.starts[i:j], [col[i:j] for col in cols.cols],
                         None if cols.counts is None else cols.counts[i:j])


def _grouped_from_materialised(conn: sqlite3.Connection, s: Series, tier: str, width: int, lo: int, hi: int,
                               cols: tiers.Columns) -> list[dict[str, Any]]:
    """Group `tier` rows in [lo, hi) into `width` buckets, reading whole groups pre-computed.

    1. Whole groups inside the range come from the materialised table (one row each when
       `width` is its own width, regrouped by sample count when wider).
    2. A partial group at either end (the range starts or ends inside a group) is grouped
       on the fly from the tier's rows, exactly as before, so the points are the same.
    """
    group_table, group_w = s.group_tables[tier]
    bucket = tiers.PACKED[s.tier_tables[tier]][1]
    kind = "dev" if s.key_cols == ("dk",) else "if"
    picks = _picks(s)
    a, b = -(-lo // width) * width, hi // width * width  # whole groups: [a, b)
    if a >= b:
        return _grouped(kind, cols, picks, width, bucket)
    i = bisect.bisect_left(cols.starts, a)
    j = bisect.bisect_left(cols.starts, b)
    groups = tiers.read_columns(conn, group_table, s.key[0], a, b)
    middle = _points(groups, picks) if width == group_w else _grouped(kind, groups, picks, width, group_w)
    return (_grouped(kind, _slice(cols, 0, i), picks, width, bucket) + middle
            + _grouped(kind, _slice(cols, j, len(cols.starts)), picks, width, bucket))


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
        return _tier_summary(conn, s, tier, bucket, start, end)
    cols = ", ".join(f"{c.raw_agg('min', m)}, {c.raw_agg('avg', m)}, {c.raw_agg('max', m)}" for m in s.metrics)
    sql = f"SELECT {cols} FROM {s.raw_table} WHERE {s.where} AND ts >= ? AND ts < ?"  # noqa: S608  # nosec B608
    row = conn.execute(sql, (*s.key, int(start * 1000), int(end * 1000))).fetchone()
    return {m: {"min": row[3 * i], "avg": row[3 * i + 1], "max": row[3 * i + 2]} for i, m in enumerate(s.metrics)}


def _tier_summary(conn: sqlite3.Connection, s: Series, tier: str, bucket: int, start: float,
                  end: float) -> dict[str, dict[str, float | None]]:
    kind = "dev" if s.key_cols == ("dk",) else "if"
    cols = tiers.read_columns(conn, s.tier_tables[tier], s.key[0], int(start // bucket * bucket), math.ceil(end))
    out: dict[str, dict[str, float | None]] = {}
    for m, ca, cm, i, scale in _picks(s):
        a = _avg_col(cols, ca, i)
        avgs = [x for x in a if x is not None]
        avg, top = _group_slow(a, _weights(kind, cols, i), cols.cols[cm], 0, len(a), scale)
        out[m] = {"min": min(avgs) / scale if avgs else None, "avg": avg, "max": top}
    return out
