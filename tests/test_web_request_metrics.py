"""The web's own request metrics on /metrics: a per-app registry, and gunicorn's workers summed."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import config
from app import create_app

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "web-request-metrics-token"


def _samples(text):
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def _total(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_requests_are_counted_on_the_apps_own_registry(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "metrics_token": TOKEN})
    client = create_app(settings).test_client()
    for _ in range(3):
        assert client.get("/login").status_code == 200
    client.get("/no-such-page")
    body = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    s = _samples(body)
    login = [ls for (n, ls) in s if n == "panfm_web_requests_total" and ("status", "200") in ls
             and ("method", "GET") in ls and dict(ls)["endpoint"] != "metrics.metrics"]
    assert len(login) == 1 and s[("panfm_web_requests_total", login[0])] == 3
    assert _total(s, "panfm_web_requests_total", endpoint="none", status="404") == 1
    endpoint = dict(login[0])["endpoint"]
    assert _value(s, "panfm_web_request_duration_seconds_count", endpoint=endpoint) == 3
    # Another app in the same process starts from zero: no global registry.
    other = create_app(settings).test_client()
    body = other.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert _total(_samples(body), "panfm_web_requests_total", endpoint=endpoint) == 0


def _wait_for(log, pattern, proc, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {timeout} s: {log.read_text()[-2000:]}")


def _get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
def _warm_up(url: str) -> None:
    """Wait until the web answers URL (a connection refused or reset while workers boot is retried)."""
    end = time.monotonic() + 30
    while True:
        try:
            _get(url)
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_gunicorn_workers_request_counts_add_up_on_one_scrape(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PANFM_", "PROMETHEUS_"))}
    env.update({"PANFM_DATA_DIR": str(data), "PANFM_METRICS_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"})
    log = tmp_path / "web.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0",
             "--workers", "2", "--no-control-socket", "app:create_app()"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        port = _wait_for(log, r"Listening at: http://127\.0\.0\.1:(\d+)", proc).group(1)
        base = f"http://127.0.0.1:{port}"
        # Both workers booted, and one answers (under a loaded CI machine the second may take
        # seconds): the counted requests start only then.
        end = time.monotonic() + 60
        while len(re.findall(r"Booting worker", log.read_text())) < 2 and time.monotonic() < end:
            time.sleep(0.1)
        _warm_up(f"{base}/api/version")
        folder = data / "prometheus-multiproc"
        assert folder.is_dir() and (folder.stat().st_mode & 0o077) == 0

        def pids():
            return {m.group(1) for f in folder.glob("counter_*.db") if (m := re.match(r"counter_(\d+)\.db", f.name))}

        def burst(count):
            with ThreadPoolExecutor(8) as pool:
                return list(pool.map(lambda _: _get(f"{base}/login")[0], range(count)))

        first = 40
        assert burst(first) == [200] * first
        served = pids()
        assert served
        # gthread workers may take every connection in one process: end the ones that served
        # (gunicorn starts others), so the next requests land in other workers and the scrape
        # must sum live and dead workers' files.
        for pid in served:
            os.kill(int(pid), signal.SIGTERM)
        end = time.monotonic() + 30
        while len(re.findall(r"Booting worker", log.read_text())) < 2 + len(served) and time.monotonic() < end:
            time.sleep(0.1)
        second = 40
        assert burst(second) == [200] * second
        assert len(pids()) >= 2, pids()
        n = first + second
        status, body = _get(f"{base}/metrics", TOKEN)
        assert status == 200
        s = _samples(body)
        login_total = sum(v for (name, ls), v in s.items() if name == "panfm_web_requests_total"
                          and ("status", "200") in ls and ("method", "GET") in ls
                          and dict(ls)["endpoint"] == "pages.login")
        assert login_total == n
        assert _total(s, "panfm_web_request_duration_seconds_count") >= n
        assert _value(s, "panfm_up") in (0.0, 1.0)  # the database's series are on the same answer
        # A second scrape counts the first one.
        s2 = _samples(_get(f"{base}/metrics", TOKEN)[1])
        assert _total(s2, "panfm_web_requests_total", endpoint="metrics.metrics", status="200") >= 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
