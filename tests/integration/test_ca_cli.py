"""``lineside ca`` (factory PKI, issue 16) against a real server on each database backend: a
maker registers their line CA from the command line, answers the challenge with the very
openssl commands ``register`` prints, lists, disables, enables, loads a CRL, sets the
product's registration policy, approves a held device and deletes the CA; and every bad
input (a missing file, a file that is not PEM, a server that says no, no key, no server) is
one line on stderr and a documented exit code."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from lineside.bootstrap import Application
from lineside.domain.factory_pki import registered_device_id
from lineside.domain.models import Scope
from lineside.entrypoints.cli.main import cli
from lineside.services.registration import register_device
from tests.integration.test_factory_cli import factory_key
from tests.support.api import Tenant, unique
from tests.support.pki import Maker, certificate, der, key_pem, new_key, new_maker, pem

EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_PEM, EXIT_CANNOT_READ = 1, 2, 65, 74


@dataclass
class Admin:
    """An administrator at a shell: the server, an admin key, a product, a maker's PKI on disk."""

    tenant: Tenant
    server: str
    product_id: str
    maker: Maker
    files: Path

    def run(self, *args: str, api_key: str | None = None, server: str | None = None) -> Result:
        env = {"LINESIDE_SERVER": server or self.server, "LINESIDE_API_KEY": api_key or self.tenant.api_key}
        result = CliRunner().invoke(cli, ["ca", *args], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def write(self, name: str, text: str | bytes) -> str:
        path = self.files / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    def registered(self) -> dict[str, Any]:
        line_ca = self.write("line-ca.pem", pem(self.maker.intermediate))
        made: dict[str, Any] = self.json("register", "--product", self.product_id, "--certificate", line_ca)
        return made

    def verified(self) -> str:
        made = self.registered()
        answer = self.write("verify.pem", self.maker.proof(made["challenge"]))
        self.ok("verify", made["id"], "--answer", answer)
        authority_id: str = made["id"]
        return authority_id


@pytest.fixture
def admin(client: httpx.Client, tenant: Tenant, tmp_path: Path) -> Admin:
    return Admin(tenant, str(client.base_url), tenant.product()["id"], new_maker(), tmp_path)


# The server runs in this process (a uvicorn thread): its log lines share the CLI's stderr
# here, never in a real process (test_a_real_process_exits_with_the_documented_codes).
SERVER_LOG = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ [A-Z]+ lineside\.")


def one_line_error(result: Result, exit_code: int = EXIT_REFUSED) -> str:
    assert result.exit_code == exit_code, result.stdout + result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not SERVER_LOG.match(line)]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def registered_device(application: Application, maker: Maker, name: str) -> tuple[str, x509.Certificate]:
    """A device of the maker's line that registered (as on its first connection)."""
    device, _key = maker.device(name)
    return register_device(application.services, der(device), via="test").device.id, device


# The maker's way through


def test_register_prints_the_ca_and_the_challenge_and_its_openssl_commands_prove_possession(
    admin: Admin,
) -> None:
    assert shutil.which("openssl"), "openssl is part of the test environment (.ci/run installs it)"
    line_ca = admin.write("line-ca.pem", pem(admin.maker.intermediate))
    admin.write("line-ca.key", key_pem(admin.maker.intermediate_key))

    printed = admin.ok("register", "--product", admin.product_id, "--certificate", line_ca)

    authority_id = printed.split()[2]
    challenge = next(line for line in printed.splitlines() if line.startswith("challenge")).split()[-1]
    assert challenge.startswith("lsv_")
    assert "pending_verification" in printed
    commands = [line.strip() for line in printed.splitlines() if line.startswith("  ")]
    assert commands[-1] == f"lineside ca verify {authority_id} --answer verify.pem"
    for command in commands[:-1]:  # as the maker would paste them
        subprocess.run(shlex.split(command), cwd=admin.files, check=True, capture_output=True, timeout=30)
    verified = admin.ok("verify", authority_id, "--answer", str(admin.files / "verify.pem"))
    assert verified.strip() == (
        f"certificate authority {authority_id} verified: devices it signed may register"
    )


