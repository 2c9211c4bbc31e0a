"""Every CSV Lineside writes goes through here, so no cell reaches a spreadsheet as a formula.

OWASP's "CSV injection": Excel, LibreOffice and Google Sheets evaluate a cell that starts
with ``=``, ``+``, ``-`` or ``@`` (and a tab or carriage return before one), so a serial
number such as ``=HYPERLINK(...)`` in a credentials file would run when a factory engineer
opens it. Such a cell is written with a leading ``'``, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import TextIO

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Certificates and keys in a credentials file start with dashes too, but hold nothing but
# base64 between their armour lines (no quotes, no parentheses: no function call), and the
# factory's tools must read them as they are.
_PEM = re.compile(r"(-----BEGIN [A-Z0-9 ]+-----\n[A-Za-z0-9+/=\n]+-----END [A-Z0-9 ]+-----\n?)+\Z")


def neutralise_cell(value: str) -> str:
    """The cell as text a spreadsheet shows instead of evaluating (a leading ``'``)."""
    if value.startswith(_FORMULA_STARTS) and not _PEM.match(value):
        return "'" + value
    return value


def write_csv_rows(out: TextIO, rows: Iterable[Sequence[str]]) -> None:
    """Rows of text cells, each neutralised, one CRLF-terminated line per row (RFC 4180).

    CRLF, not LF: Python's writer quotes a cell holding a line break only when that break
    is part of its line terminator, and a bare CR in an unquoted cell splits the row.
    """
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([neutralise_cell(cell) for cell in row] for row in rows)


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    write_csv_rows(out, rows)
    return out.getvalue()
