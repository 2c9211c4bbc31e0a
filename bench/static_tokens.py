"""How fast a batch of static tokens is made and exported with its QR codes.

What it measures, for ``--count`` units (default 100,000) on SQLite (or ``--backend
postgres``): (1) ``create_static_tokens`` (devices with claim codes, one transaction),
(2) ``export_batch`` + ``write_zip`` to a file: device tokens made as rows are read, the
CSV, one QR PNG per unit encoded on every core, then the hashes committed at once: the code behind
``GET /api/v1/static-token-batches/{id}/export.zip`` and ``lineside tokens create``.
Beside it, in the same run, the QR encoder alone on one core (``png_batch`` a chunk at a time).

It prints units/s for each step and overall, and the process's peak memory (ru_maxrss,
which includes the parent's share only; the encoder workers are separate processes). Run
with two counts to see that memory stays flat as the count grows. Afterwards it checks the
zip: one CSV row and one PNG per unit, and a sample of PNGs decodes (zxing-cpp) to its
row's claim URL.

Reproduce (from the repository root):

    .venv/bin/python bench/static_tokens.py --count 100000
    .venv/bin/python bench/static_tokens.py --count 20000 --backend postgres
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import random
import resource
import secrets
import tempfile
import time
import zipfile
from contextlib import ExitStack
from pathlib import Path

from PIL import Image
from scratch import DEFAULT_POSTGRES_URL, cpu_model, postgres_database

from lineside.adapters.labels import label_rows, write_zip
from lineside.adapters.labels.qr import png_batch
from lineside.adapters.labels.qr_stream import CHUNK_ROWS
from lineside.bootstrap import bootstrap
from lineside.services import static_tokens
from lineside.services.organizations import authenticate_api_key, create_organization
from lineside.services.products import create_product
from lineside.settings import Settings

ENCODER_SAMPLE = 2000
DECODE_SAMPLE = 50


def machine() -> str:
    return f"{cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def encoder_rate() -> float:
    urls = [f"http://127.0.0.1:8080/claim/lsc_{secrets.token_urlsafe(20)}" for _ in range(ENCODER_SAMPLE)]
    started = time.perf_counter()
    for start in range(0, len(urls), CHUNK_ROWS):
        png_batch(urls[start : start + CHUNK_ROWS])  # as an export encodes them, a chunk at a time
    return ENCODER_SAMPLE / (time.perf_counter() - started)


def check_archive(path: Path, count: int) -> None:
    with zipfile.ZipFile(path) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("tokens.csv").decode())))
        pngs = [name for name in archive.namelist() if name.startswith("qr/")]
        assert len(rows) == count == len(pngs), (len(rows), len(pngs), count)
        import zxingcpp  # noqa: PLC0415 - only the check needs the decoder

        for row in random.sample(rows, min(DECODE_SAMPLE, count)):
            image = Image.open(io.BytesIO(archive.read(f"qr/{row['serial_number']}.png")))
            assert [found.text for found in zxingcpp.read_barcodes(image)] == [row["claim_url"]]


def run(count: int, backend: str, postgres_url: str) -> None:
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        workdir = Path(scratch)
        url = f"sqlite:///{workdir / 'bench.db'}"
        if backend == "postgres":
            url = stack.enter_context(postgres_database(postgres_url))
        measure(count, backend, url, workdir)


def measure(count: int, backend: str, url: str, workdir: Path) -> None:
    app = bootstrap(Settings(database_url=url, data_dir=workdir / "data"), migrate=True)
    ctx = app.services
    organization = create_organization(ctx, "bench")
    principal = authenticate_api_key(ctx, organization.admin_key.secret)
    product = create_product(ctx, principal, name="Bench sensor", fields=[])

    started = time.perf_counter()
    batch = static_tokens.create_static_tokens(ctx, principal, product.id, count=count)
    created = time.perf_counter()
    archive = workdir / "export.zip"

    def build(contents: static_tokens.BatchContents) -> int:
        with archive.open("wb") as out:
            return write_zip(
                out, label_rows(contents.rows), metadata_columns=[], with_tokens=True, csv_name="tokens.csv"
            )

    static_tokens.export_batch(ctx, principal, batch.id, build)
    exported = time.perf_counter()
    rss = peak_rss_mib()
    encoder = encoder_rate()
    check_archive(archive, count)
    app.close()

    total = exported - started
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.1f}")
    columns = ("create s", "export s", "total s", "units/s")
    print(f"{'backend':8} {'units':>8} " + " ".join(f"{name:>9}" for name in columns) + f" {'peak RSS':>9}")
    print(
        f"{backend:8} {count:>8,} {created - started:>9.2f} {exported - created:>9.2f} {total:>9.2f} "
        f"{count / total:>9,.0f} {rss:>5.0f} MiB"
    )
    size = archive.stat().st_size / 2**20
    print(f"QR encoder alone (png_batch, one core): {encoder:,.0f} PNG/s; archive {size:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    arguments = parser.parse_args()
    run(arguments.count, arguments.backend, arguments.postgres_url)


if __name__ == "__main__":
    main()
