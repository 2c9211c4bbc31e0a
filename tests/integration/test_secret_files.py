"""Files of secrets are all-or-nothing with the transaction that makes the secrets valid,
every CSV Lineside writes is safe to open in a spreadsheet, and the static-token export
commits its tokens only once the whole zip exists."""

from __future__ import annotations

import csv
import io
import resource
import signal
import stat
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from lineside.adapters.db import tables as t
from lineside.adapters.secret_files import StagedSecretFile
from lineside.bootstrap import Application, bootstrap
from lineside.domain.errors import Gone, Unauthenticated
from lineside.domain.models import Product
from lineside.services import static_tokens
from lineside.services.credentials import authenticate_device
from lineside.services.organizations import operator_principal
from lineside.services.static_tokens import BatchContents
from lineside.settings import Settings
from tests.integration.test_cli import lineside, new_product, succeeded
from tests.support.api import Tenant, unique

FORMULA_SERIALS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(1)"]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def devices_of(application: Application, product_id: str) -> list[Any]:
    with application.engine.connect() as connection:
        return list(connection.execute(select(t.devices).where(t.devices.c.product_id == product_id)))


def assert_neutralised(serials: list[str]) -> None:
    assert sorted(serials) == sorted("'" + serial for serial in FORMULA_SERIALS)


# --- the staged file itself -----------------------------------------------------------------


def test_a_staged_file_appears_only_when_published_and_is_private(tmp_path: Path) -> None:
    target = tmp_path / "secrets.csv"
    with StagedSecretFile(target) as staged:
        staged.write_and_sync(b"lsd_x\n")
        assert not target.exists()
        assert stat.S_IMODE(staged.staging.stat().st_mode) == 0o600
        staged.publish()
    assert target.read_bytes() == b"lsd_x\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [target]


def test_a_staged_file_that_is_not_published_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "secrets.csv"
    with pytest.raises(RuntimeError), StagedSecretFile(target) as staged:
        staged.write_and_sync(b"lsd_x\n")
        raise RuntimeError("the commit failed")
    assert list(tmp_path.iterdir()) == []


# --- the CLI: a file that cannot be written means nothing committed --------------------------


def with_file_size_limit(limit: int) -> None:
    # Writes past `limit` bytes fail with EFBIG instead of killing the process: the fault
    # is an ordinary OSError in the middle of writing the secrets.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def lineside_with_a_small_disk(settings: Settings, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return lineside(settings, *args, cwd=cwd, preexec_fn=lambda: with_file_size_limit(4096))


# These two run on PostgreSQL alone: SQLite's database is a file of the process, which the
# size limit would cut short as well.


@pytest.fixture
def pg_settings(postgres_database: str, data_dir: Path) -> Settings:
    return Settings(database_url=postgres_database, data_dir=data_dir, _env_file=None)


@pytest.fixture
def pg_application(pg_settings: Settings) -> Iterator[Application]:
    app = bootstrap(pg_settings)
    yield app
    app.close()


def test_devices_import_that_cannot_write_its_credentials_defines_nothing_and_leaves_no_file(
    pg_application: Application, pg_settings: Settings, tmp_path: Path
) -> None:
    application, settings = pg_application, pg_settings
    product = new_product(application)
    serials = tmp_path / "serials.txt"
    serials.write_text("\n".join(unique("SN") for _ in range(200)) + "\n")
    out = tmp_path / "credentials.csv"

    result = lineside_with_a_small_disk(
        settings,
        *("devices", "import", str(serials), "--product", product.id),
        *("--issue-credentials", "token", "--out", str(out)),
        cwd=tmp_path,
    )

    assert result.returncode != 0
    assert devices_of(application, product.id) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serials.txt"]
    # The same command with room to write defines them all, and its file holds every token.
    succeeded(
        lineside(
            settings,
            *("devices", "import", str(serials), "--product", product.id),
            *("--issue-credentials", "token", "--out", str(out)),
            cwd=tmp_path,
        )
    )
    rows = csv_rows(out.read_text())
    assert len(rows) == 200 == len(devices_of(application, product.id))
    assert authenticate_device(application.services, rows[0]["token"]).id == rows[0]["device_id"]


def test_tokens_create_that_cannot_write_its_zip_issues_no_token_and_can_be_exported_later(
    pg_application: Application, pg_settings: Settings, tmp_path: Path
) -> None:
    application, settings = pg_application, pg_settings
    product = new_product(application)
    out = tmp_path / "batch.zip"

    result = lineside_with_a_small_disk(
        settings,
        "tokens",
        "create",
        "--product",
        product.id,
        "--count",
        "50",
        "--out",
        str(out),
        cwd=tmp_path,
    )

    assert result.returncode != 0
    assert "lineside tokens export" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    units = devices_of(application, product.id)
    assert len(units) == 50
    assert all(unit.token_hash is None for unit in units)
    batch_id = units[0].batch_id

    succeeded(lineside(settings, "tokens", "export", batch_id, "--out", str(out), cwd=tmp_path))
    tokens = exported_tokens(out)
    assert len(tokens) == 50
    assert authenticate_device(application.services, tokens[0]["device_token"]).id == tokens[0]["device_id"]


def exported_tokens(archive: Path | bytes) -> list[dict[str, str]]:
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    with zipfile.ZipFile(source) as opened:
        return csv_rows(opened.read("tokens.csv").decode())


