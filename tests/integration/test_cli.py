"""The ``lineside`` command line, run as a real process against each database backend."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lineside.bootstrap import Application
from lineside.domain.errors import Unauthenticated
from lineside.domain.metadata import FieldType, MetadataField
from lineside.domain.models import Product, Scope
from lineside.entrypoints.cli.main import cli
from lineside.services.credentials import authenticate_device
from lineside.services.devices import list_devices
from lineside.services.organizations import (
    authenticate_api_key,
    create_organization,
    list_api_keys,
    operator_principal,
)
from lineside.services.ports import DeviceFilter
from lineside.services.products import create_product
from lineside.settings import Settings
from tests.support.api import unique

CREDENTIAL_COLUMNS = ["device_id", "serial_number", "token", "certificate", "private_key"]


def lineside(
    settings: Settings, *args: str, cwd: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LINESIDE_DATABASE_URL": settings.database_url,
        "LINESIDE_DATA_DIR": str(settings.data_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "lineside", *args],
        env=env,
        cwd=cwd,  # away from any .env file in the checkout
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=preexec_fn,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def failed_with_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def as_json(stdout: str) -> Any:
    return json.loads(stdout)


def new_product(application: Application, fields: list[MetadataField] | None = None) -> Product:
    ctx = application.services
    organization = create_organization(ctx, unique("cli-org")).organization
    return create_product(
        ctx, operator_principal(ctx, organization.id), name=unique("product"), fields=fields or []
    )


def devices_of(application: Application, product: Product) -> list[str]:
    ctx = application.services
    page = list_devices(
        ctx,
        operator_principal(ctx, product.organization_id),
        filters=DeviceFilter(product_id=product.id),
        cursor=None,
        limit=1000,
    )
    return sorted(device.serial_number for device in page.items)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == CREDENTIAL_COLUMNS
        return list(reader)


# Organizations and keys


def test_org_create_prints_json_with_an_admin_key_that_authenticates(
    settings: Settings, application: Application, tmp_path: Path
) -> None:
    name = unique("Acme")
    created = as_json(succeeded(lineside(settings, "org", "create", name, "--json", cwd=tmp_path)))

    assert set(created) == {"id", "name", "api_key"}
    assert created["name"] == name
    assert created["api_key"].startswith("lsk_")
    principal = authenticate_api_key(application.services, created["api_key"])
    assert principal.organization.id == created["id"]
    assert principal.can(Scope.ADMIN)


def test_org_create_with_parent_makes_a_sub_organization_that_org_list_shows_under_it(
    settings: Settings, application: Application, tmp_path: Path
) -> None:
    parent = create_organization(application.services, unique("parent")).organization
    child_name = unique("child")

    child = as_json(
        succeeded(
            lineside(settings, "org", "create", child_name, "--parent", parent.id, "--json", cwd=tmp_path)
        )
    )
    listed = as_json(succeeded(lineside(settings, "org", "list", "--json", cwd=tmp_path)))

    assert {"id": child["id"], "name": child_name, "parent_id": parent.id} in listed
    ids = [row["id"] for row in listed]
    assert ids.index(parent.id) < ids.index(child["id"])
    principal = authenticate_api_key(application.services, child["api_key"])
    assert principal.organization.parent_id == parent.id


def test_org_create_under_an_unknown_parent_fails_with_one_line_and_no_traceback(
    settings: Settings, tmp_path: Path
) -> None:
    parent_id = "0190f0e2-aaaa-7000-8000-000000000000"
    result = lineside(settings, "org", "create", unique("orphan"), "--parent", parent_id, cwd=tmp_path)

    line = failed_with_one_line(result)
    assert line == f"Error: No organization with id '{parent_id}' was found."
    assert result.stdout == ""


def test_keys_can_be_created_listed_without_secrets_and_revoked(
    settings: Settings, application: Application, tmp_path: Path
) -> None:
    organization = create_organization(application.services, unique("keys-org")).organization

    created = as_json(
        succeeded(
            lineside(
                settings,
                "keys", "create", "--org", organization.id, "--name", "line 3 rig",
                "--scope", "factory", "--scope", "read", "--json",
                cwd=tmp_path,
            )
        )
    )  # fmt: skip
    assert created["api_key"].startswith("lsk_")
    assert created["scopes"] == ["factory", "read"]
    principal = authenticate_api_key(application.services, created["api_key"])
    assert principal.can(Scope.FACTORY)
    assert not principal.can(Scope.ADMIN)

    listing = succeeded(lineside(settings, "keys", "list", "--org", organization.id, "--json", cwd=tmp_path))
    assert created["api_key"] not in listing
    assert created["api_key"][4:] not in listing
    rows = {row["id"]: row for row in as_json(listing)}
    assert rows[created["id"]]["name"] == "line 3 rig"
    assert rows[created["id"]]["revoked_at"] is None
    assert created["api_key"].startswith(rows[created["id"]]["prefix"])
    assert len(rows) == 2  # plus the initial admin key

    revoked = succeeded(lineside(settings, "keys", "revoke", created["id"], cwd=tmp_path))
    assert created["id"] in revoked
    with pytest.raises(Unauthenticated):
        authenticate_api_key(application.services, created["api_key"])

    after = {
        key.id: key
        for key in list_api_keys(
            application.services, operator_principal(application.services, organization.id)
        )
    }
    assert after[created["id"]].revoked_at is not None
    assert sum(key.revoked_at is None for key in after.values()) == 1


# Importing devices


def test_devices_import_with_tokens_forced_over_an_old_file_leaves_a_private_file_of_working_tokens(
    settings: Settings, application: Application, tmp_path: Path
) -> None:
    product = new_product(application, [MetadataField("batch", FieldType.INTEGER, required=True)])
    source = tmp_path / "devices.csv"
    source.write_text('serial_number,mac,batch\nSN-1,AA-BB-CC-00-00-01,7\nSN-2,,7\n"SN,3",,8\n')
    out = tmp_path / "creds.csv"
    out.write_text("an older, world-readable file\n")
    out.chmod(0o644)

    stdout = succeeded(
        lineside(
            settings, "devices", "import", str(source), "--product", product.id,
            "--issue-credentials", "token", "--out", str(out), "--force",
            cwd=tmp_path,
        )
    )  # fmt: skip

    assert stdout.startswith("defined 3 devices in batch ")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = read_rows(out)
    assert [row["serial_number"] for row in rows] == ["SN-1", "SN-2", "SN,3"]
    tokens = [row["token"] for row in rows]
    assert len(set(tokens)) == 3
    assert all(token.startswith("lsd_") for token in tokens)
    assert all(row["certificate"] == row["private_key"] == "" for row in rows)
    for row in rows:
        device = authenticate_device(application.services, row["token"])
        assert device.id == row["device_id"]
        assert device.serial_number == row["serial_number"]
        assert device.product_id == product.id
    assert authenticate_device(application.services, tokens[0]).mac == "aa:bb:cc:00:00:01"
    assert tokens[0] not in stdout


def test_devices_import_with_x509_writes_a_certificate_and_key_per_device(
    settings: Settings, application: Application, tmp_path: Path
) -> None:
    product = new_product(application)
    source = tmp_path / "devices.csv"
    source.write_text("serial_number\nX-1\nX-2\n")
    out = tmp_path / "certs.csv"

    succeeded(
        lineside(
            settings, "devices", "import", str(source), "--product", product.id,
            "--issue-credentials", "x509", "--out", str(out),
            cwd=tmp_path,
        )
    )  # fmt: skip

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = read_rows(out)
    assert [row["serial_number"] for row in rows] == ["X-1", "X-2"]
    for row in rows:
        assert row["token"] == ""
        assert row["certificate"].startswith("-----BEGIN CERTIFICATE-----")
        assert "PRIVATE KEY-----" in row["private_key"]
    assert rows[0]["certificate"] != rows[1]["certificate"]


def test_devices_import_reads_a_bare_list_of_serial_numbers_without_a_header(
    settings: Settings, application: Application, tmp_path: Path
) -> None:
    product = new_product(application)
    source = tmp_path / "serials.txt"
    source.write_text("\ufeffBARE-1\nBARE-2\r\nBARE-3\n\n")

    stdout = succeeded(
        lineside(settings, "devices", "import", str(source), "--product", product.id, cwd=tmp_path)
    )

    assert stdout.startswith("defined 3 devices")
    assert devices_of(application, product) == ["BARE-1", "BARE-2", "BARE-3"]


def test_devices_import_of_bad_rows_lists_each_and_writes_nothing(
    settings: Settings, application: Application, tmp_path: Path
) -> None:
    product = new_product(application, [MetadataField("batch", FieldType.INTEGER, required=True)])
    source = tmp_path / "devices.csv"
    source.write_text("serial_number,mac,batch\nGOOD-1,,1\nBAD-2,zz,2\nGOOD-1,,three\nBAD-4,,\n")
    out = tmp_path / "creds.csv"

    result = lineside(
        settings, "devices", "import", str(source), "--product", product.id,
        "--issue-credentials", "token", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.strip() for line in lines[:-1]] == [
        "row 3 column mac: must be a 48-bit MAC address",
        "row 4 column batch: must be an integer",
        "row 4 column serial_number: 'GOOD-1' repeats row 2",
        "row 5 column batch: is required",
    ]
    assert lines[-1] == "Error: The batch has 4 problems; nothing was written."
    assert not out.exists()
    assert devices_of(application, product) == []


def test_devices_import_refuses_credentials_without_out_and_an_existing_out_without_force(
    tmp_path: Path,
) -> None:
    # Both are refused before the database is opened, so one backend is enough.
    offline = Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}", data_dir=tmp_path / "data")
    source = tmp_path / "serials.txt"
    source.write_text("N-1\n")
    out = tmp_path / "creds.csv"
    out.write_text("precious\n")
    args = ["devices", "import", str(source), "--product", "p", "--issue-credentials", "token"]

    no_out = lineside(offline, *args, cwd=tmp_path)
    existing = lineside(offline, *args, "--out", str(out), cwd=tmp_path)

    assert no_out.returncode == existing.returncode == 2
    assert "--issue-credentials needs --out" in no_out.stderr
    assert f"{out} exists; pass --force to overwrite it." in existing.stderr
    assert "Traceback" not in no_out.stderr + existing.stderr
    assert out.read_text() == "precious\n"
    assert not (tmp_path / "unused.db").exists()


# The schema and help


def test_db_upgrade_on_an_up_to_date_database_succeeds(settings: Settings, tmp_path: Path) -> None:
    assert "database is up to date" in succeeded(lineside(settings, "db", "upgrade", cwd=tmp_path))


def test_the_module_entrypoint_prints_help_naming_every_command_group(tmp_path: Path) -> None:
    help_result = subprocess.run(
        [sys.executable, "-m", "lineside", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert help_result.returncode == 0
    for command in ("org", "keys", "devices", "db", "serve"):
        assert command in help_result.stdout


COMMANDS = [
    [],
    ["org"],
    ["org", "create"],
    ["org", "list"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["devices"],
    ["devices", "import"],
    ["db"],
    ["db", "upgrade"],
    ["serve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "lineside")
def test_every_command_explains_itself_with_help(command: list[str]) -> None:
    # In-process through click: a subprocess per command would add seconds and prove nothing more.
    result = CliRunner().invoke(cli, [*command, "--help"], prog_name="lineside")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: lineside {' '.join(command)}".rstrip())
    assert "Traceback" not in result.output


def test_devices_import_help_names_its_options() -> None:
    output = CliRunner().invoke(cli, ["devices", "import", "-h"], prog_name="lineside").output
    for option in ("--product", "--issue-credentials", "--out", "--force", "token", "x509"):
        assert option in output
