"""The connected-devices JSON API: who is on the network behind each firewall, and the admin's notes per MAC.

Answers come from `network.db` (written by the clock) and the per-MAC metadata in `config.db`
(written here); no request calls a firewall. Reads are for every signed-in user; the metadata
edit (PUT) is a change: CSRF-checked like every change (the roles work marks it for editors).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request

from panfm.timefmt import iso_s
from panfm.web.api import BadRequest, UnknownDevice, device_exists
from panfm.web.context import ctx
from panfm.xmlapi import normalize_mac
from throughput_storage import DatabaseError, MetadataStore, StorageUnavailable, config_store

bp = Blueprint("network", __name__)

SORT_KEYS = ("ip", "mac", "hostname", "vendor", "interface", "vlan", "zone", "user", "first_seen", "last_seen",
             "device", "lease_expires")
FILTERS = ("zone", "vlan", "interface", "vendor", "user", "hostname_source")
MAX_PER_PAGE = 1000
MAX_Q = 200
LIMITS = {"name": 100, "comment": 1000, "location": 100}
MAX_TAGS, MAX_TAG = 20, 40
CSV_COLUMNS = ("device", "device_id", "ip", "mac", "vendor", "hostname", "hostname_source", "interface", "vlan",
               "zone", "user", "static", "randomized_mac", "first_seen", "last_seen", "lease_expires",
               "name", "comment", "tags", "location")


def _metadata() -> MetadataStore:
    c = ctx()
    return c.stores.metadata()


def _ip_key(ip: str) -> tuple[int, ...] | tuple[int, str]:
    """Sort IPv4 numerically (10.0.0.9 before 10.0.0.10), anything else after, by text."""
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return (0, *(int(p) for p in parts))
    return (1, ip)


def shape(row: dict[str, Any], metadata: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The API form of one stored row: hostname by precedence DHCP, the admin's name, reverse DNS."""
    meta = metadata or {"name": None, "comment": None, "tags": [], "location": None}
    if row.get("dhcp_hostname"):
        hostname, source = row["dhcp_hostname"], "dhcp"
    elif meta.get("name"):
        hostname, source = meta["name"], "custom"
    elif row.get("dns_name"):
        hostname, source = row["dns_name"], "dns"
    else:
        hostname, source = None, None
    return {
        "device_id": row["device_id"],
        "device": names.get(row["device_id"]),
        "mac": row["mac"],
        "ip": row["ip"],
        "vendor": row["vendor"],
        "hostname": hostname,
        "hostname_source": source,
        "dhcp_hostname": row["dhcp_hostname"],
        "dns_name": row["dns_name"],
        "interface": row["interface"],
        "vlan": row["vlan"],
        "zone": row["zone"],
        "user": row["user"],
        "static": row["static"],
        "first_seen": iso_s(row["first_seen"]),
        "last_seen": iso_s(row["last_seen"]),
        "lease_expires": iso_s(row["lease_expires"]),
        "randomized_mac": row["randomized_mac"],
        "metadata": meta,
        "_sort": {"first_seen": row["first_seen"], "last_seen": row["last_seen"],
                  "lease_expires": row["lease_expires"]},
    }


def _matches(device: dict[str, Any], q: str) -> bool:
    meta = device["metadata"]
    hay = [device.get(k) for k in ("ip", "mac", "vendor", "hostname", "dhcp_hostname", "dns_name", "interface",
                                   "zone", "user", "device")]
    hay += [meta.get("name"), meta.get("comment"), meta.get("location"), *meta.get("tags", [])]
    if device["vlan"] is not None:
        hay.append(str(device["vlan"]))
    return any(q in str(v).lower() for v in hay if v)


def _sort_key(key: str) -> Callable[[dict[str, Any]], Any]:
    if key == "ip":
        return lambda d: _ip_key(d["ip"])
    if key in ("first_seen", "last_seen", "lease_expires"):
        return lambda d: (d["_sort"][key] is None, d["_sort"][key] or 0.0)
    if key == "vlan":
        return lambda d: (d["vlan"] is None, d["vlan"] or 0)
    return lambda d: (d.get(key) is None, str(d.get(key) or "").lower(), _ip_key(d["ip"]))


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadRequest({name: f"an integer from {low} to {high}"})
    return int(raw)


