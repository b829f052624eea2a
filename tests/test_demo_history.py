"""The demo's week of history: written through import_samples, once, and true to the simulator's truth."""

import json
import time

import pytest
from helpers.web import make_client

import panfm.ops.demo_history as demo_history
from panfm.ops import register_demo_devices
from throughput_storage import HISTORY_DB, DeviceStore, SampleReader

TOLERANCE = 0.01


@pytest.fixture(scope="module")
def backfilled(private_fleet, tmp_path_factory):
    """A data folder with the private fleet registered and a full 7-day backfill."""
    data_dir = tmp_path_factory.mktemp("demo")
    register_demo_devices(data_dir, private_fleet.inventory_path)
    now = time.time()
    done = demo_history.backfill(data_dir, private_fleet.inventory, now, 30)
    devices = {d.name: d for d in DeviceStore(data_dir, _box(data_dir), clock=time.time).list()}
    return data_dir, now, done, devices


@pytest.fixture(scope="module")
def web(backfilled):
    """A logged-in client of the web over the backfilled folder."""
    return make_client(backfilled[0])[1]


def _box(data_dir):
    import config

    return config.SecretBox.for_data_dir(data_dir)


def _truth_mbps(fleet, name, t1, t2, counted):
    truth = fleet.truth(name, t1, t2)["interfaces"]
    return sum(truth[n]["in_bytes"] for n in counted) * 8 / (t2 - t1) / 1e6


def _physical(fleet, name, t):
    """The physical ports (ethernetN/M) the simulator counts: what PANfm counts with no selection."""
    return [n for n in fleet.truth(name, t - 1, t)["interfaces"] if n.startswith("ethernet") and "." not in n]


def test_backfill_covers_seven_days_of_every_device_and_records_itself(backfilled, private_fleet):
    data_dir, now, done, devices = backfilled
    assert done is not None and set(done.devices) == {e["name"] for e in private_fleet.inventory}
    assert json.loads((data_dir / demo_history.MARKER).read_text())["samples"] == done.samples
    with SampleReader.open(data_dir / HISTORY_DB) as reader:
        for dev in devices.values():
            boot = private_fleet.truth(dev.name, now - 1, now)["boot"]
            hist = reader.history(dev.id, now - 7 * 86400, now, max_points=2000, metrics=("inbound_mbps",))
            firsts = [p["t"] for p in hist.points if p["inbound_mbps"] is not None]
            # From the later of a week ago and the device's boot (its counters were not counting before).
            assert min(firsts) <= max(now - 7 * 86400, boot) + 900
            assert max(firsts) >= now - 900
            assert reader.latest(dev.id).ts >= now - 60


def test_a_second_backfill_writes_nothing(backfilled, private_fleet):
    data_dir, now, _, devices = backfilled
    dev = next(iter(devices.values()))
    with SampleReader.open(data_dir / HISTORY_DB) as reader:
        before = reader.summary(dev.id, now - 8 * 86400, now + 60)
    assert demo_history.backfill(data_dir, private_fleet.inventory, now + 60, 30) is None
    with SampleReader.open(data_dir / HISTORY_DB) as reader:
        assert reader.summary(dev.id, now - 8 * 86400, now + 60) == before


def test_backfilled_samples_agree_with_sim_truth_within_one_percent(backfilled, private_fleet):
    data_dir, now, _, devices = backfilled
    with SampleReader.open(data_dir / HISTORY_DB) as reader:
        for dev in devices.values():
            counted = _physical(private_fleet, dev.name, now)
            # Raw samples of the newest day: each is the rate over the 30 s before its time.
            hist = reader.history(dev.id, now - 1800, now, max_points=2000, metrics=("inbound_mbps",))
            assert hist.tier == "raw"
            for p in hist.points[::17]:
                want = _truth_mbps(private_fleet, dev.name, p["t"] - 30, p["t"], counted)
                assert p["inbound_mbps"] == pytest.approx(want, rel=TOLERANCE)
            sample = reader.latest(dev.id)
            gauges = private_fleet.truth(dev.name, sample.ts - 30, sample.ts)
            assert sample.sessions_active == gauges["sessions"]["active"]


