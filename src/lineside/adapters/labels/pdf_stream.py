"""A PDF writer that sends each object out as soon as it is made.

Why not fpdf2: it keeps the whole document until ``output()`` and re-encodes every image;
measured here at about 4 ms and 6 KB of memory per label (100,000 labels: some 7 minutes and
600 MB); this writer: 28 s on two cores, memory flat. Labels need few kinds of object (catalog, page
tree, pages with their content, images, two standard fonts), and the QR images are embedded
without decoding because PDF's Flate filter understands PNG's row filters (``/Predictor 15``).

Map of the output (ISO 32000-1, section 7.5)::

    header  1 catalog  3.. fonts  [images, content, page] ...  2 page tree  xref  trailer

The cross-reference table has one fixed 20-byte line per object, collected in a temporary
file, so memory does not grow with the page count.
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from array import array
from types import TracebackType
from typing import IO, BinaryIO

CATALOG = 1
PAGE_TREE = 2
_HEADER = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
_XREF_LINE = 20


class PdfStream:
    """Objects numbered in the order they are written; the page tree (object 2) comes last."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._offset = 0
        self._xref: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close or __exit__)
        self._next = 1
        self._pages = array("L")
        self._write(_HEADER)
        self.add(f"<< /Type /Catalog /Pages {PAGE_TREE} 0 R >>".encode())
        self._next += 1  # the page tree: its xref line is a placeholder until close()
        self._xref.write(b"0000000000 65535 f\r\n")

    def __enter__(self) -> PdfStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._xref.close()

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def add(self, body: bytes) -> int:
        """Write ``body`` as the next object; return its number."""
        number = self._next
        self._next += 1
        self._xref.write(self._xref_line())
        self._write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        return number

    def add_stream(self, entries: str, data: bytes) -> int:
        """A stream object: ``entries`` are its dictionary's entries besides ``/Length``."""
        return self.add(b"<< %s /Length %d >>\nstream\n%s\nendstream" % (entries.encode(), len(data), data))

    def add_content(self, operators: bytes) -> int:
        return self.add_stream("/Filter /FlateDecode", zlib.compress(operators))

    def add_page(self, entries: str) -> int:
        number = self.add(f"<< /Type /Page /Parent {PAGE_TREE} 0 R {entries} >>".encode())
        self._pages.append(number)
        return number

    def close(self) -> None:
        kids = " ".join(f"{number} 0 R" for number in self._pages)
        self._xref.seek((PAGE_TREE - 1) * _XREF_LINE)
        self._xref.write(self._xref_line())
        self._write(
            b"%d 0 obj\n<< /Type /Pages /Kids [%s] /Count %d >>\nendobj\n"
            % (PAGE_TREE, kids.encode(), len(self._pages))
        )
        xref_offset = self._offset
        self._write(b"xref\n0 %d\n0000000000 65535 f\r\n" % self._next)
        self._xref.seek(0)
        shutil.copyfileobj(self._xref, self._out)
        self._xref.close()
        self._out.write(
            b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (self._next, CATALOG, xref_offset)
        )

    def _xref_line(self) -> bytes:
        return b"%010d 00000 n\r\n" % self._offset

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._offset += len(data)
