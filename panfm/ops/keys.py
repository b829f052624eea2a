"""Rotate the Fernet key of a data folder: re-encrypt every stored secret, then drop the old key.

Secrets at rest live in `config.db`: device API keys and passwords (`devices`), and every
`*_enc` field of the JSON documents (alert channel URLs in `alert_channels`). The order makes
a crash at any step safe:

1. Write `encryption.key` as the NEW key first and the old key(s) after it (atomic replace):
   every token still decrypts, new ones use the new key.
2. Re-encrypt every secret under the new key in ONE transaction: all or nothing.
3. Write `encryption.key` with the new key only (atomic replace).

A crash after 1 or 2 leaves a key file that decrypts everything; running the rotation again
finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from config import KEY_FILE, ConfigError, SecretBox, atomic_write
from throughput_storage import Backend, config_store


@dataclass(frozen=True)
class Rotation:
    """What a rotation re-encrypted."""

    device_secrets: int
    document_secrets: int
    old_keys_dropped: int


def read_keys(data_dir: Path) -> list[bytes]:
    """The keys of `encryption.key`, first one encrypting; ConfigError when absent or empty."""
    path = data_dir / KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: absent, there is no key to rotate") from None
    keys = [line.strip() for line in raw.splitlines() if line.strip()]
    SecretBox(keys)  # raises ConfigError when a line is not a Fernet key
    return keys


def _write_keys(data_dir: Path, keys: list[bytes]) -> None:
    atomic_write(data_dir / KEY_FILE, b"".join(k + b"\n" for k in keys))


def _reencrypt(box: SecretBox, token: str | None) -> str | None:
    return box.encrypt(box.decrypt(token)) if token else token


def rotate(data_dir: Path, new_key: bytes | None = None) -> Rotation:
    """Re-encrypt every stored secret of `data_dir` under a new key and drop the old key(s)."""
    old = read_keys(data_dir)
    new = new_key if new_key is not None else Fernet.generate_key()
    # Step 1: both keys decrypt from here on, whatever happens next.
    _write_keys(data_dir, [new, *old])
    box = SecretBox([new, *old])
    # Step 2: one transaction; a secret that does not decrypt aborts the whole rotation.
    devices, documents = config_store.reencrypt_secrets(data_dir, lambda enc: _reencrypt(box, enc))
    # Step 3: nothing is encrypted under the old key(s) any more.
    _write_keys(data_dir, [new])
    return Rotation(device_secrets=devices, document_secrets=documents, old_keys_dropped=len(old))


def rotate_shared(backend: Backend, box: SecretBox) -> Rotation:
    """Re-encrypt every secret in the PostgreSQL database under the first key of `encryption_key`.

    The keys come from the environment of every host, not from a file: set
    `PANFM_ENCRYPTION_KEY=NEW,OLD` on every host (both decrypt, NEW encrypts), run this once
    from any host (one transaction, the key marker included), then set `PANFM_ENCRYPTION_KEY=NEW`.
    """
    devices, documents = config_store.reencrypt_secrets(backend, lambda enc: _reencrypt(box, enc))
    return Rotation(device_secrets=devices, document_secrets=documents, old_keys_dropped=0)
