"""What a caller asks for when defining devices, and every reason a batch of them is bad.

A batch is all-or-nothing, so checking never stops at the first problem: it collects one
RowError per bad cell, with the row as a spreadsheet shows it (header is row 1).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lineside.domain.errors import BatchRejected, InvalidInput, RowError
from lineside.domain.identifiers import new_id
from lineside.domain.lifecycle import DeviceState
from lineside.domain.metadata import MetadataField, metadata_problems, parse_text_value
from lineside.domain.models import Device, Product

SERIAL_NUMBER = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?\Z")
MAC_HEX = re.compile(r"^[0-9a-f]{12}$")
SERIAL_COLUMN = "serial_number"
MAC_COLUMN = "mac"
FIRST_DATA_ROW = 2
MAX_BATCH_SIZE = 200_000


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    serial_number: str
    mac: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    row: int = FIRST_DATA_ROW


def normalize_mac(text: str) -> str | None:
    """``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff`` and friends become ``aa:bb:cc:dd:ee:ff``."""
    digits = re.sub(r"[:\-.]", "", text.strip().lower())
    if not MAC_HEX.match(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def serial_number_problem(serial: str) -> str | None:
    if not SERIAL_NUMBER.match(serial):
        return "must be 1 to 128 printable ASCII characters without leading or trailing spaces"
    return None


def spec_problems(spec: DeviceSpec, fields: list[MetadataField]) -> list[RowError]:
    problems = []
    reason = serial_number_problem(spec.serial_number)
    if reason:
        problems.append(RowError(spec.row, SERIAL_COLUMN, reason))
    if spec.mac is not None and normalize_mac(spec.mac) is None:
        problems.append(RowError(spec.row, MAC_COLUMN, "must be a 48-bit MAC address"))
    if fields or spec.metadata:  # nothing to check otherwise (most batches: serials only)
        problems.extend(
            RowError(spec.row, name, reason) for name, reason in metadata_problems(fields, spec.metadata)
        )
    return problems


def batch_problems(specs: list[DeviceSpec], fields: list[MetadataField], taken: set[str]) -> list[RowError]:
    """Every problem of every row, including serial numbers repeated or already defined."""
    problems: list[RowError] = []
    first_row: dict[str, int] = {}
    for spec in specs:
        problems.extend(spec_problems(spec, fields))
        serial = spec.serial_number
        if serial in taken:
            problems.append(RowError(spec.row, SERIAL_COLUMN, f"'{serial}' is already defined"))
        elif serial in first_row:
            problems.append(RowError(spec.row, SERIAL_COLUMN, f"'{serial}' repeats row {first_row[serial]}"))
        else:
            first_row[serial] = spec.row
    return problems


def _header_problems(header: list[str], fields: list[MetadataField]) -> list[RowError]:
    known = {SERIAL_COLUMN, MAC_COLUMN} | {definition.name for definition in fields}
    problems = [
        RowError(1, column, "is not a column this product knows (headers are case-sensitive)")
        for column in header
        if column not in known
    ]
    seen: set[str] = set()
    for column in header:
        if column in seen:
            problems.append(RowError(1, column, "appears twice in the header"))
        seen.add(column)
    if SERIAL_COLUMN not in header:
        problems.append(RowError(1, SERIAL_COLUMN, "the header must name this column"))
    return problems


def _spec_from_row(
    row_number: int, record: Mapping[str, str], fields_by_name: dict[str, MetadataField]
) -> tuple[DeviceSpec, list[RowError]]:
    problems: list[RowError] = []
    metadata: dict[str, Any] = {}
    for name, definition in fields_by_name.items():
        value, reason = parse_text_value(definition, record.get(name) or "")
        if reason:
            problems.append(RowError(row_number, name, reason))
        elif value is not None:
            metadata[name] = value
    mac_text = (record.get(MAC_COLUMN) or "").strip()
    mac = normalize_mac(mac_text) if mac_text else None
    if mac_text and mac is None:
        problems.append(RowError(row_number, MAC_COLUMN, "must be a 48-bit MAC address"))
    serial = record.get(SERIAL_COLUMN) or ""
    return DeviceSpec(serial_number=serial, mac=mac, metadata=metadata, row=row_number), problems


def parse_csv(text: str, fields: list[MetadataField]) -> tuple[list[DeviceSpec], list[RowError]]:
    """The devices a CSV asks for and the problems of its cells.

    A bad header or unreadable CSV raises BatchRejected at once: no row means anything then.
    Rows are read one by one and reading stops at the first row past MAX_BATCH_SIZE, so an
    oversized file is refused after reading what a batch may hold, not all of it.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        header = [cell.strip() for cell in next(reader, [])]
        if not any(header):
            raise BatchRejected([RowError(1, "", "the CSV needs a header row naming its columns")])
        header_problems = _header_problems(header, fields)
        if header_problems:
            raise BatchRejected(header_problems)
        return _parse_rows(reader, header, fields)
    except csv.Error as error:
        raise BatchRejected([RowError(reader.line_num, "", f"is not valid CSV: {error}")]) from None


