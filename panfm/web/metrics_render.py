"""The whole-fleet `/metrics` body, rendered off the request: `FleetRenderer`, and the database reads (`load`).

A scrape of 1,000 firewalls is ~43k series (126k with every interface): reading and encoding
them takes ~0.35 s of CPU, too slow for a scrape that should answer in well under 200 ms.
So each web worker keeps the encoded device, interface and alert families per format
(`FleetRenderer`), keyed by the sample database's change marker, the device catalogue, the
firing alerts and `metrics_interfaces`, and a daemon thread of the worker re-renders them as
soon as that key changes (it checks every `POLL_S`, i.e. right after the clock commits a
cycle), for the formats scraped in the last `IDLE_S`. A scrape then:

1. reads the key (a few small queries) and the clock's stats;
2. serves the entry whose key is current (the usual case), or, while the thread renders the
   new one, the previous entry if its key was current within the last `refresh_interval`
   (values at most one cycle old; their poll timestamps say which poll they are), or within
   `STALE_CAP` cycles while the thread is still rendering (a machine too busy to render within
   a cycle: rendering in the request too would only slow both);
3. renders in the request only when the worker has no usable entry (its first scrape of a
   format, or after `IDLE_S` without scrapes, when the thread has stopped).

`panfm_up`, the clock's series and the request metrics are always read fresh by the caller.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from config import Settings
from panfm.web.metrics_collector import DeviceView, Snapshot, build_devices, fleet_families, interface_picker
from panfm.web.metrics_encode import fleet_bytes
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

log = logging.getLogger("panfm.web")

Encoder = Callable[[CollectorRegistry], bytes]
Lookup = Callable[[Any], "tuple[tuple[str, ...], bytes] | None"]
MAX_CACHED_FORMATS = 4  # encoded fleet bodies kept per process (~5 MB each for 1,000 devices)
POLL_S = 1.0  # how often the thread compares the key (~5 ms of CPU for 1,000 devices)
IDLE_S = 600.0  # a format not scraped for this long is no longer rendered; the thread stops without any
UNREADABLE_PAUSE_S = 30.0
STALE_CAP = 5  # cycles an entry may be served while the thread renders its successor
GZIP_LEVEL = 1  # 15.8 MB of text to 1.4 MB in ~45 ms of CPU (level 6: 1.2 MB, twice the CPU)
# What a damaged, missing or half-written database raises while read: panfm_up 0, never a 500.
READ_ERRORS = (StorageUnavailable, DatabaseError, OSError, ValueError, KeyError, TypeError)
_EMPTY_PARTS: dict[str, Any] = {"samples": {}, "statuses": {}, "dataplanes": {}, "inventories": {}, "baselines": {}}


def load(settings: Settings, device: str | None, now: float, lookup: Lookup | None,
         stores: Stores | None = None) -> tuple[Snapshot, Any, bytes | None]:
    """Read one scrape's data read-only: the snapshot, its cache key (None: not cacheable) and the body on a hit.

    `lookup(key)` (whole-fleet scrapes) returns the cached device states and body for the key,
    or None: then the samples are read. `device` (a name) keeps that device only, reads only
    its rows (`reader.device_parts`) and leaves the clock series out; the caller has checked
    that it exists. What cannot be read makes `up` false.
    """
    data_dir = settings.data_path
    up = True
    try:
        backend = stores.backend if stores is not None else None  # None: the data folder's files
        catalogue = config_store.device_catalogue(backend or data_dir)
        rule_names = {str(r.get("id")): str(r.get("name") or r.get("id")) for r in
                      DocTable(data_dir, "alert_rules", time.time, backend).list()}
    except READ_ERRORS as exc:
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
    except READ_ERRORS as exc:
        log.warning("/metrics: alerts.db unreadable: %s", type(exc).__name__)
        up = False
    parts: dict[str, Any] = _EMPTY_PARTS
    clock: dict[str, Any] | None = None
    cache_key: Any = None
    hit: tuple[tuple[str, ...], bytes] | None = None
    try:
        on_postgres = stores is not None and stores.on_postgres
        if not on_postgres and not (data_dir / HISTORY_DB).exists():
            raise StorageUnavailable("no sample database yet")
        with (stores.open_sample_reader() if stores is not None and on_postgres
              else SampleReader.open(data_dir / HISTORY_DB)) as reader:
            if lookup is not None and up:
                # The marker first: data committed after it only makes the entry rebuilt once more.
                cache_key = (settings.metrics_interfaces, reader.change_marker(),
                             tuple((d["id"], d["name"], d["interfaces"], d["enabled"]) for d in catalogue),
                             tuple(sorted(alerts.items())))
                hit = lookup(cache_key)
            if hit is None:
                keep = interface_picker(catalogue, settings.metrics_interfaces)
                if device is not None:
                    parts = reader.device_parts(catalogue[0]["id"], keep) if catalogue else _EMPTY_PARTS
                else:
                    parts = {
                        "samples": reader.latest_all(),
                        "statuses": reader.device_statuses(),
                        "dataplanes": reader.dataplane_cpu_all(),
                        "inventories": reader.inventory_all(),
                        "baselines": reader.baselines(keep),
                    }
            if device is None:
                clock = reader.clock_stats()
    except READ_ERRORS as exc:
        log.warning("/metrics: sample database unreadable: %s", type(exc).__name__)
        up = False
        cache_key, hit = None, None
        parts = _EMPTY_PARTS
    if hit is not None:
        devices = tuple(DeviceView(name="", state=state) for state in hit[0])
    else:
        devices = build_devices(catalogue, mode=settings.metrics_interfaces, **parts)
    if device is None and clock is None:
        clock = {}  # before the clock's first cycle: the device-state counts still say something
    snap = Snapshot(up=up, now=now, devices=devices, alerts=alerts, clock=clock)
    return snap, (cache_key if up else None), (hit[1] if hit is not None else None)


@dataclass
class _Entry:
    key: Any
    states: tuple[str, ...]  # the devices' states (what the clock's families count)
    body: bytes
    current_at: float  # monotonic time its key was last seen to be the database's
    gz: bytes | None = None


@dataclass
class _Wanted:
    encoder: Encoder
    asked_at: float
    gzip: bool


@dataclass(frozen=True)
class FleetPart:
    """The device, interface and alert families of one scrape, encoded (and gzipped when asked)."""

    snapshot: Snapshot
    body: bytes
    gz: bytes | None
    rendered_now: bool  # False: from the worker's entry


class FleetRenderer:
    """The encoded fleet families per format, kept current by a daemon thread (one renderer per app, so per worker)."""

    def __init__(self, settings: Callable[[], Settings], stores: Stores | None, *, background: bool = True,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._stores = stores
        self._background = background
        self._mono = monotonic
        self._lock = threading.Lock()  # entries, wanted, thread
        self._render_lock = threading.Lock()  # one render at a time in the process
        self._entries: dict[str, _Entry] = {}
        self._wanted: dict[str, _Wanted] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._rendering = False  # the thread is reading or rendering a new key
        self._quiet_until = 0.0  # after an unreadable step: skip steps for a while (no warning every second)
        self.stats = {"request_renders": 0, "background_renders": 0, "stale_served": 0}

    # ---- the scrape -------------------------------------------------------------------

    def fleet(self, encoder: Encoder, content_type: str, now: float, want_gzip: bool = False) -> FleetPart:
        """One whole-fleet scrape's snapshot and encoded fleet part: from the entry, or rendered here."""
        settings = self._settings()
        mono = self._mono()
        entry: _Entry | None = None

        def lookup(key: Any) -> tuple[tuple[str, ...], bytes] | None:
            nonlocal entry
            with self._lock:
                self._wanted[content_type] = _Wanted(encoder, mono, want_gzip or self._wanted_gzip(content_type))
                self._evict()
                e = self._entries.get(content_type)
                if e is not None and e.key == key:
                    e.current_at = mono
                elif e is not None and mono - e.current_at <= self._stale_limit(settings.refresh_interval):
                    self.stats["stale_served"] += 1  # the thread renders the new one
                    self._wake.set()
                else:
                    return None
                entry = e
                return e.states, e.body

        snap, key, cached = load(settings, None, now, lookup, self._stores)
        self._ensure_thread()
        if cached is not None and entry is not None:
            gz = None
            if want_gzip:
                gz = entry.gz
                if gz is None:
                    gz = entry.gz = gzip.compress(entry.body, GZIP_LEVEL)
            return FleetPart(snap, cached, gz, False)
        with self._render_lock:
            body = fleet_bytes(encoder, content_type, fleet_families(snap))
            gz = gzip.compress(body, GZIP_LEVEL) if want_gzip else None
        self.stats["request_renders"] += 1
        if key is not None:
            self._put(content_type, _Entry(key, tuple(d.state for d in snap.devices), body, mono, gz))
        return FleetPart(snap, body, gz, True)

    def _stale_limit(self, refresh_interval: float) -> float:
        """How long after its key was last current an entry may still be served (caller holds the lock).

        One cycle; longer while the thread is rendering (a machine so busy that a render takes
        longer than a cycle): rendering here too would only slow both, so the previous render is
        served, up to STALE_CAP cycles.
        """
        return refresh_interval * (STALE_CAP if self._rendering else 1)

    def _wanted_gzip(self, content_type: str) -> bool:
        w = self._wanted.get(content_type)
        return w is not None and w.gzip

    def _put(self, content_type: str, entry: _Entry) -> None:
        with self._lock:
            # The content type carries the Accept header's version: keep a few, not one per string sent.
            while len(self._entries) >= MAX_CACHED_FORMATS and content_type not in self._entries:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[content_type] = entry

    def _evict(self) -> None:
        """Forget the formats asked least recently past MAX_CACHED_FORMATS (caller holds the lock)."""
        while len(self._wanted) > MAX_CACHED_FORMATS:
            oldest = min(self._wanted, key=lambda ct: self._wanted[ct].asked_at)
            del self._wanted[oldest]

    # ---- the background -----------------------------------------------------------------

    def refresh(self) -> bool:
        """One step of the thread: re-render the wanted formats whose key changed; False when none is wanted.

        Reads the key once; the entries that have it are marked current, and when none is stale
        the step stops there (the usual step). Else it reads the samples once, builds the
        families once and encodes them for each stale format.
        """
        settings = self._settings()
        mono = self._mono()
        with self._lock:
            wanted = {ct: w for ct, w in self._wanted.items() if mono - w.asked_at <= IDLE_S}
        if not wanted:
            return False
        if mono < self._quiet_until:
            return True

        stale: list[str] = []

        def all_current(key: Any) -> tuple[tuple[str, ...], bytes] | None:
            # A wanted format without an entry is being rendered by its first scrape: not here too.
            with self._lock:
                for ct in wanted:
                    e = self._entries.get(ct)
                    if e is not None and e.key == key:
                        e.current_at = mono
                    elif e is not None:
                        stale.append(ct)
                        self._rendering = True  # what it reads next is for a render
            return ((), b"") if not stale else None

        try:
            return self._render_stale(settings, mono, wanted, stale, all_current)
        finally:
            with self._lock:
                self._rendering = False

    def _render_stale(self, settings: Settings, mono: float, wanted: dict[str, _Wanted], stale: list[str],
                      all_current: Lookup) -> bool:
        snap, key, cached = load(settings, None, time.time(), all_current, self._stores)
        if key is None:
            self._quiet_until = mono + UNREADABLE_PAUSE_S  # scrapes still read (and say panfm_up 0)
            return True
        if cached is not None:
            return True
        states = tuple(d.state for d in snap.devices)
        with self._render_lock:
            fleet = list(fleet_families(snap))
            for ct in stale:
                w = wanted[ct]
                body = fleet_bytes(w.encoder, ct, fleet)
                self._put(ct, _Entry(key, states, body, mono, gzip.compress(body, GZIP_LEVEL) if w.gzip else None))
                self.stats["background_renders"] += 1
        return True

    def _ensure_thread(self) -> None:
        if not self._background:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            # The thread holds the renderer weakly: an app dropped (tests build many) ends it.
            self._thread = threading.Thread(target=_run, args=(weakref.ref(self), self._wake),
                                            name="panfm-metrics-render", daemon=True)
            self._thread.start()


def _run(ref: weakref.ref[FleetRenderer], wake: threading.Event) -> None:
    """The render thread: a refresh step every POLL_S (or when a scrape found its entry stale) until idle."""
    while True:
        wake.wait(POLL_S)
        wake.clear()
        renderer = ref()
        if renderer is None:
            return
        try:
            if not renderer.refresh():
                with renderer._lock:
                    renderer._thread = None
                return
        except Exception:  # a bug must not kill the worker's /metrics silently: log it, try again later
            log.exception("/metrics: background render failed")
        del renderer
