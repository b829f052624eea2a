"""One clock's side of the coordination: its lease rounds, what it may poll and until when, leader jobs.

The clock (clock.py) calls `LeaseKeeper.round()` every I/3 and asks it, before a cycle, which
devices it holds (`held()`), until when it may call them (`stop_at()`, on the monotonic clock:
a clock paused or cut off from the database stops by itself before another can claim them), and
before a singleton job whether it may run it (`singleton(name, slot)`: leader, and the first to
insert `job_run(name, slot)`). Every time that matters (slots, the cleanup day) is the
database's, as of the last round plus the monotonic time since.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from panfm.models import LeaseRound
from throughput_storage import CoordinationUnavailable, Coordinator, cleanup_day, slot_of

log = logging.getLogger("panfm.clock")

# The round that starts a slot runs at this fraction of the interval after the slot's start
# (database time): late enough that leases which ran out at 5/6 of the last slot have.
ROUND_PHASE = 0.05
CLEANUP = "cleanup"
# Several clocks end their cycles together (their slots are aligned, and each cycle ends when
# its slow firewalls answer or time out), so their writes reached PostgreSQL at the same moment
# and each waited for the others on a shared server. Each clock now waits its rank among the
# live clocks times this before writing: one share's write takes ~30 ms on an idle server
# (bench/pg_write.py), so 150 ms keeps them apart with room; 10 clocks spread over 1.35 s.
WRITE_STAGGER_S = 0.15
CATCH_UP_S = 0.05  # the soonest next round (a slot's missed starting round is caught up this soon)


def new_node_id(host: str, pid: int) -> str:
    """A clock's id: host, pid and a random suffix (a restarted clock with a reused pid is another node)."""
    return f"{host}-{pid}-{secrets.token_hex(3)}"


