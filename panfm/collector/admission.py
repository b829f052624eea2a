"""How many polls run at once: `collector_workers` slots, and a slow firewall gives its slot back.

A poll holds one of the cycle's slots while it runs, so at most `collector_workers` firewalls
are asked at the same moment. A firewall that answers in seconds instead of milliseconds (a
busy management plane; the simulator's `slow` fault answers each call in 8-12 s) would hold its
slot until the cycle's deadline: at 2,000 firewalls with 5 % slow, 100 such polls fill all 64
slots and healthy firewalls queue behind them until the cycle ends ("not polled: the collector
was busy"). So a poll that has run `SLOW_POLL_S` gives its slot back and goes on in a thread of
its own: the pool has `THREADS_PER_SLOT` threads per slot, made only when needed. The slow
firewall's own poll is not cut short (its answer may still come within the deadline).

Each job is a `Future` the cycle already holds (`dev.running`): it is set running when a
thread takes it, so the cycle's end can still cancel a job that never started, exactly as
with `ThreadPoolExecutor.submit`.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

SLOW_POLL_S = 2.0  # a poll running longer than this no longer holds a slot
THREADS_PER_SLOT = 4  # threads of the poll pool per slot (`collector_workers`)
_WAKE_S = 0.1  # the dispatcher looks for slow polls at least this often while it waits


def pool_threads(slots: int) -> int:
    """Threads of the poll pool for this many slots."""
    return max(1, slots) * THREADS_PER_SLOT


def _released(release: Callable[[list[Any]], None], entry: list[Any], _job: Future[Any]) -> None:
    release(entry)


def _run(job: Future[Any], call: Callable[[], Any]) -> None:
    if not job.set_running_or_notify_cancel():
        return  # cancelled at the cycle's end before a thread took it
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
    """Start the jobs in order, at most `slots` in their first `slow_after` seconds at once.

    Returns how many were started before `deadline` (monotonic); the rest stay pending, for
    the caller to cancel. Blocks until then: call it without holding the collector's lock.
    """
    slow_after = SLOW_POLL_S if slow_after is None else slow_after
    cv = threading.Condition()
    free = max(1, slots)
    running: deque[list[Any]] = deque()  # [started_at, slot_released], in start order

    def release(entry: list[Any]) -> None:
        nonlocal free
        with cv:
            if not entry[1]:
                entry[1] = True
                free += 1
                cv.notify()

    started = 0
    for job, call in jobs:
        with cv:
            while free <= 0:
                now = monotonic()
                if now >= deadline:
                    return started
                while running and (running[0][1] or now - running[0][0] >= slow_after):
                    entry = running.popleft()
                    if not entry[1]:
                        entry[1] = True
                        free += 1
                if free > 0:
                    break
                wait_s = _WAKE_S if not running else min(_WAKE_S, max(0.0, running[0][0] + slow_after - now))
                cv.wait(timeout=max(wait_s, 0.005))
            if monotonic() >= deadline:
                return started
            free -= 1
            entry = [monotonic(), False]
            running.append(entry)
        job.add_done_callback(functools.partial(_released, release, entry))
        try:
            pool.submit(_run, job, call)
        except RuntimeError:  # the pool was shut down (the clock is stopping): the rest stay pending
            return started
        started += 1
    return started
