"""Rules for the free text people give things: names and metadata strings.

Control characters (NUL above all, which PostgreSQL cannot store) never have a legitimate
place in a name, so they are refused at the edge of the domain with a clear message.
"""

from __future__ import annotations

import re

from lineside.domain.errors import InvalidInput

MAX_NAME_LENGTH = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")


def has_control_characters(text: str, *, allow_newlines: bool = False) -> bool:
    pattern = _CONTROL if allow_newlines else _CONTROL_OR_NEWLINE
    return pattern.search(text) is not None


def clean_name(name: str, what: str) -> str:
    """A name trimmed of surrounding space, 1 to 200 characters, on one line (a control
    character anywhere, even at an end that trimming would drop, is refused)."""
    if has_control_characters(name):
        raise InvalidInput(f"The {what} name must not contain control characters.")
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The {what} name must be 1 to {MAX_NAME_LENGTH} characters.")
    return name
