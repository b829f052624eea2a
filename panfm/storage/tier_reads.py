"""History and summaries read from the packed rollup tiers (`tiers.py`), decoded and grouped in Python.

Column by column: a series' buckets are decoded into one list per value column, and points are
built from those lists (C loops: `map`, slicing, `zip`), not bucket by bucket.
"""

from __future__ import annotations

import itertools
import math
import operator
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import panfm.storage.compact as c
import panfm.storage.tier_rows as tier_rows
import panfm.storage.tiers as tiers


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


def _avg_col(cols: tier_rows.Columns, ca: int, i: int) -> list[int | None]:
    if ca >= 0:
        return cols.cols[ca]
    a, b = cols.cols[1 + 2 * i], cols.cols[3 + 2 * i]  # inbound, outbound averages
    pa, pb = tiers.nones(a), tiers.nones(b)
    if not pa and not pb:
        return list(map(operator.add, a, b))
    out: list[int | None] = list(map(operator.add, tiers.zeroed(a, pa), tiers.zeroed(b, pb)))
    for j in (*pa, *pb):
        out[j] = None
    return out


def _weights(kind: str, cols: tier_rows.Columns, i: int) -> list[int]:
    """How many samples each bucket's average of metric number `i` stands for."""
    n, a = cols.cols[0], cols.cols[1 + 2 * i]
    if cols.counts is None:
        pa = tiers.nones(a)
        return tiers.zeroed(n, pa) if pa else n  # type: ignore[return-value]
    return [int(cn[i] or 0) if cn is not None else (0 if x is None else int(y or 0))
            for x, y, cn in zip(a, n, cols.counts, strict=True)]


def _scaled(vals: Sequence[int | float | None], scale: float) -> list[float | None]:
    at = tiers.nones(vals)
    out: list[float | None] = list(map(operator.truediv, tiers.zeroed(vals, at) if at else vals,
                                       itertools.repeat(scale, len(vals))))
    for j in at:
        out[j] = None
    return out


def _points(cols: tier_rows.Columns, picks: list[Pick]) -> list[dict[str, Any]]:
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


def _strided(op: Any, xs: Sequence[Any], r: int) -> list[Any]:
    """op over each run of r consecutive items of xs (len(xs) a multiple of r), with C loops."""
    acc: Any = xs[0::r]
    for o in range(1, r):
        acc = map(op, acc, xs[o::r])
    return list(acc)


