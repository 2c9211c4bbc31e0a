"""``lineside station``: offline factory stations. An administrator's commands (``create``,
``list``, ``show``, ``revoke``) speak to the server with an admin API key; the station's own
(``run``, ``sync``, ``status``) are in ``station_process``.

Exit codes of the administrator's commands:

    0   done
    1   the server refused, or could not be reached (one line on stderr says why)
    2   bad usage, or no API key
    73  the bundle file exists already, or cannot be written
    74  the enrollment token file cannot be read
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lineside.entrypoints.cli.authorities import CannotRead, admin_options
from lineside.entrypoints.cli.common import echo_json
from lineside.entrypoints.cli.factory_client import FactoryClientError, MissingApiKey
from lineside.entrypoints.cli.factory_options import NoApiKey, Refused, json_option
from lineside.entrypoints.cli.groups import Group
from lineside.entrypoints.cli.station_process import STATION_PROCESS_COMMANDS
from lineside.entrypoints.cli.stations_client import StationClient


@click.group(cls=Group)
def station() -> None:
    """Offline factory stations: run a product's line at the factory without the server, and sync."""


for _command in STATION_PROCESS_COMMANDS:
    station.add_command(_command)


# -- the server's side: an administrator delegates a line, lists, shows, revokes --------------

EXIT_CANNOT_WRITE = 73  # sysexits' EX_CANTCREAT: the bundle file exists or cannot be made
T = TypeVar("T")


class CannotWrite(click.ClickException):
    exit_code = EXIT_CANNOT_WRITE


def _call(server: str, api_key: str | None, action: Callable[[StationClient], T]) -> T:
    """``action`` on a client of ``server``; its errors become one line and an exit code."""
    try:
        with StationClient(server, api_key) as api:
            return action(api)
    except MissingApiKey as error:
        raise NoApiKey(error.message) from None
    except FactoryClientError as error:
        raise Refused(error.message) from None


@station.command("create")
@click.option("--product", "product_id", required=True, help="The product whose line the station runs.")
@click.option("--name", required=True, help="What the line calls the station.")
@click.option("--budget", type=click.IntRange(min=1), required=True, help="How many new devices it may make.")
@click.option(
    "--valid-days",
    type=click.FloatRange(min=0, min_open=True),
    default=14.0,
    show_default=True,
    help="How long it may work, from now.",
)
@click.option(
    "--enrollment-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding the factory enrollment token (lsf_...) the fixtures send.",
)
@click.option("--enrollment-token", help="The factory enrollment token (better in a file: see above).")
@click.option(
    "--fixture-api-key",
    required=True,
    help="The fixtures' API key (the factory scope, not admin: the bundle goes to the factory), "
    "which the station also syncs with.",
)
@click.option(
    "--token-pool",
    is_flag=True,
    help="Also give it a device id and token per unit of the budget (at most 100,000), so its "
    "line can hand token devices their token offline; the bundle holds every token.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the bundle (mode 0600; an existing file is never overwritten).",
)
@admin_options
def create(
    product_id: str,
    name: str,
    budget: int,
    valid_days: float,
    enrollment_token_file: Path | None,
    enrollment_token: str | None,
    fixture_api_key: str,
    token_pool: bool,
    out: Path,
    server: str,
    api_key: str | None,
) -> None:
    """Delegate a product's line to an offline station, and write its bundle (shown once)."""
    token = _enrollment_token(enrollment_token_file, enrollment_token)
    body = {
        "name": name,
        "budget": budget,
        "valid_days": valid_days,
        "enrollment_token": token,
        "fixture_api_key": fixture_api_key,
        "token_pool": token_pool,
    }
    # The file is claimed before the station exists: a bundle that cannot be written would
    # leave a station nobody holds the keys of.
    descriptor = _claim(out)
    try:
        made = _call(server, api_key, lambda api: api.create(product_id, body))
    except BaseException:
        os.close(descriptor)
        out.unlink(missing_ok=True)
        raise
    station = made.get("station")
    station_id = station.get("id") if isinstance(station, dict) else None
    _write_bundle(descriptor, out, made.get("bundle"), station_id)
    pool = f", a token pool of {budget}" if token_pool else ""
    click.echo(
        f"station {station_id} created for product {product_id} (budget {budget}, {valid_days:g} days{pool})"
    )
    click.echo(f"bundle written to {out} (mode 0600; it holds the station's keys: keep it as a secret)")
    click.echo(f"start it at the factory with: lineside station run {shlex.quote(str(out))}")


