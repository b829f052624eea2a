"""Per-dataplane CPU and the busiest core: kept by the clock, stored each cycle, answered by /api/throughput."""

from __future__ import annotations

import sqlite3
import time

import pytest
from helpers.collector import ctr, device
from helpers.collector import rig as rig
from helpers.web import add_device, make_client

from panfm.models import CycleResult, DataplaneCpu, DeviceSample, DeviceStatus
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.schema import SCHEMA_VERSION


def test_it_hands_each_polls_per_dataplane_cpu_and_busiest_core_to_storage(rig):
    box, collector = rig
    box["snapshots"] = [[ctr("ethernet1/1", 0, 0)]]
    cycle = collector.collect([device()], 30)
    (detail,) = cycle.dataplanes
    assert detail.device_id == "d1" and detail.ts == cycle.samples[0].ts
    assert detail.dataplanes == (("dp0", 30.0), ("dp1", 5.0))  # idle control cores left out
    assert detail.busiest_core == ("dp0", 2, 40.0)
    assert cycle.samples[0].cpu_dataplane_pct == 30.0


def cycle_at(device_id: str, ts: float, dataplanes: tuple[DataplaneCpu, ...]) -> CycleResult:
    return CycleResult(started=ts - 1, finished=ts, samples=(DeviceSample(device_id, ts, cpu_dataplane_pct=30.0),),
                       interfaces=(), baselines=(), statuses=(DeviceStatus(device_id, "up", ts, ts),),
                       dataplanes=dataplanes)


def test_it_keeps_the_latest_per_dataplane_cpu_of_each_device(tmp_path):
    db = tmp_path / HISTORY_DB
    with SampleStore.open(db) as store:
        store.write_cycle(cycle_at("fw1", 1000.0, (DataplaneCpu("fw1", 1000.0, (("dp0", 10.0),), None),)))
        store.write_cycle(cycle_at("fw1", 1030.5, (
            DataplaneCpu("fw1", 1030.5, (("dp0", 30.0), ("dp1", None)), ("dp0", 2, 40.0)),)))
    with SampleReader.open(db) as reader:
        assert reader.dataplane_cpu("fw1") == {
            "ts": 1030.5, "dataplanes": [{"name": "dp0", "pct": 30.0}, {"name": "dp1", "pct": None}],
            "busiest_core": {"dataplane": "dp0", "core": 2, "pct": 40.0},
        }
        assert reader.dataplane_cpu("fw2") is None
        assert reader.dataplane_cpu_all() == {"fw1": reader.dataplane_cpu("fw1")}
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM dataplane_latest").fetchone()[0] == 1  # one row per device
    finally:
        conn.close()


@pytest.fixture
def api(tmp_path):
    _app, client = make_client(tmp_path)
    yield client, add_device(client, "fw-dp", "192.0.2.20"), tmp_path / HISTORY_DB


def test_it_answers_the_per_dataplane_cpu_of_the_latest_sample(api):
    client, fw, db = api
    now = time.time()
    with SampleStore.open(db) as store:
        store.write_cycle(cycle_at(fw, now, (DataplaneCpu(fw, now, (("dp0", 30.0), ("dp1", 5.0)), ("dp0", 2, 40.0)),)))
    cpu = client.get(f"/api/throughput?device_id={fw}").get_json()["sample"]["cpu"]
    assert cpu == {"dataplane_pct": 30.0, "management_pct": None,
                   "dataplanes": [{"name": "dp0", "pct": 30.0}, {"name": "dp1", "pct": 5.0}],
                   "busiest_core": {"dataplane": "dp0", "core": 2, "pct": 40.0}}


def test_it_never_pairs_a_sample_with_older_per_dataplane_values(api):
    client, fw, db = api
    now = time.time()
    with SampleStore.open(db) as store:
        store.write_cycle(cycle_at(fw, now - 30, (DataplaneCpu(fw, now - 30, (("dp0", 80.0),), ("dp0", 1, 90.0)),)))
        store.write_cycle(cycle_at(fw, now, ()))  # e.g. a sample written without details
    cpu = client.get(f"/api/throughput?device_id={fw}").get_json()["sample"]["cpu"]
    assert cpu["dataplanes"] == [] and cpu["busiest_core"] is None
