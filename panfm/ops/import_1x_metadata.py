"""Read PANfm 1.x's `device_metadata.json`: the admin's name, comment, tags and location per MAC.

Two layouts exist in 1.x: `{mac: {...}}` (1.10/1.11) and the later per-firewall
`{device_id: {mac: {...}}}`; PANfm 2 keeps one record per MAC, so the per-firewall form is
merged (the first non-empty value of each field wins, a conflict is reported). Every string is
encrypted like the other 1.x secrets (`LegacySecrets`: plaintext passes through); a tags value
may be a list or one encrypted JSON or comma-separated string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from panfm.ops.import_1x import ImportError_, ImportReport, LegacySecrets, read_json
from panfm.xmlapi import normalize_mac

LIMITS = {"name": 100, "comment": 1000, "location": 100}
MAX_TAGS, MAX_TAG = 20, 40


def _text(value: Any, secrets: LegacySecrets) -> str | None:
    if value is None:
        return None
    text = secrets.decrypt(str(value)).strip()
    return text or None


def _tags(value: Any, secrets: LegacySecrets) -> list[str]:
    items: list[str | None]
    if isinstance(value, list):
        items = [_text(v, secrets) for v in value]
    elif value is None:
        items = []
    else:
        text = _text(value, secrets) or ""
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        items = [str(t) for t in parsed] if isinstance(parsed, list) else list(text.split(","))
    tags = [t.strip()[:MAX_TAG] for t in items if t and t.strip()]
    return list(dict.fromkeys(tags))[:MAX_TAGS]


def _record(raw: Any, secrets: LegacySecrets) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for field, limit in LIMITS.items():
        text = _text(raw.get(field), secrets)
        if text is not None:
            out[field] = text[:limit]
    tags = _tags(raw.get("tags"), secrets)
    if tags:
        out["tags"] = tags
    return out or None


def read_metadata(folder: Path, report: ImportReport) -> dict[str, dict[str, Any]]:
    """Per-MAC metadata of `device_metadata.json` (absent: nothing), decrypted and normalised."""
    doc = read_json(folder / "device_metadata.json")
    if doc is None:
        report.skipped.append("device_metadata.json: absent")
        return {}
    if not isinstance(doc, dict):
        raise ImportError_(f"{folder / 'device_metadata.json'}: not a JSON object")
    key = folder / "encryption.key"
    if not key.exists():
        raise ImportError_(f"{key}: absent, device_metadata.json cannot be decrypted")
    secrets = LegacySecrets(key.read_bytes())
    flat: list[tuple[str, Any]] = []
    for top, value in doc.items():
        if normalize_mac(str(top)) is not None:
            flat.append((str(top), value))
        elif isinstance(value, dict) and any(normalize_mac(str(k)) for k in value):
            # Per-firewall layout: {device_id: {mac: metadata}}.
            flat.extend((str(mac), meta) for mac, meta in value.items())
        else:
            report.skipped.append(f"device_metadata.json entry {str(top)[:40]!r}: not a MAC")
    out: dict[str, dict[str, Any]] = {}
    for mac_text, raw in flat:
        mac = normalize_mac(mac_text)
        if mac is None:
            report.skipped.append(f"device_metadata.json entry {mac_text[:40]!r}: not a MAC")
            continue
        record = _record(raw, secrets)
        if record is None:
            continue
        merged = out.setdefault(mac, {})
        for field, value in record.items():
            if field not in merged:
                merged[field] = value
            elif merged[field] != value:
                report.skipped.append(f"device_metadata.json {mac} {field}: two firewalls disagree, kept the first")
    report.metadata = len(out)
    return out
