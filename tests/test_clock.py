"""The clock process: jobs called directly, one clock per folder, signals, settings picked up live."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SIM_ENV, SIM_NETWORKS
from helpers.storage import stored_clock_stats

import clock
import config
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import DeviceStore
from panfm.storage.samples import HISTORY_DB, SampleReader

ROOT = Path(__file__).resolve().parent.parent


def _env(data_dir, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
    env.update({"PANFM_DATA_DIR": str(data_dir), "PANFM_REFRESH_INTERVAL": "5", **SIM_ENV, **extra})
    return env


def start_clock(data_dir, **extra):
    return subprocess.Popen([sys.executable, str(ROOT / "clock.py")], cwd=ROOT, env=_env(data_dir, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")



@pytest.fixture
def ctx(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "refresh_interval": 5,
                                                       "allowed_device_networks": SIM_NETWORKS})
    context = clock.build_context(settings)
    context.load_settings = lambda: config.load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    yield context
    context.collector.close()
    context.store.close()


def _device(name, port):
    return DeviceConfig(id="", name=name, host="127.0.0.1", port=port, api_key="k", tls=TlsConfig("insecure"))


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_it_writes_stats_and_heartbeat_with_an_empty_data_folder(ctx):
    cycle = clock.collect_once(ctx)
    assert cycle is not None and cycle.samples == ()
    with SampleReader.open(ctx.data_dir / HISTORY_DB) as reader:
        stats = reader.clock_stats()
    assert stats["heartbeat"] == pytest.approx(cycle.finished)
    assert stats["total_executions"] == 1 and stats["total_errors"] == 0
    assert stats["recent"][0]["job"] == "collect" and stats["recent"][0]["outcome"] == "ok"


def test_it_picks_up_devices_and_refresh_interval_without_restart(ctx):
    sched = clock.build_scheduler(ctx)
    devices = DeviceStore(ctx.data_dir, config.SecretBox.for_data_dir(ctx.data_dir), clock=time.time)
    first = devices.add(_device("fw-a", _closed_port()))
    cycle = clock.collect_once(ctx)
    assert [s.device_id for s in cycle.statuses] == [first] and cycle.statuses[0].state == "down"
    second = devices.add(_device("fw-b", _closed_port()))
    config.save_settings(ctx.data_dir, {"refresh_interval": 7})
    cycle = clock.collect_once(ctx)
    assert {s.device_id for s in cycle.statuses} == {first, second}
    assert sched.get_job("collect").trigger.interval.total_seconds() == 7
    dev = devices.get(first)
    devices.update(DeviceConfig(**{**dev.__dict__, "enabled": False}))
    cycle = clock.collect_once(ctx)
    assert [s.device_id for s in cycle.statuses] == [second]


def test_it_runs_an_after_cycle_hook_only_after_the_commit(ctx):
    seen = []

    def hook(context, cycle):
        with SampleReader.open(context.data_dir / HISTORY_DB) as reader:
            seen.append(reader.clock_stats()["heartbeat"] == cycle.finished)

    ctx.after_cycle.append(hook)
    clock.collect_once(ctx)
    assert seen == [True]


@pytest.mark.slow
def test_it_refuses_a_second_clock_and_stops_on_sigterm_with_exit_0(tmp_path):
    first = start_clock(tmp_path)
    try:
        wait_for(lambda: stored_clock_stats(tmp_path), what="first heartbeat")
        second = subprocess.run([sys.executable, str(ROOT / "clock.py")], cwd=ROOT, env=_env(tmp_path),
                                capture_output=True, text=True, timeout=30)
        assert second.returncode != 0
        assert "already runs for data folder" in second.stderr
        t0 = time.monotonic()
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=12)
        assert first.returncode == 0, out
        assert time.monotonic() - t0 < 10
        assert "[CLOCK INIT]" in out and "[CLOCK EVENT]" in out and "[CLOCK JOB]" in out
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()


def test_it_exits_with_a_clear_message_when_settings_are_unusable(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "clock.py")], cwd=ROOT,
                          env=_env(tmp_path, PANFM_REFRESH_INTERVAL="1"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "cannot start" in proc.stderr and "refresh_interval" in proc.stderr


def test_it_frees_the_lock_when_a_clock_dies(tmp_path):
    held = clock.acquire_lock(tmp_path)
    with pytest.raises(clock.AlreadyRunning):
        clock.acquire_lock(tmp_path)
    held.close()  # as the OS does for a killed process
    clock.acquire_lock(tmp_path).close()
