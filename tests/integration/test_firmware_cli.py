"""``lineside firmware inject``: one verified, owner-only image per device, or nothing for a bad row."""

from __future__ import annotations

import csv
import io
import secrets
import stat
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from intelhex import IntelHex

from lineside.adapters.firmware_images import SLOT_MAGIC, DeviceSecrets, ImageFormat, nvs_strings, read_back
from lineside.entrypoints.cli.firmware import firmware

BROKER = "mqtts://mqtt.example.com:8883"
COMMON_CODE = b"\x90" * 2048


def new_token() -> str:
    return "lsd_" + secrets.token_urlsafe(32)


def run(*args: str) -> Result:
    return CliRunner().invoke(firmware, ["inject", *args], prog_name="lineside firmware")


def failed_with_one_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ")
    return lines[-1]


def only_files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def owner_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
def raw_image(tmp_path: Path) -> Path:
    path = tmp_path / "common.bin"
    path.write_bytes(COMMON_CODE + SLOT_MAGIC + (256).to_bytes(2, "little") + bytes(256) + COMMON_CODE)
    return path


@pytest.fixture
def hex_image(tmp_path: Path, raw_image: Path) -> Path:
    image = IntelHex()
    image.puts(0x0800_0000, b"boot" * 64)
    image.puts(0x0802_0000, raw_image.read_bytes())
    text = io.StringIO()
    image.write_hex_file(text)
    path = tmp_path / "common.hex"
    path.write_text(text.getvalue())
    return path


