"""Epoch seconds as ISO-8601 UTC with a `Z`: the one place PANfm formats a time for people or the API."""

from __future__ import annotations

import time

# Formatted day prefixes ("2026-12-05T") and times of day ("14:35:00."), by day and by second of
# the day: a 30-day chart's 1,441 times share 31 days and 48 times of day, so each is formatted
# once (half the cost of formatting every time whole). Cleared when full: bounded memory.
_DAYS: dict[int, str] = {}
_TIMES: dict[int, str] = {}
_CACHE_MAX = 8192


def iso_ms(ts: float | None) -> str | None:
    """Format an epoch time as ISO-8601 UTC with milliseconds and a Z (sample times, log records)."""
    if ts is None:
        return None
    # Seconds and milliseconds from one integer: fromtimestamp(x.9999996) would round up a second.
    ms = int(ts * 1000)
    day, second = divmod(ms // 1000, 86400)
    d = _DAYS.get(day)
    if d is None:
        if len(_DAYS) >= _CACHE_MAX:
            _DAYS.clear()
        d = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    t = _TIMES.get(second)
    if t is None:
        if len(_TIMES) >= _CACHE_MAX:
            _TIMES.clear()
        t = _TIMES[second] = time.strftime("%H:%M:%S.", time.gmtime(second))
    return f"{d}{t}{ms % 1000:03d}Z"


def iso_s(ts: float | None) -> str | None:
    """Format an epoch time as ISO-8601 UTC in whole seconds with a Z (alerts, collection times)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(round(ts)))