class LeaseKeeper:
    """The lease state of one clock process (thread-safe)."""

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        host: str | None = None,
        pid: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coordinator = coordinator
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.node_id = new_node_id(self.host, self.pid)
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._last: LeaseRound | None = None
        self._renewed_mono = 0.0
        self._registered = False
        self._outage: str | None = None
        # (slot, devices held) of the last round that started a slot: what that slot's poll may call.
        self._slot_round: tuple[int, frozenset[str]] | None = None
        self._polled_slot: int | None = None  # the last slot a poll took (one poll per slot)
        self.rejected_writes = 0
        self.round_ms: float | None = None

    @property
    def fenced(self) -> bool:
        """Whether several clocks may share the fleet (PostgreSQL): polls and writes then follow the leases."""
        return self.coordinator.backend == "postgresql"

    @property
    def last(self) -> LeaseRound | None:
        return self._last

    def round(self, device_ids: Sequence[str], interval_s: float) -> LeaseRound | None:
        """Run one lease round; None when the database cannot be reached (polling then stops by itself)."""
        t0 = self.monotonic()
        try:
            if not self._registered:
                self.coordinator.register(self.node_id, self.host, self.pid)
                self._registered = True
            result = self.coordinator.lease_round(self.node_id, device_ids, interval_s)
        except CoordinationUnavailable as exc:
            self._registered = False  # re-register (an upsert) once it answers again
            if self._outage is None:
                log.warning("[CLOCK COORD] lease round failed, polling stops when the leases run out: %s", exc)
            self._outage = str(exc)
            return None
        elapsed = self.monotonic() - t0
        with self._lock:
            self._last = result
            # The database took its now() after t0: measuring from t0 ends the lease early, never late.
            self._renewed_mono = t0
            self.round_ms = elapsed * 1000.0
            if self.starts_slot(result, interval_s):
                self._slot_round = (slot_of(result.db_now, interval_s), frozenset(result.held))
        if self._outage is not None:
            log.info("[CLOCK COORD] coordination database answers again")
            self._outage = None
        if result.granted or result.released:
            log.info("[CLOCK COORD] %s: %d device(s) held (+%d granted, -%d released), fair share %d of %d live "
                     "clock(s)%s", self.node_id, len(result.held), len(result.granted), result.released,
                     result.fair_share, result.live_clocks, ", leader" if result.leader else "")
        txn = "" if result.txn_ms is None else f" (transaction {result.txn_ms:.1f} ms)"
        log.debug("[CLOCK COORD] lease round %.1f ms%s", elapsed * 1000.0, txn)
        return result

    @property
    def outage(self) -> str | None:
        """Why the last round failed, or None."""
        return self._outage

    def stop_at(self) -> float:
        """The monotonic time after which this clock must not call its devices (0: hold nothing)."""
        with self._lock:
            last, renewed = self._last, self._renewed_mono
        if last is None:
            return 0.0
        margin = last.lease_s / 10  # in-flight calls and timer slack: stop well before the lease ends
        return renewed + last.lease_s - margin

    def valid(self) -> bool:
        """Whether the leases of the last round still hold (by this process's monotonic clock)."""
        return self.monotonic() < self.stop_at()

    def held(self) -> Mapping[str, int | None]:
        """device -> fence of the leases this clock renewed last ({} once they ran out)."""
        last = self._last
        return dict(last.held) if last is not None and self.valid() else {}

    def take_slot(self, interval_s: float) -> Mapping[str, int | None]:
        """The devices this slot's poll may call, once per slot: held by the round that started it, and still.

        A device granted later in the slot waits for the next one (its old owner may have polled
        it at this slot's start), a poll that starts after its slot ended calls nothing, and a
        second poll in the same slot gets nothing: on a loaded host a late round can look like
        the next slot's first, or a poll asked for in one slot can start in the next, and either
        would poll the whole holding twice in one slot.
        """
        now = self.db_now()
        with self._lock:
            started = self._slot_round
            if now is None or started is None or started[0] != slot_of(now, interval_s):
                return {}
            if self._polled_slot == started[0]:
                log.debug("[CLOCK COORD] slot %d already polled: this poll calls nothing", started[0])
                return {}
            self._polled_slot = started[0]
        return {d: f for d, f in self.held().items() if d in started[1]}

    def slot_stop_at(self, interval_s: float) -> float:
        """The monotonic time after which this slot's poll must not call: the leases' end or the slot's.

        A poll that started late (a loaded host) must not run into the next slot: its calls there
        would be that slot's second poll of the device, beside the one its owner makes then.
        """
        stop = self.stop_at()
        now = self.db_now()
        if now is None:
            return stop
        slot_end = (slot_of(now, interval_s) + 1) * interval_s
        return min(stop, self.monotonic() + (slot_end - now))

    def write_delay_s(self) -> float:
        """How long this clock waits before writing its cycle: its rank among the live clocks × WRITE_STAGGER_S.

        0 alone or on SQLite; never past the point where its leases would run out before the
        write (a fenced write of an expired lease is refused).
        """
        last = self._last
        if not self.fenced or last is None or last.live_clocks <= 1 or last.rank <= 0:
            return 0.0
        room = self.stop_at() - self.monotonic() - WRITE_STAGGER_S
        return max(0.0, min(last.rank * WRITE_STAGGER_S, room))

    def hold_after_write_s(self) -> float:
        """How long this clock keeps its inventory paused after its write: until the last rank has written.

        (live clocks − rank) × WRITE_STAGGER_S: the first clock's inventory (and the leader's
        after-cycle work) would otherwise resume (parsing log answers, reading and writing the
        same server) while the later ranks write. The last rank starts its write (live clocks −
        1 − rank) staggers after this one's; one stagger more lets it finish (S8's writes take
        40-150 ms: with one stagger fewer, the last rank's writes were the slowest).
        0 alone, on SQLite, or for the last rank.
        """
        last = self._last
        if not self.fenced or last is None or last.live_clocks <= 1 or last.rank >= last.live_clocks - 1:
            return 0.0
        return (last.live_clocks - last.rank) * WRITE_STAGGER_S

    def fence(self) -> tuple[str, Mapping[str, int]] | None:
        """(owner, fences) for the sample writer on PostgreSQL; None on SQLite."""
        last = self._last
        if not self.fenced or last is None:
            return None
        return (self.node_id, last.fences)

    def is_leader(self) -> bool:
        last = self._last
        return last is not None and last.leader and self.valid()

    def db_now(self) -> float | None:
        """The database's time now, as of the last round plus the monotonic time since (None before one)."""
        with self._lock:
            last, renewed = self._last, self._renewed_mono
        return None if last is None else last.db_now + (self.monotonic() - renewed)

    def starts_slot(self, result: LeaseRound, interval_s: float) -> bool:
        """Whether this round is the one that starts its slot (phase below I/3): it triggers the poll."""
        return (result.db_now % interval_s) < interval_s / 3

    def next_round_in(self, interval_s: float) -> float:
        """Seconds until the next round time: I/3 apart, `ROUND_PHASE * I` after each slot third (database time).

        Except when the slot's starting round was missed: a round that ran late (a loaded host, a
        slow database) and ended past the next slot's round time would otherwise leave that slot
        without a starting round, and so without a poll. Then the next round is at once, while the
        slot is still in its first third (a round there starts it, `starts_slot`); not after a
        failed round (no retry loop against a database that is away).
        """
        now = self.db_now()
        if now is None:
            return interval_s / 3
        step = interval_s / 3
        offset = ROUND_PHASE * interval_s
        slot = slot_of(now, interval_s)  # a slot number; its phase below is seconds into it
        started = self._slot_round
        if (self._outage is None and offset < now - slot * interval_s < step - offset
                and (started is None or started[0] != slot)):
            return CATCH_UP_S
        k = (now - offset) // step
        return max(offset + (k + 1) * step - now, CATCH_UP_S)

    def singleton(self, name: str, period_s: float) -> bool:
        """Whether this clock runs job `name` for the current slot (of `period_s`): leader, and the first."""
        now = self.db_now()
        if now is None or not self.is_leader():
            return False
        return self.claim(name, slot_of(now, period_s))

    def claim(self, name: str, slot: int) -> bool:
        try:
            return self.coordinator.claim_run(name, slot, self.node_id)
        except CoordinationUnavailable as exc:
            log.warning("[CLOCK COORD] cannot record %s run %d: %s", name, slot, exc)
            return False

    def cleanup_due(self) -> int | None:
        """The day whose 02:00 cleanup this leader must run now (claimed), or None.

        A day is due when the newest recorded cleanup is older than the latest 02:00 UTC
        (database time): so a cleanup missed while every clock was down runs at the next start.
        A store that never recorded one (a new install, an upgrade) records today's without
        running it: nothing was missed that anyone asked for.
        """
        now = self.db_now()
        if now is None or not self.is_leader():
            return None
        day = cleanup_day(now)
        try:
            last = self.coordinator.last_run(CLEANUP)
        except CoordinationUnavailable:
            return None
        if last is None:
            self.claim(CLEANUP, day)
            return None
        if last >= day:
            return None
        return day if self.claim(CLEANUP, day) else None

    def release(self) -> int:
        """Give every lease back (SIGTERM): the other clocks claim them at their next round."""
        try:
            released = self.coordinator.release_all(self.node_id)
        except CoordinationUnavailable as exc:
            log.warning("[CLOCK COORD] could not release the leases (they run out by themselves): %s", exc)
            return 0
        log.info("[CLOCK COORD] %s released %d device lease(s)", self.node_id, released)
        return released

    def snapshot(self) -> dict[str, object]:
        """For the clock stats: node id, devices held, leader, live clocks, fair share, rejected writes."""
        last = self._last
        return {
            "node_id": self.node_id,
            "backend": self.coordinator.backend,
            "devices": len(last.held) if last is not None and self.valid() else 0,
            "leader": self.is_leader(),
            "live_clocks": last.live_clocks if last else None,
            "fair_share": last.fair_share if last else None,
            "rejected_writes": self.rejected_writes,
            "round_ms": None if self.round_ms is None else round(self.round_ms, 1),
            "error": self._outage,
        }
