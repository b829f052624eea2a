"""Parse the dataplane's answers: resource monitor, interface counters and interface lists.

Import these through `panos_xml`. Elements are found by name, never by position: their order
differs across PAN-OS releases.
"""

from __future__ import annotations

import re

# The Element type only: every body is parsed by parse_core.parse_xml (declarations refused, then C).
from xml.etree.ElementTree import Element  # nosec B405

from panfm.models import (
    CounterSnapshot,
    DataplaneLoad,
    InterfaceCounters,
    InterfaceInfo,
    InterfaceKind,
    ResourceMonitor,
)
from panfm.xmlapi.parse_core import (
    BadResponse,
    find_int,
    find_text,
    int_list,
    parse_envelope,
    raw_text,
    result_of,
    text_of,
    to_int,
)

PERIODS = ("second", "minute", "hour", "day", "week")
_COUNTER_FIELDS = ("ibytes", "obytes", "ipackets", "opackets", "ierrors", "idrops")
_AGGREGATE_RE = re.compile(r"ae\d+")
# Where an aggregate member names its group. No public capture shows this for `show interface
# all`, so several plausible element names are accepted (see docs/parsers.md).
_AGGREGATE_TAGS = ("aggregate-group", "ae", "ae-group", "ae_member", "ae-member", "parent")
_KIND_PATTERNS: tuple[tuple[re.Pattern[str], InterfaceKind], ...] = (
    (re.compile(r"ethernet\d+(/\d+)+"), "physical"),
    (re.compile(r"(ethernet\d+(/\d+)+|ae\d+)\.\d+"), "subinterface"),
    (re.compile(r"ae\d+"), "aggregate"),
    (re.compile(r"tunnel(\.\d+)?"), "tunnel"),
    (re.compile(r"loopback(\.\d+)?"), "loopback"),
    (re.compile(r"vlan(\.\d+)?"), "vlan"),
)


def interface_kind(name: str) -> InterfaceKind:
    """Classify an interface by its PAN-OS name (ethernet1/1, ethernet1/1.100, ae1, tunnel.1 ...)."""
    for pattern, kind in _KIND_PATTERNS:
        if pattern.fullmatch(name):
            return kind
    return "other"


# --------------------------------------------------------------------------------------
# show running resource-monitor
# --------------------------------------------------------------------------------------


def parse_resource_monitor(text: str | bytes) -> ResourceMonitor:
    """Parse `show running resource-monitor <period>` into per-dataplane histories."""
    result = result_of(parse_envelope(text))
    processors = result.find("resource-monitor/data-processors")
    if processors is None:
        raise BadResponse("<resource-monitor/data-processors> is missing")
    period: str | None = None
    dataplanes: list[DataplaneLoad] = []
    for dp in processors:
        block = next((child for child in dp if child.tag in PERIODS), None)
        if block is None:
            raise BadResponse(f"dataplane <{dp.tag[:40]}> has no second/minute/hour/day/week block")
        if period is None:
            period = block.tag
        elif block.tag != period:
            raise BadResponse(f"dataplanes disagree on the period ({period} vs {block.tag})")
        dataplanes.append(_dataplane(dp.tag, block))
    if period is None:
        raise BadResponse("<data-processors> lists no dataplane")
    return ResourceMonitor(period=period, dataplanes=tuple(dataplanes))


def _dataplane(name: str, block: Element) -> DataplaneLoad:
    where = f"{name}/{block.tag}"
    tasks: dict[str, tuple[int, ...]] = {}
    task_block = block.find("task")
    if task_block is not None:
        for task in task_block:
            tasks[task.tag] = int_list(text_of(task), where=f"{where}/task/{task.tag[:40]}")
    utilization: dict[str, tuple[int, ...]] = {}
    for entry in block.findall("resource-utilization/entry"):
        label = raw_text(entry, "name")
        if label is not None:
            utilization[label] = int_list(text_of(entry.find("value")), where=f"{where}/{label[:40]}")
    return DataplaneLoad(
        name=name,
        cpu_average=_per_core(block, "cpu-load-average", where),
        cpu_maximum=_per_core(block, "cpu-load-maximum", where),
        tasks=tasks,
        utilization=utilization,
    )


def _per_core(block: Element, tag: str, where: str) -> dict[int, tuple[int, ...]]:
    cores: dict[int, tuple[int, ...]] = {}
    for entry in block.findall(f"{tag}/entry"):
        core = find_int(entry, "coreid")
        if core is None:
            raise BadResponse(f"{where}/{tag}: an entry has no integer <coreid>")
        cores[core] = int_list(text_of(entry.find("value")), where=f"{where}/{tag}/core {core}")
    return cores


# --------------------------------------------------------------------------------------
# Counters: show counter interface all, and the counter blocks of show interface NAME
# --------------------------------------------------------------------------------------


def counters_from_entry(entry: Element, source: str) -> InterfaceCounters | None:
    """Read one counter entry; None when it lacks a name or any of the six counters.

    A partial entry is dropped rather than padded with zeros: a fake zero would become a fake
    rate downstream, while a missing interface becomes an honest gap.
    """
    name = raw_text(entry, "name")
    # The six numbers by the plain-digits fast path (`find` runs in C): `show counter interface
    # all` has ~30 entries per answer, and six `find_int` layers each were most of its parse after expat.
    values: list[int | None] = []
    for tag in _COUNTER_FIELDS:
        element = entry.find(tag)
        text = element.text if element is not None and len(element) == 0 else None
        if text is not None and text.isascii() and text.isdigit() and len(text) <= 24:
            values.append(int(text))
        else:
            values.append(find_int(entry, tag))  # absent, padded, a child element, a "no value" marker
    if name is None or any(value is None or value < 0 for value in values):
        return None
    ibytes, obytes, ipackets, opackets, ierrors, idrops = (int(v or 0) for v in values)
    return InterfaceCounters(
        name=name,
        ibytes=ibytes,
        obytes=obytes,
        ipackets=ipackets,
        opackets=opackets,
        ierrors=ierrors,
        idrops=idrops,
        source="hw" if source == "hw" else "ifnet",
    )


