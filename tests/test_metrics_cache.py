"""The whole-fleet /metrics answer: rendered off the request, kept per process, byte for byte the plain encoding."""

from __future__ import annotations

import dataclasses
import gzip

import pytest
from conftest import SIM_NETWORKS
from helpers.alerts import INITIAL, Clock
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families as parse_text

import config
from app import create_app
from panfm.web.metrics import fleet_body, load_snapshot
from panfm.web.metrics_collector import PanfmCollector
from panfm.web.metrics_render import FleetRenderer

TOKEN = "cache-token-0123456789abcdef"  # nosec B105 (a test token)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture()
def polled(tmp_path, sim_fleet):
    clk = Clock(tmp_path / "data")
    ids = [clk.add_device(e) for e in sim_fleet.inventory[:2]]
    clk.add_rule(name='Busy "rule"', metric="sessions_active", operator=">", threshold=0, severity="warning",
                 for_s=0, channel_ids=[])
    for _ in range(2):
        clk.cycle()
        clk.offset += 5
    yield clk, ids
    clk.close()


def settings_for(clk: Clock, **overrides: object) -> config.Settings:
    return config.load_settings(env={}, overrides={
        "data_dir": str(clk.ctx.data_dir), "admin_password": INITIAL, "allowed_device_networks": SIM_NETWORKS,
        "metrics_token": TOKEN, **overrides})


def plain(settings: config.Settings, own: CollectorRegistry, accept: str, now: float) -> bytes:
    """What one registry holding the database's collector and the request metrics encodes."""
    encoder, _ = choose_encoder(accept)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PanfmCollector(lambda: load_snapshot(settings, None, now)))
    for collector in list(own._collector_to_names):  # the request metrics, in their order
        registry.register(collector)
    return encoder(registry)


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
@pytest.mark.parametrize("mode", ["counted", "all"])
def test_a_cached_answer_is_byte_for_byte_the_plain_encoding(polled, accept, mode):
    clk, _ = polled
    settings = settings_for(clk, metrics_interfaces=mode)
    app = create_app(settings)
    app.test_client().get("/api/version")  # some request metrics
    own, renderer = app.extensions["panfm_metrics"], FleetRenderer(lambda: settings, None, background=False)
    encoder, content_type = choose_encoder(accept)
    now = clk.ctx.clock()
    first = fleet_body(renderer, own, encoder, content_type, now)  # no entry yet: rendered in the request
    again = fleet_body(renderer, own, encoder, content_type, now)  # from the entry
    expected = plain(settings, own, accept, now)
    assert first == expected
    assert again == expected
    assert renderer.stats["request_renders"] == 1
    assert gzip.decompress(fleet_body(renderer, own, encoder, content_type, now, want_gzip=True)) == expected
    assert b"panfm_interface_receive_bytes_total" in expected
    if accept:
        assert expected.endswith(b"# EOF\n") and expected.count(b"# EOF") == 1


def values(body: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value
            for fam in parse_text(body) for s in fam.samples if s.name == name}


def fresh_scrape(app, web) -> str:
    """A scrape after the app's render thread has caught up with the database (what the thread does each second)."""
    app.extensions["panfm_metrics_renderer"].refresh()
    return web.get("/metrics", headers=AUTH).get_data(as_text=True)


def test_a_new_cycle_and_a_rename_reach_the_scrape_once_rendered(polled):
    clk, ids = polled
    app = create_app(settings_for(clk))
    web = app.test_client()
    before = web.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert web.get("/metrics", headers=AUTH).get_data(as_text=True).split("panfm_clock")[0] == \
        before.split("panfm_clock")[0]  # unchanged data: the same fleet part
    last = values(before, "panfm_device_last_poll_timestamp_seconds")
    counters = values(before, "panfm_interface_receive_bytes_total")
    assert last and counters

    clk.offset += 5
    clk.cycle()  # a new committed cycle: newer poll times and counters once rendered
    after = fresh_scrape(app, web)
    newer = values(after, "panfm_device_last_poll_timestamp_seconds")
    assert newer.keys() == last.keys()
    assert all(newer[k] > last[k] for k in last)
    assert values(after, "panfm_interface_receive_bytes_total") != counters

    device = clk.ctx.devices.get(ids[0])
    assert device is not None
    clk.ctx.devices.update(dataclasses.replace(device, name="renamed-fw"))
    renamed = fresh_scrape(app, web)
    names = {dict(k)["device"] for k in values(renamed, "panfm_device_up")}
    assert "renamed-fw" in names and device.name not in names


@pytest.mark.parametrize("accept", ["", OPENMETRICS, OPENMETRICS + "; escaping=allow-utf-8"])
def test_the_lean_encoder_writes_prometheus_clients_bytes_for_hostile_strings(accept):
    from panfm.models import InterfaceCounters
    from panfm.web.metrics_collector import DeviceView, InterfaceView, Snapshot, fleet_families
    from panfm.web.metrics_encode import encode, lean_encode, leanable

    odd = 'fw "q" \\ back\nslash é'
    counters = InterfaceCounters("ethernet1/1", 2**63 + 5, 10**15, 1, 0, 7, 3, source="hw")
    devices = tuple(
        DeviceView(name=name, state=state, last_success=1_700_000_000.123456, dataplanes=(("dp0", 12.5), ("dp1", None)),
                   serial='S\\"1', model="PA-\n440", sw_version="", ha_state="active",
                   interfaces=(InterfaceView("ethernet1/1", counters, "physical", 'z"o\\ne\n', "10000"),
                               InterfaceView("tunnel.1", counters)),
                   counters_ts=1_700_000_000.987654)
        for name, state in ((odd, "up"), ("b", "down"), ("c", "unknown")))
    snap = Snapshot(up=True, now=1_700_000_100.0, devices=devices,
                    alerts={(odd, 'r"u\\le\n', "warning"): 2, ("b", "x", "critical"): 1})
    encoder, content_type = choose_encoder(accept)
    openmetrics = bool(accept)
    assert leanable(content_type)
    lean = lean_encode(encoder, fleet_families(snap), openmetrics)
    assert lean == encode(encoder, fleet_families(snap), openmetrics)
    assert b'fw \\"q\\" \\\\ back\\nslash' in lean


