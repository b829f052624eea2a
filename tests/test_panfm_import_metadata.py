"""PANfm 1.x's device_metadata.json (encrypted per value) becomes PANfm 2's per-MAC metadata."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.fernet import Fernet

import config
from app import create_app
from panfm.ops import ImportError_, ImportReport, read_metadata
from panfm.storage.metadata_store import MetadataStore


def enc(fernet: Fernet, value: str) -> str:
    return base64.b64encode(fernet.encrypt(value.encode())).decode()


@pytest.fixture
def legacy(tmp_path):
    folder = tmp_path / "panfm1"
    folder.mkdir()
    key = Fernet.generate_key()
    (folder / "encryption.key").write_bytes(key)
    return folder, Fernet(key)


def test_it_decrypts_the_flat_layout_and_normalises_macs(legacy):
    folder, f = legacy
    (folder / "device_metadata.json").write_text(json.dumps({
        "00:1B:17:AA:BB:01": {"name": enc(f, "Ana's laptop"), "comment": enc(f, "finance"),
                              "tags": [enc(f, "laptop"), enc(f, "finance"), enc(f, "laptop")],
                              "location": enc(f, "Floor 3")},
        "3c-22-fb-00-00-02": {"name": "plain printer", "tags": enc(f, '["printer", "floor2"]')},
        "b8:27:eb:00:00:03": {"tags": enc(f, "iot, sensor")},
        "not-a-mac": {"name": enc(f, "x")},
        "00:50:56:00:00:04": {"name": enc(f, "   ")},  # nothing left: not imported
    }))
    report = ImportReport()
    out = read_metadata(folder, report)
    assert out == {
        "00:1b:17:aa:bb:01": {"name": "Ana's laptop", "comment": "finance", "tags": ["laptop", "finance"],
                              "location": "Floor 3"},
        "3c:22:fb:00:00:02": {"name": "plain printer", "tags": ["printer", "floor2"]},
        "b8:27:eb:00:00:03": {"tags": ["iot", "sensor"]},
    }
    assert report.metadata == 3 and any("not-a-mac" in s for s in report.skipped)


def test_it_merges_the_per_firewall_layout_and_reports_disagreements(legacy):
    folder, f = legacy
    (folder / "device_metadata.json").write_text(json.dumps({
        "3f1b2c4d-0000-4000-8000-000000000001": {"00:1b:17:aa:bb:01": {"name": enc(f, "laptop"), "tags": []}},
        "3f1b2c4d-0000-4000-8000-000000000002": {"00:1b:17:aa:bb:01": {"name": enc(f, "other"),
                                                                        "location": enc(f, "HQ")}},
    }))
    report = ImportReport()
    assert read_metadata(folder, report) == {"00:1b:17:aa:bb:01": {"name": "laptop", "location": "HQ"}}
    assert any("disagree" in s for s in report.skipped)


def test_it_says_clearly_when_the_file_cannot_be_used(legacy):
    folder, f = legacy
    report = ImportReport()
    assert read_metadata(folder, report) == {} and "device_metadata.json: absent" in report.skipped
    (folder / "device_metadata.json").write_text("[1, 2]")
    with pytest.raises(ImportError_, match="not a JSON object"):
        read_metadata(folder, ImportReport())
    (folder / "device_metadata.json").write_text(json.dumps({"00:1b:17:aa:bb:01": {"name": enc(f, "x")}}))
    (folder / "encryption.key").write_bytes(Fernet.generate_key())
    with pytest.raises(ImportError_, match="does not decrypt"):
        read_metadata(folder, ImportReport())


def test_import_panfm_stores_the_metadata_and_keeps_what_the_admin_already_set(legacy, tmp_path):
    folder, f = legacy
    (folder / "device_metadata.json").write_text(json.dumps({
        "00:1b:17:aa:bb:01": {"name": enc(f, "from 1.x"), "tags": [enc(f, "old")]},
        "00:1b:17:aa:bb:02": {"name": enc(f, "kept by 2")},
    }))
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    store = MetadataStore(data, time.time)
    store.update("00:1b:17:aa:bb:02", {"name": "set in PANfm 2"})
    app = create_app(config.load_settings(env={}, overrides={"data_dir": str(data)}))
    r = app.test_cli_runner().invoke(args=["import-panfm", str(folder)])
    assert r.exit_code == 0, r.output
    assert "connected-device metadata imported: 1 MAC(s)" in r.output
    assert "from 1.x" not in r.output  # decrypted values are stored, not printed
    stored = store.all()
    assert stored["00:1b:17:aa:bb:01"] == {"name": "from 1.x", "comment": None, "tags": ["old"], "location": None}
    assert stored["00:1b:17:aa:bb:02"]["name"] == "set in PANfm 2"
