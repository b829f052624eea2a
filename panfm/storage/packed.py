"""Pack a period's rollup buckets into one BLOB (schema version 7; pure, no SQL).

One row per series and period (twelve buckets: `tiers.py`) holds its buckets column by column:

    byte 0        format (2); bit 0x80: the columns are deflated (zlib raw stream)
    byte 1        how many columns follow (a reader expecting another count refuses the row)
    mask          ceil(slots / 8) bytes, bit i set when slot i has a bucket
    columns       one per value column, each:
                    0xFF                    every value NULL (nothing follows)
                    w                       frame of reference: base (zigzag varint), then each
                                            value - base in w bytes (unsigned, little-endian;
                                            all ones: NULL); w = 0: every value is the base
                    0x10 | w                delta: first value (zigzag varint), the smallest
                                            step (zigzag varint), then each further step minus
                                            it in w bytes (no NULL in the column)

The encoder takes the shorter of the two forms per column and deflates the columns when that
is shorter; `struct` and slicing decode them (C), with a Python loop over at most a dozen
values per column. Measured against other layouts in bench/storage_layouts.py.
"""

from __future__ import annotations

import itertools
import operator
import struct
import zlib
from collections.abc import Sequence
from functools import cache
from typing import Any

FORMAT = 2
DEFLATED = 0x80
ALL_NULL = 0xFF
DELTA = 0x10
_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}
_MARKS = {w: (1 << (8 * w)) - 1 for w in range(1, 9)}
_PAD = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 8, 7: 8, 8: 8}

Column = Sequence[int | None]


def _varint(v: int, out: bytearray) -> None:
    z = (v << 1) ^ (v >> 63) if -(1 << 63) <= v < (1 << 63) else None
    if z is None:
        raise ValueError("value out of range for a packed column")
    z &= (1 << 64) - 1
    while z >= 0x80:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)


def _read_varint(buf: bytes, off: int) -> tuple[int, int]:
    z = 0
    shift = 0
    while True:
        b = buf[off]
        off += 1
        z |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    return (z >> 1) ^ -(z & 1), off


def _width(top: int) -> int:
    """Bytes holding 0..top (top itself may be the NULL mark)."""
    return (top.bit_length() + 7) // 8


def _pack_uints(values: Sequence[int], w: int, out: bytearray) -> None:
    if w == 0:
        return
    pad = _PAD[w]
    raw = struct.pack(f"<{len(values)}{_FMT[pad]}", *values)
    if pad == w:
        out += raw
        return
    for i in range(len(values)):
        out += raw[i * pad:i * pad + w]


def _unpack_uints(buf: bytes, off: int, k: int, w: int) -> tuple[tuple[int, ...], int]:
    if w == 0:
        return (0,) * k, off
    pad = _PAD[w]
    end = off + k * w
    if pad == w:
        return struct.unpack_from(f"<{k}{_FMT[w]}", buf, off), end
    wide = bytearray(k * pad)
    src = buf[off:end]
    for j in range(w):
        wide[j::pad] = src[j::w]
    return struct.unpack(f"<{k}{_FMT[pad]}", wide), end


def _frame(values: Column, nulls: bool) -> bytearray:
    present: Sequence[int] = [v for v in values if v is not None] if nulls else values  # type: ignore[assignment]
    base = min(present)
    top = max(present) - base
    w = _width(top + 1 if nulls else top)
    if nulls and w == 0:
        w = 1
    out = bytearray((w,))
    if 0 <= base < 64:
        out.append(base << 1)
    else:
        _varint(base, out)
    if w:
        if nulls:
            mark = _MARKS[w]
            _pack_uints([mark if v is None else v - base for v in values], w, out)
        else:
            _pack_uints([v - base for v in values] if base else values, w, out)  # type: ignore[operator, arg-type]
    return out


def _delta(values: Sequence[int]) -> bytearray:
    steps = list(map(operator.sub, values[1:], values[:-1]))
    low = min(steps)
    w = _width(max(steps) - low)
    out = bytearray((DELTA | w,))
    _varint(values[0], out)
    _varint(low, out)
    _pack_uints([s - low for s in steps] if low else steps, w, out)
    return out


