"""Scenario "kill -9": kill the real clock at random moments, N times, and check what survived.

    python -m reliability.kill9 [--kills 100] [--interval 5] [--devices 2] [--seed 3] [--out FILE]

Each round starts `python clock.py`, watches the committed samples through a read-only
connection, and sends SIGKILL at a random moment (during start, polling, commit or rollups).
After every kill: PRAGMA integrity_check is ok, every sample seen committed is still there, and
every device has the same number of samples (no half cycle). At the end a last clock runs two
cycles, and every stored rate (across all the restarts) must match /_sim/truth within 1%: no
zero, no spike, and no gap but each device's very first sample.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

from reliability.harness import (
    Procs,
    Sim,
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
    integrity,
    query,
)

# Allowed timing error of one sample (answer arrival vs the device reading its counters):
# 1% plus 50 ms of the window, since restarts make windows as short as 1-2 s.
JITTER_S = 0.05


def committed(db: Path) -> set[tuple[str, int]]:
    return {(str(d), int(t)) for d, t in query(db, "SELECT device_id, ts FROM device_samples")}


def run(workdir: Path, kills: int = 100, interval: int = 5, devices: int = 2, seed: int = 3) -> dict[str, Any]:
    """Run the scenario in WORKDIR; return its figures and failures."""
    data = workdir / "data"
    db = history_db(data)
    rng = random.Random(seed)
    failures: list[str] = []
    seen: set[tuple[str, int]] = set()
    lost = integrity_failures = half_cycles = before_first_commit = 0
    with Procs(workdir) as procs:
        sim = Sim.start(procs, devices, models="PA-440,PA-3220", seed=seed)
        try:
            names = {v: k for k, v in register(data, sim.inventory).items()}
            for i in range(kills):
                proc = procs.start_clock(data, interval)
                moment = rng.uniform(0.3, interval * 1.6)
                end = time.monotonic() + moment
                while time.monotonic() < end:
                    seen |= committed(db)
                    time.sleep(0.1)
                hb = heartbeat(db)
                if hb is None or hb[1] != proc.pid:
                    before_first_commit += 1
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                check = integrity(db)
                if db.exists() and check != "ok":
                    integrity_failures += 1
                    failures.append(f"kill {i + 1}: integrity_check {check}")
                missing = seen - committed(db)
                if missing:
                    lost += len(missing)
                    failures.append(f"kill {i + 1}: {len(missing)} committed samples lost")
                per_device = {n for _, n in query(db, "SELECT device_id, COUNT(*) FROM device_samples "
                                                      "GROUP BY device_id")}
                if len(per_device) > 1:
                    half_cycles += 1
                    failures.append(f"kill {i + 1}: devices have different sample counts {per_device}")
            # A last clock: it must resume with real rates over the time since the last commit.
            proc = procs.start_clock(data, interval)
            wait_for(lambda: (hb := heartbeat(db)) and hb[1] == proc.pid, 30, what="first cycle after the kills")
            first = heartbeat(db)
            wait_for(lambda: (hb := heartbeat(db)) and hb != first, interval * 3, what="second cycle")
            if procs.stop("clock") != 0:
                failures.append("the last clock did not stop cleanly on SIGTERM")
            rows = device_rows(db)
            rates = check_rates(sim, names, rows, jitter_s=JITTER_S)
            failures += [f"rate {w}" for w in rates.wrong[:10]]
            if rates.gaps:
                failures.append(f"{rates.gaps} gaps besides the first sample of each device")
            samples = sum(len(v) for v in rows.values())
        finally:
            sim.close()
    return {
        "parameters": {"kills": kills, "interval_s": interval, "devices": devices, "seed": seed},
        "kills": kills,
        "kills_before_the_first_commit": before_first_commit,
        "cycles_committed": max((len(series) for series in rows.values()), default=0),
        "samples_stored": samples,
        "samples_lost": lost,
        "integrity_failures": integrity_failures,
        "half_cycles": half_cycles,
        "rates_checked": rates.checked,
        "worst_rate_error_pct": round(rates.worst_rel_error * 100, 3),
        "worst_rate_error_window_s": rates.worst_window_s,
        "gaps": rates.gaps,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    p = scenario_parser(__doc__)
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--interval", type=int, default=5)
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args(argv)
    workdir = scenario_dir("kill9", a.keep)
    result = run(workdir, a.kills, a.interval, a.devices, a.seed)
    return finish("kill9", workdir, result, a.out, a.keep)


if __name__ == "__main__":
    raise SystemExit(main())
