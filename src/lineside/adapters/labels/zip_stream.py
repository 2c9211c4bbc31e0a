"""A ZIP writer whose memory does not grow with the number of entries.

``zipfile.ZipFile`` keeps a ``ZipInfo`` of about 520 bytes per entry until it closes, and it
cannot write a second entry while one is open. Here each central directory record is written
to a temporary file as soon as its entry is written, and copied to the output at the end.
The output is only ever appended to, so a pipe or socket works as well as a file.

Map of the output (APPNOTE 6.3.10)::

    [local header, data] ...  central directory  [zip64 end record, zip64 locator]  end record

ZIP64 records appear only when needed: more than 65,535 entries, or an offset or size
beyond 4 GiB.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import time
import zlib
from types import TracebackType
from typing import IO, BinaryIO

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_SIZES = struct.Struct("<HHQQ")  # extra field 1: size, compressed size
_LIMIT_32 = 0xFFFFFFFF
_LIMIT_16 = 0xFFFF
_UTF8_NAMES = 0x0800
_STORED = 0
_DEFLATED = 8
_VERSION = 20
_VERSION_ZIP64 = 45
_MADE_BY_UNIX = 3 << 8
_REGULAR_FILE_0644 = 0o100644 << 16
_COPY_BUFFER = 1 << 20


class ZipStream:
    """Append entries to ``out``; :meth:`close` writes the central directory."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._offset = 0
        self._count = 0
        self._directory: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close or __exit__)
        self._directory_size = 0
        self._time, self._date = _dos_now()

    def __enter__(self) -> ZipStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._directory.close()

    def add_stored(self, name: str, data: bytes) -> None:
        """One entry kept as it is (for data already compressed, such as PNGs)."""
        crc = zlib.crc32(data)
        self._write_entry(name, _STORED, crc, len(data), len(data), [data])

    def add_deflated(self, name: str, compressed: IO[bytes], *, crc: int, size: int) -> None:
        """One entry from a raw deflate stream (``wbits=-15``) already written to a file."""
        compressed_size = compressed.seek(0, 2)
        compressed.seek(0)
        self._write_entry(name, _DEFLATED, crc, compressed_size, size, [])
        shutil.copyfileobj(compressed, self._out, _COPY_BUFFER)
        self._offset += compressed_size

    def close(self) -> None:
        directory_offset = self._offset
        self._directory.seek(0)
        shutil.copyfileobj(self._directory, self._out, _COPY_BUFFER)
        self._directory.close()
        self._offset += self._directory_size
        needs_zip64 = (
            self._count > _LIMIT_16 or directory_offset >= _LIMIT_32 or self._directory_size >= _LIMIT_32
        )
        if needs_zip64:
            zip64_end = _ZIP64_END.pack(
                b"PK\x06\x06", _ZIP64_END.size - 12, _MADE_BY_UNIX | _VERSION_ZIP64, _VERSION_ZIP64,
                0, 0, self._count, self._count, self._directory_size, directory_offset,
            )  # fmt: skip
            self._out.write(zip64_end + _ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, self._offset, 1))
        count = min(self._count, _LIMIT_16)
        size = min(self._directory_size, _LIMIT_32)
        self._out.write(
            _END.pack(b"PK\x05\x06", 0, 0, count, count, size, min(directory_offset, _LIMIT_32), 0)
        )

    def _write_entry(
        self, name: str, method: int, crc: int, compressed_size: int, size: int, data: list[bytes]
    ) -> None:
        encoded = name.encode("utf-8")
        offset = self._offset
        big_sizes = compressed_size >= _LIMIT_32 or size >= _LIMIT_32
        local_extra = _ZIP64_SIZES.pack(1, 16, size, compressed_size) if big_sizes else b""
        version = _VERSION_ZIP64 if big_sizes or offset >= _LIMIT_32 else _VERSION
        shown_compressed, shown_size = (_LIMIT_32, _LIMIT_32) if big_sizes else (compressed_size, size)
        header = _LOCAL.pack(
            b"PK\x03\x04", version, _UTF8_NAMES, method, self._time, self._date,
            crc, shown_compressed, shown_size, len(encoded), len(local_extra),
        )  # fmt: skip
        chunk = b"".join((header, encoded, local_extra, *data))
        self._out.write(chunk)
        self._offset += len(chunk)
        self._count += 1
        self._record(encoded, version, method, crc, compressed_size, size, offset)

    def _record(
        self,
        encoded: bytes,
        version: int,
        method: int,
        crc: int,
        compressed_size: int,
        size: int,
        offset: int,
    ) -> None:
        big_sizes = compressed_size >= _LIMIT_32 or size >= _LIMIT_32
        extra = b""
        if big_sizes or offset >= _LIMIT_32:
            # Only the fields whose 32-bit slot says 0xFFFFFFFF appear, in this order.
            fields = [size, compressed_size] if big_sizes else []
            if offset >= _LIMIT_32:
                fields.append(offset)
            extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields)
        record = _CENTRAL.pack(
            b"PK\x01\x02", _MADE_BY_UNIX | version, version, _UTF8_NAMES, method, self._time, self._date,
            crc, _LIMIT_32 if big_sizes else compressed_size, _LIMIT_32 if big_sizes else size,
            len(encoded), len(extra), 0, 0, 0, _REGULAR_FILE_0644, min(offset, _LIMIT_32),
        )  # fmt: skip
        self._directory.write(record + encoded + extra)
        self._directory_size += len(record) + len(encoded) + len(extra)


def _dos_now() -> tuple[int, int]:
    now = time.localtime()
    dos_time = now.tm_hour << 11 | now.tm_min << 5 | now.tm_sec // 2
    dos_date = (now.tm_year - 1980) << 9 | now.tm_mon << 5 | now.tm_mday
    return dos_time, dos_date
