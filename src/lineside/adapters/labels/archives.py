"""The static-token export zip and the labels zip: ``qr/<name>.png`` per row and one CSV.

The PNGs come first, in row order, each stored as it is (PNG data is already deflated); the
CSV, deflated as rows arrive into a temporary file, comes last because a ZIP entry cannot be
interleaved with others.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from typing import IO, BinaryIO

from lineside.adapters.csv_files import csv_text
from lineside.adapters.labels.names import UniqueNames
from lineside.adapters.labels.qr_stream import encoded_chunks
from lineside.adapters.labels.rows import LabelRow, csv_cells, csv_header
from lineside.adapters.labels.zip_stream import ZipStream

QR_FOLDER = "qr"


def write_zip(
    out: BinaryIO,
    rows: Iterable[LabelRow],
    *,
    metadata_columns: Sequence[str],
    with_tokens: bool,
    csv_name: str,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> int:
    """Write the archive to ``out`` and return the number of rows.

    CSV columns: device_id, serial_number, the metadata columns, device_token (only
    ``with_tokens``), claim_url. ``workers``: QR encoding processes (None: every core, or
    none below a few hundred rows).
    """
    _check_entry_name(csv_name)
    count = 0
    chunks = encoded_chunks(rows, workers=workers)
    with closing(chunks), UniqueNames() as names, ZipStream(out) as archive, _DeflatedCsv() as table:
        table.write_rows([csv_header(metadata_columns, with_tokens=with_tokens)])
        for chunk, pngs in chunks:
            table.write_rows([csv_cells(row, metadata_columns, with_tokens=with_tokens) for row in chunk])
            for row, png in zip(chunk, pngs, strict=True):
                archive.add_stored(f"{QR_FOLDER}/{names.claim(row.serial_number, row.device_id)}.png", png)
            count += len(chunk)
            if progress is not None:
                progress(count)
        archive.add_deflated(csv_name, table.finish(), crc=table.crc, size=table.size)
    return count


def _check_entry_name(name: str) -> None:
    if not name or name.startswith("/") or ".." in name or "\\" in name:
        raise ValueError(f"unsafe archive entry name {name!r}")


class _DeflatedCsv:
    """CSV rows as UTF-8, deflated into a temporary file as they come, with CRC-32 and size."""

    def __init__(self) -> None:
        self.crc = 0
        self.size = 0
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)

    def __enter__(self) -> _DeflatedCsv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()

    def write_rows(self, rows: list[list[str]]) -> None:
        data = csv_text(rows).encode("utf-8")
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self._file.write(self._deflate.compress(data))

    def finish(self) -> IO[bytes]:
        self._file.write(self._deflate.flush())
        return self._file
