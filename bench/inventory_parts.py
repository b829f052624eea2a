"""Where one inventory's CPU goes, without a profiler: the real job, a few functions timed by thread CPU.

    .venv/bin/python bench/inventory_parts.py [--devices 50] [--rounds 3] [--log-cap N]

Starts `python -m panos_sim`, registers its devices in a fresh data folder, builds the clock's
context (`clock.build_context`) and runs the whole fleet's inventory (`collect_slow_once`) once to
warm up, then `--rounds` times measured. A handful of functions are wrapped to add up the CPU
time of the thread that runs them (`time.thread_time`, the outermost call only when they nest):
the figures are inclusive (the XML parse is inside `_call`, `_call` inside `gather_inventory`).
A profiler (yappi, `bench/profile_clock.py`) inflates small calls several times over; this
costs one wrapper per call of the functions listed, a few dozen per inventory. The process
CPU per inventory it prints is comparable with `make bench-cpu`'s "CPU per inventory".
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import clock  # noqa: E402
import panfm.ops as ops  # noqa: E402
from reliability.harness import Procs, clock_context, whole_windows  # noqa: E402

# (module, attribute path): what is timed.
PARTS = (
    ("panfm.collector.slow", "gather_inventory"),  # the firewall's side: every call and its parsing
    ("panfm.xmlapi.transport", "PanosTransport._call"),  # one API call: request, answer, envelope
    ("panfm.xmlapi.http1", "Connection.exchange"),  # its HTTP/1.1 exchange over TLS
    ("panfm.xmlapi.parse_core", "_fromstring"),  # the XML parse (the standard library's C parser)
    ("panfm.xmlapi.parsers", "parse_log_job"),  # log entries read into dicts of the kept fields
    ("panfm.collector.logs", "trim"),  # the Logs page's fields
    ("panfm.collector.security", "summarize"),
    ("panfm.ops.clock_jobs", "_store_inventory"),  # the document stored, network.db recorded
    ("panfm.ops.clock_jobs", "record_network"),
    ("panfm.storage.network_store", "NetworkStore.record_logs"),
)
TOTALS: collections.defaultdict[str, float] = collections.defaultdict(float)
CALLS: collections.Counter[str] = collections.Counter()
PARSED = [0, 0]  # bytes given to the XML parser, and of those the largest answer's per inventory round
_DEPTH = threading.local()


def _timed(label: str, func: Any) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        depth = getattr(_DEPTH, label, 0)
        if label.endswith("_fromstring") and args:
            PARSED[0] += len(args[0])
            PARSED[1] = max(PARSED[1], len(args[0]))
        setattr(_DEPTH, label, depth + 1)
        t0 = time.thread_time()
        try:
            return func(*args, **kwargs)
        finally:
            setattr(_DEPTH, label, depth)
            if depth == 0:
                TOTALS[label] += time.thread_time() - t0
                CALLS[label] += 1

    return wrapper


def install() -> None:
    """Wrap every part where it is defined, and where a module imported it by name."""
    wrapped: dict[str, Any] = {}
    for module_name, path in PARTS:
        owner: Any = importlib.import_module(module_name)
        *outer, attr = path.split(".")
        for name in outer:
            owner = getattr(owner, name)
        label = f"{module_name.rsplit('.', 1)[-1]}.{path}"
        new = _timed(label, getattr(owner, attr))
        setattr(owner, attr, new)
        if not outer:
            wrapped[attr] = new
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("panfm."):
            for attr, new in wrapped.items():
                if getattr(module, attr, None) is not None and getattr(module, attr) is not new \
                        and getattr(getattr(module, attr), "__wrapped__", None) is None \
                        and getattr(getattr(module, attr), "__name__", None) == attr:
                    setattr(module, attr, new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log-cap", type=int, default=None, help="the setting log_fetch_cap (default: its default, 50)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inventory-parts-"))
    data = work / "data"
    with Procs(work) as procs:
        ctx = clock_context(procs, args.devices, data,
                            overrides={} if args.log_cap is None else {"log_fetch_cap": args.log_cap})
        install()
        clock.collect_once(ctx)  # warm-up: keys, baselines, the first inventory
        ops.collect_slow_once(ctx)
        TOTALS.clear()
        CALLS.clear()
        PARSED[:] = [0, 0]
        t0 = time.process_time()
        done = 0
        for _ in range(args.rounds):
            whole_windows(ctx.collector)  # each round counts 300 s of logs, as the clock's runs 300 s apart do
            done += ops.collect_slow_once(ctx)
        cpu = time.process_time() - t0
        ctx.collector.close()
        ctx.store.close()
    n = max(1, done)
    print(f"{done} inventories of {args.devices} firewalls: process CPU {1000 * cpu / n:.2f} ms per inventory; "
          f"XML parsed {PARSED[0] / n / 1000:.0f} kB per inventory, largest answer {PARSED[1] / 1000:.0f} kB")
    for label, seconds in sorted(TOTALS.items(), key=lambda kv: -kv[1]):
        print(f"{1000 * seconds / max(1, done):7.2f} ms  {CALLS[label] / max(1, done):5.1f} calls  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
