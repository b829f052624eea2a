"""In-process time (and, with --profile, a cProfile) of a live value and a 30-day chart on SQLite.

    .venv/bin/python bench/web_inprocess.py [--data bench/out/webdata] [--n 200] [--profile]

The data folder `make bench-web` made (its devices registered, its admin password set by
`bench/bench_web.py`); the Flask test client, no gunicorn: what one request costs by itself.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench_web  # noqa: E402

import config  # noqa: E402
from app import create_app  # noqa: E402

PATHS = {"throughput": "/api/throughput?device_id={}", "history_30d": "/api/throughput/history?device_id={}&range=30d"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "bench/out/webdata")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(args.data), "PANFM_ADMIN_PASSWORD": bench_web.PASSWORD,
                                         "PANFM_LOG_LEVEL": "WARNING"})
    client = create_app(settings).test_client()
    for password in (bench_web.NEW_PASSWORD, bench_web.PASSWORD):
        r = client.post("/api/login", json={"username": "admin", "password": password})
        if r.status_code == 200:
            break
    else:
        raise SystemExit("cannot log in: run `make bench-web` on this folder first")
    client.environ_base["HTTP_X_CSRFTOKEN"] = r.get_json()["csrf_token"]
    ids = [d["id"] for d in client.get("/api/devices").get_json()["devices"]]
    rng = random.Random(1)
    for name, path in PATHS.items():
        for _ in range(5):
            client.get(path.format(rng.choice(ids)))
        times = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            r = client.get(path.format(rng.choice(ids)))
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"{path}: HTTP {r.status_code}")
        times.sort()
        print(f"{name:12s} n={args.n} p50={statistics.median(times):.2f} ms p95={times[int(args.n * 0.95)]:.2f} ms")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.n):
                client.get(path.format(rng.choice(ids)))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
