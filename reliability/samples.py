"""Reading the sample database of a scenario and judging its rates against the simulator's truth."""

from __future__ import annotations

import itertools
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panfm.collector.slow import link_speeds
from panfm.storage.samples import HISTORY_DB

if TYPE_CHECKING:
    from reliability.harness import Sim


def history_db(data_dir: Path) -> Path:
    return data_dir / HISTORY_DB


def ro(db: Path) -> sqlite3.Connection:
    """A read-only connection, like the web's."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one read-only query; [] while the database does not exist yet."""
    if not db.exists():
        return []
    conn = ro(db)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # created but not yet migrated
        return []
    finally:
        conn.close()


def integrity(db: Path) -> str:
    """PRAGMA integrity_check of the whole file."""
    rows = query(db, "PRAGMA integrity_check")
    return str(rows[0][0]) if rows else "missing"


def heartbeat(db: Path) -> tuple[float, int] | None:
    """(heartbeat, pid) of the last committed cycle, or None."""
    rows = query(db, "SELECT heartbeat, doc FROM clock_stats WHERE id = 1")
    if not rows:
        return None
    return float(rows[0][0]), int(json.loads(rows[0][1]).get("pid") or 0)


def device_rows(db: Path) -> dict[str, list[tuple[int, float | None, float | None, float]]]:
    """Device id -> [(ts ms, inbound_mbps, outbound_mbps, round trip ms)] in time order."""
    out: dict[str, list[tuple[int, float | None, float | None, float]]] = {}
    for dev, ts, rin, rout, rtt in query(db, "SELECT device_id, ts, inbound_mbps, outbound_mbps, rtt_ms "
                                             "FROM device_samples ORDER BY device_id, ts"):
        out.setdefault(dev, []).append((int(ts), rin, rout, float(rtt or 0.0)))
    return out


def link_limits(db: Path) -> dict[tuple[str, str], float]:
    """(device id, interface) -> link speed in bit/s, from the slow job's inventory."""
    limits = {}
    for dev, doc in query(db, "SELECT device_id, doc FROM inventory"):
        for name, mbps in link_speeds(json.loads(doc).get("interfaces") or []).items():
            if mbps:
                limits[(dev, name)] = float(mbps) * 1e6
    return limits


def out_of_range_rates(db: Path) -> list[str]:
    """Interface rates that are negative or above their link speed (each as a short text)."""
    limits = link_limits(db)
    bad = []
    rows = query(db, "SELECT device_id, interface, ts, in_bps, out_bps FROM interface_samples")
    for dev, name, ts, rin, rout in rows:
        for v in (rin, rout):
            if v is None:
                continue
            limit = limits.get((dev, name))
            if v < 0 or (limit is not None and v > limit):
                bad.append(f"{dev} {name} ts={ts} {v:.0f} bit/s (link {limit})")
    for dev, ts, rin, rout in query(db, "SELECT device_id, ts, inbound_mbps, outbound_mbps FROM device_samples"):
        if (rin is not None and rin < 0) or (rout is not None and rout < 0):
            bad.append(f"{dev} ts={ts} negative device rate")
    return bad


@dataclass
class RateCheck:
    """Result of comparing stored rates with the simulator's truth."""

    checked: int = 0
    gaps: int = 0
    worst_rel_error: float = 0.0
    worst_window_s: float = 0.0
    wrong: list[str] = field(default_factory=list)


def check_rates(sim: Sim, names: dict[str, str],
                rows: dict[str, list[tuple[int, float | None, float | None, float]]],
                max_gap_s: float | None = None, tolerance: float = 0.01, since_ms: int = 0,
                jitter_s: float = 0.0) -> RateCheck:
    """Compare every stored device rate with /_sim/truth over [previous sample, sample].

    NAMES maps device id -> simulator name. A rate that is zero, or off by more than
    TOLERANCE (+ JITTER_S and both samples' round trips as a share of the window: a sample is
    dated when its request was sent and the firewall read its counters somewhere within the
    round trip the clock stored beside it), is wrong; a null rate is a gap.
    Pairs further apart than MAX_GAP_S are skipped (a poll whose commit failed moved the
    clock's baseline without a stored sample).
    """
    rc = RateCheck()
    for dev, series in rows.items():
        if dev not in names:
            continue
        for (t1, _, _, rtt1), (t2, rin, rout, rtt2) in itertools.pairwise(series):
            if t2 < since_ms:
                continue
            if rin is None or rout is None:
                rc.gaps += 1
                continue
            if max_gap_s is not None and (t2 - t1) / 1000 > max_gap_s:
                continue
            want_in, want_out = sim.truth_mbps(names[dev], t1 / 1000, t2 / 1000)
            rc.checked += 1
            for got, want in ((rin, want_in), (rout, want_out)):
                err = abs(got - want) / want if want else float("inf")
                if err > rc.worst_rel_error:
                    rc.worst_rel_error, rc.worst_window_s = err, (t2 - t1) / 1000
                if got <= 0 or err > tolerance + (jitter_s * 1000 + rtt1 + rtt2) / (t2 - t1):
                    rc.wrong.append(f"{names[dev]} ts={t2}: {got:.3f} Mb/s, truth {want:.3f}")
    return rc


def wal_size(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def grep_count(text: str, needle: str) -> int:
    return text.lower().count(needle.lower())


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


