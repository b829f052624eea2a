"""Frozen dataclasses passed between PANfm's layers.

Parsers (`panos_xml`) turn PAN-OS responses into the first group, the collector turns
those into samples (second group), storage persists samples, the web and the alerts read
them. Nothing here does I/O. Times are UTC epoch seconds (floats, millisecond precision).

One module per group: `devices.py` (device records, TLS, the address policy), `responses.py`
(parsed PAN-OS responses), `samples.py` (samples, baselines, statuses, cycles, history),
`alerts.py` (rules, windows, states, transitions). Import every name from `panfm.models`.
"""

from panfm.models.alerts import (
    AlertOperator,
    AlertSeverity,
    AlertState,
    AlertStateName,
    MaintenanceWindow,
    Rule,
    StateKey,
    Transition,
    TransitionKind,
)
from panfm.models.coordination import ClockNode, LeaseRound
from panfm.models.devices import (
    AddressPolicy,
    DeviceConfig,
    IpNetwork,
    TlsConfig,
    TlsMode,
)
from panfm.models.network import DhcpLease, ReportJob, UserMapping
from panfm.models.responses import (
    ArpEntry,
    CounterSnapshot,
    DataplaneLoad,
    GpUser,
    HaState,
    InterfaceCounters,
    InterfaceInfo,
    InterfaceKind,
    License,
    LogJob,
    ResourceMonitor,
    SessionInfo,
    SystemInfo,
    SystemResources,
)
from panfm.models.samples import (
    CounterBaseline,
    CycleResult,
    DataplaneCpu,
    DeviceSample,
    DeviceState,
    DeviceStatus,
    History,
    HistoryTier,
    InterfaceSample,
)

__all__ = [
    "AddressPolicy",
    "AlertOperator",
    "AlertSeverity",
    "AlertState",
    "AlertStateName",
    "ArpEntry",
    "ClockNode",
    "CounterBaseline",
    "CounterSnapshot",
    "CycleResult",
    "DataplaneCpu",
    "DataplaneLoad",
    "DeviceConfig",
    "DeviceSample",
    "DeviceState",
    "DeviceStatus",
    "DhcpLease",
    "GpUser",
    "HaState",
    "History",
    "HistoryTier",
    "InterfaceCounters",
    "InterfaceInfo",
    "InterfaceKind",
    "InterfaceSample",
    "IpNetwork",
    "LeaseRound",
    "License",
    "LogJob",
    "MaintenanceWindow",
    "ReportJob",
    "ResourceMonitor",
    "Rule",
    "SessionInfo",
    "StateKey",
    "SystemInfo",
    "SystemResources",
    "TlsConfig",
    "TlsMode",
    "Transition",
    "TransitionKind",
    "UserMapping",
]
