"""The OpenAPI 3.1 description of the JSON API (filled below)."""

from __future__ import annotations

from typing import Any


def build_spec(version: str) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "PANfm", "version": version}, "paths": {}}
