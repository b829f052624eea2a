"""One firewall's inventory answers recorded from the simulator, replayed in one thread without the network.

    .venv/bin/python bench/inventory_replay.py [--log-cap 50] [--rounds 100] [--profile]

Starts `python -m panos_sim` with one device, runs one inventory (`gather_inventory`) against it
to warm up and a second one recording every API answer, then replays those answers (the client's
`_call` returns them in order; no socket, no TLS, no job waits) `--rounds` times in this thread:
each round parses every answer, reads the log entries, trims them and stores the document
(`SampleStore.write_inventory`), as the clock does. Prints the answers' sizes, the largest ones'
element counts and parse times, and the process CPU per inventory: the floor of the inventory's
parse and Python work on this machine, without the network, other threads or the simulator's load
(which `make bench-cpu` includes). `--profile` adds cProfile's top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
import xml.etree.ElementTree as ET  # nosec B405 (parses the simulator's own answers, to count elements)
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import config  # noqa: E402
import panfm.collector.jobs as jobs  # noqa: E402
from panfm.collector.slow import gather_inventory  # noqa: E402
from panfm.models import AddressPolicy  # noqa: E402
from panfm.xmlapi import transport  # noqa: E402
from panfm.xmlapi.parse_core import parse_xml  # noqa: E402
from reliability.harness import Procs, Sim, register  # noqa: E402
from throughput_collector import panos_client_factory  # noqa: E402
from throughput_storage import DeviceStore, SampleStore  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log-cap", type=int, default=50, help="the setting log_fetch_cap (default: its default, 50)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inventory-replay-"))
    answers: list[bytes] = []
    real_call = transport.PanosTransport._call

    def recording(self: Any, form: dict[str, str], end: float) -> bytes:
        body = real_call(self, form, end)
        answers.append(body)
        return body

    def inventory(client: Any) -> dict[str, Any]:
        now = time.time()
        return gather_inventory(client, now=now, window_s=300, deadline=time.monotonic() + 60,
                                log_cap=args.log_cap, acc_last=now)[1]

    with Procs(work) as procs:
        sim = Sim.start(procs, 1, seed=1)
        data = work / "data"
        register(data, sim.inventory)
        settings = config.load_settings(env={}, overrides={"data_dir": str(data),
                                                           "allowed_device_networks": "127.0.0.0/8"})
        device = DeviceStore(data, config.SecretBox.for_data_dir(data), clock=time.time).list()[0]
        client = panos_client_factory(device, 10.0, lambda key: None,
                                      policy=AddressPolicy.of(settings.allowed_device_networks))
        inventory(client)
        transport.PanosTransport._call = recording  # type: ignore[method-assign]
        inventory(client)
        transport.PanosTransport._call = real_call  # type: ignore[method-assign]
    at = [0]

    def replay(self: Any, form: dict[str, str], end: float) -> bytes:
        body = answers[at[0] % len(answers)]
        at[0] += 1
        return body

    transport.PanosTransport._call = replay  # type: ignore[method-assign]
    jobs.JOB_WAIT_S = 0.0  # the answers are in: no wait before a job's read
    store = SampleStore.open(work / "history.db")

    def one() -> None:
        at[0] = 0
        store.write_inventory(device.id, time.time(), inventory(client))

    total_kb = sum(map(len, answers)) / 1000
    print(f"{len(answers)} answers, {total_kb:.0f} kB per inventory (log_fetch_cap {args.log_cap})")
    for body in sorted(answers, key=len)[-3:]:
        elements = sum(1 for _ in ET.fromstring(body).iter())  # nosec B314
        t0 = time.process_time()
        for _ in range(20):
            parse_xml(bytes(body))  # a fresh object: the one-entry cache must not answer
        print(f"  {len(body) / 1000:6.1f} kB, {elements:6d} elements: parsed in "
              f"{1000 * (time.process_time() - t0) / 20:.2f} ms")
    for _ in range(5):
        one()
    t0 = time.process_time()
    for _ in range(args.rounds):
        one()
    print(f"replayed: {1000 * (time.process_time() - t0) / args.rounds:.2f} ms CPU per inventory "
          "(parse, entries, trim, document stored), one thread, no network")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.rounds):
            one()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