def test_tokens_create_writes_a_private_zip_whose_tokens_work(
    application: Application, settings: Settings, tmp_path: Path
) -> None:
    product = new_product(application)
    out = tmp_path / "batch.zip"

    succeeded(
        lineside(
            settings,
            "tokens",
            "create",
            "--product",
            product.id,
            "--count",
            "3",
            "--out",
            str(out),
            cwd=tmp_path,
        )
    )

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    tokens = exported_tokens(out)
    assert len(tokens) == 3
    for row in tokens:
        assert authenticate_device(application.services, row["device_token"]).id == row["device_id"]


# --- the static-token export: all or nothing --------------------------------------------------


def made_batch(application: Application, product: Product, count: int) -> str:
    ctx = application.services
    principal = operator_principal(ctx, product.organization_id)
    return static_tokens.create_static_tokens(ctx, principal, product.id, count=count).id


def test_an_export_that_fails_half_way_changes_nothing_and_can_be_exported_again(
    application: Application,
) -> None:
    product = new_product(application)
    batch_id = made_batch(application, product, static_tokens.EXPORT_CHUNK + 500)
    ctx = application.services
    principal = operator_principal(ctx, product.organization_id)
    seen: list[str] = []

    def fail_half_way(contents: BatchContents) -> None:
        for row in contents.rows:
            seen.append(row.device_token or "")
            if len(seen) == static_tokens.EXPORT_CHUNK + 10:
                raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        static_tokens.export_batch(ctx, principal, batch_id, fail_half_way)

    assert static_tokens.get_batch(ctx, principal, batch_id).exported_at is None
    assert all(unit.token_hash is None for unit in devices_of(application, product.id))
    with pytest.raises(Unauthenticated):
        authenticate_device(ctx, seen[0])

    rows = static_tokens.export_batch(ctx, principal, batch_id, lambda contents: list(contents.rows))
    assert len(rows) == static_tokens.EXPORT_CHUNK + 500
    assert authenticate_device(ctx, rows[-1].device_token or "").id == rows[-1].device_id
    with pytest.raises(Gone):
        static_tokens.export_batch(ctx, principal, batch_id, lambda contents: list(contents.rows))


def test_a_client_that_leaves_mid_download_finds_the_batch_exported_and_regenerate_recovers(
    application: Application, client: httpx.Client, tenant: Tenant, settings: Settings
) -> None:
    product_id = tenant.product()["id"]
    batch = tenant.created(f"/api/v1/products/{product_id}/static-tokens", {"count": 400})
    export = f"/api/v1/static-token-batches/{batch['batch_id']}/export.zip"

    with client.stream("GET", export, headers=tenant.headers) as response:
        assert response.status_code == 200
        first = next(response.iter_raw(4096))
        assert first.startswith(b"PK")
    # Left after the first chunk: the tokens were committed before it was sent.

    assert tenant.get(export).status_code == 410
    units = devices_of(application, product_id)
    assert len(units) == 400
    assert all(unit.token_hash is not None for unit in units)
    assert tenant.post(f"/api/v1/static-token-batches/{batch['batch_id']}/regenerate").status_code == 200
    again = tenant.get(export)
    assert again.status_code == 200
    row = exported_tokens(again.content)[0]
    assert authenticate_device(application.services, row["device_token"]).id == row["device_id"]
    scratch = settings.data_dir / "tmp"
    wait_until_empty(scratch)


def wait_until_empty(directory: Path) -> None:
    # The response's background task removes the sent file once the body is done.
    from tests.support.mqtt import wait_for

    wait_for(lambda: not any(directory.iterdir()), what=f"{directory} to be emptied")


# --- every CSV writer neutralises formulas ----------------------------------------------------


@pytest.fixture
def formula_csv(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "units.csv"
    lines = ["serial_number", *(f'"{serial.replace(chr(34), chr(34) * 2)}"' for serial in FORMULA_SERIALS)]
    path.write_text("\n".join(lines) + "\n")
    yield path


def test_the_device_batch_api_answers_a_csv_without_formulas(tenant: Tenant, formula_csv: Path) -> None:
    product_id = tenant.product()["id"]
    response = tenant.post(
        "/api/v1/device-batches",
        params={"product_id": product_id, "issue_credentials": "token"},
        content=formula_csv.read_bytes(),
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert response.status_code == 201, response.text
    assert_neutralised([row["serial_number"] for row in csv_rows(response.text)])


def test_devices_import_writes_credentials_without_formulas(
    application: Application, settings: Settings, tmp_path: Path, formula_csv: Path
) -> None:
    product = new_product(application)
    out = tmp_path / "credentials.csv"
    succeeded(
        lineside(
            settings,
            *("devices", "import", str(formula_csv), "--product", product.id),
            *("--issue-credentials", "token", "--out", str(out)),
            cwd=tmp_path,
        )
    )
    assert_neutralised([row["serial_number"] for row in csv_rows(out.read_text())])


def test_static_token_exports_and_labels_are_written_without_formulas(
    tenant: Tenant, formula_csv: Path
) -> None:
    product_id = tenant.product()["id"]
    batch = tenant.post(
        f"/api/v1/products/{product_id}/static-tokens",
        content=formula_csv.read_bytes(),
        headers={"Content-Type": "text/csv"},
    ).json()
    path = f"/api/v1/static-token-batches/{batch['batch_id']}"
    exported = exported_tokens(tenant.get(f"{path}/export.zip").content)
    with zipfile.ZipFile(io.BytesIO(tenant.get(f"{path}/labels.zip").content)) as labels:
        labelled = csv_rows(labels.read("labels.csv").decode())

    assert_neutralised([row["serial_number"] for row in exported])
    assert_neutralised([row["serial_number"] for row in labelled])
