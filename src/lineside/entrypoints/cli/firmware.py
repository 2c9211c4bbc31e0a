"""``lineside firmware``: put each device's credentials into a copy of a common firmware image.

Every file is written under a temporary name beside its target, read back from disk and
verified, and only then given its name, so a failed row never leaves an output file behind.
Files are created owner-only: they hold device tokens.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from lineside.adapters.firmware_images import (
    DEFAULT_NVS_SIZE,
    DeviceSecrets,
    FirmwareImageError,
    FirmwareTemplate,
    ImageFormat,
    load_template,
)
from lineside.domain.errors import BatchRejected, DomainError, RowError
from lineside.domain.identifiers import is_uuid
from lineside.domain.secret_tokens import SecretKind
from lineside.entrypoints.cli.common import run_reporting_errors
from lineside.entrypoints.cli.groups import Group

SUFFIXES = {ImageFormat.RAW: ".bin", ImageFormat.IHEX: ".hex", ImageFormat.NVS: ".bin"}
TOKEN_COLUMNS = ("device_token", "token")  # tokens.csv, and the --out file of `devices import`
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class Job:
    """One image to write."""

    row: int  # row 1 is the CSV header
    secrets: DeviceSecrets
    out: Path


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size such as 0x6000 or 24576.") from None


@click.group(cls=Group)
def firmware() -> None:
    """Firmware images carrying device credentials."""


@firmware.command("inject")
@click.option("--format", "fmt", type=click.Choice([f.value for f in ImageFormat]), required=True)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The common firmware image (raw or ihex; nvs partitions are generated whole).",
)
@click.option("--device-id", help="One device: its id.")
@click.option("--token", help="One device: its device token.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="One device: the image to write."
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Every row of a token export (device_id, serial_number, device_token).",
)
@click.option(
    "--out-dir", type=click.Path(file_okay=False, path_type=Path), help="With --csv: where to write."
)
@click.option("--broker", help="Broker address to write as well, e.g. mqtts://mqtt.example.com:8883.")
@click.option(
    "--nvs-size",
    callback=_size,
    metavar="BYTES",
    help=f"NVS partition size [default: 0x{DEFAULT_NVS_SIZE:x}].",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def inject(
    fmt: str,
    image: Path | None,
    device_id: str | None,
    token: str | None,
    out: Path | None,
    csv_file: Path | None,
    out_dir: Path | None,
    broker: str | None,
    nvs_size: int | None,
    force: bool,
) -> None:
    """Write device credentials into copies of a firmware image, each read back and verified.

    One device: --device-id, --token and --out. Every row of a CSV: --csv and --out-dir; each
    file is named after the row's serial number (or device id).
    """
    image_format = ImageFormat(fmt)
    template = _template(image_format, image, nvs_size)
    if csv_file is not None:
        if device_id or token or out:
            raise click.UsageError("--csv writes every row; leave out --device-id, --token and --out.")
        if out_dir is None:
            raise click.UsageError("--csv needs --out-dir.")
        _inject_rows(template, image_format, csv_file, out_dir, broker, force)
        return
    if out_dir is not None:
        raise click.UsageError("--out-dir goes with --csv; for one device use --out.")
    if not (device_id and token and out):
        raise click.UsageError("Give --device-id, --token and --out for one device, or --csv and --out-dir.")
    job = run_reporting_errors(lambda: Job(0, _device_secrets(device_id, token, broker), out))
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; pass --force to overwrite it.")
    _write_verified(template, job, force)
    click.echo(f"wrote {out} ({image_format}), read back and verified")


def _template(image_format: ImageFormat, image: Path | None, nvs_size: int | None) -> FirmwareTemplate:
    if image_format is ImageFormat.NVS and image is not None:
        raise click.UsageError("--format nvs generates the partition; it takes no --image.")
    if image_format is not ImageFormat.NVS and nvs_size is not None:
        raise click.UsageError("--nvs-size goes with --format nvs.")
    if image_format is not ImageFormat.NVS and image is None:
        raise click.UsageError(f"--format {image_format} needs --image, the common firmware image.")
    try:
        contents = image.read_bytes() if image is not None else None
    except OSError as error:
        raise click.ClickException(f"{image} cannot be read: {error.strerror}") from None
    size = DEFAULT_NVS_SIZE if nvs_size is None else nvs_size
    return run_reporting_errors(lambda: load_template(image_format, contents, nvs_size=size))


def _device_secrets(device_id: str, token: str, broker: str | None) -> DeviceSecrets:
    if not is_uuid(device_id):
        raise FirmwareImageError(f"{device_id!r} is not a device id.")
    if not token.startswith(SecretKind.DEVICE_TOKEN.value):
        raise FirmwareImageError(
            f"The token is not a device token (they start with {SecretKind.DEVICE_TOKEN})."
        )
    return DeviceSecrets(device_id, token, broker)


def _inject_rows(
    template: FirmwareTemplate,
    image_format: ImageFormat,
    csv_file: Path,
    out_dir: Path,
    broker: str | None,
    force: bool,
) -> None:
    rows = _read_rows(csv_file)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    jobs = run_reporting_errors(lambda: _plan(rows, out_dir, SUFFIXES[image_format], broker, force))
    done = 0
    with click.progressbar(jobs, label="Injecting", file=sys.stderr) as progress:
        for job in progress:
            try:
                _write_verified(template, job, force)
            except click.ClickException as error:
                reason = error.message.rstrip(".")
                raise click.ClickException(
                    f"row {job.row}: {reason}; {done} of {len(jobs)} files were written before it."
                ) from None
            done += 1
    click.echo(f"wrote {done} {image_format} images to {out_dir}, each read back and verified")


def _read_rows(csv_file: Path) -> list[dict[str, str]]:
    try:
        with csv_file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as error:
        raise click.ClickException(f"{csv_file} is not a readable CSV file: {error}") from None
    missing = [column for column in ("device_id", "device_token") if column not in columns]
    if missing == ["device_token"] and "token" in columns:
        missing = []
    if missing:
        raise click.ClickException(f"{csv_file} has no {' or '.join(missing)} column.")
    if not rows:
        raise click.ClickException(f"{csv_file} has no devices.")
    return rows


def _plan(
    rows: list[dict[str, str]], out_dir: Path, suffix: str, broker: str | None, force: bool
) -> list[Job]:
    """Check every row before anything is written; a bad row rejects the whole file."""
    jobs: list[Job] = []
    problems: list[RowError] = []
    rows_by_name: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        device_id = (row.get("device_id") or "").strip()
        token = next((row[c] or "" for c in TOKEN_COLUMNS if c in row), "").strip()
        name = file_name(row.get("serial_number") or "", device_id) + suffix
        try:
            secrets = _device_secrets(device_id, token, broker)
        except DomainError as error:
            problems.append(RowError(number, "", error.detail))
            continue
        same_name = name.casefold()  # one file on a case-insensitive file system
        if same_name in rows_by_name:
            problems.append(
                RowError(number, "serial_number", f"row {rows_by_name[same_name]} also writes {name}")
            )
        elif (out_dir / name).exists() and not force:
            problems.append(RowError(number, "serial_number", f"{out_dir / name} exists; pass --force"))
        rows_by_name.setdefault(same_name, number)
        jobs.append(Job(number, secrets, out_dir / name))
    if problems:
        raise BatchRejected(problems)
    return jobs


def file_name(serial_number: str, device_id: str) -> str:
    """A file name from a serial number (else the device id) that stays in its directory."""
    for text in (serial_number, device_id):
        name = _UNSAFE_NAME_CHARACTERS.sub("_", text.strip()).lstrip(".")[:_MAX_NAME_LENGTH]
        if name:
            return name
    return "device"


def _write_verified(template: FirmwareTemplate, job: Job, force: bool) -> None:
    """Write under a temporary name, read the file back, verify it, then give it its name."""
    data = run_reporting_errors(lambda: template.inject(job.secrets))
    try:
        descriptor, temporary = tempfile.mkstemp(dir=job.out.parent, prefix=".lineside-", suffix=".part")
    except OSError as error:
        raise click.ClickException(f"{job.out} cannot be written: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp creates it 0o600
            handle.write(data)
        written = Path(temporary).read_bytes()
        run_reporting_errors(lambda: template.verify(written, job.secrets))
        if force:
            os.replace(temporary, job.out)
        else:
            os.link(temporary, job.out)  # fails, rather than overwrites, if the name was taken
    except FileExistsError:
        raise click.ClickException(f"{job.out} exists; pass --force to overwrite it.") from None
    except OSError as error:
        raise click.ClickException(f"{job.out} cannot be written: {error.strerror}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