@pytest.mark.parametrize("days_back", [6, 3])
def test_backfilled_rollups_agree_with_sim_truth_within_one_percent(backfilled, private_fleet, days_back):
    data_dir, now, _, devices = backfilled
    with SampleReader.open(data_dir / HISTORY_DB) as reader:
        for dev in devices.values():
            counted = _physical(private_fleet, dev.name, now)
            start = (now - days_back * 86400) // 3600 * 3600
            hist = reader.history(dev.id, start, start + 6 * 3600, max_points=8, metrics=("inbound_mbps",))
            width = hist.bucket_s
            assert hist.tier in ("5m", "1h") and width >= 3600
            checked = 0
            for p in hist.points:
                if p["inbound_mbps"] is None or p["t"] < start:
                    continue
                # A bucket holds the samples dated in it; each carries the 5 minutes before its time.
                t1, t2 = p["t"] - demo_history.COARSE_STEP_S, p["t"] + width - demo_history.COARSE_STEP_S
                want = _truth_mbps(private_fleet, dev.name, t1, t2, counted)
                assert p["inbound_mbps"] == pytest.approx(want, rel=TOLERANCE)
                checked += 1
            boot = private_fleet.truth(dev.name, now - 1, now)["boot"]
            assert checked >= 3 or boot > start


def test_pages_and_overview_say_demo_data_only_in_a_backfilled_folder(backfilled, web, tmp_path):
    _, _, _, devices = backfilled
    client = web
    dev = next(iter(devices.values()))
    assert client.get("/api/overview").get_json()["demo_data"] is True
    for path in ("/", f"/firewall/{dev.id}"):
        assert 'id="demo-badge"' in client.get(path).get_data(as_text=True)
    _, plain = make_client(tmp_path / "plain")
    assert plain.get("/api/overview").get_json()["demo_data"] is False
    assert 'id="demo-badge"' not in plain.get("/").get_data(as_text=True)


def test_through_the_box_and_uplink_in_out_agree_with_sim_truth(backfilled, web, private_fleet):
    _, now, _, devices = backfilled
    dev = next(iter(devices.values()))
    counted = _physical(private_fleet, dev.name, now)
    assert web.put(f"/api/devices/{dev.id}", json={"uplinks": ["ethernet1/1"]}).status_code == 200
    body = web.get(f"/api/throughput?device_id={dev.id}").get_json()
    s = body["sample"]
    assert body["uplinks"] == ["ethernet1/1"]
    ts = _epoch(s["timestamp"])
    truth = private_fleet.truth(dev.name, ts - 30, ts)["interfaces"]
    assert s["through_mbps"] == pytest.approx(_truth_mbps(private_fleet, dev.name, ts - 30, ts, counted), rel=TOLERANCE)
    assert s["uplink_in_mbps"] == pytest.approx(truth["ethernet1/1"]["in_bytes"] * 8 / 30 / 1e6, rel=TOLERANCE)
    assert s["uplink_out_mbps"] == pytest.approx(truth["ethernet1/1"]["out_bytes"] * 8 / 30 / 1e6, rel=TOLERANCE)
    # Every packet enters one port and leaves another: in + out of all ports counts it twice.
    assert s["total_mbps"] == pytest.approx(s["inbound_mbps"] + s["outbound_mbps"])
    points = web.get(f"/api/throughput/history?device_id={dev.id}&range=1h").get_json()["points"]
    for p in points[::29]:
        t = _epoch(p["t"])
        truth = private_fleet.truth(dev.name, t - 30, t)["interfaces"]
        assert p["through_mbps"] == p["inbound_mbps"]
        assert p["uplink_in_mbps"] == pytest.approx(truth["ethernet1/1"]["in_bytes"] * 8 / 30 / 1e6, rel=TOLERANCE)
    overview = {d["id"]: d for d in web.get("/api/overview").get_json()["devices"]}
    assert overview[dev.id]["uplinks"] == ["ethernet1/1"]
    assert overview[dev.id]["sample"]["uplink_in_mbps"] == pytest.approx(s["uplink_in_mbps"])


