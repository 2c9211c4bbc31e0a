"""What every ``lineside factory`` command shares: the server, the key, errors, exit codes.

Exit codes let a line script branch:

    0  done (bless: the unit is blessed, green; poll: the token was claimed)
    1  the server refused, or could not be reached (one line on stderr says why)
    2  bad usage
    3  the answer is no: bless said failed (red), or poll found the token expired
    4  poll gave up waiting: the token is still pending
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click

from lineside.entrypoints.cli.factory_client import (
    DEFAULT_SERVER,
    FactoryClient,
    FactoryClientError,
    MissingApiKey,
)

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NO = 3
EXIT_TIMED_OUT = 4

F = TypeVar("F", bound=Callable[..., Any])


def _server(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL.")
    return value


def server_option(command: F) -> F:
    """--server, on every subcommand so it can follow it on the line."""
    return click.option(
        "--server",
        envvar="LINESIDE_SERVER",
        show_envvar=True,
        default=DEFAULT_SERVER,
        show_default=True,
        callback=_server,
        help="The Lineside server.",
    )(command)


def connection_options(command: F) -> F:
    """--server and --api-key, for the subcommands that act with a factory API key."""
    command = click.option(
        "--api-key",
        envvar="LINESIDE_API_KEY",
        show_envvar=True,
        help="A factory-scoped API key (better in the environment than on the command line).",
    )(command)
    return server_option(command)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")


class Refused(click.ClickException):
    """One line on stderr and exit code 1: the server said no, or could not be asked."""

    exit_code = EXIT_REFUSED


class NoApiKey(click.ClickException):
    """One line on stderr (not click's usage text) and the usage exit code."""

    exit_code = EXIT_USAGE


@contextmanager
def factory_api(server: str, api_key: str | None) -> Iterator[FactoryClient]:
    """A client of ``server``; its errors become one line on stderr and an exit code."""
    try:
        with FactoryClient(server, api_key) as client:
            yield client
    except MissingApiKey as error:
        raise NoApiKey(error.message) from None
    except FactoryClientError as error:
        raise Refused(error.message) from None


def finish(code: int) -> NoReturn:
    click.get_current_context().exit(code)
