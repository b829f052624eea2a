"""PostgreSQL arrays sent as binary parameters, each built by one `struct` call (the cycle writer's columns).

psycopg dumps a Python list element by element in Python; a cycle's raw rows are ~20 columns
of hundreds and ~10 columns of thousands of values, so that cost more client time than the
rows' whole server work (the states' text arrays: ~1-2 ms of a 500-firewall write). Here a
column becomes the binary array format directly (header, then a length and a big-endian value
per element; a NULL is length -1): one `struct` call for a column without NULLs, one join of
packed elements for one with some or of text. The values go into an
`INSERT ... SELECT FROM unnest(?::float8[], ...)` sent in a pipeline, with no `COPY` (two
round trips of its own, and not allowed in pipeline mode).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format


class Int4Array(bytes):
    """`int4[]` in binary (build with `pack`)."""


class Int8Array(bytes):
    """`int8[]` in binary."""


class Float4Array(bytes):
    """`float4[]` in binary (a float8 packs to its nearest float4, as PostgreSQL's cast rounds it)."""


class Float8Array(bytes):
    """`float8[]` in binary."""


class BoolArray(bytes):
    """`bool[]` in binary."""


class TextArray(bytes):
    """`text[]` in binary: each element its UTF-8 bytes (a NUL character is refused by the server, as before)."""


# class -> (array type oid, element type oid, struct code, element size)
_TYPES: dict[type[bytes], tuple[int, int, str, int]] = {
    Int4Array: (1007, 23, "i", 4),
    Int8Array: (1016, 20, "q", 8),
    Float4Array: (1021, 700, "f", 4),
    Float8Array: (1022, 701, "d", 8),
    BoolArray: (1000, 16, "?", 1),
    TextArray: (1009, 25, "", 0),  # variable length: each element joined with its length in `pack`
}
_HEADER = struct.Struct(">iiiii")  # dimensions, has NULLs, element oid, length, lower bound
_NULL = struct.pack(">i", -1)
_LENGTH = struct.Struct(">i").pack


def _dumper(array_oid: int) -> type[Dumper]:
    class _Raw(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: Any) -> bytes:
            return bytes(obj)

    return _Raw


_DUMPERS = {cls: _dumper(t[0]) for cls, t in _TYPES.items()}


def register(conn: psycopg.Connection[Any]) -> None:
    """Teach a connection to send these classes as their array types (once per connection)."""
    for cls, dumper in _DUMPERS.items():
        conn.adapters.register_dumper(cls, dumper)


@functools.lru_cache(maxsize=128)
def _body(code: str, n: int) -> struct.Struct:
    return struct.Struct(">" + ("i" + code) * n)


@functools.lru_cache(maxsize=8)
def _element(code: str) -> struct.Struct:
    return struct.Struct(">i" + code)


def pack(cls: type[bytes], values: Sequence[Any]) -> bytes:
    """`values` (None for NULL) as a one-dimensional binary array of `cls`'s type."""
    _, elem_oid, code, size = _TYPES[cls]
    n = len(values)
    if n == 0:
        return cls(struct.pack(">iii", 0, 0, elem_oid))
    if cls is TextArray:
        return cls(_HEADER.pack(1, 1 if None in values else 0, elem_oid, n, 1) + b"".join(
            [_NULL if v is None else _LENGTH(len(b := v.encode("utf-8"))) + b for v in values]))
    if None not in values:
        inter: list[Any] = [size] * (2 * n)
        inter[1::2] = values
        return cls(_HEADER.pack(1, 0, elem_oid, n, 1) + _body(code, n).pack(*inter))
    one = _element(code).pack
    return cls(_HEADER.pack(1, 1, elem_oid, n, 1) + b"".join([_NULL if v is None else one(size, v) for v in values]))
