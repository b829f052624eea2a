"""Scenario "reader storm": 4 processes hammer the dashboard API while the clock writes every 5 s.

    python -m reliability.reader_storm [--readers 4] [--interval 5] [--minutes 10] [--devices 10] [--out FILE]

The web is gunicorn (the production command, 2 workers x 4 threads); each reader process logs
in and loops over /api/overview, /api/throughput, /api/throughput/history (1h), /api/interfaces
and /api/health as fast as the answers come. Checked: zero "database is locked" in the clock's
and the web's logs and in the answers, zero HTTP 5xx, no process dies, every cycle committed,
the WAL stays under 64 MB. Reported: requests, read latency p50/p99/max per path and overall.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import requests

from reliability.harness import (
    NEW_PASSWORD,
    Procs,
    Sim,
    Web,
    finish,
    register,
    scenario_dir,
    scenario_parser,
    wait_for,
)
from reliability.samples import (
    grep_count,
    heartbeat,
    history_db,
    percentile,
    query,
    wal_size,
)

WAL_LIMIT = 64 * 1024 * 1024
PASSWORD_ENV = "RELIABILITY_WEB_PASSWORD"


def reader(base: str, device_ids: list[str], seconds: float, out: Path, seed: int) -> None:
    """Log in and query the dashboard API in a loop for SECONDS; write latencies and answers to OUT."""
    rng = random.Random(seed)
    with requests.Session() as s:
        r = s.post(f"{base}/api/login", json={"username": "admin", "password": os.environ[PASSWORD_ENV]}, timeout=30)
        r.raise_for_status()
        paths = ["/api/overview", "/api/throughput?device_id={}", "/api/throughput/history?device_id={}&range=1h",
                 "/api/interfaces?device_id={}", "/api/health"]
        lat: dict[str, list[float]] = {}
        codes: dict[str, int] = {}
        locked = errors = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for p in paths:
                t = time.monotonic()
                try:
                    resp = s.get(base + p.format(rng.choice(device_ids)), timeout=30)
                    body = resp.text
                except requests.RequestException:
                    errors += 1
                    continue
                lat.setdefault(p.split("?")[0], []).append(time.monotonic() - t)
                codes[str(resp.status_code)] = codes.get(str(resp.status_code), 0) + 1
                locked += grep_count(body, "database is locked")
    out.write_text(json.dumps({"latencies": lat, "codes": codes, "locked": locked, "errors": errors}))


def run(workdir: Path, readers: int = 4, interval: int = 5, run_s: float = 600, devices: int = 10) -> dict[str, Any]:
    """Run the scenario in WORKDIR; return its figures and failures."""
    data = workdir / "data"
    db = history_db(data)
    failures: list[str] = []
    wal_max = 0
    with Procs(workdir) as procs:
        sim = Sim.start(procs, devices)
        web: Web | None = None
        try:
            ids = list(register(data, sim.inventory).values())
            web = Web.start(procs, data, interval)
            web.login()  # changes the initial password once, before the readers log in
            clock = procs.start_clock(data, interval)
            wait_for(lambda: (hb := heartbeat(db)) and hb[1] == clock.pid, 30, what="first cycle")
            t0 = time.time()
            env = {**os.environ, PASSWORD_ENV: NEW_PASSWORD}
            outs = [workdir / f"reader-{i}.json" for i in range(readers)]
            for i, out in enumerate(outs):
                procs.start(f"reader-{i}", [sys.executable, "-m", "reliability.reader_storm", "--worker", web.base,
                                            "--seconds", str(run_s), "--worker-out", str(out), "--seed", str(i),
                                            "--device-ids", ",".join(ids)], env)
            while time.time() < t0 + run_s + 60 and not all(o.exists() for o in outs):
                wal_max = max(wal_max, wal_size(db))
                if {"clock", "web", "sim"} & set(procs.dead()):
                    failures.append(f"processes died: {procs.deaths()}")
                    break
                time.sleep(0.5)
            t_end = time.time()
            docs = [json.loads(o.read_text()) for o in outs if o.exists()]
            if len(docs) < readers:
                failures.append(f"only {len(docs)} of {readers} readers finished: {procs.dead()}")
            cycles = query(db, "SELECT COUNT(*) FROM device_samples WHERE device_id = ? AND ts >= ?",
                           (ids[0], int(t0 * 1000)))[0][0]
            expected = int((t_end - t0) // interval)
            if cycles < expected - 1:
                failures.append(f"only {cycles} cycles committed in {t_end - t0:.0f} s (expected ~{expected})")
            dead = {k: v for k, v in procs.deaths().items() if not k.startswith("reader")}
            if dead:
                failures.append(f"processes died: {dead}")
            logs = procs.log_text("clock") + procs.log_text("web")
            locked_logs = grep_count(logs, "database is locked")
            locked_answers = sum(d["locked"] for d in docs)
            codes: dict[str, int] = {}
            lat: dict[str, list[float]] = {}
            for d in docs:
                for c, n in d["codes"].items():
                    codes[c] = codes.get(c, 0) + n
                for p, values in d["latencies"].items():
                    lat.setdefault(p, []).extend(values)
            five_xx = sum(n for c, n in codes.items() if c.startswith("5"))
            errors = sum(d["errors"] for d in docs)
            if locked_logs or locked_answers:
                failures.append(f"'database is locked': {locked_logs} in logs, {locked_answers} in answers")
            if five_xx or errors:
                failures.append(f"{five_xx} HTTP 5xx answers, {errors} failed requests")
            if wal_max >= WAL_LIMIT:
                failures.append(f"WAL reached {wal_max} bytes")
            everything = [v for values in lat.values() for v in values]

            def ms(values: list[float], pct: float) -> float | None:
                v = percentile(values, pct)
                return None if v is None else round(v * 1000, 1)

            result = {
                "parameters": {"readers": readers, "interval_s": interval, "run_s": run_s, "devices": devices},
                "requests": len(everything),
                "requests_per_s": round(len(everything) / max(t_end - t0, 1), 1),
                "answers": codes,
                "failed_requests": errors,
                "cycles_committed": cycles,
                "database_locked_in_logs": locked_logs,
                "database_locked_in_answers": locked_answers,
                "wal_max_bytes": wal_max,
                "latency_ms": {"all": {"p50": ms(everything, 50), "p99": ms(everything, 99),
                                       "max": ms(everything, 100)},
                               **{p: {"p50": ms(v, 50), "p99": ms(v, 99), "max": ms(v, 100)} for p, v in lat.items()}},
                "failures": failures,
            }
        finally:
            sim.close()
            if web is not None:
                web.close()
    return result


def main(argv: list[str] | None = None) -> int:
    p = scenario_parser(__doc__)
    p.add_argument("--readers", type=int, default=4)
    p.add_argument("--interval", type=int, default=5)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # base URL: run as one reader process
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--device-ids", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        reader(a.worker, a.device_ids.split(","), a.seconds, a.worker_out, a.seed)
        return 0
    workdir = scenario_dir("storm", a.keep)
    result = run(workdir, a.readers, a.interval, a.minutes * 60, a.devices)
    return finish("reader_storm", workdir, result, a.out, a.keep)


if __name__ == "__main__":
    raise SystemExit(main())
