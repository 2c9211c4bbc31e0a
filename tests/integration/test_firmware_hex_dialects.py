"""Injecting into an Intel HEX file keeps its dialect: an srec_cat-made I16HEX (segments,
record type 02) stays I16HEX, an I32HEX (type 04) stays I32HEX, 32-byte records stay 32
bytes, and every line that does not hold the slot is byte for byte what it was, so a loader
that knows only the input's dialect still reads the copy. srec_cat reads each copy back."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from lineside.adapters.firmware_images import DeviceSecrets, ImageFormat, inject, read_back

SREC_CAT = shutil.which("srec_cat")
CAPACITY = 200
BASE = 0x12000


def common_binary() -> bytes:
    slot = b"LSSLOT01" + struct.pack("<H", CAPACITY) + b"\0" * CAPACITY
    return bytes(range(256)) * 8 + slot + bytes(range(256)) * 70


def srec_cat(*args: str) -> None:
    assert SREC_CAT, "srecord (srec_cat) is part of the test environment: apt-get install srecord"
    subprocess.run([SREC_CAT, *args], check=True, capture_output=True, timeout=60)


def record_type(line: str) -> str:
    return line[7:9]


@pytest.mark.parametrize(
    ("dialect", "address_length", "extended"), [("I16HEX", "3", "02"), ("I32HEX", "4", "04")]
)
def test_an_srec_cat_hex_file_keeps_its_dialect_and_every_other_line(
    tmp_path: Path, dialect: str, address_length: str, extended: str
) -> None:
    binary = tmp_path / "common.bin"
    binary.write_bytes(common_binary())
    common = tmp_path / f"common-{dialect}.hex"
    srec_cat(
        str(binary),
        "-binary",
        "-offset",
        hex(BASE),
        "-o",
        str(common),
        "-intel",
        f"-address-length={address_length}",
        "-obs=32",
    )
    values = DeviceSecrets(device_id="dev-1", token="lsd_" + "x" * 43)

    written = inject(common.read_bytes(), ImageFormat.IHEX, values)

    before, after = common.read_text().splitlines(keepends=True), written.decode().splitlines(keepends=True)
    assert len(after) == len(before)
    changed = [index for index, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert 0 < len(changed) <= CAPACITY // 32 + 2  # only the records holding the slot
    assert {record_type(line) for line in after} == {record_type(line) for line in before}
    assert extended in {record_type(line) for line in after}
    assert all(len(old) == len(new) for old, new in zip(before, after, strict=True))
    assert read_back(written, ImageFormat.IHEX) == values
    copy = tmp_path / "unit.hex"
    copy.write_bytes(written)
    srec_cat(str(copy), "-intel", "-offset", hex(-BASE), "-o", str(tmp_path / "unit.bin"), "-binary")
    flashed, original = (tmp_path / "unit.bin").read_bytes(), common_binary()
    slot_start = original.index(b"LSSLOT01") + 10
    assert flashed[:slot_start] == original[:slot_start]
    assert flashed[slot_start + CAPACITY :] == original[slot_start + CAPACITY :]
    assert flashed[slot_start:].startswith(b"device_id=dev-1\ntoken=lsd_")


def test_lower_case_hex_and_crlf_line_endings_are_kept(tmp_path: Path) -> None:
    binary = tmp_path / "common.bin"
    binary.write_bytes(common_binary())
    common = tmp_path / "common.hex"
    srec_cat(str(binary), "-binary", "-o", str(common), "-intel", "-obs=16")
    text = common.read_text().lower().replace("\n", "\r\n")

    written = inject(text.encode(), ImageFormat.IHEX, DeviceSecrets(device_id="d", token="lsd_" + "y" * 43))

    lines = written.decode().split("\r\n")
    assert all(line == line.lower() for line in lines)
    assert "\n" not in written.decode().replace("\r\n", "")
