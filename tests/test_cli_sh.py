"""cli-test.sh: both processes in CLI mode against the simulator, and nothing left running afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import requires

ROOT = Path(__file__).resolve().parent.parent

pytestmark = requires(shutil.which("curl"), "curl, which cli-test.sh drives the web with (apt-get install -y curl)")


def _left_behind(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (the script's temporary folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def _run(tmp_path, **env):
    full = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path), **env}
    full = {k: v for k, v in full.items() if not (k.startswith("PANFM_") and k not in env)}
    return subprocess.run(
        ["bash", str(ROOT / "cli-test.sh")], env=full, capture_output=True, text=True, timeout=180, check=False
    )


def test_it_sees_version_login_redirect_and_fresh_samples_then_stops_everything(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cli-test: OK" in result.stdout and "fresh samples for 2 firewalls" in result.stdout
    assert _left_behind(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []  # the temporary data folder is removed


def test_it_fails_with_a_clear_message_when_the_web_cannot_start(tmp_path):
    result = _run(tmp_path, PANFM_LOG_LEVEL="LOUD")  # both processes refuse this setting
    assert result.returncode == 1
    assert "cli-test: FAIL: the web (python app.py) exited" in result.stderr
    assert "log_level" in result.stderr  # the web's own message is shown from its log
    assert _left_behind(str(tmp_path)) == []
