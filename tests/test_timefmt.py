"""panfm.timefmt: the one formatter of times for the API, checked against datetime."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from panfm import timefmt


def _reference(ts: float) -> str:
    ms = int(ts * 1000)  # truncated, as the API has always given them
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@pytest.mark.parametrize("ts", [0.0, 0.9999996, 1_700_000_000.0, 1_700_000_000.9995, 1_764_892_800.5,
                                86_399.999, 86_400.0, 4_102_444_799.999])
def test_iso_ms_edges(ts):
    assert timefmt.iso_ms(ts) == _reference(ts)


def test_iso_ms_many_times_and_a_full_cache(monkeypatch):
    monkeypatch.setattr(timefmt, "_CACHE_MAX", 64)  # cleared many times over in this run
    rng = random.Random(5)
    for ts in [rng.uniform(0, 4_000_000_000) for _ in range(5000)] + [1_764_892_800 + 1800 * i for i in range(1441)]:
        assert timefmt.iso_ms(ts) == _reference(ts)
    assert len(timefmt._DAYS) <= 64 and len(timefmt._TIMES) <= 64


def test_none_stays_none():
    assert timefmt.iso_ms(None) is None and timefmt.iso_s(None) is None
