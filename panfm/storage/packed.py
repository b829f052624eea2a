"""Pack a period's rollup buckets into one BLOB (candidate layout of issue 17; pure, no SQL).

One row per series and period (an hour of twelve 5-minute buckets, a day of 1-hour buckets or
30-minute groups) holds its buckets column by column:

    byte 0        format (1)
    mask          ceil(slots / 8) bytes, bit i set when slot i has a bucket
    columns       one per value column (n, then each metric's average and maximum), each:
                  code byte, then the present slots' values
                    0x00        every value 0 (nothing follows)
                    0xFF        every value NULL (nothing follows)
                    0x40 | w    every value the same, stored once in w bytes
                    w           w bytes per value (1, 2, 4 or 8), little-endian, signed;
                                the type's minimum stands for NULL

The values are decoded with `struct` (C), never one by one in Python. The columns after the
mask are deflated (`zlib`, raw stream; bit 0x80 of the format byte) when that makes them
shorter: measured in bench/storage_layouts.py.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

FORMAT = 1
_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_LIMITS = {w: (-(1 << (8 * w - 1)), (1 << (8 * w - 1)) - 1) for w in _CODES}  # (NULL sentinel, max)
ALL_ZERO, ALL_NULL, SAME = 0x00, 0xFF, 0x40

Column = Sequence[int | None]


def _width(lo: int, hi: int) -> int:
    for w in (1, 2, 4, 8):
        sentinel, top = _LIMITS[w]
        if lo > sentinel and hi <= top:
            return w
    raise ValueError("value out of range for a packed column")


def _encode_column(values: Column, out: bytearray) -> None:
    present = [v for v in values if v is not None]
    if not present:
        out.append(ALL_NULL)
        return
    lo, hi = min(present), max(present)
    if len(present) == len(values) and lo == hi:
        if lo == 0:
            out.append(ALL_ZERO)
            return
        w = _width(lo, hi)
        out.append(SAME | w)
        out += struct.pack(f"<{_CODES[w]}", lo)
        return
    w = _width(lo, hi)
    sentinel = _LIMITS[w][0]
    out.append(w)
    out += struct.pack(f"<{len(values)}{_CODES[w]}", *(sentinel if v is None else v for v in values))


def encode(slots: int, present: Sequence[int], columns: Sequence[Column], deflate: bool | None = None) -> bytes:
    """Pack the buckets of one period: `present` slot indexes (ascending), one value list per column.

    `deflate`: True or False forces it; None (the default) deflates when that is shorter.
    """
    mask = 0
    for i in present:
        mask |= 1 << i
    head = bytearray((FORMAT,))
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
    head[0] |= 0x80
    return bytes(head + small)


def decode(blob: bytes, slots: int, ncols: int) -> tuple[list[int], list[tuple[int | None, ...]]]:
    """The present slot indexes and each column's values (None for NULL) of a packed period."""
    nmask = (slots + 7) // 8
    mask = int.from_bytes(blob[1:1 + nmask], "little")
    present = [i for i in range(slots) if mask >> i & 1]
    k = len(present)
    body = blob[1 + nmask:]
    if blob[0] & 0x80:
        body = zlib.decompress(body, -15)
    cols: list[tuple[int | None, ...]] = []
    off = 0
    for _ in range(ncols):
        code = body[off]
        off += 1
        if code == ALL_ZERO:
            cols.append((0,) * k)
        elif code == ALL_NULL:
            cols.append((None,) * k)
        elif code & SAME:
            w = code & 0x0F
            (v,) = struct.unpack_from(f"<{_CODES[w]}", body, off)
            off += w
            cols.append((v,) * k)
        else:
            vals = struct.unpack_from(f"<{k}{_CODES[code]}", body, off)
            off += k * code
            sentinel = _LIMITS[code][0]
            cols.append(tuple(None if v == sentinel else v for v in vals) if sentinel in vals else vals)
    return present, cols