def _query() -> tuple[str | None, str, list[tuple[str, str]], str, bool, int, int, bool]:
    device_id = request.args.get("device_id") or None
    q = request.args.get("q", "").strip().lower()
    if len(q) > MAX_Q:
        raise BadRequest({"q": f"at most {MAX_Q} characters"})
    if device_id is None and not q and request.args.get("fleet") != "1":
        raise BadRequest({"device_id": "required (or q=TEXT, or fleet=1, to search every firewall)"})
    if device_id is not None and not device_exists(ctx(), device_id):
        raise UnknownDevice(device_id)
    sort = request.args.get("sort", "ip")
    if sort not in SORT_KEYS:
        raise BadRequest({"sort": "one of " + ", ".join(SORT_KEYS)})
    order = request.args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise BadRequest({"order": "asc or desc"})
    seen = request.args.get("seen", "current")
    if seen not in ("current", "all"):
        raise BadRequest({"seen": "current or all"})
    filters = [(f, request.args[f].strip().lower()) for f in FILTERS if request.args.get(f, "").strip()]
    page = _int_arg("page", 1, 1, 1_000_000)
    per_page = _int_arg("per_page", 100, 1, MAX_PER_PAGE)
    return device_id, q, filters, sort, order == "desc", page, per_page, seen == "current"


def _selected() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    device_id, q, filters, sort, desc, page, per_page, current = _query()
    c = ctx()
    now = c.clock()
    names = config_store.device_names(c.stores.backend)
    try:
        with c.stores.open_network_reader() as reader:
            rows = reader.devices(now, device_id, current=current) if reader else []
            snapshots = reader.snapshots() if reader else {}
    except DatabaseError as exc:
        raise StorageUnavailable(f"network database query failed: {type(exc).__name__}") from None
    metadata = _metadata().all()
    devices = [shape(r, metadata.get(r["mac"], {}), names) for r in rows if r["device_id"] in names]
    if q:
        devices = [d for d in devices if _matches(d, q)]
    for name, value in filters:
        devices = [d for d in devices if str(d.get(name) if d.get(name) is not None else "").lower() == value]
    if request.args.get("randomized") in ("0", "1"):
        devices = [d for d in devices if d["randomized_mac"] is (request.args["randomized"] == "1")]
    if request.args.get("static") in ("0", "1"):
        devices = [d for d in devices if d["static"] is (request.args["static"] == "1")]
    devices.sort(key=_sort_key(sort), reverse=desc)
    as_of = {k: iso_s(v["ts"]) for k, v in snapshots.items() if device_id is None or k == device_id}
    info = {"total": len(devices), "page": page, "per_page": per_page, "sort": sort,
            "order": "desc" if desc else "asc", "as_of": as_of}
    return devices, info


@bp.get("/api/connected-devices")
def connected_devices() -> Any:
    """Connected devices of one firewall (`device_id`) or every firewall (`q`, `fleet=1`): filter, sort, page, CSV."""
    devices, info = _selected()
    for d in devices:
        d.pop("_sort", None)
    if request.args.get("format") == "csv":
        return _csv(devices)
    start = (info["page"] - 1) * info["per_page"]
    return jsonify({"devices": devices[start:start + info["per_page"]], **info})


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (=, +, -, @ lead a formula)."""
    text = "" if value is None else ("yes" if value is True else "no" if value is False else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(devices: list[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for d in devices:
        meta = d["metadata"]
        flat = {**d, "name": meta.get("name"), "comment": meta.get("comment"),
                "tags": " ".join(meta.get("tags") or []), "location": meta.get("location")}
        writer.writerow([_cell(flat.get(col)) for col in CSV_COLUMNS])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="connected-devices.csv"'})


def _clean_text(value: Any, field: str, limit: int, errors: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[field] = "a string or null"
        return None
    text = value.strip()
    if len(text) > limit:
        errors[field] = f"at most {limit} characters"
    elif any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in text):
        errors[field] = "contains control characters"
    return text or None


def validate_metadata(body: Any) -> dict[str, Any]:
    """Check a metadata change: any of name, comment, location (text or null) and tags (a list of words)."""
    if not isinstance(body, dict):
        raise BadRequest({"body": "a JSON object"})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in LIMITS:
            out[key] = _clean_text(value, key, LIMITS[key], errors)
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                errors["tags"] = "a list of strings"
                continue
            tags = list(dict.fromkeys(t.strip() for t in value if t.strip()))
            if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG or any(unicodedata.category(c) in ("Cc", "Cs") for c in t)
                                           for t in tags):
                errors["tags"] = f"at most {MAX_TAGS} tags of at most {MAX_TAG} printable characters"
            out["tags"] = tags
        else:
            errors[str(key)[:64]] = "unknown field"
    if errors:
        raise BadRequest(errors)
    if not out:
        raise BadRequest({"body": "one of name, comment, tags, location"})
    return out


@bp.put("/api/connected-devices/metadata/<mac>")
def put_metadata(mac: str) -> Any:
    """Set any of name, comment, tags, location of one MAC (any spelling; stored lowercase, colon-separated)."""
    normal = normalize_mac(mac)
    if normal is None:
        raise BadRequest({"mac": "a MAC address such as 00:1b:17:aa:bb:cc"})
    stored = _metadata().update(normal, validate_metadata(request.get_json(silent=True)))
    return jsonify({"mac": normal, **stored})
