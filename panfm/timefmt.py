"""Epoch seconds as ISO-8601 UTC with a `Z`: the one place PANfm formats a time for people or the API."""

from __future__ import annotations

import time


def iso_ms(ts: float | None) -> str | None:
    """Format an epoch time as ISO-8601 UTC with milliseconds and a Z (sample times, log records)."""
    if ts is None:
        return None
    # Seconds and milliseconds from one integer: fromtimestamp(x.9999996) would round up a second.
    # time.gmtime: half the cost of datetime, which matters for 2,000-point histories.
    ms = int(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(ms // 1000)) + f"{ms % 1000:03d}Z"


def iso_s(ts: float | None) -> str | None:
    """Format an epoch time as ISO-8601 UTC in whole seconds with a Z (alerts, collection times)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(round(ts)))
