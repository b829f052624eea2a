"""The old rollup names (`device_5m`, `iface_1h`, ...) as views over the packed tables (schema 7).

SQLite cannot unpack the rows by itself: each connection of PANfm's (and anything else that
reads the views) registers `pk_val`, `pk_cnt` and `pk_has` with `register(conn)` first.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache

import panfm.storage.compact as c
import panfm.storage.packed as packed
from panfm.storage.tiers import HS, PACKED, PMASK, SHIFT, SLOTS, col_index, decode_cols, metrics, value_cols

_KIND_BY_NCOLS = {len(value_cols("dev")): "dev", len(value_cols("if")): "if"}


@lru_cache(maxsize=4096)
def _decoded(b: bytes, ncols: int, counts: bool) -> dict[int, tuple[int | None, ...]]:
    present, cols = packed.decode(b, SLOTS, ncols) if counts else decode_cols(_KIND_BY_NCOLS[ncols], b)
    return {slot: tuple(col[j] for col in cols) for j, slot in enumerate(present)}


def _pk_val(b: bytes | None, ncols: int, slot: int, col: int) -> int | None:
    if b is None:
        return None
    row = _decoded(bytes(b), ncols, False).get(slot)
    return None if row is None else row[col]


def _pk_cnt(b: bytes | None, ncols: int, slot: int, col: int) -> int | None:
    if b is None:
        return None
    row = _decoded(bytes(b), ncols, True).get(slot)
    return None if row is None else row[col]


def _pk_has(b: bytes | None, slot: int) -> int:
    if b is None:
        return 0
    return int(packed.mask_of(b, SLOTS) >> slot & 1)


def register(conn: sqlite3.Connection) -> None:
    """Give a connection the SQL functions the old-name views of the packed tables call."""
    conn.create_function("pk_val", 4, _pk_val, deterministic=True)
    conn.create_function("pk_cnt", 4, _pk_cnt, deterministic=True)
    conn.create_function("pk_has", 2, _pk_has, deterministic=True)


_SLOT_SET = " UNION ALL ".join(f"SELECT {i} AS i" for i in range(SLOTS))


def views(with_head: bool = True) -> list[str]:
    """The old rollup names (`device_5m`, `iface_1h`, ...) as read-only views in the old units.

    `with_head`: include the tiers' head tables (schema 8; migration 7 has none yet).
    """
    parts = []
    for view, table in {**c.TIER_TABLES, **c.GROUP_TABLES}.items():
        kind, width = PACKED[table]
        nv = len(value_cols(kind))
        nm = len(metrics(kind))

        def val(col: str, _nv: int = nv, _kind: str = kind) -> str:
            return f"pk_val(s.b, {_nv}, j.i, {col_index(_kind)[col]})"

        def cnt(i: int, _nm: int = nm) -> str:
            return f"pk_cnt(s.cnt, {_nm}, j.i, {i})"

        cols = [f"(s.id & {PMASK}) * {width * SLOTS} + j.i * {width} AS bucket", f"{val('n')} AS n"]
        for i, m in enumerate(metrics(kind)):
            cols.append(f"{c.decode_sql(m, val(f'{m}_avg'))} AS {m}_avg")
            cols.append(f"{c.decode_sql(m, val(f'{m}_max'))} AS {m}_max")
            cols.append(f"NULLIF({cnt(i)}, {val('n')}) AS {m}_n")
            if m == "outbound_mbps":  # total_mbps in the old column order
                cols.append(f"({val('inbound_mbps_avg')} + {val('outbound_mbps_avg')}) / 1000.0 AS total_mbps_avg")
                cols.append(f"{val('total_mbps_max')} / 1000.0 AS total_mbps_max")
                cols.append(f"NULLIF({cnt(0)}, {val('n')}) AS total_mbps_n")
        if kind == "dev":
            src = "ts_device k JOIN {t} s ON s.id >= k.dk << {sh} AND s.id < (k.dk + 1) << {sh}"
            head = "k.device_id AS device_id"
        else:
            src = ("ts_iface i JOIN ts_device k ON k.dk = i.dk JOIN {t} s ON s.id >= i.ik << {sh} "
                   "AND s.id < (i.ik + 1) << {sh}")
            head = "k.device_id AS device_id, i.interface AS interface"
        sel = f"SELECT {head}, {', '.join(cols)} FROM {{src}} JOIN ({_SLOT_SET}) j WHERE pk_has(s.b, j.i)"  # noqa: S608  # nosec B608
        packed_part = sel.format(src=src.format(t=table, sh=SHIFT))
        if not with_head:
            parts.append(f"CREATE VIEW {view} AS {packed_part}")
            continue
        # The head (tier_head.py): same row format, rowid = packed rowid << HS | slot.
        head_part = sel.replace("s.id", f"(s.id >> {HS})").format(src=src.format(t=f"{table}_head", sh=SHIFT + HS))
        parts.append(f"CREATE VIEW {view} AS {packed_part} UNION ALL {head_part}")
    return parts
