"""The fenced cycle write and the lease round on PostgreSQL, in-process, at the S8 shape (a few minutes).

    .venv/bin/python bench/pg_write.py [--devices 1000] [--clocks 3] [--ifaces 15] [--cycles 20] [--parts]
                                       [--busy-threads N] [--switch-interval S] [--pack-in-write] [--takeover]
                                       [--cpu-parts] [--no-rates N] [--server-stats]

Starts its own PostgreSQL 15 (tests/helpers/postgres.py), migrates the stores, lets CLOCKS
coordinators share DEVICES by real lease rounds (`PgCoordinator.lease_round`), then for CYCLES
slots writes each clock's cycle (its ~DEVICES/CLOCKS devices, IFACES interfaces each, baselines,
statuses, dataplanes, the clock's stats) with `PgSampleStore.write_cycle(..., fence=...)`, its
parameters packed before it by `ensure_keys` and `pack_cycle` as the clock does (unless
`--pack-in-write`, or a checkout without `pack_cycle`; their CPU is `packed_before_cpu_ms`), and
runs one lease round per clock (with `--takeover`, half way the last clock's heartbeat and
leases are expired by SQL and the others take its devices over at their next rounds, warming
their keys as the clock does; each survivor's writes from then on are listed).
`--no-rates N`: the first N devices of each write have no interface rates (first polls).
`--cpu-parts` gives the thread CPU per write of each packing step (`pg_rows`, `pg_state`) and
of `write_cycle`. `--busy-threads N` keeps N CPU-bound threads running in the
process, as the clock's poll threads compete for the GIL (every round trip then waits to get it
back). Prints p50/p95/max of the write (and of the writing thread's own CPU time, which
load changes little: the client's share of the write) and of the lease round, and with `--parts` the time of
each SQL statement of the write (grouped by its first words), and with `--server-stats` the
server's own mean time per statement (`pg_stat_statements`, loaded into its server) and the
state tables' updates, HOT updates and size, and with `--fleet-read` the leader's read of the
fleet's newest interfaces for its alert evaluation (`clock_leader.fleet_cycle`, every slot) done
both ways: one `interfaces_latest` per device, as it was, and one `interfaces_since`. No network polls and no
simulator: only the database side of S8 (`make bench-scaleout` is the whole run).
`PANFM_BENCH_ROOT=/other/checkout` runs the same script against another checkout (A/B).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("PANFM_BENCH_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.postgres import PgServer, pg_env  # noqa: E402

import config  # noqa: E402
import throughput_storage  # noqa: E402
from panfm.models import (  # noqa: E402
    CounterBaseline,
    CycleResult,
    DataplaneCpu,
    DeviceSample,
    DeviceStatus,
    InterfaceCounters,
    InterfaceSample,
)
from panfm.storage import postgres as pg_mod  # noqa: E402
from reliability.clock_logs import dist  # noqa: E402  (S8's n, p50, p95, max)


def _cycle(devices: list[str], t: float, ifaces: int, no_rates: int = 0) -> CycleResult:
    """One cycle of these devices; the first `no_rates` have no interface rates (a first poll's)."""
    names = [f"ethernet1/{k + 1}" for k in range(ifaces)]
    first = set(devices[:no_rates])
    samples = tuple(DeviceSample(device_id=d, ts=t + 0.3, inbound_mbps=12.5, outbound_mbps=3.1, total_mbps=15.6,
                                 inbound_pps=1000.0, outbound_pps=900.0, sessions_active=1200, sessions_tcp=900,
                                 sessions_udp=250, sessions_icmp=50, sessions_max=64000,
                                 sessions_utilization_pct=1.9, sessions_cps=40, sessions_kbps=12000, sessions_pps=1900,
                                 cpu_dataplane_pct=12.0, cpu_management_pct=8.0, memory_pct=40.0,
                                 packet_buffer_pct=1.0, packet_descriptor_pct=0.5, rtt_ms=4.0, approx=False)
                    for d in devices)
    ifs = tuple(InterfaceSample(device_id=d, name=n, ts=t + 0.3, in_bps=1e6, out_bps=5e5, in_pps=100.0,
                                out_pps=90.0, errors_per_s=0.0, drops_per_s=0.0, counted=True, approx=False)
                if d not in first else
                InterfaceSample(device_id=d, name=n, ts=t + 0.3, in_bps=None, out_bps=None, in_pps=None,
                                out_pps=None, errors_per_s=None, drops_per_s=None, counted=True, approx=None)
                for d in devices for n in names)
    counters = {n: InterfaceCounters(n, 10**12, 10**11, 10**9, 10**9, 0, 1, source="hw") for n in names}
    return CycleResult(
        started=t, finished=t + 1.0, samples=samples, interfaces=ifs,
        baselines=tuple(CounterBaseline(d, t + 0.3, "SER" + d, 100000, counters, 4.0) for d in devices),
        statuses=tuple(DeviceStatus(d, "up", t + 0.3, t + 0.3, None, 0) for d in devices),
        dataplanes=tuple(DataplaneCpu(d, t + 0.3, (("dp0", 12.0),), ("dp0", 1, 30.0)) for d in devices),
    )


def _fleet_read(stores: Any, since: float) -> dict[str, Any]:
    """The leader's read of every device's newest interfaces, 5 times each way (ms per read)."""
    from panfm.storage.pg_reader import PgSampleReader

    reader = PgSampleReader(stores.backend.db)
    ids = sorted(reader.latest_all())
    out: dict[str, Any] = {"devices": len(ids)}
    for name, read in (("per_device", lambda: {d: reader.interfaces_latest(d) for d in ids}),
                       ("one_statement", lambda: reader.interfaces_since(since))):
        runs, found = [], 0
        for _ in range(5):
            t0 = time.perf_counter()
            got = read()
            runs.append(round((time.perf_counter() - t0) * 1000, 1))
            found = sum(len(v) for v in got.values())
        out[name] = {"ms": runs, "interfaces": found}
    return out


def _cpu_parts() -> dict[str, float]:
    """Thread CPU seconds spent in each packing step and in `write_cycle` (wrapped module functions)."""
    from panfm.storage import pg_rows, pg_samples, pg_state

    spent: dict[str, float] = defaultdict(float)

    def wrap(owner: Any, name: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kw: Any) -> Any:
            c0 = time.thread_time()
            try:
                return inner(*args, **kw)
            finally:
                spent[name] += time.thread_time() - c0

        setattr(owner, name, timed)

    for name in ("iface_keys", "iface_columns", "device_columns"):
        wrap(pg_rows, name)
    for name in ("baselines_params", "statuses_params", "dataplanes_params"):
        wrap(pg_state, name)
    wrap(pg_samples.PgSampleStore, "write_cycle")
    return spent


class _Parts:
    """Times every statement the stores send (PgConn.execute / executemany), by its first words."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        self._exec, self._many = pg_mod.PgConn.execute, pg_mod.PgConn.executemany
        self._copy = getattr(pg_mod.PgConn, "copy_rows", None)
        parts = self

        def execute(conn: Any, sql: str, params: Any = None, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return parts._exec(conn, sql, params, **kw)
            finally:
                parts.ms[" ".join(sql.split()[:6])[:60]].append((time.perf_counter() - t0) * 1000)

        def executemany(conn: Any, sql: str, params: Any) -> None:
            t0 = time.perf_counter()
            try:
                parts._many(conn, sql, params)
            finally:
                parts.ms["many: " + " ".join(sql.split()[:4])[:50]].append((time.perf_counter() - t0) * 1000)

        def copy_rows(conn: Any, table: str, *args: Any) -> None:
            t0 = time.perf_counter()
            try:
                parts._copy(conn, table, *args)  # type: ignore[misc]
            finally:
                parts.ms["copy: " + table].append((time.perf_counter() - t0) * 1000)

        if self._copy is not None:
            pg_mod.PgConn.copy_rows = copy_rows  # type: ignore[method-assign]
        pg_mod.PgConn.execute = execute  # type: ignore[method-assign]
        pg_mod.PgConn.executemany = executemany  # type: ignore[method-assign]

    def report(self) -> dict[str, dict[str, float]]:
        return {k: dist(v) for k, v in sorted(self.ms.items(), key=lambda kv: -sum(kv[1]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--clocks", type=int, default=3)
    ap.add_argument("--ifaces", type=int, default=15)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--interval", type=int, default=30)
    ap.add_argument("--parts", action="store_true", help="time each statement of the write")
    ap.add_argument("--server-stats", action="store_true",
                    help="the server's own time per statement (pg_stat_statements) and the state tables' HOT updates")
    ap.add_argument("--busy-threads", type=int, default=0,
                    help="CPU-bound Python threads in this process meanwhile (the clock's poll threads hold the GIL)")
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="sys.setswitchinterval for this process (seconds; the clock sets its own)")
    ap.add_argument("--fleet-read", action="store_true",
                    help="time the leader's read of the fleet's newest interfaces, per device and in one statement")
    ap.add_argument("--cpu-parts", action="store_true",
                    help="thread CPU per write of each packing step and of write_cycle (--pack-in-write: inside)")
    ap.add_argument("--no-rates", type=int, default=0,
                    help="devices per write whose interfaces have no rates (first polls: NULLs in the arrays)")
    ap.add_argument("--takeover", action="store_true",
                    help="half way, the last clock dies (leases and heartbeat expired); the others take over")
    ap.add_argument("--pack-in-write", action="store_true",
                    help="pack the write's parameters inside it, not before (`pack_cycle`) as the clock does")
    ap.add_argument("--out", help="also write the figures as JSON here")
    a = ap.parse_args()
    if a.switch_interval is not None:
        sys.setswitchinterval(a.switch_interval)
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for i in range(1000):
                x += i * i

    spinners = [threading.Thread(target=spin, daemon=True) for _ in range(a.busy_threads)]
    work = Path(tempfile.mkdtemp(prefix="bench-pg-write-"))
    server = PgServer(work / "pg")
    try:
        if a.server_stats:  # loaded at the server's start only
            server.psql("ALTER SYSTEM SET shared_preload_libraries = pg_stat_statements")
            server.stop()
            server.start()
            server.psql("ALTER SYSTEM SET pg_stat_statements.track = 'all'")  # the lease function's statements too
            server.psql("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
            server.psql("SELECT pg_reload_conf()")
        url = server.fresh_database("bench")
        dbname = url.rsplit("/", 1)[1]
        if a.server_stats:
            server.psql("CREATE EXTENSION pg_stat_statements", dbname)
        data = work / "data"
        config.ensure_data_dir(data)
        settings = config.load_settings(env={"PANFM_DATA_DIR": str(data), **pg_env(url)})
        stores = throughput_storage.open_stores(settings, writer=True)
        ids = [f"fw{i:04d}" for i in range(a.devices)]
        coords = [throughput_storage.open_coordinator(url, data) for _ in range(a.clocks)]
        nodes = [f"bench-{k}" for k in range(a.clocks)]
        for c, n in zip(coords, nodes, strict=True):
            c.register(n, "bench", os.getpid())
        for _ in range(3):  # let the shares settle
            rounds = [c.lease_round(n, ids, a.interval) for c, n in zip(coords, nodes, strict=True)]
        writers = [stores.open_sample_writer(a.interval) for _ in range(a.clocks)]
        for t in spinners:
            t.start()
        parts = _Parts() if a.parts else None
        cpu_parts = _cpu_parts() if a.cpu_parts else None
        writes: list[float] = []
        write_cpu: list[float] = []  # the writing thread's own CPU time (a figure load changes little)
        pack_cpu: list[float] = []  # the keys and packing before the write (CPU), as the clock does them
        leases: list[float] = []
        txns: dict[str, list[float]] = {"write": [], "lease": []}  # each transaction's own time on the server
        t = (time.time() // a.interval) * a.interval - a.cycles * a.interval
        stats = {"executions": {"collect": 100}, "last_cycle": {"devices": a.devices // a.clocks}}
        alive = list(range(a.clocks))
        after_takeover: dict[str, list[float | str]] = {}  # each survivor's writes from the takeover on
        for k in range(-2, a.cycles):  # two warm-up cycles (keys, partitions, caches)
            slot_t = t + (k + 2) * a.interval
            if a.takeover and k == a.cycles // 2 and len(alive) > 1:
                # The last clock dies: its heartbeat and leases run out (by SQL, not by waiting).
                gone = nodes[alive.pop()]
                server.psql(f"UPDATE device_lease SET lease_until = now() - interval '1 s' WHERE owner = '{gone}';"
                            f" UPDATE clock_node SET heartbeat_at = now() - interval '1 hour' WHERE node_id = '{gone}'",
                            dbname)
            for i in alive:
                c, n, w = coords[i], nodes[i], writers[i]
                t0 = time.perf_counter()
                rounds[i] = c.lease_round(n, ids, a.interval)
                if rounds[i].granted:  # the clock warms the keys of devices granted to it
                    w.warm_keys(rounds[i].granted)
                lease_ms = (time.perf_counter() - t0) * 1000
                cycle = _cycle(sorted(rounds[i].held), slot_t, a.ifaces, a.no_rates)
                packed = None
                if not a.pack_in_write and hasattr(w, "pack_cycle"):  # as the clock does, in its wait
                    c0 = time.thread_time()
                    w.ensure_keys(cycle)
                    packed = w.pack_cycle(cycle)
                    if k >= 0:
                        pack_cpu.append((time.thread_time() - c0) * 1000)
                t0, c0 = time.perf_counter(), time.thread_time()
                kw = {"packed": packed} if packed is not None else {}  # (a checkout before `pack_cycle`)
                refused = w.write_cycle(cycle, clock_stats=stats, fence=(n, rounds[i].fences), **kw)
                write_ms = (time.perf_counter() - t0) * 1000
                cpu_ms = (time.thread_time() - c0) * 1000
                if refused:
                    print(f"refused {refused} rows of {n}", file=sys.stderr)
                if k >= 0:
                    writes.append(write_ms)
                    write_cpu.append(cpu_ms)
                    leases.append(lease_ms)
                    for name, ms in (("write", getattr(w, "last_txn_ms", None)), ("lease", rounds[i].txn_ms)):
                        if ms is not None:
                            txns[name].append(ms)
                if a.takeover and k >= a.cycles // 2:
                    txn = getattr(w, "last_txn_ms", None)  # and its transaction on the server
                    after_takeover.setdefault(n, []).append(
                        round(write_ms, 1) if txn is None else f"{write_ms:.1f} (transaction {txn:.1f})")
                elif parts is not None:
                    parts.ms.clear()
        stop.set()
        result: dict[str, Any] = {
            "devices": a.devices, "clocks": a.clocks, "ifaces": a.ifaces, "cycles": a.cycles,
            "busy_threads": a.busy_threads, "switch_interval_s": sys.getswitchinterval(),
            "rows_per_write": {"device": a.devices // a.clocks, "iface": a.devices // a.clocks * a.ifaces},
            "write_ms": dist(writes), "write_client_cpu_ms": dist(write_cpu),
            "packed_before_cpu_ms": dist(pack_cpu) if pack_cpu else None, "lease_round_ms": dist(leases),
            "write_transaction_ms": dist(txns["write"]), "lease_transaction_ms": dist(txns["lease"]),
            "writes_from_the_takeover_ms": after_takeover or None,
            "load": os.getloadavg(),
            "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        if parts is not None:
            result["parts_ms"] = parts.report()
        if cpu_parts is not None:  # per write, over the measured cycles and the two warm-ups
            n = (a.cycles + 2) * a.clocks
            result["cpu_parts_ms_per_write"] = {k: round(v * 1000 / n, 2) for k, v in cpu_parts.items()}
        if a.fleet_read:
            result["fleet_read_ms"] = _fleet_read(stores, t + (a.cycles + 1) * a.interval - 2 * a.interval)
        if a.server_stats:  # every statement since the start, the two warm-up cycles included
            rows = server.psql(
                "SELECT round((total_exec_time / calls)::numeric, 2) || '|' || calls || '|' || plans || '|'"
                " || round((total_plan_time / greatest(plans, 1))::numeric, 2) || '|'"
                " || left(regexp_replace(query, '\\s+', ' ', 'g'), 70) FROM pg_stat_statements"
                " WHERE toplevel AND (query LIKE 'INSERT%' OR query LIKE 'SELECT%' OR query LIKE 'WITH%')"
                " ORDER BY total_exec_time DESC LIMIT 16", dbname)
            result["server_ms_per_call"] = [  # plans: how many of the calls were planned (the others reused a plan)
                dict(zip(("mean_ms", "calls", "plans", "plan_ms", "statement"), r.split("|", 4), strict=True))
                for r in rows.splitlines()]
            nested = server.psql(  # the statements inside the lease round's function, by their own time
                "SELECT round((total_exec_time / calls)::numeric, 2) || '|' || calls || '|'"
                " || left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements"
                " WHERE NOT toplevel ORDER BY total_exec_time DESC LIMIT 16", dbname)
            result["lease_round_parts_ms"] = [dict(zip(("mean_ms", "calls", "statement"), r.split("|", 2), strict=True))
                                              for r in nested.splitlines()]
            tables = server.psql(
                "SELECT relname || '|' || n_tup_upd || '|' || n_tup_hot_upd || '|' || pg_relation_size(relid)"
                " FROM pg_stat_user_tables"
                " WHERE relname IN ('baselines', 'device_status', 'dataplane_latest', 'device_lease')", dbname)
            result["state_tables"] = [dict(zip(("table", "updates", "hot_updates", "bytes"), r.split("|"), strict=True))
                                      for r in tables.splitlines()]
        print(json.dumps(result, indent=1))
        if a.out:
            Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
        for c in coords:
            c.close()
        stores.close()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
