"""Alert rules, maintenance windows, states and transitions (validated, evaluated, persisted by alerting/storage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AlertSeverity = Literal["critical", "warning", "info"]
AlertOperator = Literal[">", ">=", "<", "<="]
AlertStateName = Literal["inactive", "pending", "firing"]
TransitionKind = Literal["pending", "cancelled", "firing", "repeat", "resolved"]


@dataclass(frozen=True)
class Rule:
    """One validated alert rule; event metrics carry no operator or threshold."""

    id: str
    name: str
    metric: str
    severity: AlertSeverity
    device_id: str | None = None  # None = every device
    interface: str | None = None  # interface metrics: None = every interface
    zone: str | None = None  # new_connected_device: None = every zone
    operator: AlertOperator | None = None
    threshold: float | None = None
    clear_threshold: float | None = None  # hysteresis: firing clears only past this value
    for_s: int = 0
    repeat_s: int = 0  # 0 = never re-notify while firing
    channel_ids: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class MaintenanceWindow:
    """A one-off (start/end epoch) or weekly (weekdays 0=Monday, start minute UTC, duration) window."""

    id: str
    device_id: str | None = None  # None = every device
    start: float | None = None
    end: float | None = None
    weekdays: tuple[int, ...] = ()
    start_minute: int = 0
    duration_s: int = 0
    name: str = ""


StateKey = tuple[str, str, str]  # (rule_id, device_id, series): one alert state


@dataclass(frozen=True)
class AlertState:
    """The persisted state of one (rule, device, series); series is "" for device-wide metrics."""

    rule_id: str
    device_id: str
    series: str
    state: AlertStateName
    alert_id: str | None = None
    since: float | None = None  # when the condition began to hold
    fired_at: float | None = None
    value: float | None = None
    peak: float | None = None
    last_notified: float | None = None  # None while firing = not notified yet (maintenance)
    observed: str | None = None  # last seen text of a change event (HA state, certificate)
    observed_at: float | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Transition:
    """One state change of one alert; `notify` asks the outbox for a message per channel."""

    kind: TransitionKind
    at: float
    alert_id: str
    rule_id: str
    device_id: str
    series: str
    metric: str
    severity: AlertSeverity
    value: float | None
    threshold: float | None
    started_at: float
    notify: bool
    suppressed: bool = False  # a notification was due but a maintenance window muted it
    peak: float | None = None
    detail: str | None = None
