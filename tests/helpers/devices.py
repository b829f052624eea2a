"""Devices API helpers: a logged-in client allowed to reach the simulators, and a recording HTTPS server."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conftest import SIM_NETWORKS

import config
from app import create_app
from panos_sim.certs import make_context

INITIAL = "initial-password-1"
NEW = "a-much-better-password"


def make_client(data_dir):
    """An app over `data_dir` that may reach the simulators, and a client logged in with the password changed."""
    settings = config.load_settings(env={}, overrides={"data_dir": str(data_dir), "admin_password": INITIAL,
                                                       "allowed_device_networks": SIM_NETWORKS})
    app = create_app(settings)
    client = app.test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    client.post(
        "/api/change-password", json={"old_password": INITIAL, "new_password": NEW}, headers={"X-CSRFToken": token}
    )
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return app, client


class Recorder:
    """A loopback HTTPS server that answers 403 to everything and keeps each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.handshakes = 0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append(str(self.headers).encode() + b"\n" + self.path.encode() + b"\n" + body)
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def get_request(self) -> Any:
                sock, addr = super().get_request()
                recorder.handshakes += 1
                return sock, addr

        ctx, self.fingerprint, _pem = make_context("recorder", "127.0.0.1")
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def received(self) -> bytes:
        return b"\n".join(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
