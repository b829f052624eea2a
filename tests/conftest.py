"""Shared fixtures (a real simulator fleet, private fleets) and the CI guards.

CI guards: with `CI=true`, a test whose prerequisite is missing (Chromium, Playwright, curl,
the uPlot vendor build, root for a tmpfs, kernel support) fails naming it instead of being
skipped (`require` / `requires`), and a full run that collects fewer tests than
`tests/ci_floor.txt` fails the session: CI must not pass by running less.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

# Helpers shared by test modules (tests/helpers/) get pytest's assert messages, as the tests do.
pytest.register_assert_rewrite("helpers")

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0
CI_FLOOR = Path(__file__).with_name("ci_floor.txt")


# ---- CI guards -------------------------------------------------------------------------------


def under_ci() -> bool:
    """Tell whether this run is CI's (`CI=true`, as GitHub Actions, GitLab and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(condition: object, what: str) -> None:
    """Go on if CONDITION holds; else skip naming WHAT, or fail naming it under CI=true.

    The one way a test in this suite may skip: a missing prerequisite on a developer's machine
    is a skip, on CI it is a failure (a suite that skips its browser tests is not green).
    """
    if condition:
        return
    if under_ci():
        pytest.fail(f"missing prerequisite under CI=true: {what}", pytrace=False)
    pytest.skip(f"missing prerequisite: {what}")


def requires(condition: object, what: str) -> pytest.MarkDecorator:
    """The mark form of `require` for a test or a module's `pytestmark` (checked at setup)."""
    return pytest.mark.requires(bool(condition), what)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(condition, what): a prerequisite, see conftest.require")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        require(*mark.args)


_FLOOR_SHORT = pytest.StashKey[str]()


def ci_floor() -> int:
    """The number of tests a full run must collect (first number in tests/ci_floor.txt)."""
    words = [w for line in CI_FLOOR.read_text().splitlines() if not line.startswith("#") for w in line.split()]
    return int(words[0])


def _full_run(config: pytest.Config) -> bool:
    """Tell whether the whole suite was asked for: no -k, -m, --deselect, --lf, file or node id."""
    opt = config.option
    if any(getattr(opt, name, None) for name in ("keyword", "markexpr", "deselect", "lf", "stepwise")):
        return False
    base = config.rootpath if config.args_source == pytest.Config.ArgsSource.TESTPATHS else config.invocation_params.dir
    here = Path(__file__).resolve().parent
    for arg in config.args:
        path = (base / arg).resolve()
        if "::" in arg or not (path == here or path in here.parents):
            return False
    return True


