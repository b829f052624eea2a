"""Scenario "clock stopped": SIGSTOP the real clock, watch the web call the data stale, SIGCONT.

    python -m reliability.sigstop [--interval 10] [--stops 5,9] [--devices 2] [--out FILE]

Each round freezes `python clock.py` with SIGSTOP for N intervals. Checked: /api/health turns
503 "degraded" within 4 intervals of the stop (its limit is a heartbeat older than 3 intervals),
/api/throughput and /api/overview keep answering 200 with an `age_seconds` that grows past 3
intervals; after SIGCONT /api/health is 200 "ok" again within 2 intervals, the clock process is
the same one, and the first rate after the pause matches /_sim/truth within 1% (no spike).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from reliability.harness import (
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
    check_rates,
    device_rows,
    heartbeat,
    history_db,
)

# Allowed timing error of one sample (answer arrival vs the device reading its counters):
# 1% plus 50 ms of the window, since restarts make windows as short as 1-2 s.
JITTER_S = 0.05


def wait_commit(db: Path, interval: int) -> None:
    """Wait for the next committed cycle (a new heartbeat)."""
    before = heartbeat(db)
    wait_for(lambda: heartbeat(db) != before, interval * 2 + 5, step=0.1, what="a commit")


def run(workdir: Path, interval: int = 10, stops: tuple[int, ...] = (5, 9), devices: int = 2) -> dict[str, Any]:
    """Run the scenario in WORKDIR; return its figures and failures."""
    data = workdir / "data"
    db = history_db(data)
    failures: list[str] = []
    rounds: list[dict[str, Any]] = []
    with Procs(workdir) as procs:
        sim = Sim.start(procs, devices, models="PA-440,PA-VM")
        web: Web | None = None
        try:
            names = {v: k for k, v in register(data, sim.inventory).items()}
            some_id = next(iter(names))
            web = Web.start(procs, data, interval)
            session = web.login()
            clock = procs.start_clock(data, interval)

            def health() -> tuple[int, Any]:
                return web.get(None, "/api/health") if web else (0, None)

            wait_for(lambda: health()[0] == 200, interval * 3 + 30, step=0.2, what="health ok at start")
            for n, stop_intervals in enumerate(stops, 1):
                # Wait for a fresh commit, so the stop lands at a random point of a cycle.
                wait_commit(db, interval)
                time.sleep(interval * 0.4)
                clock.send_signal(signal.SIGSTOP)
                t_stop = time.time()
                last = heartbeat(db)
                degraded_at = None
                ages: list[float] = []
                overview_stale = True
                codes: dict[str, int] = {}
                while time.time() < t_stop + stop_intervals * interval:
                    code, doc = health()
                    if code == 503 and doc and doc.get("status") == "degraded" and degraded_at is None:
                        degraded_at = time.time()
                    c2, thr = web.get(session, f"/api/throughput?device_id={some_id}")
                    c3, ov = web.get(session, "/api/overview")
                    for key, c in (("health", code), ("throughput", c2), ("overview", c3)):
                        codes[f"{key} {c}"] = codes.get(f"{key} {c}", 0) + 1
                    if c2 == 200 and thr["age_seconds"] is not None:
                        ages.append(float(thr["age_seconds"]))
                    if degraded_at is not None and c3 == 200:
                        overview_stale &= all((d["age_seconds"] or 0) > 3 * interval for d in ov["devices"])
                    time.sleep(0.5)
                clock.send_signal(signal.SIGCONT)
                t_cont = time.time()
                ok_at = None
                try:
                    wait_for(lambda: health()[0] == 200, interval * 2 + 5, step=0.2, what="health ok after SIGCONT")
                    ok_at = time.time()
                except TimeoutError as exc:
                    failures.append(f"round {n}: {exc}")
                after = heartbeat(db)
                r = {
                    "stopped_s": round(t_cont - t_stop, 1),
                    "heartbeat_age_at_stop_s": round(t_stop - last[0], 1) if last else None,
                    "degraded_after_s": round(degraded_at - t_stop, 1) if degraded_at else None,
                    "ok_again_after_sigcont_s": round(ok_at - t_cont, 1) if ok_at else None,
                    "throughput_age_max_s": round(max(ages), 1) if ages else None,
                    "overview_all_older_than_3_intervals_while_degraded": overview_stale,
                    "answers": codes,
                }
                rounds.append(r)
                if degraded_at is None or degraded_at - t_stop > 4 * interval:
                    failures.append(f"round {n}: health not degraded within 4 intervals: {r}")
                if not ages or max(ages) <= 3 * interval or ages != sorted(ages):
                    failures.append(f"round {n}: /api/throughput age_seconds did not grow past 3 intervals")
                if not overview_stale:
                    failures.append(f"round {n}: /api/overview showed fresh data while the clock was stopped")
                bad = {k: v for k, v in codes.items() if not k.endswith((" 200", " 503"))}
                if bad or any(k.startswith(("throughput", "overview")) and k.endswith("503") for k in codes):
                    failures.append(f"round {n}: unexpected answers {codes}")
                if clock.poll() is not None or (after and after[1] != clock.pid):
                    failures.append(f"round {n}: the clock did not survive SIGSTOP/SIGCONT")
            wait_commit(db, interval)
            if procs.stop("clock") != 0:
                failures.append("the clock did not stop cleanly on SIGTERM")
            rates = check_rates(sim, names, device_rows(db), jitter_s=JITTER_S)
            failures += [f"rate {w}" for w in rates.wrong[:10]]
            if rates.gaps:
                failures.append(f"{rates.gaps} gaps besides the first sample of each device")
        finally:
            sim.close()
            if web is not None:
                web.close()
    return {
        "parameters": {"interval_s": interval, "stops_in_intervals": list(stops), "devices": devices},
        "rounds": rounds,
        "rates_checked": rates.checked,
        "worst_rate_error_pct": round(rates.worst_rel_error * 100, 3),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    p = scenario_parser(__doc__)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--stops", default="5,9", help="pause lengths in intervals, comma separated")
    p.add_argument("--devices", type=int, default=2)
    a = p.parse_args(argv)
    stops = tuple(int(x) for x in a.stops.split(","))
    workdir = scenario_dir("sigstop", a.keep)
    result = run(workdir, a.interval, stops, a.devices)
    return finish("sigstop", workdir, result, a.out, a.keep)


if __name__ == "__main__":
    raise SystemExit(main())
