"""The packed-column codec of the rollup tiers (schema 7): every value back exactly, foreign rows refused."""

import random

import pytest

import panfm.storage.packed as packed
import panfm.storage.tiers as tiers

SLOTS = 12


def _columns(rng: random.Random, k: int) -> list[list[int | None]]:
    cols: list[list[int | None]] = [
        [0] * k,  # all zero
        [None] * k,  # all NULL
        [262142] * k,  # one value
        [rng.randint(0, 255) for _ in range(k)],
        [rng.randint(-5, 5) for _ in range(k)],  # negative
        [10**8 + rng.randint(0, 10**6) for _ in range(k)],  # 3-byte frame over a large base
        [rng.randint(0, 2**40) for _ in range(k)],  # 5- and 6-byte widths
        [2**62 + rng.randint(-(2**61), 2**61) for _ in range(k)],  # 8 bytes
        [-(2**40) + rng.randint(0, 9) for _ in range(k)],  # a negative base
        [5_000_000 + 1000 * i for i in range(k)],  # a ramp
        [None if i % 3 == 0 else rng.randint(0, 70000) for i in range(k)],  # NULLs among values
        [None if i == k - 1 else 2**16 - 1 for i in range(k)],  # a value next to the NULL mark
    ]
    return cols


def test_it_gives_back_every_value_of_every_column_exactly():
    rng = random.Random(7)
    for present in ([0], [3, 4], list(range(SLOTS)), [0, 2, 5, 11]):
        cols = _columns(rng, len(present))
        blob = packed.encode(SLOTS, present, cols)
        got_present, got = packed.decode(blob, SLOTS, len(cols))
        assert got_present == present and packed.slots_of(blob, SLOTS) == present
        assert [list(c) for c in got] == cols


def test_it_refuses_a_row_of_another_column_count():
    blob = packed.encode(SLOTS, [0, 1], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="must repack"):
        packed.decode(blob, SLOTS, 3)


def test_a_period_keeps_each_bucket_its_maxima_and_counts():
    kind = "if"
    ncols = len(tiers.value_cols(kind))
    rows = []
    for i, start in enumerate((3600, 3900, 4500)):  # slots 0, 1, 3 of the hour
        vals = [10, *([1000 * (i + 1), 1500 * (i + 1)] * 5), None, None]  # the last metric missing
        counts = None if i != 1 else (10, 9, 10, 10, 10, 0)  # one bucket with a metric missing in a sample
        rows.append((start, tuple(vals[:ncols]), tiers.canonical_counts(kind, tuple(vals[:ncols]), counts)
                     if counts else None))
    b, cnt = tiers.encode_period("if_5m", 1, rows)
    assert cnt is not None
    assert tiers.decode_row("if_5m", 7 << tiers.SHIFT | 1, b, cnt) == rows
    assert tiers.bucket_count(b) == 3
