"""The files of a static-token batch, as the API and the console send them: the one-time
export (built whole and committed before the first byte), and the labels (zip and PDF) any
time. Each is written to a private scratch file of the data directory, synced, sent, removed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from lineside.adapters.labels import label_rows, write_labels_pdf, write_zip
from lineside.domain.models import Principal
from lineside.entrypoints.api.dependencies import application
from lineside.services import static_tokens
from lineside.services.context import ServiceContext
from lineside.services.static_tokens import BatchContents


async def export_file(
    request: Request, ctx: ServiceContext, caller: Principal, batch_id: str
) -> FileResponse:
    """tokens.csv (with device tokens) and qr/*.png: Gone after the first time."""
    path = await run_in_threadpool(_built_export, request, ctx, caller, batch_id)
    return _sent_then_removed(path, f"static-tokens-{batch_id}.zip", "application/zip")


async def labels_zip_file(
    request: Request, ctx: ServiceContext, caller: Principal, batch_id: str
) -> FileResponse:
    contents = await run_in_threadpool(static_tokens.batch_labels, ctx, caller, batch_id)
    return await labels_file(request, contents, "zip")


async def labels_pdf_file(
    request: Request, ctx: ServiceContext, caller: Principal, batch_id: str
) -> FileResponse:
    contents = await run_in_threadpool(static_tokens.batch_labels, ctx, caller, batch_id)
    return await labels_file(request, contents, "pdf")


async def labels_file(request: Request, contents: BatchContents, kind: str) -> FileResponse:
    """Labels of a batch's units (all of them, or a selection) as a zip of QR codes and a
    CSV, or as a PDF to print."""
    name = f"labels-{contents.batch.id}.{kind}"
    if kind == "zip":
        return await run_in_threadpool(
            _file_response, request, _zip_of(contents, False), name, "application/zip"
        )

    def write(out: BinaryIO) -> object:
        return write_labels_pdf(out, label_rows(contents.rows), product_name=contents.product.name)

    return await run_in_threadpool(_file_response, request, write, name, "application/pdf")


def _scratch_file(request: Request, write: Callable[[BinaryIO], object], suffix: str) -> str:
    """``write`` into a new private file of the data dir's scratch folder, synced; its path."""
    scratch = application(request).settings.data_dir / "tmp"
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, path = tempfile.mkstemp(dir=scratch, suffix=suffix)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(path)
        raise
    return path


def _sent_then_removed(path: str, name: str, media: str) -> FileResponse:
    return FileResponse(path, media_type=media, filename=name, background=BackgroundTask(os.unlink, path))


def _file_response(
    request: Request, write: Callable[[BinaryIO], object], name: str, media: str
) -> FileResponse:
    return _sent_then_removed(_scratch_file(request, write, Path(name).suffix), name, media)


def _built_export(request: Request, ctx: ServiceContext, caller: Principal, batch_id: str) -> str:
    """The whole export zip on disk, its tokens committed; the scratch file goes if it fails."""
    built: list[str] = []

    def build(contents: BatchContents) -> str:
        built.append(_scratch_file(request, _zip_of(contents, True), ".zip"))
        return built[-1]

    try:
        return static_tokens.export_batch(ctx, caller, batch_id, build)
    except BaseException:
        for path in built:
            os.unlink(path)
        raise


def _zip_of(contents: BatchContents, with_tokens: bool) -> Callable[[BinaryIO], object]:
    csv_name = "tokens.csv" if with_tokens else "labels.csv"
    return lambda out: write_zip(
        out,
        label_rows(contents.rows),
        metadata_columns=contents.batch.metadata_columns,
        with_tokens=with_tokens,
        csv_name=csv_name,
    )
