"""config.db: devices with encrypted secrets, JSON document tables, migrations."""

import sqlite3
import threading

import pytest

from config import SecretBox
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import CONFIG_DB, MIGRATIONS, DeviceStore, DocTable, connect, device_catalogue


@pytest.fixture
def store(tmp_path):
    return DeviceStore(tmp_path, SecretBox.for_data_dir(tmp_path), clock=lambda: 1_700_000_000.0)


def _device(name="fw1", host="192.0.2.1", **kw):
    return DeviceConfig(id="", name=name, host=host, tls=TlsConfig("pin", "ab" * 32), **kw)


def test_it_stores_secrets_encrypted_and_returns_them_decrypted(store, tmp_path):
    dev_id = store.add(_device(api_key="LUFRPT1-secret-key==", username="mon", password="p&<\"!w"))
    raw = b"".join(p.read_bytes() for p in tmp_path.glob(CONFIG_DB + "*"))
    assert raw
    assert b"LUFRPT1-secret-key" not in raw and b"p&<" not in raw
    got = store.get(dev_id)
    assert got.api_key == "LUFRPT1-secret-key==" and got.password == 'p&<"!w'
    assert "secret" not in repr(got)


def test_duplicate_name_or_address_is_refused(store):
    store.add(_device())
    with pytest.raises(sqlite3.IntegrityError):
        store.add(_device(host="192.0.2.9"))
    with pytest.raises(sqlite3.IntegrityError):
        store.add(_device(name="fw2"))


def test_update_remove_and_enabled_filter(store, tmp_path):
    a = store.add(_device(interfaces=("ethernet1/1",)))
    b = store.add(_device("fw2", "192.0.2.2", enabled=False))
    assert [d.name for d in store.list(enabled_only=True)] == ["fw1"]
    assert device_catalogue(tmp_path) == [  # labels and selections without decrypting a secret
        {"id": a, "name": "fw1", "interfaces": ("ethernet1/1",), "enabled": True},
        {"id": b, "name": "fw2", "interfaces": (), "enabled": False},
    ]
    dev = store.get(a)
    assert store.update(DeviceConfig(**{**dev.__dict__, "enabled": False}))
    assert store.list(enabled_only=True) == []
    assert store.remove(a) and not store.remove(a)


def test_concurrent_first_opens_migrate_once(tmp_path):
    errors = []

    def open_it():
        try:
            connect(tmp_path).close()
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = connect(tmp_path, readonly=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_doc_table_round_trip(tmp_path):
    rules = DocTable(tmp_path, "alert_rules", clock=lambda: 0.0)
    rid = rules.put({"name": "cpu", "threshold": 90})
    assert rules.get(rid) == {"id": rid, "name": "cpu", "threshold": 90}
    rules.put({"id": rid, "name": "cpu", "threshold": 80})
    assert [r["threshold"] for r in rules.list()] == [80]
    assert rules.delete(rid) and rules.list() == []
    with pytest.raises(ValueError):
        DocTable(tmp_path, "users; DROP TABLE x", clock=lambda: 0.0)
