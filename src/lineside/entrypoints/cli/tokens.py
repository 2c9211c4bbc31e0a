"""``lineside tokens``: static tokens for a product, straight into a zip for the factory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from lineside.adapters.labels import label_rows, write_zip
from lineside.adapters.secret_files import StagedSecretFile
from lineside.domain.models import Principal
from lineside.entrypoints.cli.common import opened_application, run_reporting_errors, staged_output
from lineside.entrypoints.cli.groups import Group
from lineside.services import static_tokens
from lineside.services.context import ServiceContext
from lineside.services.organizations import operator_principal
from lineside.services.static_tokens import BatchContents

OUT_OPTION = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The zip to write (mode 0600); it appears only once its tokens are valid.",
)
FORCE_OPTION = click.option("--force", is_flag=True, help="Overwrite --out if it exists.")


@click.group(cls=Group)
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
@OUT_OPTION
@FORCE_OPTION
def tokens_create(
    product_id: str, count: int | None, csv_file: Path | None, mapping: str | None, out: Path, force: bool
) -> None:
    """Make a batch and write its one-time export: tokens.csv and qr/<serial>.png.

    The zip holds device tokens: it is the only time they are shown.
    """
    if (count is None) == (csv_file is None):
        raise click.UsageError("Give exactly one of --count or --csv.")
    arguments = _arguments(count, csv_file, mapping)
    with staged_output(out, force) as staged, opened_application() as app:
        assert staged is not None  # --out is required
        ctx = app.services
        principal = operator_principal(ctx)
        batch = run_reporting_errors(
            lambda: static_tokens.create_static_tokens(ctx, principal, product_id, **arguments)
        )
        _export(ctx, principal, batch.id, staged)
    click.echo(f"made {batch.count} static tokens in batch {batch.id}, written to {out}")


@tokens.command("export")
@click.argument("batch_id")
@OUT_OPTION
@FORCE_OPTION
def tokens_export(batch_id: str, out: Path, force: bool) -> None:
    """Write a batch's one-time export (after `regenerate`, or when `create` could not write it)."""
    with staged_output(out, force) as staged, opened_application() as app:
        assert staged is not None
        ctx = app.services
        count = _export(ctx, operator_principal(ctx), batch_id, staged)
    click.echo(f"exported {count} static tokens of batch {batch_id} to {out}")


def _export(ctx: ServiceContext, principal: Principal, batch_id: str, staged: StagedSecretFile) -> int:
    """The zip, whole and synced, before its tokens are committed; moved into place after."""

    def build(contents: BatchContents) -> int:
        return _write_export(staged, contents)

    try:
        count = run_reporting_errors(lambda: static_tokens.export_batch(ctx, principal, batch_id, build))
    except OSError as error:
        raise click.ClickException(
            f"cannot write {staged.target}: {error.strerror}. No token was issued; batch {batch_id} "
            f"can be exported with `lineside tokens export {batch_id} --out FILE`."
        ) from None
    staged.publish()
    return count


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


def _write_export(staged: StagedSecretFile, contents: BatchContents) -> int:
    bar: Any = click.progressbar(
        length=contents.batch.count, label="writing tokens and QR codes", file=sys.stderr
    )
    with bar:
        count = write_zip(
            staged.handle,
            label_rows(contents.rows),
            metadata_columns=contents.batch.metadata_columns,
            with_tokens=True,
            csv_name="tokens.csv",
            progress=bar.update,
        )
    staged.sync()
    return count
