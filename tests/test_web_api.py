"""The data JSON API against a real config.db and a real sample database written by SampleStore."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime

import pytest
from helpers.web import add_device, make_client

import config
from panfm.models import CycleResult, DeviceSample, DeviceStatus, InterfaceSample
from panfm.storage.samples import HISTORY_DB, SampleStore

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
XSS = "<script>alert(1)</script>"


def sample(device_id, ts, **values):
    base = dict(
        inbound_mbps=120.5,
        outbound_mbps=80.25,
        total_mbps=200.75,
        inbound_pps=10000.0,
        outbound_pps=9000.0,
        sessions_active=1500,
        sessions_tcp=1000,
        sessions_udp=400,
        sessions_icmp=100,
        sessions_max=64000,
        sessions_utilization_pct=2.3,
        sessions_cps=42,
        cpu_dataplane_pct=17.0,
        cpu_management_pct=9.5,
        memory_pct=55.0,
        packet_buffer_pct=1.0,
    )
    base.update(values)
    return DeviceSample(device_id=device_id, ts=ts, **base)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two devices; the first has an hour of samples, interfaces, a status and an inventory."""
    data = tmp_path_factory.mktemp("data")
    app, client = make_client(data)
    fw1 = add_device(client, "fw-one", "192.0.2.10", interfaces=["ethernet1/1", "ethernet1/2"])
    fw2 = add_device(client, "fw-two", "fw-two.example.net")
    now = time.time()
    store = SampleStore.open(data / HISTORY_DB)
    try:
        for i in range(60, -1, -1):
            ts = now - i * 60
            gap = i == 30  # one poll with no rate: a gap, not a zero
            cycle = CycleResult(
                started=ts - 1,
                finished=ts,
                samples=(sample(fw1, ts, inbound_mbps=None, outbound_mbps=None, total_mbps=None) if gap
                         else sample(fw1, ts, inbound_mbps=100.0 + i),),
                interfaces=(
                    InterfaceSample(fw1, "ethernet1/1", ts, 50e6, 25e6, 1000.0, 900.0, 0.5, 0.0, True),
                    InterfaceSample(fw1, "ethernet1/2", ts, None, None, None, None, None, None, True),
                ),
                baselines=(),
                statuses=(DeviceStatus(fw1, "up", ts, ts, None), DeviceStatus(fw2, "down", ts, None, "timeout")),
            )
            store.write_cycle(cycle, clock_stats={"total_executions": 61 - i, "total_errors": 0})
        store.write_inventory(
            fw1,
            now,
            {
                "system": {"hostname": XSS, "model": "PA-440", "serial": "0123", "sw_version": "11.1.2",
                           "uptime_seconds": 3600},
                "ha": {"enabled": True, "local_state": "active"},
                "interfaces": [
                    {"name": "ethernet1/1", "kind": "physical", "state": "up", "speed_mbps": 1000, "zone": XSS},
                    {"name": "ethernet1/3", "kind": "physical", "state": "down", "speed_mbps": None, "zone": None},
                ],
            },
        )
    finally:
        store.close()
    return {"app": app, "client": client, "fw1": fw1, "fw2": fw2, "now": now, "data": data}


@pytest.mark.parametrize("ts, want", [
    (1_760_000_000.0, "2025-10-09T08:53:20.000Z"),
    (1_760_000_000.123, "2025-10-09T08:53:20.123Z"),
    (1_760_000_000.9999996, "2025-10-09T08:53:20.999Z"),  # time.time() can end so: not a second late
    (1.9999999, "1970-01-01T00:00:01.999Z"),
])
def test_it_formats_epoch_times_to_the_millisecond_without_rounding_into_the_next_second(ts, want):
    from panfm.web.api import iso

    assert iso(ts) == want


def test_it_reports_the_version_without_login(fleet):
    r = fleet["app"].test_client().get("/api/version")
    assert r.status_code == 200
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", r.get_json()["version"])