def test_other_escapings_are_left_to_prometheus_client():
    from panfm.web.metrics_encode import leanable

    _, content_type = choose_encoder("application/openmetrics-text; version=1.0.0; escaping=dots")
    assert not leanable(content_type)


def test_the_renderer_keeps_a_few_formats_only():
    from panfm.web.metrics_render import MAX_CACHED_FORMATS, _Entry

    renderer = FleetRenderer(lambda: config.load_settings(env={}), None, background=False)
    for i in range(10):
        renderer._put(f"application/openmetrics-text; version=1.0.{i}", _Entry("k", (), b"x", 0.0))
    assert len(renderer._entries) == MAX_CACHED_FORMATS
    assert renderer._entries["application/openmetrics-text; version=1.0.9"].body == b"x"


def test_a_scrape_after_a_cycle_gets_the_previous_render_for_one_cycle_at_most(polled):
    clk, _ = polled
    settings = settings_for(clk)
    own = CollectorRegistry(auto_describe=False)
    mono = [1000.0]
    renderer = FleetRenderer(lambda: settings, None, background=False, monotonic=lambda: mono[0])
    encoder, content_type = choose_encoder("")
    before = fleet_body(renderer, own, encoder, content_type, clk.ctx.clock()).decode()
    last = values(before, "panfm_device_last_poll_timestamp_seconds")

    clk.offset += 5
    clk.cycle()
    mono[0] += 1  # a scrape right after the commit, before the render thread's next step
    stale = fleet_body(renderer, own, encoder, content_type, clk.ctx.clock()).decode()
    assert values(stale, "panfm_device_last_poll_timestamp_seconds") == last
    assert renderer.stats == {"request_renders": 1, "background_renders": 0, "stale_served": 1}

    assert renderer.refresh()  # the thread's step: renders the new cycle for the wanted format
    assert renderer.stats["background_renders"] == 1
    fresh = fleet_body(renderer, own, encoder, content_type, clk.ctx.clock()).decode()
    newer = values(fresh, "panfm_device_last_poll_timestamp_seconds")
    assert newer.keys() == last.keys() and all(newer[k] > last[k] for k in last)
    assert renderer.stats["request_renders"] == 1

    # A thread still rendering its successor (a busy machine): the entry is served a few cycles longer.
    clk.offset += 5
    clk.cycle()
    mono[0] += settings.refresh_interval + 1
    renderer._rendering = True
    busy = fleet_body(renderer, own, encoder, content_type, clk.ctx.clock()).decode()
    assert values(busy, "panfm_device_last_poll_timestamp_seconds") == newer
    assert renderer.stats["stale_served"] == 2 and renderer.stats["request_renders"] == 1
    renderer._rendering = False

    # No thread caught up (it stopped): an entry whose key was last current a cycle ago is not served.
    clk.offset += 5
    clk.cycle()
    mono[0] += settings.refresh_interval + 1
    late = fleet_body(renderer, own, encoder, content_type, clk.ctx.clock()).decode()
    assert all(v > newer[k] for k, v in values(late, "panfm_device_last_poll_timestamp_seconds").items())
    assert renderer.stats["request_renders"] == 2


def test_the_render_thread_renders_a_new_cycle_before_the_next_scrape(polled):
    import time

    clk, _ = polled
    app = create_app(settings_for(clk))
    web = app.test_client()
    renderer = app.extensions["panfm_metrics_renderer"]
    last = "panfm_device_last_poll_timestamp_seconds"
    before = values(web.get("/metrics", headers=AUTH).get_data(as_text=True), last)
    clk.offset += 5
    clk.cycle()
    deadline = time.monotonic() + 60  # the thread checks every second; a loaded machine may take longer
    while renderer.stats["background_renders"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert renderer.stats["background_renders"] >= 1
    after = values(web.get("/metrics", headers=AUTH).get_data(as_text=True), last)
    assert all(after[k] > before[k] for k in before)
    assert renderer.stats["request_renders"] == 1


def test_a_gzip_scrape_is_the_same_answer_compressed(polled):
    clk, _ = polled
    web = create_app(settings_for(clk)).test_client()
    plain_body = web.get("/metrics", headers=AUTH).get_data()
    resp = web.get("/metrics", headers={**AUTH, "Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in resp.headers["Vary"]
    body = gzip.decompress(resp.get_data())
    # The heartbeat's age and the request metrics move between two scrapes: compare what comes before.
    assert body.split(b"# HELP panfm_clock_")[0] == plain_body.split(b"# HELP panfm_clock_")[0]
    assert b"panfm_interface_receive_bytes_total" in body
    assert len(resp.get_data()) < len(body) / 3
