"""The inventory job's half of the `Collector`: serial, uptime, link speeds and context every 5 minutes."""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from panfm.collector.admission import Slots
from panfm.collector.breaker import safe_error
from panfm.collector.devices import DeviceEntry
from panfm.collector.logs import LOG_CAP
from panfm.collector.slow import ACC_PARTS, NotStarted, Resolver, gather_inventory, link_speeds
from panfm.models import DeviceConfig

if TYPE_CHECKING:
    from panfm.collector.poll import Client

log = logging.getLogger("panfm.collector")

SLOW_WORKERS = 16  # inventories gathered at once (slots; admission.py), at least
# An inventory holds its slot about this long, its pauses for the fast cycle included (measured at
# 2,000 firewalls, docs/benchmarks.md): a fleet of N needs N x this / window slots to be gathered
# once per window, so a larger fleet gets more slots (at most `collector_workers`).
INVENTORY_SLOT_S = 5.0
SLOW_SLOTS_MAX = 64  # whatever the fleet: the inventory's threads and documents in flight stay bounded
# An inventory still running after this long (a slow firewall answering each call in seconds)
# gives its slot back: without it, 5 % slow firewalls in 1,000 held all 16 slots for the whole
# 120 s deadline and every other inventory queued past it ("deadline exceeded", 0 of N gathered).
SLOW_INVENTORY_S = 20.0
SLOW_DEADLINE_S = 120.0
INVENTORY_RETRY_S = 60.0  # a device whose inventory failed is asked again at most this often


def slow_slots(fleet: int, window_s: float, workers: int) -> int:
    """Inventories gathered at once for a fleet: its share of a window, at least `SLOW_WORKERS`.

    Never more than `workers` (`collector_workers`, the fast cycle's) nor `SLOW_SLOTS_MAX`.
    """
    share = math.ceil(fleet * INVENTORY_SLOT_S / max(window_s, 1.0))
    return max(1, min(workers, SLOW_SLOTS_MAX, max(SLOW_WORKERS, share)))


class LeaseLost(Exception):
    """The clock no longer holds the device (several clocks): its inventory stops before the next call."""


