"""The logs JSON API: system and traffic log entries the clock fetched from a firewall.

The clock asks each firewall for the entries received since its previous inventory run (at
most `log_fetch_cap` per type and run: the answer's `cap`) and keeps them `log_retention_hours`; this reads them back,
newest first, never asking the firewall. The answer states the cap and the lag (how old the
newest entry was when fetched, plus up to one inventory interval).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from panfm.timefmt import iso_s
from panfm.web.api import BadRequest, known_device_id
from panfm.web.context import ctx
from throughput_storage import DatabaseError, StorageUnavailable

bp = Blueprint("logs", __name__)

RANGES = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400}
TYPES = ("system", "traffic")
INTERVAL_S = 300
MAX_ENTRIES = 500


def _last_fetch(device_id: str, log_type: str) -> tuple[str | None, int | None]:
    """From the firewall's last inventory: why this type is missing (if it is), and the cap that fetch used."""
    with ctx().reader() as reader:
        inventory = reader.inventory(device_id) if reader else None
    errors = (inventory or {}).get("errors") or {}
    reason = errors.get(f"{log_type}_log") if isinstance(errors, dict) else None
    used = (inventory or {}).get("log_cap")
    return (str(reason) if reason else None), (used if isinstance(used, int) else None)


@bp.get("/api/logs")
def logs() -> Any:
    """System or traffic log entries of one firewall over a range, newest first, `q` matching any field."""
    device_id = known_device_id()
    log_type = request.args.get("type", "")
    if log_type not in TYPES:
        raise BadRequest({"type": "system or traffic"})
    rng = request.args.get("range", "1h")
    if rng not in RANGES:
        raise BadRequest({"range": "one of " + ", ".join(RANGES)})
    q = request.args.get("q", "").strip()
    if len(q) > 200:
        raise BadRequest({"q": "at most 200 characters"})
    c = ctx()
    now = c.clock()
    try:
        with c.stores.open_network_reader() as reader:
            found = reader.logs(device_id, log_type, now - RANGES[rng], q, MAX_ENTRIES) if reader else None
    except DatabaseError as exc:
        raise StorageUnavailable(f"network database query failed: {type(exc).__name__}") from None
    entries, fetched = found if found is not None else ([], None)
    unavailable, used_cap = _last_fetch(device_id, log_type)
    newest = next((e["epoch"] for e in entries if e.get("epoch") is not None), None)
    for e in entries:
        e["time"] = iso_s(e.pop("epoch", None))
    return jsonify({
        "type": log_type,
        "range": rng,
        "entries": entries,
        "cap": c.current_settings().log_fetch_cap,  # what the next fetch asks for (setting log_fetch_cap)
        "last_fetch_cap": used_cap,  # what the newest fetch asked for (None before one ran)
        "interval_s": INTERVAL_S,
        "max_entries": MAX_ENTRIES,
        "fetched_at": iso_s(fetched),
        "lag_s": round(fetched - newest, 1) if fetched is not None and newest is not None else None,
        "unavailable": unavailable,
    })
