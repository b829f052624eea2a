"""Parser helpers: every public PAN-OS XML parser by name, the captured sample bodies, and odd element texts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import panfm.xmlapi.parsers as panos_xml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "panos"
SAMPLES = {path.name: path.read_bytes() for path in sorted(FIXTURES.glob("*.xml"))}

PARSERS: dict[str, Callable[[Any], object]] = {
    "parse_envelope": panos_xml.parse_envelope,
    "parse_job_enqueued": panos_xml.parse_job_enqueued,
    "parse_keygen": panos_xml.parse_keygen,
    "parse_version": panos_xml.parse_version,
    "parse_system_info": panos_xml.parse_system_info,
    "parse_system_resources": panos_xml.parse_system_resources,
    "parse_mp_cpu": panos_xml.parse_mp_cpu,
    "parse_session_info": panos_xml.parse_session_info,
    "parse_resource_monitor": panos_xml.parse_resource_monitor,
    "parse_counter_interface": panos_xml.parse_counter_interface,
    "parse_interfaces": panos_xml.parse_interfaces,
    "parse_interface_detail": panos_xml.parse_interface_detail,
    "parse_ha_state": panos_xml.parse_ha_state,
    "parse_licenses": panos_xml.parse_licenses,
    "parse_arp": panos_xml.parse_arp,
    "parse_gp_users": panos_xml.parse_gp_users,
    "parse_log_job": panos_xml.parse_log_job,
    "parse_report_job": panos_xml.parse_report_job,
    "parse_report_at_once": panos_xml.parse_report_at_once,
    "parse_dhcp_leases": panos_xml.parse_dhcp_leases,
    "parse_user_mappings": panos_xml.parse_user_mappings,
}

WEIRD_TEXT = ["", " ", "N/A", "ukn", "[n/a]", "unknown", "-1", "1" * 40, "abc", "1,2,,x", "%", "Never", "0x10", "\n"]
