"""How long the clock's other threads wait for the GIL while an inventory thread parses a large log answer.

    .venv/bin/python bench/gil_wait.py [--entries 200] [--seconds 5]

The answer is the real traffic-log capture `../shared/panos-xml/log-get-traffic-fin__demisto-content.xml`
(or `tests/fixtures/panos/` when the shared folder is absent) with its one entry repeated
`--entries` times (200: `log_fetch_cap` before its default became 50, ~0.4 MB). One thread parses it again and
again with the clock's parser (`parse_core._parse_xml`); the main thread meanwhile sleeps 1 ms
in a loop, as a thread whose database round trip just ended waits to run again (the lease round,
the cycle's write), and records how far past 1 ms it woke. The switch interval is the clock's
(`clock.CLOCK_SWITCH_INTERVAL_S`). Runs twice: the whole answer fed in one call (as before
`parse_core.PARSE_CHUNK`) and fed in chunks; prints the wait's p50/p95/p99/max and the parse's
CPU per answer for each.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import clock  # noqa: E402
from panfm.xmlapi import parse_core  # noqa: E402

CAPTURE = "log-get-traffic-fin__demisto-content.xml"


def answer(entries: int) -> bytes:
    for folder in (ROOT.parent / "shared" / "panos-xml", ROOT / "tests" / "fixtures" / "panos"):
        if (folder / CAPTURE).exists():
            text = (folder / CAPTURE).read_text(encoding="utf-8")
            break
    else:
        raise SystemExit(f"{CAPTURE} not found")
    entry = re.search(r"<entry .*?</entry>", text, re.S)
    if entry is None:
        raise SystemExit("no <entry> in the capture")
    many = "".join(entry.group(0).replace('logid="1234"', f'logid="{k}"') for k in range(entries))
    return text.replace(entry.group(0), many).replace('count="1"', f'count="{entries}"').encode("utf-8")


def run(body: bytes, seconds: float, chunk: int) -> dict[str, float]:
    parse_core.PARSE_CHUNK = chunk
    stop = threading.Event()
    parses = [0, 0.0]

    def parse() -> None:
        while not stop.is_set():
            c0 = time.thread_time()
            parse_core._parse_xml(body)
            parses[0] += 1
            parses[1] += time.thread_time() - c0

    worker = threading.Thread(target=parse, daemon=True)
    worker.start()
    late: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        time.sleep(0.001)
        late.append((time.perf_counter() - t0 - 0.001) * 1000)
    stop.set()
    worker.join()
    q = statistics.quantiles(late, n=100)
    return {"chunk_bytes": chunk, "wakeups": len(late), "late_ms_p50": round(statistics.median(late), 3),
            "late_ms_p95": round(q[94], 3), "late_ms_p99": round(q[98], 3), "late_ms_max": round(max(late), 3),
            "parse_cpu_ms": round(parses[1] / max(1, parses[0]) * 1000, 3), "parses": parses[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    sys.setswitchinterval(clock.CLOCK_SWITCH_INTERVAL_S)
    body = answer(a.entries)
    chunked = parse_core.PARSE_CHUNK
    out = {"answer_bytes": len(body), "switch_interval_s": sys.getswitchinterval(),
           "one_feed": run(body, a.seconds, len(body) + 1), "chunked": run(body, a.seconds, chunked),
           "load": [round(x, 2) for x in __import__("os").getloadavg()],
           "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
