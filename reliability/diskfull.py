"""Scenario "disk full": the data folder on a small tmpfs, filled up under the running clock.

    python -m reliability.diskfull [--interval 5] [--rounds 3] [--full-intervals 4] [--size 8m] [--out FILE]

Needs root (mount -t tmpfs); without it the scenario is skipped and says why. Each round fills
the tmpfs with a filler file while `python clock.py` writes every interval, keeps it full for
N intervals, then deletes the filler. Checked: the clock logs the error, keeps running (same
pid), loses no sample committed before the disk filled, commits again within 3 intervals of
the space coming back, PRAGMA integrity_check is ok, and the rates after the pause match
/_sim/truth (no zero, no spike).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
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

FULL_WORDS = ("database or disk is full", "no space left", "disk i/o error")


class Unprivileged(Exception):
    """The tmpfs could not be mounted (not root, or no mount in this container)."""


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of SIZE on PATH for the block; raise Unprivileged when that is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        raise Unprivileged("mounting a size-limited tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Unprivileged(f"mount -t tmpfs failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(path: Path) -> int:
    """Write PATH until the file system says ENOSPC; return the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as fh:
        while True:
            try:
                written += fh.write(chunk) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                # Take the last bytes too, so SQLite cannot squeeze a page in.
                for size in (4096, 512, 1):
                    with contextlib.suppress(OSError):
                        while True:
                            written += fh.write(b"\0" * size) or 0
                return written


def committed(db: Path) -> set[tuple[str, int]]:
    return {(str(d), int(t)) for d, t in query(db, "SELECT device_id, ts FROM device_samples")}


def new_since(db: Path, seen: set[tuple[str, int]], since: float) -> bool:
    """Tell whether a sample newer than SINCE and not in SEEN was committed."""
    return any(ts / 1000 > since for _, ts in committed(db) - seen)


def run(workdir: Path, interval: int = 5, rounds: int = 3, full_intervals: int = 4, size: str = "8m",
        devices: int = 2) -> dict[str, Any]:
    """Run the scenario in WORKDIR; return its figures and failures (or why it was skipped)."""
    try:
        with tmpfs(workdir / "mnt", size) as mnt:
            return _run(workdir, mnt, interval, rounds, full_intervals, size, devices)
    except Unprivileged as exc:
        return {"skipped": str(exc), "failures": []}


def _run(workdir: Path, mnt: Path, interval: int, rounds: int, full_intervals: int, size: str,
         devices: int) -> dict[str, Any]:
    data = mnt / "data"
    db = history_db(data)
    filler = mnt / "filler"
    failures: list[str] = []
    out_rounds: list[dict[str, Any]] = []
    with Procs(workdir) as procs:
        sim = Sim.start(procs, devices, models="PA-440,PA-VM")
        try:
            names = {v: k for k, v in register(data, sim.inventory).items()}
            clock = procs.start_clock(data, interval)
            wait_for(lambda: (hb := heartbeat(db)) and hb[1] == clock.pid, 30, what="first cycle")
            for n in range(1, rounds + 1):
                before = heartbeat(db)
                wait_for(lambda before=before: heartbeat(db) != before, interval * 2 + 5, step=0.1,  # type: ignore[misc]
                         what="a commit before filling")
                log_mark = len(procs.log_text("clock"))
                filled = fill(filler)
                t_full = time.time()
                kept = committed(db)
                time.sleep(full_intervals * interval)
                during = committed(db) - kept
                log = procs.log_text("clock")[log_mark:].lower()
                logged = sum(log.count(w) for w in FULL_WORDS)
                alive = clock.poll() is None
                filler.unlink()
                t_free = time.time()
                resumed_at = None
                with contextlib.suppress(TimeoutError):
                    wait_for(lambda seen=kept | during, since=t_free: new_since(db, seen, since),  # type: ignore[misc]
                             interval * 3 + 2, step=0.1, what="a commit after the space came back")
                    resumed_at = time.time()
                lost = kept - committed(db)
                r = {
                    "filled_bytes": filled,
                    "full_for_s": round(t_free - t_full, 1),
                    "samples_committed_while_full": len(during),
                    "full_errors_logged": logged,
                    "clock_alive": alive,
                    "samples_lost": len(lost),
                    "resumed_after_s": round(resumed_at - t_free, 1) if resumed_at else None,
                }
                out_rounds.append(r)
                if not alive or clock.poll() is not None:
                    failures.append(f"round {n}: the clock died: {procs.log_text('clock')[-800:]}")
                    break
                if not logged:
                    failures.append(f"round {n}: no disk-full error in the clock's log")
                if lost:
                    failures.append(f"round {n}: {len(lost)} committed samples lost")
                if resumed_at is None:
                    failures.append(f"round {n}: no commit within 3 intervals after the space came back")
            before = heartbeat(db)
            wait_for(lambda: heartbeat(db) != before, interval * 3 + 5, step=0.1, what="a last commit")
            if procs.stop("clock") != 0:
                failures.append("the clock did not stop cleanly on SIGTERM")
            check = integrity(db)
            if check != "ok":
                failures.append(f"integrity_check: {check}")
            # Pairs spanning a full disk are skipped: the clock polled then, its commit failed,
            # and its in-memory baseline moved on without a stored sample.
            rates = check_rates(sim, names, device_rows(db), max_gap_s=interval * 1.5, jitter_s=0.05)
            failures += [f"rate {w}" for w in rates.wrong[:10]]
        finally:
            sim.close()
    return {
        "parameters": {"interval_s": interval, "rounds": rounds, "full_intervals": full_intervals, "tmpfs": size,
                       "devices": devices},
        "rounds": out_rounds,
        "integrity_check": check,
        "rates_checked": rates.checked,
        "gaps": rates.gaps,
        "worst_rate_error_pct": round(rates.worst_rel_error * 100, 3),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    p = scenario_parser(__doc__)
    p.add_argument("--interval", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--full-intervals", type=int, default=4)
    p.add_argument("--size", default="8m")
    p.add_argument("--devices", type=int, default=2)
    a = p.parse_args(argv)
    workdir = scenario_dir("diskfull", a.keep)
    result = run(workdir, a.interval, a.rounds, a.full_intervals, a.size, a.devices)
    return finish("diskfull", workdir, result, a.out, a.keep)


if __name__ == "__main__":
    raise SystemExit(main())
