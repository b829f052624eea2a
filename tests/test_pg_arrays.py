"""The cycle writer's binary array parameters (`pg_arrays.pack`) read back as packed, on a real PostgreSQL."""

from __future__ import annotations

import math

import pytest

from panfm.storage import pg_arrays
from panfm.storage.postgres import PgDatabase

pytestmark = pytest.mark.postgres

CASES = [
    (pg_arrays.Int4Array, "int4", [1, -2, 2**31 - 1, -(2**31)]),
    (pg_arrays.Int4Array, "int4", [7, None, 0]),
    (pg_arrays.Int8Array, "int8", [2**63 - 1, -(2**63), 0, None]),
    (pg_arrays.Float8Array, "float8", [0.1, -1e300, 5e-324, None, math.inf]),
    (pg_arrays.Float4Array, "float4", [0.25, 1.5, None, -3.0]),
    (pg_arrays.BoolArray, "bool", [True, False, None]),
    (pg_arrays.TextArray, "text", ["fw-01", "Zürich → 東京 ☃ \U0001F600", "", None, "x" * 5000]),
    (pg_arrays.TextArray, "text", ["a", "b"]),
    (pg_arrays.TextArray, "text", []),
    (pg_arrays.Float8Array, "float8", []),
]


@pytest.mark.parametrize(("cls", "sql_type", "values"), CASES, ids=lambda v: getattr(v, "__name__", None))
def test_each_array_type_reads_back_as_packed(pg_url, cls, sql_type, values):
    db = PgDatabase(pg_url)
    try:
        with db.connection() as conn:
            pg_arrays.register(conn.raw)
            row = conn.execute(f"SELECT ?::{sql_type}[] AS a, cardinality(?::{sql_type}[]) AS n",
                               (pg_arrays.pack(cls, values), pg_arrays.pack(cls, values)), binary=True).fetchone()
    finally:
        db.close()
    assert row is not None and row["n"] == len(values)
    assert row["a"] == values


def test_a_nul_character_in_text_is_refused_by_the_server_not_stored_cut(pg_url):
    from panfm.storage.postgres import PgDatabaseError

    db = PgDatabase(pg_url)
    try:
        with db.connection() as conn:
            pg_arrays.register(conn.raw)
            with pytest.raises(PgDatabaseError):
                conn.execute("SELECT ?::text[] AS a", (pg_arrays.pack(pg_arrays.TextArray, ["a\x00b"]),), binary=True)
    finally:
        db.close()
