"""The ``lineside`` command group."""

from __future__ import annotations

import sys

import click
from sqlalchemy.exc import DBAPIError

from lineside import __version__
from lineside.entrypoints.cli.backups import backup, restore
from lineside.entrypoints.cli.common import load_settings
from lineside.entrypoints.cli.demo import demo
from lineside.entrypoints.cli.devices import devices
from lineside.entrypoints.cli.factory import factory
from lineside.entrypoints.cli.firmware import firmware
from lineside.entrypoints.cli.groups import Group
from lineside.entrypoints.cli.organizations import keys, org
from lineside.entrypoints.cli.provisioning import provisioning
from lineside.entrypoints.cli.server import db, serve
from lineside.entrypoints.cli.tokens import tokens
from lineside.entrypoints.cli.worker import worker
from lineside.entrypoints.logs import configure_logging


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lineside")
@click.pass_context
def cli(context: click.Context) -> None:
    """Lineside: device provisioning from the factory line to the owner's hands.

    Configuration comes from LINESIDE_* environment variables (see README).
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    context.obj = settings


for command in (
    serve,
    db,
    org,
    keys,
    devices,
    tokens,
    firmware,
    factory,
    worker,
    demo,
    provisioning,
    backup,
    restore,
):
    cli.add_command(command)


EX_UNAVAILABLE = 69  # sysexits: a service the command needs is not there
EX_IOERR = 74  # sysexits: a file or directory it needs cannot be used


def main() -> None:
    try:
        cli()
    except DBAPIError as error:
        # A database that is down, refuses the credentials or does not exist: one line.
        reason = str(error.orig).strip().splitlines()[0] if error.orig else error.__class__.__name__
        click.echo(f"Error: cannot use the database ({reason}); check LINESIDE_DATABASE_URL.", err=True)
        sys.exit(EX_UNAVAILABLE)
    except OSError as error:
        if error.filename is None:
            raise
        # The SQLite file's directory, or the data directory, cannot be made or written.
        where = f"{error.filename}: {error.strerror}"
        click.echo(f"Error: {where} (check LINESIDE_DATABASE_URL and LINESIDE_DATA_DIR).", err=True)
        sys.exit(EX_IOERR)
