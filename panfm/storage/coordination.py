"""The clocks' coordination store: live clocks, device leases, the leader lease, singleton job runs.

One interface (`Coordinator`), two backends:

- PostgreSQL (`coord_pg.PgCoordinator`): any number of clocks share the fleet. Every `I/3` a
  clock runs one lease round (one transaction): heartbeat, renew the leases it holds, release
  those above its fair share + 2, claim free or expired ones up to its fair share
  (`SELECT ... FOR UPDATE SKIP LOCKED`), each grant incrementing the device's `fence`; and
  renew or take the `leader` row of `job_lease`.
- SQLite (`coord_sqlite.SqliteCoordinator`, file `coordination.db` in the data folder): one
  clock (the OS lock on `clock.lock` stays); it holds every device and is the leader.

On both, `job_run(name, slot)` is insert-once: `claim_run` returns False when another run
(another clock, or this one before a restart) already took that slot. Every time here comes
from the database (`now()`), never from the host's clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from panfm.models import ClockNode, LeaseRound

COORDINATION_DB = "coordination.db"
# A lease lasts 5/6 of the interval: it runs out just before the round that starts the next
# slot, so a dead clock's devices are claimed by that round and polled in that slot (a lease
# of exactly I would race that round). Rounds every I/3 renew it twice over.
LEASE_FRACTION = 5 / 6
ROUNDS_PER_SLOT = 3
LEADER = "leader"


def lease_seconds(interval_s: float) -> float:
    """How long a lease granted or renewed now lasts, for a refresh interval of `interval_s`."""
    return interval_s * LEASE_FRACTION


def fair_share(devices: int, live_clocks: int) -> int:
    """ceil(devices / live clocks): what each clock should hold (at least one clock: the caller)."""
    return math.ceil(devices / max(live_clocks, 1))


def slot_of(epoch: float, period_s: float) -> int:
    """The slot number `floor(epoch / period)` of a time (the database's)."""
    return math.floor(epoch / period_s)


def cleanup_day(epoch: float, hour_utc: int = 2) -> int:
    """The day number (since 1970) of the latest `hour_utc`:00 UTC at or before `epoch`."""
    return math.floor((epoch - hour_utc * 3600) / 86400)


class CoordinationUnavailable(Exception):
    """The coordination database cannot be reached or used right now (the next round retries)."""


class Coordinator(Protocol):
    """What the clock and the web use of the coordination store (one instance per process)."""

    backend: str  # "postgresql" or "sqlite"

    def register(self, node_id: str, host: str, pid: int) -> None:
        """Create this clock's `clock_node` row (started_at = heartbeat_at = the database's now)."""

    def lease_round(self, node_id: str, device_ids: Sequence[str], interval_s: float) -> LeaseRound:
        """Run one lease round for `node_id` over the enabled devices, in one transaction."""

    def release_all(self, node_id: str) -> int:
        """Give up every lease of `node_id` (devices and leader) and remove its row; return devices released."""

    def claim_run(self, name: str, slot: int, node_id: str) -> bool:
        """Insert `job_run(name, slot)`; False when that run already exists (someone ran it)."""

    def last_run(self, name: str) -> int | None:
        """The newest slot recorded for job `name`, or None."""

    def db_now(self) -> float:
        """The database's current time (epoch seconds)."""

    def clocks(self, interval_s: float) -> list[ClockNode]:
        """The live clocks (heartbeat within `interval_s`), with devices held and who leads."""

    def owners(self) -> dict[str, str]:
        """device_id -> node id of the clock whose lease on it is valid now."""

    def close(self) -> None:
        """Close the connection."""