def test_list_shows_a_table_and_json_of_the_product_s_cas(admin: Admin) -> None:
    authority_id = admin.verified()

    table = admin.ok("list", "--product", admin.product_id).splitlines()
    listed = admin.json("list", "--product", admin.product_id)

    assert table[0].split() == ["ID", "STATUS", "EXPIRES", "SUBJECT"]
    assert table[1].split()[:2] == [authority_id, "verified"]
    assert table[1].endswith("CN=Maker Line CA,O=Maker")
    assert [(a["id"], a["status"]) for a in listed] == [(authority_id, "verified")]
    assert admin.ok("list", "--product", admin.tenant.product()["id"]).startswith("product ")
    assert json.loads(admin.ok("show", authority_id))["subject"] == "CN=Maker Line CA,O=Maker"


def test_disable_enable_and_delete_a_ca(admin: Admin) -> None:
    authority_id = admin.verified()

    assert admin.ok("disable", authority_id).strip() == f"certificate authority {authority_id} disabled"
    assert admin.json("disable", authority_id)["status"] == "disabled"  # a retry changes nothing
    assert admin.ok("enable", authority_id).strip() == f"certificate authority {authority_id} verified"
    assert admin.ok("delete", authority_id).strip() == f"deleted certificate authority {authority_id}"
    gone = one_line_error(admin.run("show", authority_id))
    assert "404" in gone and authority_id in gone


def test_a_crl_cuts_off_the_registered_device_it_lists(admin: Admin, application: Application) -> None:
    authority_id = admin.verified()
    device_id, device = registered_device(application, admin.maker, unique("SN"))
    crl = admin.write("line-ca.crl.pem", admin.maker.crl(device))

    loaded = admin.ok("crl", authority_id, "--crl", crl)

    assert loaded.strip() == f"CRL of {authority_id} loaded: 1 serial refused, 1 registered device cut off"
    certificates = admin.tenant.get(f"/api/v1/devices/{device_id}/certificates").json()
    assert all(c["revoked_at"] for c in certificates)


def test_the_approval_policy_holds_a_device_until_ca_approve(admin: Admin, application: Application) -> None:
    admin.verified()
    set_to = admin.json("policy", "--product", admin.product_id, "--policy", "approval")
    name = unique("SN")
    device_id, _ = registered_device(application, admin.maker, name)

    printed = admin.ok("policy", "--product", admin.product_id, "--policy", "approval", "--reregistration")
    approved = admin.ok("approve", device_id)

    assert set_to == {
        "product_id": admin.product_id,
        "policy": "approval",
        "identity": "cn",
        "reregistration": False,
    }
    assert device_id == registered_device_id(admin.product_id, name)
    assert "registration approval, identity cn" in printed and "allowed" in printed
    assert approved.strip() == f"device {device_id} approved: defined"
    again = one_line_error(admin.run("approve", device_id))
    assert "409" in again


# Bad input: one line each, and the exit code a script can branch on


def test_a_missing_file_exits_74_and_a_file_that_is_not_pem_exits_65(admin: Admin) -> None:
    key = admin.write("line-ca.key", key_pem(admin.maker.intermediate_key))
    binary = admin.write("line-ca.der", der(admin.maker.intermediate))
    register = ("register", "--product", admin.product_id, "--certificate")

    missing = one_line_error(admin.run(*register, str(admin.files / "nope.pem")), EXIT_CANNOT_READ)
    a_key = one_line_error(admin.run(*register, key), EXIT_NOT_PEM)
    in_der = one_line_error(admin.run(*register, binary), EXIT_NOT_PEM)
    a_directory = one_line_error(admin.run(*register, str(admin.files)), EXIT_CANNOT_READ)
    not_a_crl = one_line_error(admin.run("crl", "any", "--crl", key), EXIT_NOT_PEM)

    assert "nope.pem cannot be read: No such file or directory" in missing
    assert "is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line)" in a_key
    assert "openssl x509 -inform DER" in in_der
    assert "Is a directory" in a_directory
    assert "is not a PEM certificate revocation list" in not_a_crl


