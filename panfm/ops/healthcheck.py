"""Container healthchecks: `python -m panfm.ops.healthcheck web|clock` prints one line and exits 0 (healthy) or 1.

    web    GET http://127.0.0.1:$PANFM_PORT/api/health answers 200. A 503 whose body is the
           health document also counts as healthy unless --strict: the web is up, only the
           data is stale, and the clock has its own check (a dead clock must not make the
           web look dead too).
    clock  the heartbeat in the sample database (opened read-only) is at most
           3 x refresh_interval old (on PostgreSQL: the newest heartbeat of any clock).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from collections.abc import Callable

from config import ConfigError, Settings, load_settings
from throughput_storage import StorageUnavailable, clock_stats_of

TIMEOUT_S = 4.0


def check_web(settings: Settings, *, strict: bool = False, host: str = "127.0.0.1") -> tuple[bool, str]:
    """Ask the local web process for /api/health; return (healthy, one line)."""
    conn = http.client.HTTPConnection(host, settings.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/api/health", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read(65536)
    except OSError as exc:
        return False, f"web: no answer on {host}:{settings.port} ({exc.__class__.__name__}: {exc})"
    finally:
        conn.close()
    if resp.status == 200:
        return True, "web: ok (/api/health 200)"
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if resp.status == 503 and isinstance(doc, dict) and "status" in doc:
        detail = f"web: up, data {doc['status']} (clock heartbeat age {doc.get('clock', {}).get('age_seconds')} s)"
        return (not strict), detail
    return False, f"web: /api/health answered {resp.status}"


def check_clock(settings: Settings, now: Callable[[], float] = time.time) -> tuple[bool, str]:
    """Read the clock's heartbeat from the sample database; return (healthy, one line)."""
    limit = 3 * settings.refresh_interval
    try:
        stats = clock_stats_of(settings)  # the sample database, or PostgreSQL (database_url)
    except StorageUnavailable as exc:
        return False, f"clock: sample database unavailable ({exc})"
    if not stats or stats.get("heartbeat") is None:
        return False, "clock: no heartbeat written yet"
    age = now() - float(stats["heartbeat"])
    if age > limit:
        return False, f"clock: heartbeat {age:.0f} s old (limit {limit} s = 3 x refresh_interval)"
    return True, f"clock: ok (heartbeat {max(age, 0.0):.0f} s old, limit {limit} s)"


def main(argv: list[str] | None = None) -> int:
    """Run one check and print its line."""
    parser = argparse.ArgumentParser(description="PANfm healthcheck (Docker HEALTHCHECK, compose).")
    parser.add_argument("process", choices=("web", "clock"))
    parser.add_argument("--strict", action="store_true", help="web: only a 200 is healthy")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{args.process}: settings unusable: {exc}")
        return 1
    ok, line = check_web(settings, strict=args.strict) if args.process == "web" else check_clock(settings)
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