def _enrollment_token(path: Path | None, given: str | None) -> str:
    if (path is None) == (given is None):
        raise click.UsageError("Give one of --enrollment-token-file or --enrollment-token.")
    if given is not None:
        return given
    assert path is not None
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise CannotRead(f"{path} cannot be read: {getattr(error, 'strerror', None) or error}.") from None


def _claim(out: Path) -> int:
    try:
        return os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CannotWrite(f"{out} exists already: the bundle is never written over another file.") from None
    except OSError as error:
        raise CannotWrite(f"{out} cannot be created: {error.strerror or error}.") from None


def _write_bundle(descriptor: int, out: Path, bundle: object, station_id: object) -> None:
    """The bundle on disk (fsync, then its directory) before it is reported written."""
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(bundle, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        directory = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        raise CannotWrite(
            f"station {station_id} was created but its bundle could not be written to {out} "
            f"({error.strerror or error}): revoke it with `lineside station revoke {station_id}`."
        ) from None


@station.command("list")
@click.option("--product", "product_id", help="Only the stations of this product.")
@json_option
@admin_options
def list_(product_id: str | None, as_json: bool, server: str, api_key: str | None) -> None:
    """The organization's stations, oldest first."""
    found = _call(server, api_key, lambda api: api.list(product_id))
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no stations")
        return
    click.echo(f"{'ID':36}  {'NAME':20}  {'MADE':>15}  {'SYNCED':>8}  {'UNTIL':25}  STATUS")
    for row in found:
        made = f"{row.get('devices_made')}/{row.get('budget')}"
        click.echo(
            f"{row.get('id')!s:36}  {str(row.get('name'))[:20]:20}  {made:>15}  "
            f"{row.get('head_sequence')!s:>8}  {row.get('not_after')!s:25}  {_status(row)}"
        )


@station.command("show")
@click.argument("station_id")
@json_option
@admin_options
def show(station_id: str, as_json: bool, server: str, api_key: str | None) -> None:
    """One station: its limits and where the replay of its ledger stands."""
    found = _call(server, api_key, lambda api: api.get(station_id))
    if as_json:
        echo_json(found)
        return
    for field in (
        "id",
        "name",
        "product_id",
        "budget",
        "devices_made",
        "not_before",
        "not_after",
        "head_sequence",
        "last_sync_at",
        "authority_id",
        "revoked_at",
    ):
        click.echo(f"{field}: {found.get(field)}")
    click.echo(f"status: {_status(found)}")


@station.command("revoke")
@click.argument("station_id")
@click.option(
    "--as-of",
    help="Revoke as of this time (ISO 8601 with a zone; default now): entries dated after it are "
    "refused too. Use the station's last trusted moment if its key may have leaked earlier.",
)
@admin_options
def revoke(station_id: str, as_of: str | None, server: str, api_key: str | None) -> None:
    """Stop a station: nothing it does from now (or --as-of) on syncs, and its CA registers no
    new device."""
    revoked = _call(server, api_key, lambda api: api.revoke(station_id, as_of))
    click.echo(
        f"station {revoked.get('id')} revoked at {revoked.get('revoked_at')}: what its ledger shows it "
        "made before then still syncs and keeps working"
    )


def _status(row: dict[str, Any]) -> str:
    return "revoked" if row.get("revoked_at") else "active"