def _check_floor(config: pytest.Config, collected: int) -> None:
    if not under_ci() or not _full_run(config) or _FLOOR_SHORT in config.stash:
        return
    floor = ci_floor()
    if collected < floor:
        config.stash[_FLOOR_SHORT] = (
            f"CI=true: {collected} tests collected, fewer than the floor of {floor} in {CI_FLOOR.name}"
            " (a module skipped at import, a lost parametrisation?). Lower the floor only on purpose."
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # an xdist worker: the controller checks
        _check_floor(session.config, len(session.items))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under pytest-xdist the controller collects nothing: check what each worker collected."""
    _check_floor(node.config, len(ids))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    short = terminalreporter.config.stash.get(_FLOOR_SHORT, None)
    if short:
        terminalreporter.write_sep("=", "collected below the CI floor", red=True)
        terminalreporter.write_line(short, red=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash.get(_FLOOR_SHORT, None) and session.exitstatus in (0, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# The simulator listens on loopback, which PANfm refuses to connect to unless allowed: every
# clock, web and client a test points at it allows this network (setting allowed_device_networks).
SIM_NETWORKS = "127.0.0.0/8"
SIM_ENV = {"PANFM_ALLOWED_DEVICE_NETWORKS": SIM_NETWORKS}


def _loopback():
    from panfm.models import AddressPolicy

    return AddressPolicy.of((SIM_NETWORKS,))


LOOPBACK = _loopback()


# ---- the simulator ---------------------------------------------------------------------------


def insecure_context() -> ssl.SSLContext:
    """Return a client context for the simulator's self-signed certificates (tests only)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SimFleet:
    """Handle on a running `python -m panos_sim` process and its inventory."""

    def __init__(self, proc: subprocess.Popen, inventory_path: Path, stdout_path: Path) -> None:
        self.proc = proc
        self.inventory_path = inventory_path
        self.stdout_path = stdout_path
        self.inventory: list[dict] = json.loads(inventory_path.read_text())["devices"]
        self.devices = self.inventory
        self._ctx = insecure_context()

    def entry(self, device: str | dict) -> dict:
        """Return the inventory entry for a device name or entry."""
        name = device["name"] if isinstance(device, dict) else device
        for e in self.inventory:
            if e["name"] == name:
                return e
        raise KeyError(name)

    def request(self, device: str | dict, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 15.0) -> tuple[int, str, dict, bytes]:
        """Send one HTTPS request to the device's own port; return (status, reason, headers, body)."""
        e = self.entry(device)
        return self._send(e["host"], e["port"], method, path, body, headers, timeout)

    def _send(self, host, port, method, path, body, headers, timeout):
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ctx)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.reason, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def _control(self, device: str | dict, method: str, path: str, body: bytes | None = None) -> dict:
        """Call a /_sim/ path for DEVICE; go through another device's port if its own refuses (down)."""
        name = self.entry(device)["name"]
        sep = "&" if "?" in path else "?"
        routed = f"{path}{sep}{urlencode({'device': name})}"
        candidates = [self.entry(name)] + [e for e in self.inventory if e["name"] != name]
        last: Exception | None = None
        for e in candidates:
            try:
                status, _, _, data = self._send(e["host"], e["port"], method, routed, body,
                                                {"Content-Type": "application/json"}, 10.0)
            except (ConnectionError, TimeoutError, OSError) as exc:
                last = exc
                continue
            if status != 200:
                raise AssertionError(f"{path} answered {status}: {data[:200]!r}")
            return json.loads(data)
        raise AssertionError(f"no simulator port answered {path}: {last}")

    def truth(self, device: str | dict, t1: float, t2: float) -> dict:
        """Return /_sim/truth for DEVICE over [t1, t2]."""
        return self._control(device, "GET", f"/_sim/truth?{urlencode({'from': repr(t1), 'to': repr(t2)})}")

    def fault(self, device: str | dict, mode: str, duration_s: float = 0, **extra) -> dict:
        """POST /_sim/fault for DEVICE (extra keys, e.g. latency_s, are passed through)."""
        name = self.entry(device)["name"]
        body = json.dumps({"mode": mode, "duration_s": duration_s, "device": name, **extra}).encode()
        return self._control(device, "POST", "/_sim/fault", body)

    def stats(self, device: str | dict | None = None) -> dict:
        """Return {name: stats} for every device (or just DEVICE)."""
        first = device if device is not None else self.inventory[0]
        path = "/_sim/stats" if device is not None else "/_sim/stats?all=1"
        return self._control(first, "GET", path)["devices"]

    def stop(self) -> int:
        """Stop the simulator with SIGTERM and return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def launch_sim(workdir: Path, devices: int = 4, models: str = "PA-440,PA-3220,PA-5450,PA-VM",
               faults: str | None = None, seed: int = 7, extra: list[str] | None = None) -> SimFleet:
    """Start `python -m panos_sim` and wait for its inventory (raises if it dies or takes > 60 s)."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / "inventory.json"
    out = workdir / "sim.out"
    cmd = [sys.executable, "-m", "panos_sim", "--devices", str(devices), "--models", models, "--seed", str(seed),
           "--inventory", str(inventory)]
    if faults:
        cmd += ["--faults", faults]
    cmd += extra or []
    with open(out, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + START_TIMEOUT_S
    while not inventory.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"panos_sim exited {proc.returncode}: {out.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError("panos_sim did not write its inventory within 60 s")
        time.sleep(0.05)
    return SimFleet(proc, inventory, out)


@contextlib.contextmanager
def start_sim(tmp_path: Path, devices: int = 2, models: str = "PA-440,PA-3220,PA-5450,PA-VM",
              faults: str | None = None, seed: int = 7, extra: list[str] | None = None):
    """Run a private fleet for one test (faults there disturb nobody) and stop it afterwards."""
    fleet = launch_sim(Path(tmp_path) / f"sim-{seed}-{devices}", devices, models, faults, seed, extra)
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture(autouse=True)
def _library_log_levels():
    """Give back the third-party loggers' levels after each test (create_app and logsetup set them)."""
    import panfm.ops.logsetup as logsetup

    names = ("apscheduler", *logsetup.LIBRARY_LOGGERS)
    before = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="session")
