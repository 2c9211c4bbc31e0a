"""The one CSV writer: cells a spreadsheet would evaluate are written as text."""

from __future__ import annotations

import csv
import io

import pytest

from lineside.adapters.csv_files import csv_text, neutralise_cell

FORMULAS = ["=1+1", "+1", "-1", "@A1", "\tx", "\rx", '=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(1)"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_cell_starting_like_a_formula_gets_a_leading_quote(value: str) -> None:
    assert neutralise_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["", "SN-1", "a=b", " =1", "'=1", "lsd_abc"])
def test_other_cells_stay_as_they_are(value: str) -> None:
    assert neutralise_cell(value) == value


def test_csv_text_neutralises_every_cell_of_every_row_and_reads_back() -> None:
    rows = [["serial", "note"], *([value, value] for value in FORMULAS)]

    read = list(csv.reader(io.StringIO(csv_text(rows))))

    assert read[0] == ["serial", "note"]
    assert all(cell.startswith("'") for row in read[1:] for cell in row)


def test_a_pem_certificate_or_key_is_left_as_it_is() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHB/8=\n-----END CERTIFICATE-----\n"
    assert neutralise_cell(pem) == pem


def test_a_pem_look_alike_with_a_formula_inside_is_neutralised() -> None:
    sneaky = '-----BEGIN X-----\n=HYPERLINK("http://evil")\n-----END X-----\n'
    assert neutralise_cell(sneaky) == "'" + sneaky
