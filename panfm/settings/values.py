"""Every setting's declaration (type, default, help, bounds) and where its value comes from.

Every setting is declared once, as a field of `Settings` (type, default, help, bounds).
Its value comes from, in order of precedence:

1. the environment variable `PANFM_<NAME>` (or `PANFM_<NAME>_FILE` naming a file that holds
   it, for secrets): such a setting is *fixed by the environment* and the web cannot change it;
2. `settings.json` in the data folder (written by the web, atomically: `files.save_settings`);
3. the declared default.

A bad value stops the process with a `ConfigError` naming the setting and where it came from.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panfm.settings.numbers import bounded_int, bounded_number

ENV_PREFIX = "PANFM_"
SETTINGS_FILE = "settings.json"


class ConfigError(Exception):
    """A setting or a data-folder file is unusable; the message names which and why."""


def setting(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    editable: bool = True,
    secret: bool = False,
) -> Any:
    """Declare one setting (a dataclass field carrying its documentation and bounds)."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "editable": editable, "secret": secret}
    return field(default=default, metadata=meta, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Every PANfm setting. Read with `load_settings()`; the README table lists them all."""

    data_dir: str = setting("data", "Folder holding the databases, settings, keys and lock files.", editable=False)
    database_url: str = setting(
        "", "PostgreSQL database every store lives in (postgresql://user@host:5432/panfm); empty: SQLite files"
        " in the data folder.", editable=False, secret=True,
    )
    port: int = setting(3000, "TCP port of the web process.", min=1, max=65535, editable=False)
    bind_host: str = setting(
        "0.0.0.0",  # noqa: S104  # nosec B104 (a server for the management network listens on all addresses)
        "Address the web process listens on (127.0.0.1: this machine only, e.g. behind a reverse proxy).",
        editable=False,
    )
    web_workers: int = setting(2, "gunicorn worker processes of the web.", min=1, max=32, editable=False)
    refresh_interval: int = setting(30, "Seconds between two collections of every firewall.", min=5, max=300)
    collector_workers: int = setting(
        64,
        "Firewalls polled at the same time by the clock (a poll waiting over 2 s on a slow one stops counting).",
        min=1,
        max=512,
    )
    request_timeout: float = setting(
        10.0, "Seconds one XML API call may take before it counts as a timeout.", min=1, max=120
    )
    raw_retention_days: int = setting(7, "Days raw samples are kept.", min=1, max=90)
    throughput_retention_days: int = setting(90, "Days 5-minute rollups are kept.", min=1, max=3650)
    hourly_retention_days: int = setting(730, "Days 1-hour rollups are kept.", min=1, max=3650)
    alert_history_retention_days: int = setting(365, "Days resolved alert incidents are kept.", min=1, max=3650)
    audit_retention_days: int = setting(365, "Days audit trail entries are kept.", min=1, max=3650)
    api_token_rate_limit: int = setting(
        600, "Requests one API token may make per minute (more answer 429).", min=10, max=100000
    )
    connected_devices_retention_days: int = setting(
        30, "Days a connected device no longer seen is kept (first and last seen, names).", min=1, max=3650
    )
    log_retention_hours: int = setting(
        24, "Hours the system and traffic log entries fetched by the clock are kept.", min=1, max=168
    )
    log_fetch_cap: int = setting(
        50, "System and traffic log entries the clock fetches per firewall, type and 5-minute run (newest first).",
        min=10, max=5000,
    )
    reverse_dns: bool = setting(
        True, "The clock looks up reverse DNS names of connected devices without a DHCP hostname."
    )
    base_url: str = setting("http://localhost:3000", "Address of the dashboard, used in notification links.")
    theme: str = setting("auto", "Dashboard colour scheme.", choices=("auto", "light", "dark"))
    secure_cookies: bool = setting(False, "Mark session cookies Secure (serve PANfm over HTTPS).", editable=False)
    trusted_proxies: int = setting(
        0, "Reverse proxies in front of the web whose X-Forwarded-* headers are trusted.", min=0, max=5, editable=False
    )
    log_level: str = setting("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"), editable=False)
    log_format: str = setting("text", "Log format: text lines or JSON lines.", choices=("text", "json"), editable=False)
    log_file: str = setting("", "Also log to this file, rotated at 10 MB (empty: console only).", editable=False)
    log_libraries: bool = setting(
        False,
        "Let third-party libraries (Apprise, urllib3, requests, aiohttp, werkzeug) log below WARNING"
        " (their DEBUG lines carry channel URLs; PANfm masks the secrets it knows).",
        editable=False,
    )
    admin_password: str = setting(
        "", "Initial password of the `admin` user (empty: a random one is logged once).", editable=False, secret=True
    )
    secret_key: str = setting(
        "", "Flask session key (empty: generated once into the data folder). Required on PostgreSQL: every web"
        " must share it.", editable=False, secret=True
    )
    encryption_key: str = setting(
        "", "Fernet key(s) of the stored secrets, comma-separated, the first one encrypts (empty: generated once"
        " into the data folder as encryption.key). Required on PostgreSQL: every host must share it.",
        editable=False, secret=True,
    )
    allowed_device_networks: tuple[str, ...] = setting(
        (),
        "Networks (CIDRs, comma-separated) firewalls may be reached in; empty: any address but loopback,"
        " link-local, unspecified and multicast ones. Webhooks may also reach listed networks of those kinds.",
        editable=False,
    )

    metrics_token: str = setting(
        "", "Bearer token Prometheus sends to read /metrics (empty: /metrics answers 401 unless metrics_public).",
        editable=False, secret=True,
    )
    metrics_public: bool = setting(False, "Serve /metrics without a token (a trusted network only).", editable=False)
    metrics_interfaces: str = setting(
        "counted", "Interfaces with series on /metrics: the counted ones, all, or none.",
        choices=("counted", "all", "none"), editable=False,
    )

    clock_metrics_port: int = setting(
        0, "TCP port the clock serves its own process metrics on, at bind_host (0: off).",
        min=0, max=65535, editable=False,
    )

    fixed_by_env: frozenset[str] = field(default=frozenset(), metadata={"internal": True}, repr=False)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def on_postgres(self) -> bool:
        """Whether the stores live in PostgreSQL (`database_url` set) rather than SQLite files."""
        return bool(self.database_url)


def declared() -> list[dataclasses.Field[Any]]:
    """The declared settings, in declaration order."""
    return [f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")]


def _field_type(f: dataclasses.Field[Any]) -> type:
    return {"int": int, "float": float, "bool": bool, "str": str, "tuple[str, ...]": tuple}[str(f.type)]


def _networks(raw: Any) -> tuple[str, ...]:
    """Parse CIDRs (comma-separated text, or a JSON list of text) into normalised network strings."""
    if isinstance(raw, str):
        items = [part.strip() for part in raw.split(",")]
    elif isinstance(raw, list | tuple) and all(isinstance(part, str) for part in raw):
        items = [part.strip() for part in raw]
    else:
        raise ValueError("expected comma-separated networks such as 10.0.0.0/8,192.168.0.0/16")
    out: list[str] = []
    for item in filter(None, items):
        try:
            net = ipaddress.ip_network(item)  # strict: 10.0.0.1/8 is a typo, not a network
        except ValueError as exc:
            raise ValueError(f"{item[:60]!r} is not a network in CIDR form ({exc})") from None
        out.append(str(net))
    return tuple(dict.fromkeys(out))


def coerce(name: str, raw: Any, source: str) -> Any:
    """Turn one raw value (env text or JSON value) into the setting's type, within bounds."""
    fields = {f.name: f for f in declared()}
    if name not in fields:
        raise ConfigError(f"{source}: unknown setting {name!r}")
    f = fields[name]
    kind = _field_type(f)
    lo, hi, choices = f.metadata["min"], f.metadata["max"], f.metadata["choices"]
    value: Any
    try:
        if kind is bool:
            if isinstance(raw, bool):
                value = raw
            elif isinstance(raw, str) and raw.strip().lower() in ("1", "true", "yes", "on"):
                value = True
            elif isinstance(raw, str) and raw.strip().lower() in ("0", "false", "no", "off", ""):
                value = False
            else:
                raise ValueError("expected true or false")
        elif kind is int:
            value = bounded_int(raw, int(lo if lo is not None else -(2**63)), int(hi if hi is not None else 2**63))
        elif kind is float:
            value = bounded_number(raw, lo if lo is not None else -1e15, hi if hi is not None else 1e15)
        elif kind is tuple:
            value = _networks(raw)
        else:
            if not isinstance(raw, str):
                raise ValueError("expected text")
            value = raw
            if name == "database_url" and value and not value.startswith(("postgresql://", "postgres://")):
                raise ValueError("expected a postgresql://user@host:5432/dbname URL (empty: SQLite)")
    except (TypeError, ValueError) as exc:
        shown = "(hidden)" if f.metadata["secret"] else repr(raw)[:80]
        raise ConfigError(f"{source}: setting {name!r}: {exc} (got {shown})") from None
    if choices and value not in choices:
        raise ConfigError(f"{source}: setting {name!r} must be one of {', '.join(choices)} (got {value!r})")
    return value


def env_values(env: Mapping[str, str]) -> dict[str, Any]:
    """Settings fixed by `PANFM_<NAME>` or `PANFM_<NAME>_FILE` variables."""
    out: dict[str, Any] = {}
    for f in declared():
        var = ENV_PREFIX + f.name.upper()
        if var in env:
            out[f.name] = coerce(f.name, env[var], f"environment variable {var}")
        elif var + "_FILE" in env:
            path = Path(env[var + "_FILE"])
            try:
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"environment variable {var}_FILE: cannot read {path}: {exc.strerror}") from None
            out[f.name] = coerce(f.name, text, f"file {path} ({var}_FILE)")
    return out