def _parse_rows(
    reader: Iterator[list[str]], header: list[str], fields: list[MetadataField]
) -> tuple[list[DeviceSpec], list[RowError]]:
    wanted = {definition.name: definition for definition in fields if definition.name in header}
    specs: list[DeviceSpec] = []
    problems: list[RowError] = []
    for row_number, cells in enumerate(reader, start=FIRST_DATA_ROW):
        if not any(cell.strip() for cell in cells):
            continue  # spreadsheets leave blank lines at the end
        if len(specs) + len(problems) >= MAX_BATCH_SIZE:
            raise InvalidInput(
                f"A batch holds at most {MAX_BATCH_SIZE:,} devices; this one has more "
                f"(row {row_number:,} is past the limit)."
            )
        if len(cells) != len(header):
            reason = f"has {len(cells)} cells, the header has {len(header)}"
            problems.append(RowError(row_number, "", reason))
            continue
        record = dict(zip(header, cells, strict=True))
        spec, row_problems = _spec_from_row(row_number, record, wanted)
        specs.append(spec)
        problems.extend(row_problems)
    return specs, problems


def first_problem_per_cell(problems: list[RowError]) -> list[RowError]:
    """One report per (row, column), in row order: a cell that failed to parse is not also
    reported as missing."""
    seen: set[tuple[int, str]] = set()
    unique = []
    for problem in sorted(problems, key=lambda p: p.row):
        if (problem.row, problem.column) not in seen:
            seen.add((problem.row, problem.column))
            unique.append(problem)
    return unique


def specs_from_serial_numbers(serials: Iterable[str]) -> list[DeviceSpec]:
    return [DeviceSpec(serial_number=serial, row=index) for index, serial in enumerate(serials, start=1)]


def check_batch_size(count: int) -> None:
    if count == 0:
        raise InvalidInput("The batch holds no devices.")
    if count > MAX_BATCH_SIZE:
        raise InvalidInput(f"A batch holds at most {MAX_BATCH_SIZE:,} devices; this one has {count:,}.")


def new_device(
    product: Product, spec: DeviceSpec, now: datetime, batch_id: str | None, device_id: str | None = None
) -> Device:
    """A device defined now from ``spec`` (its id given, or a new one)."""
    return Device(
        id=device_id or new_id(),
        organization_id=product.organization_id,
        product_id=product.id,
        serial_number=spec.serial_number,
        mac=normalize_mac(spec.mac) if spec.mac else None,
        # An explicit null and an empty CSV cell both mean "not given".
        metadata={name: value for name, value in spec.metadata.items() if value is not None},
        state=DeviceState.DEFINED,
        created_at=now,
        batch_id=batch_id,
        timeline={"defined_at": now},
    )