def sim_fleet(tmp_path_factory):
    """Return the session's shared fleet: 4 devices, one of each model, seed 7 (one per xdist worker)."""
    fleet = launch_sim(tmp_path_factory.mktemp("sim_fleet"), devices=4, seed=7)
    try:
        yield fleet
    finally:
        fleet.stop()


def device_for(entry, *, mode="pin", key=True, creds=False, **tls):
    """Build a DeviceConfig for one inventory entry (pinned to its fingerprint by default)."""
    from panfm.models import DeviceConfig, TlsConfig

    if mode == "pin" and "fingerprint_sha256" not in tls:
        tls["fingerprint_sha256"] = entry["tls_fingerprint_sha256"]
    return DeviceConfig(
        id=entry["name"],
        name=entry["name"],
        host=entry["host"],
        port=entry["port"],
        tls=TlsConfig(mode=mode, **tls),
        api_key=entry["api_key"] if key else None,
        username=entry["username"] if creds else None,
        password=entry["password"] if creds else None,
    )


@pytest.fixture(scope="module")
def private_fleet(tmp_path_factory):
    """A fleet of the test module's own: faults set there disturb no other module."""
    fleet = launch_sim(tmp_path_factory.mktemp("sim"), devices=2, seed=11)
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def receiver():
    """A JSON webhook receiver on loopback (helpers.alerts.Receiver), closed afterwards."""
    from helpers.alerts import Receiver

    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def clk(tmp_path):
    """The clock's real context and jobs over a temp data folder (helpers.alerts.Clock)."""
    from helpers.alerts import Clock

    c = Clock(tmp_path / "data")
    yield c
    c.close()


# ---- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of the session's own (helpers.postgres.PgServer; one per xdist worker)."""
    from helpers.postgres import PgServer, pg_bindir

    require(pg_bindir(), "PostgreSQL server binaries (apt-get install postgresql)")
    # Not under pytest's basetemp: another pytest session on the machine rotates old basetemps
    # away (it keeps 3), which would delete a running server's data folder. close() removes it.
    server = PgServer(Path(tempfile.mkdtemp(prefix="panfm-pg-")))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh, empty PostgreSQL database for this test alone."""
    return pg_server.fresh_database()


def pg_env(url: str) -> dict[str, str]:
    """The environment of a PANfm process on PostgreSQL: the URL and the keys every host shares.

    helpers.postgres holds the keys; imported here, not at the top: tests/test_ci_guards.py runs
    this conftest alone, in a folder without helpers/.
    """
    from helpers.postgres import pg_env as env

    return env(url)


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request, tmp_path):
    """Settings of one backend for the store conformance suite: SQLite files, or a fresh PostgreSQL database.

    The postgres case asks for `pg_url` only when it runs, so the sqlite case needs no server.
    """
    import config

    env = {"PANFM_DATA_DIR": str(tmp_path / "data")}
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        env.update(pg_env(request.getfixturevalue("pg_url")))
    config.ensure_data_dir(tmp_path / "data")
    return config.load_settings(env=env)


@pytest.fixture
def stores(store_settings):
    """The stores of `store_settings` as `open_stores` builds them (closed after the test)."""
    import throughput_storage

    opened = throughput_storage.open_stores(store_settings)
    yield opened
    opened.close()
