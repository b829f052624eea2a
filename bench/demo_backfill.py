"""Time the demo's 7-day backfill: the demo's simulator (3 firewalls, seed 1), a new data folder.

Usage: .venv/bin/python bench/demo_backfill.py [--runs 3]
Starts `python -m panos_sim` as `make demo` does, registers its devices, then times
`demo_history.backfill` into a fresh temporary folder per run. Prints a JSON summary with the
1-minute load average before and after (docs/benchmarks.md, "Demo backfill").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import panfm.ops.demo_history as demo_history  # noqa: E402
from panfm.ops import register_demo_devices  # noqa: E402
from panfm.ops.demo import SIM_MODELS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "inventory.json"
        sim = subprocess.Popen(
            [sys.executable, "-m", "panos_sim", "--devices", "3", "--models", SIM_MODELS, "--seed", "1",
             "--inventory", str(inventory)], cwd=ROOT, stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not inventory.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            load_before = os.getloadavg()[0]
            runs = []
            for i in range(args.runs):
                data_dir = Path(tmp) / f"data{i}"
                register_demo_devices(data_dir, inventory)
                # The step `make demo` uses with the default 30 s refresh interval.
                step = max(30.0, demo_history.MIN_STEP_S)
                done = demo_history.backfill(data_dir, json.loads(inventory.read_text())["devices"], time.time(), step)
                assert done is not None
                runs.append({"seconds": round(done.seconds, 2), "samples": done.samples,
                             "interface_samples": done.interface_samples, "incidents": done.incidents})
            print(json.dumps({"load_before": load_before, "load_after": os.getloadavg()[0], "runs": runs}, indent=1))
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
