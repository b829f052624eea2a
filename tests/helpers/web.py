"""Web helpers for the data API: an app over a data folder with a logged-in client, and a device added through it."""

from __future__ import annotations

import config
from app import create_app

INITIAL = "initial-password-1"
NEW = "a-much-better-password"
FP = "ab" * 32


def make_client(data_dir, env=None, **overrides):
    """An app over `data_dir` and a client logged in with the initial password changed."""
    settings = config.load_settings(
        env=env or {}, overrides={"data_dir": str(data_dir), "admin_password": INITIAL, **overrides}
    )
    app = create_app(settings)
    client = app.test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    r = client.post(
        "/api/change-password", json={"old_password": INITIAL, "new_password": NEW}, headers={"X-CSRFToken": token}
    )
    assert r.status_code == 200
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return app, client


def add_device(client, name, host, **extra):
    body = {"name": name, "host": host, "api_key": "K" * 20, "tls": {"mode": "pin", "fingerprint_sha256": FP}, **extra}
    r = client.post("/api/devices", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]
