"""Import a PANfm 1.x data folder: devices (with their API keys), settings, throughput history.

The connected devices' per-MAC metadata (`device_metadata.json`) is read by `import_1x_metadata`.

The 1.x formats are described in docs/migration.md. Reading is separate from writing so the
report can say what was imported and what was skipped, and a dry run changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken

from panfm.models import CycleResult, DeviceConfig, DeviceSample, InterfaceSample, TlsConfig
from throughput_storage import DatabaseError, SampleReader, SampleStore, StorageUnavailable, legacy_history_rows

T = TypeVar("T")


class ImportError_(Exception):
    """The 1.x folder cannot be imported; the message says which file and why."""


@dataclass
class ImportReport:
    """What an import did: counts and one line per skipped item."""

    devices: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    samples: int = 0
    metadata: int = 0
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"devices imported: {len(self.devices)}" + (f" ({', '.join(self.devices)})" if self.devices else "")]
        out.append("settings imported: " + (", ".join(f"{k}={v}" for k, v in self.settings.items()) or "none"))
        out.append(f"throughput samples imported: {self.samples}")
        out.append(f"connected-device metadata imported: {self.metadata} MAC(s)")
        out.extend(f"skipped: {s}" for s in self.skipped)
        return out


# Settings with an equivalent here, and the bounds PANfm 2 accepts.
SETTING_MAP = {"refresh_interval": (5, 300), "throughput_retention_days": (1, 3650)}
IGNORED_SETTINGS = {"selected_device_id", "debug_logging", "timezone", "monitored_interface", "firewall_ip", "api_key"}


class LegacySecrets:
    """Decrypt 1.x secrets: base64 of a Fernet token; a value that is not one is plaintext."""

    def __init__(self, key: bytes) -> None:
        try:
            self.fernet = Fernet(key.strip())
        except ValueError:
            raise ImportError_("encryption.key: not a Fernet key") from None

    def decrypt(self, value: str) -> str:
        try:
            token = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
        if not token.startswith(b"gAAAAA"):
            return value
        try:
            return self.fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise ImportError_("a secret in the 1.x folder does not decrypt with its encryption.key") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise ImportError_(f"{path}: unreadable ({exc})") from None


def split_host_port(value: str) -> tuple[str, int]:
    """`ip` of 1.x may carry `:port` (IPv6 in brackets); 443 otherwise."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 443
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, 443


def read_devices(folder: Path, report: ImportReport) -> list[DeviceConfig]:
    """Devices of devices.json with decrypted API keys, disabled until a TLS decision is made.

    PANfm 1.x never verified certificates, so an imported device is stored with a pin mode and
    no fingerprint, disabled: the admin confirms its fingerprint (Devices page) to enable it.
    """
    doc = read_json(folder / "devices.json")
    if doc is None:
        report.skipped.append("devices.json: absent")
        return []
    key = folder / "encryption.key"
    if not key.exists():
        raise ImportError_(f"{key}: absent, the API keys in devices.json cannot be decrypted")
    secrets = LegacySecrets(key.read_bytes())
    out: list[DeviceConfig] = []
    for i, d in enumerate(doc.get("devices", []) if isinstance(doc, dict) else []):
        label = f"devices.json device #{i + 1}"
        try:
            name = str(d["name"]).strip() or f"device-{i + 1}"
            host, port = split_host_port(str(d["ip"]))
            api_key = secrets.decrypt(str(d["api_key"])) if d.get("api_key") else None
        except (KeyError, TypeError, ValueError) as exc:
            report.skipped.append(f"{label}: malformed ({exc})")
            continue
        if not api_key:
            report.skipped.append(f"{label} {name!r}: no API key")
            continue
        iface = d.get("monitored_interface") or ""
        wan = d.get("wan_interface") or ""
        out.append(
            DeviceConfig(
                id=str(d.get("id") or ""),
                name=name,
                host=host,
                port=port,
                api_key=api_key,
                tls=TlsConfig(mode="pin", fingerprint_sha256=None),
                interfaces=(iface,) if iface else (),
                enabled=False,
                uplinks=(wan.strip(),) if isinstance(wan, str) and wan.strip() else (),
            )
        )
    return out


