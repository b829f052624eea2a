"""Admin tasks as Flask CLI commands: `flask --app app devices|users|db|keys|import-panfm ...`.

Every command works on the data folder of the app's settings (`PANFM_DATA_DIR`), through the
same stores the web uses. Secrets are never printed: `devices list` shows how a device
authenticates, not with what.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

import config
import panfm.ops as panfm_import
from panfm.models import DeviceConfig
from panfm.ops import register_demo_devices, rotate_keys, rotate_shared_keys
from panfm.web.api import BadRequest
from panfm.web.auth import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Auth
from panfm.web.device_input import device_from_body
from throughput_storage import (
    ALERTS_DB,
    CONFIG_DB,
    HISTORY_DB,
    DatabaseError,
    DeviceStore,
    IntegrityError,
    SampleStore,
    config_store,
    integrity_check,
    migrate_to,
    online_backup,
    pg_backup,
    pg_check,
)

DATABASES = (CONFIG_DB, HISTORY_DB, ALERTS_DB)
# Files a restore needs besides the databases: without encryption.key the stored secrets are lost.
BACKUP_FILES = (config.KEY_FILE, config.SETTINGS_FILE, config.SECRET_KEY_FILE)

devices_cli = AppGroup("devices", help="List, add, remove or import monitored firewalls.")
users_cli = AppGroup("users", help="Manage dashboard users.")
db_cli = AppGroup("db", help="Back up or check the databases.")
keys_cli = AppGroup("keys", help="Manage the encryption key of stored secrets.")


def _settings() -> config.Settings:
    settings: config.Settings = current_app.config["PANFM_SETTINGS"]
    return settings


def _store() -> DeviceStore:
    """The app's device store (SQLite files or PostgreSQL, with the app's key)."""
    store: DeviceStore = current_app.extensions["panfm"].stores.devices
    return store


def _find(store: DeviceStore, name_or_id: str) -> DeviceConfig:
    for device in store.list():
        if name_or_id in (device.id, device.name):
            return device
    raise click.ClickException(f"no device named {name_or_id!r}")


# ---- devices ----------------------------------------------------------------------------


def _auth_label(d: DeviceConfig) -> str:
    if d.api_key:
        return "api key" + (f" (+ user {d.username})" if d.username else "")
    return f"user {d.username}" if d.username else "none"


@devices_cli.command("list")
def devices_list() -> None:
    """Show every device (never its secrets)."""
    devices = _store().list()
    if not devices:
        click.echo("no devices")
        return
    rows = [("ID", "NAME", "ADDRESS", "TLS", "AUTH", "ENABLED")]
    rows += [
        (d.id, d.name, f"{d.host}:{d.port}", d.tls.mode, _auth_label(d), "yes" if d.enabled else "no")
        for d in devices
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@devices_cli.command("add")
@click.option("--name", required=True)
@click.option("--host", required=True, help="IP address or DNS name of the management interface")
@click.option("--port", type=int, default=443, show_default=True)
@click.option("--api-key", default=None, help="an existing XML API key (or give --username)")
@click.option("--username", default=None, help="an admin whose password generates the key (prompted)")
@click.option("--password", default=None, help="avoid: visible in the process list; prompted when omitted")
@click.option("--fingerprint", default=None, help="pin the certificate: its SHA-256, 64 hex digits")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--insecure", is_flag=True, help="accept any certificate (lab use only)")
def devices_add(
    name: str,
    host: str,
    port: int,
    api_key: str | None,
    username: str | None,
    password: str | None,
    fingerprint: str | None,
    ca_file: Path | None,
    insecure: bool,
) -> None:
    """Add a firewall with an API key or a username and password, and a TLS choice."""
    if sum((fingerprint is not None, ca_file is not None, insecure)) != 1:
        raise click.UsageError("choose exactly one of --fingerprint, --ca-file, --insecure")
    if bool(api_key) == bool(username):
        raise click.UsageError("give either --api-key or --username")
    if username and not password:
        password = click.prompt(f"Password of {username} on {host}", hide_input=True)
    tls: dict[str, Any] = (
        {"mode": "pin", "fingerprint_sha256": fingerprint}
        if fingerprint is not None
        else {"mode": "verify", "ca_pem": ca_file.read_text(encoding="ascii", errors="replace")}
        if ca_file is not None
        else {"mode": "insecure"}
    )
    body: dict[str, Any] = {"name": name, "host": host, "port": port, "tls": tls}
    body.update({"api_key": api_key} if api_key else {"username": username, "password": password})
    try:
        device = device_from_body(body, None)
    except BadRequest as exc:
        raise click.ClickException("; ".join(f"{k}: {v}" for k, v in exc.fields.items())) from None
    store = _store()
    for other in store.list():
        if other.name == device.name or (other.host, other.port) == (device.host, device.port):
            raise click.ClickException(f"device {other.name!r} already has this name or {other.host}:{other.port}")
    try:
        device_id = store.add(device)
    except IntegrityError:
        raise click.ClickException("a device with this name or host and port already exists") from None
    click.echo(f"added {device.name} ({device.host}:{device.port}) id {device_id}")


@devices_cli.command("remove")
@click.argument("name_or_id")
def devices_remove(name_or_id: str) -> None:
    """Remove a device (its history stays until retention removes it)."""
    store = _store()
    device = _find(store, name_or_id)
    store.remove(device.id)
    click.echo(f"removed {device.name} ({device.id})")


@devices_cli.command("import")
@click.argument("inventory", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--host", default=None, help="address to use instead of the inventory's")
def devices_import(inventory: Path, host: str | None) -> None:
    """Add or refresh the devices of a simulator inventory (pinned to their fingerprints)."""
    try:
        names = register_demo_devices(_settings().data_path, inventory, host)
    except (KeyError, TypeError, ValueError) as exc:
        kind = exc.__class__.__name__
        raise click.ClickException(f"{inventory}: not a simulator inventory ({kind}: {exc})") from None
    click.echo(f"imported {len(names)} devices: {', '.join(names)}")


# ---- users ------------------------------------------------------------------------------


def _user_exists(data_dir: Path, username: str) -> bool:
    return config_store.user_exists(current_app.extensions["panfm"].stores.backend, username)


@users_cli.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the new password from the first line of stdin")
def users_reset_password(username: str, password_stdin: bool) -> None:
    """Set a new password that must be changed at the next login; end the user's sessions."""
    data_dir = _settings().data_path
    if not _user_exists(data_dir, username):
        raise click.ClickException(f"no user named {username!r}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise click.ClickException(f"the password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    auth = Auth(data_dir, time.time, stores=current_app.extensions["panfm"].stores)
    # web_auth has no public "set" yet; its own hasher and writer keep one hashing code path.
    auth._set_hash(username, auth.hasher.hash(password), must_change=True)
    auth.password_changed(username, keep_sid="")  # no session is kept: every one of them ends
    click.echo(f"password of {username} reset; it must be changed at the next login")


# ---- db ---------------------------------------------------------------------------------


@db_cli.command("backup")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def db_backup(folder: Path) -> None:
    """Copy every database (online, safe while the clock writes) and the key files into FOLDER."""
    settings = _settings()
    data_dir = settings.data_path
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if settings.on_postgres:
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise click.ClickException(
                "pg_dump not found: install the PostgreSQL client (apt-get install postgresql-client, the same"
                " major version as the server or newer), or back up with the database server's own tools")
        try:
            pg_backup(settings.database_url, str(folder / "panfm.pgdump"), pg_dump)
        except DatabaseError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo("backed up the PostgreSQL database to panfm.pgdump (restore: pg_restore --dbname=URL panfm.pgdump)")
        click.echo(f"backup written to {folder}; keep PANFM_ENCRYPTION_KEY with it: without it the secrets are lost")
        return
    for name in DATABASES:
        if (data_dir / name).exists():
            online_backup(data_dir / name, folder / name)
            click.echo(f"backed up {name}")
    for name in BACKUP_FILES:
        src = data_dir / name
        if src.exists():
            config.atomic_write(folder / name, src.read_bytes())
            click.echo(f"copied {name}")
    click.echo(f"backup written to {folder} (it holds the encryption key: keep it as secret as the data folder)")


@db_cli.command("migrate-to")
@click.argument("url")
def db_migrate_to(url: str) -> None:
    """Copy this SQLite data folder (history included) into an empty PostgreSQL database at URL."""
    settings = _settings()
    if settings.on_postgres:
        raise click.ClickException("this PANfm already runs on PostgreSQL (database_url is set)")
    try:
        target = dataclasses.replace(settings, database_url=config.coerce("database_url", url, "URL"))
        copied = migrate_to(settings, target, click.echo)
    except (config.ConfigError, DatabaseError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("copied: " + ", ".join(f"{name} {rows}" for name, rows in copied.items()))
    click.echo("done: set PANFM_DATABASE_URL (and the same PANFM_ENCRYPTION_KEY, PANFM_SECRET_KEY) on every host,"
               " then start the web and the clocks")


@db_cli.command("check")
def db_check() -> None:
    """Check every database's integrity, the settings and that every stored secret decrypts."""
    settings = _settings()
    data_dir = settings.data_path
    problems = 0
    if settings.on_postgres:
        for item, result in pg_check(current_app.extensions["panfm"].stores.backend):
            problems += not (result.startswith("ok") or item == "size")
            click.echo(f"{item}: {result}")
    for name in () if settings.on_postgres else DATABASES:
        path = data_dir / name
        if not path.exists():
            click.echo(f"{name}: absent")
            continue
        result = integrity_check(path)
        problems += result != "ok"
        click.echo(f"{name}: {result}")
    try:
        config.load_settings(overrides={"data_dir": str(data_dir)})
        click.echo("settings: ok")
    except config.ConfigError as exc:
        problems += 1
        click.echo(f"settings: {exc}")
    try:
        count = len(_store().list())
        click.echo(f"secrets: ok ({count} devices decrypt)")
    except (config.ConfigError, DatabaseError) as exc:
        problems += 1
        click.echo(f"secrets: {exc}")
    if problems:
        raise click.ClickException(f"{problems} problem(s) found")


# ---- keys -------------------------------------------------------------------------------


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret under a new Fernet key, then drop the old key."""
    try:
        stores = current_app.extensions["panfm"].stores
        done = rotate_shared_keys(stores.backend, stores.box) if stores.on_postgres else rotate_keys(
            _settings().data_path)
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"rotated: {done.device_secrets} device secrets and {done.document_secrets} channel secrets"
        f" re-encrypted, {done.old_keys_dropped} old key(s) dropped"
    )


# ---- PANfm 1.x import ---------------------------------------------------------------------


@click.command("import-panfm")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="read and report, write nothing")
@with_appcontext
def import_panfm(folder: Path, dry_run: bool) -> None:
    """Import a PANfm 1.x folder: devices with their API keys, settings, throughput history."""
    if _settings().on_postgres:
        # 1.x history comes in chunks of many times per write; PostgreSQL keys samples by slot.
        raise click.ClickException("import-panfm writes a SQLite data folder: import into one (database_url"
                                   " empty), then copy it with `flask --app app db migrate-to URL`")
    data_dir = _settings().data_path
    report = panfm_import.ImportReport()
    try:
        devices = panfm_import.read_devices(folder, report)
        report.settings = panfm_import.read_settings(folder, report)
        store = _store()
        existing = store.list()
        sample_ids: set[str] = set()
        for device in devices:
            if device.id and any(e.id == device.id for e in existing):
                report.skipped.append(f"device {device.name!r}: already imported (same id), kept as is")
                sample_ids.add(device.id)  # re-importing its samples replaces identical rows
                continue
            address = (device.host, device.port)
            clash = next((e for e in existing if e.name == device.name or (e.host, e.port) == address), None)
            if clash is not None:
                report.skipped.append(f"device {device.name!r}: {clash.name!r} already has its name or address")
                continue
            try:
                device_id = device.id if dry_run else store.add(device)
            except IntegrityError:
                report.skipped.append(f"device {device.name!r}: its id, name or address is already taken")
                continue
            existing.append(device)  # two 1.x entries with one name must not both get in
            report.devices.append(device.name)
            sample_ids.add(device_id)
        if not dry_run and report.settings:
            config.save_settings(data_dir, report.settings)
        samples = panfm_import.read_samples(folder, sample_ids, report)
        if dry_run:
            for _ in samples:
                pass  # counting is the generator's job (report.samples)
        else:
            with SampleStore.open(data_dir / HISTORY_DB) as history:
                panfm_import.import_samples(history, samples, now=time.time())
    except panfm_import.ImportError_ as exc:
        raise click.ClickException(str(exc)) from None
    if dry_run:
        click.echo("dry run: nothing was written")
    for line in report.lines():
        click.echo(line)
    if report.devices and not dry_run:
        click.echo("imported devices are disabled: confirm each one's certificate fingerprint on the Devices page")


def register_cli(app: Flask) -> None:
    """Attach the admin command groups to the app's `flask` CLI."""
    for command in (devices_cli, users_cli, db_cli, keys_cli, import_panfm):
        app.cli.add_command(command)
