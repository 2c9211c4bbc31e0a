"""``lineside station run | sync | status``: the station process at the factory, from its
bundle. (``station create | list | show | revoke``, the server's side, are in ``stations``.)

Exit codes: 0 done; 1 the sync stopped, failed or could not reach the server; 2 bad usage or
a bundle that cannot be used (one line on stderr says why).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from lineside.bootstrap import Application
from lineside.entrypoints.cli.common import echo_json
from lineside.entrypoints.station.bundle import BundleProblem, StationBundle, read_bundle
from lineside.entrypoints.station.home import DATABASE_FILE, data_dir_of, open_station
from lineside.entrypoints.station.status import station_status, status_lines
from lineside.entrypoints.station.sync import StationLink, SyncFailed, entries_waiting_after_head, sync_ledger

EXIT_FAILED = 1
EXIT_UNUSABLE = 2


class StationError(click.ClickException):
    exit_code = EXIT_FAILED


class UnusableBundle(click.ClickException):
    exit_code = EXIT_UNUSABLE


bundle_argument = click.argument("bundle_path", metavar="BUNDLE", type=click.Path(path_type=Path))
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the station keeps its database and CA [default: BUNDLE.station/ beside the bundle].",
)
server_option = click.option("--server", help="The Lineside server [default: the bundle's server_url].")


def _bundle(path: Path) -> StationBundle:
    try:
        return read_bundle(path)
    except BundleProblem as problem:
        raise UnusableBundle(str(problem)) from None


@contextmanager
def _station(
    bundle: StationBundle, data_dir: Path | None, *, existing: bool = False
) -> Iterator[Application]:
    directory = data_dir_of(bundle, data_dir)
    if existing and not (directory / DATABASE_FILE).exists():
        raise UnusableBundle(f"{directory} holds no station: run `lineside station run {bundle.path}` first.")
    application = open_station(bundle, directory)
    try:
        yield application
    finally:
        application.close()


@click.command("run")
@bundle_argument
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the fixtures reach the station.")
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.option(
    "--sync-every",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds between automatic syncs (0: never).",
)
@server_option
def run(
    bundle_path: Path, data_dir: Path | None, host: str, port: int, sync_every: float, server: str | None
) -> None:
    """Serve the factory line from BUNDLE, offline if need be, until SIGTERM or Ctrl-C."""
    from lineside.entrypoints.station.app import StationRuntime  # noqa: PLC0415 - FastAPI, when run
    from lineside.entrypoints.station.runner import run_station  # noqa: PLC0415
    from lineside.entrypoints.station.status import SyncState  # noqa: PLC0415

    bundle = _bundle(bundle_path)
    directory = data_dir_of(bundle, data_dir)
    with _station(bundle, directory) as application:
        runtime = StationRuntime(
            application, bundle, directory, (server or bundle.server_url).rstrip("/"), SyncState()
        )
        click.echo(f"Station {bundle.station_name} serving the line on http://{host}:{port}", err=True)
        run_station(runtime, host=host, port=port, sync_every=sync_every)


@click.command("sync")
@bundle_argument
@data_dir_option
@server_option
def sync(bundle_path: Path, data_dir: Path | None, server: str | None) -> None:
    """Upload the station's ledger to the server, resuming where the server's head stands."""
    bundle = _bundle(bundle_path)
    link = StationLink((server or bundle.server_url).rstrip("/"), bundle.station_id, bundle.fixture_api_key)
    with _station(bundle, data_dir, existing=True) as application:
        ctx = application.services
        try:
            waiting = entries_waiting_after_head(ctx, link, bundle.organization_id, bundle.product_id)
            if waiting == 0:
                click.echo("Nothing to sync: the server holds the whole ledger.")
                return
            with click.progressbar(
                length=waiting, label="Ledger entries", file=sys.stderr, hidden=not sys.stderr.isatty()
            ) as bar:
                outcome = sync_ledger(ctx, link, bar.update)
        except SyncFailed as error:
            raise StationError(f"Sync failed: {error}.") from None
    click.echo(f"Synced {outcome.uploaded} ledger entries; the server's head is {outcome.head_sequence}.")


@click.command("status")
@bundle_argument
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def status(bundle_path: Path, data_dir: Path | None, as_json: bool) -> None:
    """Budget used, window left, units per state, last sync, ledger entries waiting, warnings."""
    bundle = _bundle(bundle_path)
    with _station(bundle, data_dir, existing=True) as application:
        report = station_status(application.services, bundle)
    if as_json:
        echo_json(report.as_json())
        return
    for line in status_lines(report):
        click.echo(line)


STATION_PROCESS_COMMANDS = (run, sync, status)
