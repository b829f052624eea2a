"""`GET /metrics`: Prometheus (text or OpenMetrics) from the database, never from a firewall.

Access is the route's own (no session, no CSRF): `Authorization: Bearer <metrics_token>` or a personal API token,
or anyone when `metrics_public` is true. A whole-fleet scrape is `fleet_body`: `panfm_up`, the
device/interface/alert families (rendered off the request and kept per worker and format by a
`FleetRenderer`, `panfm/web/metrics_render.py`), the clock's, then the app's own
`CollectorRegistry` (the request metrics); gzip when the scraper accepts it. A `?device=NAME`
scrape reads that device's rows only, through a registry of its own holding a `PanfmCollector`.
The families are built in `panfm/web/metrics_collector.py`, encoded in `metrics_encode.py`.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from flask import Blueprint, Flask, Response, current_app, request
from flask_wtf.csrf import CSRFProtect
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from config import Settings
from panfm.web.identity import current_user
from panfm.web.metrics_collector import PanfmCollector, Snapshot, head_families, tail_families
from panfm.web.metrics_encode import encode
from panfm.web.metrics_render import GZIP_LEVEL, READ_ERRORS, FleetRenderer, load
from panfm.web.request_metrics import init_request_metrics
from throughput_storage import Stores, config_store

bp = Blueprint("metrics", __name__)
log = logging.getLogger("panfm.web")

MAX_DEVICE_NAME = 200


def _plain(status: int, text: str, **headers: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain", headers=headers)


def load_snapshot(settings: Settings, device: str | None, now: float, stores: Stores | None = None) -> Snapshot:
    """Read one scrape's data from the data folder, read-only; what cannot be read makes `up` false.

    `device` (a name) keeps that device only (its rows only) and leaves the clock series out;
    the caller has checked that it exists.
    """
    return load(settings, device, now, None, stores)[0]


def fleet_body(renderer: FleetRenderer, own: CollectorRegistry, encoder: Callable[[CollectorRegistry], bytes],
               content_type: str, now: float, want_gzip: bool = False) -> bytes:
    """A whole-fleet answer: panfm_up, the fleet families (`renderer`), the clock's, then `own`'s (request metrics).

    Byte for byte what encoding one registry holding all of them gives: each family is encoded
    on its own lines, so the parts concatenate; OpenMetrics' `# EOF` comes last, from `own`.
    With `want_gzip` the answer is gzip: one member per part (RFC 1952 allows a series of
    members; Prometheus' and every HTTP client's gzip readers read them as one stream), so the
    fleet part is compressed once per render, not per scrape.
    """
    openmetrics = content_type.startswith("application/openmetrics-text")
    part = renderer.fleet(encoder, content_type, now, want_gzip)
    head = encode(encoder, head_families(part.snapshot), openmetrics)
    tail = encode(encoder, tail_families(part.snapshot), openmetrics) + encoder(own)
    if not want_gzip or part.gz is None:
        return b"".join((head, part.body, tail))
    return b"".join((gzip.compress(head, GZIP_LEVEL), part.gz, gzip.compress(tail, GZIP_LEVEL)))


def _authorized(settings: Settings) -> bool:
    """Bearer token in constant time, or open when metrics_public; an empty token never matches.

    A personal API token (`pfm_...`) of any role, or a logged-in session, also reads /metrics:
    the login gate has checked it already and set the request's user (every role, viewer
    included, may read what /metrics shows).
    """
    if settings.metrics_public:
        return True
    if current_user() is not None:
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
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    gzipped = False
    if device is None:
        gzipped = request.accept_encodings["gzip"] > 0
        body = fleet_body(current_app.extensions["panfm_metrics_renderer"], current_app.extensions["panfm_metrics"],
                          encoder, content_type, time.time(), gzipped)
    else:
        try:
            stores = current_app.extensions["panfm"].stores
            known = {d["name"] for d in config_store.device_catalogue(stores.backend)}
        except READ_ERRORS:
            known = {device}  # config.db unreadable: answer panfm_up 0 rather than a false 404
        if device not in known:
            return _plain(404, "no device of that name")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PanfmCollector(lambda: load_snapshot(settings, device, time.time(), stores)))
        body = encoder(registry)
    resp = Response(body, status=200)
    resp.headers["Content-Type"] = content_type
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Vary"] = "Accept, Accept-Encoding"
    if gzipped:
        resp.headers["Content-Encoding"] = "gzip"
    return resp


def init_metrics(app: Flask, settings: Settings, csrf: CSRFProtect) -> None:
    """Give the app its own registry (request metrics), fleet renderer and the route (outside CSRF; own access rule).

    The database's families are not on the registry: `fleet_body` puts them before its output.
    """
    registry = CollectorRegistry(auto_describe=False)
    init_request_metrics(app, registry)  # the web's own request metrics, on the same answer
    app.extensions["panfm_metrics"] = registry
    stores = app.extensions["panfm"].stores
    app.extensions["panfm_metrics_renderer"] = FleetRenderer(lambda: app.config["PANFM_SETTINGS"], stores)
    csrf.exempt(bp)
    app.register_blueprint(bp)
