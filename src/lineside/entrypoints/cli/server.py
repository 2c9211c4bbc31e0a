"""``lineside serve`` and ``lineside db``."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from lineside.adapters.metrics import use_multiprocess_directory
from lineside.bootstrap import Application
from lineside.entrypoints.cli.common import current_settings, opened_application
from lineside.entrypoints.cli.groups import Group
from lineside.services.operations import recount_devices
from lineside.settings import Settings


@click.command()
@click.option("--host", help="Interface to listen on [default: LINESIDE_HOST or 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: LINESIDE_PORT or 8080].")
@click.option(
    "--workers", type=click.IntRange(1, 64), help="Worker processes [default: LINESIDE_WORKERS or 1]."
)
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply migrations first.")
def serve(host: str | None, port: int | None, workers: int | None, migrate: bool) -> None:
    """Serve the HTTP API (and /docs), and an MQTT broker unless LINESIDE_MQTT_ENABLED=0.

    The broker is the embedded one, or Mosquitto with LINESIDE_MQTT_BROKER=mosquitto (MQTT 5;
    docs/mqtt.md).

    SIGTERM (or Ctrl-C) stops accepting, finishes in-flight requests and webhook deliveries,
    closes MQTT sessions and writes presence, within LINESIDE_SHUTDOWN_SECONDS, then exits 0.
    """
    # Imported here so every other command starts without loading the web stack.
    from lineside.entrypoints.mosquitto import with_broker_chosen, with_hook_secret  # noqa: PLC0415
    from lineside.entrypoints.serving import serve_http  # noqa: PLC0415

    settings = current_settings()
    overrides = {"host": host, "port": port, "workers": workers}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = with_hook_secret(with_broker_chosen(settings))
    _check_http_port_free(settings.host, settings.port)
    # The broker runs here, once: with several workers, in this supervising process. It
    # starts first, so a taken MQTT port is the one line printed, not a half-started server.
    with (
        _shared_metrics(),
        opened_application(settings, migrate=migrate) as application,
        _mqtt(application) as before_stop,
    ):
        click.echo(
            f"Lineside on http://{settings.host}:{settings.port} (docs at /docs), database {_safe(settings)}"
        )
        serve_http(settings, application, before_stop)


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """Metric values in files every process of this server writes (the workers, and this
    one with the broker), so /metrics answers the same whichever worker is scraped."""
    directory = Path(tempfile.mkdtemp(prefix="lineside-metrics-"))
    try:
        use_multiprocess_directory(directory)
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


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


@contextmanager
def _mqtt(application: Application) -> Iterator[Callable[[], None] | None]:
    """The broker for the block; yields what to run before HTTP stops: Mosquitto's stop, so
    its plugin still reaches Lineside to report the connections that end with it (the
    embedded broker stops after HTTP, on its own)."""
    from lineside.entrypoints.mosquitto import ManagedMosquitto  # noqa: PLC0415
    from lineside.entrypoints.mqtt import (  # noqa: PLC0415
        BrokerStartError,
        MosquittoStartError,
        running_broker,
    )

    try:
        with running_broker(application) as broker:
            if broker is not None:
                click.echo(f"MQTT on {broker.urls}")
            yield broker.stop if isinstance(broker, ManagedMosquitto) else None
    except MosquittoStartError as error:
        raise click.ClickException(f"{error} (or LINESIDE_MQTT_BROKER=embedded)") from None
    except BrokerStartError as error:
        raise click.ClickException(
            f"{error} (set LINESIDE_MQTT_PORT to a free port, or LINESIDE_MQTT_ENABLED=0 to turn MQTT off)"
        ) from None


def _safe(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)


@click.group(cls=Group)
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    with opened_application(migrate=True):
        click.echo("database is up to date")


@db.command("recount")
def db_recount() -> None:
    """Rebuild the device counters (quota, funnel, metrics) from the devices themselves.

    They are kept in every transaction that changes a device; run this after changing device
    rows by hand. It locks out writers while it counts (seconds per million devices).
    """
    with opened_application() as application:
        wrong = recount_devices(application.services)
    noun = "counter was" if wrong == 1 else "counters were"
    click.echo(f"device counters rebuilt: {wrong} {noun} wrong")
