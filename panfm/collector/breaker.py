"""Per-device circuit breaker and status bookkeeping (pure: callers pass `now`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from panfm.models import DeviceStatus
from panfm.redact import without

FAILURES_TO_OPEN = 3
MAX_PROBE_GAP_S = 120.0
MAX_ERROR_CHARS = 300

def safe_error(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """Render an exception as one line of text fit for the dashboard: no secret, bounded."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = " ".join(without(text, secrets).split())
    return text[:MAX_ERROR_CHARS]


@dataclass
class Breaker:
    """Open after 3 consecutive failures; probe after 1, 2, 4 … intervals (≤ 2 min); close on success."""

    failures: int = 0
    open_since: float | None = None
    next_probe: float | None = None
    failed_probes: int = 0

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    def allows(self, now: float) -> bool:
        """Tell whether the device may be polled now (closed, or open and due for a probe)."""
        return self.next_probe is None or now >= self.next_probe

    def success(self) -> None:
        self.failures = 0
        self.open_since = self.next_probe = None
        self.failed_probes = 0

    def failure(self, now: float, interval: float) -> None:
        """Count a failure; open the breaker at the threshold, back off after a failed probe."""
        self.failures += 1
        if self.is_open:
            self.failed_probes += 1
        elif self.failures >= FAILURES_TO_OPEN:
            self.open_since = now
        if self.is_open:
            # Why capped: a firewall that comes back must be seen within 2 minutes.
            gap = min(interval * (2**self.failed_probes), MAX_PROBE_GAP_S)
            # Half a second of slack: a cycle that starts a hair early still probes.
            self.next_probe = now + gap - 0.5


def status_after_success(prev: DeviceStatus | None, device_id: str, now: float) -> DeviceStatus:
    """Status of a device whose poll succeeded at `now`."""
    return DeviceStatus(device_id=device_id, state="up", last_poll=now, last_success=now, last_error=None)


def status_after_failure(
    prev: DeviceStatus | None, device_id: str, now: float, error: str, breaker: Breaker
) -> DeviceStatus:
    """Status of a device whose poll failed at `now` (keeps its last success)."""
    return DeviceStatus(
        device_id=device_id,
        state="breaker_open" if breaker.is_open else "down",
        last_poll=now,
        last_success=prev.last_success if prev else None,
        last_error=error,
        consecutive_failures=breaker.failures,
    )


def status_skipped(prev: DeviceStatus | None, device_id: str, breaker: Breaker, why: str) -> DeviceStatus:
    """Status of a device not polled this cycle (breaker open, or its last poll still running)."""
    base = prev or DeviceStatus(device_id=device_id, state="unknown")
    state = "breaker_open" if breaker.is_open else base.state
    return replace(base, state=state, last_error=base.last_error or why, consecutive_failures=breaker.failures)


_CERT_CHANGED = "certificate changed: expected {pinned}, got {seen}; not polled until an admin accepts it"
_CERT_CHANGED_RE = re.compile(r"certificate changed: expected ([0-9a-fA-F]{64}), got ([0-9a-fA-F]{64});"
                              r" not polled until an admin accepts it")


def status_cert_changed(
    prev: DeviceStatus | None, device_id: str, now: float | None, pinned: str, seen: str
) -> DeviceStatus:
    """Status of a device refused because its certificate is not the pinned one (`now` None: not polled)."""
    return DeviceStatus(
        device_id=device_id,
        state="down",
        last_poll=now if now is not None else (prev.last_poll if prev else None),
        last_success=prev.last_success if prev else None,
        # Fingerprints are public: the admin compares them with the firewall's before accepting.
        last_error=_CERT_CHANGED.format(pinned=pinned, seen=seen),
        consecutive_failures=0,
    )


def cert_change_of(status: DeviceStatus) -> tuple[str, str] | None:
    """(pinned, seen) of a status written by `status_cert_changed` (another clock's device, as stored); else None."""
    if status.state != "down" or not status.last_error:
        return None
    m = _CERT_CHANGED_RE.fullmatch(status.last_error)
    return None if m is None else (m.group(1), m.group(2))
