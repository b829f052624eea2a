"""Measure the web under load: gunicorn (2 workers), 20 concurrent clients, on a 100-device 90-day DB.

    .venv/bin/python bench/gen_history_db.py ...            # writes DATA/throughput_history.db
    .venv/bin/python bench/bench_web.py --data DATA [--seconds 20] [--clients 20] [--pace 0]

The data folder's sample database is read, its devices are registered in config.db (same ids),
gunicorn is started on an ephemeral port with the project's gunicorn.conf.py, the bench logs in
(and changes the initial password), then every client alternates random-device requests to
`/api/throughput` and `/api/throughput/history?range=30d`. Prints p50/p95/p99 per endpoint.
`--pace 0` sends each client's next request as soon as the last one returned (saturation: with
20 requests always outstanding on 2 cores, latency is mostly queueing); `--pace S` starts one
pair per client every S seconds at a random phase (an open load of 2 × clients / S requests/s).
The database must end near now: `range=30d` is relative to the web's clock.
Targets (issue 4): /api/throughput p95 <= 10 ms, history 30d p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import SecretBox  # noqa: E402
from panfm.models import DeviceConfig, TlsConfig  # noqa: E402
from panfm.storage.config_store import DeviceStore  # noqa: E402
from panfm.storage.samples import HISTORY_DB  # noqa: E402

PASSWORD = "bench-initial-password"
NEW_PASSWORD = "bench-changed-password-1"


def register_devices(data: Path) -> list[str]:
    """Register every device id found in the sample DB (idempotent)."""
    conn = sqlite3.connect(f"file:{data / HISTORY_DB}?mode=ro", uri=True)
    ids = [r[0] for r in conn.execute("SELECT device_id FROM known_devices ORDER BY device_id")]
    conn.close()
    store = DeviceStore(data, SecretBox.for_data_dir(data), time.time)
    known = {d.id for d in store.list()}
    for i, device_id in enumerate(ids):
        if device_id not in known:
            store.add(DeviceConfig(id=device_id, name=f"bench-{i:04d}", host=f"10.{i // 250}.{i % 250}.1",
                                   tls=TlsConfig(mode="insecure"), api_key="bench-key"))
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_up(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early")
        try:
            requests.get(url + "/api/version", timeout=5).close()
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def first_login(url: str) -> str:
    """Log in once (changing the initial password if asked); return the password that now works."""
    s = requests.Session()
    try:
        r = s.post(url + "/api/login", json={"username": "admin", "password": PASSWORD}, timeout=10)
        if r.status_code == 401:  # the folder was benched before: the password is changed already
            return NEW_PASSWORD
        r.raise_for_status()
        if r.json()["must_change_password"]:
            s.headers["X-CSRFToken"] = r.json()["csrf_token"]
            s.post(url + "/api/change-password", json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
                   timeout=10).raise_for_status()
            return NEW_PASSWORD
        return PASSWORD
    finally:
        s.close()


def session_for(url: str, password: str) -> requests.Session:
    """Log in with the known password (a wrong one per client would trip the login throttle)."""
    s = requests.Session()
    r = s.post(url + "/api/login", json={"username": "admin", "password": password}, timeout=10)
    r.raise_for_status()
    s.headers["X-CSRFToken"] = r.json()["csrf_token"]
    return s


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="data folder holding throughput_history.db")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--pace", type=float, default=0.0, help="seconds between a client's request pairs (0: none)")
    args = ap.parse_args()
    ids = register_devices(args.data)
    if not ids:
        raise SystemExit("no devices in the sample database")
    port = free_port()
    env = {**os.environ, "PANFM_DATA_DIR": str(args.data), "PANFM_PORT": str(port), "PANFM_BIND_HOST": "127.0.0.1",
           "PANFM_ADMIN_PASSWORD": PASSWORD, "PANFM_WEB_WORKERS": "2", "PANFM_LOG_LEVEL": "WARNING",
           "PANFM_ALLOWED_DEVICE_NETWORKS": "127.0.0.0/8"}
    gunicorn = [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
                "--access-logfile", "/dev/null", "app:create_app()"]
    proc = subprocess.Popen(gunicorn, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, time.time() + 30)
        password = first_login(url)
        timings: dict[str, list[float]] = {"throughput": [], "history_30d": []}
        lock = threading.Lock()
        stop = time.time() + args.seconds
        sizes: list[int] = []
        errors: list[str] = []  # SystemExit in a thread would end only that thread, silently

        def client(seed: int) -> None:
            rng = random.Random(seed)
            s = session_for(url, password)
            mine: dict[str, list[float]] = {k: [] for k in timings}
            next_at = time.time() + rng.uniform(0, args.pace)
            try:
                while time.time() < stop:
                    if args.pace:
                        # The load model (an open arrival rate), not a wait for a condition.
                        time.sleep(max(0.0, next_at - time.time()))
                        next_at = max(next_at + args.pace, time.time())
                    device = rng.choice(ids)
                    for name, path in (("throughput", f"/api/throughput?device_id={device}"),
                                       ("history_30d", f"/api/throughput/history?device_id={device}&range=30d")):
                        t0 = time.perf_counter()
                        r = s.get(url + path, timeout=10)
                        elapsed = (time.perf_counter() - t0) * 1000
                        if r.status_code != 200:
                            raise SystemExit(f"{path}: HTTP {r.status_code}")
                        if name == "history_30d" and not mine[name]:  # parse one per client: spare the CPU
                            points = len(r.json()["points"])
                            if points < 1000:  # an empty answer is fast and proves nothing
                                raise SystemExit(f"{path}: {points} points; does the database end near now?")
                        if name == "history_30d":
                            sizes.append(len(r.content))
                        mine[name].append(elapsed)
            except SystemExit as exc:
                errors.append(str(exc))
            finally:
                s.close()
            with lock:
                for k, v in mine.items():
                    timings[k].extend(v)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(errors[0])
        total = sum(len(v) for v in timings.values())
        print(f"{len(ids)} devices, {args.clients} clients, pace {args.pace:g} s, {args.seconds:g} s, "
              f"gunicorn 2 workers x 4 threads: {total / args.seconds:.0f} requests/s, "
              f"history answers {statistics.median(sizes) / 1000:.0f} kB")
        for name, values in timings.items():
            print(f"{name:12s} n={len(values):6d} p50={statistics.median(values):7.2f} ms "
                  f"p95={pct(values, 0.95):7.2f} ms p99={pct(values, 0.99):7.2f} ms")
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
