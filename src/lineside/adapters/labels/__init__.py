"""QR codes, the static-token export zip, the labels zip and the labels PDF.

Map::

    rows.py        LabelRow and its CSV cells
    names.py       safe, distinct file names inside an archive
    qr.py          one QR code as a 1-bit PNG (zxing-cpp)
    qr_stream.py   QR PNGs for a stream of rows, on every core, in order
    zip_stream.py  a ZIP writer with flat memory
    archives.py    write_zip: qr/*.png and a CSV
    pdf_stream.py  a PDF writer with flat memory
    pdf.py         write_labels_pdf: A4 sheets of labels
"""

from lineside.adapters.labels.archives import write_zip
from lineside.adapters.labels.names import archive_name
from lineside.adapters.labels.pdf import LABELS_PER_PAGE, write_labels_pdf
from lineside.adapters.labels.qr import qr_png
from lineside.adapters.labels.rows import LabelRow, label_rows

__all__ = [
    "LABELS_PER_PAGE",
    "LabelRow",
    "archive_name",
    "label_rows",
    "qr_png",
    "write_labels_pdf",
    "write_zip",
]
