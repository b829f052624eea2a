"""The data folder is private (0700, files 0600) however it was made: web and clock, new and old files."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import config
from app import create_app
from panfm.storage.samples import HISTORY_DB, SampleReader

ROOT = Path(__file__).resolve().parent.parent
INITIAL = "initial-password-1"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def open_modes(folder: Path) -> dict[str, str]:
    """Every entry of the folder (and the folder itself) that group or others may touch."""
    entries = [folder, *folder.iterdir()]
    return {p.name: f"{mode(p):04o}" for p in entries if mode(p) & 0o077}


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask of a careless shell or container (022), restored afterwards."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def loose_folder(tmp_path: Path, databases: tuple[str, ...]) -> Path:
    """A data folder made by hand, 0755, holding files of a previous run left at 0644."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    (data / config.SETTINGS_FILE).write_text('{"theme": "dark"}')
    (data / config.KEY_FILE).write_bytes(Fernet.generate_key())
    (data / config.SECRET_KEY_FILE).write_text("s" * 40)
    for name in databases:
        (data / name).write_bytes(b"")  # an empty file is an empty SQLite database
        (data / (name + "-wal")).write_bytes(b"")
    for path in data.iterdir():
        path.chmod(0o644)
    return data


def heartbeat(data: Path) -> float | None:
    try:
        with SampleReader.open(data / HISTORY_DB) as reader:
            stats = reader.clock_stats()
    except Exception:  # not created or not migrated yet
        return None
    return stats.get("heartbeat") if stats else None


def make_app(data: Path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(data), "admin_password": INITIAL})
    return create_app(settings)


def test_the_web_makes_a_loose_folder_and_its_old_files_private_and_warns_once(tmp_path, loose_umask, caplog):
    data = loose_folder(tmp_path, ("config.db", "web_sessions.db"))
    assert open_modes(data)  # the premise: everything is readable by others
    with caplog.at_level(logging.WARNING, logger="panfm"):
        app = make_app(data)
        make_app(data)  # a second worker starting on the same folder: nothing left to say
    client = app.test_client()
    assert client.post("/api/login", json={"username": "admin", "password": INITIAL}).status_code == 200
    assert open_modes(data) == {}
    assert mode(data) == 0o700
    assert mode(data / "config.db") == mode(data / config.KEY_FILE) == mode(data / config.SETTINGS_FILE) == 0o600
    warned = [r for r in caplog.records if "readable by group or others" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING, [r.getMessage() for r in warned]
    assert "0755" in warned[0].getMessage()


def test_the_web_creates_new_files_private_under_a_loose_umask(tmp_path, loose_umask, caplog):
    data = tmp_path / "fresh"
    with caplog.at_level(logging.WARNING, logger="panfm"):
        app = make_app(data)
    app.test_client().post("/api/login", json={"username": "admin", "password": INITIAL})
    names = {p.name for p in data.iterdir()}
    assert {"config.db", "web_sessions.db", config.KEY_FILE, config.SECRET_KEY_FILE} <= names
    assert open_modes(data) == {}
    assert not [r for r in caplog.records if "readable by group or others" in r.getMessage()]


def test_it_leaves_symlinks_and_private_files_alone(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)
    (data / "key").write_text("k")
    (data / "key").chmod(0o400)
    config.ensure_data_dir(data)
    assert mode(outside) == 0o644, "a symlink's target is not ours to change"
    assert mode(data / "key") == 0o400, "private files are never widened"


def test_the_clock_makes_a_loose_folder_private_and_creates_private_files(tmp_path):
    data = loose_folder(tmp_path, (HISTORY_DB,))  # the clock's own database
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
    env.update({"PANFM_DATA_DIR": str(data), "PANFM_REFRESH_INTERVAL": "5"})
    proc = subprocess.Popen([sys.executable, str(ROOT / "clock.py")], cwd=ROOT, env=env, umask=0o022,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 20
        while not heartbeat(data) and time.monotonic() < end:  # the first cycle has written
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "ERROR" not in out, out
    assert open_modes(data) == {}, out
    assert mode(data) == 0o700
    lines = [line for line in out.splitlines() if "readable by group or others" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], out
