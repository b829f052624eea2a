"""`make demo`'s program: simulator + clock + web from one command, live data, clean stop."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo-initial-password"

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(opener, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-CSRFToken", token)
    with opener.open(req, timeout=10) as resp:
        return json.loads(resp.read())


def _descendants(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,sid="], capture_output=True, text=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    found, todo = set(), {pid}
    while todo:
        parent = todo.pop()
        for p, pp, _sid in rows:
            if pp == parent and p not in found:
                found.add(p)
                todo.add(p)
    return found


def test_demo_shows_live_data_for_three_simulated_firewalls_and_stops_cleanly(tmp_path):
    port = _free_port()
    env = {**os.environ, "PANFM_ADMIN_PASSWORD": PASSWORD, "PANFM_REFRESH_INTERVAL": "5"}
    log = (tmp_path / "demo.log").open("wb")
    argv = [sys.executable, "-m", "panfm.ops.demo", "--data-dir", str(tmp_path / "demo"), "--port", str(port)]
    proc = subprocess.Popen(argv,
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    children = set()
    try:
        base = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        deadline = time.monotonic() + 90
        login = None
        while time.monotonic() < deadline and login is None:
            try:
                login = _call(opener, base + "/api/login", {"username": "admin", "password": PASSWORD})
            except OSError:
                assert proc.poll() is None, (tmp_path / "demo.log").read_text()
                time.sleep(0.5)
        assert login, "the demo's web never answered"
        assert f"http://localhost:{port}" in (tmp_path / "demo.log").read_text()
        assert f"admin / {PASSWORD}" in (tmp_path / "demo.log").read_text()
        children = _descendants(proc.pid)
        _call(opener, base + "/api/change-password",
              {"old_password": PASSWORD, "new_password": "a-new-demo-password"}, login["csrf_token"])
        login = _call(opener, base + "/api/login", {"username": "admin", "password": "a-new-demo-password"})
        live = []
        while time.monotonic() < deadline:
            devices = _call(opener, base + "/api/overview")["devices"]
            live = [d for d in devices if d["sample"] and (d["sample"]["inbound_mbps"] or 0) > 0]
            if len(devices) == 3 and len(live) == 3:
                break
            time.sleep(1)
        assert len(live) == 3, devices
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        proc.wait(timeout=30)
        log.close()
    time.sleep(0.5)
    left = {p for p in children if _running(p)}
    assert not left, f"processes left behind: {left}"


def _running(pid):
    """Alive and not a zombie waiting for a reaper (the sandbox's init may not reap at once)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
