"""`GET /api/openapi.json`: the OpenAPI 3.1 description of every JSON route (spec in openapi_spec.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from panfm.web.context import ctx
from panfm.web.openapi_spec import build_spec

bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def openapi() -> Any:
    return jsonify(build_spec(ctx().version))
