"""Who is making the current request: the user the login gate found (session or API token)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g


@dataclass(frozen=True)
class SessionUser:
    """The user behind the current request: from its session, or from an API token (`via`)."""

    username: str
    must_change_password: bool
    role: str = "admin"  # the user's role now; for a token, the lower of the token's and the user's
    via: str = "session"  # "session" or "token"
    token_id: str | None = None


def current_user() -> SessionUser | None:
    """The logged-in user of this request (the gate sets it), or None."""
    user: SessionUser | None = g.get("user")
    return user
