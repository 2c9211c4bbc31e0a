"""The CLI's help reads whole: every command's first sentence in its group's list (not cut
with "..."), and no option a command does not use."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from lineside.entrypoints.cli.main import cli


def groups(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from groups(command, (*path, name))


def help_of(*path: str) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_group_lists_its_commands_with_their_whole_first_sentence() -> None:
    seen = list(groups(cli))
    assert ("factory", "enrollment-token") in seen  # nested groups are walked too
    for path in seen:
        listing = help_of(*path).split("Commands:", 1)[1]
        cut = [line for line in listing.splitlines() if line.rstrip().endswith("...")]
        assert cut == [], f"lineside {' '.join(path)} --help cuts: {cut}"


def test_factory_enroll_offers_no_api_key_because_it_needs_none() -> None:
    text = help_of("factory", "enroll")
    assert "--api-key" not in text
    assert "--enrollment-token" in text
    assert "--api-key" in help_of("factory", "test")  # the steps that need one still offer it
