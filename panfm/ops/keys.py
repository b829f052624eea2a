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

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from config import KEY_FILE, ConfigError, SecretBox, atomic_write
from throughput_storage import config_store, sqlite_db


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
    devices = documents = 0
    conn = config_store.connect(data_dir)
    try:
        # Step 2: one transaction; a secret that does not decrypt aborts the whole rotation.
        with sqlite_db.transaction(conn):
            rows = conn.execute("SELECT id, api_key_enc, password_enc FROM devices").fetchall()
            for row in rows:
                key_enc, password_enc = _reencrypt(box, row["api_key_enc"]), _reencrypt(box, row["password_enc"])
                devices += (key_enc is not None) + (password_enc is not None)
                conn.execute(
                    "UPDATE devices SET api_key_enc = ?, password_enc = ? WHERE id = ?",
                    (key_enc, password_enc, row["id"]),
                )
            for table in config_store.DOC_TABLES:
                docs = conn.execute(f"SELECT id, doc FROM {table}").fetchall()  # noqa: S608  # nosec B608
                for doc_row in docs:
                    doc = json.loads(doc_row["doc"])
                    secret_fields = [k for k, v in doc.items() if k.endswith("_enc") and isinstance(v, str) and v]
                    if not secret_fields:
                        continue
                    for name in secret_fields:
                        doc[name] = _reencrypt(box, doc[name])
                    documents += len(secret_fields)
                    conn.execute(
                        f"UPDATE {table} SET doc = ? WHERE id = ?",  # noqa: S608  # nosec B608
                        (json.dumps(doc, sort_keys=True), doc_row["id"]),
                    )
    finally:
        conn.close()
    # Step 3: nothing is encrypted under the old key(s) any more.
    _write_keys(data_dir, [new])
    return Rotation(device_secrets=devices, document_secrets=documents, old_keys_dropped=len(old))