def _epoch(iso):
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_register_gives_a_new_folder_its_week_unless_told_not_to(private_fleet, tmp_path):
    from panfm.ops import demo

    bare, full = tmp_path / "bare", tmp_path / "full"
    argv = ["register", "--inventory", str(private_fleet.inventory_path), "--host", "127.0.0.1"]
    assert demo.main(["--data-dir", str(bare), *argv, "--no-history"]) == 0
    assert demo_history.marker(bare) is None and not (bare / HISTORY_DB).exists()
    assert demo.main(["--data-dir", str(full), *argv]) == 0
    assert demo_history.marker(full)["samples"] > 1000
    # Registered with the demo's uplink mark: the simulator's ethernet1/1 faces `untrust`.
    store = DeviceStore(full, _box(full), clock=time.time)
    assert {d.uplinks for d in store.list()} == {(demo.DEMO_UPLINK,)}


def test_the_week_holds_the_incidents_its_rules_would_have_raised(backfilled, private_fleet, tmp_path):
    data_dir, now, done, devices = backfilled
    from throughput_storage import ALERTS_DB, DocTable, alerts_store

    # A fresh demo folder gets the demo's rule set, and the marker counts what the replay opened.
    rules = DocTable(data_dir, "alert_rules", clock=time.time).list()
    assert {r["id"] for r in rules} == {r["id"] for r in demo_history.DEMO_RULES}
    assert len(alerts_store.history(data_dir / ALERTS_DB, since=0, limit=5000)) == done.incidents
    # A threshold every afternoon crosses: the median DP CPU of one firewall's two days.
    dev = next(iter(devices.values()))
    entry = private_fleet.entry(dev.name)
    doc = demo_history.fetch(entry, {"from": repr(now - 2 * 86400), "to": repr(now), "step": "300"})
    samples = [s for s, _ in demo_history.to_samples(dev, doc)]
    values = sorted(s.cpu_dataplane_pct for s in samples)
    threshold = values[len(values) // 2]
    rule = {"id": "median-dp", "name": "DP CPU above its median", "metric": "cpu_dataplane_pct", "operator": ">",
            "threshold": threshold, "for_s": 600, "severity": "warning", "device_id": None}
    opened = demo_history.replay_alerts(tmp_path, samples, [rule], {dev.id: dev.name})
    incidents = alerts_store.history(tmp_path / ALERTS_DB, since=0, limit=5000)
    assert opened == len(incidents) >= 2  # two afternoons, at least one crossing each
    for inc in incidents:
        assert inc["rule_id"] == "median-dp" and inc["device_id"] == dev.id
        assert inc["peak"] > threshold
        assert inc["ended_at"] is None or inc["duration_s"] >= 600
    # Nothing is sent for the past: no notification was enqueued.
    with alerts_store.outbox(tmp_path / ALERTS_DB) as box:
        assert box.due(now + 86400, 100) == []


def test_a_folder_with_collected_samples_keeps_its_history_its_own(private_fleet, tmp_path):
    from helpers.storage import cycle

    from throughput_storage import SampleStore

    register_demo_devices(tmp_path, private_fleet.inventory_path)
    dev = DeviceStore(tmp_path, _box(tmp_path), clock=time.time).list()[0]
    with SampleStore.open(tmp_path / HISTORY_DB) as store:
        store.write_cycle(cycle(time.time() - 60, devices=(dev.id,)))
    assert demo_history.backfill(tmp_path, private_fleet.inventory, time.time(), 30) is None
    assert demo_history.marker(tmp_path) is None
    with SampleReader.open(tmp_path / HISTORY_DB) as reader:
        assert reader.summary(dev.id, 0, time.time() + 1)["inbound_mbps"]["avg"] == 10.0  # only its own sample


def test_a_simulator_that_is_not_the_pinned_one_gets_no_question_and_writes_nothing(private_fleet, tmp_path):
    register_demo_devices(tmp_path, private_fleet.inventory_path)
    forged = [{**e, "tls_fingerprint_sha256": "00" * 32} for e in private_fleet.inventory]
    with pytest.raises(demo_history.BackfillError, match="certificate does not match"):
        demo_history.backfill(tmp_path, forged, time.time(), 60)
    assert demo_history.marker(tmp_path) is None and not demo_history.has_samples(tmp_path)
