"""Scale-out scenarios S1-S7 of the brief: several real clocks on one PostgreSQL, faults injected.

    python -m reliability.scaleout [--scenarios S1,S3,S4,S5,S6,S7] [--devices 300] [--interval 5]
                                   [--kills 20] [--clocks 3] [--out FILE] [--keep DIR]
    python -m reliability.scaleout --bench [--devices 1000] [--interval 30] [--minutes 10]

Each run starts its own PostgreSQL 15 (tests/helpers/postgres.py, a temporary folder, a free
loopback port), the simulator and N `python clock.py` with `database_url` set, and checks:

- S1 `kill -9` one clock at KILLS random moments (a new clock replaces it): no device polled twice
  in a slot, every orphan polled by a survivor within 2 slots of the kill;
- S2 in every scenario: the simulator's poll times (`/_sim/stats?calls=1`) show at most one poll
  per device per slot, and PostgreSQL at most one sample per device and slot;
- S3 SIGSTOP one clock for 3.5 I, SIGCONT: its devices move, no duplicate, its regained leases
  carry new fences, shares back to fair ± 2 within 2 I of its return (late writes refused are
  counted in its log);
- S4 kill the leader twice: a new leader within 2 I (database time), one `job_run` per job and slot;
- S5 add a clock, then SIGTERM one: every live clock holds at least fair − 2, no missed slot;
- S6 restart PostgreSQL, then SIGSTOP its postmaster for 10 s: clocks and web keep running,
  `/api/health` says degraded with the reason while it is away, samples resume within 2 I;
- S7 a clock whose wall clock is 60 s off (`faketime`, when installed): shares and polls as before.

S8 (`--bench`): 3 clocks × DEVICES at INTERVAL for MINUTES, one clock `kill -9`-ed at half time:
every healthy device sampled in every slot (an orphan may miss one), 0 duplicates, the per-cycle
write p95 (≤ 50 ms) and the lease transaction p95 (≤ 20 ms, its time on the server; the round as
the clock waits for it is reported beside it) from the clocks' logs. S9-S12 (partitions, rollups, store
conformance, dashboard reads) are the storage backend's: tests/test_pg_*.py, bench_queries.
"""

from __future__ import annotations

import glob
import math
import os
import random
import secrets
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet

import config
from panfm.models import DeviceConfig, TlsConfig
from reliability import clock_logs
from reliability.harness import ROOT, Procs, Sim, Web, finish, scenario_dir, scenario_parser, wait_for
from throughput_storage import open_coordinator, open_stores

sys.path.insert(0, str(ROOT / "tests"))  # one PostgreSQL helper for the tests and these runs
from helpers.postgres import PgServer


