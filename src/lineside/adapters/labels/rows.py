"""One label's data and the cells of its CSV row (written by ``adapters.csv_files``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LabelRow:
    device_id: str
    serial_number: str
    claim_url: str
    metadata: Mapping[str, object]
    device_token: str | None = None  # present only in the one-time export


class ExportedUnit(Protocol):
    """Anything with a label's fields, e.g. the static-token service's TokenRow."""

    @property
    def device_id(self) -> str: ...
    @property
    def serial_number(self) -> str: ...
    @property
    def claim_url(self) -> str: ...
    @property
    def metadata(self) -> Mapping[str, object]: ...
    @property
    def device_token(self) -> str | None: ...


def label_rows(units: Iterable[ExportedUnit]) -> Iterator[LabelRow]:
    """Labels of the units, as lazily as they come."""
    for unit in units:
        yield LabelRow(unit.device_id, unit.serial_number, unit.claim_url, unit.metadata, unit.device_token)


def csv_header(metadata_columns: Sequence[str], *, with_tokens: bool) -> list[str]:
    token = ["device_token"] if with_tokens else []
    return ["device_id", "serial_number", *metadata_columns, *token, "claim_url"]


def csv_cells(row: LabelRow, metadata_columns: Sequence[str], *, with_tokens: bool) -> list[str]:
    """The row's cells in :func:`csv_header` order; a token is required exactly when asked for."""
    metadata = [_text(row.metadata.get(name)) for name in metadata_columns]
    token: list[str] = []
    if with_tokens:
        if row.device_token is None:
            raise ValueError(f"device {row.device_id} has no device token for the export")
        token = [row.device_token]
    return [row.device_id, row.serial_number, *metadata, *token, row.claim_url]


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
