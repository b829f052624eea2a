"""A real `python clock.py` killed with -9 during commits, and a reader querying while it writes."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SIM_ENV, start_sim

import config
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import DeviceStore
from panfm.storage.samples import HISTORY_DB, SampleReader

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

READER = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from panfm.storage.samples import SampleReader
db, end, n, errors = Path(sys.argv[1]), time.monotonic() + float(sys.argv[3]), 0, []
while time.monotonic() < end:
    try:
        with SampleReader.open(db) as r:
            r.latest_all(); r.clock_stats(); r.device_statuses()
        n += 1
    except Exception as exc:
        errors.append(repr(exc))
print(n, len(errors), errors[:3])
"""


def start_clock(data_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
    env.update({"PANFM_DATA_DIR": str(data_dir), "PANFM_REFRESH_INTERVAL": "5", **SIM_ENV})
    return subprocess.Popen([sys.executable, str(ROOT / "clock.py")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def heartbeat(db):
    try:
        with SampleReader.open(db) as reader:
            stats = reader.clock_stats()
    except Exception:
        return None
    return stats and (stats["heartbeat"], stats["pid"])


def register(data_dir, sim):
    store = DeviceStore(data_dir, config.SecretBox.for_data_dir(data_dir), clock=time.time)
    for e in sim.inventory:
        store.add(DeviceConfig(id="", name=e["name"], host=e["host"], port=e["port"], api_key=e["api_key"],
                               tls=TlsConfig("pin", fingerprint_sha256=e["tls_fingerprint_sha256"])))


def wait_commit_by(db, pid, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        hb = heartbeat(db)
        if hb and hb[1] == pid:
            return hb
        time.sleep(0.02)
    raise AssertionError("the clock committed no cycle")


def test_it_survives_kill_9_during_commits_with_every_committed_cycle_whole(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = data / HISTORY_DB
    rng = random.Random(3)
    with start_sim(tmp_path, devices=2, models="PA-440,PA-3220") as sim:
        register(data, sim)
        for _ in range(5):
            proc = start_clock(data)
            try:
                wait_commit_by(db, proc.pid)
                # Kill somewhere in the next cycle: collection, commit or rollups.
                time.sleep(4.5 + rng.uniform(0.0, 1.0))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_device = dict(conn.execute("SELECT device_id, COUNT(*) FROM device_samples GROUP BY device_id"))
        assert len(per_device) == 2 and len(set(per_device.values())) == 1, per_device  # no half cycle
        cycles = next(iter(per_device.values()))
        assert cycles >= 5
        per_iface = conn.execute(
            "SELECT device_id, interface, COUNT(*) FROM interface_samples GROUP BY device_id, interface").fetchall()
        assert per_iface and {n for _, _, n in per_iface} == {cycles}
        # Only the very first cycle lacks a rate: every restart resumed from the persisted baselines.
        gaps = dict(conn.execute(
            "SELECT device_id, COUNT(*) FROM device_samples WHERE inbound_mbps IS NULL GROUP BY device_id"))
        assert gaps == dict.fromkeys(per_device, 1)
    finally:
        conn.close()


def test_it_lets_a_reader_process_query_while_the_clock_writes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = data / HISTORY_DB
    with start_sim(tmp_path, devices=2, models="PA-440,PA-VM") as sim:
        register(data, sim)
        proc = start_clock(data)
        try:
            wait_commit_by(db, proc.pid)
            reader = subprocess.run([sys.executable, "-c", READER, str(db), str(ROOT), "7"],
                                    capture_output=True, text=True, timeout=60)
            first = heartbeat(db)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=12) == 0
    queries, errors, sample = reader.stdout.split(" ", 2)
    assert int(queries) > 50 and int(errors) == 0, sample
    assert "locked" not in reader.stdout + reader.stderr
    assert first is not None
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size < 64 * 1024 * 1024
