"""Benchmark the simulator: 1,000 devices, the clock's command mix, median/p95 latency over keep-alive.

Usage: .venv/bin/python bench/sim_latency.py [--devices 1000] [--duration 120] [--period 30]
Starts `python -m panos_sim`, measures time-to-listen (launch -> inventory written), then every device
gets 5 calls per period (sequential, like one collector cycle) at a random offset, over one keep-alive
HTTPS connection per device pinned to its certificate fingerprint. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
MIX = (
    "<show><counter><interface>all</interface></counter></show>",
    "<show><session><info></info></session></show>",
    "<show><running><resource-monitor><minute><last>1</last></minute></resource-monitor></running></show>",
    "<show><system><state><filter>sys.monitor.s*.mp.exports</filter></state></system></show>",
    "<show><system><resources></resources></system></show>",
)


def launch(devices: int, workdir: Path) -> tuple[subprocess.Popen[bytes], list[dict[str, object]], float]:
    """Start the simulator; return the process, its inventory and the seconds until it was written."""
    inv = workdir / "inventory.json"
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "panos_sim", "--devices", str(devices), "--inventory", str(inv)],
                            cwd=ROOT, stdout=subprocess.DEVNULL)
    while not inv.exists():
        if proc.poll() is not None or time.monotonic() - start > 120:
            raise SystemExit("simulator failed to start")
        time.sleep(0.05)
    return proc, json.loads(inv.read_text())["devices"], time.monotonic() - start


async def drive(dev: dict[str, object], duration: float, period: float, lat: list[float], errors: list[str]) -> None:
    """Run collector cycles for one device until DURATION is over."""
    fp = aiohttp.Fingerprint(bytes.fromhex(str(dev["tls_fingerprint_sha256"])))
    conn = aiohttp.TCPConnector(limit=1, ssl=fp)
    url = f"https://{dev['host']}:{dev['port']}/api/"
    headers = {"X-PAN-KEY": str(dev["api_key"])}
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        await asyncio.sleep(random.uniform(0, period))
        end = time.monotonic() + duration
        while time.monotonic() < end:
            cycle = time.monotonic()
            for cmd in MIX:
                t0 = time.perf_counter()
                try:
                    async with http.post(url, data={"type": "op", "cmd": cmd}, headers=headers) as r:
                        await r.read()
                        if r.status != 200:
                            errors.append(str(r.status))
                            continue
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(type(exc).__name__)
                    continue
                lat.append(time.perf_counter() - t0)
            await asyncio.sleep(max(0.0, period - (time.monotonic() - cycle)))


async def run(devices: list[dict[str, object]], duration: float, period: float) -> dict[str, object]:
    """Drive every device and summarise the latencies."""
    lat: list[float] = []
    errors: list[str] = []
    start = time.monotonic()
    await asyncio.gather(*(drive(d, duration, period, lat, errors) for d in devices))
    lat.sort()
    return {
        "calls": len(lat),
        "errors": len(errors),
        "calls_per_s": round(len(lat) / (time.monotonic() - start), 1),
        "median_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
        "p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 1) if lat else None,
        "max_ms": round(lat[-1] * 1000, 1) if lat else None,
    }


def main() -> None:
    """Parse arguments, run the benchmark, print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--period", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, inventory, listen_s = launch(args.devices, Path(tmp))
        try:
            summary = asyncio.run(run(inventory, args.duration, args.period))
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    print(json.dumps({"devices": args.devices, "time_to_listen_s": round(listen_s, 1), **summary,
                      "sim_exit_code": code}, indent=1))


if __name__ == "__main__":
    main()
