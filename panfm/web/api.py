"""The data JSON API: version, health, throughput, overview, clock.

History is in `web_history`, interfaces in `web_interfaces`, settings in `web_settings`;
they reuse this module's helpers. The dependencies they all read (`WebContext`, `ctx()`) are
in `web/context.py`.

Every answer comes from the data folder: the sample database opened read-only for the one
request, `config.db` for devices. No request ever calls a firewall here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request

from panfm.models import ClockNode, DeviceSample, DeviceStatus
from panfm.ops import demo_marker
from panfm.timefmt import iso_ms as iso
from panfm.web import fleet_status as fleet
from panfm.web import uplinks
from panfm.web.context import WebContext, ctx
from panfm.web.security import api_error
from throughput_storage import (
    DatabaseError,
    StorageUnavailable,
    alerts_store,
    config_store,
)

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}
MAX_CUSTOM_RANGE_S = 400 * 86400
MAX_POINTS = 2000

bp = Blueprint("api", __name__)
log = logging.getLogger("panfm.web")


class UnknownDevice(Exception):
    """The device id names no configured device (404)."""


class BadRequest(Exception):
    """A query parameter is missing or malformed; `fields` names each problem."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def clock_node_json(node: ClockNode) -> dict[str, Any]:
    """One live clock as `/api/clock` lists it (times in ISO-8601 Z)."""
    return {
        "node_id": node.node_id,
        "host": node.host,
        "pid": node.pid,
        "started_at": iso(node.started_at),
        "heartbeat_at": iso(node.heartbeat_at),
        "devices": node.devices,
        "leader": node.leader,
    }


# ---- formatting ------------------------------------------------------------------------


