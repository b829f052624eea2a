"""A real Prometheus server (Debian's `prometheus`) on a free loopback port, scraping one target."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 60.0


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """One `prometheus` process with a generated config; `query` speaks its HTTP API."""

    def __init__(self, workdir: Path, target: str, *, token: str | None = None, interval_s: float = 1.0,
                 metrics_path: str = "/metrics", params: dict[str, list[str]] | None = None) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise FileNotFoundError("prometheus (apt-get install prometheus)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        job: dict[str, Any] = {
            "job_name": "panfm",
            "scrape_interval": f"{interval_s:g}s",
            "scrape_timeout": f"{interval_s:g}s",
            "metrics_path": metrics_path,
            "static_configs": [{"targets": [target]}],
        }
        if params:
            job["params"] = params
        if token is not None:
            token_file = workdir / "token"
            token_file.write_text(token)
            token_file.chmod(0o600)
            job["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
        config = workdir / "prometheus.yml"
        # JSON is YAML: no YAML writer needed.
        config.write_text(json.dumps({"global": {"scrape_interval": f"{interval_s:g}s"}, "scrape_configs": [job]}))
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus was not ready within 60 s")

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/PATH with PARAMS; return `data` (raises on an error status)."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = self.api("query", query=expr, time=None if at is None else f"{at:.3f}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