def test_it_returns_the_latest_sample_in_the_contract_shape(fleet):
    r = fleet["client"].get(f"/api/throughput?device_id={fleet['fw1']}")
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"device_id", "age_seconds", "uplinks", "sample"}
    assert body["device_id"] == fleet["fw1"]
    assert 0 <= body["age_seconds"] < 60
    s = body["sample"]
    assert set(s) == {"timestamp", "inbound_mbps", "outbound_mbps", "total_mbps", "inbound_pps", "outbound_pps",
                      "approx", "sessions", "cpu", "memory_pct", "packet_buffer_pct",
                      "through_mbps", "uplink_in_mbps", "uplink_out_mbps"}
    assert ISO_Z.fullmatch(s["timestamp"])
    assert s["inbound_mbps"] == 100.0 and s["outbound_mbps"] == 80.25
    # Through the box: ingress over the counted ports; no uplink marked, so no In/Out of one.
    assert s["through_mbps"] == 100.0 and body["uplinks"] == []
    assert s["uplink_in_mbps"] is None and s["uplink_out_mbps"] is None
    assert s["sessions"] == {"active": 1500, "tcp": 1000, "udp": 400, "icmp": 100, "max": 64000,
                             "utilization_pct": 2.3, "cps": 42}
    # Additive fields: per-dataplane CPU of this sample, empty when the clock stored none for it.
    assert s["cpu"] == {"dataplane_pct": 17.0, "management_pct": 9.5, "dataplanes": [], "busiest_core": None}


def test_it_says_plainly_when_a_device_has_no_data(fleet):
    body = fleet["client"].get(f"/api/throughput?device_id={fleet['fw2']}").get_json()
    assert body == {"device_id": fleet["fw2"], "age_seconds": None, "uplinks": [], "sample": None}


def test_it_answers_404_for_an_unknown_device_and_400_without_one(fleet):
    r = fleet["client"].get("/api/throughput?device_id=no-such-device")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    r = fleet["client"].get("/api/throughput")
    assert r.status_code == 400 and "device_id" in r.get_json()["fields"]


def test_it_answers_503_when_the_sample_database_cannot_be_read(tmp_path):
    _, client = make_client(tmp_path)
    device = add_device(client, "fw", "192.0.2.1")
    before = client.get(f"/api/throughput?device_id={device}")
    assert before.status_code == 200 and before.get_json()["sample"] is None  # the clock has not written yet
    (tmp_path / HISTORY_DB).write_bytes(b"this is not a database" * 100)
    r = client.get(f"/api/throughput?device_id={device}")
    assert r.status_code == 503
    assert r.get_json()["error"] == "storage_unavailable"
    health = client.get("/api/health")
    assert health.status_code == 503
    assert health.get_json()["database"] == "unavailable" and health.get_json()["status"] == "degraded"


def test_it_gives_the_whole_fleet_in_one_overview(fleet):
    body = fleet["client"].get("/api/overview").get_json()
    by_name = {d["name"]: d for d in body["devices"]}
    assert set(by_name) == {"fw-one", "fw-two"}
    one, two = by_name["fw-one"], by_name["fw-two"]
    assert {"id", "name", "status", "sample", "age_seconds", "active_alerts"} <= set(one)
    assert one["status"]["state"] == "up" and ISO_Z.fullmatch(one["status"]["last_success"])
    assert one["sample"]["inbound_mbps"] == 100.0
    assert two["status"] == {"state": "down", "last_poll": two["status"]["last_poll"], "last_success": None,
                             "last_error": "timeout"}
    assert two["sample"] is None and two["age_seconds"] is None
    # No alerts database: the count is unknown, not a made-up zero.
    assert one["active_alerts"] is None


@pytest.mark.parametrize("rng", ["1h", "6h", "24h", "7d", "30d", "90d"])
def test_it_returns_history_for_every_range(fleet, rng):
    r = fleet["client"].get(f"/api/throughput/history?device_id={fleet['fw1']}&range={rng}")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["device_id"] == fleet["fw1"]
    assert body["tier"] in ("raw", "5m", "1h")
    assert (body["bucket_s"] is None) == (body["tier"] == "raw")
    assert 0 < len(body["points"]) <= 2000
    for p in body["points"]:
        assert ISO_Z.fullmatch(p["t"])


def test_it_keeps_gaps_as_null_in_history(fleet):
    body = fleet["client"].get(f"/api/throughput/history?device_id={fleet['fw1']}&range=1h").get_json()
    assert body["tier"] == "raw"
    names = {"t", "inbound_mbps", "inbound_mbps_max", "outbound_mbps", "outbound_mbps_max", "sessions_active",
             "sessions_active_max", "cpu_dataplane_pct", "cpu_dataplane_pct_max", "cpu_management_pct",
             "memory_pct", "packet_buffer_pct", "sessions_utilization_pct"}
    assert names <= set(body["points"][0])
    inbound = [p["inbound_mbps"] for p in body["points"]]
    assert None in inbound and 0 not in inbound
    assert [p["t"] for p in body["points"]] == sorted(p["t"] for p in body["points"])


