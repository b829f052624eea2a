"""Scenario S12: dashboard reads on PostgreSQL, 500 devices x 30 days, through gunicorn (make bench-web-pg).

    .venv/bin/python bench/bench_pg_web.py --devices 500 --days 30 --raw-days 1 --seconds 30 --clients 20 --pace 5
    .venv/bin/python bench/bench_pg_web.py --url postgresql://... (an existing, empty database instead)

Without --url it starts a throwaway PostgreSQL of its own (tests/helpers/postgres.py, Debian's
binaries, a temporary folder, a free loopback port). It fills the database server-side with
`generate_series`: --devices devices registered as PANfm devices, 5-minute and 1-hour rollups for
--days days ending now, raw samples (one per 30 s slot) for the last --raw-days days; then
`VACUUM (ANALYZE)`, so that no autovacuum of the fresh rows runs while the clients measure. Then the
client loop of bench/bench_web.py runs against gunicorn (2 workers x 4 threads) started with
PANFM_DATABASE_URL: each client alternates /api/throughput and /api/throughput/history?range=30d
on random devices. Prints the fill time, table sizes and p50/p95/p99 per endpoint.
Targets (issue 13, S12; the same as SQLite's, issue 4): /api/throughput p95 <= 10 ms, 30d p95 <= 50 ms.

    .venv/bin/python bench/bench_pg_web.py --devices 100 --days 30 --profile 200

`--profile N` skips gunicorn: after the fill, N requests of each endpoint go one at a time through
Flask's test client in this process (no network, no other client), timed, then N more under
cProfile; prints p50/p95 per endpoint and the functions that took the time. Where a request's
time goes, not a figure of record (the profiler inflates Python).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_web import NEW_PASSWORD, PASSWORD, first_login, free_port, pct, session_for, wait_up  # noqa: E402

import config  # noqa: E402
import throughput_storage  # noqa: E402
from panfm.models import DeviceConfig, TlsConfig  # noqa: E402
from panfm.storage.pg_samples import regroup  # noqa: E402
from panfm.storage.schema import DEVICE_METRICS, IFACE_METRICS, INT_METRICS  # noqa: E402

ENCRYPTION_KEY = "u3Q5jGqQ4k3R2n1xWbB0S3n0hX0y1kqT8b8l2nq0F8A="
SECRET_KEY = "bench-session-key-shared-by-every-web-0123456789"


def _value(m: str, t: str) -> str:
    """A plausible, varying value of metric m at epoch expression t (server-side)."""
    base = f"(50 + 40 * sin({t} / 3600.0 + dk))"
    return f"round({base})::int" if m in INT_METRICS else f"{base}::real"


def fill(url: str, devices: int, days: int, raw_days: int, data_dir: Path) -> None:
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(data_dir), "PANFM_DATABASE_URL": url,
                                         "PANFM_ENCRYPTION_KEY": ENCRYPTION_KEY, "PANFM_SECRET_KEY": SECRET_KEY})
    stores = throughput_storage.open_stores(settings, writer=True)
    from panfm.storage.postgres import PgDatabase

    db = PgDatabase(url, statement_timeout_ms=0, name="panfm-bench-fill")  # bulk inserts: no statement timeout
    now = int(time.time())
    t0 = time.perf_counter()
    for i in range(devices):
        stores.devices.add(DeviceConfig(id=f"bench-{i:04d}", name=f"bench-{i:04d}", host=f"10.{i // 250}.{i % 250}.1",
                                        tls=TlsConfig(mode="insecure"), api_key="bench-key"))
    writer = stores.open_sample_writer(30)
    writer._ensure_partitions(now)
    from panfm.storage import pg_series

    pg_series.ensure_partitions(db, now - raw_days * 86400, days_ahead=raw_days + 2)
    with db.transaction() as tx:
        tx.execute("INSERT INTO ts_device (device_id) SELECT id FROM devices ORDER BY id")
        tx.execute("INSERT INTO ts_iface (dk, interface) SELECT dk, 'ethernet1/' || n FROM ts_device,"
                   " generate_series(1, 4) n")
    for tier, width in (("1h", 3600), ("5m", 300)):
        start = (now - days * 86400) // width * width
        end = now // width * width - width
        for kind, metrics, key in (("device", DEVICE_METRICS, "dk"), ("iface", IFACE_METRICS, "ik")):
            if kind == "iface" and tier == "5m":
                continue  # interface charts are not what this bench reads; keeps the fill short
            cols = ", ".join(f"{m}_avg, {m}_min, {m}_max, {m}_n" for m in metrics)
            vals = ", ".join(f"{_value(m, 'b')}, {_value(m, 'b')} - 5, {_value(m, 'b')} + 5, 10" for m in metrics)
            table = "ts_device" if kind == "device" else "ts_iface"
            for first in range(0, devices * (4 if kind == "iface" else 1), 100):  # 100 series per transaction
                with db.transaction() as tx:
                    tx.execute(f"INSERT INTO {kind}_{tier} ({key}, bucket, n, {cols}) SELECT {key}, b, 10, {vals}"
                               f" FROM (SELECT * FROM {table} ORDER BY {key} OFFSET {first} LIMIT 100) x"
                               f" CROSS JOIN generate_series({start}::bigint, {end}::bigint, {width}) b")
            print(f"filled {kind}_{tier}: {time.perf_counter() - t0:.0f} s", flush=True)
        if tier == "5m":
            with db.transaction() as tx:  # the 30-minute groups the clock keeps as 5-minute buckets close
                regroup(tx, start, end + width)
            print(f"filled 30-minute groups: {time.perf_counter() - t0:.0f} s", flush=True)
    cols = ", ".join(DEVICE_METRICS)
    vals = ", ".join(_value(m, "s") for m in DEVICE_METRICS)
    start = (now - raw_days * 86400) // 30 * 30
    with db.transaction() as tx:
        tx.execute(f"INSERT INTO device_samples (dk, slot, off_ms, {cols}, rtt_ms, approx) SELECT dk, s, 250, {vals},"
                   f" 3.0, false FROM ts_device CROSS JOIN generate_series({start}::bigint, {now - 30}::bigint, 30) s")
        tx.execute("INSERT INTO rollup_marks (tier, done_until) VALUES ('5m', ?), ('1h', ?)",
                   (now // 300 * 300, now // 3600 * 3600))
    with db.connection() as conn:
        # VACUUM too: left to autovacuum, the insert-triggered vacuum of GBs of fresh rows ran during
        # the measured seconds (and index-only scans need the visibility map it sets).
        conn.execute("VACUUM (ANALYZE)")
        sizes = conn.fetchall(
            "SELECT c.relname AS name, pg_total_relation_size(c.oid) AS size, c.reltuples::bigint AS est_rows"
            " FROM pg_class c WHERE c.relname IN ('device_5m', 'device_1h', 'iface_1h') OR"
            " c.relname LIKE 'device_samples_p%' ORDER BY c.relname")
    print(f"filled in {time.perf_counter() - t0:.0f} s: " + ", ".join(
        f"{r['name']} {r['est_rows']} rows {r['size'] // 2**20} MB" for r in sizes if r["est_rows"] > 0), flush=True)
    stores.close()
    db.close()


def run_clients(url: str, ids: list[str], clients: int, seconds: float, pace: float) -> None:
    password = first_login(url)
    timings: dict[str, list[float]] = {"throughput": [], "history_30d": []}
    lock = threading.Lock()
    errors: list[str] = []
    points: list[int] = []

    # Log every client in first, one after the other: 20 argon2 checks at once on a loaded machine
    # take longer than a request's timeout, and the logins are not what this bench measures.
    sessions = []
    for _ in range(clients):
        for attempt in range(5):
            try:
                sessions.append(session_for(url, password))
                break
            except requests.RequestException:
                if attempt == 4:
                    raise
                time.sleep(2)
    stop = time.time() + seconds

    def client(seed: int) -> None:
        import random

        rng = random.Random(seed)
        s = sessions[seed]
        mine: dict[str, list[float]] = {k: [] for k in timings}
        next_at = time.time() + rng.uniform(0, pace)
        try:
            while time.time() < stop:
                if pace:
                    time.sleep(max(0.0, next_at - time.time()))  # the open arrival rate of the load model
                    next_at = max(next_at + pace, time.time())
                device = rng.choice(ids)
                for name, path in (("throughput", f"/api/throughput?device_id={device}"),
                                   ("history_30d", f"/api/throughput/history?device_id={device}&range=30d")):
                    t0 = time.perf_counter()
                    r = s.get(url + path, timeout=30)
                    elapsed = (time.perf_counter() - t0) * 1000
                    if r.status_code != 200:
                        raise SystemExit(f"{path}: HTTP {r.status_code}")
                    if name == "history_30d" and not mine[name]:
                        points.append(len(r.json()["points"]))
                        if points[-1] < 1000:
                            raise SystemExit(f"{path}: {points[-1]} points")
                    if name == "throughput" and not mine[name] and r.json()["sample"] is None:
                        raise SystemExit(f"{path}: no sample")
                    mine[name].append(elapsed)
        except SystemExit as exc:
            errors.append(str(exc))
        finally:
            s.close()
        with lock:
            for k, v in mine.items():
                timings[k].extend(v)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(errors[0])
    total = sum(len(v) for v in timings.values())
    print(f"{len(ids)} devices, {clients} clients, pace {pace:g} s, {seconds:g} s, gunicorn 2 workers x 4 threads:"
          f" {total / seconds:.0f} requests/s, 30-day answers {statistics.median(points)} points")
    for name, values in timings.items():
        print(f"{name:12s} n={len(values):6d} p50={statistics.median(values):7.2f} ms "
              f"p95={pct(values, 0.95):7.2f} ms p99={pct(values, 0.99):7.2f} ms")


def profile_in_process(url: str, data: Path, ids: list[str], n: int) -> None:
    import cProfile
    import pstats
    import random

    settings = config.load_settings(env={"PANFM_DATA_DIR": str(data), "PANFM_DATABASE_URL": url,
                                         "PANFM_ENCRYPTION_KEY": ENCRYPTION_KEY, "PANFM_SECRET_KEY": SECRET_KEY,
                                         "PANFM_ADMIN_PASSWORD": PASSWORD, "PANFM_LOG_LEVEL": "WARNING"})
    from app import create_app

    client = create_app(settings).test_client()
    token = client.post("/api/login", json={"username": "admin", "password": PASSWORD}).get_json()["csrf_token"]
    client.post("/api/change-password", json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
                headers={"X-CSRFToken": token})
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    rng = random.Random(1)
    paths = {"throughput": "/api/throughput?device_id={}",
             "history_30d": "/api/throughput/history?device_id={}&range=30d"}
    for name, path in paths.items():
        for _ in range(5):  # warm: the pool's connections, caches
            client.get(path.format(rng.choice(ids)))
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.get(path.format(rng.choice(ids)))
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise SystemExit(f"{path}: HTTP {r.status_code}")
        print(f"{name:12s} in-process n={n} p50={statistics.median(times):.2f} ms p95={pct(times, 0.95):.2f} ms")
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            client.get(path.format(rng.choice(ids)))
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="", help="an empty PostgreSQL database (default: start a throwaway server)")
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--raw-days", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--pace", type=float, default=5.0)
    ap.add_argument("--profile", type=int, default=0, help="N in-process requests per endpoint, profiled (no gunicorn)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="panfm-bench-pg-"))
    server = None
    url = args.url
    if not url:
        from helpers.postgres import PgServer

        server = PgServer(work / "pg")
        url = server.fresh_database("bench")
    try:
        data = work / "web"
        fill(url, args.devices, args.days, args.raw_days, data)
        if args.profile:
            profile_in_process(url, data, [f"bench-{i:04d}" for i in range(args.devices)], args.profile)
            return 0
        port = free_port()
        env = {**os.environ, "PANFM_DATA_DIR": str(data), "PANFM_PORT": str(port), "PANFM_BIND_HOST": "127.0.0.1",
               "PANFM_ADMIN_PASSWORD": PASSWORD, "PANFM_WEB_WORKERS": "2", "PANFM_LOG_LEVEL": "WARNING",
               "PANFM_DATABASE_URL": url, "PANFM_ENCRYPTION_KEY": ENCRYPTION_KEY, "PANFM_SECRET_KEY": SECRET_KEY}
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"),
                                 "--access-logfile", "/dev/null", "app:create_app()"], cwd=ROOT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_up(base, proc, time.time() + 60)
            run_clients(base, [f"bench-{i:04d}" for i in range(args.devices)], args.clients, args.seconds, args.pace)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    finally:
        if server is not None:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
