"""``lineside serve`` and ``lineside db``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy.engine import make_url

from lineside.adapters.db.engine import create_database_engine
from lineside.adapters.db.migrate import upgrade_database
from lineside.bootstrap import Application
from lineside.entrypoints.cli.common import current_settings, opened_application
from lineside.settings import Settings


@click.command()
@click.option("--host", help="Interface to listen on [default: LINESIDE_HOST or 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: LINESIDE_PORT or 8080].")
@click.option(
    "--workers", type=click.IntRange(1, 64), help="Worker processes [default: LINESIDE_WORKERS or 1]."
)
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply migrations first.")
def serve(host: str | None, port: int | None, workers: int | None, migrate: bool) -> None:
    """Serve the HTTP API (and /docs), and the embedded MQTT broker unless LINESIDE_MQTT_ENABLED=0."""
    # Imported here so every other command starts without loading the web stack.
    import uvicorn  # noqa: PLC0415

    from lineside.entrypoints.api.app import create_app  # noqa: PLC0415

    settings = current_settings()
    overrides = {"host": host, "port": port, "workers": workers}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    _check_http_port_free(settings.host, settings.port)
    if migrate:
        _migrate(settings)
    # The broker runs here, once: with several workers, in this supervising process. It
    # starts first, so a taken MQTT port is the one line printed, not a half-started server.
    with opened_application(migrate=False) as application, _mqtt(application):
        click.echo(
            f"Lineside on http://{settings.host}:{settings.port} (docs at /docs), database {_safe(settings)}"
        )
        if settings.workers > 1:
            uvicorn.run(
                "lineside.entrypoints.asgi:create_app_from_environment",
                factory=True,
                workers=settings.workers,
                **uvicorn_options(settings),
            )
        else:
            uvicorn.run(create_app(application), **uvicorn_options(settings))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How every Lineside server runs uvicorn.

    ``log_config=None``: uvicorn's records go through the one redacting handler
    (``entrypoints.logs``) instead of handlers of its own. ``proxy_headers=False``: the app
    itself believes X-Forwarded-For only from LINESIDE_TRUSTED_PROXIES; uvicorn's default
    would believe any client on loopback.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": None,
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.shutdown_seconds,
    }


def _check_http_port_free(host: str, port: int) -> None:
    """Refuse a taken port in one line before anything starts (uvicorn would print a
    traceback after the banner)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise click.ClickException(
                f"cannot listen for HTTP on {host}:{port}: {error.strerror} "
                "(set LINESIDE_PORT or --port to a free port)"
            ) from None


def _migrate(settings: Settings) -> None:
    engine = create_database_engine(settings.database_url)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()


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
    _migrate(current_settings())
    click.echo("database is up to date")
