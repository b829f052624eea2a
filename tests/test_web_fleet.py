"""The overview's picture: health per firewall and counts (/api/overview), fleet totals on one grid."""

import time

import pytest
from helpers.web import add_device, make_client

from panfm.models import CycleResult, DeviceSample, DeviceStatus
from panfm.web.fleet_status import grid, health
from throughput_storage import HISTORY_DB, SampleStore

REFRESH = 30
FP_OTHER = "cd" * 32


def _write(data_dir, ts, samples, statuses):
    with SampleStore.open(data_dir / HISTORY_DB) as store:
        store.write_cycle(CycleResult(ts - 0.5, ts + 0.5, tuple(samples), (), (), tuple(statuses)))


@pytest.fixture
def fleet(tmp_path):
    _, client = make_client(tmp_path, refresh_interval=REFRESH)
    ids = {name: add_device(client, name, f"192.0.2.{i + 10}")
           for i, name in enumerate(["up", "stale", "down", "breaker", "cert", "never", "off"])}
    client.put(f"/api/devices/{ids['off']}", json={"enabled": False})
    now = time.time()
    _write(tmp_path, now - 4000, [DeviceSample(ids["stale"], now - 4000, inbound_mbps=3.0)],
           [DeviceStatus(ids["stale"], "up", now - 4000, now - 4000)])
    _write(tmp_path, now - 5, [DeviceSample(ids["up"], now - 5, inbound_mbps=10.0, sessions_active=100)], [
        DeviceStatus(ids["up"], "up", now - 5, now - 5),
        DeviceStatus(ids["down"], "down", now - 5, None, "timeout"),
        DeviceStatus(ids["breaker"], "breaker_open", now - 5, None, "connection refused", 3),
        DeviceStatus(ids["cert"], "down", now - 5, None, f"certificate changed: expected {'ab' * 32}, got {FP_OTHER}"),
    ])
    return client, ids, now, tmp_path


def test_the_overview_counts_every_firewall_by_health(fleet):
    client, _, _, _ = fleet
    body = client.get("/api/overview").get_json()
    by_name = {d["name"]: d["health"] for d in body["devices"]}
    assert by_name == {"up": "up", "stale": "degraded", "down": "down", "breaker": "breaker_open",
                       "cert": "cert_changed", "never": "unknown", "off": "disabled"}
    assert body["counts"] == {"up": 1, "degraded": 1, "down": 1, "breaker_open": 1, "cert_changed": 1,
                              "unknown": 1, "disabled": 1}


def test_a_firing_alert_makes_an_answering_firewall_degraded():
    status = DeviceStatus("d", "up", 100.0, 100.0)
    assert health(True, status, 5.0, 0, REFRESH) == "up"
    assert health(True, status, 5.0, 2, REFRESH) == "degraded"
    assert health(True, status, 5.0, None, REFRESH) == "up"  # no alerts database: nothing known to fire
    assert health(True, status, 3 * REFRESH + 1, 0, REFRESH) == "degraded"


def test_fleet_history_puts_every_firewall_on_one_grid_without_fake_zeros(fleet):
    client, ids, now, data_dir = fleet
    step = grid(3600, REFRESH)
    # "up" has a sample every refresh interval for 20 minutes; "down" none at all.
    for k in range(40):
        ts = now - 1200 + k * REFRESH
        _write(data_dir, ts, [DeviceSample(ids["up"], ts, inbound_mbps=10.0 + k % 2, sessions_active=100 + k)],
               [DeviceStatus(ids["up"], "up", ts, ts)])
    body = client.get("/api/overview/history?range=1h").get_json()
    assert body["range"] == "1h" and body["step_s"] == step
    names = [d["name"] for d in body["devices"]]
    assert "off" not in names and len(names) == 6  # disabled firewalls are not stacked
    n = len(body["t"])
    assert n * step >= 3600 and all(len(d["through_mbps"]) == n for d in body["devices"])
    up = next(d for d in body["devices"] if d["id"] == ids["up"])
    filled = [v for v in up["through_mbps"] if v is not None]
    assert len(filled) >= 1200 // step - 1
    assert all(10.0 <= v <= 11.0 for v in filled)  # slot averages of the samples, never a zero
    assert up["through_mbps"][0] is None  # an hour ago it had no sample: a gap
    down = next(d for d in body["devices"] if d["id"] == ids["down"])
    assert set(down["through_mbps"]) == {None}
    assert client.get("/api/overview/history?range=6h").status_code == 400