def test_the_server_s_refusals_are_one_line_with_its_reason(admin: Admin) -> None:
    not_a_ca = admin.write("device.pem", pem(admin.maker.device("SN-1")[0]))
    made = admin.registered()
    stranger = new_maker()
    wrong_key = admin.write("wrong.pem", admin.maker.proof(made["challenge"], key=stranger.intermediate_key))
    wrong_cn = admin.write("wrong-cn.pem", admin.maker.proof("lsv_not-the-challenge"))

    refused_ca = one_line_error(
        admin.run("register", "--product", admin.product_id, "--certificate", not_a_ca)
    )
    twice = one_line_error(
        admin.run(
            "register", "--product", admin.product_id, "--certificate", str(admin.files / "line-ca.pem")
        )
    )
    signed_by_another = one_line_error(admin.run("verify", made["id"], "--answer", wrong_key))
    another_cn = one_line_error(admin.run("verify", made["id"], "--answer", wrong_cn))
    stranger_crl = admin.write("crl.pem", stranger.crl())
    foreign_crl = one_line_error(admin.run("crl", made["id"], "--crl", stranger_crl))
    no_product = one_line_error(admin.run("list", "--product", "no-such-product"))

    assert refused_ca == (
        "Error: The certificate is not a CA's: its basicConstraints do not say CA:TRUE. "
        "(422 Certificate refused)"
    )
    assert "registered for the product already" in twice and "409" in twice
    assert "not signed by this CA's key" in signed_by_another
    assert "not this CA's challenge" in another_cn
    assert "The CRL was not signed by this CA" in foreign_crl
    assert "404" in no_product
    assert admin.json("list", "--product", admin.product_id)[0]["status"] == "pending_verification"


def test_keys_that_may_not_and_servers_that_are_not_there(admin: Admin, application: Application) -> None:
    read_key = factory_key(application, admin.tenant, Scope.READ)
    line_ca = admin.write("line-ca.pem", pem(admin.maker.intermediate))
    register = ("register", "--product", admin.product_id, "--certificate", line_ca)

    result = CliRunner().invoke(
        cli, ["ca", *register], env={"LINESIDE_SERVER": admin.server, "LINESIDE_API_KEY": ""}
    )
    no_key = one_line_error(result, EXIT_USAGE)
    read_only = one_line_error(admin.run(*register, api_key=read_key))
    nobody_there = one_line_error(
        admin.run("list", "--product", admin.product_id, server="http://127.0.0.1:9")
    )

    assert no_key == "Error: This needs an admin API key: pass --api-key or set LINESIDE_API_KEY."
    assert "403" in read_only
    assert admin.tenant.api_key not in read_only and read_key not in read_only
    assert "Cannot connect to http://127.0.0.1:9" in nobody_there
    assert admin.run("list", "--product", admin.product_id, api_key=read_key).exit_code == 0


def test_a_real_process_exits_with_the_documented_codes(admin: Admin) -> None:
    env = {**os.environ, "LINESIDE_SERVER": admin.server, "LINESIDE_API_KEY": admin.tenant.api_key}
    key = admin.write("line-ca.key", key_pem(new_key()))

    def lineside(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "lineside", "ca", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    missing = lineside("register", "--product", admin.product_id, "--certificate", "nope.pem")
    not_pem = lineside("register", "--product", admin.product_id, "--certificate", key)
    refused = lineside("verify", admin.registered()["id"], "--answer", admin.write("c.pem", pem(_leaf())))

    assert (missing.returncode, not_pem.returncode, refused.returncode) == (74, 65, 1)
    for done in (missing, not_pem, refused):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def _leaf() -> x509.Certificate:
    return certificate("not signed by the CA", new_key())