def test_it_accepts_start_and_end_in_utc(fleet):
    now = fleet["now"]
    start = datetime.fromtimestamp(now - 600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = datetime.fromtimestamp(now + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = fleet["client"].get(
        f"/api/throughput/history?device_id={fleet['fw1']}&start={start}&end={end}"
    ).get_json()
    assert 9 <= len(body["points"]) <= 11


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("range=2h", "range"),
        ("start=yesterday", "start"),
        ("start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "end"),
        ("start=2026-01-01T00:00:00%2B02:00", "start"),
        ("range=1h&start=2026-01-01T00:00:00Z", "range"),
    ],
)
def test_it_rejects_bad_history_windows_per_field(fleet, query, field):
    r = fleet["client"].get(f"/api/throughput/history?device_id={fleet['fw1']}&{query}")
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "invalid" and field in body["fields"] and body["message"]


def test_it_exports_history_as_csv_with_empty_cells_for_gaps(fleet):
    r = fleet["client"].get(f"/api/throughput/history/export?device_id={fleet['fw1']}&range=1h")
    assert r.status_code == 200
    assert r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert 59 <= len(rows) <= 61  # the window moved on while the test ran
    assert rows[0]["t"].endswith("Z") and float(rows[0]["inbound_mbps"]) > 0
    assert "" in {row["inbound_mbps"] for row in rows}


def test_it_lists_interfaces_with_rates_and_inventory(fleet):
    body = fleet["client"].get(f"/api/interfaces?device_id={fleet['fw1']}").get_json()
    by_name = {i["name"]: i for i in body["interfaces"]}
    assert set(by_name) == {"ethernet1/1", "ethernet1/2", "ethernet1/3"}
    e1 = by_name["ethernet1/1"]
    assert set(e1) == {"name", "kind", "state", "speed_mbps", "zone", "inbound_mbps", "outbound_mbps",
                       "utilization_pct", "errors_per_s", "drops_per_s", "counted", "approx"}
    assert e1["inbound_mbps"] == 50.0 and e1["outbound_mbps"] == 25.0
    assert e1["utilization_pct"] == pytest.approx(5.0)
    assert e1["speed_mbps"] == 1000 and e1["state"] == "up" and e1["counted"] is True
    assert by_name["ethernet1/2"]["inbound_mbps"] is None and by_name["ethernet1/2"]["utilization_pct"] is None
    assert by_name["ethernet1/3"]["counted"] is False and by_name["ethernet1/3"]["inbound_mbps"] is None


def test_it_names_logical_interface_kinds_as_panos_does_before_the_inventory_arrives(tmp_path):
    _, client = make_client(tmp_path)
    fw = add_device(client, "fw-kinds", "192.0.2.44")
    names = {"ethernet1/1": "physical", "ethernet1/1.5": "subinterface", "ae1": "aggregate",
             "ae1.100": "subinterface", "tunnel": "tunnel", "tunnel.1": "tunnel", "loopback.1": "loopback",
             "vlan.10": "vlan"}
    ts = time.time()
    store = SampleStore.open(tmp_path / HISTORY_DB)
    try:
        store.write_cycle(CycleResult(
            started=ts - 1, finished=ts, samples=(sample(fw, ts),), baselines=(), statuses=(),
            interfaces=tuple(InterfaceSample(fw, n, ts, 1e6, 1e6, 1.0, 1.0, 0.0, 0.0, n == "ethernet1/1")
                             for n in names),
        ))
    finally:
        store.close()
    body = client.get(f"/api/interfaces?device_id={fw}").get_json()
    # tunnel.1 is PAN-OS's tunnel unit 1, not a sub-interface (the inventory parser says "tunnel" too).
    assert {i["name"]: i["kind"] for i in body["interfaces"]} == names


def test_it_returns_interface_history(fleet):
    r = fleet["client"].get(f"/api/interfaces/history?device_id={fleet['fw1']}&name=ethernet1/1&range=1h")
    assert r.status_code == 200
    body = r.get_json()
    assert body["name"] == "ethernet1/1" and 59 <= len(body["points"]) <= 61
    point = body["points"][-1]
    assert ISO_Z.fullmatch(point["t"])
    assert point["inbound_mbps"] == 50.0 and point["outbound_mbps_max"] == 25.0 and point["errors_per_s"] == 0.5
    assert fleet["client"].get(f"/api/interfaces/history?device_id={fleet['fw1']}&range=1h").status_code == 400


def test_it_shows_the_clock_stats(fleet):
    body = fleet["client"].get("/api/clock").get_json()
    assert body["running"] is True and ISO_Z.fullmatch(body["heartbeat"])
    assert body["stats"]["total_executions"] == 61


def test_it_answers_the_clock_stats_times_in_iso_8601_with_z(tmp_path):
    from panfm.ops import ClockStats

    _, client = make_client(tmp_path)
    stats = ClockStats(clock=lambda: 1_760_000_000.25)
    stats.record("collect", 1_760_000_030.5, 1.25)
    stats.record("collect", 1_760_000_060.5, 2.0, error="TimeoutError: slow")
    store = SampleStore.open(tmp_path / HISTORY_DB)
    try:
        store.write_clock_stats(stats.snapshot(), heartbeat=time.time())
    finally:
        store.close()
    body = client.get("/api/clock").get_json()["stats"]
    # The API speaks ISO-8601 with Z everywhere, the clock's own document included.
    assert body["started_at"] == "2025-10-09T08:53:20.250Z"
    assert body["last_execution"] == "2025-10-09T08:54:20.500Z"
    assert body["last_error_time"] == "2025-10-09T08:53:20.250Z"
    assert [r["started"] for r in body["recent"]] == ["2025-10-09T08:53:50.500Z", "2025-10-09T08:54:20.500Z"]
    assert body["recent"][1]["outcome"] == "error" and body["total_errors"] == 1


def test_it_reports_health_ok_then_degraded_by_heartbeat_age(tmp_path):
    app, _ = make_client(tmp_path, refresh_interval=30)
    anonymous = app.test_client()
    r = anonymous.get("/api/health")
    assert r.status_code == 503 and r.get_json()["status"] == "degraded"  # no clock yet
    store = SampleStore.open(tmp_path / HISTORY_DB)
    try:
        store.write_clock_stats({"total_executions": 1}, heartbeat=time.time() - 10)
        ok = anonymous.get("/api/health")
        assert ok.status_code == 200
        body = ok.get_json()
        assert set(body) == {"status", "clock", "database"}
        assert body["status"] == "ok" and body["database"] == "ok"
        assert ISO_Z.fullmatch(body["clock"]["last_heartbeat"]) and 9 <= body["clock"]["age_seconds"] <= 60
        store.write_clock_stats({"total_executions": 1}, heartbeat=time.time() - 91)  # > 3 x 30 s
        stale = anonymous.get("/api/health")
        assert stale.status_code == 503 and stale.get_json()["status"] == "degraded"
    finally:
        store.close()


def test_it_merges_settings_and_refuses_environment_fixed_ones(tmp_path):
    env = {"PANFM_THEME": "dark"}
    _, client = make_client(tmp_path, env=env)
    (tmp_path / "settings.json").write_text('{"raw_retention_days": 5}')
    body = client.get("/api/settings").get_json()["settings"]
    assert body["theme"] == body["theme"] | {"value": "dark", "fixed_by_env": True, "editable": False}
    assert body["raw_retention_days"]["value"] == 5
    assert "admin_password" not in body and "secret_key" not in body

    r = client.put("/api/settings", json={"refresh_interval": 15})
    assert r.status_code == 200
    assert r.get_json()["settings"]["refresh_interval"]["value"] == 15
    stored = config.read_settings_file(tmp_path)
    assert stored == {"raw_retention_days": 5, "refresh_interval": 15}, "a PUT merges, never wipes"

    r = client.put("/api/settings", json={"theme": "light", "refresh_interval": 1, "port": 8080, "nope": 1})
    assert r.status_code == 400
    fields = r.get_json()["fields"]
    assert set(fields) == {"theme", "refresh_interval", "port", "nope"}
    assert "environment" in fields["theme"]
    assert config.read_settings_file(tmp_path) == stored, "a refused PUT changes nothing"
