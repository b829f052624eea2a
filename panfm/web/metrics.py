"""`GET /metrics`: Prometheus (text or OpenMetrics) from the database, never from a firewall.

Access is the route's own (no session, no CSRF): `Authorization: Bearer <metrics_token>`,
or anyone when `metrics_public` is true. Each app has its own `CollectorRegistry` holding one
`PanfmCollector`; a `?device=NAME` scrape uses a registry of its own for that request. The
reading happens here (`load_snapshot`), the families in `panfm/web/metrics_collector.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask_wtf.csrf import CSRFProtect
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from config import Settings
from panfm.web.metrics_collector import PanfmCollector, Snapshot, build_devices
from panfm.web.request_metrics import init_request_metrics
from throughput_storage import (
    ALERTS_DB,
    HISTORY_DB,
    DatabaseError,
    DocTable,
    SampleReader,
    StorageUnavailable,
    alerts_store,
    config_store,
)

bp = Blueprint("metrics", __name__)
log = logging.getLogger("panfm.web")

MAX_DEVICE_NAME = 200
# What a damaged, missing or half-written database raises while read: panfm_up 0, never a 500.
_READ_ERRORS = (StorageUnavailable, DatabaseError, OSError, ValueError, KeyError, TypeError)


def _plain(status: int, text: str, **headers: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain", headers=headers)


def load_snapshot(settings: Settings, device: str | None, now: float) -> Snapshot:
    """Read one scrape's data from the data folder, read-only; what cannot be read makes `up` false.

    `device` (a name) keeps that device only and leaves the clock series out; the caller has
    checked that it exists.
    """
    data_dir = settings.data_path
    up = True
    try:
        catalogue = config_store.device_catalogue(data_dir)
        rule_names = {str(r.get("id")): str(r.get("name") or r.get("id")) for r in
                      DocTable(data_dir, "alert_rules", time.time).list()}
    except _READ_ERRORS as exc:
        log.warning("/metrics: config.db unreadable: %s", type(exc).__name__)
        return Snapshot(up=False, now=now)
    if device is not None:
        catalogue = [d for d in catalogue if d["name"] == device]
    names = {d["id"]: d["name"] for d in catalogue}
    parts: dict[str, Any] = {"samples": {}, "statuses": {}, "dataplanes": {}, "inventories": {}, "baselines": {}}
    clock: dict[str, Any] | None = None
    try:
        if not (data_dir / HISTORY_DB).exists():
            raise StorageUnavailable("no sample database yet")
        with SampleReader.open(data_dir / HISTORY_DB) as reader:
            parts = {
                "samples": reader.latest_all(),
                "statuses": reader.device_statuses(),
                "dataplanes": reader.dataplane_cpu_all(),
                "inventories": reader.inventory_all(),
                "baselines": reader.baselines(),
            }
            clock = reader.clock_stats()
    except _READ_ERRORS as exc:
        log.warning("/metrics: sample database unreadable: %s", type(exc).__name__)
        up = False
    alerts: dict[tuple[str, str, str], int] = {}
    try:
        for a in alerts_store.active_alerts(data_dir / ALERTS_DB):
            if a["state"] != "firing" or a["device_id"] not in names:
                continue
            key = (names[a["device_id"]], rule_names.get(a["rule_id"], a["rule_id"]), str(a["severity"]))
            alerts[key] = alerts.get(key, 0) + 1
    except _READ_ERRORS as exc:
        log.warning("/metrics: alerts.db unreadable: %s", type(exc).__name__)
        up = False
    devices = build_devices(catalogue, mode=settings.metrics_interfaces, **parts)
    if device is not None:
        clock = None
    elif clock is None:
        clock = {}  # before the clock's first cycle: the device-state counts still say something
    return Snapshot(up=up, now=now, devices=devices, alerts=alerts, clock=clock)


def _authorized(settings: Settings) -> bool:
    """Bearer token in constant time, or open when metrics_public; an empty token never matches."""
    if settings.metrics_public:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    token = settings.metrics_token
    if not token or scheme.lower() != "bearer":
        return False
    # Digests first: compare_digest returns early on a length mismatch, which would tell the length.
    given_digest = hashlib.sha256(given.strip().encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(given_digest, hashlib.sha256(token.encode("utf-8")).digest())


def _device_query() -> str | Response | None:
    """The `device` query value, None for the whole fleet, or a 400 answer."""
    unknown = sorted(set(request.args) - {"device"})
    if unknown:
        return _plain(400, f"unknown query parameter {unknown[0][:40]!r}; only 'device' is understood")
    values = request.args.getlist("device")
    if not values:
        return None
    if len(values) > 1:
        return _plain(400, "give 'device' at most once")
    name = values[0]
    if not name or len(name) > MAX_DEVICE_NAME:
        return _plain(400, f"'device' must be a device name of 1 to {MAX_DEVICE_NAME} characters")
    return name


@bp.get("/metrics")
def metrics() -> Response:
    settings: Settings = current_app.config["PANFM_SETTINGS"]
    if not _authorized(settings):
        # The given token is never logged or echoed: it may be a real one with a typo.
        return _plain(401, "a bearer token (setting metrics_token) is needed for /metrics",
                      **{"WWW-Authenticate": 'Bearer realm="panfm-metrics"'})
    device = _device_query()
    if isinstance(device, Response):
        return device
    if device is None:
        registry: CollectorRegistry = current_app.extensions["panfm_metrics"]
    else:
        try:
            known = {d["name"] for d in config_store.device_catalogue(settings.data_path)}
        except _READ_ERRORS:
            known = {device}  # config.db unreadable: answer panfm_up 0 rather than a false 404
        if device not in known:
            return _plain(404, "no device of that name")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PanfmCollector(lambda: load_snapshot(settings, device, time.time())))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    resp = Response(encoder(registry), status=200)
    resp.headers["Content-Type"] = content_type
    resp.headers["Cache-Control"] = "no-store"
    return resp


def init_metrics(app: Flask, settings: Settings, csrf: CSRFProtect) -> None:
    """Give the app its own registry and collector, and the route (outside CSRF; its own access rule)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PanfmCollector(lambda: load_snapshot(settings, None, time.time())))
    init_request_metrics(app, registry)  # the web's own request metrics, on the same answer
    app.extensions["panfm_metrics"] = registry
    csrf.exempt(bp)
    app.register_blueprint(bp)
