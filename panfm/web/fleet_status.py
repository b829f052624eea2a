"""The fleet at a glance, pure: each firewall's health word, the counts by health, the overview's grid.

`health(...)` gives one word per firewall (`up`, `degraded`, `down`, `breaker_open`,
`cert_changed`, `unknown`, `disabled`); `/api/overview` answers it per device and the counts
for the fleet; `panfm/web/fleet.py` draws the fleet totals on the `grid`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from panfm.models import DeviceStatus

HEALTH = ("up", "degraded", "down", "breaker_open", "cert_changed", "unknown", "disabled")
# The overview's range choices; the grid has at most this many slots.
OVERVIEW_RANGES = ("1h", "24h", "7d", "30d")
SLOTS = 240
CERT_CHANGED = "certificate changed"  # how the clock words a pinned fingerprint that no longer matches


def health(enabled: bool, status: DeviceStatus | None, age_s: float | None, alerts: int | None,
           refresh_s: float) -> str:
    """One firewall's health word.

    1. `disabled` (not polled), then what the last poll said: `cert_changed` (a pinned fingerprint
       no longer matches: someone must look), `breaker_open`, `down`, `unknown` (never polled);
    2. `degraded`: it answers, but its newest sample is stale (older than 3 refresh intervals)
       or an alert is firing for it;
    3. else `up`.
    """
    if not enabled:
        return "disabled"
    if status is None:
        return "unknown"
    if status.last_error and status.last_error.startswith(CERT_CHANGED) and status.state != "up":
        return "cert_changed"
    if status.state in ("breaker_open", "down", "unknown"):
        return status.state
    stale = age_s is None or age_s > 3 * refresh_s
    return "degraded" if stale or (alerts or 0) > 0 else "up"


def counts(words: Iterable[str]) -> dict[str, int]:
    """Firewalls per health word, every word present (0 when none)."""
    out = dict.fromkeys(HEALTH, 0)
    for w in words:
        out[w] = out.get(w, 0) + 1
    return out


def grid(range_s: int, refresh_s: float) -> int:
    """The slot width: the range over SLOTS, at least two refresh intervals (every slot then holds
    a sample of every polled firewall), rounded up to whole minutes past 5 minutes."""
    width = max(range_s / SLOTS, 2 * refresh_s)
    return math.ceil(width / 60) * 60 if width > 300 else math.ceil(width)


