"""Device credentials written into firmware images, read back with the libraries that wrote them."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from intelhex import IntelHex

from lineside.adapters.firmware_images import (
    SLOT_MAGIC,
    DeviceSecrets,
    FirmwareImageError,
    ImageFormat,
    inject,
    load_template,
    nvs_strings,
    read_back,
)

BROKER = "mqtts://mqtt.example.com:8883"


def device(broker: str | None = BROKER) -> DeviceSecrets:
    return DeviceSecrets(str(uuid.uuid4()), "lsd_" + secrets.token_urlsafe(32), broker)


def slot(capacity: int, filler: bytes = b"\0") -> bytes:
    return SLOT_MAGIC + capacity.to_bytes(2, "little") + filler * capacity


def payload_of(values: DeviceSecrets) -> bytes:
    return "".join(f"{key}={value}\n" for key, value in values.entries()).encode()


def hex_text(hex_image: IntelHex) -> bytes:
    text = io.StringIO()
    hex_image.write_hex_file(text)
    return text.getvalue().encode("ascii")


def firmware_hex() -> IntelHex:
    """Code at a flash address, a gap, then a constants section holding the slot."""
    hex_image = IntelHex()
    hex_image.puts(0x0800_0000, bytes(range(256)) * 4)
    hex_image.puts(0x0801_0000, b"\xa5" * 32 + slot(200, b"\xff") + b"\x5a" * 16)
    hex_image.start_addr = {"EIP": 0x0800_0000}
    return hex_image


# -- raw images -----------------------------------------------------------------------------


@pytest.mark.parametrize("broker", [None, BROKER])
def test_a_raw_image_reads_back_the_values_written_into_its_slot(broker: str | None) -> None:
    values = device(broker)
    image = b"\x7f" * 300 + slot(160) + b"\x01" * 300

    written = inject(image, ImageFormat.RAW, values)

    assert read_back(written, ImageFormat.RAW) == values
    assert written[310 : 310 + 160] == payload_of(values).ljust(160, b"\0")
    assert (b"broker=" in written) is (broker is not None)


@pytest.mark.parametrize(("before", "after"), [(0, 500), (500, 0)], ids=["at the start", "at the end"])
def test_a_slot_at_either_end_of_the_image_is_used_whole(before: int, after: int) -> None:
    values = device()
    image = b"\x11" * before + slot(150) + b"\x22" * after

    written = inject(image, ImageFormat.RAW, values)

    assert len(written) == len(image)
    assert read_back(written, ImageFormat.RAW) == values


def test_no_byte_outside_the_slot_changes() -> None:
    image = secrets.token_bytes(1000) + slot(160, b"\xee") + secrets.token_bytes(1000)
    start, end = 1010, 1170

    written = inject(image, ImageFormat.RAW, device())

    assert written[:start] == image[:start]
    assert written[end:] == image[end:]
    assert written[start:end] != image[start:end]


def test_an_injected_image_still_has_its_one_slot_so_a_copy_can_be_injected_again() -> None:
    first, second = device(), device(None)
    image = bytes(64) + slot(150) + bytes(64)

    rewritten = inject(inject(image, ImageFormat.RAW, first), ImageFormat.RAW, second)

    assert read_back(rewritten, ImageFormat.RAW) == second
    assert b"broker=" not in rewritten


def test_an_image_without_a_slot_is_refused() -> None:
    with pytest.raises(FirmwareImageError, match="no Lineside slot"):
        inject(b"\0" * 4096, ImageFormat.RAW, device())


def test_an_image_with_two_slots_is_refused_naming_both() -> None:
    image = slot(100) + b"\xff" * 50 + slot(100)

    with pytest.raises(FirmwareImageError, match=r"2 Lineside slots \(at 0x0, 0xa0\)"):
        inject(image, ImageFormat.RAW, device())


def test_credentials_longer_than_the_slot_are_refused_naming_both_sizes() -> None:
    values = device()
    needed = len(payload_of(values))

    with pytest.raises(FirmwareImageError, match=f"need {needed} bytes but the Lineside slot holds 64"):
        inject(slot(64), ImageFormat.RAW, values)


def test_credentials_exactly_filling_the_slot_fit() -> None:
    values = device()
    capacity = len(payload_of(values))

    written = inject(slot(capacity) + b"\x99", ImageFormat.RAW, values)

    assert read_back(written, ImageFormat.RAW) == values
    assert written.endswith(b"\n\x99")


def test_a_slot_declaring_more_bytes_than_the_image_holds_is_refused() -> None:
    image = slot(100)[:-1]

    with pytest.raises(FirmwareImageError, match="declares 100 bytes, but only 99"):
        inject(image, ImageFormat.RAW, device())


def test_reading_an_empty_slot_is_an_error() -> None:
    with pytest.raises(FirmwareImageError, match="holds no device_id and token"):
        read_back(slot(100), ImageFormat.RAW)


def test_a_value_with_a_line_break_cannot_smuggle_a_line_into_the_slot() -> None:
    with pytest.raises(FirmwareImageError, match="printable"):
        DeviceSecrets(str(uuid.uuid4()), "lsd_x\nbroker=mqtt://evil")


def test_verifying_finds_a_byte_changed_outside_the_slot() -> None:
    values = device()
    template = load_template(ImageFormat.RAW, bytes(100) + slot(150) + bytes(100))
    written = bytearray(template.inject(values))
    template.verify(bytes(written), values)
    written[5] = 1

    with pytest.raises(FirmwareImageError, match="outside the slot"):
        template.verify(bytes(written), values)


def test_verifying_finds_values_other_than_those_expected() -> None:
    values = device()
    template = load_template(ImageFormat.RAW, slot(150))

    with pytest.raises(FirmwareImageError, match="does not read back"):
        template.verify(template.inject(values), device())


# -- Intel HEX --------------------------------------------------------------------------------


def test_a_hex_file_reads_back_through_intelhex_with_its_gaps_and_start_address_intact() -> None:
    values = device()
    original = firmware_hex()

    written = inject(hex_text(original), ImageFormat.IHEX, values)

    reread = IntelHex(io.StringIO(written.decode("ascii")))
    payload_address = 0x0801_0000 + 32 + len(SLOT_MAGIC) + 2
    assert reread.gets(payload_address, 200) == payload_of(values).ljust(200, b"\0")
    assert reread.segments() == original.segments()
    assert reread.gets(0x0800_0000, 1024) == bytes(range(256)) * 4
    assert reread.gets(payload_address + 200, 16) == b"\x5a" * 16
    assert reread.start_addr == {"EIP": 0x0800_0000}
    assert read_back(written, ImageFormat.IHEX) == values


def test_a_hex_template_makes_independent_images_for_each_device() -> None:
    first, second = device(), device(None)
    template = load_template(ImageFormat.IHEX, hex_text(firmware_hex()))

    first_image, second_image = template.inject(first), template.inject(second)

    template.verify(first_image, first)
    template.verify(second_image, second)
    assert read_back(first_image, ImageFormat.IHEX) == first
    assert read_back(second_image, ImageFormat.IHEX) == second


def test_a_hex_file_without_a_slot_is_refused() -> None:
    hex_image = IntelHex()
    hex_image.puts(0x1000, b"firmware without a slot")

    with pytest.raises(FirmwareImageError, match="HEX file has no Lineside slot"):
        inject(hex_text(hex_image), ImageFormat.IHEX, device())


def test_a_hex_slot_running_into_a_gap_is_refused() -> None:
    hex_image = IntelHex()
    hex_image.puts(0x1000, slot(100)[:60])
    hex_image.puts(0x2000, bytes(100))

    with pytest.raises(FirmwareImageError, match="declares 100 bytes, but only 50"):
        inject(hex_text(hex_image), ImageFormat.IHEX, device())


def test_text_that_is_not_intel_hex_is_refused() -> None:
    with pytest.raises(FirmwareImageError, match="not a valid Intel HEX file"):
        inject(b":zz\n", ImageFormat.IHEX, device())


# -- ESP32 NVS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("broker", [None, BROKER])
def test_an_nvs_partition_reads_back_from_its_lineside_namespace(broker: str | None) -> None:
    values = device(broker)

    partition = inject(None, ImageFormat.NVS, values)

    assert len(partition) == 0x6000
    assert nvs_strings(partition) == {"lineside": dict(values.entries())}
    assert read_back(partition, ImageFormat.NVS) == values


def test_an_nvs_partition_is_byte_for_byte_what_espressifs_generate_command_makes(tmp_path: Path) -> None:
    values = device()
    rows = "".join(f"{key},data,string,{value}\n" for key, value in values.entries())
    (tmp_path / "in.csv").write_text("key,type,encoding,value\nlineside,namespace,,\n" + rows)

    subprocess.run(
        [sys.executable, "-m", "esp_idf_nvs_partition_gen", "generate", "in.csv", "out.bin", "0x4000"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )

    assert inject(None, ImageFormat.NVS, values, nvs_size=0x4000) == (tmp_path / "out.bin").read_bytes()


def test_an_nvs_partition_size_that_is_not_whole_pages_is_refused() -> None:
    with pytest.raises(FirmwareImageError, match="multiple of 0x1000"):
        inject(None, ImageFormat.NVS, device(), nvs_size=0x6100)


def test_a_value_too_long_for_nvs_is_refused_by_the_generator() -> None:
    with pytest.raises(FirmwareImageError, match="cannot be built"):
        inject(None, ImageFormat.NVS, device("mqtts://" + "b" * 5000))


def test_a_damaged_nvs_string_fails_its_crc() -> None:
    values = device()
    partition = bytearray(inject(None, ImageFormat.NVS, values))
    where = partition.index(values.token.encode())
    partition[where] ^= 0x01

    with pytest.raises(FirmwareImageError, match="damaged: the string of key token"):
        read_back(bytes(partition), ImageFormat.NVS)


def test_an_nvs_partition_without_the_lineside_namespace_is_refused() -> None:
    blank = b"\xff" * 0x3000

    with pytest.raises(FirmwareImageError, match="no 'lineside' namespace"):
        read_back(blank, ImageFormat.NVS)


def test_an_nvs_template_takes_no_common_image() -> None:
    with pytest.raises(FirmwareImageError, match="takes no common image"):
        load_template(ImageFormat.NVS, b"\0" * 4096)