def read_settings(folder: Path, report: ImportReport) -> dict[str, Any]:
    """Settings of settings.json that have an equivalent, clamped to PANfm 2's bounds."""
    doc = read_json(folder / "settings.json")
    if not isinstance(doc, dict):
        report.skipped.append("settings.json: absent or not an object")
        return {}
    out: dict[str, Any] = {}
    for name, value in doc.items():
        if name in SETTING_MAP and isinstance(value, int | float) and not isinstance(value, bool):
            lo, hi = SETTING_MAP[name]
            clamped = int(min(max(value, lo), hi))
            if clamped != value:
                report.skipped.append(f"settings.json {name}={value}: outside {lo}-{hi}, stored as {clamped}")
            out[name] = clamped
        elif name == "alert_notification_channels":
            report.skipped.append("settings.json alert_notification_channels: re-create channels as Apprise URLs")
        elif name not in IGNORED_SETTINGS:
            report.skipped.append(f"settings.json {name}: no equivalent in PANfm 2")
    return out


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _num(row: Mapping[str, Any], col: str) -> Any:
    return row.get(col)  # an older 1.x schema lacks some columns


def read_samples(folder: Path, device_ids: set[str], report: ImportReport) -> Iterator[DeviceSample]:
    """Yield history rows as samples, dropping 1.x's false zeros and its Swap-based memory."""
    path = folder / "throughput_history.db"
    if not path.exists():
        report.skipped.append("throughput_history.db: absent")
        return
    dropped_zero = unknown = bad = 0
    try:
        for row in legacy_history_rows(path):
            if row["device_id"] not in device_ids:
                unknown += 1
                continue
            try:
                ts = _epoch(row["timestamp"])
            except (TypeError, ValueError):
                bad += 1
                continue
            inb, outb = _num(row, "inbound_mbps"), _num(row, "outbound_mbps")
            if inb == 0 and outb == 0:
                dropped_zero += 1  # 1.x wrote a false zero after every restart
                continue
            sessions, dp, mp = _num(row, "sessions_active"), _num(row, "cpu_data_plane"), _num(row, "cpu_mgmt_plane")
            yield DeviceSample(
                device_id=row["device_id"],
                ts=ts,
                inbound_mbps=inb,
                outbound_mbps=outb,
                total_mbps=_num(row, "total_mbps") if inb is not None and outb is not None else None,
                inbound_pps=_num(row, "inbound_pps"),
                outbound_pps=_num(row, "outbound_pps"),
                sessions_active=sessions,
                sessions_tcp=_num(row, "sessions_tcp"),
                sessions_udp=_num(row, "sessions_udp"),
                sessions_icmp=_num(row, "sessions_icmp"),
                cpu_dataplane_pct=dp,
                cpu_management_pct=mp,
            )
            report.samples += 1
    except DatabaseError as exc:
        raise ImportError_(f"{path}: not a PANfm 1.x history database ({exc})") from None
    if dropped_zero:
        report.skipped.append(f"throughput_history.db: {dropped_zero} false-zero samples (1.x restarts)")
    if unknown:
        report.skipped.append(f"throughput_history.db: {unknown} samples of devices not in devices.json")
    if bad:
        report.skipped.append(f"throughput_history.db: {bad} samples with an unreadable timestamp")
    report.skipped.append("throughput_history.db: memory_used_pct (1.x read the Swap line) and since-boot totals")


def import_samples(
    store: SampleStore,
    samples: Iterable[DeviceSample],
    now: float,
    chunk: int = 5000,
    interfaces: Iterable[InterfaceSample] = (),
) -> int:
    """Write past samples through `store` in chunks, then build the rollups of their range.

    The one write path of history that was not collected (`import-panfm`, the demo's backfill).

    1. Chunks are written as cycles that close no bucket (`started` = 0): no rollup work yet,
       and a running clock's rollup mark is left alone. Interface samples follow the same way.
    2. A last cycle re-writes the earliest sample (INSERT OR REPLACE: same row) with
       `started` = now, so the rollups are recomputed once from the earliest imported
       bucket to now, over imported and collected rows alike.
    3. `finished` carries the clock's current heartbeat, so an import never fakes one.
    """
    written = 0
    earliest: DeviceSample | None = None

    def flush(started: float, rows: list[DeviceSample], ifaces: list[InterfaceSample]) -> None:
        heartbeat = _heartbeat(store)
        store.write_cycle(CycleResult(started, heartbeat, tuple(rows), tuple(ifaces), (), ()))

    for batch in _chunks(samples, chunk):
        for sample in batch:
            if earliest is None or sample.ts < earliest.ts:
                earliest = sample
        flush(0.0, batch, [])
        written += len(batch)
    for ifaces in _chunks(interfaces, chunk):
        flush(0.0, [], ifaces)
    if earliest is not None:
        flush(now, [earliest], [])
    return written


def _chunks(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _heartbeat(store: SampleStore) -> float:
    """The heartbeat stored now (0.0 before any clock ran: the UPDATE then touches no row)."""
    try:
        with SampleReader.open(store.path) as reader:
            stats = reader.clock_stats()
    except StorageUnavailable:
        return 0.0
    return float(stats["heartbeat"]) if stats and stats.get("heartbeat") is not None else 0.0