class Cluster:
    """PostgreSQL, the simulator and the clocks of one run."""

    def __init__(self, procs: Procs, workdir: Path, devices: int, interval: int) -> None:
        self.procs, self.workdir, self.interval = procs, workdir, interval
        self.pg = PgServer(workdir / "pg")
        self.url = self.pg.fresh_database("scaleout")
        self.sim = Sim.start(procs, devices, models="PA-440,PA-VM", seed=17)
        self.data = workdir / "data"
        # The keys every host shares on PostgreSQL, made for this run.
        self.keys = {"PANFM_DATABASE_URL": self.url, "PANFM_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                     "PANFM_SECRET_KEY": secrets.token_urlsafe(32)}
        self.settings = config.load_settings(env={"PANFM_DATA_DIR": str(self.data), **self.keys})
        config.ensure_data_dir(self.data)
        stores = open_stores(self.settings)
        try:
            for e in self.sim.inventory:
                stores.devices.add(DeviceConfig(id=e["name"], name=e["name"], host=e["host"], port=int(e["port"]),
                                                api_key=e["api_key"],
                                                tls=TlsConfig("pin", fingerprint_sha256=e["tls_fingerprint_sha256"])))
        finally:
            stores.close()
        coordination = open_coordinator(self.url, self.data)
        coordination.db_now()  # the coordination tables exist before this run reads them
        coordination.close()
        self.names = [e["name"] for e in self.sim.inventory]
        self.clocks: list[str] = []
        self.started = time.time()

    def start_clock(self, prefix: list[str] | None = None) -> str:
        name = f"clock{len(self.clocks)}"
        env = {**self.keys, "PANFM_LOG_LEVEL": "DEBUG",
               "PANFM_COLLECTOR_WORKERS": str(min(64, max(8, len(self.names) // 10)))}
        if prefix:
            from reliability.harness import panfm_env

            self.procs.start(name, [*prefix, sys.executable, str(ROOT / "clock.py")],
                             panfm_env(self.data, self.interval, extra=env))
        else:
            self.procs.start_clock(self.data, self.interval, name=name, **env)
        self.clocks.append(name)
        return name

    def pid(self, name: str) -> int:
        return self.procs.procs[name].pid

    def alive(self) -> list[str]:
        return [n for n in self.clocks if self.procs.procs[n].poll() is None]

    def q(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def node(self, name: str) -> str | None:
        rows = self.q("SELECT node_id FROM clock_node WHERE pid = %s ORDER BY started_at DESC LIMIT 1",
                      (self.pid(name),))
        return rows[0][0] if rows else None

    def holdings(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for d, o in self.q("SELECT device_id, owner FROM device_lease WHERE lease_until > now()"):
            out.setdefault(o, set()).add(d)
        return out

    def leader(self) -> str | None:
        rows = self.q("SELECT owner FROM job_lease WHERE name = 'leader' AND lease_until > now()")
        return rows[0][0] if rows else None

    def db_now(self) -> float:
        return float(self.q("SELECT extract(epoch FROM now())::float8")[0][0])

    def settled(self, clocks: int) -> bool:
        held = self.holdings()
        fair = math.ceil(len(self.names) / clocks)
        return (len(held) == clocks and sum(len(v) for v in held.values()) == len(self.names)
                and all(fair - 2 <= len(v) <= fair + 2 for v in held.values()))

    def wait_settled(self, clocks: int, timeout: float) -> None:
        wait_for(lambda: self.settled(clocks), timeout, step=0.2, what=f"{clocks} clocks sharing the fleet")

    def poll_times(self) -> dict[str, list[float]]:
        doc = self.sim.call("GET", "/_sim/stats?all=1&calls=1", self.names[0])
        return {n: list(s.get("poll_times", [])) for n, s in doc["devices"].items()}

    def duplicates(self, since: float) -> dict[str, Any]:
        polls: Counter[tuple[str, int]] = Counter()
        for n, times in self.poll_times().items():
            for t in times:
                if t >= since:
                    polls[(n, math.floor(t / self.interval))] += 1
        samples = self.q("SELECT count(*) FROM (SELECT s.dk, s.slot FROM device_samples s GROUP BY 1, 2 "
                         "HAVING count(*) > 1) x")[0][0]
        twice = sorted(k for k, v in polls.items() if v > 1)
        return {"polls": sum(polls.values()), "polled_twice_in_a_slot": len(twice), "examples": twice[:5],
                "duplicate_samples": int(samples)}

    def samples_by_slot(self, first: int, last: int) -> dict[int, set[str]]:
        rows = self.q("SELECT s.slot, d.device_id FROM device_samples s JOIN ts_device d ON d.dk = s.dk "
                      "WHERE s.slot BETWEEN %s AND %s", (first * self.interval, last * self.interval))
        out: dict[int, set[str]] = {}
        for slot, dev in rows:
            out.setdefault(int(slot) // self.interval, set()).add(dev)
        return out

    def log_figures(self) -> dict[str, Any]:
        return clock_logs.figures(self.procs.log_text(n) for n in self.clocks)

    def close(self) -> None:
        # The server's log stays with the clocks' logs (kept with --keep or on a failure).
        if self.pg.log_path.exists():
            shutil.copyfile(self.pg.log_path, self.procs.workdir / "postgres.log")
        self.pg.close()


def _first_poll_after(c: Cluster, t: float, devices: set[str]) -> dict[str, float | None]:
    times = c.poll_times()
    return {d: min((x for x in times.get(d, []) if x > t), default=None) for d in devices}


# ---- scenarios --------------------------------------------------------------------------


def s1_kill9(c: Cluster, kills: int, failures: list[str]) -> dict[str, Any]:
    """kill -9 a clock at random moments; a fresh clock replaces it after each recovery."""
    iv, late, recoveries = c.interval, 0, []
    for k in range(kills):
        time.sleep(random.uniform(0, iv))
        victim = random.choice(c.alive())
        node = c.node(victim)
        orphans = c.holdings().get(node or "", set())
        t_kill = time.time()
        c.procs.procs[victim].kill()
        c.procs.procs[victim].wait(timeout=10)
        first = wait_for(lambda o=orphans, t=t_kill: (f := _first_poll_after(c, t, o)) and all(f.values()) and f,
                         6 * iv, step=0.2, what="every orphan polled again")
        slots = [math.floor(v / iv) - math.floor(t_kill / iv) for v in first.values() if v is not None]
        worst = max(slots, default=0)
        recoveries.append(round(max((v - t_kill) for v in first.values() if v is not None), 2) if first else 0)
        if worst > 2:
            late += 1
            failures.append(f"S1 kill {k}: an orphan first polled {worst} slots after the kill")
        c.start_clock()
        c.wait_settled(len(c.alive()), 6 * iv)
    return {"kills": kills, "late_recoveries": late, "seconds_to_first_orphan_poll": clock_logs.dist(recoveries)}


def s3_sigstop(c: Cluster, failures: list[str]) -> dict[str, Any]:
    iv = c.interval
    victim = c.alive()[0]
    node = c.node(victim)
    before = dict(c.q("SELECT device_id, fence FROM device_lease WHERE owner = %s", (node,)))
    os.kill(c.pid(victim), signal.SIGSTOP)
    time.sleep(3.5 * iv)
    moved = c.holdings()
    if node in moved:
        failures.append("S3: the paused clock still held leases after 3.5 I")
    t_cont = time.time()
    os.kill(c.pid(victim), signal.SIGCONT)
    try:
        c.wait_settled(len(c.alive()), 2 * iv + 5)
        back_s = round(time.time() - t_cont, 2)
    except TimeoutError:
        back_s = None
        failures.append("S3: shares not back to fair ± 2 within 2 I of SIGCONT")
    after = dict(c.q("SELECT device_id, fence FROM device_lease WHERE owner = %s", (node,)))
    stale = [d for d, f in after.items() if f <= before.get(d, 0)]
    if stale:
        failures.append(f"S3: regained leases without a new fence: {stale[:5]}")
    return {"devices_held_before": len(before), "devices_regained": len(after), "shares_back_after_s": back_s,
            "rejected_writes_logged": c.log_figures()["rejected_writes"]}


def s4_leader(c: Cluster, failures: list[str], times: int = 2) -> dict[str, Any]:
    iv, gaps = c.interval, []
    for k in range(times):
        old = wait_for(c.leader, 3 * iv, what="a leader")
        victim = next(n for n in c.alive() if c.node(n) == old)
        t0 = c.db_now()
        c.procs.procs[victim].kill()
        c.procs.procs[victim].wait(timeout=10)
        wait_for(lambda o=old: (n := c.leader()) and n != o, 6 * iv, step=0.1, what="a new leader")
        gap = c.db_now() - t0
        gaps.append(round(gap, 2))
        if gap > 2 * iv:
            failures.append(f"S4 kill {k}: a new leader after {gap:.1f} s (> 2 I)")
        c.start_clock()
        c.wait_settled(len(c.alive()), 6 * iv)
        time.sleep(2 * iv)
    runs = c.q("SELECT name, count(*), count(DISTINCT slot) FROM job_run GROUP BY name")
    for name, n, distinct in runs:
        if n != distinct:
            failures.append(f"S4: job {name} ran twice in a slot")
    return {"new_leader_after_s": gaps, "job_runs": {r[0]: int(r[1]) for r in runs}}


def s5_join_leave(c: Cluster, failures: list[str]) -> dict[str, Any]:
    iv = c.interval
    c.start_clock()
    try:
        c.wait_settled(len(c.alive()), 2 * iv + 5)
    except TimeoutError:
        failures.append("S5: a joining clock not at fair − 2 within 2 I")
    leaving = c.alive()[0]
    node = c.node(leaving)
    handed = c.holdings().get(node or "", set())
    t_term = time.time()
    c.procs.stop(leaving)
    c.wait_settled(len(c.alive()), 4 * iv)
    time.sleep(2 * iv)
    first, last = math.floor(t_term / iv) - 1, math.floor(time.time() / iv) - 1
    by_slot = c.samples_by_slot(first, last)
    missed = sorted((d, s) for d in handed for s in range(first, last + 1) if d not in by_slot.get(s, set()))
    if missed:
        failures.append(f"S5: {len(missed)} device-slots missed by the SIGTERM handover, e.g. {missed[:3]}")
    return {"handed_over": len(handed), "missed_slots": len(missed)}


def s6_database(c: Cluster, failures: list[str]) -> dict[str, Any]:
    iv = c.interval
    web = Web.start(c.procs, c.data, iv, extra=c.keys)
    out: dict[str, Any] = {}
    for how in ("restart", "sigstop"):
        t0 = time.time()
        if how == "restart":
            c.pg.stop("fast")
            time.sleep(2 * iv)
        else:
            os.kill(c.pg.postmaster_pid(), signal.SIGSTOP)
            time.sleep(10)
        status, body = web.get(None, "/api/health")
        degraded = status == 503 and body is not None and body.get("status") == "degraded"
        if how == "restart" and not (degraded and "reason" in body):
            failures.append(f"S6 {how}: /api/health answered {status} {body} while PostgreSQL was away")
        if how == "restart":
            c.pg.start()
        else:
            os.kill(c.pg.postmaster_pid(), signal.SIGCONT)
        back = time.time()
        try:
            wait_for(lambda b=back: any(t > b for ts in c.poll_times().values() for t in ts), 6 * iv, step=0.5,
                     what="polls after the database came back")
            after = math.floor(back / iv) * iv
            wait_for(lambda a=after: (c.q("SELECT max(slot) FROM device_samples")[0][0] or 0) >= a,
                     4 * iv, step=0.5, what="samples after the database came back")
            resumed = round(time.time() - back, 2)
        except TimeoutError as exc:
            resumed = None
            failures.append(f"S6 {how}: {exc}")
        status2, _ = web.get(None, "/api/health")
        out[how] = {"health_while_away": status, "degraded_with_reason": bool(degraded and body and "reason" in body),
                    "samples_again_after_s": resumed, "health_after": status2, "away_s": round(back - t0, 1)}
    dead = {n: rc for n, rc in c.procs.dead().items() if n.startswith("clock") and n in c.alive()}
    if dead:
        failures.append(f"S6: clocks died: {dead}")
    return out


def s7_skew(c: Cluster, failures: list[str]) -> dict[str, Any]:
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not libs:
        return {"skipped": "libfaketime is not installed (apt-get install faketime)"}
    # Only the wall clock is 60 s ahead: libfaketime's monotonic offset hangs Python's timed waits
    # (threading.Event.wait never returns), and a real clock skew leaves CLOCK_MONOTONIC alone.
    # The library is preloaded by `env`, which execs python: the `faketime` wrapper would fork it,
    # and a kill of the wrapper would leave the clock running.
    before = {r[0] for r in c.q("SELECT node_id FROM clock_node")}
    c.start_clock(prefix=["env", f"LD_PRELOAD={libs[0]}", "FAKETIME=+60s", "FAKETIME_DONT_FAKE_MONOTONIC=1"])
    c.wait_settled(len(c.alive()), 6 * c.interval)
    since = time.time()
    time.sleep(3 * c.interval)
    # Its node by registration (the one registered since it started).
    skewed = {r[0] for r in c.q("SELECT node_id FROM clock_node")} - before
    held = c.holdings().get(min(skewed), set()) if len(skewed) == 1 else set()
    polled = {n for n, times in c.poll_times().items() if any(t >= since for t in times)}
    out = {"clocks": len(c.alive()), "settled": c.settled(len(c.alive())), "skewed_clock_holds": len(held),
           "its_devices_polled": len(held & polled)}
    if not held or not out["settled"]:
        failures.append(f"S7: the skewed clock does not share the fleet: {out}")
    elif held - polled:
        failures.append(f"S7: devices of the skewed clock not polled: {sorted(held - polled)[:5]}")
    return out


def bench(c: Cluster, minutes: float, failures: list[str]) -> dict[str, Any]:
    """S8: 3 clocks, the fleet at INTERVAL for MINUTES, one clock kill -9-ed at half time."""
    iv = c.interval
    t_start = time.time()
    kill_at = t_start + minutes * 30
    end = t_start + minutes * 60
    killed: dict[str, Any] = {}
    while time.time() < end:
        if not killed and time.time() >= kill_at:
            victim = c.alive()[0]
            killed = {"clock": victim, "at": time.time(), "orphans": c.holdings().get(c.node(victim) or "", set())}
            c.procs.procs[victim].kill()
        time.sleep(1)
    first, last = math.floor(t_start / iv) + 1, math.floor(time.time() / iv) - 1
    by_slot = c.samples_by_slot(first, last)
    kill_slot = math.floor(killed["at"] / iv) if killed else None
    missing: Counter[str] = Counter()
    for s in range(first, last + 1):
        for d in set(c.names) - by_slot.get(s, set()):
            missing[d] += 1
    orphan_misses = {d: n for d, n in missing.items() if killed and d in killed["orphans"]}
    other_misses = {d: n for d, n in missing.items() if not (killed and d in killed["orphans"])}
    if other_misses:
        failures.append(f"S8: {len(other_misses)} healthy devices missed slots (e.g. {list(other_misses.items())[:3]})")
    if any(n > 1 for n in orphan_misses.values()):
        failures.append("S8: an orphan of the killed clock missed more than one slot")
    figures = c.log_figures()
    if (figures["write_ms"]["p95"] or 0) > 50:
        failures.append(f"S8: write p95 {figures['write_ms']['p95']} ms > 50")
    # The brief's figure is the lease *transaction* (its time on the server, from the round's own
    # clock_timestamp() - now()); the round as the clock waits for it (lease_round_ms) adds the
    # clock's waits for its interpreter and is reported beside it.
    lease_txn = figures["lease_transaction_ms"]["p95"]
    if lease_txn is None:
        failures.append("S8: no lease transaction times in the clocks' logs")
    elif lease_txn > 20:
        failures.append(f"S8: lease transaction p95 {lease_txn} ms > 20")
    return {"slots": last - first + 1, "kill_slot": kill_slot, "orphans": len(killed.get("orphans", ())),
            "orphan_slots_missed": sum(orphan_misses.values()), "healthy_slots_missed": sum(other_misses.values()),
            **figures}


def run(workdir: Path, scenarios: list[str], devices: int, interval: int, kills: int, clocks: int,
        bench_minutes: float | None) -> dict[str, Any]:
    failures: list[str] = []
    result: dict[str, Any] = {"devices": devices, "interval": interval, "clocks": clocks,
                              "load": os.getloadavg(), "cpus": os.cpu_count()}
    with Procs(workdir) as procs:
        c = Cluster(procs, workdir, devices, interval)
        try:
            since = time.time()
            for _ in range(clocks):
                c.start_clock()
            c.wait_settled(clocks, 10 * interval + 30)
            if bench_minutes is not None:
                result["S8"] = bench(c, bench_minutes, failures)
            steps = {"S1": lambda: s1_kill9(c, kills, failures), "S3": lambda: s3_sigstop(c, failures),
                     "S4": lambda: s4_leader(c, failures), "S5": lambda: s5_join_leave(c, failures),
                     "S6": lambda: s6_database(c, failures), "S7": lambda: s7_skew(c, failures)}
            for name in scenarios:
                result[name] = steps[name]()
            result["S2"] = c.duplicates(since)
            if result["S2"]["polled_twice_in_a_slot"] or result["S2"]["duplicate_samples"]:
                failures.append(f"S2: duplicates {result['S2']}")
            result["figures"] = c.log_figures()
        except (TimeoutError, RuntimeError, psycopg.Error) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            result["load_after"] = os.getloadavg()
            procs.close()
            c.close()
    result["failures"] = failures
    return result


def main(argv: list[str] | None = None) -> int:
    p = scenario_parser(__doc__)
    p.add_argument("--scenarios", default="S1,S3,S4,S5,S6,S7")
    p.add_argument("--devices", type=int, default=300)
    p.add_argument("--interval", type=int, default=5)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--clocks", type=int, default=3)
    p.add_argument("--bench", action="store_true", help="S8: the scale-out benchmark instead of the scenarios")
    p.add_argument("--minutes", type=float, default=10.0)
    a = p.parse_args(argv)
    name = "scaleout-bench" if a.bench else "scaleout"
    workdir = scenario_dir(name, a.keep)
    scenarios = [] if a.bench else [s.strip().upper() for s in a.scenarios.split(",") if s.strip()]
    result = run(workdir, scenarios, a.devices, a.interval, a.kills, a.clocks, a.minutes if a.bench else None)
    return finish(name, workdir, result, a.out, a.keep)


if __name__ == "__main__":
    sys.exit(main())
