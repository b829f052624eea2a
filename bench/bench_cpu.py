"""Clock CPU per firewall-poll and per inventory, from /proc, without a profiler (issue 17).

    .venv/bin/python bench/bench_cpu.py --devices 100 --interval 10 --seconds 120   # make bench-cpu
    [--log-cap N]   # the setting log_fetch_cap, clock and inventory part (default: its default, 50)
    [--clock-env NAME=VALUE ...]   # an environment variable for the clock (part 1) only, repeatable

1. Clock: starts `python -m panos_sim` and a real `python clock.py` on a fresh data folder with
   every simulated device registered (pinned), lets it warm up (`--warmup` s: first cycles,
   key generation, first inventories), then reads the clock's CPU time (utime + stime of
   /proc/PID/stat, every thread: poll, parse, rates, storage, alerts, inventory) and the
   simulator's request counts (`/_sim/stats?all=1`: one `show counter interface all` per fast
   poll, one `show system info` per inventory) at the start and the end of `--seconds`.
   CPU per poll = clock CPU / fast polls counted by the simulator, everything included.
2. Inventory: in this process, a `Collector` gathers the inventory of every device
   (`collect_slow`, `--inventory-rounds` times) and stores it (`SampleStore.write_inventory`);
   CPU per inventory = this process's CPU (time.process_time, every thread) / inventories.

Also printed: the steady-state figure `poll_ms + inventory_ms × interval / 300` (each firewall
is inventoried once per 300 s whatever the window; a 2-minute window holds a share of the
inventories that depends on where it falls).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import config  # noqa: E402
from reliability.harness import Procs, Sim, register, whole_windows  # noqa: E402
from throughput_collector import Collector  # noqa: E402
from throughput_storage import HISTORY_DB, DeviceStore, SampleStore  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
POLL_CMD = "op:show counter interface"  # the stats label: the op keywords, not the "all"
INVENTORY_CMD = "op:show system info"


def cpu_s(pid: int) -> float:
    """utime + stime of a process, all threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def counts(sim: Sim, names: list[str]) -> tuple[int, int]:
    stats = sim.call("GET", "/_sim/stats?all=1", names[0])["devices"]
    polls = sum(s["requests"].get(POLL_CMD, 0) for s in stats.values())
    inventories = sum(s["requests"].get(INVENTORY_CMD, 0) for s in stats.values())
    return polls, inventories


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--warmup", type=float, default=40)
    ap.add_argument("--log-cap", type=int, default=None,
                    help="the setting log_fetch_cap, clock and inventory part (default: its default, 50)")
    ap.add_argument("--inventory-rounds", type=int, default=3)
    ap.add_argument("--clock-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for the clock (part 1) only, e.g. PANFM_COLLECTOR_WORKERS=16;"
                         " repeatable")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    data = work / "data"
    result: dict[str, object] = {"devices": args.devices, "interval_s": args.interval, "load_before": load()}
    with Procs(work) as procs:
        sim = Sim.start(procs, args.devices, seed=1)
        names = [e["name"] for e in sim.inventory]
        register(data, sim.inventory)
        env = {} if args.log_cap is None else {"PANFM_LOG_FETCH_CAP": str(args.log_cap)}
        env.update(item.split("=", 1) for item in args.clock_env)
        result["clock_env"] = env
        clock = procs.start_clock(data, args.interval, **env)
        time.sleep(args.warmup)
        if clock.poll() is not None:
            raise SystemExit(f"clock exited: {procs.log_text('clock')[-2000:]}")
        c0, (p0, i0), t0 = cpu_s(clock.pid), counts(sim, names), time.monotonic()
        time.sleep(args.seconds)
        c1, (p1, i1), t1 = cpu_s(clock.pid), counts(sim, names), time.monotonic()
        procs.stop("clock")
        polls, inventories = p1 - p0, i1 - i0
        result.update({
            "window_s": round(t1 - t0, 1), "clock_cpu_s": round(c1 - c0, 2), "polls": polls,
            "inventories_in_window": inventories,
            "cpu_per_poll_ms_window": round(1000 * (c1 - c0) / max(1, polls), 2),
        })

        # 2. Inventory CPU, in this process, against the same simulator.
        inv_data = work / "inv"
        register(inv_data, sim.inventory)
        settings = config.load_settings(env={}, overrides={
            "data_dir": str(inv_data), "allowed_device_networks": "127.0.0.0/8",
            **({} if args.log_cap is None else {"log_fetch_cap": args.log_cap})})
        devices = DeviceStore(inv_data, config.SecretBox.for_data_dir(inv_data), clock=time.time).list()
        from panfm.models import AddressPolicy
        from throughput_collector import panos_client_factory

        policy = AddressPolicy.of(settings.allowed_device_networks)
        collector = Collector(workers=8, request_timeout=10.0,
                              client_factory=lambda cfg, t, on_key: panos_client_factory(cfg, t, on_key, policy=policy))
        store = SampleStore.open(inv_data / HISTORY_DB)
        gathered = 0
        cpu0 = time.process_time()
        for _ in range(args.inventory_rounds):
            whole_windows(collector)  # each round counts 300 s of logs, as the clock's runs 300 s apart do
            docs = collector.collect_slow(devices, window_s=300, log_cap=settings.log_fetch_cap)
            for device_id, ts, doc in docs:
                store.write_inventory(device_id, ts, doc)
            gathered += len(docs)
        cpu_inv = time.process_time() - cpu0
        collector.close()
        store.close()
        inv_ms = 1000 * cpu_inv / max(1, gathered)
        result.update({"inventories_measured": gathered, "cpu_per_inventory_ms": round(inv_ms, 2)})
        poll_only = (1000 * (c1 - c0) - inv_ms * inventories) / max(1, polls)
        result.update({
            "cpu_per_poll_ms_without_inventory": round(poll_only, 2),
            "cpu_per_poll_ms_steady_state": round(poll_only + inv_ms * args.interval / 300, 2),
        })
    result["load_after"] = load()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
