"""Several real clock processes sharing one PostgreSQL: start, kill -9, pause, and count polls and samples.

Every store lives in PostgreSQL (`database_url`); the clocks share one data folder only for the
encryption key (as hosts would share PANFM_ENCRYPTION_KEY), each with its own log.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

import config
from helpers.postgres import pg_env
from panfm.models import DeviceConfig
from throughput_storage import open_stores

ROOT = Path(__file__).resolve().parent.parent.parent


def make_data_dir(path: Path, devices: list[DeviceConfig], database_url: str) -> Path:
    """A data folder (the key) and these devices (ids kept) in the database, as the web would store them."""
    path.mkdir(parents=True, exist_ok=True)
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(path), **pg_env(database_url)})
    stores = open_stores(settings)
    try:
        for d in devices:
            stores.devices.add(d)
    finally:
        stores.close()
    return path


class ClockProc:
    """One `python clock.py` with its own data folder and log, against `database_url`."""

    def __init__(self, data_dir: Path, database_url: str, name: str, interval: int = 5, **env: str) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{name}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
        full.update({"PANFM_DATA_DIR": str(data_dir), **(pg_env(database_url) if database_url else {}),
                     "PANFM_REFRESH_INTERVAL": str(interval), "PANFM_ALLOWED_DEVICE_NETWORKS": "127.0.0.0/8",
                     "PANFM_COLLECTOR_WORKERS": "8", **env})
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "clock.py")], cwd=ROOT, env=full,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            self.terminate()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def pg(url: str, sql: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def node_of_pid(url: str, pid: int) -> str | None:
    rows = pg(url, "SELECT node_id FROM clock_node WHERE pid = %s ORDER BY started_at DESC LIMIT 1", (pid,))
    return rows[0][0] if rows else None


def holdings(url: str) -> dict[str, set[str]]:
    """owner -> devices whose lease is valid now."""
    out: dict[str, set[str]] = collections.defaultdict(set)
    for device_id, owner in pg(url, "SELECT device_id, owner FROM device_lease WHERE lease_until > now()"):
        out[owner].add(device_id)
    return dict(out)


def leader(url: str) -> str | None:
    rows = pg(url, "SELECT owner FROM job_lease WHERE name = 'leader' AND lease_until > now()")
    return rows[0][0] if rows else None


def poll_times(fleet: Any) -> dict[str, list[float]]:
    """device name -> times of its fast polls (the simulator's own count, across every clock)."""
    first = fleet.inventory[0]
    stats = fleet._control(first, "GET", "/_sim/stats?all=1&calls=1")["devices"]
    return {name: list(s.get("poll_times", [])) for name, s in stats.items()}


def polls_per_slot(fleet: Any, interval: float, since: float = 0.0) -> collections.Counter[tuple[str, int]]:
    counts: collections.Counter[tuple[str, int]] = collections.Counter()
    for name, times in poll_times(fleet).items():
        for t in times:
            if t >= since:
                counts[(name, math.floor(t / interval))] += 1
    return counts


def samples_per_slot(url: str, interval: float) -> collections.Counter[tuple[str, int]]:
    """(device, slot) -> samples stored in PostgreSQL (the primary key allows one; this proves it held)."""
    rows = pg(url, "SELECT d.device_id, s.slot, count(*) FROM device_samples s JOIN ts_device d ON d.dk = s.dk "
                   "GROUP BY 1, 2")
    return collections.Counter({(str(dev), int(slot // interval)): int(n) for dev, slot, n in rows})


def rejected_writes(proc: ClockProc) -> int:
    """Late samples the fence refused, as the clock logged them."""
    return sum(int(m) for m in re.findall(r"collect: (\d+) late sample\(s\) rejected by the fence", proc.log()))


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition", every: float = 0.1) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
