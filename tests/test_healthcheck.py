"""Healthchecks against the real web app (served on an ephemeral port) and a real sample database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

import config
import panfm.ops.healthcheck as healthcheck
from app import create_app
from panfm.storage.samples import HISTORY_DB, SampleStore

ROOT = Path(__file__).resolve().parent.parent


def _settings(data_dir, **overrides):
    return config.load_settings(env={}, overrides={"data_dir": str(data_dir), "admin_password": "x" * 16, **overrides})


@pytest.fixture
def served(tmp_path):
    """The real app served by Werkzeug in a thread; yields its settings (port filled in)."""
    app = create_app(_settings(tmp_path, refresh_interval=10))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield _settings(tmp_path, refresh_interval=10, port=server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _heartbeat(data_dir, age_s):
    store = SampleStore.open(data_dir / HISTORY_DB)
    try:
        store.write_clock_stats({"total_executions": 1}, heartbeat=time.time() - age_s)
    finally:
        store.close()


def test_it_calls_the_web_healthy_on_200(served):
    _heartbeat(served.data_path, 1)
    assert healthcheck.check_web(served, strict=True) == (True, "web: ok (/api/health 200)")


def test_it_calls_the_web_up_but_not_strictly_healthy_when_the_clock_is_stale(served):
    _heartbeat(served.data_path, 3600)
    ok, line = healthcheck.check_web(served)
    assert ok and line.startswith("web: up, data degraded")
    assert healthcheck.check_web(served, strict=True)[0] is False


def test_it_calls_the_web_unhealthy_when_nothing_listens(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        ok, line = healthcheck.check_web(_settings(tmp_path, port=port))
    assert not ok and line.startswith(f"web: no answer on 127.0.0.1:{port}")


@pytest.mark.parametrize(("age", "healthy"), [(5, True), (89, True), (91, False)])
def test_it_judges_the_clock_by_heartbeat_age_against_three_intervals(tmp_path, age, healthy):
    _heartbeat(tmp_path, age)
    ok, line = healthcheck.check_clock(_settings(tmp_path, refresh_interval=30))
    assert ok is healthy, line
    assert line.startswith("clock: ok" if healthy else "clock: heartbeat")


def test_it_calls_the_clock_unhealthy_without_a_database_or_heartbeat(tmp_path):
    ok, line = healthcheck.check_clock(_settings(tmp_path))
    assert not ok and line.startswith("clock: sample database unavailable")
    SampleStore.open(tmp_path / HISTORY_DB).close()
    ok, line = healthcheck.check_clock(_settings(tmp_path))
    assert (ok, line) == (False, "clock: no heartbeat written yet")


def test_it_opens_the_sample_database_read_only(tmp_path):
    _heartbeat(tmp_path, 1)
    db = tmp_path / HISTORY_DB
    before = db.stat().st_mtime_ns
    assert healthcheck.check_clock(_settings(tmp_path))[0]
    assert db.stat().st_mtime_ns == before  # a writer would have migrated or checkpointed it


def test_it_prints_one_line_and_exits_by_health_as_a_command(tmp_path):
    env = {**os.environ, "PANFM_DATA_DIR": str(tmp_path), "PANFM_REFRESH_INTERVAL": "10"}
    run = [sys.executable, "-m", "panfm.ops.healthcheck", "clock"]
    bad = subprocess.run(run, env=env, capture_output=True, text=True, timeout=30, cwd=ROOT, check=False)
    assert bad.returncode == 1 and len(bad.stdout.splitlines()) == 1
    _heartbeat(tmp_path, 2)
    good = subprocess.run(run, env=env, capture_output=True, text=True, timeout=30, cwd=ROOT, check=False)
    assert good.returncode == 0 and good.stdout.startswith("clock: ok"), good.stdout + good.stderr
    broken = {**env, "PANFM_REFRESH_INTERVAL": "nonsense"}
    cfg = subprocess.run(run, env=broken, capture_output=True, text=True, timeout=30, cwd=ROOT, check=False)
    assert cfg.returncode == 1 and "refresh_interval" in cfg.stdout
