"""Requests/s of one authenticated JSON route under gunicorn: what the session check costs per request.

    .venv/bin/python bench/bench_sessions.py [--seconds 20] [--clients 8] [--path /api/settings] [--root DIR]
    .venv/bin/python bench/bench_sessions.py --calls 500 [--root DIR]   # the session check alone

A fresh data folder (no device), gunicorn with the project's gunicorn.conf.py (2 workers x 4
threads), one login per client, then every client sends GET `--path` back to back (a closed
load of `--clients` outstanding requests). Every request checks its session in
web_sessions.db and its user's role in config.db. `--root` runs another checkout's code (for a
before/after figure: `--root /path/to/main`). Prints requests/s and p50/p95 latency.
`--calls N` times, in this process, N session checks (`SessionStore.user_of` on a fresh
web_sessions.db, what every request pays) five times and prints the median per call.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def session_check_us(root: Path, calls: int) -> float:
    """Median microseconds of one `user_of` of `root`'s SessionStore over 5 runs of `calls` calls."""
    sys.path.insert(0, str(root))
    storage = importlib.import_module("throughput_storage")
    with tempfile.TemporaryDirectory(prefix="panfm-bench-sessions-") as tmp:
        sessions = storage.SessionStore(Path(tmp))
        sessions.open("h", "admin", False, time.time(), time.time() + 3600)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls):
                sessions.user_of("h", time.time())
            runs.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--path", default="/api/settings", help="an authenticated GET route answering JSON")
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app gunicorn runs")
    ap.add_argument("--calls", type=int, default=0, help="time this many session checks in-process instead")
    args = ap.parse_args()
    if args.calls:
        us = session_check_us(args.root.resolve(), args.calls)
        print(f"{args.root}: one session check (SessionStore.user_of), median of 5 x {args.calls} calls: {us:.0f} us;"
              f" load average {os.getloadavg()[0]:.1f}")
        return 0
    # bench_web imports this checkout's product code: only after --calls had the chance to import --root's.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_web import PASSWORD, first_login, free_port, pct, session_for, wait_up

    with tempfile.TemporaryDirectory(prefix="panfm-bench-sessions-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir(mode=0o700)
        port = free_port()
        env = {**os.environ, "PANFM_DATA_DIR": str(data), "PANFM_PORT": str(port), "PANFM_BIND_HOST": "127.0.0.1",
               "PANFM_ADMIN_PASSWORD": PASSWORD, "PANFM_WEB_WORKERS": "2", "PANFM_LOG_LEVEL": "WARNING"}
        env.pop("PANFM_DATABASE_URL", None)
        gunicorn = [sys.executable, "-m", "gunicorn", "--config", str(args.root / "gunicorn.conf.py"),
                    "--access-logfile", "/dev/null", "app:create_app()"]
        proc = subprocess.Popen(gunicorn, cwd=args.root, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_up(url, proc, time.time() + 60)
            password = first_login(url)
            timings: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()
            stop = time.time() + args.seconds

            def client() -> None:
                s = session_for(url, password)
                mine: list[float] = []
                try:
                    while time.time() < stop:
                        t0 = time.perf_counter()
                        r = s.get(url + args.path, timeout=30)
                        mine.append((time.perf_counter() - t0) * 1000)
                        if r.status_code != 200:
                            errors.append(f"{args.path}: HTTP {r.status_code}")
                            return
                finally:
                    s.close()
                    with lock:
                        timings.extend(mine)

            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise SystemExit(errors[0])
            print(f"{args.root}: GET {args.path}, {args.clients} clients, {args.seconds:g} s, gunicorn 2 workers"
                  f" x 4 threads: {len(timings) / args.seconds:.0f} requests/s, p50={statistics.median(timings):.1f}"
                  f" ms p95={pct(timings, 0.95):.1f} ms; load average {os.getloadavg()[0]:.1f}")
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
