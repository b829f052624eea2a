"""Typed, validated settings; generated files in the data folder; secrets at rest (Fernet).

Every setting is declared once, as a field of `Settings` (type, default, help, bounds).
Its value comes from, in order of precedence:

1. the environment variable `PANFM_<NAME>` (or `PANFM_<NAME>_FILE` naming a file that holds
   it, for secrets): such a setting is *fixed by the environment* and the web cannot change it;
2. `settings.json` in the data folder (written by the web, atomically);
3. the declared default.

A bad value stops the process with a `ConfigError` naming the setting and where it came from.
"""

from __future__ import annotations

import dataclasses
import fcntl
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger("panfm.config")

ENV_PREFIX = "PANFM_"
# Both processes create files with this umask: databases, their -wal/-shm, keys, settings and
# logs are 0600 and folders 0700, whatever umask the shell, container or service manager set.
PRIVATE_UMASK = 0o077
SETTINGS_FILE = "settings.json"
KEY_FILE = "encryption.key"
SECRET_KEY_FILE = "secret_key"  # noqa: S105  # nosec B105 (a file name, not a secret)


class ConfigError(Exception):
    """A setting or a data-folder file is unusable; the message names which and why."""


# ASCII only, and short: str.isdigit() takes "²" (which int() refuses) and int() takes "٣" (3);
# a length cap keeps int() and float() from parsing thousands of digits (ValueError past 4300).
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,30}", re.ASCII)
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)
MAX_NUMBER_TEXT = 40


def bounded_int(raw: Any, lo: int, hi: int) -> int:
    """Read a whole number from JSON (an int or a whole float) or text (ASCII digits) within [lo, hi].

    Raises ValueError saying what is expected. Every numeric input of the API and of the settings
    goes through here (or `bounded_number`), so a 400-digit integer or "²" is a 400, never a 500.
    """
    expected = f"expected a whole number between {lo} and {hi}"
    value: int
    if isinstance(raw, bool):
        raise ValueError(expected)
    if isinstance(raw, str):
        if not _INT_TEXT.fullmatch(raw.strip()):
            raise ValueError(expected)
        value = int(raw.strip())
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        value = int(raw)
    else:
        raise ValueError(expected)
    if not lo <= value <= hi:  # exact for any int: a huge one never reaches float()
        raise ValueError(expected)
    return value


def bounded_number(raw: Any, lo: float, hi: float) -> float:
    """Read a finite number from JSON (int or float) or text (ASCII) within [lo, hi]; ValueError if not."""
    expected = f"expected a finite number between {lo:g} and {hi:g}"
    if isinstance(raw, bool):
        raise ValueError(expected)
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_NUMBER_TEXT or not _NUMBER_TEXT.fullmatch(text):
            raise ValueError(expected)
        raw = float(text)
    if isinstance(raw, int):
        # Compare before converting: float(10**400) raises OverflowError.
        if not lo <= raw <= hi:
            raise ValueError(expected)
        return float(raw)
    if not isinstance(raw, float) or not math.isfinite(raw) or not lo <= raw <= hi:
        raise ValueError(expected)
    return raw


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
    port: int = setting(3000, "TCP port of the web process.", min=1, max=65535, editable=False)
    bind_host: str = setting(
        "0.0.0.0",  # noqa: S104  # nosec B104 (a server for the management network listens on all addresses)
        "Address the web process listens on (127.0.0.1: this machine only, e.g. behind a reverse proxy).",
        editable=False,
    )
    web_workers: int = setting(2, "gunicorn worker processes of the web.", min=1, max=32, editable=False)
    refresh_interval: int = setting(30, "Seconds between two collections of every firewall.", min=5, max=300)
    collector_workers: int = setting(
        64, "Upper bound of firewalls polled at the same time by the clock.", min=1, max=512
    )
    request_timeout: float = setting(
        10.0, "Seconds one XML API call may take before it counts as a timeout.", min=1, max=120
    )
    raw_retention_days: int = setting(7, "Days raw samples are kept.", min=1, max=90)
    throughput_retention_days: int = setting(90, "Days 5-minute rollups are kept.", min=1, max=3650)
    hourly_retention_days: int = setting(730, "Days 1-hour rollups are kept.", min=1, max=3650)
    alert_history_retention_days: int = setting(365, "Days resolved alert incidents are kept.", min=1, max=3650)
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
        "", "Flask session key (empty: generated once into the data folder).", editable=False, secret=True
    )
    allowed_device_networks: tuple[str, ...] = setting(
        (),
        "Networks (CIDRs, comma-separated) firewalls may be reached in; empty: any address but loopback,"
        " link-local, unspecified and multicast ones. Webhooks may also reach listed networks of those kinds.",
        editable=False,
    )

    fixed_by_env: frozenset[str] = field(default=frozenset(), metadata={"internal": True}, repr=False)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


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
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a JSON object of settings")
    editable = {f.name for f in declared() if f.metadata["editable"]}
    out: dict[str, Any] = {}
    for name, raw in doc.items():
        if name not in editable:
            raise ConfigError(f"{path}: {name!r} is not a setting that can be stored in {SETTINGS_FILE}")
        out[name] = coerce(name, raw, str(path))
    return out


