"""Scenario "fault fleet": every simulator fault mode at once against the real clock and web.

    python -m reliability.fault_fleet [--devices 50] [--interval 10] [--minutes 10] [--seed 11] [--out FILE]

Half of the fleet is registered with username + password (the clock keygens), half with only an
API key. After two warm-up cycles, each mode gets its devices (2 each from 30 devices up, else 1):
down, blackhole, slow, http500 and bad_xml from then on (the second one of each only for a third
of the run, so it comes back), revoke_key on a password device and on a key-only device,
reboot, failover (flips back after a quarter of the run) and replace at random moments.

Checked: no process dies; every answering device (untouched, reboot, failover, revoked with
credentials) has a sample in every committed cycle; no interface rate is negative or above its
link speed; the dashboard's history (/api/throughput/history, logged-in session) matches
/_sim/truth within 1% for every rate of those devices (a window holding a reboot or failover
also gets 5 ms of the rate at its ends), and the reboots leave gaps, not spikes;
the key-only revoked device shows an auth error; the replaced devices stop being polled with a
fingerprint error; the failed ones are marked down.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from panfm.collector.cycle import deadline_for
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
    grep_count,
    history_db,
    out_of_range_rates,
    percentile,
    query,
)

STATE_MODES = ("down", "blackhole", "slow", "http500", "bad_xml")


@dataclass
class Fault:
    """One planned injection: AT seconds after the warm-up, MODE on device NAME."""

    at: float
    name: str
    mode: str
    duration: float = 0.0
    sent: float | None = None
    done: float | None = None


def plan(names: list[str], run_s: float, interval: int, rng: random.Random) -> tuple[dict[str, str], list[Fault],
                                                                                   dict[str, str]]:
    """Return (auth per device, faults, role per device); roles not listed are healthy."""
    k = 2 if len(names) >= 30 else 1
    pool = list(reversed(names))
    roles: dict[str, str] = {}
    faults: list[Fault] = []
    auth = {n: ("password" if i % 2 == 0 else "key") for i, n in enumerate(names)}
    last_event = max(interval * 0.5, run_s - 3 * interval)
    for mode in STATE_MODES:
        for j in range(k):
            name = pool.pop(0)
            roles[name] = mode if j == 0 else f"{mode}_transient"
            faults.append(Fault(0.0, name, mode, 0.0 if j == 0 else run_s / 3))
    for role, how in (("revoke_pw", "password"), ("revoke_keyonly", "key")):
        for _ in range(k):
            name = pool.pop(0)
            roles[name], auth[name] = role, how
            faults.append(Fault(rng.uniform(interval * 0.5, last_event / 2), name, "revoke_key"))
    for mode in ("reboot", "failover", "replace"):
        for _ in range(k):
            name = pool.pop(0)
            roles[name] = mode
            faults.append(Fault(rng.uniform(interval * 0.5, last_event), name, mode,
                                run_s / 4 if mode == "failover" else 0.0))
    return auth, faults, roles


ANSWERING = ("healthy", "reboot", "failover", "revoke_pw")
EVENT_SLACK_S = 0.005  # timing allowance of a window holding a reboot or failover (see the rate check)


def iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def epoch(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def run(workdir: Path, devices: int = 50, interval: int = 10, run_s: float = 600, seed: int = 11,
        tolerance: float = 0.01) -> dict[str, Any]:
    """Run the scenario in WORKDIR; return its figures and failures."""
    data = workdir / "data"
    db = history_db(data)
    rng = random.Random(seed)
    failures: list[str] = []
    cycles: dict[float, str] = {}  # started -> outcome, from the clock's own "recent" list
    web_codes: dict[int, int] = {}
    latencies: list[float] = []
    with Procs(workdir) as procs:
        sim = Sim.start(procs, devices, seed=seed)
        web: Web | None = None
        try:
            names = [e["name"] for e in sim.inventory]
            auth, faults, roles = plan(names, run_s, interval, rng)
            ids = register(data, sim.inventory, lambda n: auth[n])
            by_id = {v: k for k, v in ids.items()}
            role = {n: roles.get(n, "healthy") for n in names}
            web = Web.start(procs, data, interval)
            session = web.login()
            procs.start_clock(data, interval)

            def recent() -> list[dict[str, Any]]:
                rows = query(db, "SELECT doc FROM clock_stats WHERE id = 1")
                doc = json.loads(rows[0][0]) if rows else {}
                for r in doc.get("recent", []):
                    if r["job"] == "collect":
                        cycles[float(r["started"])] = r["outcome"]
                return [r for r in doc.get("recent", []) if r["job"] == "collect"]

            # Warm-up: two committed cycles (the password devices keygen in the first).
            wait_for(lambda: len(recent()) >= 2, interval * 4 + 30, step=0.2, what="two warm-up cycles")
            t0 = time.time()
            end = t0 + run_s
            next_web = t0
            while time.time() < end:
                now = time.time()
                for f in faults:
                    if f.done is None and now >= t0 + f.at:
                        f.sent = time.time()
                        sim.fault(f.name, f.mode, f.duration)
                        f.done = time.time()
                if now >= next_web:
                    next_web = now + interval / 2
                    for path in ("/api/overview", "/api/health"):
                        t = time.monotonic()
                        code, _ = web.get(session, path)
                        latencies.append(time.monotonic() - t)
                        web_codes[code] = web_codes.get(code, 0) + 1
                recent()
                if procs.dead():
                    failures.append(f"processes died: {procs.deaths()}")
                    break
                time.sleep(0.25)
            # Let the last cycle of the window commit before judging it.
            time.sleep(deadline_for(interval) + 1.5)
            recent()
            t_end = end
            dead = procs.deaths()
            if dead and not any(f.startswith("processes died") for f in failures):
                failures.append(f"processes died: {dead}")
            if "web" in dead:
                return {"failures": failures, "parameters": {"devices": devices, "interval_s": interval}}

            # 1. Every answering device sampled in every cycle of the window.
            budget = deadline_for(interval) + 1.0
            window = sorted(s for s in cycles if t0 <= s and s + interval <= t_end)
            errored = [s for s in window if cycles[s] != "ok"]
            if errored:
                failures.append(f"{len(errored)} cycles ended in an error")
            samples: dict[str, list[float]] = {}
            for dev, ts in query(db, "SELECT device_id, ts FROM device_samples WHERE ts >= ?", (int(t0 * 1000) - 1,)):
                samples.setdefault(by_id[dev], []).append(ts / 1000)
            missed: dict[str, int] = {}
            for n in names:
                if role[n] not in ANSWERING:
                    continue
                got = samples.get(n, [])
                for s in window:
                    if not any(s <= ts <= s + budget for ts in got):
                        missed[n] = missed.get(n, 0) + 1
            if missed:
                failures.append(f"answering devices missed cycles: {missed}")

            # 2. No rate negative or above link speed.
            bad = out_of_range_rates(db)
            failures += [f"rate out of range: {b}" for b in bad[:10]]

            # 3. The dashboard's rates (history through the web) against the truth.
            checked = gaps_healthy = off = 0
            # The simulator's truth over a window holding a reboot adds up what each boot's
            # counters grew by, and a failover's flip is dated when it happens: every window of
            # an answering device is compared. Those holding an event are counted apart.
            events: dict[str, list[tuple[float, float]]] = {}
            for f in faults:
                if f.mode in ("reboot", "failover") and f.sent is not None and f.done is not None:
                    events.setdefault(f.name, []).append((f.sent, f.done))
                    if f.mode == "failover" and f.duration:
                        events[f.name].append((f.sent + f.duration, f.done + f.duration + 1.0))
            holding_event = 0
            worst = 0.0
            worst_by_role: dict[str, float] = {}
            gaps_by_role: dict[str, int] = {}
            # Each sample is dated when its request was sent and keeps its round trip; a rate the
            # API marks approximate (round trips over 2 % of Δt) is held to its own bound instead:
            # the tolerance plus both round trips' share of the window.
            rtts = {(d, int(ts)): r for d, ts, r in query(db, "SELECT device_id, ts, rtt_ms FROM device_samples")}
            approx_checked = approx_off = 0
            worst_approx = 0.0
            healthy_rtts: list[float] = []
            for n in names:
                if role[n] not in ANSWERING:
                    continue
                # An explicit window: with range=1h a series younger than an hour is answered from
                # the 5-minute tier once an hourly bucket exists (storage_queries.choose_tier).
                code, doc = web.get(session, f"/api/throughput/history?device_id={ids[n]}"
                                             f"&start={iso_z(t0 - 3 * interval)}&end={iso_z(time.time())}")
                if code != 200 or doc.get("tier") != "raw":
                    failures.append(f"history of {n} answered {code}, tier {doc and doc.get('tier')}")
                    continue
                points = [p for p in doc["points"]
                          if any(v is not None for k, v in p.items() if k != "t")]  # drop gap markers
                for p1, p2 in itertools.pairwise(points):
                    t1, t2 = epoch(p1["t"]), epoch(p2["t"])
                    if t2 < t0:
                        continue
                    if p2["inbound_mbps"] is None or p2["outbound_mbps"] is None:
                        gaps_by_role[role[n]] = gaps_by_role.get(role[n], 0) + 1
                        continue
                    want_in, want_out = sim.truth_mbps(n, t1, t2)
                    rtt1, rtt2 = (next((rtts[k] for d in (0, -1, 1) if (k := (ids[n], round(t * 1000) + d)) in rtts),
                                       None) for t in (t1, t2))
                    slack_in = slack_out = 0.0
                    if any(t1 <= b and t2 >= a for a, b in events.get(n, [])):
                        holding_event += 1
                        # A failover moves the rate 500-fold inside this window: the moment the
                        # device read its counters — somewhere in the sample's round trip after
                        # the request was sent — weighs like the window's whole average. Allowed
                        # on top of the tolerance: what the device counted during each end's
                        # round trip (at least EVENT_SLACK_S), i.e. right after each sample time.
                        spans = [max(EVENT_SLACK_S, (r or 0.0) / 1000.0) for r in (rtt1, rtt2)]
                        ends = [sim.truth_mbps(n, t, t + span) for t, span in zip((t1, t2), spans, strict=True)]
                        slack_in = sum(e[0] * s for e, s in zip(ends, spans, strict=True)) / (t2 - t1)
                        slack_out = sum(e[1] * s for e, s in zip(ends, spans, strict=True)) / (t2 - t1)
                    if role[n] == "healthy" and rtt2 is not None:
                        healthy_rtts.append(rtt2)
                    approx = bool(p2.get("approx"))
                    if approx:
                        approx_checked += 1
                        bound = ((rtt1 or 0.0) + (rtt2 or 0.0)) / 1000.0 / (t2 - t1) if rtt1 and rtt2 else 1.0
                    else:
                        checked += 1
                    for got, want, slack in ((p2["inbound_mbps"], want_in, slack_in),
                                             (p2["outbound_mbps"], want_out, slack_out)):
                        err = abs(got - want) / want if want else float("inf")
                        if approx:
                            worst_approx = max(worst_approx, err)
                            if got <= 0 or abs(got - want) > (tolerance + bound) * want + slack:
                                approx_off += 1
                                failures.append(f"{n} ({role[n]}) at {p2['t']}: approximate {got:.3f} Mb/s, "
                                                f"truth {want:.3f}, bound {bound * 100:.2f}% + tolerance")
                            continue
                        worst = max(worst, err)
                        worst_by_role[role[n]] = max(worst_by_role.get(role[n], 0.0), err)
                        if got <= 0 or abs(got - want) > tolerance * want + slack:
                            off += 1
                            failures.append(f"{n} ({role[n]}) at {p2['t']}: {got:.3f} Mb/s, truth {want:.3f}")
            gaps_healthy = gaps_by_role.get("healthy", 0)
            if gaps_healthy:
                failures.append(f"{gaps_healthy} gaps on untouched devices")
            if gaps_by_role.get("reboot", 0) < len([n for n in names if role[n] == "reboot"]):
                failures.append(f"reboots left fewer gaps than reboots: {gaps_by_role}")

            # 4. Statuses: auth error for the key-only revoked device, fingerprint for replaced ones.
            code, doc = web.get(session, "/api/devices")
            status = {d["name"]: d["status"] for d in doc["devices"]} if code == 200 else {}
            for n in names:
                st = status.get(n) or {}
                err = (st.get("last_error") or "").lower()
                r = role[n]
                if r == "revoke_keyonly" and not (st.get("state") in ("down", "breaker_open")
                                                  and ("credential" in err or "auth" in err or "403" in err)):
                    failures.append(f"{n} (key only, key revoked) shows no auth error: {st}")
                swapped = "fingerprint" in err or "certificate changed" in err
                if r == "replace" and not (st.get("state") != "up" and swapped):
                    failures.append(f"{n} (replaced) shows no fingerprint error: {st}")
                if r in STATE_MODES and st.get("state") == "up":
                    failures.append(f"{n} ({r}) is shown up")
                if r in ANSWERING and st.get("state") != "up":
                    failures.append(f"{n} ({r}) is not up: {st}")
            replaced_late = [n for n in names if role[n] == "replace" and any(
                ts > t0 + next(f.done or 0 for f in faults if f.name == n) + budget for ts in samples.get(n, []))]
            if replaced_late:
                failures.append(f"replaced devices still sampled after the certificate changed: {replaced_late}")
            keygens = {n: st["keygen"] for n, st in sim.call("GET", "/_sim/stats?all=1", names[0])["devices"].items()}
            clock_log = procs.log_text("clock")
            web_log = procs.log_text("web")
            locked = grep_count(clock_log + web_log, "database is locked")
            if locked:
                failures.append(f"'database is locked' {locked} times in the logs")
            tracebacks = grep_count(clock_log, "Traceback")
            five_xx = sum(n for c, n in web_codes.items() if c >= 500 and c != 503)
            if five_xx:
                failures.append(f"{five_xx} HTTP 5xx answers from the web")
            if web_codes.get(503):
                failures.append(f"{web_codes[503]} health/overview answers were 503 (stale heartbeat)")
            result = {
                "parameters": {"devices": devices, "interval_s": interval, "run_s": run_s, "seed": seed,
                               "tolerance_pct": tolerance * 100},
                "roles": {r: sorted(n for n in names if role[n] == r) for r in sorted(set(role.values()))
                          if r != "healthy"},
                "healthy_devices": sum(1 for n in names if role[n] == "healthy"),
                "faults_injected": len([f for f in faults if f.done is not None]),
                "cycles_in_window": len(window),
                "cycles_with_error": len(errored),
                "answering_devices": sum(1 for n in names if role[n] in ANSWERING),
                "cycles_missed_by_answering_devices": sum(missed.values()),
                "rates_out_of_range": len(bad),
                "dashboard_rates_checked": checked,
                "dashboard_worst_error_pct": round(worst * 100, 3),
                "dashboard_worst_error_pct_by_role": {r: round(v * 100, 3) for r, v in worst_by_role.items()},
                "dashboard_values_compared": checked * 2,
                "dashboard_values_off_by_more_than_tolerance": off,
                "dashboard_windows_holding_a_reboot_or_failover": holding_event,
                "dashboard_windows_marked_approx": approx_checked,
                "dashboard_approx_values_outside_their_bound": approx_off,
                "dashboard_worst_error_pct_of_approx": round(worst_approx * 100, 3),
                "round_trip_ms_healthy": {
                    "p50": round(percentile(healthy_rtts, 50) or 0.0, 1),
                    "p99": round(percentile(healthy_rtts, 99) or 0.0, 1),
                    "max": round(max(healthy_rtts, default=0.0), 1),
                },
                "event_window_allowance_ms_of_end_rate": EVENT_SLACK_S * 1000,
                "gaps_by_role": gaps_by_role,
                "keygens_revoked_pw": {n: keygens.get(n) for n in names if role[n] == "revoke_pw"},
                "statuses_of_faulty": {n: f"{(status.get(n) or {}).get('state')}: "
                                          f"{((status.get(n) or {}).get('last_error') or '')[:80]}"
                                       for n in names if role[n] not in ANSWERING},
                "web_answers": web_codes,
                "web_p99_ms": round((percentile(latencies, 99) or 0) * 1000, 1),
                "clock_tracebacks_logged": tracebacks,
                "database_locked": locked,
                "processes_died": dead,
                "failures": failures,
            }
        finally:
            sim.close()
            if web is not None:
                web.close()
    return result


def main(argv: list[str] | None = None) -> int:
    p = scenario_parser(__doc__)
    p.add_argument("--devices", type=int, default=50)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args(argv)
    workdir = scenario_dir("faults", a.keep)
    result = run(workdir, a.devices, a.interval, a.minutes * 60, a.seed)
    return finish("fault_fleet", workdir, result, a.out, a.keep)


if __name__ == "__main__":
    raise SystemExit(main())
