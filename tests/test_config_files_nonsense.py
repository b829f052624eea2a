"""Settings and data files edited by hand into nonsense: refuse to start naming the file, or keep the last good.

Either way the user's file is never overwritten (its bytes are identical afterwards).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import config
from app import create_app

ROOT = Path(__file__).resolve().parent.parent
INITIAL = "initial-password-1"
NEW = "a-much-better-password"

SETTINGS_NONSENSE = {
    "wrong-type": (b'{"refresh_interval": "often"}', "refresh_interval"),
    "out-of-range": (b'{"refresh_interval": 0}', "refresh_interval"),
    "unknown-key": (b'{"refresh_intervall": 30}', "refresh_intervall"),
    "not-settable-here": (b'{"admin_password": "hunter2hunter2"}', "admin_password"),
    "not-json": (b"refresh_interval = 30\n", "not valid JSON"),
    "binary": (bytes(range(256)) * 4, "settings.json"),
    "empty": (b"", "not valid JSON"),
    "array": (b"[1, 2, 3]", "JSON object"),
    "huge": (b'{"base_url": "' + b"x" * (8 * 1024 * 1024) + b'", "theme": 7}', "theme"),
}


def env_for(data_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
    return {**keep, "PANFM_DATA_DIR": str(data_dir), "PANFM_ADMIN_PASSWORD": INITIAL, "PYTHONUNBUFFERED": "1"}


def run_clock(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `python clock.py` against the folder; a refusal ends it at once (a start would hit the timeout)."""
    return subprocess.run(  # a fixed argv
        [sys.executable, "clock.py"], cwd=ROOT, env=env_for(data_dir), capture_output=True, text=True, timeout=30,
        check=False,
    )


def prepared(tmp_path: Path) -> Path:
    """A data folder as a first start leaves it: keys, config.db, sessions."""
    data = tmp_path / "data"
    create_app(config.load_settings(env={}, overrides={"data_dir": str(data), "admin_password": INITIAL}))
    return data


@pytest.mark.parametrize("case", sorted(SETTINGS_NONSENSE))
def test_it_refuses_to_start_on_nonsense_settings_naming_file_and_field(tmp_path: Path, case: str) -> None:
    content, named = SETTINGS_NONSENSE[case]
    data = tmp_path / "data"
    data.mkdir()
    path = data / config.SETTINGS_FILE
    path.write_bytes(content)
    with pytest.raises(config.ConfigError) as caught:
        create_app(config.load_settings(env={"PANFM_DATA_DIR": str(data)}))
    assert str(path) in str(caught.value) and named in str(caught.value)
    assert "hunter2" not in str(caught.value), "a value given for a secret setting must not be quoted"
    assert path.read_bytes() == content


@pytest.mark.parametrize("case", ["wrong-type", "binary", "unknown-key"])
def test_the_clock_refuses_to_start_on_nonsense_settings(tmp_path: Path, case: str) -> None:
    content, named = SETTINGS_NONSENSE[case]
    data = tmp_path / "data"
    data.mkdir()
    (data / config.SETTINGS_FILE).write_bytes(content)
    result = run_clock(data)
    assert result.returncode == 2, result.stderr[-2000:]
    assert config.SETTINGS_FILE in result.stderr and named in result.stderr
    assert (data / config.SETTINGS_FILE).read_bytes() == content


