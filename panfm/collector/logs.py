"""System and traffic log entries of one inventory window, trimmed to the fields the Logs page shows.

The inventory job asks for the entries received since its previous run (`receive_time geq` on
the firewall's clock), newest first, at most `log_fetch_cap` (setting, default `LOG_CAP`) per
type and run: a busy firewall logs thousands of sessions a minute, and the Logs page is for
looking around, not an archive.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping
from typing import Any

LOG_TYPES = ("system", "traffic")
# 50 per type and 5-minute run: 600 traffic entries an hour per firewall to look around in. At 200,
# a traffic answer of real-size entries (101 fields, ~3.3 kB each) made the Logs page two thirds
# of an inventory's CPU, and a 2,000-firewall clock missed its cycle p95 (docs/benchmarks.md).
LOG_CAP = 50
FIELDS = {
    "system": ("receive_time", "severity", "subtype", "eventid", "module", "opaque"),
    "traffic": ("receive_time", "src", "dst", "dport", "proto", "app", "action", "from", "to", "rule", "srcuser",
                "bytes", "session_end_reason"),
}
_MAX_TEXT = 512  # PAN-OS caps a system log description at 512 bytes


_TIME_RE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})")


def kept_fields(log_type: str) -> frozenset[str]:
    """The fields `trim` reads of an entry of this type (the inventory asks the client for these only)."""
    return frozenset((*FIELDS[log_type], "logid", "seqno"))


def entry_epoch(text: str | None, clock_offset_s: float) -> float | None:
    """UTC epoch of a firewall log time `YYYY/MM/DD HH:MM:SS` (the firewall's clock minus `clock_offset_s`).

    Read by a regular expression and `datetime` (which refuses a 31 February), not
    `time.strptime`: a tenth of the CPU, for up to 400 entries per firewall and inventory.
    """
    match = _TIME_RE.fullmatch(text.strip()) if text else None
    if match is None:
        return None
    year, month, day, hour, minute, second = map(int, match.groups())
    if second > 61:  # 60 and 61 (leap seconds) are what strptime accepted
        return None
    try:
        when = datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.UTC)
    except ValueError:
        return None
    return when.timestamp() + second - clock_offset_s


def trim(log_type: str, entries: Iterable[Mapping[str, str]], clock_offset_s: float, cap: int = LOG_CAP
         ) -> list[dict[str, Any]]:
    """Keep the shown fields (clipped), the entry's id and its UTC time; at most `cap` entries."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        if len(out) >= cap:
            break
        doc = {k: (entry.get(k) or "").strip()[:_MAX_TEXT] or None for k in FIELDS[log_type]}
        ident = (entry.get("logid") or entry.get("seqno") or "").strip()
        out.append({"id": ident or f"{doc.get('receive_time')}-{len(out)}",
                    "epoch": entry_epoch(doc.get("receive_time"), clock_offset_s), **doc})
    return out
