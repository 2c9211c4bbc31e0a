"""``lineside factory``: the factory line's side of the API, over HTTP with a factory key.

Unlike the other commands, these talk to a running server (``--server``), never to the
database: a fixture on the line has a network connection and a factory-scoped API key, no
more. Exit codes: see ``factory_options``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from lineside.entrypoints.cli.common import echo_json
from lineside.entrypoints.cli.factory_client import ClaimStatus, FactoryClient, ServerUnreachable
from lineside.entrypoints.cli.factory_options import (
    EXIT_NO,
    EXIT_TIMED_OUT,
    connection_options,
    factory_api,
    finish,
    json_option,
    server_option,
)
from lineside.entrypoints.cli.factory_simulation import simulate
from lineside.entrypoints.cli.groups import Group

DEFAULT_WAIT_SECONDS = 600.0  # a production token's default lifetime
FIRST_POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 5.0


@click.group(cls=Group)
def factory() -> None:
    """The factory line over HTTP: enroll DUTs, test, bless, production tokens, claims."""


# -- factory enrollment tokens ---------------------------------------------------------------


@factory.group("enrollment-token")
def enrollment_token() -> None:
    """Factory enrollment tokens: what a Device Under Test presents to enroll."""


@enrollment_token.command("create")
@click.option("--product", "product_id", required=True, help="The product the DUTs become.")
@click.option("--name", help="A label, e.g. the line or fixture it is for.")
@json_option
@connection_options
def enrollment_token_create(
    product_id: str, name: str | None, as_json: bool, server: str, api_key: str | None
) -> None:
    """Create a factory enrollment token (the token is shown once)."""
    with factory_api(server, api_key) as api:
        created = api.create_enrollment_token(product_id, name)
    if as_json:
        echo_json(created.body)
        return
    label = f" ({created.name})" if created.name else ""
    click.echo(f"factory enrollment token {created.id}{label} for product {created.product_id}")
    click.echo(f"token (shown once, keep it safe): {created.token}")


@enrollment_token.command("list")
@json_option
@connection_options
def enrollment_token_list(as_json: bool, server: str, api_key: str | None) -> None:
    """Factory enrollment tokens of your organization (never the tokens themselves)."""
    with factory_api(server, api_key) as api:
        found = api.list_enrollment_tokens()
    if as_json:
        echo_json([token.body for token in found])
        return
    for token in found:
        revoked = token.body.get("revoked_at")
        status = f"revoked {revoked}" if revoked else "active"
        click.echo(f"{token.id}  {token.prefix}…  product {token.product_id}  {token.name or ''}  {status}")


@enrollment_token.command("revoke")
@click.argument("token_id")
@json_option
@connection_options
def enrollment_token_revoke(token_id: str, as_json: bool, server: str, api_key: str | None) -> None:
    """Revoke a factory enrollment token at once: no more DUTs enroll with it."""
    with factory_api(server, api_key) as api:
        answer = api.revoke_enrollment_token(token_id)
    if as_json:
        echo_json(answer)
        return
    click.echo(f"revoked {token_id}")


# -- one unit through the line ---------------------------------------------------------------


@factory.command("enroll")
@click.option(
    "--enrollment-token",
    envvar="LINESIDE_ENROLLMENT_TOKEN",
    show_envvar=True,
    required=True,
    help="The factory enrollment token (lsf_...).",
)
@click.option("--hardware-id", required=True, help="The unit's MAC address or chip id.")
@click.option("--serial", "serial_number", help="Its serial number.")
@json_option
@server_option
def enroll(
    enrollment_token: str, hardware_id: str, serial_number: str | None, as_json: bool, server: str
) -> None:
    """Enroll a Device Under Test by its hardware id, with the enrollment token alone."""
    with factory_api(server, None) as api:
        dut = api.enroll(enrollment_token, hardware_id, serial_number)
    if as_json:
        echo_json(dut.body)
        return
    again = "" if dut.new else " (enrolled before)"
    click.echo(f"device {dut.device_id} {dut.state}{again}")
    if dut.factory_firmware:
        firmware = dut.factory_firmware
        where = firmware.get("url") or ""
        click.echo(f"factory firmware {firmware.get('version', firmware.get('id', ''))} {where}".rstrip())


def _measurement(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as JSON (3.3, true, null) keeps its type."""
    measurements: dict[str, Any] = {}
    for pair in values:
        key, equals, text = pair.partition("=")
        if not equals or not key.strip():
            raise click.BadParameter(f"{pair!r} is not key=value.")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, dict | list):
            value = text
        measurements[key.strip()] = value
    return measurements