class InventoryJob:
    """Gather each device's inventory on the slow schedule, paused while a fast cycle runs.

    A mixin of `Collector` (cycle.py), which owns the state declared here.
    """

    request_timeout: float
    clock: Callable[[], float]
    monotonic: Callable[[], float]
    _lock: threading.Lock
    _devices: dict[str, DeviceEntry]
    _slow_pool: ThreadPoolExecutor
    _slow_slots: Slots
    _workers: int
    _fast_idle: threading.Event
    resolver: Resolver | None

    if TYPE_CHECKING:

        def _sync(self, devices: Sequence[DeviceConfig]) -> list[DeviceEntry]: ...

        def _make_client(self, dev: DeviceEntry, timeout: float) -> Client: ...

    def inventory_due(self, now: float) -> list[str]:
        """Ids of answering devices without an inventory for their current record (new, edited, re-enabled).

        Link speeds (the artefact check), serial and uptime (reset detection) come from the
        inventory, so such a device should not wait up to 5 minutes for the inventory job. A device
        already being gathered, or tried less than `INVENTORY_RETRY_S` ago, is not due.
        """
        with self._lock:
            return sorted(
                i for i, d in self._devices.items()
                if d.status is not None and d.status.state == "up" and d.cert_changed is None
                and d.inventory_for != d.config
                and (d.slow_running is None or d.slow_running.done())
                and (d.inventory_tried is None or now - d.inventory_tried >= INVENTORY_RETRY_S)
            )

    def collect_slow(
        self,
        devices: Sequence[DeviceConfig],
        window_s: float,
        deadline_s: float = SLOW_DEADLINE_S,
        only: Collection[str] | None = None,
        log_cap: int = LOG_CAP,
        may_call: Callable[[str], bool] | None = None,
        early: Callable[[str, float, dict[str, Any]], None] | None = None,
        on_result: Callable[[str, float, dict[str, Any]], None] | None = None,
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """Gather inventory and context of every reachable device: (device id, time, document).

        `devices` is always the whole enabled list (it is synced like a fast cycle's); `only`
        restricts the gathering to those ids; `log_cap` bounds the log entries per type fetched.
        `may_call(device_id)` is asked before every call (several clocks: whether this clock
        still holds the device's lease); once it says no, that device's gathering stops there
        and yields no document. `early(device_id, time, partial document)` is called from the
        gathering thread as soon as a device's interfaces are in, for the devices without an
        inventory of their current record (new, edited, or first since the clock started).

        `on_result(device_id, time, document)`, when given, gets each document from the gathering
        thread as soon as its device is done (then the returned list is empty): a gathering lasts
        until its slowest firewall's deadline (120 s), and holding every finished document, its
        log entries and connected devices included, until then was most of the clock's memory at
        1,000 firewalls (bench/clock_memory.py). An exception it raises fails that device's inventory.
        """
        deadline = self.monotonic() + deadline_s
        now = self.clock()
        futures: dict[Future[Any], tuple[DeviceEntry, DeviceConfig]] = {}
        jobs: list[tuple[Future[Any], Callable[[], Any]]] = []
        with self._lock:
            self._slow_slots.resize(slow_slots(len(devices), window_s, self._workers))
            for dev in self._sync(devices):
                if only is not None and dev.config.id not in only:
                    continue
                busy = dev.slow_running is not None and not dev.slow_running.done()
                if dev.cert_changed is not None or dev.breaker.is_open or busy:
                    continue
                if dev.slow_client is None:
                    try:
                        dev.slow_client = self._make_client(dev, min(self.request_timeout * 3, deadline_s))
                    except Exception:  # the fast cycle reports why in the device's status
                        log.debug("no inventory client for %s", dev.config.name, exc_info=True)
                        continue
                first = None if early is None or dev.inventory_for == dev.config else self._early(dev.config.id, early)
                fut: Future[Any] = Future()
                gather = functools.partial(
                    gather_inventory, dev.slow_client, now=now, window_s=window_s, deadline=deadline,
                    monotonic=self.monotonic, pause=self._before_call(dev.config.id, deadline, may_call),
                    resolver=self.resolver, log_cap=log_cap, early=first, acc_last=dev.acc_at,
                    after=dev.window_end,
                )
                jobs.append((fut, functools.partial(self._gather_one, dev, dev.config, now, gather, on_result)))
                dev.slow_running = fut
                dev.inventory_tried = now
                futures[fut] = (dev, dev.config)
            pool, slots = self._slow_pool, self._slow_slots
        # Outside the lock; an inventory held up 20 s (a slow firewall) gives its slot back (admission.py).
        slots.dispatch(pool, jobs, deadline, slow_after=SLOW_INVENTORY_S)
        wait(futures, timeout=max(0.0, deadline - self.monotonic()) + 1.0)
        for fut in futures:
            fut.cancel()  # still queued: started now, hundreds of calls would burst into the next fast cycle
        out: list[tuple[str, float, dict[str, Any]]] = []
        not_started = 0
        with self._lock:
            for fut, (dev, _asked) in futures.items():
                if fut.cancelled() or (fut.done() and isinstance(fut.exception(), NotStarted)):
                    # Never started: every slot was taken until the deadline (a fleet's first inventories
                    # all at once). Not the device's failure: it is due again at the next fast cycle.
                    not_started += 1
                    dev.inventory_tried = None
                    continue
                if not fut.done() and on_result is not None:
                    # Its calls stop at the deadline; what it gathered is still delivered when it returns.
                    log.info("inventory of %s failed: deadline exceeded (its parts so far are stored when it ends)",
                             dev.config.name)
                    continue
                if not fut.done() or fut.exception() is not None:
                    exc = fut.exception() if fut.done() and not fut.cancelled() else None
                    why = safe_error(exc, (dev.config.api_key, dev.config.password)) if exc else "deadline exceeded"
                    log.info("inventory of %s failed: %s", dev.config.name, why)
                    continue
                if fut.result() is not None:  # delivered already when `on_result` was given
                    out.append(fut.result())
            for fut, (dev, _asked) in futures.items():
                # Idle for 5 minutes until the next run: its connection is not worth its memory.
                if fut.done() and dev.slow_client is not None:
                    client, dev.slow_client = dev.slow_client, None
                    try:
                        client.close()
                    except Exception:  # closing a dead session must not lose the inventory
                        log.debug("closing inventory client failed", exc_info=True)
        if not_started:
            log.info("inventory of %d device(s) not started within the deadline: the inventory job was busy "
                     "(they are due again)", not_started)
        return out

    def _gather_one(self, dev: DeviceEntry, asked: DeviceConfig, now: float,
                    gather: Callable[[], tuple[Any, dict[str, Any]]],
                    on_result: Callable[[str, float, dict[str, Any]], None] | None,
                    ) -> tuple[str, float, dict[str, Any]] | None:
        """One device's inventory in its gathering thread: gather, learn from it, deliver it (or return it)."""
        info, doc = gather()
        with self._lock:
            self._learn_identity(dev, info.serial, info.uptime_seconds)
            if isinstance(doc.get("interfaces"), list):
                dev.speeds = link_speeds(doc["interfaces"])
            dev.inventory_for = asked  # an edit made meanwhile makes the device due again
            end = doc.pop("window_end", None)
            if end is not None:  # counted: the next window starts after it
                dev.window_end = end
            self._note_acc(dev, now, doc)
        result = (dev.config.id, self.clock(), doc)
        if on_result is None:
            return result
        try:
            on_result(*result)
        except Exception:  # also logged here: a document delivered after the gathering ended has nobody else
            log.warning("inventory of %s gathered but not stored", dev.config.name, exc_info=True)
            raise
        return None  # the future holds nothing once the document is stored

    def _early(self, device_id: str, early: Callable[[str, float, dict[str, Any]], None]
               ) -> Callable[[Any, dict[str, Any]], None]:
        return lambda _info, doc: early(device_id, self.clock(), doc)

    @staticmethod
    def _note_acc(dev: DeviceEntry, now: float, doc: dict[str, Any]) -> None:
        """Remember when the ACC reports ran and what they lacked; a run without them repeats that."""
        apps = doc.get("applications")
        errors = doc.get("errors")
        errors = errors if isinstance(errors, dict) else {}
        if isinstance(apps, dict) and apps.get("skipped"):
            doc["applications"] = {"skipped": True, "unavailable": dict(dev.acc_unavailable)}
        elif isinstance(apps, dict):
            dev.acc_at = now
            dev.acc_unavailable = {**(apps.get("unavailable") or {}),
                                   **{k: str(v) for k, v in errors.items() if k in ACC_PARTS}}

    def _before_call(self, device_id: str, deadline: float,
                     may_call: Callable[[str], bool] | None) -> Callable[[], None]:
        """What runs before each inventory call of a device: wait for the fast cycle, then ask `may_call`."""
        def pause() -> None:
            self._yield_to_fast_cycle(deadline)
            if may_call is not None and not may_call(device_id):
                raise LeaseLost("lease lost: no further call")
        return pause

    def _yield_to_fast_cycle(self, deadline: float) -> None:
        """Hold an inventory call while a fast cycle runs (its deadline is under half the interval)."""
        self._fast_idle.wait(timeout=max(0.0, deadline - self.monotonic()))

    def _learn_identity(self, dev: DeviceEntry, serial: str | None, uptime: int | None) -> None:
        """Record serial and uptime; the next fast cycle compares them with its baseline."""
        dev.serial = serial or dev.serial
        dev.uptime = uptime
