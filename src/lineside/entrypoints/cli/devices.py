"""``lineside devices``: define devices from a file, for a downstream manufacturing process."""

from __future__ import annotations

from pathlib import Path

import click

from lineside.adapters.csv_files import csv_text
from lineside.domain.models import CredentialType
from lineside.entrypoints.cli.common import opened_application, run_reporting_errors, staged_output
from lineside.entrypoints.cli.groups import LazyCommand, LazyGroup
from lineside.services import devices as service
from lineside.services.devices import DefinedBatch
from lineside.services.organizations import operator_principal

CREDENTIAL_TYPES = click.Choice([kind.value for kind in CredentialType])


# The simulator brings the device SDK and its MQTT and HTTP clients: loaded when it runs.
SIMULATE = LazyCommand(
    "lineside.entrypoints.cli.simulate",
    "simulate",
    "Run a fleet of simulated devices over MQTT: connected/s, p50/p99 connect time, errors.",
)


@click.group(cls=LazyGroup, lazy_commands={"simulate": SIMULATE})
def devices() -> None:
    """Devices."""


@devices.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--product", "product_id", required=True, help="Product id.")
@click.option("--issue-credentials", type=CREDENTIAL_TYPES, help="Also issue a credential each.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write device ids (and secrets) as CSV here; created with owner-only permissions.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def devices_import(
    file: Path, product_id: str, issue_credentials: str | None, out: Path | None, force: bool
) -> None:
    """Define every device of a CSV (header: serial_number, mac, metadata fields), or none.

    A file with a single column and no 'serial_number' header is read as one serial number
    per line.
    """
    if issue_credentials and out is None:
        raise click.UsageError("--issue-credentials needs --out: the secrets are shown only once.")
    text = _read_text(file)
    kind = CredentialType(issue_credentials) if issue_credentials else None
    with staged_output(out, force) as staged, opened_application() as app:
        ctx = app.services

        def keep_secrets(batch: DefinedBatch) -> None:
            if staged is not None:
                staged.write_and_sync(csv_text(batch.credential_rows()).encode("utf-8"))

        batch = run_reporting_errors(
            lambda: service.define_batch(
                ctx,
                operator_principal(ctx),
                product_id=product_id,
                csv_text=_as_csv(text),
                issue_credentials=kind,
                before_commit=keep_secrets,
            )
        )
        if staged is not None:
            staged.publish()
    where = f", written to {out}" if out else ""
    click.echo(f"defined {len(batch.devices)} devices in batch {batch.batch_id}{where}")


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text.") from None


def _as_csv(text: str) -> str:
    """A bare list of serial numbers gets the header a CSV import needs."""
    first_line = text.lstrip().split("\n", 1)[0]
    if "serial_number" in first_line.split(","):
        return text
    return "serial_number\n" + text