def _counter_map(entries: list[Element], source: str) -> dict[str, InterfaceCounters]:
    found: dict[str, InterfaceCounters] = {}
    for entry in entries:
        counters = counters_from_entry(entry, source)
        if counters is not None:
            found[counters.name] = counters
    return found


def parse_counter_interface(text: str | bytes) -> CounterSnapshot:
    """Parse `show counter interface all` (doubled `ifnet/ifnet/entry` or flat `ifnet/entry`)."""
    result = result_of(parse_envelope(text))
    ifnet_block = result.find("ifnet")
    hw_block = result.find("hw")
    if ifnet_block is None and hw_block is None:
        raise BadResponse("counter response has neither <ifnet> nor <hw>")
    ifnet_entries: list[Element] = []
    if ifnet_block is not None:
        # Releases differ: result/ifnet/ifnet/entry (doubled) or result/ifnet/entry (flat).
        ifnet_entries = ifnet_block.findall("ifnet/entry") + ifnet_block.findall("entry")
    hw_entries = hw_block.findall("entry") if hw_block is not None else []
    return CounterSnapshot(hw=_counter_map(hw_entries, "hw"), ifnet=_counter_map(ifnet_entries, "ifnet"))


# --------------------------------------------------------------------------------------
# show interface all / show interface NAME
# --------------------------------------------------------------------------------------


def _speed(value: str | None) -> int | None:
    # "ukn", "[n/a]", "auto" and "" are not speeds.
    return to_int(value)


def _aggregate_of(*entries: Element | None) -> str | None:
    for entry in entries:
        if entry is None:
            continue
        for tag in _AGGREGATE_TAGS:
            value = find_text(entry, tag)
            if value is not None and _AGGREGATE_RE.fullmatch(value):
                return value
    return None


def _vsys(value: str | None) -> str | None:
    # `show interface all` says "1", `show interface NAME` says "vsys1": normalise to "vsys1".
    if value is None:
        return None
    return f"vsys{value}" if value.isdigit() else value


def _ip(ifnet: Element | None) -> str | None:
    if ifnet is None:
        return None
    ip = find_text(ifnet, "ip")
    if ip is None:
        member = ifnet.find("addr/member")
        ip = find_text(member, ".") if member is not None else None
    return ip


def _merge(name: str, hw: Element | None, ifnet: Element | None) -> InterfaceInfo:
    """Build one InterfaceInfo from the hw (physical) and ifnet (logical) views of a name."""
    tag = find_int(ifnet, "tag") if ifnet is not None else None
    return InterfaceInfo(
        name=name,
        kind=interface_kind(name),
        state=find_text(hw, "state") if hw is not None else None,
        speed_mbps=_speed(find_text(hw, "speed")) if hw is not None else None,
        duplex=find_text(hw, "duplex") if hw is not None else None,
        zone=find_text(ifnet, "zone") if ifnet is not None else None,
        vsys=_vsys(find_text(ifnet, "vsys")) if ifnet is not None else None,
        ip=_ip(ifnet),
        mac=find_text(hw, "mac") if hw is not None else None,
        aggregate_group=_aggregate_of(hw, ifnet),
        tag=tag if tag else None,
    )


def parse_interfaces(text: str | bytes) -> tuple[InterfaceInfo, ...]:
    """Parse `show interface all`: hw entries are physical views, ifnet entries logical ones."""
    result = result_of(parse_envelope(text))
    if result.find("hw") is None and result.find("ifnet") is None:
        raise BadResponse("interface response has neither <hw> nor <ifnet>")
    hw: dict[str, Element] = {}
    ifnet: dict[str, Element] = {}
    order: list[str] = []
    for table, path in ((hw, "hw/entry"), (ifnet, "ifnet/entry")):
        for entry in result.findall(path):
            name = raw_text(entry, "name")
            if name is None:
                continue
            if name not in hw and name not in ifnet:
                order.append(name)
            table[name] = entry
    return tuple(_merge(name, hw.get(name), ifnet.get(name)) for name in order)


def parse_interface_detail(
    text: str | bytes,
) -> tuple[InterfaceInfo, InterfaceCounters | None, InterfaceCounters | None]:
    """Parse `show interface NAME` into (info, hw counters, ifnet counters).

    An unknown name arrives as status="success" with <result><error>: InterfaceNotFound.
    """
    result = result_of(parse_envelope(text))
    ifnet = result.find("ifnet")
    hw = result.find("hw")
    name = (raw_text(ifnet, "name") if ifnet is not None else None) or (
        raw_text(hw, "name") if hw is not None else None
    )
    if name is None:
        raise BadResponse("interface detail has no <ifnet/name> or <hw/name>")
    info = _merge(name, hw, ifnet)
    hw_counters = ifnet_counters = None
    if ifnet is not None:
        hw_entry = ifnet.find("counters/hw/entry")
        ifnet_entry = ifnet.find("counters/ifnet/entry")
        hw_counters = counters_from_entry(hw_entry, "hw") if hw_entry is not None else None
        ifnet_counters = counters_from_entry(ifnet_entry, "ifnet") if ifnet_entry is not None else None
    return info, hw_counters, ifnet_counters
