"""Reading a QR label the way a phone would: decode the PNG, then find the code in it.

The demo runs with the project's runtime dependencies only, which include zxing-cpp's
decoder but no imaging library; so the PNG (grayscale, 1 or 8 bits, not interlaced, as
the label writer makes them) is decoded here with the standard library.
"""

from __future__ import annotations

import struct
import zlib

import zxingcpp

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAYSCALE = 0


class UnreadableLabel(Exception):
    """The PNG is not one this reader handles, or holds no QR code."""


def read_qr_png(png: bytes) -> str:
    """The text of the one QR code in ``png``."""
    width, height, pixels = _grayscale_pixels(png)
    image = memoryview(pixels).cast("B", (height, width))
    found = zxingcpp.read_barcodes(image)
    if not found:
        raise UnreadableLabel("no QR code found in the label")
    return str(found[0].text)


def _chunks(png: bytes) -> dict[bytes, bytes]:
    if not png.startswith(_SIGNATURE):
        raise UnreadableLabel("not a PNG")
    chunks: dict[bytes, bytes] = {}
    offset = len(_SIGNATURE)
    while offset + 8 <= len(png):
        length, kind = struct.unpack_from(">I4s", png, offset)
        data = png[offset + 8 : offset + 8 + length]
        chunks[kind] = chunks.get(kind, b"") + data  # IDAT may be split
        offset += 12 + length
    return chunks


def _grayscale_pixels(png: bytes) -> tuple[int, int, bytes]:
    """(width, height, one byte per pixel: 0 black, 255 white)."""
    chunks = _chunks(png)
    try:
        width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
        raw = zlib.decompress(chunks[b"IDAT"])
    except (KeyError, struct.error, zlib.error):
        raise UnreadableLabel("a damaged PNG") from None
    if colour != _GRAYSCALE or depth not in (1, 8) or interlace:
        raise UnreadableLabel(f"an unsupported PNG (colour type {colour}, {depth} bits)")
    stride = (width * depth + 7) // 8
    rows = _unfiltered(raw, stride, height)
    if depth == 8:
        return width, height, b"".join(rows)
    pixels = bytearray()
    for row in rows:
        bits = int.from_bytes(row, "big")
        total = stride * 8
        pixels.extend(255 if bits >> (total - 1 - x) & 1 else 0 for x in range(width))
    return width, height, bytes(pixels)


def _unfiltered(raw: bytes, stride: int, height: int) -> list[bytes]:
    """Undo PNG's per-row filters (none, sub, up, average, Paeth); one byte a pixel unit."""
    rows: list[bytes] = []
    previous = bytes(stride)
    for index in range(height):
        start = index * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - 1] if x else 0
            line[x] = (line[x] + _predict(kind, left, previous[x], previous[x - 1] if x else 0)) & 0xFF
        rows.append(bytes(line))
        previous = rows[-1]
    return rows


def _predict(kind: int, left: int, up: int, up_left: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    if kind == 4:
        guess = left + up - up_left
        distances = (abs(guess - left), abs(guess - up), abs(guess - up_left))
        return (left, up, up_left)[distances.index(min(distances))]
    raise UnreadableLabel(f"an unknown PNG filter {kind}")
