"""The coordination store on PostgreSQL: leases, fencing and the leader for any number of clocks.

All times are the server's `now()` (the transaction's start), so a clock host whose wall clock
is off changes nothing. Lock order inside a round: the clock's own `clock_node` row, its own
leases, then free or expired leases with `SKIP LOCKED` (never waiting on a row another clock
holds), then the one `leader` row (a short wait at most): no deadlock is possible.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

from panfm.models import ClockNode, LeaseRound
from panfm.storage.coordination import LEADER, CoordinationUnavailable, fair_share, lease_seconds

log = logging.getLogger("panfm.storage")

# Idempotent and taken under an advisory lock, so clocks starting together create it once.
# Statements end with ";\n" (how it is split), which the DO blocks' inner ones must not.
# (The device_lease shape is shared with the fenced sample insert: keep it.)
SCHEMA = """
CREATE TABLE IF NOT EXISTS clock_node (
    node_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
DO $$ BEGIN
    -- Since lease round v3: the device set each clock sent last. Altered only when missing (an
    -- ALTER takes clock_node whole, and any DDL makes new connections rewrite the server's
    -- relation cache file, which a full disk refuses), and before device_lease is touched: a
    -- round takes clock_node, then device_lease.
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'clock_node'::regclass AND attname = 'lease_ids_at')
    THEN
        ALTER TABLE clock_node ADD COLUMN IF NOT EXISTS lease_ids TEXT[],
                               ADD COLUMN IF NOT EXISTS lease_ids_at TIMESTAMPTZ; END IF; END $$;
CREATE TABLE IF NOT EXISTS device_lease (
    device_id TEXT PRIMARY KEY,
    owner TEXT,
    lease_until TIMESTAMPTZ,
    fence BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 40);
CREATE INDEX IF NOT EXISTS device_lease_owner ON device_lease (owner);
DO $$ BEGIN
    -- Room in each page for the renewals' new versions (heap-only updates: the indexes untouched).
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = 'device_lease'::regclass AND 'fillfactor=40' = ANY(reloptions))
    THEN
        ALTER TABLE device_lease SET (fillfactor = 40); END IF; END $$;
