"""QR codes, export and labels zips and the labels PDF, read back with independent decoders
(zxing-cpp's reader on Pillow's PNG decoding, zipfile, pypdf)."""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import re
import secrets
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy
import pypdf
import pytest
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from lineside.adapters.labels import (
    LABELS_PER_PAGE,
    LabelRow,
    archive_name,
    qr_png,
    write_labels_pdf,
    write_zip,
)
from lineside.adapters.labels.zip_stream import ZipStream

PUBLIC_URL = "https://lineside.example.com"
METADATA_COLUMNS = ["colour", "batch"]
QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
SAFE_NAME = re.compile(r"^qr/[A-Za-z0-9][A-Za-z0-9._-]*\.png$")


def label(index: int, serial: str | None = None, *, token: bool = True, **metadata: object) -> LabelRow:
    return LabelRow(
        device_id=f"0198{index:04x}-{secrets.token_hex(2)}-7{secrets.token_hex(1)}-8{secrets.token_hex(1)}-{secrets.token_hex(6)}",
        serial_number=f"SN-{index:06d}" if serial is None else serial,
        claim_url=f"{PUBLIC_URL}/claim/lsc_{secrets.token_urlsafe(20)[:26]}",
        metadata=metadata or {"colour": "red", "batch": index // 10},
        device_token=f"lsd_{secrets.token_urlsafe(32)}" if token else None,
    )


def labels(count: int, *, token: bool = True) -> list[LabelRow]:
    return [label(index, token=token) for index in range(count)]


def qr_codes_in(image: Image.Image) -> list[zxingcpp.Barcode]:
    # Looking for every format, the reader also "finds" a short ITF bar code inside about one
    # QR code in 500, whichever mask the QR code uses; a phone's camera looks for QR codes.
    return list(zxingcpp.read_barcodes(image, formats=QR_ONLY))


def decoded(png: bytes) -> list[zxingcpp.Barcode]:
    return qr_codes_in(Image.open(io.BytesIO(png)))


def zipped(rows: list[LabelRow], *, with_tokens: bool = True, workers: int | None = 1) -> zipfile.ZipFile:
    out = io.BytesIO()
    written = write_zip(
        out,
        iter(rows),
        metadata_columns=METADATA_COLUMNS,
        with_tokens=with_tokens,
        csv_name="tokens.csv",
        workers=workers,
    )
    assert written == len(rows)
    archive = zipfile.ZipFile(out)
    assert archive.testzip() is None
    return archive


def qr_entries(archive: zipfile.ZipFile) -> list[str]:
    return [name for name in archive.namelist() if name.startswith("qr/")]


def csv_of(archive: zipfile.ZipFile) -> list[list[str]]:
    text = archive.read("tokens.csv").decode("utf-8")
    return list(csv.reader(io.StringIO(text)))


def pdf_of(rows: list[LabelRow], product_name: str = "Thermostat 3000", workers: int | None = 1) -> bytes:
    out = io.BytesIO()
    assert write_labels_pdf(out, iter(rows), product_name=product_name, workers=workers) == len(rows)
    return out.getvalue()


# QR codes


def test_a_qr_png_decodes_to_its_text_with_error_correction_m_and_the_best_scored_mask() -> None:
    url = f"{PUBLIC_URL}/claim/lsc_{secrets.token_urlsafe(20)[:26]}"
    [barcode] = decoded(qr_png(url))
    assert barcode.text == url
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode
    extra = barcode.extra
    assert isinstance(extra, dict)
    searched = zxingcpp.create_barcode(url, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    [searched_read] = qr_codes_in(
        Image.fromarray(numpy.asarray(searched.to_image(scale=4, add_quiet_zones=True)))
    )
    assert isinstance(searched_read.extra, dict)
    assert (extra["ECLevel"], extra["DataMask"]) == ("M", searched_read.extra["DataMask"])


def test_a_qr_png_is_1_bit_with_4_pixel_modules_and_a_4_module_white_quiet_zone() -> None:
    image = Image.open(io.BytesIO(qr_png(f"{PUBLIC_URL}/claim/lsc_{'A' * 26}")))
    assert image.mode == "1"
    assert image.width == image.height
    symbol_modules = image.width // 4 - 8
    assert image.width % 4 == 0 and (symbol_modules - 21) % 4 == 0  # versions have 21, 25, 29... modules
    quiet = 4 * 4
    side = image.width
    strips = [
        (0, 0, side, quiet),
        (0, side - quiet, side, side),
        (0, 0, quiet, side),
        (side - quiet, 0, side, side),
    ]
    assert [image.crop(box).getextrema() for box in strips] == [(255, 255)] * 4
    assert image.getpixel((quiet, quiet)) == 0  # the finder pattern starts right after it


# The export zip and the labels zip


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("with_tokens", [True, False])
def test_every_png_in_a_zip_decodes_to_its_rows_claim_url(with_tokens: bool, workers: int) -> None:
    rows = labels(40, token=with_tokens)
    archive = zipped(rows, with_tokens=with_tokens, workers=workers)
    entries = qr_entries(archive)
    assert entries == [f"qr/{row.serial_number}.png" for row in rows]
    for row, name in zip(rows, entries, strict=True):
        assert [barcode.text for barcode in decoded(archive.read(name))] == [row.claim_url]


def test_pngs_are_stored_and_the_csv_deflated() -> None:
    archive = zipped(labels(3))
    methods = {info.filename: info.compress_type for info in archive.infolist()}
    assert methods == {
        "qr/SN-000000.png": zipfile.ZIP_STORED,
        "qr/SN-000001.png": zipfile.ZIP_STORED,
        "qr/SN-000002.png": zipfile.ZIP_STORED,
        "tokens.csv": zipfile.ZIP_DEFLATED,
    }


def test_the_export_csv_has_ids_serials_metadata_tokens_and_claim_urls_in_row_order() -> None:
    rows = labels(25)
    table = csv_of(zipped(rows, with_tokens=True))
    assert table[0] == ["device_id", "serial_number", "colour", "batch", "device_token", "claim_url"]
    assert table[1:] == [
        [row.device_id, row.serial_number, "red", str(index // 10), str(row.device_token), row.claim_url]
        for index, row in enumerate(rows)
    ]


def test_the_labels_csv_has_no_token_column_and_the_zip_holds_no_token_even_when_rows_carry_one() -> None:
    rows = labels(5, token=True)
    out = io.BytesIO()
    write_zip(
        out, rows, metadata_columns=METADATA_COLUMNS, with_tokens=False, csv_name="labels.csv", workers=1
    )
    archive = zipfile.ZipFile(out)
    table = list(csv.reader(io.StringIO(archive.read("labels.csv").decode())))
    assert table[0] == ["device_id", "serial_number", "colour", "batch", "claim_url"]
    assert [line[-1] for line in table[1:]] == [row.claim_url for row in rows]
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert not any(str(row.device_token).encode() in everything for row in rows)


def test_an_export_with_tokens_refuses_a_row_without_one() -> None:
    rows = [label(0), label(1, token=False)]
    with pytest.raises(ValueError, match="no device token"):
        zipped(rows, with_tokens=True)


def test_a_row_failing_midway_stops_the_worker_processes_and_raises() -> None:
    rows = [*labels(1500), label(1500, token=False), *labels(1000)]
    with pytest.raises(ValueError, match="no device token"):
        zipped(rows, with_tokens=True, workers=2)
    assert multiprocessing.active_children() == []


def test_metadata_values_are_written_as_text_and_missing_ones_as_empty_cells() -> None:
    row = LabelRow("d-1", "SN-1", f"{PUBLIC_URL}/claim/lsc_x", {"colour": True, "batch": 2.5})
    sparse = LabelRow("d-2", "SN-2", f"{PUBLIC_URL}/claim/lsc_y", {})
    table = csv_of(zipped([row, sparse], with_tokens=False))
    assert [line[2:4] for line in table[1:]] == [["true", "2.5"], ["", ""]]


def test_formula_cells_are_neutralised_in_serials_and_metadata() -> None:
    row = LabelRow(
        "d-1",
        '=HYPERLINK("http://evil")',
        f"{PUBLIC_URL}/claim/lsc_x",
        {"colour": "@SUM(A1:A9)", "batch": -5},
    )
    [_, line] = csv_of(zipped([row], with_tokens=False))
    assert line[1:4] == ['\'=HYPERLINK("http://evil")', "'@SUM(A1:A9)", "'-5"]


def test_a_small_batch_is_encoded_without_worker_processes_and_workers_2_starts_two() -> None:
    most_children: dict[str, int] = {}

    def count_children(name: str) -> Callable[[int], None]:
        def seen(_done: int) -> None:
            children = len(multiprocessing.active_children())
            most_children[name] = max(children, most_children.get(name, 0))

        return seen

    for name, count, workers in (("small, automatic", 10, None), ("three chunks, two workers", 1100, 2)):
        write_zip(
            io.BytesIO(),
            labels(count),
            metadata_columns=[],
            with_tokens=True,
            csv_name="t.csv",
            progress=count_children(name),
            workers=workers,
        )
    assert most_children == {"small, automatic": 0, "three chunks, two workers": 2}


def test_progress_reports_the_rows_written_so_far_up_to_the_total() -> None:
    reported: list[int] = []
    rows = labels(1100)
    out = io.BytesIO()
    write_zip(
        out,
        rows,
        metadata_columns=[],
        with_tokens=True,
        csv_name="t.csv",
        progress=reported.append,
        workers=1,
    )
    assert reported == [512, 1024, 1100]


def test_an_empty_batch_gives_a_zip_with_only_the_csv_header() -> None:
    archive = zipped([], with_tokens=True, workers=None)
    assert archive.namelist() == ["tokens.csv"]
    assert csv_of(archive) == [["device_id", "serial_number", "colour", "batch", "device_token", "claim_url"]]


@pytest.mark.parametrize("csv_name", ["../tokens.csv", "/tokens.csv", "", "a\\..\\b.csv"])
def test_an_unsafe_csv_name_is_refused(csv_name: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        write_zip(io.BytesIO(), [], metadata_columns=[], with_tokens=False, csv_name=csv_name)


def test_a_zip_of_8000_rows_peaks_at_about_the_memory_of_2000_rows(tmp_path: Path) -> None:
    """Memory is bounded by the chunks in flight (four of 512 rows with two workers), which
    2,000 rows already fill: four times the rows must not come near four times the peak."""

    def traced_peak(count: int) -> int:
        rows = (label(index) for index in range(count))
        with (tmp_path / f"{count}.zip").open("wb") as out:
            tracemalloc.start()
            try:
                write_zip(
                    out,
                    rows,
                    metadata_columns=METADATA_COLUMNS,
                    with_tokens=True,
                    csv_name="t.csv",
                    workers=2,
                )
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    small, large = traced_peak(2000), traced_peak(8000)
    assert large < 2 * small, (small, large)


# File names inside the zip


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        ("SN-0001", "SN-0001"),
        ("../x", "x"),
        ("/abs", "abs"),
        ("..\\..\\windows", "windows"),
        ("a..b", "a.b"),
        ("with space/and:colon", "with_space_and_colon"),
        ("Gerät-1", "Ger_t-1"),
        ("CON", "device_CON"),
        ("nul.txt", "device_nul.txt"),
        ("x" * 300, "x" * 100),
    ],
)
def test_archive_names_keep_letters_digits_dots_dashes_underscores_only(serial: str, expected: str) -> None:
    assert archive_name(serial, "0198aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee") == expected


@pytest.mark.parametrize("serial", ["", "...", "/", "../", "ü"])
def test_a_serial_with_nothing_usable_falls_back_to_the_device_id(serial: str) -> None:
    assert (
        archive_name(serial, "0198aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee") == "0198aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee"
    )


@given(st.text(max_size=200), st.text(max_size=40))
def test_any_serial_gives_a_name_that_cannot_leave_the_folder(serial: str, device_id: str) -> None:
    name = archive_name(serial, device_id)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) or name == "device"
    assert ".." not in name


def test_dangerous_and_duplicate_serials_unpack_to_distinct_files_inside_the_folder(tmp_path: Path) -> None:
    serials = [
        "../x",
        "x",
        "X",
        "/abs",
        "",
        "",
        "Gerät",
        "Ger_t",
        "a b",
        "a_b",
        "dup",
        "dup",
        "CON",
        "..",
        "-x-",
    ]
    rows = [label(index, serial) for index, serial in enumerate(serials)]
    archive = zipped(rows, workers=2)
    entries = qr_entries(archive)
    assert len(entries) == len(rows)
    assert len({name.lower() for name in entries}) == len(rows)
    assert all(SAFE_NAME.match(name) and ".." not in name for name in entries), entries
    assert entries[:4] == [
        "qr/x.png",
        f"qr/x-{rows[1].device_id[-12:]}.png",
        f"qr/X-{rows[2].device_id[-12:]}.png",
        "qr/abs.png",
    ]
    archive.extractall(tmp_path / "out")
    unpacked = sorted(
        path.relative_to(tmp_path / "out").as_posix() for path in (tmp_path / "out").rglob("*.png")
    )
    assert unpacked == sorted(entries)
    for row, name in zip(rows, entries, strict=True):
        assert [barcode.text for barcode in decoded(archive.read(name))] == [row.claim_url]


def test_more_than_65535_entries_make_a_zip64_archive_that_zipfile_reads() -> None:
    out = io.BytesIO()
    with ZipStream(out) as archive:
        for index in range(65_537):
            archive.add_stored(f"e/{index}", index.to_bytes(3, "big"))
    data = out.getvalue()
    assert b"PK\x06\x06" in data[-200:]  # the ZIP64 end of central directory record
    reader = zipfile.ZipFile(io.BytesIO(data))
    assert len(reader.infolist()) == 65_537
    assert reader.read("e/65536") == (65_536).to_bytes(3, "big")


# The labels PDF


@pytest.mark.parametrize("count", [1, 24, 25, 50])
def test_the_pdf_has_one_page_per_24_labels(count: int) -> None:
    pdf = pdf_of(labels(count))
    assert pdf.startswith(b"%PDF-")
    assert LABELS_PER_PAGE == 24
    assert len(pypdf.PdfReader(io.BytesIO(pdf)).pages) == math.ceil(count / LABELS_PER_PAGE)


def test_an_empty_batch_gives_one_blank_page() -> None:
    reader = pypdf.PdfReader(io.BytesIO(pdf_of([])))
    assert len(reader.pages) == 1
    assert reader.pages[0].extract_text().strip() == ""


def test_every_label_shows_its_serial_number_and_the_product_name() -> None:
    rows = labels(30)
    reader = pypdf.PdfReader(io.BytesIO(pdf_of(rows, "Thermostat (Größe 3)", workers=2)))
    pages = [page.extract_text() for page in reader.pages]
    for index, row in enumerate(rows):
        assert row.serial_number in pages[index // LABELS_PER_PAGE]
    assert pages[0].count("Thermostat (Größe 3)") == 24
    assert pages[1].count("Thermostat (Größe 3)") == 6


def test_every_qr_image_in_the_pdf_decodes_to_its_labels_claim_url() -> None:
    rows = labels(26)
    reader = pypdf.PdfReader(io.BytesIO(pdf_of(rows)))
    images = [image.image for page in reader.pages for image in page.images]
    assert all(image is not None for image in images)
    assert [[barcode.text for barcode in qr_codes_in(image)] for image in images if image] == [
        [row.claim_url] for row in rows
    ]


def test_long_serials_and_names_wrap_within_the_label_and_other_scripts_print_as_question_marks() -> None:
    serial = "LONG-" + "9" * 120
    rows = [label(0, serial)]
    text = pypdf.PdfReader(io.BytesIO(pdf_of(rows, "温度 sensor " + "word " * 30))).pages[0].extract_text()
    assert "LONG-\n999" in text  # broken after its hyphen, then where the column ends
    assert "?? sensor" in text
    assert "..." in text  # the product name did not fit in two lines


def test_a_uuid_serial_breaks_after_hyphens_and_never_leaves_a_few_characters_alone() -> None:
    from lineside.adapters.labels.pdf import _serial_lines

    for _ in range(2000):
        serial = str(uuid.uuid4())
        lines = [text.decode() for _font, _size, text in _serial_lines(serial)]

        assert "".join(lines) == serial
        assert all(len(line) >= 4 for line in lines), lines
        assert all(line.endswith("-") for line in lines[:-1]), lines


def test_a_uuid_serial_prints_whole_on_the_sheet() -> None:
    serials = [str(uuid.uuid4()) for _ in range(3)]
    rows = [label(index, serial) for index, serial in enumerate(serials)]
    text = pypdf.PdfReader(io.BytesIO(pdf_of(rows, "Sensor"))).pages[0].extract_text()
    flattened = "".join(text.split())
    assert all(serial in flattened for serial in serials)
