"""The `db` commands of the Flask CLI: `flask --app app db backup|check|migrate-to ...`.

Registered with the other admin groups by `cli.register_cli`. Every command works on the app's
databases (the data folder's SQLite files, or PostgreSQL when `database_url` is set).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

import config
from throughput_storage import (
    ALERTS_DB,
    CONFIG_DB,
    HISTORY_DB,
    NETWORK_DB,
    DatabaseError,
    DeviceStore,
    integrity_check,
    migrate_to,
    online_backup,
    pg_backup,
    pg_check,
)

DATABASES = (CONFIG_DB, HISTORY_DB, ALERTS_DB, NETWORK_DB)
# Files a restore needs besides the databases: without encryption.key the stored secrets are lost.
BACKUP_FILES = (config.KEY_FILE, config.SETTINGS_FILE, config.SECRET_KEY_FILE)

db_cli = AppGroup("db", help="Back up or check the databases.")


def _settings() -> config.Settings:
    settings: config.Settings = current_app.config["PANFM_SETTINGS"]
    return settings


def _devices() -> DeviceStore:
    """The app's device store (SQLite files or PostgreSQL, with the app's key)."""
    store: DeviceStore = current_app.extensions["panfm"].stores.devices
    return store


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
        count = len(_devices().list())
        click.echo(f"secrets: ok ({count} devices decrypt)")
    except (config.ConfigError, DatabaseError) as exc:
        problems += 1
        click.echo(f"secrets: {exc}")
    if problems:
        raise click.ClickException(f"{problems} problem(s) found")
