"""Admin tasks as Flask CLI commands: `flask --app app devices|users|db|keys|import-panfm ...`.

The `db` group (backup, check, migrate-to) lives in `cli_db.py`; `register_cli` attaches every group.

Every command works on the data folder of the app's settings (`PANFM_DATA_DIR`), through the
same stores the web uses. Secrets are never printed: `devices list` shows how a device
authenticates, not with what.
"""

from __future__ import annotations

import getpass
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
from panfm.web.audit import changed_fields
from panfm.web.auth import Auth
from panfm.web.cli_db import db_cli
from panfm.web.device_input import device_from_body
from panfm.web.roles import ROLES
from panfm.web.users import password_problem, username_problem
from throughput_storage import (
    HISTORY_DB,
    DeviceStore,
    IntegrityError,
    MetadataStore,
    SampleStore,
    Stores,
    config_store,
)

devices_cli = AppGroup("devices", help="List, add, remove or import monitored firewalls.")
users_cli = AppGroup("users", help="Manage dashboard users.")
keys_cli = AppGroup("keys", help="Manage the encryption key of stored secrets.")


def _settings() -> config.Settings:
    settings: config.Settings = current_app.config["PANFM_SETTINGS"]
    return settings


def _stores() -> Stores:
    """The app's stores (SQLite files of the data folder, or PostgreSQL)."""
    stores: Stores = current_app.extensions["panfm"].stores
    return stores


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


def _read_password(password_stdin: bool, prompt: str) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    if problem := password_problem(password):
        raise click.ClickException(f"the password needs {problem}")
    return password


def _cli_audit(action: str, target: str, fields: dict[str, Any] | None = None) -> None:
    """Record a CLI change in the audit trail; the actor is the shell user, marked `cli:`."""
    try:
        who = getpass.getuser()
    except (OSError, KeyError):  # no user entry for this uid (a container)
        who = "?"
    actor = "cli:" + who
    _stores().audit().append(actor, action, target, changed_fields(fields or {}), time.time())


@users_cli.command("list")
def users_list() -> None:
    """Show every user with its role and state (never a password hash)."""
    rows = [("USER", "ROLE", "STATE", "PASSWORD")]
    for a in _stores().users().accounts():
        rows.append((a.username, a.role, "disabled" if a.disabled else "enabled",
                     "must change" if a.must_change_password else "set"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@users_cli.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def users_add(username: str, role: str, password_stdin: bool) -> None:
    """Add a user with a role; the password must be changed at the first login."""
    if problem := username_problem(username):
        raise click.ClickException(f"user name: {problem}")
    password = _read_password(password_stdin, "Password")
    auth = Auth(_settings().data_path, time.time, stores=_stores())
    if not auth.users.create(username, auth.hasher.hash(password), role, must_change=True, now=time.time()):
        raise click.ClickException(f"a user named {username!r} already exists")
    _cli_audit("user.create", username, {"role": role, "password": "(set)"})  # nosec B105 (a marker, no password)
    click.echo(f"added {username} ({role}); the password must be changed at the first login")


def _change(username: str, role: str | None, disabled: bool | None) -> None:
    data_dir = _settings().data_path
    outcome = _stores().users().change(username, role=role, disabled=disabled, now=time.time())
    if outcome == "missing":
        raise click.ClickException(f"no user named {username!r}")
    if outcome == "last_admin":
        raise click.ClickException(f"{username} is the last enabled admin: make another user admin first")
    if disabled:
        Auth(data_dir, time.time, stores=_stores()).end_sessions(username)
    fields: dict[str, Any] = {"role": role} if role is not None else {"disabled": disabled}
    _cli_audit("user.update", username, fields)


@users_cli.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="enable the user again instead")
def users_disable(username: str, enable: bool) -> None:
    """Disable a user (its sessions end and its API tokens stop working), or enable it again."""
    _change(username, None, not enable)
    click.echo(f"{username} {'enabled' if enable else 'disabled'}")


@users_cli.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
def users_set_role(username: str, role: str) -> None:
    """Give a user another role (admin, operator or viewer)."""
    _change(username, role, None)
    click.echo(f"{username} is now {role}")


@users_cli.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the new password from the first line of stdin")
def users_reset_password(username: str, password_stdin: bool) -> None:
    """Set a new password that must be changed at the next login; end the user's sessions."""
    data_dir = _settings().data_path
    if not _user_exists(data_dir, username):
        raise click.ClickException(f"no user named {username!r}")
    password = _read_password(password_stdin, "New password")
    Auth(data_dir, time.time, stores=_stores()).reset_password(username, password)
    _cli_audit("user.update", username, {"password": "(set)"})  # nosec B105 (a marker, no password)
    click.echo(f"password of {username} reset; it must be changed at the next login")


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
    """Import a PANfm 1.x folder: devices with their API keys, settings, throughput history, device metadata."""
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
        metadata = panfm_import.read_metadata(folder, report)
        if metadata and not dry_run:
            # Metadata the admin already set in PANfm 2 wins over the 1.x copy.
            report.metadata = MetadataStore(data_dir, time.time).import_many(metadata)
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
