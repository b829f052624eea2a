"""System and traffic log entries of one inventory window, trimmed to the fields the Logs page shows.

The inventory job asks for the entries received since its previous run (`receive_time geq` on
the firewall's clock), newest first, at most `log_fetch_cap` (setting, default `LOG_CAP`) per
type and run: a busy firewall logs thousands of sessions a minute, and the Logs page is for
looking around, not an archive.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Mapping
from typing import Any

LOG_TYPES = ("system", "traffic")
LOG_CAP = 200
FIELDS = {
    "system": ("receive_time", "severity", "subtype", "eventid", "module", "opaque"),
    "traffic": ("receive_time", "src", "dst", "dport", "proto", "app", "action", "from", "to", "rule", "srcuser",
                "bytes", "session_end_reason"),
}
_MAX_TEXT = 512  # PAN-OS caps a system log description at 512 bytes


def entry_epoch(text: str | None, clock_offset_s: float) -> float | None:
    """UTC epoch of a firewall log time `YYYY/MM/DD HH:MM:SS` (the firewall's clock minus `clock_offset_s`)."""
    if not text:
        return None
    try:
        return calendar.timegm(time.strptime(text.strip(), "%Y/%m/%d %H:%M:%S")) - clock_offset_s
    except ValueError:
        return None


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
