"""Parse PAN-OS XML API responses: text in, `models` dataclasses out, no I/O.

Every parser takes the body (str or bytes) and raises only `PanosError` subclasses, for any
input (tree in `panos_xml_core`): `BadResponse` for a body that is not a usable response,
`ApiError` (and its kinds) when the device said no. Bodies over `MAX_BODY_BYTES` are refused
before parsing; DTDs and entity declarations are refused before the C parser runs. Values are found by element name,
never by position; `N/A`, `ukn`, `[n/a]`, `unknown` and empty elements read as "no value".
The dataplane parsers (resource monitor, counters, interfaces) live in `panos_xml_dataplane`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date

# The Element type only: every body is parsed by parse_core.parse_xml (declarations refused, then C).
from xml.etree.ElementTree import Element  # nosec B405

from panfm.models import ArpEntry, GpUser, HaState, License, LogJob, SessionInfo, SystemInfo, SystemResources
from panfm.xmlapi.parse_core import (
    MAX_BODY_BYTES,
    ApiError,
    AuthError,
    BadResponse,
    InterfaceNotFound,
    NoMatches,
    ObjectNotPresent,
    PanosError,
    find_int,
    find_text,
    parse_envelope,
    raw_text,
    require_int,
    require_text,
    response_message,
    result_of,
    text_of,
    to_int,
)
from panfm.xmlapi.parse_dataplane import (
    interface_kind,
    parse_counter_interface,
    parse_interface_detail,
    parse_interfaces,
    parse_resource_monitor,
)
from panfm.xmlapi.parse_network import (
    normalize_mac,
    parse_dhcp_leases,
    parse_report_at_once,
    parse_report_job,
    parse_user_mappings,
)

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "AuthError",
    "BadResponse",
    "InterfaceNotFound",
    "NoMatches",
    "ObjectNotPresent",
    "PanosError",
    "interface_kind",
    "normalize_mac",
    "parse_arp",
    "parse_counter_interface",
    "parse_dhcp_leases",
    "parse_envelope",
    "parse_gp_users",
    "parse_ha_state",
    "parse_interface_detail",
    "parse_interfaces",
    "parse_job_enqueued",
    "parse_keygen",
    "parse_licenses",
    "parse_log_job",
    "parse_mp_cpu",
    "parse_report_at_once",
    "parse_report_job",
    "parse_resource_monitor",
    "parse_session_info",
    "parse_system_info",
    "parse_system_resources",
    "parse_user_mappings",
    "parse_version",
]

_UPTIME_RE = re.compile(r"(?:(\d+)\s+days?,\s*)?(\d+):(\d{2}):(\d{2})")
_JOBID_RE = re.compile(r"jobid\s+(\d+)", re.IGNORECASE)
_CPU_LINE_RE = re.compile(r"^\s*%?Cpu\(s\)\s*:(.*)$", re.MULTILINE)
_CPU_FIELD_RE = re.compile(r"([\d.]+)\s*%?\s*(us|sy|ni|id|wa|hi|si|st)\b")
# The memory line only: "KiB Mem :", "MiB Mem :", "GiB Mem :" or the old "Mem:"; "Swap" never matches.
_MEM_LINE_RE = re.compile(r"^\s*(?:([KMGT])iB\s+)?Mem\s*:(.*)$", re.MULTILINE)
_MEM_FIELD_RE = re.compile(r"([\d.]+)\s*([kmgt]?)\s*(total|free|used|buff/cache|buffers)\b", re.IGNORECASE)
_UNIT = {"": 1024, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_MP_CPU_RE = re.compile(r"'cpu'\s*:\s*\{[^{}]*?'1minavg'\s*:\s*'?([\d.]+)")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
         "november", "december"),
        start=1,
    )
}
_LICENSE_DATE_RE = re.compile(r"([A-Za-z]+)\s+(\d{1,2}),\s*(\d{4})")


# --------------------------------------------------------------------------------------
# Keys, versions, jobs
# --------------------------------------------------------------------------------------


def parse_keygen(text: str | bytes) -> str:
    """Return the API key of a `type=keygen` reply."""
    return require_text(result_of(parse_envelope(text)), "key")


def parse_version(text: str | bytes) -> dict[str, str]:
    """Return the fields of a `type=version` reply (sw-version, model, serial, multi-vsys ...)."""
    result = result_of(parse_envelope(text))
    fields = {child.tag: text_of(child).strip() for child in result if len(child) == 0}
    if "sw-version" not in fields:
        raise BadResponse("<sw-version> is missing")
    return fields


def parse_job_enqueued(text: str | bytes) -> str:
    """Return the job id of an enqueue reply (code 19: log query, commit, download)."""
    root = parse_envelope(text)
    job = raw_text(root, "result/job")
    if job is not None and job.isdigit():
        return job
    # Some releases only say it in prose ("... job enqueued with jobid 18").
    match = _JOBID_RE.search(response_message(root))
    if match:
        return match.group(1)
    raise BadResponse("enqueue reply carries no job id")


def parse_log_job(text: str | bytes, fields: Collection[str] | None = None) -> LogJob:
    """Parse a `type=log&action=get` reply: ACT/PEND without entries, FIN with them.

    `fields` (names of an entry's elements or attributes) keeps only those in each entry: a
    log entry has ~50 fields and a query up to 5,000 entries, and reading every one of them
    into a dict was the largest part of an inventory's CPU after the XML parse itself.
    """
    result = result_of(parse_envelope(text))
    job_id = require_text(result, "job/id")
    status = require_text(result, "job/status").upper()
    entries: list[dict[str, str]] = []
    wanted = frozenset(fields) if fields is not None else None
    for entry in result.findall("log/logs/entry"):
        # Leaves read inline; a field with children (rare) through text_of.
        if wanted is None:
            values = {child.tag: ((child.text or "") if len(child) == 0 else text_of(child)).strip() for child in entry}
        else:
            values = {child.tag: ((child.text or "") if len(child) == 0 else text_of(child)).strip()
                      for child in entry if child.tag in wanted}
        for attribute, value in entry.attrib.items():
            if wanted is None or attribute in wanted:
                values.setdefault(attribute, value)  # logid is an attribute of <entry>
        entries.append(values)
    return LogJob(job_id=job_id, status=status, entries=tuple(entries))


# --------------------------------------------------------------------------------------
# System
# --------------------------------------------------------------------------------------


def parse_uptime(value: str | None) -> int | None:
    """Read "179 days, 5:07:34" (or "5:07:34") into seconds; None when unreadable."""
    if value is None:
        return None
    match = _UPTIME_RE.fullmatch(value.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _on_off(value: str | None) -> bool | None:
    if value is None:
        return None
    return {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}.get(value.lower())


def parse_system_info(text: str | bytes) -> SystemInfo:
    """Parse `show system info` (firewalls and Panorama)."""
    system = result_of(parse_envelope(text)).find("system")
    if system is None:
        raise BadResponse("<system> is missing")
    return SystemInfo(
        hostname=require_text(system, "hostname"),
        model=require_text(system, "model"),
        serial=require_text(system, "serial"),  # "unknown" on unlicensed VMs: kept, it is what the box says
        sw_version=require_text(system, "sw-version"),
        uptime_seconds=parse_uptime(raw_text(system, "uptime")),
        family=find_text(system, "family"),
        ip_address=find_text(system, "ip-address"),
        mac_address=find_text(system, "mac-address"),
        multi_vsys=_on_off(find_text(system, "multi-vsys")),
        operational_mode=find_text(system, "operational-mode"),
        device_time=raw_text(system, "time"),  # the device ends it with "\n" inside the element
        app_version=find_text(system, "app-version"),
        threat_version=find_text(system, "threat-version"),
        av_version=find_text(system, "av-version"),
        wildfire_version=find_text(system, "wildfire-version"),
        url_filtering_version=find_text(system, "url-filtering-version"),
    )


def parse_system_resources(text: str | bytes) -> SystemResources:
    """Parse the `top` text of `show system resources`: CPU split and the Mem line, never Swap."""
    top = text_of(result_of(parse_envelope(text)))
    cpu_line = _CPU_LINE_RE.search(top)
    if cpu_line is None:
        raise BadResponse("no %Cpu(s) line in the resources text")
    cpu = {name: float(number) for number, name in _CPU_FIELD_RE.findall(cpu_line.group(1)) if _is_float(number)}
    if not {"us", "sy", "id"} <= cpu.keys():
        raise BadResponse("the %Cpu(s) line lacks us, sy or id")
    mem_line = _MEM_LINE_RE.search(top)
    if mem_line is None:
        raise BadResponse("no Mem line in the resources text")
    line_unit = mem_line.group(1) or ""
    memory: dict[str, int] = {}
    for number, suffix, name in _MEM_FIELD_RE.findall(mem_line.group(2)):
        if _is_float(number):
            # Old top writes "4048016k total"; new top puts the unit before "Mem".
            unit = _UNIT[suffix.upper() or line_unit]
            memory[name.lower()] = round(float(number) * unit)
    if "total" not in memory or "free" not in memory:
        raise BadResponse("the Mem line lacks total or free")
    total, free = memory["total"], memory["free"]
    used = memory.get("used", max(0, total - free))
    return SystemResources(
        cpu_user_pct=cpu["us"],
        cpu_system_pct=cpu["sy"],
        cpu_idle_pct=cpu["id"],
        mem_total_bytes=total,
        mem_used_bytes=used,
        mem_free_bytes=free,
    )


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def parse_mp_cpu(text: str | bytes) -> float:
    """Return the management-plane CPU 1-minute average of `sys.monitor.s*.mp.exports`.

    Raises NoMatches when the filter matched nothing (another slot name on this platform).
    """
    state = text_of(result_of(parse_envelope(text)))
    match = _MP_CPU_RE.search(state)
    if match is None or not _is_float(match.group(1)):
        raise BadResponse("no 'cpu': { '1minavg': N } in the state text")
    return float(match.group(1))


def parse_session_info(text: str | bytes) -> SessionInfo:
    """Parse `show session info` (kbps/pps/cps are the device's own gauges)."""
    result = result_of(parse_envelope(text))
    return SessionInfo(
        active=require_int(result, "num-active"),
        tcp=require_int(result, "num-tcp"),
        udp=require_int(result, "num-udp"),
        icmp=require_int(result, "num-icmp"),
        max=require_int(result, "num-max"),
        kbps=require_int(result, "kbps"),
        pps=require_int(result, "pps"),
        cps=require_int(result, "cps"),
        installed=find_int(result, "num-installed"),
    )


def parse_ha_state(text: str | bytes) -> HaState:
    """Parse `show high-availability state` (firewall `group/...` or Panorama's flat form)."""
    result = result_of(parse_envelope(text))
    enabled = _on_off(find_text(result, "enabled")) is True  # missing means HA is off
    if not enabled:
        return HaState(enabled=False)
    group = result.find("group")
    base: Element = group if group is not None else result
    peer_ip = find_text(base, "peer-info/mgmt-ip") or find_text(base, "peer-info/ha1-ipaddr")
    return HaState(
        enabled=True,
        mode=find_text(base, "mode") or find_text(base, "local-info/mode"),
        local_state=find_text(base, "local-info/state"),
        peer_state=find_text(base, "peer-info/state"),
        running_sync=find_text(base, "running-sync"),
        peer_ip=peer_ip.split("/", 1)[0] if peer_ip else None,
    )


# --------------------------------------------------------------------------------------
# Licenses, ARP, GlobalProtect
# --------------------------------------------------------------------------------------


def parse_license_date(value: str | None) -> date | None:
    """Read "December 31, 2023" (English month names whatever the locale); None otherwise."""
    if value is None:
        return None
    match = _LICENSE_DATE_RE.fullmatch(value.strip())
    if match is None:
        return None
    month = _MONTHS.get(match.group(1).lower())
    if month is None:
        return None
    try:
        return date(int(match.group(3)), month, int(match.group(2)))
    except ValueError:
        return None


def parse_licenses(text: str | bytes) -> tuple[License, ...]:
    """Parse `request license info`; `expires` None means "Never"."""
    result = result_of(parse_envelope(text))
    licenses: list[License] = []
    for entry in result.findall("licenses/entry"):
        feature = raw_text(entry, "feature")
        if feature is None:
            continue
        licenses.append(
            License(
                feature=feature,
                description=raw_text(entry, "description"),
                issued=parse_license_date(raw_text(entry, "issued")),
                expires=parse_license_date(raw_text(entry, "expires")),
                expired=_on_off(find_text(entry, "expired")) is True,
            )
        )
    return tuple(licenses)


def parse_arp(text: str | bytes) -> tuple[ArpEntry, ...]:
    """Parse `show arp entry name='all'` (status padded like "  c  ", static ttl "N/A")."""
    result = result_of(parse_envelope(text))
    entries: list[ArpEntry] = []
    for entry in result.findall("entries/entry"):
        ip = raw_text(entry, "ip")
        if ip is None:
            continue
        entries.append(
            ArpEntry(
                interface=raw_text(entry, "interface") or "",
                ip=ip,
                mac=raw_text(entry, "mac") or "",
                port=find_text(entry, "port"),
                status=raw_text(entry, "status") or "",
                ttl=to_int(find_text(entry, "ttl")),
            )
        )
    return tuple(entries)


def parse_gp_users(text: str | bytes) -> tuple[GpUser, ...]:
    """Parse `show global-protect-gateway current-user` (one <entry> per connected user)."""
    result = result_of(parse_envelope(text))
    users: list[GpUser] = []
    for entry in result.findall("entry"):
        username = raw_text(entry, "username")
        if username is None:
            continue
        client = raw_text(entry, "client")
        users.append(
            GpUser(
                username=username,
                domain=find_text(entry, "domain"),
                computer=raw_text(entry, "computer"),
                client=" ".join(client.split()) if client else None,
                virtual_ip=find_text(entry, "virtual-ip"),
                public_ip=find_text(entry, "public-ip"),
                login_time_utc=find_int(entry, "login-time-utc"),
            )
        )
    return tuple(users)