def write_tokens(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = ["device_id", "serial_number", "device_token", "claim_url", "colour"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[c for c in columns if c in rows[0]])
        writer.writeheader()
        writer.writerows(rows)
    return path


def token_row(serial: str, token: str | None = None) -> dict[str, str]:
    return {
        "device_id": str(uuid.uuid4()),
        "serial_number": serial,
        "device_token": token or new_token(),
        "claim_url": "https://lineside.example/claim#c0de",
        "colour": "red",
    }


def expected(row: dict[str, str], broker: str | None = BROKER) -> DeviceSecrets:
    return DeviceSecrets(row["device_id"], row["device_token"], broker)


def test_one_device_gets_an_owner_only_raw_image_carrying_its_credentials(
    raw_image: Path, tmp_path: Path
) -> None:
    device_id, token, out = str(uuid.uuid4()), new_token(), tmp_path / "unit.bin"

    result = run(
        "--format",
        "raw",
        "--image",
        str(raw_image),
        "--device-id",
        device_id,
        "--token",
        token,
        "--out",
        str(out),
    )

    assert result.exit_code == 0, result.output
    assert read_back(out.read_bytes(), ImageFormat.RAW) == DeviceSecrets(device_id, token)
    assert owner_only(out)
    assert "read back and verified" in result.stdout
    assert token not in result.output


@pytest.mark.parametrize(("fmt", "suffix"), [("raw", ".bin"), ("ihex", ".hex"), ("nvs", ".bin")])
def test_every_row_of_a_token_export_gets_one_verified_image(
    fmt: str, suffix: str, raw_image: Path, hex_image: Path, tmp_path: Path
) -> None:
    rows = [token_row("SN-0001"), token_row("SN-0002"), token_row("")]
    tokens = write_tokens(tmp_path / "tokens.csv", rows)
    image = {"raw": ["--image", str(raw_image)], "ihex": ["--image", str(hex_image)], "nvs": []}[fmt]
    out_dir = tmp_path / "images"

    result = run("--format", fmt, *image, "--csv", str(tokens), "--out-dir", str(out_dir), "--broker", BROKER)

    assert result.exit_code == 0, result.output
    names = ["SN-0001" + suffix, "SN-0002" + suffix, rows[2]["device_id"] + suffix]
    assert only_files_in(out_dir) == sorted(names)
    for row, name in zip(rows, names, strict=True):
        assert read_back((out_dir / name).read_bytes(), ImageFormat(fmt)) == expected(row)
        assert owner_only(out_dir / name)
    assert f"wrote 3 {fmt} images" in result.stdout


def test_hex_images_read_back_through_intelhex_with_the_common_code_untouched(
    hex_image: Path, tmp_path: Path
) -> None:
    row = token_row("SN-HEX")
    tokens = write_tokens(tmp_path / "tokens.csv", [row])

    result = run(
        "--format", "ihex", "--image", str(hex_image), "--csv", str(tokens), "--out-dir", str(tmp_path / "o")
    )

    assert result.exit_code == 0, result.output
    written = IntelHex(str(tmp_path / "o" / "SN-HEX.hex"))
    assert written.gets(0x0800_0000, 256) == b"boot" * 64
    assert written.gets(0x0802_0000, len(COMMON_CODE)) == COMMON_CODE
    payload = written.gets(0x0802_0000 + len(COMMON_CODE) + 10, 256).rstrip(b"\0").decode()
    assert payload == f"device_id={row['device_id']}\ntoken={row['device_token']}\n"


def test_nvs_images_hold_the_keys_in_the_lineside_namespace_at_the_size_asked(tmp_path: Path) -> None:
    row = token_row("SN-NVS")
    tokens = write_tokens(tmp_path / "tokens.csv", [row])

    result = run(
        "--format", "nvs", "--nvs-size", "0x3000", "--csv", str(tokens), "--out-dir", str(tmp_path / "o")
    )

    assert result.exit_code == 0, result.output
    partition = (tmp_path / "o" / "SN-NVS.bin").read_bytes()
    assert len(partition) == 0x3000
    assert nvs_strings(partition) == {
        "lineside": {"device_id": row["device_id"], "token": row["device_token"]}
    }


def test_serial_numbers_cannot_steer_files_out_of_the_output_directory(
    raw_image: Path, tmp_path: Path
) -> None:
    rows = [token_row("../x"), token_row("/etc/passwd"), token_row(".hidden")]
    tokens = write_tokens(tmp_path / "tokens.csv", rows)
    out_dir = tmp_path / "deep" / "images"

    result = run(
        "--format", "raw", "--image", str(raw_image), "--csv", str(tokens), "--out-dir", str(out_dir)
    )

    assert result.exit_code == 0, result.output
    assert only_files_in(out_dir) == ["_etc_passwd.bin", "_x.bin", "hidden.bin"]
    assert not (tmp_path / "deep" / "x.bin").exists()
    assert read_back((out_dir / "_x.bin").read_bytes(), ImageFormat.RAW) == expected(rows[0], None)


def test_existing_images_are_kept_unless_forced_and_nothing_else_is_written(
    raw_image: Path, tmp_path: Path
) -> None:
    rows = [token_row("SN-1"), token_row("SN-2")]
    tokens = write_tokens(tmp_path / "tokens.csv", rows)
    out_dir = tmp_path / "images"
    out_dir.mkdir()
    (out_dir / "SN-2.bin").write_bytes(b"flashed yesterday")
    args = ["--format", "raw", "--image", str(raw_image), "--csv", str(tokens), "--out-dir", str(out_dir)]

    refused = run(*args)

    assert "nothing was written" in failed_with_one_line(refused)
    assert "SN-2.bin exists; pass --force" in refused.stderr
    assert only_files_in(out_dir) == ["SN-2.bin"]
    assert (out_dir / "SN-2.bin").read_bytes() == b"flashed yesterday"

    forced = run(*args, "--force")

    assert forced.exit_code == 0, forced.output
    assert read_back((out_dir / "SN-2.bin").read_bytes(), ImageFormat.RAW) == expected(rows[1], None)
    assert owner_only(out_dir / "SN-2.bin")


def test_a_single_image_is_not_overwritten_without_force(raw_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "unit.bin"
    out.write_bytes(b"keep me")
    args = [
        "--format",
        "raw",
        "--image",
        str(raw_image),
        "--device-id",
        str(uuid.uuid4()),
        "--token",
        new_token(),
    ]

    line = failed_with_one_line(run(*args, "--out", str(out)))

    assert "exists; pass --force" in line
    assert out.read_bytes() == b"keep me"


def test_a_row_whose_token_does_not_fit_fails_naming_the_row_and_leaves_no_file_for_it(
    raw_image: Path, tmp_path: Path
) -> None:
    rows = [token_row("SN-1"), token_row("SN-2", "lsd_" + "A" * 400), token_row("SN-3")]
    tokens = write_tokens(tmp_path / "tokens.csv", rows)
    out_dir = tmp_path / "images"

    result = run(
        "--format", "raw", "--image", str(raw_image), "--csv", str(tokens), "--out-dir", str(out_dir)
    )

    line = failed_with_one_line(result)
    assert "row 3: The credentials need" in line
    assert line.endswith("slot holds 256; 1 of 3 files were written before it.")
    assert only_files_in(out_dir) == ["SN-1.bin"]


def test_a_csv_without_a_device_token_column_is_refused_clearly(raw_image: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"device_id,serial_number\n{uuid.uuid4()},SN-1\n")

    result = run(
        "--format", "raw", "--image", str(raw_image), "--csv", str(tokens), "--out-dir", str(tmp_path / "o")
    )

    assert failed_with_one_line(result) == f"Error: {tokens} has no device_token column."
    assert not (tmp_path / "o").exists()


def test_bad_rows_are_all_reported_before_anything_is_written(raw_image: Path, tmp_path: Path) -> None:
    rows = [token_row("SN-1"), token_row("SN-2", "lsk_an_api_key_not_a_device_token"), token_row("SN-3")]
    rows[2]["device_id"] = "not-a-uuid"
    tokens = write_tokens(tmp_path / "tokens.csv", rows)
    out_dir = tmp_path / "images"

    result = run(
        "--format", "raw", "--image", str(raw_image), "--csv", str(tokens), "--out-dir", str(out_dir)
    )

    assert "The batch has 2 problems" in failed_with_one_line(result)
    assert "row 3: The token is not a device token" in result.stderr
    assert "row 4: 'not-a-uuid' is not a device id" in result.stderr
    assert "lsk_an_api_key" not in result.output
    assert only_files_in(out_dir) == []


def test_an_image_without_a_slot_is_refused_before_any_file_is_written(tmp_path: Path) -> None:
    image = tmp_path / "no-slot.bin"
    image.write_bytes(COMMON_CODE)
    tokens = write_tokens(tmp_path / "tokens.csv", [token_row("SN-1")])

    result = run(
        "--format", "raw", "--image", str(image), "--csv", str(tokens), "--out-dir", str(tmp_path / "o")
    )

    assert "has no Lineside slot" in failed_with_one_line(result)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--format", "nvs", "--image", "IMAGE"], "takes no --image"),
        (["--format", "raw"], "needs --image"),
        (
            ["--format", "raw", "--image", "IMAGE", "--nvs-size", "0x6000"],
            "--nvs-size goes with --format nvs",
        ),
        (["--format", "nvs", "--nvs-size", "lots"], "is not a size"),
        (["--format", "raw", "--image", "IMAGE", "--out", "x.bin"], "Give --device-id, --token and --out"),
    ],
)
def test_mismatched_options_are_usage_errors(
    args: list[str], complaint: str, raw_image: Path, tmp_path: Path
) -> None:
    result = run(*[str(raw_image) if arg == "IMAGE" else arg for arg in args])

    assert result.exit_code == 2
    assert complaint in result.stderr


def test_an_nvs_size_that_is_not_whole_pages_is_refused(tmp_path: Path) -> None:
    args = ["--device-id", str(uuid.uuid4()), "--token", new_token(), "--out", str(tmp_path / "p.bin")]

    line = failed_with_one_line(run("--format", "nvs", "--nvs-size", "5000", *args))

    assert "multiple of 0x1000" in line
    assert only_files_in(tmp_path) == []


def test_an_image_that_fails_its_read_back_leaves_no_file_behind(raw_image: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "images"
    out_dir.mkdir()
    # A broker address holding the slot marker makes the written image read back with two slots.
    confusing_broker = "mqtts://" + SLOT_MAGIC.decode() + ".example.com"
    args = ["--device-id", str(uuid.uuid4()), "--token", new_token(), "--broker", confusing_broker]

    result = run("--format", "raw", "--image", str(raw_image), *args, "--out", str(out_dir / "unit.bin"))

    assert "2 Lineside slots" in failed_with_one_line(result)
    assert only_files_in(out_dir) == []
