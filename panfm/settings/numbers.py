"""Bounded numbers from JSON or text: every numeric input of the API and the settings is read here."""

from __future__ import annotations

import math
import re
from typing import Any

# ASCII only, and short: str.isdigit() takes "²" (which int() refuses) and int() takes "٣" (3);
# a length cap keeps int() and float() from parsing thousands of digits (ValueError past 4300).
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,30}", re.ASCII)
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)
MAX_NUMBER_TEXT = 40


def bounded_int(raw: Any, lo: int, hi: int) -> int:
    """Read a whole number from JSON (an int or a whole float) or text (ASCII digits) within [lo, hi].

    Raises ValueError saying what is expected. Every numeric input of the API and of the settings
    goes through here (or `bounded_number`), so a 400-digit integer or "²" is a 400, never a 500.
    """
    expected = f"expected a whole number between {lo} and {hi}"
    value: int
    if isinstance(raw, bool):
        raise ValueError(expected)
    if isinstance(raw, str):
        if not _INT_TEXT.fullmatch(raw.strip()):
            raise ValueError(expected)
        value = int(raw.strip())
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        value = int(raw)
    else:
        raise ValueError(expected)
    if not lo <= value <= hi:  # exact for any int: a huge one never reaches float()
        raise ValueError(expected)
    return value


def bounded_number(raw: Any, lo: float, hi: float) -> float:
    """Read a finite number from JSON (int or float) or text (ASCII) within [lo, hi]; ValueError if not."""
    expected = f"expected a finite number between {lo:g} and {hi:g}"
    if isinstance(raw, bool):
        raise ValueError(expected)
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_NUMBER_TEXT or not _NUMBER_TEXT.fullmatch(text):
            raise ValueError(expected)
        raw = float(text)
    if isinstance(raw, int):
        # Compare before converting: float(10**400) raises OverflowError.
        if not lo <= raw <= hi:
            raise ValueError(expected)
        return float(raw)
    if not isinstance(raw, float) or not math.isfinite(raw) or not lo <= raw <= hi:
        raise ValueError(expected)
    return raw
