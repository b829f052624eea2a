"""The applications and threats JSON API: ACC top applications, threat and blocked-URL tiles of a firewall.

The clock asks each firewall's ACC (`top-app-summary`, `top-application-categories-summary`,
`top-attacks-acc`, `top-blocked-url-categories-summary`, `top-src-summary`) for the traffic since
its previous inventory run and stores the rows per run in `network.db`;
a range here sums the runs inside it, so 15 minutes to 24 hours need no call to the firewall.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from panfm.timefmt import iso_s
from panfm.web.api import BadRequest, known_device_id
from panfm.web.context import ctx
from throughput_storage import DatabaseError, StorageUnavailable

bp = Blueprint("applications", __name__)

RANGES = {"15m": 900, "1h": 3600, "24h": 86400}


def _unavailable(device_id: str) -> dict[str, str]:
    """Why a firewall has no ACC rows (no licence, reports refused), from its last inventory."""
    with ctx().reader() as reader:
        inventory = reader.inventory(device_id) if reader else None
    apps = (inventory or {}).get("applications")
    errors = (inventory or {}).get("errors") or {}
    out = dict(apps.get("unavailable") or {}) if isinstance(apps, dict) else {}
    for key in ("applications", "app_categories", "acc_threats", "acc_url_categories", "acc_sources"):
        if isinstance(errors, dict) and key in errors:
            out[key] = str(errors[key])
    return out


@bp.get("/api/applications")
def applications() -> Any:
    """Top applications and categories by bytes of one firewall over 15m, 1h or 24h."""
    device_id = known_device_id()
    rng = request.args.get("range", "1h")
    if rng not in RANGES:
        raise BadRequest({"range": "one of " + ", ".join(RANGES)})
    c = ctx()
    now = c.clock()
    try:
        with c.stores.open_network_reader() as reader:
            found = reader.applications(device_id, now - RANGES[rng]) if reader else None
    except DatabaseError as exc:
        raise StorageUnavailable(f"network database query failed: {type(exc).__name__}") from None
    found = found or {"applications": [], "categories": [], "sources": [], "timeline": [], "as_of": None}
    return jsonify({
        "range": rng,
        "source": "acc",
        "as_of": iso_s(found["as_of"]),
        "applications": found["applications"],
        "categories": found["categories"],
        "top_sources": found["sources"],
        "timeline": [{"t": iso_s(p["ts"]), "bytes": p["bytes"], "sessions": p["sessions"]} for p in found["timeline"]],
        "unavailable": _unavailable(device_id),
    })


@bp.get("/api/threats")
def threats() -> Any:
    """Threat counts by severity, blocked URLs, the latest events and the top names of one firewall over a range."""
    device_id = known_device_id()
    rng = request.args.get("range", "1h")
    if rng not in RANGES:
        raise BadRequest({"range": "one of " + ", ".join(RANGES)})
    c = ctx()
    now = c.clock()
    try:
        with c.stores.open_network_reader() as reader:
            found = reader.security(device_id, now - RANGES[rng]) if reader else None
    except DatabaseError as exc:
        raise StorageUnavailable(f"network database query failed: {type(exc).__name__}") from None
    found = found or {"counts": None, "blocked_urls": None, "latest": [], "top_threats": [],
                      "top_url_categories": [], "as_of": None, "runs": 0,
                      "tops_from": {"top_threats": "logs", "top_url_categories": "logs"}}
    return jsonify({
        "range": rng,
        "as_of": iso_s(found["as_of"]),
        "counts": found["counts"] or {"critical": None, "high": None, "medium": None, "low": None},
        "blocked_urls": found["blocked_urls"],
        "latest": found["latest"],
        "top_threats": found["top_threats"],
        "top_url_categories": found["top_url_categories"],
        "tops_from": found["tops_from"],
        "runs": found["runs"],
        "cap_per_run": 5000,
    })


@bp.get("/api/network/summary")
def fleet_summary() -> Any:
    """Per firewall, for the overview: threats and blocked URLs of the last hour, top application, hosts."""
    c = ctx()
    now = c.clock()
    try:
        with c.stores.open_network_reader() as reader:
            found = reader.fleet_summary(now - 3600) if reader else {}
    except DatabaseError as exc:
        raise StorageUnavailable(f"network database query failed: {type(exc).__name__}") from None
    empty = {"threats": None, "blocked_urls": None, "top_application": None, "connected_devices": None}
    return jsonify({"window_s": 3600, "devices": {k: {**empty, **v} for k, v in found.items()}})
