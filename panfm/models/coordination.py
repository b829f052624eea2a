"""What the clocks' coordination store hands out: one lease round's outcome and the live clocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LeaseRound:
    """The outcome of one lease round of one clock (times are the database's, epoch seconds).

    `held` maps each device whose lease this round renewed or granted to its fence (None on
    SQLite, where one clock holds everything and no write needs fencing). `granted` are the
    devices newly claimed this round (a subset of `held`). `rank` is how many live clocks sort
    before this one (0 on SQLite): the clocks stagger their cycle writes by it. `txn_ms`: the
    round's transaction time on the server (PostgreSQL), without the round trip and the client.
    """

    node_id: str
    db_now: float
    lease_s: float
    held: Mapping[str, int | None] = field(default_factory=dict)
    granted: frozenset[str] = frozenset()
    released: int = 0
    leader: bool = False
    live_clocks: int = 1
    fair_share: int = 0
    rank: int = 0
    txn_ms: float | None = None  # PostgreSQL: the round's transaction on the server, start to answer

    @property
    def fences(self) -> dict[str, int]:
        """The fences to hand to the sample writer (empty on SQLite)."""
        return {d: f for d, f in self.held.items() if f is not None}


@dataclass(frozen=True)
class ClockNode:
    """One live clock as `/api/clock` lists it."""

    node_id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    devices: int
    leader: bool
