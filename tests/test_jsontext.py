"""The stores' JSON text (`panfm/storage/jsontext.py`): what json.dumps(default=str) stored, read back the same."""

import dataclasses
import datetime
import json
import math

import pytest

from panfm.storage import jsontext

DOCS = [
    {"system": {"hostname": "fw-01", "uptime": 179 * 86400, "model": "PA-3220"}, "zones": ["trust", "untrust"]},
    {"name": "naïve ünïcode → ✓", "quote": 'he said "hi"\n', "tag": "<script>&'"},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"counter": 18_446_744_073_709_551_615, "negative": -(2**63)},  # 64-bit edges: orjson's own
    {"huge": 2**70},  # beyond 64 bits: orjson refuses, json.dumps writes it
    {"when": datetime.datetime(2026, 12, 5, 18, 0, tzinfo=datetime.UTC), "day": datetime.date(2026, 12, 5)},
    {"part": None, "why": ValueError("no answer"), "obj": None},
    [],
    {},
]


@pytest.mark.parametrize("doc", DOCS)
def test_it_reads_back_what_json_dumps_with_default_str_stored(doc):
    text = jsontext.dumps(doc)
    assert isinstance(text, str)
    assert json.loads(text) == json.loads(json.dumps(doc, default=str))


@dataclasses.dataclass
class _Part:
    name: str


def test_dates_and_dataclasses_are_their_str_as_before():
    doc = {"when": datetime.datetime(2026, 12, 5, 18, 0, tzinfo=datetime.UTC), "part": _Part("zones")}
    assert json.loads(jsontext.dumps(doc)) == {"when": "2026-12-05 18:00:00+00:00", "part": "_Part(name='zones')"}


def test_non_finite_floats_become_null_not_invalid_json():
    text = jsontext.dumps({"nan": math.nan, "inf": math.inf, "x": 1.5})
    assert json.loads(text) == {"nan": None, "inf": None, "x": 1.5}
    assert "NaN" not in text and "Infinity" not in text
