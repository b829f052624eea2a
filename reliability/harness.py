"""Shared parts of the reliability scenarios: processes, the simulator, the web, the sample database.

Every scenario starts real processes (`python -m panos_sim`, `python clock.py`, gunicorn) in a
temporary folder and stops every one of them in `Procs.close()`, whatever happened.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests

import config
from panfm.collector.metrics import is_physical
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import DeviceStore

ROOT = Path(__file__).resolve().parent.parent
# Per run and per process: a web and its clients must be started by the same process.
ADMIN_PASSWORD = "initial-" + secrets.token_urlsafe(12)
NEW_PASSWORD = "changed-" + secrets.token_urlsafe(12)
T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port that was free a moment ago (the kernel's ephemeral choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], T | None], timeout: float, step: float = 0.05, what: str = "condition") -> T:
    """Poll `pred` until it returns a truthy value; raise TimeoutError naming `what`."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(step)


def panfm_env(data_dir: Path, interval: int, port: int | None = None, extra: dict[str, str] | None = None
              ) -> dict[str, str]:
    """Environment for a clock or web of this run: our data folder, no PANFM_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
    env.update({
        "PANFM_DATA_DIR": str(data_dir),
        "PANFM_REFRESH_INTERVAL": str(interval),
        "PANFM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PANFM_BIND_HOST": "127.0.0.1",
        "PANFM_ALLOWED_DEVICE_NETWORKS": "127.0.0.0/8",  # the simulator listens on loopback
        "PYTHONUNBUFFERED": "1",
    })
    if port is not None:
        env["PANFM_PORT"] = str(port)
    env.update(extra or {})
    return env


class Procs:
    """The child processes of one scenario; `close()` stops all of them (TERM, then KILL)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start CMD from the checkout with output appended to WORKDIR/NAME.log."""
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        self.logs[name] = log
        return proc

    def start_clock(self, data_dir: Path, interval: int, name: str = "clock", **extra: str) -> subprocess.Popen[bytes]:
        """Start `python clock.py` on DATA_DIR every INTERVAL seconds."""
        return self.start(name, [sys.executable, str(ROOT / "clock.py")], panfm_env(data_dir, interval, extra=extra))

    def dead(self) -> dict[str, int]:
        """Name -> exit code of every process that has exited."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def deaths(self) -> dict[str, str]:
        """Name -> exit code and last log lines of every process that has exited."""
        return {n: f"exit {rc}: " + " | ".join(self.log_text(n).strip().splitlines()[-4:])
                for n, rc in self.dead().items()}

    def log_text(self, name: str) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self, name: str, timeout: float = 15.0) -> int | None:
        """Stop one process: SIGCONT (it may be stopped), SIGTERM, then SIGKILL after TIMEOUT."""
        proc = self.procs.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    break
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def close(self) -> None:
        """Stop every process, web and clock before the simulator."""
        for name in sorted(self.procs, key=lambda n: n.startswith("sim")):
            self.stop(name)

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# ---- the simulator ---------------------------------------------------------------------


def _fingerprint(der: bytes | None) -> str:
    return hashlib.sha256(der or b"").hexdigest()