def read_settings_file(data_dir: Path) -> dict[str, Any]:
    """Validated contents of `settings.json` (empty when absent); never rewrites the file."""
    path = data_dir / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return check_stored(doc, str(path))


def check_stored(doc: Any, source: str) -> dict[str, Any]:
    """Validate stored settings (settings.json, or the database's on PostgreSQL): editable names, good values."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a JSON object of settings")
    editable = {f.name for f in declared() if f.metadata["editable"]}
    out: dict[str, Any] = {}
    for name, raw in doc.items():
        if name not in editable:
            raise ConfigError(f"{source}: {name!r} is not a setting that can be stored in {SETTINGS_FILE}")
        out[name] = coerce(name, raw, source)
    return out


def load_settings(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None,
                  stored: Mapping[str, Any] | None = None) -> Settings:
    """Build the effective settings: environment over settings.json over defaults.

    `overrides` (tests, `create_app(settings)`) act like environment variables. `stored`, when
    given, replaces settings.json: the settings kept in the database on PostgreSQL.
    """
    env = os.environ if env is None else env
    fixed = env_values(env)
    for name, raw in (overrides or {}).items():
        fixed[name] = coerce(name, raw, "override")
    data_dir = Path(fixed.get("data_dir", Settings.data_dir))
    kept = read_settings_file(data_dir) if stored is None else check_stored(dict(stored), "stored settings")
    values = {**kept, **fixed}
    return Settings(**values, fixed_by_env=frozenset(fixed))
