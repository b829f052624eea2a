"""The inventory job's work for one device: inventory and context, every 5 minutes."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from panfm.collector import acc
from panfm.collector.jobs import JobClient, Jobs
from panfm.collector.logs import LOG_CAP, LOG_TYPES, kept_fields, trim
from panfm.collector.network import connected_devices
from panfm.collector.security import EVENT_FIELDS, summarize
from panfm.models import ArpEntry, DhcpLease, GpUser, HaState, InterfaceInfo, License, SystemInfo, UserMapping
from panfm.xmlapi import ApiError

log = logging.getLogger("panfm.collector")

THREAT_SEVERITIES = ("critical", "high", "medium")
MAX_LOGS = 5000  # PAN-OS caps one log query at 5000 entries; counts above that read 5000


class SlowClient(JobClient, Protocol):
    def system_info(self) -> SystemInfo: ...
    def ha_state(self) -> HaState: ...
    def licenses(self) -> Sequence[License]: ...
    def interfaces(self) -> Sequence[InterfaceInfo]: ...
    def gp_users(self) -> Sequence[GpUser]: ...
    def start_report(self, name: str, *, start: str | None = None, end: str | None = None,
                     period: str | None = None, topn: int = 25, deadline_s: float | None = None) -> Any: ...
    def arp(self) -> Sequence[ArpEntry]: ...
    def dhcp_leases(self) -> Sequence[DhcpLease]: ...
    def user_mappings(self) -> Sequence[UserMapping]: ...


# Names (IP -> hostname) for hosts without a DHCP name, within a time budget: `ReverseDns.names`.
Resolver = Callable[[list[str], float], Mapping[str, str]]


class NotStarted(TimeoutError):
    """The inventory reached a thread only after its deadline: no call was made (the job was busy)."""


def inventory_phase(device_id: str, window_s: float) -> float:
    """Seconds into every window (epoch-aligned) at which this device's inventory is due.

    Derived from the id alone (a stable hash, not Python's salted `hash`), so it survives
    restarts and spreads a fleet evenly over the window instead of one burst.
    """
    slots = max(1, int(window_s * 1000))
    digest = hashlib.blake2b(device_id.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % slots) / 1000.0


def phase_due(device_ids: Iterable[str], since: float, until: float, window_s: float) -> list[str]:
    """Ids whose phase point (k × window + phase) falls in the half-open span (since, until].

    Consecutive spans that join end to start name every device exactly once per window, however
    the ticks fall; a span of a whole window or more (a tick held up that long) names everyone.
    """
    if until <= since:
        return []
    if until - since >= window_s:
        return sorted(device_ids)
    due = []
    for device_id in device_ids:
        phase = inventory_phase(device_id, window_s)
        last_point = math.floor((until - phase) / window_s) * window_s + phase  # latest point <= until
        if last_point > since:
            due.append(device_id)
    return sorted(due)


def device_clock(info: SystemInfo | None, now: float) -> datetime:
    """The firewall's local wall clock (log filters use it), else UTC `now`."""
    if info is not None and info.device_time:
        try:
            return datetime.strptime(" ".join(info.device_time.split()), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            pass
    return datetime.fromtimestamp(now, UTC).replace(tzinfo=None)


# A run's log window starts the second after the last one's end when that end is at most this many
# windows back; further back (an outage, a clock jump) the window is the last `window_s` seconds.
CATCH_UP_WINDOWS = 2


def window_start(until: datetime, window_s: float, after: datetime | None) -> datetime:
    """The first second of a run's log window; its last is `until` (both inclusive, whole seconds).

    `after` (the firewall's clock) is where this device's last counted window ended: this one
    starts the second after it, so consecutive windows neither overlap nor leave a gap, whatever
    each run's jitter, a late run or one that never started. Without it, or when it is not
    between `until` and `CATCH_UP_WINDOWS` windows back (the first run, a clock set back or
    forward, a long outage), the window is the last `window_s` seconds.
    """
    if after is not None and until - timedelta(seconds=CATCH_UP_WINDOWS * window_s) <= after < until:
        return after + timedelta(seconds=1)
    return until - timedelta(seconds=window_s - 1)


def window_query(since: datetime, extra: str = "", until: datetime | None = None) -> str:
    """A log filter for entries received since `since` (never "the last N logs"), and up to `until`.

    With `until` the query's newest end is fixed: its pages (`skip`) stay aligned while the
    firewall keeps logging.
    """
    query = f"( receive_time geq '{since:%Y/%m/%d %H:%M:%S}' )"
    if until is not None:
        query += f" and ( receive_time leq '{until:%Y/%m/%d %H:%M:%S}' )"
    return f"{query} and {extra}" if extra else query


def _fields(obj: Any) -> dict[str, Any]:
    """A response model as a plain dict: its fields are all scalars (str, int, bool, date, None).

    `dataclasses.asdict` deep-copies every value (dates through `copy.deepcopy`): a visible share
    of an inventory's CPU under the profiler (bench/profile_clock.py) for nothing.
    """
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def threat_counts(entries: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """Count threat log entries by severity (critical, high, medium)."""
    counts = dict.fromkeys(THREAT_SEVERITIES, 0)
    for entry in entries:
        severity = (entry.get("severity") or "").strip().lower()
        if severity in counts:
            counts[severity] += 1
    return counts


def gather_inventory(
    client: SlowClient,
    *,
    now: float,
    window_s: float,
    deadline: float,
    monotonic: Callable[[], float] = time.monotonic,
    pause: Callable[[], None] = lambda: None,
    resolver: Resolver | None = None,
    log_cap: int = LOG_CAP,
    early: Callable[[SystemInfo, dict[str, Any]], None] | None = None,
    acc_last: float | None = None,
    after: datetime | None = None,
) -> tuple[SystemInfo, dict[str, Any]]:
    """Run the slow calls against one device and return its system info and inventory document.

    System info must succeed (it carries serial and uptime for reset detection); the other
    parts are best effort and land in `errors` by name. `pause` runs before each call (the
    collector holds inventory there while a fast cycle runs). `log_cap`: system and traffic
    log entries fetched per type (the setting `log_fetch_cap`).

    `early(info, doc)`, when given, gets a copy of the document as soon as system info and
    interfaces (with their zones) are in, before the slower log queries and reports: a new
    firewall's interfaces then show up seconds after its first poll. `acc_last`: `now` of this
    device's last ACC report run (None: none yet); the reports run only when `acc_due` says so.
    `after`: the end (firewall's clock) of this device's last counted log window (`window_start`).
    When this run's threat and blocked-URL counts are both known, the document's `window_end`
    holds this window's end for the next run (the collector takes it out before it is stored);
    the window of a run whose counts failed is counted by the next run, with that run's own.
    """
    pause()
    if monotonic() >= deadline:  # queued or held past the job's deadline: make no call at all
        raise NotStarted("deadline exceeded before the first call")
    info = client.system_info()
    doc: dict[str, Any] = {"system": _fields(info), "errors": {}}
    errors: dict[str, str] = doc["errors"]

    def part(name: str, fn: Callable[[], Any], keep: bool = True) -> Any:
        pause()
        if monotonic() >= deadline:
            errors[name] = "deadline exceeded"
            return None
        try:
            value = fn()
        except Exception as exc:  # one part failing must not lose the others
            errors[name] = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            return None
        if keep:
            doc[name] = value
        return value

    part("interfaces", lambda: [_fields(i) for i in client.interfaces()])
    if early is not None:
        try:
            early(info, {**doc, "errors": dict(errors), "partial": True})
        except Exception:  # the early copy is a head start, never worth the inventory
            log.warning("early inventory write failed", exc_info=True)
    part("ha", lambda: _fields(client.ha_state()))
    part("licenses", lambda: [_fields(lic) for lic in client.licenses()])
    part("gp_users", lambda: len(client.gp_users()))
    until = device_clock(info, now).replace(microsecond=0)
    since = window_start(until, window_s, after)
    severity = "( " + " or ".join(f"( severity eq {s} )" for s in (*THREAT_SEVERITIES, "low")) + " )"

    def remaining() -> float:
        return max(1.0, deadline - monotonic())

    # The four log queries are enqueued together and run on the firewall while the network calls
    # are made; each is read after (one wait for all four instead of four: bench/clock_scale.py).
    jobs = Jobs(client, part)
    # Low too: the threat tiles count it; the inventory's `threats` (alerts) keeps critical to medium.
    jobs.start_log("threats", "threat", window_query(since, severity, until), MAX_LOGS, EVENT_FIELDS, remaining)
    jobs.start_log("blocked_urls", "url", window_query(since, "( action eq block-url )", until), MAX_LOGS,
                   EVENT_FIELDS, remaining)
    for log_type in LOG_TYPES:
        jobs.start_log(f"{log_type}_log", log_type, window_query(since, until=until), log_cap, kept_fields(log_type),
                       remaining)
    _network(client, doc, info, part, now=now, remaining=lambda: deadline - monotonic(), resolver=resolver)
    threats = jobs.read("threats", remaining)
    if threats is not None:
        doc["threats"] = threat_counts(threats)
    urls = jobs.read("blocked_urls", remaining)
    if urls is not None:
        doc["blocked_urls"] = len(urls)
    doc["security"] = summarize(threats, urls)
    if threats is not None and urls is not None:
        doc["window_end"] = until
    offset = (device_clock(info, now) - datetime.fromtimestamp(now, UTC).replace(tzinfo=None)).total_seconds()
    logs: dict[str, Any] = {}
    for log_type in LOG_TYPES:
        got = jobs.read(f"{log_type}_log", lambda: min(REPORT_DEADLINE_S, remaining()))
        if got is not None:
            logs[log_type] = trim(log_type, got, offset, log_cap)
    if logs:
        doc["logs"] = logs
        doc["log_cap"] = log_cap
    if acc_due(acc_last, now, window_s):
        span = window_s if acc_last is None else min(now - acc_last, ACC_MAX_SPAN_S)
        # Up to the log window's end: the reports' times are whole seconds too.
        _applications(client, doc, part, since=until - timedelta(seconds=span), until=until, remaining=remaining)
    else:
        doc["applications"] = {"skipped": True}  # the collector fills in what the last run found unavailable
    doc["window_s"] = int((until - since).total_seconds()) + 1  # what the counts cover, both ends' seconds included
    for lic in doc.get("licenses", []):
        for key in ("issued", "expires"):
            if lic.get(key) is not None:
                lic[key] = lic[key].isoformat()
    return info, doc


def _optional(fn: Callable[[], Sequence[Any]], absent: dict[str, str], name: str) -> Callable[[], Sequence[Any]]:
    """Call `fn`; a firewall without the feature (no DHCP server, no User-ID) answers an API error: empty."""

    def call() -> Sequence[Any]:
        try:
            return fn()
        except ApiError as exc:
            absent[name] = str(exc)[:200]
            return ()

    return call


def _network(
    client: SlowClient,
    doc: dict[str, Any],
    info: SystemInfo,
    part: Callable[..., Any],
    *,
    now: float,
    remaining: Callable[[], float],
    resolver: Resolver | None,
) -> None:
    """Add `connected_devices` (rows for the network store, popped before the inventory is stored) and a summary.

    Three calls, one after another on the device's one slow connection: ARP, DHCP leases,
    User-ID. Without an ARP table there is no current picture, so no rows this cycle.
    """
    absent: dict[str, str] = {}
    # Lambdas: a client without one of these methods fails that part only.
    arp = part("arp", lambda: client.arp(), keep=False)
    leases = part("dhcp", _optional(lambda: client.dhcp_leases(), absent, "dhcp"), keep=False)
    users = part("user_id", _optional(lambda: client.user_mappings(), absent, "user_id"), keep=False)
    if arp is None:
        return
    offset = (device_clock(info, now) - datetime.fromtimestamp(now, UTC).replace(tzinfo=None)).total_seconds()
    interfaces: list[Any] = doc["interfaces"] if isinstance(doc.get("interfaces"), list) else []
    rows = connected_devices(arp, leases or (), users or (), interfaces, now=now, clock_offset_s=offset)
    if resolver is not None and remaining() > 1.0:
        unnamed = [r["ip"] for r in rows if not r["dhcp_hostname"]]
        try:
            names = resolver(unnamed, min(2.0, remaining() - 1.0)) if unnamed else {}
        except Exception as exc:  # reverse DNS is a nicety: never worth the inventory
            doc["errors"]["dns"] = type(exc).__name__
            names = {}
        for r in rows:
            r["dns_name"] = names.get(r["ip"])
    doc["connected_devices"] = rows
    doc["network"] = {
        "arp": len(arp),
        "dhcp_leases": len(leases or ()),
        "user_ids": len(users or ()),
        "hosts": len(rows),
        "unavailable": absent,  # feature not on this firewall: an empty section, with the reason
    }


TOP_N = 25
REPORT_DEADLINE_S = 30.0
# The ACC reports run every 15 minutes (every third inventory), over the time since their last run
# (at most an hour): their tops are context for a person, and the alerts' threat and URL counts
# still come from the log queries of every 5-minute inventory (docs/clock.md).
ACC_INTERVAL_S = 900.0
ACC_MAX_SPAN_S = 3600.0
ACC_PARTS = ("applications", "app_categories", "acc_threats", "acc_url_categories", "acc_sources")


def acc_due(acc_last: float | None, now: float, window_s: float) -> bool:
    """Whether this inventory runs the ACC reports: none run yet, or `ACC_INTERVAL_S` since the last (±half a window).

    Inventories come every `window_s` at a device's phase, give or take a tick; the half window
    of slack makes every third 5-minute inventory the one that runs them.
    """
    return acc_last is None or now - acc_last >= ACC_INTERVAL_S - window_s / 2


def _num(row: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = (row.get(name) or "").strip()
        if value.isdigit():
            return int(value)
    return None


def _text(row: Mapping[str, str], *names: str) -> str | None:
    return next((row[n].strip() for n in names if (row.get(n) or "").strip()), None)


def app_rows(entries: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """ACC `top-app-summary` rows as the store keeps them (fields found by name, like every parser)."""
    out = []
    for row in entries:
        name = _text(row, "name", "app")
        if name:
            out.append({"name": name, "category": _text(row, "category-of-name", "category", "app-category"),
                        "risk": _num(row, "risk-of-name", "risk"), "bytes": _num(row, "nbytes", "bytes") or 0,
                        "sessions": _num(row, "nsess", "sessions", "count") or 0,
                        "sources": _num(row, "nsrc", "sources")})
    return out


def category_rows(entries: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """ACC `top-application-categories-summary` rows."""
    out = []
    for row in entries:
        name = _text(row, "category-of-name", "category", "name")
        if name:
            out.append({"name": name, "bytes": _num(row, "nbytes", "bytes") or 0,
                        "sessions": _num(row, "nsess", "sessions", "count") or 0})
    return out


def _applications(
    client: SlowClient, doc: dict[str, Any], part: Callable[..., Any], *, since: datetime, until: datetime,
    remaining: Callable[[], float],
) -> None:
    """Add `applications`: the ACC's tops of this window (since the last run).

    Five report jobs, enqueued together and then read one by one: top applications, categories,
    threats (`top-attacks-acc`), blocked URL categories and sources. Each is finished or stopped
    (`action=finish`) within what is left of the job's deadline (at most 30 s). A firewall without
    a report gets the reason.
    """
    start, end = f"{since:%Y/%m/%d %H:%M:%S}", f"{until:%Y/%m/%d %H:%M:%S}"
    absent: dict[str, str] = {}
    reports = {"applications": "top-app-summary", "app_categories": "top-application-categories-summary",
               "acc_threats": acc.THREATS_REPORT, "acc_url_categories": acc.URL_CATEGORIES_REPORT,
               "acc_sources": acc.SOURCES_REPORT}
    jobs = Jobs(client, part)

    def budget() -> float:
        return min(REPORT_DEADLINE_S, remaining())

    def enqueue(name: str) -> Callable[[], Any]:
        return lambda: client.start_report(name, start=start, end=end, topn=TOP_N, deadline_s=budget())

    for key, name in reports.items():
        jobs.start(key, _optional(enqueue(name), absent, key))
    apps, cats, threats, url_cats, sources = (
        jobs.read(key, budget, wrap=functools.partial(_optional, absent=absent, name=key)) for key in reports)
    got = (apps, cats, threats, url_cats, sources)
    if all(r is None for r in got):
        return
    doc["applications"] = {"start": start, "end": end, "apps": app_rows(apps or ()),
                           "categories": category_rows(cats or ()), "unavailable": absent,
                           # None: that report failed this run (its tops stay the logs' or unknown).
                           "threats": None if threats is None or "acc_threats" in absent else acc.threat_rows(threats),
                           "url_categories": None if url_cats is None or "acc_url_categories" in absent
                           else acc.url_category_rows(url_cats),
                           "sources": None if sources is None or "acc_sources" in absent else acc.source_rows(sources)}


def link_speeds(interfaces: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """Link speed (Mb/s) by interface name from an inventory's interface list."""
    return {str(i["name"]): i.get("speed_mbps") for i in interfaces}