@factory.command("test")
@click.argument("device_id")
@click.option("--passed/--failed", default=None, help="The unit's test result (one is required).")
@click.option(
    "--measurement",
    "measurements",
    multiple=True,
    callback=_measurement,
    metavar="KEY=VALUE",
    help="Repeatable, e.g. --measurement supply_v=3.31.",
)
@click.option("--fixture", help="Which fixture tested it.")
@click.option("--operator", help="Who ran the fixture.")
@json_option
@connection_options
def test_run(
    device_id: str,
    passed: bool | None,
    measurements: dict[str, Any],
    fixture: str | None,
    operator: str | None,
    as_json: bool,
    server: str,
    api_key: str | None,
) -> None:
    """Record a test result for DEVICE_ID."""
    if passed is None:
        raise click.UsageError("Say how the test went: --passed or --failed.")
    with factory_api(server, api_key) as api:
        recorded = api.record_test(
            device_id, passed=passed, measurements=measurements, fixture=fixture, operator=operator
        )
    if as_json:
        echo_json(recorded.body)
        return
    click.echo(f"recorded a {'passed' if passed else 'failed'} test of device {device_id}")


@factory.command("bless")
@click.argument("device_id")
@json_option
@connection_options
def bless(device_id: str, as_json: bool, server: str, api_key: str | None) -> None:
    """Bless DEVICE_ID if its last test passed: prints green (exit 0) or red (exit 3)."""
    with factory_api(server, api_key) as api:
        blessing = api.bless(device_id)
    if as_json:
        echo_json(blessing.body)
    elif blessing.blessed:
        click.echo(f"green: device {blessing.device_id} is blessed, a production device")
    else:
        click.echo(f"red: device {blessing.device_id} failed; test it again before blessing")
    finish(0 if blessing.blessed else EXIT_NO)


# -- production enrollment tokens and their claims -------------------------------------------


@factory.command("production-token")
@click.option("--product", "product_id", help="Limit the token to one product.")
@json_option
@connection_options
def production_token(product_id: str | None, as_json: bool, server: str, api_key: str | None) -> None:
    """A short-lived, single-use plan id and token id for a blessed unit to activate with."""
    with factory_api(server, api_key) as api:
        token = api.create_production_token(product_id)
    if as_json:
        echo_json(token.body)
        return
    click.echo(f"plan_id     {token.plan_id}")
    click.echo(f"token_id    {token.token_id}")
    click.echo(f"expires_at  {token.expires_at}")


@factory.command("poll")
@click.argument("token_id")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="Give up after this long (0: ask once).",
)
@json_option
@connection_options
def poll(token_id: str, wait: float, as_json: bool, server: str, api_key: str | None) -> None:
    """Wait until a production token is claimed (exit 0), expired (3) or --wait runs out (4)."""
    with factory_api(server, api_key) as api:
        claim = _poll_until_settled(api, token_id, time.monotonic() + wait)
    if as_json:
        echo_json(claim.body)
    elif claim.status == "claimed":
        click.echo(f"claimed by device {claim.device_id} {claim.device_url or ''}".rstrip())
    elif claim.status == "expired":
        click.echo(f"expired at {claim.expires_at} without being claimed")
    if claim.status == "claimed":
        finish(0)
    if claim.status == "expired":
        finish(EXIT_NO)
    click.echo(f"Error: still {claim.status} after {wait:g} s", err=True)
    finish(EXIT_TIMED_OUT)


def _poll_until_settled(api: FactoryClient, token_id: str, deadline: float) -> ClaimStatus:
    """Ask, backing off from 0.5 s to 5 s; ride out a server restart, stop at any refusal."""
    interval = FIRST_POLL_SECONDS
    while True:
        claim: ClaimStatus | None = None
        try:
            claim = api.claim_status(token_id)
        except ServerUnreachable:
            if time.monotonic() + interval > deadline:
                raise
        if claim is not None and (claim.status != "pending" or time.monotonic() + interval > deadline):
            return claim
        time.sleep(interval)  # the fixture waits for the device to power up and activate
        interval = min(interval * 1.5, MAX_POLL_SECONDS)


factory.add_command(simulate)