def load_settings(env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the effective settings: environment over settings.json over defaults.

    `overrides` (tests, `create_app(settings)`) act like environment variables.
    """
    env = os.environ if env is None else env
    fixed = env_values(env)
    for name, raw in (overrides or {}).items():
        fixed[name] = coerce(name, raw, "override")
    data_dir = Path(fixed.get("data_dir", Settings.data_dir))
    stored = read_settings_file(data_dir)
    values = {**stored, **fixed}
    return Settings(**values, fixed_by_env=frozenset(fixed))


def save_settings(data_dir: Path, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate `changes`, merge them into settings.json atomically; return the stored dict."""
    editable = {f.name for f in declared() if f.metadata["editable"]}
    clean: dict[str, Any] = {}
    for name, raw in changes.items():
        if name not in editable:
            raise ConfigError(f"setting {name!r} cannot be changed here")
        clean[name] = coerce(name, raw, "request")
    # Read-merge-write under a lock on the folder: two workers saving at once would each wipe the other's key.
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        stored = read_settings_file(data_dir)
        stored.update(clean)
        atomic_write(data_dir / SETTINGS_FILE, (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)  # closing drops the lock
    return stored


# --------------------------------------------------------------------------------------
# Files in the data folder
# --------------------------------------------------------------------------------------


def private_umask() -> None:
    """Make every file this process creates private to its user (call first thing at a process start)."""
    os.umask(PRIVATE_UMASK)


def ensure_data_dir(path: Path) -> Path:
    """Create the data folder (0700) if needed, make it private; fail loudly when it is not usable."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"data folder {path}: cannot create: {exc.strerror}") from None
    if not path.is_dir():
        raise ConfigError(f"data folder {path}: not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"data folder {path}: not readable and writable by this user (uid {os.getuid()})")
    make_private(path)
    return path


def make_private(path: Path) -> None:
    """Take group and other access off the data folder and everything directly in it.

    A folder made by hand, by `docker run -v` or by an older version may be 0755 with 0644
    files: the umask only protects files created from now on, so existing ones are chmod-ed
    too (never widened; symlinks left alone). One WARNING says what was open, then nothing.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    folder_was_open = bool(mode & 0o077)
    if folder_was_open:
        path.chmod(mode & 0o700)
    fixed: list[str] = []
    for entry in os.scandir(path):
        try:
            st = entry.stat(follow_symlinks=False)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) or not st.st_mode & 0o077:
                continue
            os.chmod(entry.path, stat.S_IMODE(st.st_mode) & 0o700)
        except FileNotFoundError:
            continue  # a -wal or -shm removed by the other process meanwhile
        except PermissionError:
            log.warning("data folder %s: %s is readable by others and not ours to change", path, entry.name)
            continue
        fixed.append(entry.name)
    if folder_was_open or fixed:
        log.warning(
            "data folder %s was readable by group or others (folder %04o, %d files open: %s);"
            " made it 0700 and its files 0600", path, mode, len(fixed), ", ".join(sorted(fixed)[:10]) or "none",
        )


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a file so readers see the old or the new content, never a half-written one."""
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_once(path: Path, make: Any) -> bytes:
    """Return the file's content, creating it with `make()` if absent (race-free, mode 0600).

    Web and clock may start at the same instant: the file is created under a temporary name
    and linked into place exclusively; whoever loses the race reads the winner's content.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data: bytes = make()
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another process won
        except FileExistsError:
            return path.read_bytes()
        return data
    finally:
        Path(tmp).unlink(missing_ok=True)


def secret_key(settings: Settings) -> str:
    """The Flask session key: from the setting, or generated once into the data folder."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_path / SECRET_KEY_FILE
    try:
        key = create_once(path, lambda: secrets.token_urlsafe(48).encode()).decode().strip()
    except UnicodeDecodeError:
        key = ""
    if len(key) < 32:
        # An empty or edited file would sign sessions with a guessable key (or fail every login).
        raise ConfigError(f"{path}: not a usable key (32 or more characters); delete the file to generate one")
    return key


# --------------------------------------------------------------------------------------
# Secrets at rest
# --------------------------------------------------------------------------------------


class SecretBox:
    """Encrypt and decrypt stored secrets with the Fernet key(s) of `encryption.key`.

    The file holds one key per line; the first encrypts, all decrypt (MultiFernet), which is
    what key rotation needs. A box made by `for_data_dir` re-reads the file when it changes, so
    a running web or clock follows `keys rotate` instead of encrypting under a dropped key.
    """

    def __init__(self, keys: list[bytes], path: Path | None = None) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._fernet = self._build(keys)
        if path is not None:
            self._stamp = self._stat(path)

    @staticmethod
    def _build(keys: list[bytes]) -> MultiFernet:
        if not keys:
            raise ConfigError("encryption.key holds no key")
        try:
            return MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise ConfigError("encryption.key: not a valid Fernet key") from None

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int]:
        st = path.stat()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    @staticmethod
    def _keys(raw: bytes) -> list[bytes]:
        return [line.strip() for line in raw.splitlines() if line.strip()]

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> SecretBox:
        path = data_dir / KEY_FILE
        return cls(cls._keys(create_once(path, Fernet.generate_key)), path)

    def _current(self) -> MultiFernet:
        """The keys of the file as it is now (rotation replaces it atomically: a new inode)."""
        if self._path is not None:
            try:
                stamp = self._stat(self._path)
                if stamp != self._stamp:
                    self._fernet = self._build(self._keys(self._path.read_bytes()))
                    self._stamp = stamp
            except OSError as exc:
                raise ConfigError(f"{self._path}: cannot read: {exc.strerror}") from None
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        return self._current().encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._current().decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                "a stored secret cannot be decrypted with encryption.key (wrong or replaced key?)"
            ) from None
