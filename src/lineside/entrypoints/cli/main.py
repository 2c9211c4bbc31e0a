"""The ``lineside`` command group. Its commands are imported when they run (``LazyGroup``),
so ``lineside --help`` and a command's own help start in a fraction of a second."""

from __future__ import annotations

import sys

import click

from lineside import __version__
from lineside.entrypoints.cli.groups import LazyCommand, RootGroup, help_requested
from lineside.entrypoints.logs import configure_logging

_CLI = "lineside.entrypoints.cli"
COMMANDS = {
    "backup": LazyCommand(
        f"{_CLI}.backups",
        "backup",
        "Write the database and the data directory (server key, CA keys, firmware) to OUT.",
    ),
    "ca": LazyCommand(
        f"{_CLI}.authorities",
        "ca",
        "A product's own certificate authorities (factory PKI): register, verify, disable, CRL.",
    ),
    "db": LazyCommand(
        f"{_CLI}.server",
        "db",
        "Database schema.",
    ),
    "demo": LazyCommand(
        f"{_CLI}.demo",
        "demo",
        "The whole story in one command, on a private server that goes away afterwards.",
    ),
    "devices": LazyCommand(
        f"{_CLI}.devices",
        "devices",
        "Devices.",
    ),
    "factory": LazyCommand(
        f"{_CLI}.factory",
        "factory",
        "The factory line over HTTP: enroll DUTs, test, bless, production tokens, claims.",
    ),
    "firmware": LazyCommand(
        f"{_CLI}.firmware",
        "firmware",
        "Firmware images carrying device credentials.",
    ),
    "keys": LazyCommand(
        f"{_CLI}.organizations",
        "keys",
        "API keys.",
    ),
    "org": LazyCommand(
        f"{_CLI}.organizations",
        "org",
        "Organizations.",
    ),
    "provisioning": LazyCommand(
        f"{_CLI}.provisioning",
        "provisioning",
        "MQTT provisioning (ThingsBoard-compatible) of a product's devices.",
    ),
    "restore": LazyCommand(
        f"{_CLI}.backups",
        "restore",
        "Restore a backup into LINESIDE_DATABASE_URL and LINESIDE_DATA_DIR, then migrate.",
    ),
    "serve": LazyCommand(
        f"{_CLI}.server",
        "serve",
        "Serve the HTTP API (and /docs), and an MQTT broker unless LINESIDE_MQTT_ENABLED=0.",
    ),
    "station": LazyCommand(
        f"{_CLI}.stations",
        "station",
        "Offline factory stations: run a product's line at the factory without the server, and sync.",
    ),
    "tokens": LazyCommand(
        f"{_CLI}.tokens",
        "tokens",
        "Static tokens: a device token for the firmware and a QR claim code per unit.",
    ),
    "worker": LazyCommand(
        f"{_CLI}.worker",
        "worker",
        "Deliver webhooks from the event outbox until SIGTERM or Ctrl-C.",
    ),
}


@click.group(cls=RootGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lineside")
@click.pass_context
def cli(context: click.Context) -> None:
    """Lineside: device provisioning from the factory line to the owner's hands.

    Configuration comes from LINESIDE_* environment variables (see README).
    """
    if help_requested(context):
        return  # a help page needs no settings (pydantic-settings alone costs 0.2 s to import)
    from lineside.entrypoints.cli.common import load_settings  # noqa: PLC0415 - not for help

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    context.obj = settings


EX_UNAVAILABLE = 69  # sysexits: a service the command needs is not there
EX_IOERR = 74  # sysexits: a file or directory it needs cannot be used


def main() -> None:
    try:
        cli()
    except OSError as error:
        if error.filename is None:
            raise
        # The SQLite file's directory, or the data directory, cannot be made or written.
        where = f"{error.filename}: {error.strerror}"
        click.echo(f"Error: {where} (check LINESIDE_DATABASE_URL and LINESIDE_DATA_DIR).", err=True)
        sys.exit(EX_IOERR)
    except Exception as error:
        reason = _database_problem(error)
        if reason is None:
            raise
        # A database that is down, refuses the credentials or does not exist: one line.
        click.echo(f"Error: cannot use the database ({reason}); check LINESIDE_DATABASE_URL.", err=True)
        sys.exit(EX_UNAVAILABLE)


def _database_problem(error: Exception) -> str | None:
    """The first line of a database driver's complaint, or None for any other error.
    SQLAlchemy is imported only when something failed: most commands never load it."""
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    if not isinstance(error, DBAPIError):
        return None
    return str(error.orig).strip().splitlines()[0] if error.orig else error.__class__.__name__
