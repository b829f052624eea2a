"""Threat and blocked-URL events of one inventory window: counts, the latest events, the top names.

Pure: the entries come from the windowed log queries the inventory job already runs (threat
logs of severity critical to low, URL logs with action block-url, `receive_time geq` the
window's start on the firewall's clock), so the tiles and the tops cost no extra call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

LATEST = 50  # events kept per firewall, kind and inventory run
TOP = 10
SEVERITIES = ("critical", "high", "medium", "low")
_MAX_TEXT = 300  # a log field is context for a human, never a payload
# The fields of a threat or URL log entry read here: the inventory asks the client for these only.
EVENT_FIELDS = frozenset({"receive_time", "time_generated", "severity", "threatid", "misc", "src", "dst",
                          "srcuser", "action", "category", "thr_category"})


def _clip(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:_MAX_TEXT] or None


def _event(entry: Mapping[str, str], kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "time": _clip(entry.get("receive_time") or entry.get("time_generated")),
        "severity": _clip((entry.get("severity") or "").lower()),
        "name": _clip(entry.get("threatid") or entry.get("misc")) if kind == "threat" else None,
        "src": _clip(entry.get("src")),
        "dst": _clip(entry.get("dst")),
        "user": _clip(entry.get("srcuser")),
        "action": _clip(entry.get("action")),
        "category": _clip(entry.get("category") if kind == "url" else entry.get("thr_category")),
        "url": _clip(entry.get("misc")) if kind == "url" else None,
    }


def summarize(threats: Sequence[Mapping[str, str]] | None, urls: Sequence[Mapping[str, str]] | None
              ) -> dict[str, Any]:
    """Counts per severity, blocked URLs, the latest events and the top threat names / URL categories.

    None for a part means its query failed (its count stays unknown: null, not zero).
    """
    out: dict[str, Any] = {"counts": None, "blocked_urls": None, "latest": [], "top_threats": [],
                           "top_url_categories": []}
    if threats is not None:
        severities = Counter((e.get("severity") or "").strip().lower() for e in threats)
        out["counts"] = {s: severities.get(s, 0) for s in SEVERITIES}
        out["latest"] += [_event(e, "threat") for e in threats[:LATEST]]
        names = Counter(n for n in ((e.get("threatid") or e.get("misc") or "").strip() for e in threats) if n)
        out["top_threats"] = [{"name": n[:_MAX_TEXT], "count": c} for n, c in names.most_common(TOP)]
    if urls is not None:
        out["blocked_urls"] = len(urls)
        out["latest"] += [_event(e, "url") for e in urls[:LATEST]]
        cats = Counter(c for c in ((e.get("category") or "").strip() for e in urls) if c)
        out["top_url_categories"] = [{"name": n[:_MAX_TEXT], "count": c} for n, c in cats.most_common(TOP)]
    return out
