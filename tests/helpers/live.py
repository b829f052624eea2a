"""The web under gunicorn on a loopback port, over a data folder a test prepared (schemathesis, browser tests)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """A child process whose output goes to a file; stopped with SIGTERM, then killed."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(errors="replace"))
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log.name}: exited {self.proc.returncode}: {self.tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.log.name}: no {pattern!r} within {timeout} s: {self.tail()}")

    def wait_answering(self, url: str, timeout: float = 60) -> None:
        """Wait until URL answers over HTTP (any status); fail with the log if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log.name}: exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except urllib.error.HTTPError:
                return  # an answer, whatever its status
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.log.name}: {url} did not answer within {timeout} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_gunicorn(data: Path, log: Path, **env_settings: str) -> tuple[Proc, str]:
    """Start the web (2 workers, ephemeral loopback port) over `data`; return it and its base URL."""
    env = {**os.environ, "PANFM_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1",
           **{f"PANFM_{k.upper()}": v for k, v in env_settings.items()}}
    env.pop("PANFM_PORT", None)
    web = Proc([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0",
                "--workers", "2", "--no-control-socket", "app:create_app()"], env, log)
    try:
        port = web.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1)
        web.wait_for(r"Booting worker", timeout=15)
    except BaseException:
        web.stop()
        raise
    return web, f"http://127.0.0.1:{port}"
