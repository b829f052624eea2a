"""How many polls run at once: `collector_workers` slots, and a slow firewall gives its slot back.

A poll holds one of the cycle's slots while it runs, so at most `collector_workers` firewalls
are asked at the same moment. A firewall that answers in seconds instead of milliseconds (a
busy management plane; the simulator's `slow` fault answers each call in 8-12 s) would hold its
slot until the cycle's deadline: at 2,000 firewalls with 5 % slow, 100 such polls fill all 64
slots and healthy firewalls queue behind them until the cycle ends ("not polled: the collector
was busy"). So a poll that has run `SLOW_POLL_S` gives its slot back and goes on in a thread of
its own: the pool has `THREADS_PER_SLOT` threads per slot, made only when needed. The slow
firewall's own poll is not cut short (its answer may still come within the deadline).

A job's seconds count from when a thread takes it, not from its submission: a job queued
behind threads all held by slow firewalls keeps its slot, so the dispatcher waits instead of
piling jobs into the pool's queue. The inventory's gatherings (a tick every 10 s, several
overlapping, and the new devices' batch) share one `Slots`, so together they never run more
than its count at once.

Each job is a `Future` the cycle already holds (`dev.running`): it is set running when a
thread takes it, so the cycle's end can still cancel a job that never started, exactly as
with `ThreadPoolExecutor.submit`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

SLOW_POLL_S = 2.0  # a poll running longer than this no longer holds a slot
THREADS_PER_SLOT = 4  # threads of the poll pool per slot (`collector_workers`)
_WAKE_S = 0.1  # the dispatcher looks for slow polls at least this often while it waits


def pool_threads(slots: int) -> int:
    """Threads of the poll pool for this many slots."""
    return max(1, slots) * THREADS_PER_SLOT


class Slots:
    """Slots shared by every `dispatch` onto one pool (the inventory's gatherings overlap).

    An entry is `[started_at, released]`; `started_at` is None while the job waits for a thread
    of the pool. Only a job that has run `slow_after` seconds on a thread gives its slot back
    early: a job merely queued behind busy threads keeps it, so a pool whose threads are all
    held by slow firewalls pushes back on `dispatch` instead of filling its queue with jobs that
    start past their deadline (what failed every inventory of a 1,000-firewall fleet).
    """

    def __init__(self, count: int, monotonic: Callable[[], float]) -> None:
        self.count = max(1, count)
        self.monotonic = monotonic
        self._cv = threading.Condition()
        self._free = self.count
        self._running: list[list[Any]] = []

    def resize(self, count: int) -> None:
        """Change the number of slots; jobs running keep theirs (fewer slots: new jobs wait for them to end)."""
        count = max(1, count)
        with self._cv:
            self._free += count - self.count
            self.count = count
            self._cv.notify_all()

    def _release(self, entry: list[Any], _job: Future[Any] | None = None) -> None:
        with self._cv:
            if not entry[1]:
                entry[1] = True
                self._free += 1
                self._cv.notify_all()

    def _reclaim(self, now: float, slow_after: float) -> None:
        """Drop finished entries and take back the slots of jobs running longer than `slow_after` (under the lock)."""
        keep = []
        for entry in self._running:
            if entry[1]:
                continue
            if entry[0] is not None and now - entry[0] >= slow_after:
                entry[1] = True
                self._free += 1
                continue
            keep.append(entry)
        self._running = keep

    def _started(self, entry: list[Any]) -> None:
        with self._cv:
            entry[0] = self.monotonic()

    def dispatch(
        self,
        pool: ThreadPoolExecutor,
        jobs: Sequence[tuple[Future[Any], Callable[[], Any]]],
        deadline: float,
        slow_after: float | None = None,
    ) -> int:
        """Start the jobs in order, each when a slot is free; see the module's `dispatch`."""
        slow_after = SLOW_POLL_S if slow_after is None else slow_after
        started = 0
        for job, call in jobs:
            with self._cv:
                while True:
                    now = self.monotonic()
                    if now >= deadline:
                        return started
                    if self._free <= 0:
                        self._reclaim(now, slow_after)
                    if self._free > 0:
                        break
                    self._cv.wait(timeout=_WAKE_S)
                self._free -= 1
                entry: list[Any] = [None, False]
                self._running.append(entry)
            job.add_done_callback(functools.partial(self._release, entry))
            try:
                pool.submit(_run, job, call, functools.partial(self._started, entry))
            except RuntimeError:  # the pool was shut down (the clock is stopping): the rest stay pending
                self._release(entry)
                return started
            started += 1
        return started


def _run(job: Future[Any], call: Callable[[], Any], on_start: Callable[[], None]) -> None:
    if not job.set_running_or_notify_cancel():
        return  # cancelled at the cycle's end before a thread took it
    on_start()
    try:
        job.set_result(call())
    except BaseException as exc:  # handed to the cycle, which logs it as that device's failure
        job.set_exception(exc)


def dispatch(
    pool: ThreadPoolExecutor,
    jobs: Sequence[tuple[Future[Any], Callable[[], Any]]],
    slots: int,
    deadline: float,
    monotonic: Callable[[], float],
    slow_after: float | None = None,
) -> int:
    """Start the jobs in order, at most `slots` in their first `slow_after` seconds on a thread at once.

    The slots are this call's alone; callers that overlap share a `Slots` and call its `dispatch`.
    Returns how many were started before `deadline` (monotonic); the rest stay pending, for
    the caller to cancel. Blocks until then: call it without holding the collector's lock.
    """
    return Slots(slots, monotonic).dispatch(pool, jobs, deadline, slow_after)
