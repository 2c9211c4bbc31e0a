"""What every command shares: the bootstrapped application and error reporting."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from lineside.bootstrap import Application, bootstrap
from lineside.domain.errors import BatchRejected, DomainError

MAX_ROW_ERRORS_SHOWN = 50


@contextmanager
def opened_application(*, migrate: bool = True) -> Iterator[Application]:
    application = bootstrap(migrate=migrate)
    try:
        yield application
    finally:
        application.close()


T = TypeVar("T")


def run_reporting_errors(action: Callable[[], T]) -> T:
    """Turn a domain error into one line on stderr (plus the bad rows of a batch), exit 1."""
    try:
        return action()
    except BatchRejected as error:
        for problem in error.errors[:MAX_ROW_ERRORS_SHOWN]:
            column = f" column {problem.column}" if problem.column else ""
            click.echo(f"  row {problem.row}{column}: {problem.reason}", err=True)
        hidden = len(error.errors) - MAX_ROW_ERRORS_SHOWN
        if hidden > 0:
            click.echo(f"  ... and {hidden} more", err=True)
        raise click.ClickException(error.detail) from None
    except DomainError as error:
        raise click.ClickException(error.detail) from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))
