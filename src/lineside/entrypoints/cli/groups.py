"""The command groups ``lineside`` is made of."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

WHOLE_SENTENCE = 1_000  # characters: no first sentence of ours is longer


class Group(click.Group):
    """Lists its commands with their whole first sentence, wrapped under the terminal's
    width, where click would cut it to one line and end it with "..."."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name in self.list_commands(ctx) if (summary := self.summary(ctx, name))]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def summary(self, ctx: click.Context, name: str) -> str | None:
        """The line the group's help shows for ``name`` (None: not shown)."""
        command = self.get_command(ctx, name)
        if command is None or command.hidden:
            return None
        return command.get_short_help_str(limit=WHOLE_SENTENCE)


Group.group_class = Group  # subgroups made with @group.group() are Groups too


@dataclass(frozen=True)
class LazyCommand:
    """A command imported only when it runs or shows its own help: the module and the name
    of the command in it, and the first sentence of its help for the group's list
    (``tests/unit/test_cli_help.py`` keeps it equal to the command's own)."""

    module: str
    attribute: str
    summary: str


class LazyGroup(Group):
    """A group that lists its commands without importing them: most of the CLI's start-up
    time was importing every command's dependencies (the server, the database, the QR
    encoder) to print one help page or run one command."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy_commands.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(lazy.module), lazy.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{lazy.module}.{lazy.attribute} is not a click command")
        return command

    def summary(self, ctx: click.Context, name: str) -> str | None:
        lazy = self.lazy_commands.get(name)
        return lazy.summary if lazy is not None else super().summary(ctx, name)


HELP_REQUESTED = "lineside.help_requested"


def help_requested(context: click.Context) -> bool:
    """Whether the command line asks only for a help page (``-h``/``--help`` before any
    ``--``): then the group callback has nothing to set up, as click prints help and exits
    before any command runs."""
    return bool(context.meta.get(HELP_REQUESTED))


class RootGroup(LazyGroup):
    """The ``lineside`` group: it notes a request for help before its callback runs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        options = args[: args.index("--")] if "--" in args else args
        ctx.meta[HELP_REQUESTED] = any(arg in ctx.help_option_names for arg in options)
        return super().parse_args(ctx, args)