def _encode_column(values: Column, out: bytearray) -> None:
    nulls = None in values
    if nulls and all(v is None for v in values):
        out.append(ALL_NULL)
        return
    best = _frame(values, nulls)
    if len(best) > 4 and len(values) > 2 and not nulls:  # a column of one value or one byte each: no better
        d = _delta(values)  # type: ignore[arg-type]
        if len(d) < len(best):
            best = d
    out += best


def encode(slots: int, present: Sequence[int], columns: Sequence[Column], deflate: bool | None = None) -> bytes:
    """Pack the buckets of one period: `present` slot indexes (ascending), one value list per column.

    `deflate`: True or False forces it; None (the default) deflates when that is shorter.
    """
    mask = 0
    for i in present:
        mask |= 1 << i
    head = bytearray((FORMAT, len(columns)))
    head += mask.to_bytes((slots + 7) // 8, "little")
    body = bytearray()
    for col in columns:
        _encode_column(col, body)
    if deflate is False or (deflate is None and len(body) < 48):
        return bytes(head + body)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    small = comp.compress(bytes(body)) + comp.flush()
    if deflate is None and len(small) >= len(body):
        return bytes(head + body)
    head[0] |= DEFLATED
    return bytes(head + small)


def mask_of(blob: bytes, slots: int) -> int:
    """The bit mask of the slots a packed row holds."""
    return int.from_bytes(blob[2:2 + (slots + 7) // 8], "little")


def slots_of(blob: bytes, slots: int) -> list[int]:
    """The slots a packed row holds, ascending."""
    mask = mask_of(blob, slots)
    return [i for i in range(slots) if mask >> i & 1]


@cache
def _structs(k: int) -> dict[int, struct.Struct]:
    """Struct unpacking k values per power-of-two width."""
    return {w: struct.Struct(f"<{k}{f}") for w, f in _FMT.items()}


def decode(blob: bytes, slots: int, ncols: int,
           want: frozenset[int] | None = None) -> tuple[list[int], list[Any]]:
    """The present slot indexes and each column's values (None for NULL) of a packed period.

    `want`: the column indexes to decode; the others are skipped and given as None.
    """
    if blob[1] != ncols:
        raise ValueError(f"packed row of {blob[1]} columns where {ncols} are expected: a schema change that adds "
                         "a metric must repack the rollup rows in its migration")
    nmask = (slots + 7) // 8
    present = slots_of(blob, slots)
    k = len(present)
    body = blob[2 + nmask:]
    if blob[0] & DEFLATED:
        body = zlib.decompress(body, -15)
    cols: list[Any] = []
    append = cols.append
    off = 0
    nulls = (None,) * k
    structs = _structs(k)
    skip = [False] * ncols if want is None else [c not in want for c in range(ncols)]
    for c in range(ncols):
        code = body[off]
        if code == ALL_NULL:
            off += 1
            append(None if skip[c] else nulls)
            continue
        if skip[c]:  # the varint(s), then the values
            off += 1
            for _ in range(2 if code & DELTA else 1):
                while body[off] & 0x80:
                    off += 1
                off += 1
            off += (k - 1 if code & DELTA else k) * (code & 0x0F)
            append(None)
            continue
        z = body[off + 1]
        if z < 0x80:  # one- or two-byte varint, the usual base
            off += 2
            first = (z >> 1) ^ -(z & 1)
        elif body[off + 2] < 0x80:
            z = (z & 0x7F) | body[off + 2] << 7
            off += 3
            first = (z >> 1) ^ -(z & 1)
        else:
            first, off = _read_varint(body, off + 1)
        if code & DELTA:
            w = code & 0x0F
            low, off = _read_varint(body, off)
            steps, off = _unpack_uints(body, off, k - 1, w)
            append(tuple(itertools.accumulate(map(low.__add__, steps), initial=first)))
            continue
        if code == 0:
            append((first,) * k)
            continue
        st = structs.get(code)
        if st is not None:
            vals = st.unpack_from(body, off)
            off += st.size
        else:
            vals, off = _unpack_uints(body, off, k, code)
        if _MARKS[code] in vals:
            mark = _MARKS[code]
            append(tuple(None if v == mark else v + first for v in vals))
        elif first:
            append(tuple(map(first.__add__, vals)))
        else:
            append(vals)
    return present, cols
