"""Pack a period's rollup buckets into one BLOB (schema version 7; pure, no SQL).

One row per series and period (twelve buckets: `tiers.py`) holds its buckets column by column:

    byte 0        format (3)
    byte 1        how many columns follow (a reader expecting another count refuses the row)
    mask          ceil(slots / 8) bytes, bit i set when slot i has a bucket
    codes         one byte per column: 0xFF every value NULL (nothing stored); otherwise bits
                  0-2 the width of each value (0, 1, 2, 4 or 8 bytes), bits 3-5 the width of the
                  column's base (none: 0, or 1, 2, 4, 8 bytes, signed), bit 6 some values NULL
    data          for each column in turn: its base, then each value - base (unsigned,
                  little-endian; all ones: NULL). Value width 0: every value is the base.

The codes fix the whole row's layout, so one `struct.Struct` (compiled once per layout and
bucket count, cached) packs and unpacks every column at once; a decoder then only slices the
values out and adds the bases. Measured against other layouts in bench/storage_layouts.py.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

FORMAT = 3
ALL_NULL = 0xFF
HAS_NULL = 0x40
_WIDTHS = (0, 1, 2, 4, 8)  # index -> bytes
_UFMT = ("", "B", "H", "I", "Q")
_SFMT = ("", "b", "h", "i", "q")
_UTOP = (0, 0xFF, 0xFFFF, 0xFFFFFFFF, (1 << 64) - 1)

Column = Sequence[int | None]
# (column, base index in the flat tuple or -1, first value index, value width index, NULL mark or -1)
Plan = tuple[tuple[int, int, int, int, int], ...]


_BY_BYTES = (0, 1, 2, 3, 3, 4, 4, 4, 4)  # bytes needed -> width index


def _vw(top: int) -> int:
    """The index of the narrowest value width holding 0..top."""
    try:
        return _BY_BYTES[(top.bit_length() + 7) >> 3]
    except IndexError:
        raise ValueError("value out of range for a packed column") from None


def _bw(v: int) -> int:
    """The index of the narrowest signed base width holding v (v != 0)."""
    try:
        return _BY_BYTES[((v if v >= 0 else ~v).bit_length() + 8) >> 3]
    except IndexError:
        raise ValueError("value out of range for a packed column") from None


@lru_cache(maxsize=1024)
def _layout(codes: bytes, k: int) -> tuple[struct.Struct, Plan]:
    """The row's struct and, per column, where its base and values are in the unpacked tuple.

    Cached, but not many: an entry holds ~4.4 kB (the struct's codes and the plan), and a fleet's
    rows have many layouts (1,000 firewalls: 2,748 distinct after the first hour, ~900 new with
    every hour's pack), so a bigger cache only grows a process by its size, up to ~18 MB at 4,096
    entries. A miss costs ~10 us (bench/docs: "Clock memory", seventh session).
    """
    fmt = ["<"]
    plan = []
    pos = 0
    for c, code in enumerate(codes):
        if code == ALL_NULL:
            plan.append((c, -1, -1, 0, -1))
            continue
        vi, bi = code & 7, code >> 3 & 7
        base_at = -1
        if bi:
            fmt.append(_SFMT[bi])
            base_at = pos
            pos += 1
        if vi:
            fmt.append(f"{k}{_UFMT[vi]}")
        plan.append((c, base_at, pos, vi, _UTOP[vi] if code & HAS_NULL else -1))
        if vi:
            pos += k
    return struct.Struct("".join(fmt)), tuple(plan)


def encode(slots: int, present: Sequence[int], columns: Sequence[Column]) -> bytes:
    """Pack the buckets of one period: `present` slot indexes (ascending), one value list per column."""
    mask = 0
    for i in present:
        mask |= 1 << i
    codes = bytearray()
    args: list[int] = []
    for values in columns:
        nulls = None in values
        known: Sequence[int] = [v for v in values if v is not None] if nulls else values  # type: ignore[assignment]
        if not known:
            codes.append(ALL_NULL)
            continue
        lo, hi = min(known), max(known)
        vi = _vw(hi - lo + 1 if nulls else hi - lo)
        if nulls and vi == 0:
            vi = 1
        base = lo
        if lo >= 0 and _vw(hi + 1 if nulls else hi) == vi:
            base = 0  # the values fit as they are: no base to store
        bi = _bw(base) if base else 0
        codes.append(vi | bi << 3 | (HAS_NULL if nulls else 0))
        if bi:
            args.append(base)
        if vi:
            if nulls:
                mark = _UTOP[vi]
                args += [mark if v is None else v - base for v in values]
            else:
                args += [v - base for v in known] if base else known
    st, _ = _layout(bytes(codes), len(present))
    head = bytes((FORMAT, len(columns))) + mask.to_bytes((slots + 7) // 8, "little")
    return head + bytes(codes) + st.pack(*args)


def encode_one(slots: int, slot: int, values: Sequence[int | None]) -> bytes:
    """`encode` of a single bucket (the head rows, `tier_head.py`): each value stored as its column's base."""
    codes = bytearray()
    args: list[int] = []
    for v in values:
        if v is None:
            codes.append(ALL_NULL)
        elif v == 0:
            codes.append(0)
        else:
            codes.append(_bw(v) << 3)
            args.append(v)
    st, _ = _layout(bytes(codes), 1)
    mask = (1 << slot).to_bytes((slots + 7) // 8, "little")
    return bytes((FORMAT, len(values))) + mask + bytes(codes) + st.pack(*args)


def mask_of(blob: bytes, slots: int) -> int:
    """The bit mask of the slots a packed row holds."""
    return int.from_bytes(blob[2:2 + (slots + 7) // 8], "little")


def slots_of(blob: bytes, slots: int) -> list[int]:
    """The slots a packed row holds, ascending."""
    mask = mask_of(blob, slots)
    return [i for i in range(slots) if mask >> i & 1]


def decode(blob: bytes, slots: int, ncols: int,
           want: frozenset[int] | None = None) -> tuple[list[int], list[Any]]:
    """The present slot indexes and each column's values (None for NULL) of a packed period.

    `want`: the column indexes to decode; the others are given as None.
    """
    if blob[0] != FORMAT or blob[1] != ncols:
        raise ValueError(f"packed row of format {blob[0]} and {blob[1]} columns where format {FORMAT} and "
                         f"{ncols} are expected: a schema change that adds a metric must repack the rollup rows")
    at = 2 + (slots + 7) // 8
    present = slots_of(blob, slots)
    k = len(present)
    st, plan = _layout(blob[at:at + ncols], k)
    flat = st.unpack_from(blob, at + ncols)
    cols: list[Any] = [None] * ncols
    nulls = (None,) * k
    for c, base_at, first, vi, mark in plan:
        if want is not None and c not in want:
            continue
        if first < 0:
            cols[c] = nulls
            continue
        base = flat[base_at] if base_at >= 0 else 0
        if not vi:
            cols[c] = (base,) * k
            continue
        vals = flat[first:first + k]
        if mark >= 0 and mark in vals:
            cols[c] = tuple(None if v == mark else v + base for v in vals)
        elif base:
            cols[c] = tuple(map(base.__add__, vals))
        else:
            cols[c] = vals
    return present, cols