def parse_iso(text: str, name: str) -> float:
    """Parse an ISO-8601 time in UTC (a Z or +00:00 suffix, or none) into epoch seconds."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest({name: "expected an ISO-8601 time such as 2026-01-31T12:00:00Z"}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.utcoffset() != UTC.utcoffset(None):
        raise BadRequest({name: "expected a UTC time (ending in Z)"})
    return parsed.timestamp()


def age(ts: float | None, now: float) -> float | None:
    return None if ts is None else round(max(0.0, now - ts), 1)


def sample_json(s: DeviceSample) -> dict[str, Any]:
    """The API shape of one device sample (None stays null: a gap is not a zero)."""
    return {
        "timestamp": iso(s.ts),
        "inbound_mbps": s.inbound_mbps,
        "outbound_mbps": s.outbound_mbps,
        "total_mbps": s.total_mbps,
        # Ingress over the counted ports: each packet once (total_mbps counts it twice).
        "through_mbps": uplinks.through(s),
        "uplink_in_mbps": None,
        "uplink_out_mbps": None,
        "inbound_pps": s.inbound_pps,
        "outbound_pps": s.outbound_pps,
        # The rates' error bound (the two samples' round trips) exceeds 2 % of their interval.
        "approx": s.approx,
        "sessions": {
            "active": s.sessions_active,
            "tcp": s.sessions_tcp,
            "udp": s.sessions_udp,
            "icmp": s.sessions_icmp,
            "max": s.sessions_max,
            "utilization_pct": s.sessions_utilization_pct,
            "cps": s.sessions_cps,
        },
        "cpu": {"dataplane_pct": s.cpu_dataplane_pct, "management_pct": s.cpu_management_pct},
        "memory_pct": s.memory_pct,
        "packet_buffer_pct": s.packet_buffer_pct,
    }


def status_json(status: DeviceStatus | None) -> dict[str, Any]:
    if status is None:
        return {"state": "unknown", "last_poll": None, "last_success": None, "last_error": None}
    return {
        "state": status.state,
        "last_poll": iso(status.last_poll),
        "last_success": iso(status.last_success),
        "last_error": status.last_error,
    }


def active_alert_counts(c: WebContext) -> dict[str, int] | None:
    """Active alerts per device id from alerts.db; None when there is no alerts database to read."""
    where = c.stores.alerts_db
    if not alerts_store.exists(where):
        return None
    try:
        return alerts_store.active_alert_counts(where)
    except DatabaseError as exc:
        # A damaged alerts.db leaves the counts unknown (null); the dashboard must still answer.
        log.warning("alerts database unreadable: %s", type(exc).__name__)
        return None


# ---- query parameters ------------------------------------------------------------------


def known_device_id() -> str:
    """The `device_id` parameter, checked against config.db (UnknownDevice answers 404)."""
    device_id = request.args.get("device_id", "")
    if not device_id:
        raise BadRequest({"device_id": "required"})
    if not device_exists(ctx(), device_id):
        raise UnknownDevice(device_id)
    return device_id


def known_device_uplinks() -> tuple[str, tuple[str, ...]]:
    """The `device_id` parameter and its marked uplinks, checked and read in one query (UnknownDevice: 404)."""
    device_id = request.args.get("device_id", "")
    if not device_id:
        raise BadRequest({"device_id": "required"})
    marked = config_store.device_uplinks(ctx().stores.backend, device_id)
    if marked is None:
        raise UnknownDevice(device_id)
    return device_id, marked


def device_exists(c: WebContext, device_id: str) -> bool:
    """Check one id among the devices (DeviceStore.get would decrypt every device's secrets per request)."""
    return config_store.device_exists(c.stores.backend, device_id)


def time_window(now: float) -> tuple[float, float, str]:
    """Read `range` (1h ... 90d) or `start`/`end` (ISO-8601 UTC) into an epoch window and a label."""
    rng = request.args.get("range")
    start_text, end_text = request.args.get("start"), request.args.get("end")
    if start_text or end_text:
        if rng:
            raise BadRequest({"range": "give either range or start and end, not both"})
        if not start_text:
            raise BadRequest({"start": "required with end"})
        start = parse_iso(start_text, "start")
        end = parse_iso(end_text, "end") if end_text else now
        if end <= start:
            raise BadRequest({"end": "must be after start"})
        if end - start > MAX_CUSTOM_RANGE_S:
            raise BadRequest({"start": f"the window may span at most {MAX_CUSTOM_RANGE_S // 86400} days"})
        return start, end, "custom"
    rng = rng or "1h"
    if rng not in RANGES:
        raise BadRequest({"range": "one of " + ", ".join(RANGES)})
    return now - RANGES[rng], now, rng


@bp.app_errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> Any:
    return api_error(400, "invalid", str(exc), fields=exc.fields)


@bp.app_errorhandler(UnknownDevice)
def unknown_device(exc: UnknownDevice) -> Any:
    return api_error(404, "not_found", "No such device.")


@bp.app_errorhandler(StorageUnavailable)
def storage_unavailable(exc: StorageUnavailable) -> Any:
    return api_error(503, "storage_unavailable", "The sample database cannot be read right now.")


# ---- routes ----------------------------------------------------------------------------


@bp.get("/api/version")
def version() -> Any:
    return jsonify({"version": ctx().version})


@bp.get("/api/health")
def health() -> Any:
    c = ctx()
    now = c.clock()
    heartbeat: float | None = None
    database = "ok"
    # First, on its own connection: the shared database answers (it comes back by itself).
    # When it does not, nothing else is read: each pooled read would wait the pool's 15 s.
    reason = c.database_away()
    if reason is not None:
        database = "unavailable"
    if database == "ok":
        try:
            with c.reader() as reader:
                if reader is None:
                    raise StorageUnavailable("no sample database yet")
                stats = reader.clock_stats()
                heartbeat = float(stats["heartbeat"]) if stats and stats.get("heartbeat") is not None else None
        except StorageUnavailable:
            database = "unavailable"
    age_s = age(heartbeat, now)
    limit = 3 * (c.current_settings() if database == "ok" else c.settings).refresh_interval
    ok = database == "ok" and age_s is not None and age_s <= limit
    body: dict[str, Any] = {
        "status": "ok" if ok else "degraded",
        "clock": {"last_heartbeat": iso(heartbeat), "age_seconds": age_s},
        "database": database,
    }
    if reason is not None:
        body["reason"] = reason
    return jsonify(body), 200 if ok else 503


@bp.get("/api/throughput")
def throughput() -> Any:
    device_id, marked = known_device_uplinks()
    c = ctx()
    body = None
    with c.reader() as reader:
        sample = reader.latest(device_id) if reader else None
        dataplanes = reader.dataplane_cpu(device_id) if reader and sample else None
        if sample is not None:
            body = sample_json(sample)
            body["cpu"].update(dataplane_json(sample, dataplanes))
            body.update(uplinks.live(reader, device_id, marked, sample))
    now = c.clock()
    return jsonify(
        {
            "device_id": device_id,
            "age_seconds": age(sample.ts if sample else None, now),
            "uplinks": list(marked),
            "sample": body,
        }
    )


def dataplane_json(sample: DeviceSample, stored: dict[str, Any] | None) -> dict[str, Any]:
    """Per-dataplane CPU and busiest core of this very sample (older values would not match its CPU)."""
    if stored is None or round(stored["ts"] * 1000) != round(sample.ts * 1000):
        return {"dataplanes": [], "busiest_core": None}
    return {"dataplanes": stored["dataplanes"], "busiest_core": stored["busiest_core"]}


@bp.get("/api/overview")
def overview() -> Any:
    c = ctx()
    devices = c.devices.list()
    latest: dict[str, DeviceSample] = {}
    statuses: dict[str, DeviceStatus] = {}
    wan: dict[str, dict[str, Any]] = {}
    with c.reader() as reader:
        if reader:
            latest = reader.latest_all()
            statuses = reader.device_statuses()
            # Only devices with marked uplinks cost a read of their interfaces.
            wan = {d.id: uplinks.live(reader, d.id, d.uplinks, latest[d.id])
                   for d in devices if d.uplinks and d.id in latest}
    alerts = active_alert_counts(c)
    now = c.clock()
    refresh = c.current_settings().refresh_interval
    out = []
    for d in devices:
        s = latest.get(d.id)
        firing = None if alerts is None else alerts.get(d.id, 0)
        out.append(
            {
                "id": d.id,
                "name": d.name,
                "enabled": d.enabled,
                "uplinks": list(d.uplinks),
                "status": status_json(statuses.get(d.id)),
                "sample": {**sample_json(s), **wan.get(d.id, {})} if s else None,
                "age_seconds": age(s.ts if s else None, now),
                # null: no alerts database to ask; a count only when one was read.
                "active_alerts": firing,
                "health": fleet.health(d.enabled, statuses.get(d.id), age(s.ts if s else None, now), firing, refresh),
            }
        )
    # The demo's backfilled week is simulated, not collected: the pages say so.
    return jsonify({"devices": out, "counts": fleet.counts(str(d["health"]) for d in out),
                    "demo_data": demo_marker(c.data_dir) is not None})


@bp.get("/api/clock")
def clock_status() -> Any:
    c = ctx()
    with c.reader() as reader:
        stats = reader.clock_stats() if reader else None
        by_node = reader.clock_stats_by_node() if reader else {}
    clocks, _owners, why = c.coordination()
    if len(clocks) == 1 and clocks[0].node_id not in by_node and len(by_node) == 1:
        by_node = {clocks[0].node_id: next(iter(by_node.values()))}  # one clock (SQLite): the one row is its
    # Each clock's own stats (PostgreSQL keeps a row per clock); `stats` stays the newest one's.
    extra = {"clocks": [{**clock_node_json(n), "stats": _own_stats(by_node.get(n.node_id))} for n in clocks],
             "clocks_error": why}
    if stats is None:
        return jsonify({"running": bool(clocks), "heartbeat": None, "age_seconds": None, "stats": None, **extra})
    heartbeat = stats.get("heartbeat")
    hb = float(heartbeat) if isinstance(heartbeat, int | float) else None
    age_s = age(hb, c.clock())
    running = age_s is not None and age_s <= 3 * c.current_settings().refresh_interval
    return jsonify({"running": running, "heartbeat": iso(hb), "age_seconds": age_s, "stats": _clock_stats_json(stats),
                    **extra})


def _own_stats(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if stats is None else _clock_stats_json(stats)


def _clock_stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    """The clock's document with its epoch times in the API's ISO-8601 Z form."""
    times = ("started_at", "last_execution", "last_error_time", "heartbeat")
    out = {k: iso(v) if k in times and isinstance(v, int | float) else v for k, v in stats.items()}
    out["recent"] = [{**r, "started": iso(r["started"])} for r in stats.get("recent") or []]
    return out
