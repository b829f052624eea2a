"""JSON text of the documents the stores keep (inventory, log entries, security events), built by orjson.

orjson encodes in C, several times faster than `json.dumps`: an inventory stores one document
of ~20 kB and a few hundred small ones per firewall every 5 minutes (bench/inventory_parts.py).
The text is compact (no spaces), and readers parse it with `json.loads` as before. What orjson
refuses (an integer beyond 64 bits) goes through `json.dumps`, so nothing that was stored before
is refused now; what it cannot encode otherwise becomes `str(value)`, as `default=str` did.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# {1: ...} as {"1": ...}, as json.dumps writes it; dates, times and dataclasses as str(value)
# (orjson would write ISO-8601 and objects), as `default=str` did.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any) -> str:
    """`obj` as JSON text (UTF-8 characters, not \\u escapes; NaN and infinities as null)."""
    try:
        return orjson.dumps(obj, default=str, option=_OPTIONS).decode("utf-8")
    except TypeError:
        return json.dumps(obj, default=str)
