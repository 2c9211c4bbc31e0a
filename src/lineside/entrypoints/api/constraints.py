"""What the server enforces on request fields, written into the OpenAPI document too.

The domain checks these rules and words their errors; the patterns here describe the same
rules to clients (and to generators such as schemathesis), so the document promises what
the server will take. Patterns are documentation (``json_schema_extra``), so a refusal
still comes with the domain's sentence rather than "String should match pattern".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import Field, StrictStr

from lineside.domain.text import MAX_NAME_LENGTH

# What Python's str.strip() and str.isspace() call white space, spelt out: ``\s`` means one
# thing to Python and another to JavaScript (whose regexes JSON Schema patterns are), and
# these patterns must mean the same to every client and to the server.
SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# No control characters, and not blank.
NAME_PATTERN = rf"^[^\x00-\x1f\x7f]*[^{SPACE}\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_EMAIL_PART = rf"[^@{SPACE}\x00-\x1f]"
_EMAIL_TOP = rf"[^@{SPACE}\x00-\x1f.]"
EMAIL_PATTERN = rf"^[{SPACE}]*{_EMAIL_PART}{{1,64}}@{_EMAIL_PART}{{1,255}}\.{_EMAIL_TOP}{{1,63}}[{SPACE}]*$"
# A MAC or a chip id: letters, digits and : . _ - (case does not matter), surrounding space trimmed.
HARDWARE_ID_PATTERN = rf"^[{SPACE}]*[0-9A-Za-z][0-9A-Za-z:._-]{{0,63}}[{SPACE}]*$"
SERIAL_NUMBER_PATTERN = r"^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$"
# Twelve hex digits, with any : - . between them (AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff, ...).
MAC_PATTERN = rf"^[{SPACE}]*[:\-.]*([0-9A-Fa-f][:\-.]*){{12}}[{SPACE}]*$"
UUID_CURSOR_PATTERN = r"^[0-9a-f]{32}$"
SEQUENCE_CURSOR_PATTERN = r"^[0-9]{1,18}$"
FIELD_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
VERSION_PATTERN = r"^[\x21-\x7e]{1,64}$"
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320


def documented(pattern: str, **more: Any) -> dict[str, Any]:
    return {"json_schema_extra": {"pattern": pattern, **more}}


Name = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_LENGTH, **documented(NAME_PATTERN))]
Email = Annotated[StrictStr, Field(max_length=MAX_EMAIL_LENGTH, **documented(EMAIL_PATTERN))]
NewPassword = Annotated[
    StrictStr,
    Field(
        max_length=MAX_PASSWORD_LENGTH,
        description=f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
        json_schema_extra={"minLength": MIN_PASSWORD_LENGTH},
    ),
]
HardwareId = Annotated[StrictStr, Field(max_length=200, **documented(HARDWARE_ID_PATTERN))]
SerialNumber = Annotated[StrictStr, Field(max_length=128, **documented(SERIAL_NUMBER_PATTERN))]
Mac = Annotated[StrictStr, Field(max_length=64, **documented(MAC_PATTERN))]
# A test fixture's or operator's name: one line of at most 200 characters.
Label = Annotated[StrictStr, Field(max_length=200, **documented(LABEL_PATTERN))]
_VERSION_HELP = "1 to 64 visible ASCII characters (no spaces)."
Version = Annotated[StrictStr, Field(description=_VERSION_HELP, **documented(VERSION_PATTERN))]
_CURSOR_HELP = "The `next_cursor` of the page before (opaque: pass it back as it came)."
Cursor = Annotated[str | None, Query(pattern=UUID_CURSOR_PATTERN, description=_CURSOR_HELP)]
SequenceCursor = Annotated[str | None, Query(pattern=SEQUENCE_CURSOR_PATTERN, description=_CURSOR_HELP)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (default 100).")]
