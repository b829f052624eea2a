"""Parse what is on the network: DHCP server leases, User-ID mappings, and MAC addresses.

Pure, like every parser here: body in (through `parse_envelope`, so hostile or oversized XML
is refused the same way), models out. A lease or mapping without an address is skipped, not
fatal: one odd row must not cost the rest of the table.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element  # nosec B405

from panfm.models import DhcpLease, ReportJob, UserMapping
from panfm.xmlapi.parse_core import find_text, parse_envelope, raw_text, require_text, result_of, text_of, to_int

_HEX = re.compile(r"[0-9a-f]+")
_SEP = re.compile(r"[:\-.\s]")


def normalize_mac(text: str | None) -> str | None:
    """Read a MAC in any common spelling into lowercase colon form; None when it is not one.

    Accepts `00:1B:17:aa:bb:cc`, `00-1b-17-aa-bb-cc`, `001b.17aa.bbcc`, `001b17aabbcc` and
    unpadded groups such as `0:1b:17:a:b:c` (some tools drop leading zeros).
    """
    if text is None:
        return None
    value = text.strip().lower()
    if not value or len(value) > 40:
        return None
    groups = [g for g in _SEP.split(value) if g != ""]
    if not groups or not all(_HEX.fullmatch(g) for g in groups):
        return None
    if len(groups) == 6 and all(len(g) <= 2 for g in groups):
        digits = "".join(g.zfill(2) for g in groups)
    elif len(groups) == 3 and all(len(g) == 4 for g in groups):
        digits = "".join(groups)
    elif len(groups) == 1 and len(groups[0]) == 12:
        digits = groups[0]
    else:
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def parse_dhcp_leases(text: str | bytes) -> tuple[DhcpLease, ...]:
    """Parse `show dhcp server lease interface all` (one `<interface name=...>` per serving interface).

    No public capture of this answer exists; the shape follows the vendor's CLI columns (ip,
    mac, hostname, state, duration, leasetime). A lease outside an `<interface>` element (some
    releases answer a single-interface query flat) is read with an empty interface name.
    """
    result = result_of(parse_envelope(text))
    leases: list[DhcpLease] = []
    groups = [(iface.get("name") or find_text(iface, "name") or "", iface) for iface in result.iter("interface")
              if len(iface)]
    if not groups:
        groups = [("", result)]
    for name, parent in groups:
        for entry in parent.findall("entry"):
            ip = raw_text(entry, "ip") or entry.get("name")
            if not ip:
                continue
            state = find_text(entry, "state")
            leases.append(
                DhcpLease(
                    interface=name.strip(),
                    ip=ip.strip(),
                    mac=raw_text(entry, "mac") or "",
                    hostname=find_text(entry, "hostname"),
                    state=state.lower() if state else None,
                    duration_s=to_int(find_text(entry, "duration")),
                    lease_time=find_text(entry, "leasetime") or find_text(entry, "lease-time"),
                )
            )
    return tuple(leases)


def parse_user_mappings(text: str | bytes) -> tuple[UserMapping, ...]:
    """Parse `show user ip-user-mapping all` (flat `<entry>` list, a trailing `<count>`; empty when none)."""
    result = result_of(parse_envelope(text))
    out: list[UserMapping] = []
    for entry in result.findall("entry"):
        ip, user = raw_text(entry, "ip"), raw_text(entry, "user")
        if not ip or not user:
            continue
        out.append(UserMapping(ip=ip, user=user, source=find_text(entry, "type"), vsys=find_text(entry, "vsys")))
    return tuple(out)


def _report_rows(report: Element) -> tuple[dict[str, str], ...]:
    """The `<entry>` rows of a `<report>`: directly under it, or under its `<result>` (both are seen)."""
    entries = report.findall("entry") or report.findall("result/entry")
    return tuple({child.tag: text_of(child).strip() for child in entry} for entry in entries)


def parse_report_job(text: str | bytes) -> ReportJob:
    """Parse a `type=report&action=get` reply: ACT/PEND without rows, FIN with `<report>` rows.

    Rows are kept as element name -> text (`name`, `nbytes`, `nsess`, `threatid`, `count`, ...):
    the fields differ per report and per release, so the collector picks what it needs by name.
    """
    result = result_of(parse_envelope(text))
    job_id = require_text(result, "job/id")
    status = require_text(result, "job/status").upper()
    report = result.find("report")
    return ReportJob(job_id=job_id, status=status, entries=_report_rows(report) if report is not None else ())


def parse_report_at_once(text: str | bytes) -> ReportJob | None:
    """A report answered without a job (`<response><report>...`, as pan-python's capture shows), else None."""
    root = parse_envelope(text)
    report = root.find("report")
    if report is None:
        result = root.find("result")
        report = result.find("report") if result is not None and result.find("job") is None else None
    if report is None:
        return None
    return ReportJob(job_id="", status="FIN", entries=_report_rows(report))
