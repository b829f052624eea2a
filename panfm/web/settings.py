"""The settings JSON API: every declared setting with its value, bounds and whether the environment fixes it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

import config
from config import ConfigError
from panfm.web.api import BadRequest
from panfm.web.audit import record
from panfm.web.context import WebContext, ctx
from panfm.web.security import api_error

bp = Blueprint("settings", __name__)


def settings_json(c: WebContext) -> dict[str, Any]:
    current = c.current_settings()
    out: dict[str, Any] = {}
    for f in config.declared():
        if f.metadata["secret"]:
            continue  # never shown, not even as "set"
        fixed = f.name in c.settings.fixed_by_env
        out[f.name] = {
            "value": getattr(current, f.name),
            "default": f.default,
            "help": f.metadata["help"],
            "type": str(f.type),
            "min": f.metadata["min"],
            "max": f.metadata["max"],
            "choices": list(f.metadata["choices"]) if f.metadata["choices"] else None,
            "editable": bool(f.metadata["editable"]) and not fixed,
            "fixed_by_env": fixed,
        }
    return {"settings": out}


@bp.get("/api/settings")
def get_settings() -> Any:
    return jsonify(settings_json(ctx()))


@bp.put("/api/settings")
def put_settings() -> Any:
    c = ctx()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body:
        raise BadRequest({"body": "a JSON object of settings to change"})
    editable = {f.name for f in config.declared() if f.metadata["editable"] and not f.metadata["secret"]}
    errors: dict[str, str] = {}
    for name, value in body.items():
        if name in c.settings.fixed_by_env:
            errors[name] = "fixed by the environment; change it there"
        elif name not in editable:
            errors[name] = "not a setting that can be changed here"
        else:
            try:
                config.coerce(name, value, "request")
            except ConfigError as exc:
                errors[name] = str(exc).removeprefix("request: ")
    if errors:
        raise BadRequest(errors)
    try:
        if c.stores.on_postgres:
            c.stores.save_settings(config.clean_changes(body))  # every host reads them from the database
        else:
            config.save_settings(c.data_dir, body)
    except ConfigError as exc:
        # settings.json was edited into nonsense: say which file and field; never overwrite it.
        return api_error(409, "settings_file_unusable", str(exc))
    record("settings.update", "settings", body)
    return jsonify(settings_json(c))
