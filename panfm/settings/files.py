"""Files in the data folder: private permissions, atomic and create-once writes, settings.json saves."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from panfm.settings.values import SETTINGS_FILE, ConfigError, coerce, declared, read_settings_file

log = logging.getLogger("panfm.config")

# Both processes create files with this umask: databases, their -wal/-shm, keys, settings and
# logs are 0600 and folders 0700, whatever umask the shell, container or service manager set.
PRIVATE_UMASK = 0o077


def clean_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate settings edits: editable names only, each value of its setting's type and bounds."""
    editable = {f.name for f in declared() if f.metadata["editable"]}
    clean: dict[str, Any] = {}
    for name, raw in changes.items():
        if name not in editable:
            raise ConfigError(f"setting {name!r} cannot be changed here")
        clean[name] = coerce(name, raw, "request")
    return clean


def save_settings(data_dir: Path, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate `changes`, merge them into settings.json atomically; return the stored dict."""
    clean = clean_changes(changes)
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
