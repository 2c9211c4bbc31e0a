"""``lineside tokens``: static tokens for a product, straight into a zip for the factory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from lineside.adapters.labels import label_rows, write_zip
from lineside.entrypoints.cli.common import opened_application, run_reporting_errors
from lineside.services import static_tokens
from lineside.services.organizations import operator_principal
from lineside.services.static_tokens import BatchContents


@click.group()
def tokens() -> None:
    """Static tokens: a device token for the firmware and a QR claim code per unit."""


@tokens.command("create")
@click.option("--product", "product_id", required=True, help="Product id.")
@click.option("--count", type=click.IntRange(1, static_tokens.MAX_COUNT), help="How many tokens to make.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="One token per row.",
)
@click.option("--mapping", help='Rename CSV columns, as JSON: {"Serial Number": "serial_number"}.')
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The zip to write (mode 0600).",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def tokens_create(
    product_id: str, count: int | None, csv_file: Path | None, mapping: str | None, out: Path, force: bool
) -> None:
    """Make a batch and write its one-time export: tokens.csv and qr/<serial>.png.

    The zip holds device tokens: it is the only time they are shown.
    """
    if (count is None) == (csv_file is None):
        raise click.UsageError("Give exactly one of --count or --csv.")
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it.")
    arguments = _arguments(count, csv_file, mapping)
    with opened_application() as app:
        ctx = app.services
        principal = operator_principal(ctx)
        batch = run_reporting_errors(
            lambda: static_tokens.create_static_tokens(ctx, principal, product_id, **arguments)
        )
        contents = run_reporting_errors(lambda: static_tokens.export_batch(ctx, principal, batch.id))
        _write_export(out, contents)
    click.echo(f"made {batch.count} static tokens in batch {batch.id}, written to {out}")


def _arguments(count: int | None, csv_file: Path | None, mapping: str | None) -> dict[str, Any]:
    if csv_file is None:
        return {"count": count}
    try:
        columns = json.loads(mapping) if mapping else {}
    except ValueError:
        raise click.UsageError("--mapping must be a JSON object.") from None
    try:
        text = csv_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{csv_file} is not UTF-8 text.") from None
    return {"csv_text": text, "mapping": columns}


def _write_export(out: Path, contents: BatchContents) -> None:
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    bar: Any = click.progressbar(
        length=contents.batch.count, label="writing tokens and QR codes", file=sys.stderr
    )
    with os.fdopen(descriptor, "wb") as handle, bar:
        write_zip(
            handle,
            label_rows(contents.rows),
            metadata_columns=contents.batch.metadata_columns,
            with_tokens=True,
            csv_name="tokens.csv",
            progress=bar.update,
        )
