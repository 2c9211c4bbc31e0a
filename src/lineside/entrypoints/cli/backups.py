"""``lineside backup`` and ``lineside restore``: the database and the data directory together."""

from __future__ import annotations

from pathlib import Path

import click

from lineside.adapters.backups import BackupError, restore_backup, write_backup
from lineside.entrypoints.cli.common import current_settings, opened_application, staged_output


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def backup(out: Path, force: bool) -> None:
    """Write the database and the data directory (server key, CA keys, firmware) to OUT.

    SQLite: a consistent snapshot, taken while the server runs. PostgreSQL: pg_dump's custom
    format (pg_dump must be on PATH). OUT is a .tar.gz holding every secret's key: it is
    written with owner-only permissions and must be kept like the data directory itself.
    """
    settings = current_settings()
    with staged_output(out, force) as staged, opened_application(migrate=False) as app:
        assert staged is not None
        try:
            summary = write_backup(
                staged.handle, settings.database_url, settings.data_dir, app.schema_revision()
            )
        except BackupError as error:
            raise click.ClickException(str(error)) from None
        staged.publish()
    click.echo(
        f"backed up the {summary.backend} database (schema {summary.schema_revision}) and "
        f"{summary.data_files} files of {settings.data_dir} to {out}"
    )


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing database and data directory.")
def restore(archive: Path, force: bool) -> None:
    """Restore a backup into LINESIDE_DATABASE_URL and LINESIDE_DATA_DIR, then migrate.

    Stop every server first. Without --force it refuses to replace a database or a data
    directory that is already in use.
    """
    settings = current_settings()
    try:
        summary = restore_backup(archive, settings.database_url, settings.data_dir, replace=force)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    with opened_application(migrate=True) as app:
        revision = app.schema_revision()
    click.echo(
        f"restored the {summary.backend} backup of {summary.created_at} ({summary.data_files} data files); "
        f"schema now at {revision}"
    )
