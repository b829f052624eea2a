"""Secrets at rest: the Fernet `SecretBox` of `encryption.key`, and the Flask session key."""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from panfm.settings.files import create_once
from panfm.settings.values import ConfigError, Settings

KEY_FILE = "encryption.key"
SECRET_KEY_FILE = "secret_key"  # noqa: S105  # nosec B105 (a file name, not a secret)


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
    def for_settings(cls, settings: Settings) -> SecretBox:
        """The box of `encryption_key` (comma-separated keys, the first encrypts), else of the data folder's file."""
        if settings.encryption_key:
            keys = [k.strip().encode("ascii", "replace") for k in settings.encryption_key.split(",") if k.strip()]
            try:
                return cls(keys)
            except ConfigError:
                raise ConfigError("setting encryption_key: not a comma-separated list of Fernet keys"
                                  " (each 44 characters of URL-safe base64)") from None
        return cls.for_data_dir(settings.data_path)

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
