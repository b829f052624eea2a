"""Run PANfm against simulated firewalls (`make demo`), or register a simulator's inventory.

    python -m panfm.ops.demo                       # simulator + clock + web, Ctrl-C stops everything
    python -m panfm.ops.demo register --inventory PATH [--host HOST] [--no-history]
                                                   # add/refresh the simulated devices (+ their week)

A new data folder starts with seven days of history computed from the simulator's traffic model
(`demo_history`), marked as demo data in the pages. Running it again reuses the data folder:
devices are refreshed (the simulator makes new credentials every run), history and settings stay,
and nothing is backfilled twice.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess  # nosec B404 (starts the simulator and honcho with fixed argv)
import sys
import time
from pathlib import Path

import config
import panfm.ops.demo_history as demo_history
from panfm.models import DeviceConfig, TlsConfig
from throughput_storage import DeviceStore

ROOT = Path(__file__).resolve().parents[2]  # the checkout: panos_sim, Procfile
SIM_MODELS = "PA-440,PA-3220,PA-5450"
DEMO_UPLINK = "ethernet1/1"


def register(data_dir: Path, inventory: Path, host: str | None = None) -> list[str]:
    """Add or refresh the inventory's devices, pinned to their certificate fingerprints."""
    config.ensure_data_dir(data_dir)
    store = DeviceStore(data_dir, config.SecretBox.for_data_dir(data_dir), clock=time.time)
    existing = {d.name: d for d in store.list()}
    names = []
    for dev in json.loads(inventory.read_text())["devices"]:
        record = DeviceConfig(
            id=existing[dev["name"]].id if dev["name"] in existing else "",
            name=dev["name"],
            host=host or dev["host"],
            port=int(dev["port"]),
            api_key=dev["api_key"],
            username=dev["username"],
            password=dev["password"],
            tls=TlsConfig(mode="pin", fingerprint_sha256=dev["tls_fingerprint_sha256"]),
            interfaces=existing[dev["name"]].interfaces if dev["name"] in existing else (),
            enabled=True,
            # The simulator's ethernet1/1 faces the `untrust` zone: the demo marks it as the uplink.
            uplinks=existing[dev["name"]].uplinks if dev["name"] in existing else (DEMO_UPLINK,),
        )
        if record.id:
            store.update(record)
        else:
            store.add(record)
        names.append(record.name)
    return names


