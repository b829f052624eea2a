"""ACC dynamic report rows as the network store keeps them: threats, blocked URL categories, sources.

Pure. Fields are found by name with fallbacks (like every parser here): PAN-OS releases spell
them differently, and a row without its name is skipped, never fatal. Field names:
`top-attacks-acc` (the ACC's threat summary, every threat type) has `threatid` (the threat's
name; a bare number for some spyware and DNS signatures), `tid`, `subtype`, `count` and the
threat's `severity-of-threatid`, one row per threat and severity; `top-blocked-url-categories-summary`
has `category` and `count`; `top-src-summary` has `src`, `srcuser`, `resolved-src`, `nbytes`, `nsess`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Reports the inventory runs (PAN-OS names; the issue's `top-threats-summary` and `top-sources-summary`
# are not in the firewall's dynamic report list).
THREATS_REPORT = "top-attacks-acc"
URL_CATEGORIES_REPORT = "top-blocked-url-categories-summary"
SOURCES_REPORT = "top-src-summary"
SEVERITY_ORDER = ("critical", "high", "medium", "low", "informational")
_MAX_TEXT = 300  # a report field is context for a human, never a payload


def _text(row: Mapping[str, str], *names: str) -> str | None:
    value = next((row[n].strip() for n in names if (row.get(n) or "").strip()), None)
    return value[:_MAX_TEXT] if value else None


def _num(row: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = (row.get(name) or "").strip()
        if value.isdigit() and len(value) < 19:
            return int(value)
    return None


def _rank(severity: str | None) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def threat_rows(entries: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Top threats: counts summed per name over its severities; the highest severity shown; most first."""
    out: dict[str, dict[str, Any]] = {}
    for row in entries:
        name = _text(row, "threatid", "threat", "name", "tid")
        if not name:
            continue
        severity = (_text(row, "severity-of-threatid", "severity") or "").lower() or None
        top = out.setdefault(name, {"name": name, "count": 0, "severity": severity, "tid": _text(row, "tid"),
                                    "subtype": _text(row, "subtype", "category-of-threatid")})
        top["count"] += _num(row, "count", "nthreats", "ncount") or 0
        if _rank(severity) < _rank(top["severity"]):
            top["severity"] = severity
    return sorted(out.values(), key=lambda t: (-t["count"], _rank(t["severity"]), t["name"]))


def url_category_rows(entries: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Top blocked URL categories: blocked requests per category, most first."""
    out: dict[str, int] = {}
    for row in entries:
        name = _text(row, "category", "category-of-url", "url-category", "name")
        if name:
            out[name] = out.get(name, 0) + (_num(row, "count", "nurl", "nsess") or 0)
    return [{"name": n, "count": c} for n, c in sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))]


def source_rows(entries: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Top sources: address, its user (User-ID), bytes and sessions."""
    out = []
    for row in entries:
        src = _text(row, "src", "source", "name")
        if src:
            out.append({"name": src, "user": _text(row, "srcuser", "user"), "bytes": _num(row, "nbytes", "bytes") or 0,
                        "sessions": _num(row, "nsess", "sessions", "count") or 0})
    return out
