"""The printable labels sheet: A4 pages of 3 x 8 labels, each a QR code beside the serial
number (bold) and the product name. Written page by page as QR codes arrive.

Text is set in the standard Helvetica fonts (no font is embedded) with WinAnsi encoding:
characters outside Windows-1252 print as ``?``. Long text wraps within its label and is
clipped to it, never spilling onto a neighbour.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from itertools import accumulate
from typing import BinaryIO

from lineside.adapters.labels.pdf_stream import PdfStream
from lineside.adapters.labels.qr import png_size_and_idat
from lineside.adapters.labels.qr_stream import encoded_chunks
from lineside.adapters.labels.rows import LabelRow

MM = 72 / 25.4
PAGE_WIDTH, PAGE_HEIGHT = 210 * MM, 297 * MM
COLUMNS, ROWS = 3, 8
LABELS_PER_PAGE = COLUMNS * ROWS
_MARGIN_X, _MARGIN_Y = 8 * MM, 12 * MM
_CELL_WIDTH = (PAGE_WIDTH - 2 * _MARGIN_X) / COLUMNS
_CELL_HEIGHT = (PAGE_HEIGHT - 2 * _MARGIN_Y) / ROWS
_QR_SIZE = 28 * MM
_PAD = 2 * MM
_TEXT_WIDTH = _CELL_WIDTH - _QR_SIZE - 3 * _PAD
_SERIAL_SIZES, _SERIAL_LINES = (9, 8, 7), 4
_SHORTEST_LINE = 4  # characters: a shorter line of a wrapped serial reads as a typo
_NAME_SIZE, _NAME_LINES = 7, 2
_LEADING = 1.25

# Advance widths (1/1000 em) of characters 32 to 126, from Adobe's Helvetica AFM files.
_HELVETICA = (
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778,
    722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278,
    278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
)  # fmt: skip
_HELVETICA_BOLD = (
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778,
    722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333,
    278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
)  # fmt: skip
_WIDE = 1000  # any other character: wrap early rather than overflow


def _by_byte(ascii_widths: Sequence[int]) -> tuple[int, ...]:
    return tuple(ascii_widths[code - 32] if 32 <= code <= 126 else _WIDE for code in range(256))


_REGULAR_WIDTHS, _BOLD_WIDTHS = _by_byte(_HELVETICA), _by_byte(_HELVETICA_BOLD)

Line = tuple[bytes, int, bytes]  # font resource name, size, WinAnsi text


def write_labels_pdf(
    out: BinaryIO,
    rows: Iterable[LabelRow],
    *,
    product_name: str,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> int:
    """Write the sheet to ``out`` and return the number of labels (an empty batch: one blank page)."""
    count = 0
    name_lines = [
        (b"F1", _NAME_SIZE, text) for text in _wrap(product_name, _REGULAR_WIDTHS, _NAME_SIZE, _NAME_LINES)
    ]
    with closing(encoded_chunks(rows, workers=workers)) as chunks, PdfStream(out) as pdf:
        regular = pdf.add(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
        )
        bold = pdf.add(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
        )
        fonts = f"/Font << /F1 {regular} 0 R /F2 {bold} 0 R >>"
        page: list[tuple[LabelRow, bytes]] = []
        for chunk, pngs in chunks:
            for labelled in zip(chunk, pngs, strict=True):
                page.append(labelled)
                if len(page) == LABELS_PER_PAGE:
                    _write_page(pdf, page, fonts, name_lines)
                    page = []
            count += len(chunk)
            if progress is not None:
                progress(count)
        if page or pdf.page_count == 0:
            _write_page(pdf, page, fonts, name_lines)
    return count


def _write_page(
    pdf: PdfStream, labels: Sequence[tuple[LabelRow, bytes]], fonts: str, name_lines: list[Line]
) -> None:
    images = []
    operators = []
    for slot, (row, png) in enumerate(labels):
        width, idat = png_size_and_idat(png)
        image = pdf.add_stream(
            f"/Type /XObject /Subtype /Image /Width {width} /Height {width} /ColorSpace /DeviceGray"
            f" /BitsPerComponent 1 /Filter /FlateDecode"
            f" /DecodeParms << /Predictor 15 /Colors 1 /BitsPerComponent 1 /Columns {width} >>",
            idat,
        )
        images.append(f"/Q{slot} {image} 0 R")
        operators.append(_label(slot, _serial_lines(row.serial_number) + name_lines))
    content = pdf.add_content(b"".join(operators))
    pdf.add_page(
        f"/MediaBox [0 0 {PAGE_WIDTH:.2f} {PAGE_HEIGHT:.2f}]"
        f" /Resources << {fonts} /XObject << {' '.join(images)} >> >> /Contents {content} 0 R"
    )


def _label(slot: int, lines: list[Line]) -> bytes:
    left = _MARGIN_X + (slot % COLUMNS) * _CELL_WIDTH
    bottom = PAGE_HEIGHT - _MARGIN_Y - (slot // COLUMNS + 1) * _CELL_HEIGHT
    qr_x, qr_y = left + _PAD, bottom + (_CELL_HEIGHT - _QR_SIZE) / 2
    parts = [
        b"q %.2f %.2f %.2f %.2f re W n\n" % (left, bottom, _CELL_WIDTH, _CELL_HEIGHT),
        b"q %.2f 0 0 %.2f %.2f %.2f cm /Q%d Do Q\n" % (_QR_SIZE, _QR_SIZE, qr_x, qr_y, slot),
    ]
    block = sum(size * _LEADING for _, size, _ in lines)
    baseline = bottom + (_CELL_HEIGHT + block) / 2
    for font, size, text in lines:
        baseline -= size * _LEADING
        parts.append(
            b"BT /%s %d Tf %.2f %.2f Td (%s) Tj ET\n" % (font, size, qr_x + _QR_SIZE + _PAD, baseline, text)
        )
    parts.append(b"Q\n")
    return b"".join(parts)


def _serial_lines(serial: str) -> list[Line]:
    """The serial in bold, as large as it fits without leaving a few characters stranded on a
    line of their own (a UUID broken 35 + 1): smaller sizes are tried down to the smallest."""
    for size in _SERIAL_SIZES:
        lines = _wrap(serial, _BOLD_WIDTHS, size, _SERIAL_LINES)
        if len(lines) == 1 or min(len(line) for line in lines) >= _SHORTEST_LINE or size == _SERIAL_SIZES[-1]:
            return [(b"F2", size, line) for line in lines]
    raise AssertionError("unreachable: the smallest size is always taken")


def _wrap(text: str, widths: Sequence[int], size: int, max_lines: int) -> list[bytes]:
    """``text`` in WinAnsi, broken into lines that fit the text column: at a space when it can,
    else after a hyphen (UUIDs, part numbers), else where the column ends; beyond ``max_lines``
    the last line ends in ``...``."""
    encoded = text.encode("cp1252", errors="replace")
    limit = _TEXT_WIDTH * 1000 / size
    if _width(encoded, widths) <= limit:
        return [_escape(encoded)] if encoded else []
    lines: list[bytes] = []
    while encoded and len(lines) < max_lines:
        end = _fitting(encoded, widths, limit)
        if end < len(encoded):
            end = _break_before(encoded, end)
        lines.append(encoded[:end].strip())
        encoded = encoded[end:].lstrip()
    if encoded and lines:
        last = lines[-1]
        while last and _width(last + b"...", widths) > limit:
            last = last[:-1]
        lines[-1] = last + b"..."
    return [_escape(line) for line in lines]


def _break_before(encoded: bytes, end: int) -> int:
    """Where to end a line that may hold ``encoded[:end]``: a space, or just after a hyphen."""
    space = encoded.rfind(b" ", 0, end + 1)
    if space > 0:
        return space
    hyphen = encoded.rfind(b"-", 0, end)
    return hyphen + 1 if hyphen > 0 else end


def _fitting(encoded: bytes, widths: Sequence[int], limit: float) -> int:
    """How many leading characters fit within ``limit`` (at least one)."""
    return max(bisect_right(list(accumulate(map(widths.__getitem__, encoded))), limit), 1)


def _width(encoded: bytes, widths: Sequence[int]) -> int:
    return sum(map(widths.__getitem__, encoded))


def _escape(text: bytes) -> bytes:
    return text.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
