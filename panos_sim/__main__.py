"""Command line: python -m panos_sim --devices N --inventory PATH [options]."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

from panos_sim.fleet import Fleet, parse_faults, write_inventory
from panos_sim.platforms import PLATFORMS


def build_parser() -> argparse.ArgumentParser:
    """Return the CLI parser (the contract in docs/simulator.md)."""
    p = argparse.ArgumentParser(prog="python -m panos_sim", description="Simulate a fleet of PAN-OS firewalls.")
    p.add_argument("--devices", type=int, required=True, help="number of virtual firewalls")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--base-port", type=int, default=0, help="first port (0 = ephemeral ports)")
    p.add_argument("--seed", type=int, default=1, help="seed of the traffic model and fault choice")
    p.add_argument("--models", default="PA-440,PA-3220,PA-5450,PA-VM", help="comma-separated models, used in turn")
    p.add_argument("--faults", default=None, help="e.g. 'down:2%%,blackhole:1%%,slow:5%%'")
    p.add_argument("--inventory", required=True, help="JSON file written atomically once every device listens")
    return p


async def run(args: argparse.Namespace, models: list[str]) -> int:
    """Start the fleet, write the inventory, serve until SIGTERM/SIGINT."""
    started = time.monotonic()
    faults = parse_faults(args.faults, args.devices, args.seed)
    fleet = Fleet(args.devices, args.host, args.base_port, args.seed, models)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await fleet.start()
        for idx, mode in sorted(faults.items()):
            await fleet.apply_fault(fleet.devices[idx], mode, 0.0)
        doc = fleet.inventory()
        write_inventory(args.inventory, doc)
        elapsed = time.monotonic() - started
        print(f"panos_sim: {len(doc['devices'])} devices listening on {args.host} after {elapsed:.1f} s; "
              f"inventory {args.inventory}", flush=True)
        for row in doc["devices"][:20]:
            fault = next((m for i, m in faults.items() if fleet.devices[i].name == row["name"]), "")
            print(f"  {row['name']:<8} {row['model']:<8} {row['sw_version']:<11} {row['serial']} "
                  f"https://{row['host']}:{row['port']}/api/ {fault}", flush=True)
        if len(doc["devices"]) > 20:
            print(f"  ... and {len(doc['devices']) - 20} more (see the inventory)", flush=True)
        await stop.wait()
    finally:
        await fleet.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the fleet."""
    parser = build_parser()
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in PLATFORMS]
    if args.devices < 1 or not models or unknown:
        parser.error(f"need --devices >= 1 and models among {', '.join(PLATFORMS)} (got {', '.join(unknown)})")
    try:
        parse_faults(args.faults, args.devices, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    return asyncio.run(run(args, models))


if __name__ == "__main__":
    sys.exit(main())
