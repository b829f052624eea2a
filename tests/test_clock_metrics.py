"""The clock's own process metrics on clock_metrics_port: a real `python clock.py` scraped over HTTP."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SIM_ENV, device_for, require
from helpers.storage import stored_clock_stats
from prometheus_client.parser import text_string_to_metric_families

import config
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import DeviceStore

ROOT = Path(__file__).resolve().parent.parent


def _env(data_dir, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
    env.update({"PANFM_DATA_DIR": str(data_dir), "PANFM_REFRESH_INTERVAL": "5", "PANFM_BIND_HOST": "127.0.0.1",
                **SIM_ENV, **extra})
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir, **extra):
    return subprocess.Popen([sys.executable, str(ROOT / "clock.py")], cwd=ROOT, env=_env(data_dir, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _wait_for(predicate, timeout=40.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


TOKEN = "clock-scrape-token-0123456789"


def _scrape(port, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


def _status(port, token):
    """(HTTP status, WWW-Authenticate, body) of one scrape; status 0 while nothing listens yet."""
    try:
        _scrape(port, token)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("WWW-Authenticate", ""), exc.read().decode()
    except OSError:
        return 0, "", ""
    return 200, "", ""


def _samples(text):
    """{(sample name, frozenset(labels)): value} of one exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def _try_scrape(port):
    try:
        return _samples(_scrape(port))
    except OSError:
        return None



@pytest.fixture
def fleet_folder(tmp_path, private_fleet):
    """A data folder with one healthy simulated firewall and one on a closed port."""
    devices = DeviceStore(tmp_path, config.SecretBox.for_data_dir(tmp_path), clock=time.time)
    devices.add(device_for(private_fleet.devices[0]))
    devices.add(DeviceConfig(id="", name="fw-gone", host="127.0.0.1", port=_free_port(), api_key="k",
                             tls=TlsConfig("insecure")))
    return tmp_path


@pytest.mark.slow
def test_the_clock_serves_poll_cycle_breaker_and_job_metrics(fleet_folder):
    port = _free_port()
    proc = _start(fleet_folder, PANFM_CLOCK_METRICS_PORT=str(port), PANFM_METRICS_TOKEN=TOKEN)
    try:
        first = _wait_for(
            lambda: (s := _try_scrape(port)) and _value(s, "panfm_clock_cycle_duration_seconds_count") >= 1 and s,
            what="the first cycle on the metrics port")
        later = _wait_for(
            lambda: (s := _try_scrape(port)) and _value(s, "panfm_clock_cycle_duration_seconds_count") >= 3 and s,
            what="two more cycles")
        for command in ("counters", "session_info", "resource_monitor", "system_resources"):
            before = _value(first, "panfm_clock_poll_duration_seconds_count", command=command)
            after = _value(later, "panfm_clock_poll_duration_seconds_count", command=command)
            assert after > before >= 1, command
            assert _value(later, "panfm_clock_poll_duration_seconds_sum", command=command) > 0
        assert _value(later, "panfm_clock_poll_errors_total", kind="ConnectError") >= 3
        assert _value(later, "panfm_clock_breaker_state", state="up") == 1
        assert (_value(later, "panfm_clock_breaker_state", state="down")
                + _value(later, "panfm_clock_breaker_state", state="breaker_open")) == 1
        assert _value(later, "panfm_clock_job_executions_total", job="collect") >= 3
        assert _value(later, "panfm_clock_job_errors_total", job="collect") == 0
        assert ("panfm_clock_missed_runs_total", frozenset()) in later
        assert _value(later, "panfm_clock_cycle_duration_seconds_sum") > 0

        require(shutil.which("promtool"), "promtool (apt-get install prometheus)")
        check = subprocess.run(["promtool", "check", "metrics"], input=_scrape(port), capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), (
            check.stdout + check.stderr)
    finally:
        _stop(proc)


def _listening_inodes():
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid):
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:["):-1])
    return out


@pytest.mark.slow
def test_the_clock_listens_on_no_port_by_default(tmp_path):
    require(Path("/proc/net/tcp").exists(), "/proc/net/tcp (Linux)")
    proc = _start(tmp_path)
    try:
        _wait_for(lambda: stored_clock_stats(tmp_path), what="first heartbeat")
        assert not _socket_inodes(proc.pid) & _listening_inodes()
    finally:
        _stop(proc)


@pytest.mark.slow
def test_the_clock_port_asks_for_the_metrics_token_as_the_web_does(tmp_path):
    port = _free_port()
    proc = _start(tmp_path, PANFM_CLOCK_METRICS_PORT=str(port), PANFM_METRICS_TOKEN=TOKEN)
    try:
        _wait_for(lambda: _try_scrape(port), what="the metrics port")
        for wrong in (None, "", "not-the-token", TOKEN + "x", TOKEN[:-1]):
            status, challenge, body = _status(port, wrong)
            assert status == 401, wrong
            assert challenge.startswith("Bearer")
            assert "metrics_token" in body and TOKEN not in body
        assert _status(port, TOKEN)[0] == 200
    finally:
        _stop(proc)


@pytest.mark.slow
def test_the_clock_port_without_a_token_refuses_unless_metrics_are_public(tmp_path):
    port = _free_port()
    proc = _start(tmp_path, PANFM_CLOCK_METRICS_PORT=str(port))
    try:
        _wait_for(lambda: _status(port, None)[0] == 401, what="the metrics port refusing")
        assert _status(port, "")[0] == 401  # an empty token never matches an empty setting
    finally:
        out = _stop_output(proc)
    assert "every scrape of the clock's metrics gets 401" in out

    port = _free_port()
    proc = _start(tmp_path, PANFM_CLOCK_METRICS_PORT=str(port), PANFM_METRICS_PUBLIC="true")
    try:
        samples = _wait_for(lambda: _try_scrape_open(port), what="the public metrics port")
        assert ("panfm_clock_missed_runs_total", frozenset()) in samples
    finally:
        _stop(proc)


def _try_scrape_open(port):
    try:
        return _samples(_scrape(port, token=None))
    except OSError:
        return None


def _stop_output(proc):
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_a_port_in_use_stops_the_clock_with_a_message_naming_the_setting(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, str(ROOT / "clock.py")], cwd=ROOT,
                              env=_env(tmp_path, PANFM_CLOCK_METRICS_PORT=str(port)),
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "clock_metrics_port" in proc.stderr and f"127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_the_setting_is_off_by_default_and_read_from_the_environment():
    assert config.load_settings(env={}).clock_metrics_port == 0
    assert config.load_settings(env={"PANFM_CLOCK_METRICS_PORT": "9464"}).clock_metrics_port == 9464
    with pytest.raises(config.ConfigError, match="clock_metrics_port"):
        config.load_settings(env={"PANFM_CLOCK_METRICS_PORT": "70000"})
