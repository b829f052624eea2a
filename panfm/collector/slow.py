"""The inventory job's work for one device: inventory and context, every 5 minutes."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from panfm.models import GpUser, HaState, InterfaceInfo, License, LogJob, SystemInfo

THREAT_SEVERITIES = ("critical", "high", "medium")
MAX_LOGS = 5000  # PAN-OS caps one log query at 5000 entries; counts above that read 5000


class SlowClient(Protocol):
    def system_info(self) -> SystemInfo: ...
    def ha_state(self) -> HaState: ...
    def licenses(self) -> Sequence[License]: ...
    def interfaces(self) -> Sequence[InterfaceInfo]: ...
    def gp_users(self) -> Sequence[GpUser]: ...
    def log_query(self, log_type: str, query: str, nlogs: int, deadline_s: float) -> Any: ...


def inventory_phase(device_id: str, window_s: float) -> float:
    """Seconds into every window (epoch-aligned) at which this device's inventory is due.

    Derived from the id alone (a stable hash, not Python's salted `hash`), so it survives
    restarts and spreads a fleet evenly over the window instead of one burst.
    """
    slots = max(1, int(window_s * 1000))
    digest = hashlib.blake2b(device_id.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % slots) / 1000.0


def phase_due(device_ids: Iterable[str], since: float, until: float, window_s: float) -> list[str]:
    """Ids whose phase point (k × window + phase) falls in the half-open span (since, until].

    Consecutive spans that join end to start name every device exactly once per window, however
    the ticks fall; a span of a whole window or more (a tick held up that long) names everyone.
    """
    if until <= since:
        return []
    if until - since >= window_s:
        return sorted(device_ids)
    due = []
    for device_id in device_ids:
        phase = inventory_phase(device_id, window_s)
        last_point = math.floor((until - phase) / window_s) * window_s + phase  # latest point <= until
        if last_point > since:
            due.append(device_id)
    return sorted(due)


def device_clock(info: SystemInfo | None, now: float) -> datetime:
    """The firewall's local wall clock (log filters use it), else UTC `now`."""
    if info is not None and info.device_time:
        try:
            return datetime.strptime(" ".join(info.device_time.split()), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            pass
    return datetime.fromtimestamp(now, UTC).replace(tzinfo=None)


def window_query(since: datetime, extra: str = "") -> str:
    """A log filter for entries received since `since` (never "the last N logs")."""
    query = f"( receive_time geq '{since:%Y/%m/%d %H:%M:%S}' )"
    return f"{query} and {extra}" if extra else query


def _entries(result: Any) -> tuple[Mapping[str, str], ...]:
    if isinstance(result, LogJob):
        return result.entries
    return tuple(result or ())


def _fields(obj: Any) -> dict[str, Any]:
    """A response model as a plain dict: its fields are all scalars (str, int, bool, date, None).

    `dataclasses.asdict` deep-copies every value (dates through `copy.deepcopy`): a visible share
    of an inventory's CPU under the profiler (bench/profile_clock.py) for nothing.
    """
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def threat_counts(entries: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """Count threat log entries by severity (critical, high, medium)."""
    counts = dict.fromkeys(THREAT_SEVERITIES, 0)
    for entry in entries:
        severity = (entry.get("severity") or "").strip().lower()
        if severity in counts:
            counts[severity] += 1
    return counts


def gather_inventory(
    client: SlowClient,
    *,
    now: float,
    window_s: float,
    deadline: float,
    monotonic: Callable[[], float] = time.monotonic,
    pause: Callable[[], None] = lambda: None,
) -> tuple[SystemInfo, dict[str, Any]]:
    """Run the slow calls against one device and return its system info and inventory document.

    System info must succeed (it carries serial and uptime for reset detection); the other
    parts are best effort and land in `errors` by name. `pause` runs before each call (the
    collector holds inventory there while a fast cycle runs).
    """
    pause()
    if monotonic() >= deadline:  # queued or held past the job's deadline: make no call at all
        raise TimeoutError("deadline exceeded before the first call")
    info = client.system_info()
    doc: dict[str, Any] = {"system": _fields(info), "errors": {}}
    errors: dict[str, str] = doc["errors"]

    def part(name: str, fn: Callable[[], Any]) -> None:
        pause()
        if monotonic() >= deadline:
            errors[name] = "deadline exceeded"
            return
        try:
            doc[name] = fn()
        except Exception as exc:  # one part failing must not lose the others
            errors[name] = type(exc).__name__ + (f": {exc}" if str(exc) else "")

    part("ha", lambda: _fields(client.ha_state()))
    part("licenses", lambda: [_fields(lic) for lic in client.licenses()])
    part("interfaces", lambda: [_fields(i) for i in client.interfaces()])
    part("gp_users", lambda: len(client.gp_users()))
    since = device_clock(info, now) - timedelta(seconds=window_s)
    severity = "( " + " or ".join(f"( severity eq {s} )" for s in THREAT_SEVERITIES) + " )"

    def remaining() -> float:
        return max(1.0, deadline - monotonic())

    threat_query = window_query(since, severity)
    part("threats", lambda: threat_counts(_entries(client.log_query("threat", threat_query, MAX_LOGS, remaining()))))
    part(
        "blocked_urls",
        lambda: len(
            _entries(client.log_query("url", window_query(since, "( action eq block-url )"), MAX_LOGS, remaining()))
        ),
    )
    doc["window_s"] = window_s
    for lic in doc.get("licenses", []):
        for key in ("issued", "expires"):
            if lic.get(key) is not None:
                lic[key] = lic[key].isoformat()
    return info, doc


def link_speeds(interfaces: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """Link speed (Mb/s) by interface name from an inventory's interface list."""
    return {str(i["name"]): i.get("speed_mbps") for i in interfaces}
