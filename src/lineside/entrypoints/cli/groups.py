"""The command group every ``lineside`` group is made of."""

from __future__ import annotations

import click

WHOLE_SENTENCE = 1_000  # characters: no first sentence of ours is longer


class Group(click.Group):
    """Lists its commands with their whole first sentence, wrapped under the terminal's
    width, where click would cut it to one line and end it with "..."."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=WHOLE_SENTENCE)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


Group.group_class = Group  # subgroups made with @group.group() are Groups too
