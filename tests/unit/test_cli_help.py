"""The CLI's help reads whole: every command's first sentence in its group's list (not cut
with "..."), and no option a command does not use."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from lineside.entrypoints.cli.devices import SIMULATE
from lineside.entrypoints.cli.groups import WHOLE_SENTENCE
from lineside.entrypoints.cli.main import COMMANDS, cli


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


def test_the_lazy_commands_summaries_are_their_own_first_sentences() -> None:
    for name, lazy in {**COMMANDS, "simulate": SIMULATE}.items():
        command = getattr(importlib.import_module(lazy.module), lazy.attribute)
        assert command.name == name
        assert command.get_short_help_str(limit=WHOLE_SENTENCE) == lazy.summary, name


# What a help page must not load: the database, the web stack, crypto, images, brokers.
HEAVY: tuple[str, ...]
HEAVY = ("sqlalchemy", "fastapi", "starlette", "uvicorn", "cryptography", "PIL", "zxingcpp", "numpy")
HEAVY += ("amqtt", "argon2", "prometheus_client", "alembic", "lineside.bootstrap", "lineside.adapters.db")
HEAVY += ("pydantic_settings", "lineside.settings")  # settings are read by commands that run, not help
LOADED = """
import sys
from click.testing import CliRunner
from lineside.entrypoints.cli.groups import WHOLE_SENTENCE
from lineside.entrypoints.cli.devices import SIMULATE
from lineside.entrypoints.cli.main import COMMANDS, cli
result = CliRunner().invoke(cli, sys.argv[1:] + ["--help"])
assert result.exit_code == 0, result.output
print("\\n".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize("command", [[], ["devices"], ["factory"], ["org"], ["firmware"], ["ca"]], ids=str)
def test_help_pages_load_nothing_heavy(command: list[str]) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", LOADED, *command], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert [module for module in loaded if module.startswith(HEAVY)] == []
