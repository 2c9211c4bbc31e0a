"""Rewriting bytes of an Intel HEX file in place, keeping its dialect.

A loader may know only the dialect its toolchain writes: I8HEX (16-bit addresses), I16HEX
(segments, record types 02/03) or I32HEX (linear addresses, types 04/05), with records of
16 or 32 bytes, upper- or lower-case hex, CRLF or LF. Serialising the memory image again
(as ``intelhex.write_hex_file`` does) turns every one of those into I32HEX with 16-byte
records. So the file is kept as its lines, and only the data records that hold the bytes
being replaced are rewritten: same address, same length, new data and checksum. Every other
line, record type and line ending stays exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA = 0x00
EXTENDED_SEGMENT_ADDRESS = 0x02
EXTENDED_LINEAR_ADDRESS = 0x04


class HexRecordError(ValueError):
    """A line that is not an Intel HEX record."""


@dataclass(frozen=True)
class _DataRecord:
    line: int  # index in the file's lines
    address: int  # absolute address of its first data byte
    length: int


class HexRecords:
    """The lines of an Intel HEX file, with where each data record's bytes live."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines(keepends=True)
        self._data: list[_DataRecord] = []
        base = 0
        for index, line in enumerate(self._lines):
            record = _parse(line)
            if record is None:
                continue
            kind, address, data = record
            if kind == DATA:
                self._data.append(_DataRecord(index, base + address, len(data)))
            elif kind == EXTENDED_SEGMENT_ADDRESS:
                base = int.from_bytes(data, "big") * 16
            elif kind == EXTENDED_LINEAR_ADDRESS:
                base = int.from_bytes(data, "big") << 16

    def with_bytes(self, start: int, replacement: bytes) -> str:
        """The file with ``replacement`` written from address ``start``, every other byte and
        line as it was. Every replaced address must be held by a data record."""
        end = start + len(replacement)
        lines = list(self._lines)
        covered = 0
        for record in self._data:
            first, last = max(start, record.address), min(end, record.address + record.length)
            if first >= last:
                continue
            lines[record.line] = _rewritten(
                lines[record.line], first - record.address, replacement[first - start : last - start]
            )
            covered += last - first
        if covered != len(replacement):
            raise HexRecordError(f"addresses 0x{start:x}-0x{end:x} are not all held by data records")
        return "".join(lines)


def _parse(line: str) -> tuple[int, int, bytes] | None:
    """(record type, 16-bit address, data) of a record line; None for a blank line."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith(":"):
        raise HexRecordError(f"not a record: {text[:20]!r}")
    try:
        raw = bytes.fromhex(text[1:])
    except ValueError:
        raise HexRecordError(f"not hexadecimal: {text[:20]!r}") from None
    if len(raw) < 5 or len(raw) != raw[0] + 5 or sum(raw) & 0xFF:
        raise HexRecordError(f"bad length or checksum: {text[:20]!r}")
    return raw[3], int.from_bytes(raw[1:3], "big"), raw[4:-1]


def _rewritten(line: str, offset: int, data: bytes) -> str:
    """The record ``line`` with its data from ``offset`` replaced by ``data`` and a new
    checksum, in the line's own letter case and line ending."""
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    raw = bytearray(bytes.fromhex(body.strip()[1:]))
    raw[4 + offset : 4 + offset + len(data)] = data
    raw[-1] = (-sum(raw[:-1])) & 0xFF
    digits = raw.hex()
    lower = any(character in "abcdef" for character in body)
    return ":" + (digits if lower else digits.upper()) + ending
