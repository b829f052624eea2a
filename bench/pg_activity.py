"""What PostgreSQL's backends and the box's processes do, sampled: for a moment of S8 (the takeover slot).

    .venv/bin/python bench/pg_activity.py --url postgresql://... --seconds 90 [--delay 270] --out FILE

Every `--interval` seconds it reads `pg_stat_activity` (the backends not idle: application,
state, wait event, the statement's start and the transaction's age), and every
`--cpu-interval` seconds each process's CPU time from `/proc` (python and postgres processes:
the simulator, the clocks, the backends), and writes one JSON line per sample to `--out`.
`--delay` waits before the first sample (S8 kills a clock at minute 5). Its own reads cost a
little CPU on the same box: it samples only for `--seconds`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import psycopg

TICK = os.sysconf("SC_CLK_TCK")
ACTIVE = ("SELECT pid, application_name, state, wait_event_type, wait_event,"
          " extract(epoch FROM now() - xact_start)::float8 * 1000 AS xact_ms,"
          " extract(epoch FROM now() - query_start)::float8 * 1000 AS query_ms, left(query, 70) AS query"
          " FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid()"
          " AND backend_type = 'client backend'")


def _cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every python and postgres process, by pid."""
    out: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
            cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:80]
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        if name not in ("python", "python3", "postgres") and "python" not in name:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(entry.name)] = (cmd.strip() or name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, default=90.0)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--cpu-interval", type=float, default=0.25)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    time.sleep(a.delay)
    end = time.time() + a.seconds
    last_cpu, last_cpu_t = _cpu(), time.time()
    with psycopg.connect(a.url, autocommit=True) as conn, a.out.open("w") as out:
        while time.time() < end:
            t = time.time()
            rows = conn.execute(ACTIVE).fetchall()
            record: dict[str, Any] = {"t": round(t, 3), "active": [list(r) for r in rows]}
            if t - last_cpu_t >= a.cpu_interval:
                now = _cpu()
                span = t - last_cpu_t
                busy = {f"{pid} {cmd}": round((c - last_cpu[pid][1]) / span, 2)
                        for pid, (cmd, c) in now.items() if pid in last_cpu and c > last_cpu[pid][1]}
                record["cpu_share"] = dict(sorted(busy.items(), key=lambda kv: -kv[1])[:8])
                last_cpu, last_cpu_t = now, t
            out.write(json.dumps(record, default=str) + "\n")
            time.sleep(max(0.0, a.interval - (time.time() - t)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
