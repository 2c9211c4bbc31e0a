"""``lineside serve`` and ``lineside db``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.engine import make_url

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.migrate import upgrade_database
from lineside.bootstrap import Application
from lineside.entrypoints.cli.common import opened_application
from lineside.settings import Settings


@click.command()
@click.option("--host", help="Interface to listen on [default: LINESIDE_HOST or 127.0.0.1].")
@click.option("--port", type=int, help="Port [default: LINESIDE_PORT or 8080].")
@click.option("--workers", type=int, help="Worker processes [default: LINESIDE_WORKERS or 1].")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply migrations first.")
def serve(host: str | None, port: int | None, workers: int | None, migrate: bool) -> None:
    """Serve the HTTP API (and /docs), and the embedded MQTT broker unless LINESIDE_MQTT_ENABLED=0."""
    # Imported here so every other command starts without loading the web stack.
    import uvicorn  # noqa: PLC0415

    from lineside.entrypoints.api.app import create_app  # noqa: PLC0415

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    if migrate:
        engine = create_database_engine(settings.database_url)
        upgrade_database(engine)
        engine.dispose()
    # The broker runs here, once: with several workers, in this supervising process. It
    # starts first, so a taken MQTT port is the one line printed, not a half-started server.
    with opened_application(migrate=False) as application, _mqtt(application):
        click.echo(f"Lineside on http://{host}:{port} (docs at /docs), database {_safe(settings)}")
        if workers > 1:
            uvicorn.run(
                "lineside.entrypoints.asgi:create_app_from_environment",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level=settings.log_level,
            )
        else:
            uvicorn.run(create_app(application), host=host, port=port, log_level=settings.log_level)


@contextmanager
def _mqtt(application: Application) -> Iterator[None]:
    from lineside.entrypoints.mqtt import BrokerStartError, running_broker  # noqa: PLC0415

    try:
        with running_broker(application) as broker:
            if broker is not None:
                click.echo(f"MQTT on {broker.urls}")
            yield
    except BrokerStartError as error:
        raise click.ClickException(
            f"{error} (set LINESIDE_MQTT_PORT to a free port, or LINESIDE_MQTT_ENABLED=0 to turn MQTT off)"
        ) from None


def _safe(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = Settings()
    engine = create_database_engine(settings.database_url)
    upgrade_database(engine)
    engine.dispose()
    click.echo("database is up to date")
