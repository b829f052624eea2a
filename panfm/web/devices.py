"""Devices JSON API: list, add, edit, delete, and the explicit "test connection".

Validation answers 400 with a message per field (`device_input.py`). Credentials are written
encrypted by `config_store` and never come back in any answer. "Test connection"
(`connection_check.py`, routed on this blueprint) is the one place the web talks to a firewall,
with a short timeout and a coarse answer (never a body or a raw exception).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify

from panfm.models import DeviceConfig, DeviceStatus
from panfm.web.api import BadRequest, UnknownDevice, status_json
from panfm.web.audit import record
from panfm.web.connection_check import test_connection
from panfm.web.context import ctx
from panfm.web.device_input import _body, device_from_body, same_target
from panfm.web.identity import current_user
from throughput_storage import IntegrityError

log = logging.getLogger("panfm.web")

bp = Blueprint("devices", __name__)


# ---- listing ---------------------------------------------------------------------------


def _info(inventory: dict[str, Any] | None) -> dict[str, Any] | None:
    """Pick the system facts from the inventory job's inventory (absent until it ran)."""
    if not inventory:
        return None
    system = inventory.get("system") or inventory.get("system_info") or {}
    ha = inventory.get("ha") or inventory.get("ha_state") or {}
    if not isinstance(system, dict):
        system = {}
    return {
        "hostname": system.get("hostname"),
        "model": system.get("model"),
        "serial": system.get("serial"),
        "sw_version": system.get("sw_version"),
        "uptime_seconds": system.get("uptime_seconds"),
        "ha_state": (ha.get("local_state") if isinstance(ha, dict) else None),
    }


def device_json(
    d: DeviceConfig, status: DeviceStatus | None, inventory: dict[str, Any] | None, polled_by: str | None = None
) -> dict[str, Any]:
    """The API shape of a device: never a credential, only which kind is stored; `polled_by`: the clock holding it."""
    return {
        "id": d.id,
        "name": d.name,
        "host": d.host,
        "port": d.port,
        "enabled": d.enabled,
        "interfaces": list(d.interfaces),
        "uplinks": list(d.uplinks),
        "auth": "api_key" if d.api_key else "password",
        "tls": {"mode": d.tls.mode, "fingerprint_sha256": d.tls.fingerprint_sha256},
        "status": status_json(status),
        "info": _info(inventory),
        "polled_by": polled_by,
    }


@bp.get("/api/devices")
def list_devices() -> Any:
    c = ctx()
    devices = c.devices.list()
    statuses: dict[str, DeviceStatus] = {}
    inventories: dict[str, dict[str, Any]] = {}
    with c.reader() as reader:
        if reader:
            statuses = reader.device_statuses()
            inventories = reader.inventory_all()
    _clocks, owners, _why = c.coordination()
    return jsonify({"devices": [device_json(d, statuses.get(d.id), inventories.get(d.id), owners.get(d.id))
                                for d in devices]})


@bp.get("/api/devices/<device_id>")
def get_device(device_id: str) -> Any:
    c = ctx()
    device = c.devices.get(device_id)
    if device is None:
        raise UnknownDevice(device_id)
    with c.reader() as reader:
        status = reader.device_statuses().get(device_id) if reader else None
        inventory = reader.inventory(device_id) if reader else None
    _clocks, owners, _why = c.coordination()
    return jsonify(device_json(device, status, inventory, owners.get(device_id)))


def _duplicate(device: DeviceConfig) -> BadRequest | None:
    for other in ctx().devices.list():
        if other.id == device.id:
            continue
        if other.name == device.name:
            return BadRequest({"name": "another device already has this name"})
        if (other.host, other.port) == (device.host, device.port):
            return BadRequest({"host": f"another device ({other.name}) already uses this host and port"})
    return None


@bp.post("/api/devices")
def add_device() -> Any:
    body = _body()
    device = device_from_body(body, None)
    if dup := _duplicate(device):
        raise dup
    try:
        device_id = ctx().devices.add(device)
    except IntegrityError:
        # Another request added the same name or host:port between the check and the insert.
        raise BadRequest({"name": "a device with this name or host and port already exists"}) from None
    log.info("device %s added (%s:%d)", device_id, device.host, device.port)
    record("device.create", device_id, body)
    return jsonify({"id": device_id}), 201


@bp.put("/api/devices/<device_id>")
def update_device(device_id: str) -> Any:
    c = ctx()
    current = c.devices.get(device_id)
    if current is None:
        raise UnknownDevice(device_id)
    body = _body()
    device = device_from_body(body, current)
    if dup := _duplicate(device):
        raise dup
    try:
        if not c.devices.update(device):
            raise UnknownDevice(device_id)
    except IntegrityError:
        raise BadRequest({"name": "a device with this name or host and port already exists"}) from None
    if not same_target(current, device.host, device.port, device.tls):
        user = current_user()
        log.info(
            "device %s moved by %r: %s:%d -> %s:%d (TLS %s -> %s), with credentials given again",
            device_id, user.username if user else None, current.host, current.port, device.host, device.port,
            current.tls.mode, device.tls.mode,
        )
    record("device.update", device_id, body)
    return jsonify({"id": device_id})


@bp.delete("/api/devices/<device_id>")
def delete_device(device_id: str) -> Any:
    if not ctx().devices.remove(device_id):
        raise UnknownDevice(device_id)
    log.info("device %s deleted", device_id)
    record("device.delete", device_id)
    return jsonify({"deleted": device_id})


# ---- test connection (the work is in connection_check.py) ------------------------------

bp.post("/api/devices/test")(test_connection)
