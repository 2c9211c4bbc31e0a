"""``lineside station create | list | show | revoke`` (issue 17) against a real server on each
database backend: an admin delegates a line from the shell and gets the bundle as a 0600 file
that is never written over, and the secrets never on the terminal; lists, shows and revokes;
and every refusal (the server's, a file that exists, no key) is one line and an exit code."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from lineside.entrypoints.cli.main import cli
from tests.integration.test_ca_cli import one_line_error
from tests.support.api import Tenant, ok
from tests.support.factory import factory_token, keyed

EXIT_REFUSED, EXIT_USAGE, EXIT_CANNOT_WRITE, EXIT_CANNOT_READ = 1, 2, 73, 74


@dataclass
class Admin:
    tenant: Tenant
    server: str
    product_id: str
    token: str
    files: Path

    def run(self, *args: str, api_key: str | None = None) -> Result:
        env = {"LINESIDE_SERVER": self.server, "LINESIDE_API_KEY": api_key or self.tenant.api_key}
        result = CliRunner().invoke(cli, ["station", *args], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    def token_file(self) -> str:
        path = self.files / "token"
        path.write_text(self.token + "\n")
        return str(path)

    def create(self, out: str = "station.json", *extra: str, api_key: str | None = None) -> Result:
        args = ["create", "--product", self.product_id, "--name", "line 1", "--budget", "500"]
        args += ["--valid-days", "7", "--enrollment-token-file", self.token_file()]
        if "--fixture-api-key" not in extra:
            args += ["--fixture-api-key", keyed(self.tenant, "factory").api_key]
        return self.run(*args, "--out", str(self.files / out), *extra, api_key=api_key)


@pytest.fixture
def admin(client: httpx.Client, tenant: Tenant, tmp_path: Path) -> Admin:
    product_id = tenant.product()["id"]
    return Admin(tenant, str(client.base_url), product_id, factory_token(tenant, product_id), tmp_path)


def test_create_writes_the_bundle_0600_and_prints_no_secret(admin: Admin) -> None:
    fixtures = keyed(admin.tenant, "factory")
    result = admin.create("station.json", "--fixture-api-key", fixtures.api_key)
    assert result.exit_code == 0, result.stderr
    out = admin.files / "station.json"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    bundle: dict[str, Any] = json.loads(out.read_text())
    station_id = bundle["station"]["id"]
    assert bundle["secrets"]["enrollment_token"] == admin.token
    assert bundle["secrets"]["fixture_api_key"] == fixtures.api_key
    assert f"station {station_id} created" in result.stdout and str(out) in result.stdout
    assert "pool" not in bundle["secrets"]  # no token pool unless asked
    for secret in (v for v in bundle["secrets"].values() if isinstance(v, str)):
        assert secret.strip().splitlines()[1 if "PRIVATE" in secret else 0] not in result.output
    shown = ok(admin.tenant.get(f"/api/v1/stations/{station_id}"))
    assert (shown["budget"], shown["name"]) == (500, "line 1")


def test_token_pool_gives_the_station_an_id_and_token_per_unit_and_prints_none(admin: Admin) -> None:
    result = admin.create("pool.json", "--token-pool")
    assert result.exit_code == 0, result.stderr
    assert "a token pool of 500" in result.stdout
    bundle: dict[str, Any] = json.loads((admin.files / "pool.json").read_text())
    pool = bundle["secrets"]["pool"]
    assert len(pool) == 500 and len({device_id for device_id, _ in pool}) == 500
    assert all(token.startswith("lsd_") and token not in result.output for _, token in pool)
    assert ok(admin.tenant.get(f"/api/v1/stations/{bundle['station']['id']}"))["pool_size"] == 500


def test_the_fixture_key_must_be_given_and_must_not_be_an_admin_key(admin: Admin) -> None:
    missing = admin.run("create", "--product", admin.product_id, "--name", "l", "--budget", "5", "--out", "x")
    assert missing.exit_code == 2 and "--fixture-api-key" in missing.output
    refused = one_line_error(admin.create("admin.json", "--fixture-api-key", admin.tenant.api_key), 1)
    assert "admin key" in refused
    assert not (admin.files / "admin.json").exists()


def test_an_existing_file_is_never_written_over_and_no_station_is_made(admin: Admin) -> None:
    (admin.files / "station.json").write_text("precious")
    line = one_line_error(admin.create(), EXIT_CANNOT_WRITE)
    assert "exists already" in line
    assert (admin.files / "station.json").read_text() == "precious"
    assert ok(admin.tenant.get("/api/v1/stations")) == []


def test_a_refused_station_leaves_no_file(admin: Admin) -> None:
    result = admin.run(
        "create", "--product", admin.product_id, "--name", "x", "--budget", "5",
        "--enrollment-token", "lsf_not-a-token", "--out", str(admin.files / "station.json"),
        "--fixture-api-key", keyed(admin.tenant, "factory").api_key,
    )  # fmt: skip
    assert "enrollment_token" in one_line_error(result, EXIT_REFUSED)
    assert not (admin.files / "station.json").exists()


def test_create_needs_one_enrollment_token_and_a_readable_file(admin: Admin) -> None:
    out = str(admin.files / "station.json")
    base = ["create", "--product", admin.product_id, "--name", "x", "--budget", "5", "--out", out]
    base += ["--fixture-api-key", keyed(admin.tenant, "factory").api_key]
    assert admin.run(*base).exit_code == EXIT_USAGE
    missing = admin.run(*base, "--enrollment-token-file", str(admin.files / "nothing"))
    assert "cannot be read" in one_line_error(missing, EXIT_CANNOT_READ)
    assert not (admin.files / "station.json").exists()


def test_a_key_without_the_admin_scope_is_refused_in_one_line(admin: Admin) -> None:
    fixtures = keyed(admin.tenant, "factory")
    assert one_line_error(admin.create(api_key=fixtures.api_key), EXIT_REFUSED)
    assert not (admin.files / "station.json").exists()


def test_list_show_and_revoke(admin: Admin) -> None:
    assert admin.ok("list").strip() == "no stations"
    assert admin.create().exit_code == 0
    station_id = json.loads((admin.files / "station.json").read_text())["station"]["id"]
    listed = admin.ok("list", "--product", admin.product_id)
    assert station_id in listed and "0/500" in listed and "active" in listed
    assert [s["id"] for s in json.loads(admin.ok("list", "--json"))] == [station_id]
    shown = admin.ok("show", station_id)
    assert f"id: {station_id}" in shown and "status: active" in shown
    assert json.loads(admin.ok("show", station_id, "--json"))["budget"] == 500

    revoked = admin.ok("revoke", station_id)
    assert f"station {station_id} revoked at" in revoked
    assert "status: revoked" in admin.ok("show", station_id)
    assert "not found" in one_line_error(admin.run("show", "no-such-station"), EXIT_REFUSED).lower()