def _wait_for(path: Path, since: float, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime >= since:
            return
        if proc.poll() is not None:
            sys.exit(f"demo: the simulator exited with code {proc.returncode}")
        time.sleep(0.2)
    sys.exit("demo: the simulator did not write its inventory in time")


def _admin_password(data_dir: Path) -> str:
    """The admin password to announce: PANFM_ADMIN_PASSWORD, else one kept in the demo folder."""
    if os.environ.get("PANFM_ADMIN_PASSWORD"):
        return os.environ["PANFM_ADMIN_PASSWORD"]
    raw = config.create_once(data_dir / "demo-admin-password", lambda: secrets.token_urlsafe(12).encode())
    return raw.decode().strip()


def run(data_dir: Path, port: int) -> int:
    """Start the simulator, register it, backfill a new folder, run web + clock through honcho until Ctrl-C."""
    config.private_umask()  # the databases the backfill creates are as private as the clock's
    config.ensure_data_dir(data_dir)
    # SIGTERM/SIGHUP (a closed terminal, a supervisor) stop everything like Ctrl-C does: the
    # children run in their own sessions and would otherwise outlive this process. SIGINT too,
    # explicitly: started as a background job (`make demo &` in a script) it inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt for it.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    inventory = data_dir / "sim-inventory.json"
    password = _admin_password(data_dir)
    started = time.time()
    sim = subprocess.Popen(  # noqa: S603  # nosec B603 (fixed argv)
        [sys.executable, "-m", "panos_sim", "--devices", "3", "--models", SIM_MODELS, "--seed", "1",
         "--base-port", "0", "--inventory", str(inventory)],
        cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
    )
    procs: list[subprocess.Popen[bytes]] = [sim]
    try:
        _wait_for(inventory, started - 1, sim)
        names = register(data_dir, inventory)
        _backfill(data_dir, inventory, sim)
        bindir = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "PANFM_DATA_DIR": str(data_dir),
            "PANFM_PORT": str(port),
            "PANFM_BIND_HOST": os.environ.get("PANFM_BIND_HOST", "127.0.0.1"),
            "PANFM_ADMIN_PASSWORD": password,
            # The simulator listens on loopback, which PANfm refuses unless this setting allows it.
            "PANFM_ALLOWED_DEVICE_NETWORKS": os.environ.get("PANFM_ALLOWED_DEVICE_NETWORKS", "127.0.0.0/8"),
        }
        honcho = subprocess.Popen(  # noqa: S603  # nosec B603 (fixed argv)
            [str(Path(sys.executable).parent / "honcho"), "start", "-f", str(ROOT / "Procfile"), "-d", str(ROOT)],
            cwd=ROOT, env=env, start_new_session=True,
        )
        procs.append(honcho)
        print(f"\nPANfm demo: simulated firewalls {', '.join(names)}", flush=True)
        print(f"  open   http://localhost:{port}", flush=True)
        print(f"  login  admin / {password}   (you will be asked to change it on first login)", flush=True)
        print("  stop   Ctrl-C\n", flush=True)
        return honcho.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(procs)


def _backfill(
    data_dir: Path, inventory: Path, sim: subprocess.Popen[bytes] | None = None, host: str | None = None
) -> None:
    """Give a new demo folder its week of history (demo_history); an existing one keeps what it has."""
    if demo_history.marker(data_dir) is not None or demo_history.has_samples(data_dir):
        print("demo: this folder has its history already; the clock continues it", flush=True)
        return
    refresh = config.load_settings(env={**os.environ, "PANFM_DATA_DIR": str(data_dir)}).refresh_interval
    entries = [{**e, "host": host or e["host"]} for e in json.loads(inventory.read_text())["devices"]]
    print(f"demo: writing {demo_history.DAYS} days of simulated history ...", flush=True)
    try:
        done = demo_history.backfill(data_dir, entries, time.time(), max(refresh, demo_history.MIN_STEP_S))
    except demo_history.BackfillError as exc:
        if sim is not None and sim.poll() is not None:
            sys.exit(f"demo: the simulator exited with code {sim.returncode}")
        print(f"demo: no history backfilled ({exc}); the charts fill as the clock polls", flush=True)
        return
    if done is not None:
        print(f"demo: {done.samples} samples of {len(done.devices)} firewalls written in {done.seconds:.1f} s",
              flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop every started process group: SIGTERM, then SIGKILL after 15 s."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $PANFM_DATA_DIR or demo-data")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PANFM_PORT", "3000")))
    sub = parser.add_subparsers(dest="command")
    reg = sub.add_parser("register", help="add or refresh a simulator inventory's devices")
    reg.add_argument("--inventory", type=Path, required=True)
    reg.add_argument("--host", default=None, help="address to use instead of the inventory's (compose: simulator)")
    reg.add_argument("--no-history", action="store_true", help="register only: no week of simulated history")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or Path(os.environ.get("PANFM_DATA_DIR", "demo-data"))
    try:
        if args.command == "register":
            deadline = time.monotonic() + 120
            while not args.inventory.exists() and time.monotonic() < deadline:
                time.sleep(1)  # compose starts the simulator alongside
            print("registered: " + ", ".join(register(data_dir, args.inventory, args.host)))
            if not args.no_history:
                _backfill(data_dir, args.inventory, host=args.host)
            return 0
        return run(data_dir, args.port)
    except config.ConfigError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
