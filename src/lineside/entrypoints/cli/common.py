"""What every command shares: the bootstrapped application and error reporting."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lineside.adapters.secret_files import NotPublished, StagedSecretFile, TargetExists
from lineside.domain.errors import BatchRejected, DomainError
from lineside.domain.models import Principal

if TYPE_CHECKING:
    from pydantic import ValidationError

    from lineside.bootstrap import Application
    from lineside.services.context import ServiceContext
    from lineside.settings import Settings

MAX_ROW_ERRORS_SHOWN = 50


class ConfigurationError(click.ClickException):
    """A LINESIDE_* setting is wrong: one line naming it, exit 78 (sysexits' EX_CONFIG)."""

    exit_code = 78


def load_settings() -> Settings:
    """Settings from the environment, or one line naming the first wrong variable."""
    # pydantic-settings costs about 0.2 s to import: only commands that run pay it, not help.
    from pydantic import ValidationError  # noqa: PLC0415

    from lineside.settings import Settings  # noqa: PLC0415

    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError(setting_problem(error)) from None


def setting_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    name = "LINESIDE_" + "_".join(str(part) for part in first["loc"]).upper()
    given = first.get("input")
    shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
    more = f"; and {error.error_count() - 1} more" if error.error_count() > 1 else ""
    return f"{name}: {first['msg']}{shown}{more}"


def current_settings() -> Settings:
    """The settings the ``lineside`` group read at start, or a fresh read outside a command."""
    from lineside.settings import Settings  # noqa: PLC0415 - see load_settings

    context = click.get_current_context(silent=True)
    found = context.find_object(Settings) if context is not None else None
    return found if found is not None else load_settings()


@contextmanager
def opened_application(settings: Settings | None = None, *, migrate: bool = True) -> Iterator[Application]:
    """The application on ``settings`` (default: the command's), migrated first unless told not."""
    # Imported here, not above: the composition root loads the database, the web stack and
    # the crypto libraries, which the CLI's help and its HTTP-only commands never need.
    from lineside.bootstrap import bootstrap  # noqa: PLC0415

    application = bootstrap(settings or current_settings(), migrate=migrate)
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


@contextmanager
def staged_output(out: Path | None, force: bool) -> Iterator[StagedSecretFile | None]:
    """A secrets file that appears at ``out`` only after the transaction making its secrets
    valid commits (see ``adapters.secret_files``); None when no file was asked for."""
    if out is None:
        yield None
        return
    if not out.parent.is_dir():
        raise click.UsageError(f"cannot write {out}: its directory does not exist.")
    staged = StagedSecretFile(out, overwrite=force)
    try:
        staged.open()
    except TargetExists:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it.") from None
    with staged:
        try:
            yield staged
        except NotPublished as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            if error.strerror is None:
                raise
            # Raised while the secrets were written, before the commit: nothing was saved.
            raise click.ClickException(f"cannot write {out}: {error.strerror}; nothing was saved.") from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def as_operator(use_case: Callable[[ServiceContext, Principal], T]) -> T:
    """Run one use case as the local operator on the configured database; a domain error
    becomes one line on stderr and exit 1."""
    from lineside.services.organizations import operator_principal  # noqa: PLC0415 - see above

    with opened_application() as app:
        ctx = app.services
        return run_reporting_errors(lambda: use_case(ctx, operator_principal(ctx)))
