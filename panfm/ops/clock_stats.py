"""The clock's execution stats: counts, errors, the last executions; written with every cycle."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

RECENT_EXECUTIONS = 10


class ClockStats:
    """Execution stats of the clock's jobs (thread-safe), written to the database every cycle."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.started_at = clock()
        self.total_executions = 0
        self.total_errors = 0
        self.missed = 0
        self.last_execution: float | None = None
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EXECUTIONS)
        self.next_runs: Callable[[], dict[str, str | None]] = dict
        self.last_cycle: dict[str, Any] = {}
        # This clock's share of the fleet (node_id, devices held, leader, live clocks, fair
        # share, late writes the fence rejected), set by every lease round.
        self.coordination: dict[str, Any] = {}

    def record(self, job: str, started: float, duration: float, error: str | None = None) -> None:
        """Count one execution of `job` with its outcome."""
        with self._lock:
            self.total_executions += 1
            self.last_execution = started
            if error is not None:
                self.total_errors += 1
                self.last_error, self.last_error_time = error, self.clock()
            outcome = "ok" if error is None else "error"
            self.recent.append({"job": job, "started": started, "duration_s": round(duration, 3), "outcome": outcome})

    def record_missed(self) -> None:
        with self._lock:
            self.missed += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy for the database."""
        try:
            next_runs = self.next_runs()
        except Exception:  # the scheduler may be shutting down
            next_runs = {}
        with self._lock:
            return {
                "pid": os.getpid(),
                "started_at": self.started_at,
                "total_executions": self.total_executions,
                "total_errors": self.total_errors,
                "missed": self.missed,
                "last_execution": self.last_execution,
                "last_error": self.last_error,
                "last_error_time": self.last_error_time,
                "recent": list(self.recent),
                "next_run_times": next_runs,
                "last_cycle": dict(self.last_cycle),
                "coordination": dict(self.coordination),
            }