def _grouped(kind: str, cols: tier_rows.Columns, picks: list[Pick], width: int, bucket: int) -> list[dict[str, Any]]:
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
    inside: set[int] = set()
    for k0, k1 in runs:
        inside.update(range(k0, k1))
    outside = [g for g in range(len(bounds)) if g not in inside]
    n_dens: dict[tuple[int, int], list[int]] = {}  # per run: the summed n (the usual weights)
    for m, ca, cm, i, scale in picks:
        a, w, mx = _avg_col(cols, ca, i), _weights(kind, cols, i), cols.cols[cm]
        avg: list[float | None] = [None] * len(bounds)
        top: list[float | None] = [None] * len(bounds)
        slow = list(outside)
        for k0, k1 in runs:
            p, q = bounds[k0][1], bounds[k1 - 1][2]
            a_s, w_s, m_s = a[p:q], w[p:q], mx[p:q]
            if w is cols.cols[0]:
                den = n_dens.get((k0, k1)) or n_dens.setdefault((k0, k1), _strided(operator.add, w_s, r))
            else:
                den = _strided(operator.add, w_s, r)
            bad = {k0 + t for t, d in enumerate(den) if d == 0} if 0 in den else set()
            pa, pm = tiers.nones(a_s), tiers.nones(m_s)
            if pa or pm:  # those groups one by one, the rest as a whole
                bad |= {k0 + t // r for t in (*pa, *pm)}
                a_s, m_s = tiers.zeroed(a_s, pa), tiers.zeroed(m_s, pm)
                den = [d or 1 for d in den]
            elif bad:
                den = [d or 1 for d in den]
            slow += sorted(bad)
            num = _strided(operator.add, list(map(operator.mul, a_s, w_s)), r)
            avg[k0:k1] = map(operator.truediv, num, map(operator.mul, den, itertools.repeat(scale)))
            top[k0:k1] = map(operator.truediv, _strided(max, m_s, r), itertools.repeat(scale))
        for g in slow:
            avg[g], top[g] = _group_slow(a, w, mx, bounds[g][1], bounds[g][2], scale)
        names += [m, f"{m}_max"]
        columns += [avg, top]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def tier_history(conn: sqlite3.Connection, s: Series, tier: str, bucket: int, start: float, end: float,
                 max_points: int, width: int) -> tuple[list[dict[str, Any]], int]:
    """Points of a rollup tier (packed rows) and their spacing: its buckets, or `width` groups past `max_points`."""
    lo, hi = int(start // bucket * bucket), math.ceil(end)
    table = s.tier_tables[tier]
    kind = "dev" if s.key_cols == ("dk",) else "if"
    picks = _picks(s)
    want = _wanted(kind, picks)
    if tier in s.group_tables and width % s.group_tables[tier][1] == 0:
        # Count first (the rows' first bytes): past max_points the groups are read instead.
        if tier_rows.count(conn, table, s.key[0], lo, hi, above=max_points) <= max_points:
            return _points(tier_rows.read_columns(conn, table, s.key[0], lo, hi, want), picks), bucket
        return _grouped_from_materialised(conn, s, tier, width, lo, hi, want), width
    cols = tier_rows.read_columns(conn, table, s.key[0], lo, hi, want)
    if len(cols.starts) <= max_points:
        return _points(cols, picks), bucket
    return _grouped(kind, cols, picks, width, bucket), width


def _wanted(kind: str, picks: list[Pick]) -> frozenset[int]:
    """The value columns the picked metrics need (n always: the default weights)."""
    cols = {0}
    for _, ca, cm, i, _ in picks:
        cols |= {cm, 1 + 2 * i} | ({ca} if ca >= 0 else {3 + 2 * i})
    return frozenset(cols)


def _grouped_from_materialised(conn: sqlite3.Connection, s: Series, tier: str, width: int, lo: int, hi: int,
                               want: frozenset[int]) -> list[dict[str, Any]]:
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
    table, key = s.tier_tables[tier], s.key[0]
    if a >= b:
        return _grouped(kind, tier_rows.read_columns(conn, table, key, lo, hi, want), picks, width, bucket)
    groups = tier_rows.read_columns(conn, group_table, key, a, b, want)
    done = groups.starts[-1] + group_w if groups.starts else a
    if done < b:  # the newest groups are not materialised yet (tier_head.regroup: once they close)
        b = max(a, done // width * width)
        groups = groups.before(b)
    middle = _points(groups, picks) if width == group_w else _grouped(kind, groups, picks, width, group_w)
    return (_grouped(kind, tier_rows.read_columns(conn, table, key, lo, a, want), picks, width, bucket) + middle
            + _grouped(kind, tier_rows.read_columns(conn, table, key, b, hi, want), picks, width, bucket))



def tier_summary(conn: sqlite3.Connection, s: Series, tier: str, bucket: int, start: float,
                 end: float) -> dict[str, dict[str, float | None]]:
    """Min (of the bucket averages), weighted average and max of each metric over a rollup tier."""
    kind = "dev" if s.key_cols == ("dk",) else "if"
    cols = tier_rows.read_columns(conn, s.tier_tables[tier], s.key[0], int(start // bucket * bucket), math.ceil(end))
    out: dict[str, dict[str, float | None]] = {}
    for m, ca, cm, i, scale in _picks(s):
        a = _avg_col(cols, ca, i)
        avgs = [x for x in a if x is not None]
        avg, top = _group_slow(a, _weights(kind, cols, i), cols.cols[cm], 0, len(a), scale)
        out[m] = {"min": min(avgs) / scale if avgs else None, "avg": avg, "max": top}
    return out
