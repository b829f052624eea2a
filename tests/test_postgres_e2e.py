"""PANfm on PostgreSQL end to end: the real clock and two gunicorn webs, each with a data folder of its own.

Nothing is shared but the database and the environment's keys: a device added through one web is
polled by the clock (its secret decrypted with the shared key), its samples and the connected
devices its inventory found are served by the other web, a session opened on one web is good on
the other (login throttle and CSRF alike), and so are a second user with its role and an API
token created on the other web; the audit trail of both webs is one.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import SIM_ENV, pg_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
INITIAL = "initial-password-1"
NEW = "a-much-better-password"
METRICS_TOKEN = "metrics-token-for-the-e2e-test-0123456789"


def _env(data_dir: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANFM_", "PROMETHEUS_"))}
    env.update({"PANFM_DATA_DIR": str(data_dir), "PANFM_REFRESH_INTERVAL": "5", "PANFM_ADMIN_PASSWORD": INITIAL,
                "PYTHONUNBUFFERED": "1", "PANFM_METRICS_TOKEN": METRICS_TOKEN, **SIM_ENV, **pg_env(url), **extra})
    return env


def _start_web(tmp_path: Path, name: str, url: str) -> tuple[subprocess.Popen, str, Path]:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0",
             "--workers", "1", "--no-control-socket", "app:create_app()"],
            cwd=ROOT, env=_env(tmp_path / name, url), stdout=fh, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            base = f"http://127.0.0.1:{found.group(1)}"
            while time.monotonic() < end:
                try:
                    urllib.request.urlopen(f"{base}/api/version", timeout=5).read()
                    return proc, base, log
                except OSError:
                    time.sleep(0.2)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"web {name} did not start: {log.read_text()[-2000:]}")


class Client:
    """A cookie-keeping HTTP client that sends the CSRF token it was given."""

    def __init__(self, jar: http.cookiejar.CookieJar | None = None, token: str = "") -> None:
        self.jar = jar or http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.token = token

    def call(self, base: str, method: str, path: str, body: object = None, bearer: str = "") -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-CSRFToken": self.token}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_clock_and_two_webs_share_one_postgresql_and_nothing_else(tmp_path, pg_url, sim_fleet):
    procs: list[subprocess.Popen] = []
    try:
        web1, base1, _ = _start_web(tmp_path, "web1", pg_url)
        procs.append(web1)
        web2, base2, _ = _start_web(tmp_path, "web2", pg_url)
        procs.append(web2)
        # Log in and change the initial password on web 1 ...
        c = Client()
        status, body = c.call(base1, "POST", "/api/login", {"username": "admin", "password": INITIAL})
        assert status == 200, body
        c.token = body["csrf_token"]
        status, body = c.call(base1, "POST", "/api/change-password", {"old_password": INITIAL, "new_password": NEW})
        assert status == 200, body
        # ... and use that session, with its CSRF token, on web 2: add a device there.
        entry = sim_fleet.devices[0]
        status, body = c.call(base2, "POST", "/api/devices", {
            "name": entry["name"], "host": entry["host"], "port": entry["port"], "api_key": entry["api_key"],
            "tls": {"mode": "pin", "fingerprint_sha256": entry["tls_fingerprint_sha256"]},
            "uplinks": ["ethernet1/1"]})
        assert status == 201, body
        device_id = body["id"]
        # A request without the token is refused on either web.
        assert Client(c.jar).call(base1, "DELETE", f"/api/devices/{device_id}")[0] in (400, 403)
        # The clock, with a data folder of its own, decrypts the device's key and polls it.
        with (tmp_path / "clock.log").open("wb") as clock_log:
            clock = subprocess.Popen([sys.executable, "clock.py"], cwd=ROOT, env=_env(tmp_path / "clock", pg_url),
                                     stdout=clock_log, stderr=subprocess.STDOUT)
        procs.append(clock)
        sample = None
        end = time.monotonic() + 60
        while time.monotonic() < end and clock.poll() is None:
            status, body = c.call(base1, "GET", f"/api/throughput?device_id={device_id}")
            assert status == 200, body
            if body["sample"] and body["sample"]["total_mbps"] is not None:
                sample = body["sample"]
                break
            time.sleep(0.5)
        assert sample is not None, (tmp_path / "clock.log").read_text()[-3000:]
        # The same numbers from the other web.
        status, other = c.call(base2, "GET", f"/api/throughput?device_id={device_id}")
        assert status == 200 and other["sample"]["total_mbps"] is not None
        # The overview (first look) of the other web: the uplink marked on web 2, through the box, the last hour.
        status, body = c.call(base2, "GET", "/api/overview")
        assert status == 200 and [d["id"] for d in body["devices"]] == [device_id], body
        [shown] = body["devices"]
        assert shown["uplinks"] == ["ethernet1/1"] and shown["sample"]["through_mbps"] is not None
        status, body = c.call(base2, "GET", "/api/overview/history?range=1h")
        assert status == 200 and any(v is not None for v in body["devices"][0]["through_mbps"]), body
        status, body = c.call(base1, "GET", f"/api/throughput/history?device_id={device_id}&range=1h")
        assert status == 200 and any("uplink_in_mbps" in p for p in body["points"]), body
        # The clock's inventory wrote the firewall's connected devices to PostgreSQL; the other web lists them.
        hosts: list[dict] = []
        # The inventory's ACC report and log jobs poll the simulator: on a loaded machine (the whole suite on
        # two cores) its first run took longer than 90 s; the test's own timeout is 300 s.
        end = time.monotonic() + 150
        while time.monotonic() < end and clock.poll() is None and not hosts:
            status, body = c.call(base2, "GET", f"/api/connected-devices?device_id={device_id}")
            assert status == 200, body
            hosts = body["devices"]
            time.sleep(1.0)
        assert hosts, (tmp_path / "clock.log").read_text()[-3000:]
        assert all(h["device_id"] == device_id and h["mac"] for h in hosts) and body["as_of"].get(device_id)
        # A second user, created on web 1 as a viewer, logs in on web 2: it reads, it may not change.
        status, body = c.call(base1, "POST", "/api/users", {"username": "vera", "password": INITIAL,
                                                            "role": "viewer"})
        assert status == 201 and body["role"] == "viewer", body
        vera = Client()
        status, body = vera.call(base2, "POST", "/api/login", {"username": "vera", "password": INITIAL})
        assert status == 200 and body["must_change_password"], body
        vera.token = body["csrf_token"]
        assert vera.call(base2, "POST", "/api/change-password", {"old_password": INITIAL,
                                                                 "new_password": NEW})[0] == 200
        assert vera.call(base1, "GET", f"/api/connected-devices?device_id={device_id}")[0] == 200
        status, body = vera.call(base1, "DELETE", f"/api/devices/{device_id}")
        assert status == 403 and body["required_role"] == "admin", body
        # An API token made on web 2 works on web 1; revoked on web 1, it is refused on web 2.
        status, body = c.call(base2, "POST", "/api/tokens", {"name": "grafana", "role": "viewer"})
        assert status == 201, body
        token_id, secret = body["id"], body["token"]
        status, body = Client().call(base1, "GET", f"/api/throughput?device_id={device_id}", bearer=secret)
        assert status == 200 and body["sample"] is not None, body
        assert c.call(base1, "DELETE", f"/api/tokens/{token_id}")[0] == 200
        assert Client().call(base2, "GET", f"/api/throughput?device_id={device_id}", bearer=secret)[0] == 401
        # One audit trail: what both webs recorded, newest first.
        status, body = c.call(base2, "GET", "/api/audit?limit=50")
        assert status == 200, body
        actions = [(e["actor"], e["action"]) for e in body["entries"]]
        assert ("admin", "token.revoke") in actions and ("admin", "user.create") in actions
        assert ("vera", "login") in actions and ("admin", "device.create") in actions
        # /metrics of the other web reads the same database: up, and the device's series.
        req = urllib.request.Request(f"{base2}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            metrics = resp.read().decode()
        assert "panfm_up 1.0" in metrics and f'device="{entry["name"]}"' in metrics
        # The healthchecks read the database: the clock's heartbeat, the web's /api/health.
        for process in ("clock", "web"):
            env = _env(tmp_path / "clock", pg_url, PANFM_PORT=base1.rsplit(":", 1)[1])
            check = subprocess.run([sys.executable, "-m", "panfm.ops.healthcheck", process], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, check.stdout + check.stderr
        # Logging out on web 2 ends the session on web 1.
        assert c.call(base2, "POST", "/api/logout")[0] == 200
        assert c.call(base1, "GET", f"/api/throughput?device_id={device_id}")[0] == 401
        # No host kept a key, a settings file or a database of its own.
        for name in ("web1", "web2", "clock"):
            folder = tmp_path / name
            assert not (folder / "encryption.key").exists() and not (folder / "secret_key").exists()
            assert not list(folder.glob("*.db")), sorted(p.name for p in folder.iterdir())
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _health(base: str, timeout: float = 60) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{base}/api/health", timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_web_worker_forked_again_while_postgresql_is_away_boots_and_the_web_lives_on(tmp_path, pg_server, pg_url):
    proc, base, log = _start_web(tmp_path, "web", pg_url)
    try:
        (first,) = re.findall(r"Booting worker with pid: (\d+)", log.read_text())
        assert _health(base)[1]["database"] == "ok"  # the worker's pool holds live connections
        pg_server.stop("fast")
        try:
            # The health check says so at once, not after the pool's 15-s waits for each read.
            status, doc = _health(base, timeout=10)
            assert status == 503 and doc["database"] == "unavailable" and "PostgreSQL" in doc["reason"], doc
            os.kill(int(first), signal.SIGKILL)  # a worker crashed (or was recycled) while the server restarts
            end = time.monotonic() + 60
            while time.monotonic() < end and len(re.findall(r"Booting worker", log.read_text())) < 2:
                time.sleep(0.2)
            # The new worker boots without the database (the master checked it at start) and says so,
            # at once: its first-user check does not wait the pool's 15 s for a server that is away.
            status, doc = _health(base, timeout=10)
            assert status == 503 and doc["database"] == "unavailable" and "PostgreSQL" in doc["reason"], doc
            assert "first-user check runs again at the next login" in log.read_text()
            assert proc.poll() is None, f"gunicorn stopped: {log.read_text()[-1500:]}"
        finally:
            pg_server.start()
        end = time.monotonic() + 60
        while time.monotonic() < end and _health(base)[1]["database"] != "ok":  # (no clock runs here)
            time.sleep(0.5)
        client = Client()
        status, doc = client.call(base, "POST", "/api/login", {"username": "admin", "password": INITIAL})
        assert status == 200 and doc["must_change_password"], doc  # the same first user, made once
        assert proc.poll() is None and "Worker failed to boot" not in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