CREATE TABLE IF NOT EXISTS job_lease (
    name TEXT PRIMARY KEY,
    owner TEXT,
    lease_until TIMESTAMPTZ,
    fence BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS job_run (
    name TEXT NOT NULL,
    slot BIGINT NOT NULL,
    owner TEXT,
    ran_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (name, slot)
);
INSERT INTO job_lease (name) VALUES ('leader') ON CONFLICT DO NOTHING
"""
SCHEMA_LOCK = 0x70616E666D01  # pg_advisory_xact_lock key of this schema ("panfm" + 1)

ROUND_FN = "panfm_lease_round_v3"  # the name in LEASE_ROUND; a new body gets a new name (old clocks keep theirs)
# One lease round (PgCoordinator.lease_round), inside the caller's transaction:
# 1. Heartbeat (nothing else happens for a clock that is not registered). Live clocks =
#    heartbeat younger than a lease (a dead clock stops counting when its leases run out, so its
#    share is claimable in the same round); how many other live clocks hold less than
#    fair - 2 (one that just joined holds nothing); this clock's rank among the live ones (how
#    many sort before it, in code-point order: the clocks stagger their writes by it).
# 2. Release what this clock holds of devices no longer enabled. Steps 2 and the lease rows of
#    newly enabled devices are skipped while `ids` equals the set this clock sent last (kept in
#    its `clock_node` row) and that set was checked less than `IDS_RECHECK` ago.
# 3. Renew its leases that are still valid (an expired one is a new grant, below).
# 4. Above fair share + 2, or above it while another live clock holds less than fair - 2:
#    release down to the fair share (the +2 band keeps shares from flapping; the second rule
#    lets a newcomer in when everyone sits inside it). Kept: the first in code-point order.
# 5. Claim free or expired leases up to the fair share, skipping rows another clock has
#    locked; each grant increments the fence, so a write fenced by an older grant fails.
# 6. Renew or take the leader lease (a new leader also increments its fence); the leader
#    deletes the rows of clocks gone for a day.
# 7. Answer, with the transaction's own time on the server so far (`txn_ms`: from its start,
#    `now()`, to `clock_timestamp()`): the round trip around it is the clock's to wait for.
LEASE_ROUND = """
CREATE OR REPLACE FUNCTION panfm_lease_round_v3(me text, ids text[], lease float8, leader_name text)
RETURNS TABLE (registered boolean, live bigint, db_now float8, released bigint, held_ids text[],
               held_fences bigint[], granted_ids text[], granted_fences bigint[], leader boolean, rank bigint,
               txn_ms float8)
LANGUAGE plpgsql AS $body$
#variable_conflict use_column
DECLARE
    n_ids bigint := coalesce(cardinality(ids), 0);
    v_live bigint;
    v_starving bigint;
    v_rank bigint;
    v_fair bigint;
    v_released bigint := 0;
    v_count bigint;
    v_held text[];
    v_fences bigint[];
    v_gids text[];
    v_gfences bigint[];
    v_fence bigint;
    v_same boolean;
BEGIN
    -- The device set as this clock last checked it: unchanged and recent, no row can be missing
    -- (nothing deletes lease rows) and none of its own can be of a device no longer enabled.
    UPDATE clock_node SET heartbeat_at = now(),
           lease_ids_at = CASE WHEN lease_ids = ids AND lease_ids_at > now() - interval '{recheck}' THEN lease_ids_at
                               ELSE NULL END
     WHERE node_id = me RETURNING lease_ids_at IS NOT NULL INTO v_same;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, 0::bigint, 0::float8, 0::bigint, NULL::text[], NULL::bigint[],
                            NULL::text[], NULL::bigint[], false, 0::bigint, NULL::float8;
        RETURN;
    END IF;
    WITH alive AS (SELECT node_id FROM clock_node WHERE heartbeat_at > now() - make_interval(secs => lease)),
         h AS (SELECT owner, count(*) AS n FROM device_lease WHERE lease_until > now() GROUP BY owner),
         k AS (SELECT greatest(count(*), 1) AS n FROM alive)
    SELECT k.n, (SELECT count(*) FROM alive c LEFT JOIN h ON h.owner = c.node_id
                 WHERE c.node_id <> me AND coalesce(h.n, 0) < ceil(n_ids::numeric / k.n) - 2),
           (SELECT count(*) FROM alive c WHERE c.node_id COLLATE "C" < me COLLATE "C")
      INTO v_live, v_starving, v_rank FROM k;
    v_fair := ceil(n_ids::numeric / v_live);
    -- Only the missing rows go to the INSERT (an anti-join; ON CONFLICT for a clock adding the same
    -- at once): one speculative insertion per enabled device every round was a third of its time.
    -- The sets are compared by hashing `ids` (NOT IN / IN a subquery), not by `= ANY(ids)`, whose
    -- array a generic plan scans once per row.
    IF NOT v_same THEN
        INSERT INTO device_lease (device_id)
            SELECT u.id FROM unnest(ids) AS u(id)
             WHERE NOT EXISTS (SELECT 1 FROM device_lease d WHERE d.device_id = u.id)
            ON CONFLICT DO NOTHING;
        UPDATE device_lease SET owner = NULL, lease_until = NULL
         WHERE owner = me AND device_id NOT IN (SELECT unnest(ids));
        GET DIAGNOSTICS v_released = ROW_COUNT;
        UPDATE clock_node SET lease_ids = ids, lease_ids_at = now() WHERE node_id = me;
    END IF;
    WITH r AS (UPDATE device_lease SET lease_until = now() + make_interval(secs => lease)
               WHERE owner = me AND lease_until > now() RETURNING device_id, fence)
    SELECT coalesce(array_agg(device_id ORDER BY device_id COLLATE "C"), '{}'),
           coalesce(array_agg(fence ORDER BY device_id COLLATE "C"), '{}')
      INTO v_held, v_fences FROM r;
    v_count := cardinality(v_held);
    IF v_count > v_fair + 2 OR (v_starving > 0 AND v_count > v_fair) THEN
        UPDATE device_lease SET owner = NULL, lease_until = NULL
         WHERE owner = me AND device_id = ANY(v_held[v_fair + 1:v_count]);
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_released := v_released + v_count;
        v_held := v_held[1:v_fair];
        v_fences := v_fences[1:v_fair];
    END IF;
    IF v_fair > cardinality(v_held) THEN
        WITH c AS (SELECT device_id FROM device_lease WHERE device_id IN (SELECT unnest(ids))
                     AND (owner IS NULL OR lease_until IS NULL OR lease_until <= now())
                   ORDER BY device_id LIMIT v_fair - cardinality(v_held) FOR UPDATE SKIP LOCKED),
             u AS (UPDATE device_lease d SET owner = me, lease_until = now() + make_interval(secs => lease),
                          fence = d.fence + 1
                   FROM c WHERE d.device_id = c.device_id RETURNING d.device_id, d.fence)
        SELECT array_agg(u.device_id), array_agg(u.fence) INTO v_gids, v_gfences FROM u;
    END IF;
    UPDATE job_lease SET fence = CASE WHEN owner = me AND lease_until > now() THEN fence ELSE fence + 1 END,
                         owner = me, lease_until = now() + make_interval(secs => lease)
     WHERE name = leader_name AND (owner = me OR owner IS NULL OR lease_until IS NULL OR lease_until <= now())
    RETURNING fence INTO v_fence;
    IF v_fence IS NOT NULL THEN
        DELETE FROM clock_node WHERE heartbeat_at < now() - interval '1 day';
    END IF;
    RETURN QUERY SELECT true, v_live, extract(epoch FROM now())::float8, v_released, v_held, v_fences,
                        v_gids, v_gfences, v_fence IS NOT NULL, v_rank,
                        extract(epoch FROM clock_timestamp() - now())::float8 * 1000.0;
END
$body$
"""
IDS_RECHECK_S = 60  # the device set is checked against the lease rows at least this often
LEASE_ROUND = LEASE_ROUND.replace("{recheck}", f"{IDS_RECHECK_S} seconds")


def connect(url: str) -> psycopg.Connection[Any]:
    """Open one autocommit connection (transactions are explicit); swap for the shared pool later."""
    return psycopg.connect(url, autocommit=True, connect_timeout=5, application_name="panfm-coordination",
                           keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)


class PgCoordinator:
    """Coordination on PostgreSQL (one connection, serialised by a lock; reconnects on the next call)."""

    backend = "postgresql"

    def __init__(self, url: str, connector: Callable[[str], psycopg.Connection[Any]] = connect) -> None:
        self._url = url
        self._connector = connector
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._schema_ready = False

    # ---- connection ---------------------------------------------------------------------

    @contextmanager
    def _txn(self, one_statement: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction on the (re)opened connection; any driver error becomes CoordinationUnavailable.

        `one_statement`: no BEGIN and COMMIT around it: the connection is in autocommit, so the
        caller's one statement is its own transaction, in one round trip instead of three.
        """
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connector(self._url)
                if not self._schema_ready:
                    with self._conn.transaction(), self._conn.cursor() as cur:
                        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                        for stmt in SCHEMA.split(";\n"):
                            cur.execute(stmt.encode())  # constant DDL
                        cur.execute("SELECT to_regproc(%s) IS NULL", (ROUND_FN,))
                        if (cur.fetchone() or (False,))[0]:  # created once: a replace would stall other clocks' rounds
                            cur.execute(LEASE_ROUND.encode())
                    self._schema_ready = True
                with (contextlib.nullcontext() if one_statement else self._conn.transaction()), \
                        self._conn.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                if self._conn is not None and (self._conn.closed or isinstance(exc, psycopg.OperationalError)):
                    self._drop()
                raise CoordinationUnavailable(f"{type(exc).__name__}: {str(exc).strip()[:200]}") from None

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __del__(self) -> None:
        # A web app dropped without closing its context (tests build many) must not leave the
        # driver warning about an open connection in whatever runs next.
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):  # interpreter shutdown: nothing more to do
                conn.close()

    # ---- the clock's calls ----------------------------------------------------------------

    def register(self, node_id: str, host: str, pid: int) -> None:
        with self._txn() as cur:
            cur.execute(
                "INSERT INTO clock_node (node_id, host, pid, started_at, heartbeat_at) "
                "VALUES (%s, %s, %s, now(), now())"
                " ON CONFLICT (node_id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, heartbeat_at = now(),"
                " lease_ids_at = NULL",  # (re)registered: its next round checks its device set in full
                (node_id, host, pid),
            )

    def lease_round(self, node_id: str, device_ids: Sequence[str], interval_s: float) -> LeaseRound:
        """One transaction, one round trip: the server-side function `ROUND_FN` (steps in LEASE_ROUND).

        A lease round used to be two pipelined batches and a COMMIT: three round trips, each of
        which a busy clock host makes slow (the thread waits for the GIL again after each one).
        """
        ids = sorted(set(device_ids))
        lease = lease_seconds(interval_s)
        with self._txn(one_statement=True) as cur:
            cur.execute("SELECT * FROM panfm_lease_round_v3(%s, %s::text[], %s, %s)", (node_id, ids, lease, LEADER))
            row = cur.fetchone()
        if row is None or not row[0]:
            raise CoordinationUnavailable(f"clock {node_id} is not registered")
        _, live, db_now, released, held_ids, held_fences, granted_ids, granted_fences, leader, rank, txn_ms = row
        held: dict[str, int | None] = {d: int(f) for d, f in zip(held_ids or (), held_fences or (), strict=True)}
        granted = dict(zip(granted_ids or (), granted_fences or (), strict=True))
        held.update({d: int(f) for d, f in granted.items()})
        return LeaseRound(node_id=node_id, db_now=float(db_now), lease_s=lease, held=held,
                          granted=frozenset(granted), released=int(released), leader=bool(leader),
                          live_clocks=int(live), fair_share=fair_share(len(ids), int(live)), rank=int(rank),
                          txn_ms=None if txn_ms is None else float(txn_ms))

    def release_all(self, node_id: str) -> int:
        with self._txn() as cur:
            cur.execute("UPDATE device_lease SET owner = NULL, lease_until = NULL WHERE owner = %s", (node_id,))
            released = cur.rowcount
            cur.execute("UPDATE job_lease SET owner = NULL, lease_until = NULL WHERE owner = %s", (node_id,))
            cur.execute("DELETE FROM clock_node WHERE node_id = %s", (node_id,))
        return released

    def claim_run(self, name: str, slot: int, node_id: str) -> bool:
        with self._txn() as cur:
            cur.execute("INSERT INTO job_run (name, slot, owner) VALUES (%s, %s, %s) "
                        "ON CONFLICT (name, slot) DO NOTHING RETURNING slot", (name, slot, node_id))
            return cur.fetchone() is not None

    def last_run(self, name: str) -> int | None:
        with self._txn() as cur:
            cur.execute("SELECT max(slot) FROM job_run WHERE name = %s", (name,))
            row = cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def db_now(self) -> float:
        with self._txn() as cur:
            cur.execute("SELECT extract(epoch FROM now())::float8")
            row = cur.fetchone()
        return float(row[0]) if row else 0.0

    # ---- the web's reads ------------------------------------------------------------------

    def clocks(self, interval_s: float) -> list[ClockNode]:
        with self._txn() as cur:
            cur.execute(
                "SELECT n.node_id, n.host, n.pid, extract(epoch FROM n.started_at)::float8, "
                " extract(epoch FROM n.heartbeat_at)::float8, "
                " (SELECT count(*) FROM device_lease d WHERE d.owner = n.node_id AND d.lease_until > now()), "
                " EXISTS (SELECT 1 FROM job_lease j WHERE j.name = %(leader)s AND j.owner = n.node_id "
                "         AND j.lease_until > now()) "
                "FROM clock_node n WHERE n.heartbeat_at > now() - make_interval(secs => %(iv)s) ORDER BY n.started_at",
                {"leader": LEADER, "iv": float(interval_s)},
            )
            rows = cur.fetchall()
        return [ClockNode(node_id=r[0], host=r[1], pid=int(r[2]), started_at=float(r[3]), heartbeat_at=float(r[4]),
                          devices=int(r[5]), leader=bool(r[6])) for r in rows]

    def owners(self) -> dict[str, str]:
        with self._txn() as cur:
            cur.execute("SELECT device_id, owner FROM device_lease WHERE owner IS NOT NULL AND lease_until > now()")
            return {str(r[0]): str(r[1]) for r in cur.fetchall()}
