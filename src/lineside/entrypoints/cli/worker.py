"""``lineside worker``: deliver webhooks without serving the API."""

from __future__ import annotations

import click

from lineside.entrypoints.cli.common import opened_application
from lineside.entrypoints.worker import run_until_signalled


@click.command()
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply migrations first.")
def worker(migrate: bool) -> None:
    """Deliver webhooks from the event outbox until SIGTERM or Ctrl-C.

    Run as many as you like beside the servers (on PostgreSQL they share the work); set
    LINESIDE_WEBHOOK_WORKER=0 on the servers to leave delivery to these alone.
    """
    with opened_application(migrate=migrate) as application:
        run_until_signalled(
            application,
            on_ready=lambda: click.echo("Lineside webhook worker: delivering until SIGTERM or Ctrl-C"),
        )
    click.echo("webhook worker stopped")
