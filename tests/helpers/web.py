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


def login(app, username, password):
    """A new client of `app` logged in as `username`, with its CSRF token set for later changes."""
    client = app.test_client()
    r = client.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.get_json()
    token = r.get_json()["csrf_token"]
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return client, r.get_json()


def add_user(app, admin, username, role):
    """Create a user through the API (as `admin`), log in as it and change its password; return its client."""
    first = f"first-{username}-password"
    r = admin.post("/api/users", json={"username": username, "password": first, "role": role})
    assert r.status_code == 201, r.get_json()
    client, body = login(app, username, first)
    assert body["must_change_password"] is True
    r = client.post("/api/change-password", json={"old_password": first, "new_password": NEW})
    assert r.status_code == 200, r.get_json()
    return client


def add_token(client, role, name="automation", **extra):
    """Create an API token through `client`'s session; return (token id, secret)."""
    r = client.post("/api/tokens", json={"name": name, "role": role, **extra})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"], r.get_json()["token"]


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}
