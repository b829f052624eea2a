"""Read `network.db` for the web: connected devices, ACC applications, threats, logs (read-only, per request).

The same reads serve the network tables in PostgreSQL (`open_backend`): rows by column name,
sums cast to whole numbers (PostgreSQL's SUM of a BIGINT is a NUMERIC), NULL epochs last.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from panfm.storage.backend import Backend, Conn
from panfm.storage.network_store import MIGRATIONS, NETWORK_DB, connect


def _device_json(row: Any) -> dict[str, Any]:
    return {
        "device_id": row["device_id"],
        "mac": row["mac"],
        "ip": row["ip"],
        "interface": row["interface"],
        "vlan": row["vlan"],
        "zone": row["zone"],
        "user": row["user_name"],
        "vendor": row["vendor"],
        "dhcp_hostname": row["dhcp_hostname"],
        "dns_name": row["dns_name"],
        "static": bool(row["static"]),
        "randomized_mac": bool(row["randomized"]),
        "lease_expires": row["lease_expires"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
    }


SEVERITIES = ("critical", "high", "medium", "low")
# A threat's severity as a rank (portable SQL: MIN of it over a range is the highest severity seen).
_SEVERITY_RANK = ("CASE detail WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 "
                  "ELSE 4 END")


class NetworkReader:
    """Read network.db for one request (read-only connection)."""

    def __init__(self, conn: sqlite3.Connection | Conn, *, on_postgres: bool = False) -> None:
        self._conn = conn
        self._pg = on_postgres

    @classmethod
    @contextmanager
    def open(cls, path: Path) -> Iterator[NetworkReader | None]:
        """Yield a reader, or None before the clock wrote network.db the first time."""
        if not path.exists():
            yield None
            return
        conn = connect(path, readonly=True)
        try:
            yield cls(conn)
        finally:
            conn.close()

    @classmethod
    @contextmanager
    def open_backend(cls, backend: Backend) -> Iterator[NetworkReader | None]:
        """network.db of the backend's data folder (None before the clock wrote it), or its tables in PostgreSQL."""
        handle = backend.handle(NETWORK_DB, MIGRATIONS)
        if not handle.on_postgres:
            with cls.open(backend.data_dir / NETWORK_DB) as reader:
                yield reader
            return
        with handle.read() as conn:
            yield cls(conn, on_postgres=True)

    def devices(self, now: float, device_id: str | None = None, *, current: bool = True) -> list[dict[str, Any]]:
        """Connected devices of one firewall (or all): current ones, or every one kept (`current=False`)."""
        where: list[str] = []
        args: list[Any] = []
        sql = "SELECT c.* FROM connected_devices c"
        if current:
            sql += " JOIN network_snapshots s ON s.device_id = c.device_id AND c.last_seen >= s.ts"
            where.append("(c.lease_expires IS NULL OR c.lease_expires > ?)")
            args.append(now)
        if device_id is not None:
            where.append("c.device_id = ?")
            args.append(device_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_device_json(r) for r in self._conn.execute(sql + " ORDER BY c.device_id, c.ip", args)]

    def snapshots(self) -> dict[str, dict[str, float]]:
        """When each firewall's table was last read, and how many hosts it held."""
        return {r["device_id"]: {"ts": r["ts"], "hosts": r["hosts"]}
                for r in self._conn.execute("SELECT device_id, ts, hosts FROM network_snapshots")}

    def applications(self, device_id: str, since: float, limit: int = 25) -> dict[str, Any]:
        """ACC rows of one firewall summed since `since`: top apps, top categories, the per-run timeline."""
        def top(kind: str) -> list[dict[str, Any]]:
            rows = self._conn.execute(
                "SELECT name, MAX(category) AS category, MAX(risk) AS risk, CAST(SUM(bytes) AS BIGINT) AS bytes, "
                "CAST(SUM(sessions) AS BIGINT) AS sessions, MAX(sources) AS sources FROM app_stats "
                "WHERE device_id = ? AND kind = ? AND ts >= ? GROUP BY name ORDER BY SUM(bytes) DESC, name LIMIT ?",
                (device_id, kind, since, limit))
            return [dict(r) for r in rows]

        timeline = [{"ts": r["ts"], "bytes": r["bytes"], "sessions": r["sessions"]} for r in self._conn.execute(
            "SELECT ts, CAST(SUM(bytes) AS BIGINT) AS bytes, CAST(SUM(sessions) AS BIGINT) AS sessions FROM app_stats "
            "WHERE device_id = ? AND kind = 'app' AND ts >= ? GROUP BY ts ORDER BY ts", (device_id, since))]
        newest = self._conn.execute("SELECT MAX(ts) AS newest FROM app_stats WHERE device_id = ?",
                                    (device_id,)).fetchone()["newest"]
        sources = [{"name": r["name"], "user": r["category"], "bytes": r["bytes"], "sessions": r["sessions"]}
                   for r in top("source")]
        return {"applications": top("app"), "categories": top("category"), "sources": sources, "timeline": timeline,
                "as_of": newest}

    def top_application(self, since: float) -> dict[str, str]:
        """Each firewall's top application by bytes since `since` (the overview's tile)."""
        out: dict[str, str] = {}
        rows = self._conn.execute(
            "SELECT device_id, name, CAST(SUM(bytes) AS BIGINT) AS bytes FROM app_stats WHERE kind = 'app' AND ts >= ? "
            "GROUP BY device_id, name ORDER BY device_id, SUM(bytes) DESC", (since,))
        for r in rows:
            out.setdefault(r["device_id"], r["name"])
        return out

    def security(self, device_id: str, since: float, latest: int = 50) -> dict[str, Any]:
        """Threat counts, blocked URLs, the latest events and the top names of one firewall since `since`."""
        row = self._conn.execute(
            "SELECT SUM(critical) AS critical, SUM(high) AS high, SUM(medium) AS medium, SUM(low) AS low, "
            "SUM(blocked_urls) AS blocked_urls, COUNT(*) AS runs, MAX(ts) AS newest FROM security_counts "
            "WHERE device_id = ? AND ts >= ?", (device_id, since)).fetchone()
        events = [json.loads(r["doc"]) for r in self._conn.execute(
            "SELECT doc FROM security_events WHERE device_id = ? AND ts >= ? ORDER BY ts DESC, seq LIMIT ?",
            (device_id, since, latest))]

        def top(kind: str) -> list[dict[str, Any]]:
            out = []
            for r in self._conn.execute(
                    f"SELECT name, SUM(count) AS count, MIN({_SEVERITY_RANK}) AS rank FROM security_top "  # noqa: S608  # nosec B608 (constant expression)
                    "WHERE device_id = ? AND kind = ? AND ts >= ? GROUP BY name "
                    "ORDER BY SUM(count) DESC, name LIMIT 10",
                    (device_id, kind, since)):
                top = {"name": r["name"], "count": int(r["count"])}
                if kind == "acc_threat":  # the threat's highest severity over the range
                    top["severity"] = SEVERITIES[r["rank"]] if r["rank"] < len(SEVERITIES) else None
                out.append(top)
            return out

        # The ACC's tops when the firewall answered its reports in the range, else the log queries' tops.
        threats, url_categories = top("acc_threat"), top("acc_url_category")
        tops_from = {"top_threats": "acc" if threats else "logs",
                     "top_url_categories": "acc" if url_categories else "logs"}
        threats, url_categories = threats or top("threat"), url_categories or top("url_category")

        runs = row["runs"] or 0
        counts = {k: row[k] for k in ("critical", "high", "medium", "low")} if runs else None
        return {"counts": counts, "blocked_urls": row["blocked_urls"] if runs else None, "latest": events,
                "top_threats": threats, "top_url_categories": url_categories, "tops_from": tops_from,
                "as_of": row["newest"], "runs": runs}

    def logs(self, device_id: str, log_type: str, since: float, q: str = "", limit: int = 500
             ) -> tuple[list[dict[str, Any]], float | None]:
        """The newest entries of one type received since `since` (text `q` anywhere in them); and the last fetch."""
        out: list[dict[str, Any]] = []
        # NULL epochs last, as SQLite sorts them (PostgreSQL, without NULLS LAST, first).
        nulls = " NULLS LAST" if self._pg else ""
        rows = self._conn.execute(
            "SELECT entry_id, epoch, doc FROM log_entries WHERE device_id = ? AND log_type = ? "  # noqa: S608  # nosec B608
            f"AND (epoch IS NULL OR epoch >= ?) ORDER BY epoch DESC{nulls}, entry_id DESC",
            (device_id, log_type, since))
        needle = q.lower()
        for r in rows:
            if needle and needle not in r["doc"].lower():
                continue
            out.append({"id": r["entry_id"], "epoch": r["epoch"], **json.loads(r["doc"])})
            if len(out) >= limit:
                break
        fetched = self._conn.execute("SELECT MAX(ts) AS fetched FROM log_entries WHERE device_id = ? AND log_type = ?",
                                     (device_id, log_type)).fetchone()["fetched"]
        return out, fetched

    def fleet_summary(self, since: float) -> dict[str, dict[str, Any]]:
        """Per firewall since `since`: threat counts, blocked URLs, top application; and its current host count."""
        out: dict[str, dict[str, Any]] = {}
        for r in self._conn.execute(
                "SELECT device_id, SUM(critical) AS critical, SUM(high) AS high, SUM(medium) AS medium, "
                "SUM(low) AS low, SUM(blocked_urls) AS blocked_urls FROM security_counts WHERE ts >= ? "
                "GROUP BY device_id", (since,)):
            out.setdefault(r["device_id"], {}).update(
                threats={k: r[k] for k in ("critical", "high", "medium", "low")}, blocked_urls=r["blocked_urls"])
        for device_id, name in self.top_application(since).items():
            out.setdefault(device_id, {})["top_application"] = name
        for device_id, snap in self.snapshots().items():
            out.setdefault(device_id, {})["connected_devices"] = int(snap["hosts"])
        return out