class Sim:
    """Control of a running simulator through one device's port, pinned to its certificate."""

    def __init__(self, inventory: list[dict[str, Any]], control: str | None = None) -> None:
        self.inventory = inventory
        self.by_name = {e["name"]: e for e in inventory}
        self.control = self.by_name[control or inventory[0]["name"]]
        self._conn: http.client.HTTPSConnection | None = None
        # The simulator's certificates are self-signed: trust exactly the control device's
        # fingerprint from the inventory (pinning), checked after every connect.
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._ctx.check_hostname = False
        self._ctx.verify_mode = ssl.CERT_NONE

    @classmethod
    def start(cls, procs: Procs, devices: int, models: str = "PA-440,PA-3220,PA-5450,PA-VM", seed: int = 7,
              faults: str | None = None) -> Sim:
        """Run `python -m panos_sim` as process "sim" and wait for its inventory."""
        inventory = procs.workdir / "inventory.json"
        cmd = [sys.executable, "-m", "panos_sim", "--devices", str(devices), "--models", models,
               "--seed", str(seed), "--inventory", str(inventory)]
        if faults:
            cmd += ["--faults", faults]
        proc = procs.start("sim", cmd, {**os.environ, "PYTHONUNBUFFERED": "1"})

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"panos_sim exited {proc.returncode}: {procs.log_text('sim')[-1500:]}")
            return inventory.exists()

        wait_for(ready, 60 + devices * 0.1, what="simulator inventory")
        return cls(json.loads(inventory.read_text())["devices"])

    def _connect(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            conn = http.client.HTTPSConnection(self.control["host"], self.control["port"], timeout=15,
                                               context=self._ctx)
            conn.connect()
            assert conn.sock is not None
            seen = _fingerprint(conn.sock.getpeercert(binary_form=True))
            if seen != self.control["tls_fingerprint_sha256"]:
                conn.close()
                raise ssl.SSLError(f"control device certificate {seen[:16]}... is not the pinned one")
            self._conn = conn
        return self._conn

    def call(self, method: str, path: str, device: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a /_sim/ path for DEVICE through the control device (keep-alive, one retry)."""
        sep = "&" if "?" in path else "?"
        routed = f"{path}{sep}{urlencode({'device': device})}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            try:
                conn = self._connect()
                conn.request(method, routed, body=data, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"{path} for {device} answered {resp.status}: {raw[:200]!r}")
            doc: dict[str, Any] = json.loads(raw)
            return doc
        raise AssertionError("unreachable")

    def truth(self, device: str, t1: float, t2: float) -> dict[str, Any]:
        """Exact counter increase of DEVICE over [t1, t2] (epoch seconds)."""
        return self.call("GET", f"/_sim/truth?{urlencode({'from': repr(t1), 'to': repr(t2)})}", device)

    def fault(self, device: str, mode: str, duration_s: float = 0, **extra: Any) -> dict[str, Any]:
        """Inject fault MODE into DEVICE for DURATION_S seconds (0: until changed)."""
        return self.call("POST", "/_sim/fault", device, {"mode": mode, "duration_s": duration_s, "device": device,
                                                         **extra})

    def truth_mbps(self, device: str, t1: float, t2: float) -> tuple[float, float]:
        """(inbound, outbound) Mb/s over [t1, t2] summed over the physical ports, as the clock counts."""
        doc = self.truth(device, t1, t2)["interfaces"]
        ports = [n for n in doc if is_physical(n)]
        dt = t2 - t1
        return (sum(doc[n]["in_bytes"] for n in ports) * 8 / dt / 1e6,
                sum(doc[n]["out_bytes"] for n in ports) * 8 / dt / 1e6)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def register(data_dir: Path, entries: Iterable[dict[str, Any]], auth: Callable[[str], str] | None = None
             ) -> dict[str, str]:
    """Add simulator devices to config.db, pinned; AUTH(name) picks "key", "password" or "both"."""
    config.ensure_data_dir(data_dir)
    store = DeviceStore(data_dir, config.SecretBox.for_data_dir(data_dir), clock=time.time)
    ids = {}
    for e in entries:
        how = auth(e["name"]) if auth else "key"
        ids[e["name"]] = store.add(DeviceConfig(
            id="", name=e["name"], host=e["host"], port=int(e["port"]),
            api_key=e["api_key"] if how in ("key", "both") else None,
            username=e["username"] if how in ("password", "both") else None,
            password=e["password"] if how in ("password", "both") else None,
            tls=TlsConfig("pin", fingerprint_sha256=e["tls_fingerprint_sha256"]),
        ))
    return ids


def whole_windows(collector: Any) -> None:
    """Make every device's next inventory count a whole 300 s log window, as the clock's next run does.

    A device's window starts the second after the last one it counted (`slow.window_start`): a
    bench that gathers the fleet again seconds later would count a few seconds of logs, and read
    a fraction of the entries a real inventory reads 300 s after the last.
    """
    with collector._lock:  # a bench resets the collector's memory of each device
        for dev in collector._devices.values():
            dev.window_end = None


# ---- the web ---------------------------------------------------------------------------


def clock_context(procs: Procs, devices: int, data_dir: Path, refresh_interval: int = 10,
                  overrides: dict[str, Any] | None = None) -> Any:
    """A simulated fleet of `devices` registered in `data_dir`, and the clock's context on it, in this process.

    What the in-process benches (bench/profile_clock.py, bench/inventory_parts.py) run the clock's
    jobs on: `clock.build_context` with the settings fixed (no settings file read per job), and
    `overrides` (setting name -> value) on top.
    """
    import clock  # here: the harness also serves scenarios that only start processes
    import config

    sim = Sim.start(procs, devices, seed=1)
    register(data_dir, sim.inventory)
    settings = config.load_settings(env={}, overrides={
        "data_dir": str(data_dir), "allowed_device_networks": "127.0.0.0/8", "refresh_interval": refresh_interval,
        **(overrides or {})})
    ctx = clock.build_context(settings)
    ctx.load_settings = lambda: settings
    return ctx


def run_clock_here(procs: Procs, work: Path, devices: int, interval: int, faults: str | None,
                   watch: Callable[[Callable[[], None]], None], before: Callable[[], None] | None = None) -> int:
    """`clock.main()` in this process (its scheduler, jobs and threads, as `python clock.py` runs them).

    What the in-process benches that watch a whole clock run on (bench/clock_memory.py,
    bench/gc_pauses.py): the simulator's `devices` registered in `work`/data, the clock's log
    in `work`/clock.log, `before()` (tracemalloc, patches) right before `clock.main`, and
    `watch(stop)` in a thread beside it; `stop()` closes the simulator and stops the clock with
    SIGTERM, as an operator would. Returns the clock's exit code.
    """
    sim = Sim.start(procs, devices, seed=1, faults=faults)
    data = work / "data"
    register(data, sim.inventory)
    env = panfm_env(data, interval)
    env["PANFM_LOG_FILE"] = str(work / "clock.log")
    os.environ.update({k: v for k, v in env.items() if k.startswith("PANFM_")})
    import clock  # here: the harness also serves scenarios that only start processes

    def stop() -> None:
        procs.close()  # the simulator: the clock's exit leaves without unwinding the caller's frame
        os.kill(os.getpid(), signal.SIGTERM)

    if before is not None:
        before()
    threading.Thread(target=watch, args=(stop,), daemon=True).start()
    return int(clock.main([]))


@dataclass
class Web:
    """A gunicorn web process on a free port and logged-in sessions against it."""

    base: str
    sessions: list[requests.Session] = field(default_factory=list)

    @classmethod
    def start(cls, procs: Procs, data_dir: Path, interval: int, workers: int = 2,
              extra: dict[str, str] | None = None) -> Web:
        """Run gunicorn (the production command) as process "web" and wait for /api/version."""
        port = free_port()
        env = panfm_env(data_dir, interval, port, {"PANFM_WEB_WORKERS": str(workers), **(extra or {})})
        proc = procs.start("web", [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
                                   "app:create_app()"], env)
        web = cls(f"http://127.0.0.1:{port}")

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {proc.returncode}: {procs.log_text('web')[-1500:]}")
            try:
                return requests.get(f"{web.base}/api/version", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, 60, step=0.2, what="web /api/version")
        return web

    def login(self) -> requests.Session:
        """Log in as admin (changing the initial password the first time); return the session."""
        s = requests.Session()
        self.sessions.append(s)
        for password in (NEW_PASSWORD, ADMIN_PASSWORD):
            r = s.post(f"{self.base}/api/login", json={"username": "admin", "password": password}, timeout=30)
            if r.status_code == 200:
                break
        r.raise_for_status()
        doc = r.json()
        s.headers["X-CSRFToken"] = doc["csrf_token"]
        if doc["must_change_password"]:
            s.post(f"{self.base}/api/change-password", timeout=30,
                   json={"old_password": ADMIN_PASSWORD, "new_password": NEW_PASSWORD}).raise_for_status()
        return s

    def get(self, session: requests.Session | None, path: str) -> tuple[int, Any]:
        """GET PATH (with SESSION or anonymously); return (status, JSON or None)."""
        r = (session or requests).get(f"{self.base}{path}", timeout=30)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, None

    def close(self) -> None:
        for s in self.sessions:
            s.close()


def scenario_parser(doc: str | None) -> argparse.ArgumentParser:
    """Return an argument parser holding the --out and --keep options every scenario takes."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    p.add_argument("--keep", type=Path, help="keep the run's folder (logs, data) under this folder")
    return p


def scenario_dir(name: str, keep: Path | None) -> Path:
    """A fresh work folder for one run (under KEEP when given)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"panfm-{name}-", dir=keep))


def finish(name: str, workdir: Path, result: dict[str, Any], out: Path | None, keep: Path | None) -> int:
    """Report RESULT; remove WORKDIR unless it failed or KEEP was asked for (then say where it is)."""
    if result.get("failures") or keep is not None:
        result["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return report(name, result, out)


def report(name: str, result: dict[str, Any], out: Path | None) -> int:
    """Print RESULT as JSON (and write it to OUT); exit code 0 when it has no failures."""
    result = {"scenario": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 1 if result.get("failures") else 0