def test_the_web_app_entry_point_refuses_with_a_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / config.SETTINGS_FILE).write_bytes(b'{"theme": "purple"}')
    result = subprocess.run(  # a fixed argv; a refusal returns at once
        [sys.executable, "app.py"], cwd=ROOT, env=env_for(data), capture_output=True, text=True, timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "settings.json" in result.stderr and "theme" in result.stderr
    assert (data / config.SETTINGS_FILE).read_bytes() == b'{"theme": "purple"}'


def test_a_running_web_keeps_the_last_good_settings_and_never_overwrites_the_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    app = create_app(config.load_settings(env={}, overrides={"data_dir": str(data), "admin_password": INITIAL}))
    client = app.test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                headers={"X-CSRFToken": token})
    headers = {"X-CSRFToken": token}
    assert client.put("/api/settings", json={"refresh_interval": 45}, headers=headers).status_code == 200
    nonsense = b'{"refresh_interval": "every now and then"'
    (data / config.SETTINGS_FILE).write_bytes(nonsense)
    for path in ("/api/settings", "/api/health", "/api/clock", "/", "/settings"):
        r = client.get(path)
        # /api/health may say 503 "degraded" (no clock runs here); a 500 would be a crash.
        assert r.status_code in (200, 503), (path, r.status_code)
        r.close()
    r = client.put("/api/settings", json={"theme": "dark"}, headers=headers)
    assert r.status_code == 409
    assert "settings.json" in r.get_json()["message"]
    assert (data / config.SETTINGS_FILE).read_bytes() == nonsense


DATABASE_NONSENSE = {
    "garbage": lambda b: b"this is not a database " * 400,
    "truncated": lambda b: b[: len(b) // 3],
    "zeroed-header": lambda b: b"\x00" * 100 + b[100:],
}


@pytest.mark.parametrize("case", sorted(DATABASE_NONSENSE))
@pytest.mark.parametrize("name", ["config.db", "web_sessions.db"])
def test_the_web_refuses_to_start_on_a_damaged_database_naming_it(tmp_path: Path, name: str, case: str) -> None:
    data = prepared(tmp_path)
    path = data / name
    content = DATABASE_NONSENSE[case](path.read_bytes())
    for leftover in (data / (name + "-wal"), data / (name + "-shm")):
        leftover.unlink(missing_ok=True)
    path.write_bytes(content)
    with pytest.raises(config.ConfigError) as caught:
        create_app(config.load_settings(env={}, overrides={"data_dir": str(data), "admin_password": INITIAL}))
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content


@pytest.mark.parametrize("name", ["config.db", "throughput_history.db"])
def test_the_clock_refuses_to_start_on_a_damaged_database_naming_it(tmp_path: Path, name: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    content = b"SQLite format 2\x00" + os.urandom(4096)
    (data / name).write_bytes(content)
    result = run_clock(data)
    assert result.returncode == 2, result.stderr[-2000:]
    assert name in result.stderr
    assert (data / name).read_bytes() == content


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("encryption.key", b"not a fernet key\n"),
        ("encryption.key", b""),
        ("encryption.key", os.urandom(64)),
        ("secret_key", b""),
        ("secret_key", b"short\n"),
        ("secret_key", b"\xff\xfe" * 40),
    ],
    ids=["key-text", "key-empty", "key-binary", "secret-empty", "secret-short", "secret-binary"],
)
def test_the_web_refuses_to_start_on_a_damaged_key_file_naming_it(tmp_path: Path, name: str, content: bytes) -> None:
    data = prepared(tmp_path)
    (data / name).write_bytes(content)
    with pytest.raises(config.ConfigError) as caught:
        create_app(config.load_settings(env={}, overrides={"data_dir": str(data), "admin_password": INITIAL}))
    assert name in str(caught.value)
    assert (data / name).read_bytes() == content


def test_the_clock_refuses_to_start_on_a_damaged_encryption_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "encryption.key").write_bytes(b"garbage\n")
    result = run_clock(data)
    assert result.returncode == 2 and "encryption.key" in result.stderr
    assert (data / "encryption.key").read_bytes() == b"garbage\n"


def test_the_web_keeps_answering_over_a_damaged_alerts_database(tmp_path: Path) -> None:
    data = prepared(tmp_path)
    (data / "alerts.db").write_bytes(b"not sqlite " * 500)
    app = create_app(config.load_settings(env={}, overrides={"data_dir": str(data), "admin_password": INITIAL}))
    client = app.test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                headers={"X-CSRFToken": token})
    r = client.get("/api/overview")
    assert r.status_code == 200
    assert (data / "alerts.db").read_bytes() == b"not sqlite " * 500
