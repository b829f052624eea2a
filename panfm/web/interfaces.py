"""The interfaces JSON API: latest rates per interface and one interface's history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from panfm.timefmt import iso_ms as iso
from panfm.web.api import MAX_POINTS, BadRequest, UnknownDevice, known_device_id, time_window
from panfm.web.context import ctx
from panfm.xmlapi import interface_kind

bp = Blueprint("interfaces", __name__)


def _mbps(bps: float | None) -> float | None:
    return None if bps is None else bps / 1e6


def _kind(name: str) -> str:
    """Classify an interface by its PAN-OS name when the inventory has not said (tunnel.1 is a tunnel)."""
    kind = interface_kind(name)
    if kind != "other":
        return kind
    return "subinterface" if "." in name else "physical"


def _inventory_interfaces(inventory: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    raw = (inventory or {}).get("interfaces") or []
    if isinstance(raw, dict):
        raw = [{"name": k, **v} for k, v in raw.items() if isinstance(v, dict)]
    return {str(i["name"]): i for i in raw if isinstance(i, dict) and i.get("name")}


@bp.get("/api/interfaces")
def interfaces() -> Any:
    device_id = known_device_id()
    c = ctx()
    device = c.devices.get(device_id)
    if device is None:  # deleted between the check and now
        raise UnknownDevice(device_id)
    with c.reader() as reader:
        samples = {s.name: s for s in reader.interfaces_latest(device_id)} if reader else {}
        inventory = _inventory_interfaces(reader.inventory(device_id) if reader else None)
    out = []
    for name in sorted(set(samples) | set(inventory)):
        s, inv = samples.get(name), inventory.get(name, {})
        speed = inv.get("speed_mbps")
        in_mbps, out_mbps = _mbps(s.in_bps if s else None), _mbps(s.out_bps if s else None)
        busiest = max((v for v in (in_mbps, out_mbps) if v is not None), default=None)
        util = busiest / speed * 100.0 if busiest is not None and isinstance(speed, int | float) and speed > 0 else None
        counted = s.counted if s else (name in device.interfaces if device.interfaces else False)
        out.append(
            {
                "name": name,
                "kind": inv.get("kind") or _kind(name),
                "state": inv.get("state"),
                "speed_mbps": speed,
                "zone": inv.get("zone"),
                "inbound_mbps": in_mbps,
                "outbound_mbps": out_mbps,
                "utilization_pct": util,
                "errors_per_s": s.errors_per_s if s else None,
                "drops_per_s": s.drops_per_s if s else None,
                "counted": counted,
                "approx": s.approx if s else None,
            }
        )
    return jsonify({"interfaces": out})


_IFACE_RENAMES = {
    "in_bps": "inbound_mbps",
    "out_bps": "outbound_mbps",
    "in_pps": "inbound_pps",
    "out_pps": "outbound_pps",
}


def _interface_point(p: dict[str, Any]) -> dict[str, Any]:
    """Speak the same names and units as /api/interfaces (Mbps, inbound/outbound)."""
    out: dict[str, Any] = {"t": iso(p["t"])}
    for key, value in p.items():
        if key == "t":
            continue
        base, suffix = (key[:-4], "_max") if key.endswith("_max") else (key, "")
        if base in ("in_bps", "out_bps"):
            value = _mbps(value)
        out[_IFACE_RENAMES.get(base, base) + suffix] = value
    return out


@bp.get("/api/interfaces/history")
def interface_history() -> Any:
    device_id = known_device_id()
    name = request.args.get("name", "")
    if not name or len(name) > 128:
        raise BadRequest({"name": "required interface name"})
    c = ctx()
    start, end, _ = time_window(c.clock())
    with c.reader() as reader:
        if reader is None:
            return jsonify({"device_id": device_id, "name": name, "tier": "raw", "bucket_s": None, "points": []})
        hist = reader.interface_history(device_id, name, start, end, max_points=MAX_POINTS)
    return jsonify(
        {
            "device_id": device_id,
            "name": name,
            "tier": hist.tier,
            "bucket_s": hist.bucket_s,
            "points": [_interface_point(p) for p in hist.points],
        }
    )
