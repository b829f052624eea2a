"""`GET /metrics`: Prometheus (text or OpenMetrics) from the database, never from a firewall.

Access is the route's own (no session, no CSRF): `Authorization: Bearer <metrics_token>`,
or anyone when `metrics_public` is true. A whole-fleet scrape is `fleet_body`: `panfm_up`, the
device/interface/alert families (cached per worker and format in a `ScrapeCache`), the clock's,
then the app's own `CollectorRegistry` (the request metrics). A `?device=NAME` scrape uses a
registry of its own holding a `PanfmCollector`. The reading happens here (`load_snapshot`),
the families in `panfm/web/metrics_collector.py`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask_wtf.csrf import CSRFProtect
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.utils import floatToGoString

from config import Settings
from panfm.web.metrics_collector import (
    DeviceView,
    PanfmCollector,
    Snapshot,
    build_devices,
    fleet_families,
    head_families,
    interface_picker,
    tail_families,
)
from panfm.web.request_metrics import init_request_metrics
from throughput_storage import (
    ALERTS_DB,
    HISTORY_DB,
    DatabaseError,
    DocTable,
    SampleReader,
    StorageUnavailable,
    Stores,
    alerts_store,
    config_store,
)

bp = Blueprint("metrics", __name__)
log = logging.getLogger("panfm.web")

MAX_DEVICE_NAME = 200
MAX_CACHED_FORMATS = 4  # cached whole-fleet bodies per process (~5 MB each for 1,000 devices)
# What a damaged, missing or half-written database raises while read: panfm_up 0, never a 500.
_READ_ERRORS = (StorageUnavailable, DatabaseError, OSError, ValueError, KeyError, TypeError)


def _plain(status: int, text: str, **headers: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain", headers=headers)


def load_snapshot(settings: Settings, device: str | None, now: float, stores: Stores | None = None) -> Snapshot:
    """Read one scrape's data from the data folder, read-only; what cannot be read makes `up` false.

    `device` (a name) keeps that device only and leaves the clock series out; the caller has
    checked that it exists.
    """
    return _load(settings, device, now, None, stores)[0]


class ScrapeCache:
    """The encoded device, interface and alert families of the last whole-fleet scrape, per format.

    One per app (so per gunicorn worker). An entry is kept with the key it was built under:
    the format and `metrics_interfaces`, the sample database's change marker (read before its
    data), the device catalogue and the firing alerts; a scrape whose key differs rebuilds it.
    """

    def __init__(self) -> None:
        # Entries hold the states, not the views: no object graph for the garbage collector to walk.
        self._entries: dict[str, tuple[Any, tuple[str, ...], bytes]] = {}

    def get(self, variant: str, key: Any) -> tuple[tuple[DeviceView, ...], bytes] | None:
        """The devices (their states only: what the clock's families count) and the body, or None."""
        entry = self._entries.get(variant)
        if entry is None or entry[0] != key:
            return None
        return tuple(DeviceView(name="", state=state) for state in entry[1]), entry[2]

    def put(self, variant: str, key: Any, devices: tuple[DeviceView, ...], body: bytes) -> None:
        # The content type carries the Accept header's version: keep a few, not one per string sent.
        while len(self._entries) >= MAX_CACHED_FORMATS and variant not in self._entries:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[variant] = (key, tuple(d.state for d in devices), body)


def _load(settings: Settings, device: str | None, now: float,
          cache: tuple[ScrapeCache, str] | None, stores: Stores | None = None) -> tuple[Snapshot, Any, bytes | None]:
    """The snapshot, its cache key (None: not cacheable) and the cached fleet body on a hit."""
    data_dir = settings.data_path
    up = True
    try:
        backend = stores.backend if stores is not None else None  # None: the data folder's files
        catalogue = config_store.device_catalogue(backend or data_dir)
        rule_names = {str(r.get("id")): str(r.get("name") or r.get("id")) for r in
                      DocTable(data_dir, "alert_rules", time.time, backend).list()}
    except _READ_ERRORS as exc:
        log.warning("/metrics: config.db unreadable: %s", type(exc).__name__)
        return Snapshot(up=False, now=now), None, None
    if device is not None:
        catalogue = [d for d in catalogue if d["name"] == device]
    names = {d["id"]: d["name"] for d in catalogue}
    alerts: dict[tuple[str, str, str], int] = {}
    try:
        for a in alerts_store.active_alerts(stores.alerts_db if stores is not None else data_dir / ALERTS_DB):
            if a["state"] != "firing" or a["device_id"] not in names:
                continue
            key = (names[a["device_id"]], rule_names.get(a["rule_id"], a["rule_id"]), str(a["severity"]))
            alerts[key] = alerts.get(key, 0) + 1
    except _READ_ERRORS as exc:
        log.warning("/metrics: alerts.db unreadable: %s", type(exc).__name__)
        up = False
    parts: dict[str, Any] = {"samples": {}, "statuses": {}, "dataplanes": {}, "inventories": {}, "baselines": {}}
    clock: dict[str, Any] | None = None
    cache_key: Any = None
    hit: tuple[tuple[DeviceView, ...], bytes] | None = None
    try:
        on_postgres = stores is not None and stores.on_postgres
        if not on_postgres and not (data_dir / HISTORY_DB).exists():
            raise StorageUnavailable("no sample database yet")
        with (stores.open_sample_reader() if stores is not None and on_postgres
              else SampleReader.open(data_dir / HISTORY_DB)) as reader:
            if cache is not None and up:
                # The marker first: data committed after it only makes the entry rebuilt once more.
                cache_key = (settings.metrics_interfaces, reader.change_marker(),
                             tuple((d["id"], d["name"], d["interfaces"], d["enabled"]) for d in catalogue),
                             tuple(sorted(alerts.items())))
                hit = cache[0].get(cache[1], cache_key)
            if hit is None:
                parts = {
                    "samples": reader.latest_all(),
                    "statuses": reader.device_statuses(),
                    "dataplanes": reader.dataplane_cpu_all(),
                    "inventories": reader.inventory_all(),
                    "baselines": reader.baselines(interface_picker(catalogue, settings.metrics_interfaces)),
                }
            clock = reader.clock_stats()
    except _READ_ERRORS as exc:
        log.warning("/metrics: sample database unreadable: %s", type(exc).__name__)
        up = False
        cache_key, hit = None, None
        parts = {"samples": {}, "statuses": {}, "dataplanes": {}, "inventories": {}, "baselines": {}}
    devices = hit[0] if hit is not None else build_devices(catalogue, mode=settings.metrics_interfaces, **parts)
    if device is not None:
        clock = None
    elif clock is None:
        clock = {}  # before the clock's first cycle: the device-state counts still say something
    snap = Snapshot(up=up, now=now, devices=devices, alerts=alerts, clock=clock)
    return snap, (cache_key if up else None), (hit[1] if hit is not None else None)


class _Families:
    """A collector yielding given families (to encode one part of the answer)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


_EOF = b"# EOF\n"


def _encode(encoder: Callable[[CollectorRegistry], bytes], metrics: Iterable[Metric], openmetrics: bool) -> bytes:
    """Encode some families alone; OpenMetrics' `# EOF` is left off (only the whole answer ends with it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(metrics))
    body = encoder(registry)
    return body[: -len(_EOF)] if openmetrics and body.endswith(_EOF) else body


_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# The formats whose lines the lean encoder writes: legacy-valid names are written as they are.
_LEAN_TYPES = (CONTENT_TYPE_PLAIN_0_0_4,)
_LEAN_ESCAPING = (f"escaping={om.UNDERSCORES}", f"escaping={om.ALLOWUTF8}")


def _leanable(content_type: str) -> bool:
    return content_type in _LEAN_TYPES or content_type.endswith(_LEAN_ESCAPING)


def lean_encode(encoder: Callable[[CollectorRegistry], bytes], metrics: Iterable[Metric], openmetrics: bool) -> bytes:
    """The same bytes as `_encode` for PANfm's own families, written directly (a 43k-series fleet in a fraction).

    Each family's `# HELP`/`# TYPE` lines come from prometheus_client itself; its sample lines
    are written here when every name is a legacy-valid one and no sample carries an exemplar or
    a native histogram (else the whole family goes through prometheus_client). Label values are
    escaped as prometheus_client does (backslash, newline, double quote), labels sorted by name,
    values by its `floatToGoString`, timestamps in ms (text) or as the float's str (OpenMetrics).
    """
    out: list[str] = []
    escaped: dict[str, str] = {}
    for metric in metrics:
        samples = metric.samples
        names = {k for keys in {tuple(s.labels) for s in samples} for k in keys}
        if not _LEGACY_NAME.fullmatch(metric.name + "_total") or not all(_LEGACY_LABEL.fullmatch(k) for k in names) \
                or any(s.exemplar is not None or s.native_histogram is not None
                       or s.name not in (metric.name, metric.name + "_total") for s in samples):
            out.append(_encode(encoder, [metric], openmetrics).decode("utf-8"))
            continue
        header = copy.copy(metric)
        header.samples = []
        out.append(_encode(encoder, [header], openmetrics).decode("utf-8"))
        order: tuple[str, ...] | None = None
        for s in samples:
            labels = s.labels
            if labels:
                if order is None or len(order) != len(labels) or any(k not in labels for k in order):
                    order = tuple(sorted(labels))
                parts = []
                for k in order:
                    v = labels[k]
                    e = escaped.get(v)
                    if e is None:
                        e = escaped[v] = v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
                    parts.append(f'{k}="{e}"')
                labelstr = "{" + ",".join(parts) + "}"
            else:
                labelstr = ""
            if s.timestamp is None:
                stamp = ""
            elif openmetrics:
                stamp = f" {s.timestamp}"
            else:
                stamp = f" {int(float(s.timestamp) * 1000):d}"
            out.append(f"{s.name}{labelstr} {floatToGoString(s.value)}{stamp}\n")  # type: ignore[no-untyped-call]
    return "".join(out).encode("utf-8")


def fleet_body(settings: Settings, cache: ScrapeCache, own: CollectorRegistry,
               encoder: Callable[[CollectorRegistry], bytes], content_type: str, now: float,
               stores: Stores | None = None) -> bytes:
    """A whole-fleet answer: panfm_up, the (cached) fleet families, the clock's, then `own`'s (request metrics).

    Byte for byte what encoding one registry holding all of them gives: each family is encoded
    on its own lines, so the parts concatenate; OpenMetrics' `# EOF` comes last, from `own`.
    """
    openmetrics = content_type.startswith("application/openmetrics-text")
    snap, key, cached = _load(settings, None, now, (cache, content_type), stores)
    if cached is None:
        fleet = fleet_families(snap)
        cached = lean_encode(encoder, fleet, openmetrics) if _leanable(content_type) else _encode(
            encoder, fleet, openmetrics)
        if key is not None:
            cache.put(content_type, key, snap.devices, cached)
    return b"".join((_encode(encoder, head_families(snap), openmetrics), cached,
                     _encode(encoder, tail_families(snap), openmetrics), encoder(own)))


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
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    if device is None:
        stores = current_app.extensions["panfm"].stores
        body = fleet_body(settings, current_app.extensions["panfm_metrics_cache"],
                          current_app.extensions["panfm_metrics"], encoder, content_type, time.time(), stores)
    else:
        try:
            stores = current_app.extensions["panfm"].stores
            known = {d["name"] for d in config_store.device_catalogue(stores.backend)}
        except _READ_ERRORS:
            known = {device}  # config.db unreadable: answer panfm_up 0 rather than a false 404
        if device not in known:
            return _plain(404, "no device of that name")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PanfmCollector(lambda: load_snapshot(settings, device, time.time(), stores)))
        body = encoder(registry)
    resp = Response(body, status=200)
    resp.headers["Content-Type"] = content_type
    resp.headers["Cache-Control"] = "no-store"
    return resp


def init_metrics(app: Flask, settings: Settings, csrf: CSRFProtect) -> None:
    """Give the app its own registry (request metrics), scrape cache and the route (outside CSRF; own access rule).

    The database's families are not on the registry: `fleet_body` puts them before its output.
    """
    registry = CollectorRegistry(auto_describe=False)
    init_request_metrics(app, registry)  # the web's own request metrics, on the same answer
    app.extensions["panfm_metrics"] = registry
    app.extensions["panfm_metrics_cache"] = ScrapeCache()
    csrf.exempt(bp)
    app.register_blueprint(bp)
