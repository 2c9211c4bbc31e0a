"""``lineside factory`` against a real server on each database backend.

Most commands run in-process through click's runner (the server is a uvicorn thread, so the
client really speaks HTTP over a socket); the exit codes a line script depends on are also
checked through a real ``python -m lineside`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from lineside.adapters.db.tables import production_tokens
from lineside.bootstrap import Application
from lineside.domain.models import Scope
from lineside.entrypoints.cli.factory_simulation import LinePlan, plan_units
from lineside.entrypoints.cli.main import cli
from lineside.services.organizations import authenticate_api_key, create_api_key
from tests.support.api import Tenant, unique
from tests.support.server import free_port

EXIT_REFUSED, EXIT_USAGE, EXIT_NO, EXIT_TIMED_OUT = 1, 2, 3, 4


@dataclass
class Line:
    """A factory line: its organization's factory key, a product, and the server's URL."""

    tenant: Tenant
    server: str
    factory_key: str
    product_id: str

    def run(self, *args: str, api_key: str | None = None, server: str | None = None) -> Result:
        env = {"LINESIDE_SERVER": server or self.server, "LINESIDE_API_KEY": api_key or self.factory_key}
        result = CliRunner().invoke(cli, ["factory", *args], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def enrollment_token(self) -> str:
        token: str = self.json("enrollment-token", "create", "--product", self.product_id)["token"]
        return token

    def enrolled(self, token: str | None = None, hardware_id: str | None = None) -> str:
        body = self.json(
            "enroll",
            "--enrollment-token",
            token or self.enrollment_token(),
            "--hardware-id",
            hardware_id or unique("hw"),
        )
        device_id: str = body["device"]["id"]
        return device_id

    def tested(self, outcome: str = "--passed") -> str:
        device_id = self.enrolled()
        self.ok("test", device_id, outcome)
        return device_id

    def device(self, device_id: str) -> dict[str, Any]:
        response = self.tenant.get(f"/api/v1/devices/{device_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def factory_key(application: Application, tenant: Tenant, scope: Scope = Scope.FACTORY) -> str:
    ctx = application.services
    admin = authenticate_api_key(ctx, tenant.api_key)
    return create_api_key(ctx, admin, name=unique("line"), scopes=frozenset({scope})).secret


@pytest.fixture
def line(application: Application, client: httpx.Client, tenant: Tenant) -> Line:
    return Line(tenant, str(client.base_url), factory_key(application, tenant), tenant.product()["id"])


def one_line_error(result: Result, exit_code: int = EXIT_REFUSED) -> str:
    assert result.exit_code == exit_code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# One unit through the line


def test_a_unit_enrolled_tested_and_blessed_from_the_command_line_lights_green_and_is_blessed(
    line: Line,
) -> None:
    token = line.enrollment_token()
    hardware_id = unique("02:00")

    enrolled = line.ok("enroll", "--enrollment-token", token, "--hardware-id", hardware_id)
    device_id = enrolled.split()[1]
    assert enrolled.startswith(f"device {device_id} under_test")
    tested = line.ok("test", device_id, "--passed", "--measurement", "supply_v=3.31", "--fixture", "F1")
    blessed = line.run("bless", device_id)

    assert "passed" in tested
    assert blessed.exit_code == 0, blessed.stderr
    assert blessed.stdout.startswith("green")
    assert line.device(device_id)["state"] == "blessed"


def test_a_unit_whose_test_failed_lights_red_and_bless_exits_3_so_the_line_script_can_branch(
    line: Line,
) -> None:
    device_id = line.tested("--failed")

    blessed = line.run("bless", device_id)

    assert blessed.exit_code == EXIT_NO
    assert blessed.stdout.startswith("red")
    assert line.device(device_id)["state"] == "failed"


def test_bless_json_is_the_servers_answer_with_result_and_led(line: Line) -> None:
    device_id = line.tested()

    result = line.run("bless", device_id, "--json")

    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    assert (answer["result"], answer["led"], answer["device"]["id"]) == ("blessed", "green", device_id)


def test_enrolling_the_same_hardware_id_again_answers_the_same_device_and_says_so(line: Line) -> None:
    token, hardware_id = line.enrollment_token(), unique("chip")
    first = line.enrolled(token, hardware_id)

    again = line.ok("enroll", "--enrollment-token", token, "--hardware-id", hardware_id)

    assert again.startswith(f"device {first} ")
    assert "(enrolled before)" in again


def test_the_enrollment_token_can_come_from_the_environment_and_needs_no_api_key(line: Line) -> None:
    token = line.enrollment_token()
    runner = CliRunner()
    env = {"LINESIDE_SERVER": line.server, "LINESIDE_ENROLLMENT_TOKEN": token, "LINESIDE_API_KEY": ""}

    result = runner.invoke(cli, ["factory", "enroll", "--hardware-id", unique("hw"), "--json"], env=env)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["device"]["state"] == "under_test"


def test_test_json_records_measurements_with_their_types(line: Line) -> None:
    device_id = line.enrolled()

    recorded = line.json(
        "test", device_id, "--failed", "--measurement", "supply_v=3.31", "--measurement", "note=cold joint"
    )

    assert recorded["passed"] is False
    assert recorded["measurements"] == {"supply_v": 3.31, "note": "cold joint"}


# Factory enrollment tokens


def test_enrollment_token_create_shows_the_token_once_and_list_never_shows_it(line: Line) -> None:
    created = line.ok("enrollment-token", "create", "--product", line.product_id, "--name", "line 1")
    token = created.split()[-1]

    listed = line.ok("enrollment-token", "list")
    listed_json = line.json("enrollment-token", "list")

    assert token.startswith("lsf_")
    assert "line 1" in listed
    assert token not in listed
    assert token not in json.dumps(listed_json)


def test_a_revoked_enrollment_token_enrolls_nothing_and_the_refusal_is_one_line(line: Line) -> None:
    created = line.json("enrollment-token", "create", "--product", line.product_id)

    line.ok("enrollment-token", "revoke", created["id"])
    refused = line.run("enroll", "--enrollment-token", created["token"], "--hardware-id", unique("hw"))

    assert one_line_error(refused).startswith("Error: ")


# Production tokens and claim polling


def test_production_token_prints_a_hexadecimal_plan_id_and_token_id(line: Line) -> None:
    printed = line.ok("production-token", "--product", line.product_id)
    fields = dict(row.split(None, 1) for row in printed.strip().splitlines())

    assert set(fields) == {"plan_id", "token_id", "expires_at"}
    int(fields["plan_id"], 16)
    int(fields["token_id"], 16)


def test_poll_says_pending_then_claimed_once_a_blessed_unit_activates_with_the_token(line: Line) -> None:
    device_id = line.tested()
    line.ok("bless", device_id)
    token = line.json("production-token")

    pending = line.run("poll", token["token_id"], "--wait", "0")
    activated = line.tenant.http.post(
        "/device/v1/activate",
        json={"plan_id": token["plan_id"], "token_id": token["token_id"], "device_id": device_id},
    )
    claimed = line.run("poll", token["token_id"], "--wait", "5")

    assert pending.exit_code == EXIT_TIMED_OUT
    assert "pending" in pending.stderr
    assert activated.status_code == 200, activated.text
    assert claimed.exit_code == 0, claimed.stderr
    assert claimed.stdout.startswith(f"claimed by device {device_id}")


def test_poll_of_an_expired_token_exits_3(line: Line, application: Application) -> None:
    token = line.json("production-token")
    with application.engine.begin() as connection:
        connection.execute(
            update(production_tokens)
            .where(production_tokens.c.plan_id == token["plan_id"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    result = line.run("poll", token["token_id"], "--json")

    assert result.exit_code == EXIT_NO
    assert json.loads(result.stdout)["status"] == "expired"


# Refusals: one line, an exit code, never the key


def test_a_wrong_api_key_is_refused_in_one_line_that_does_not_show_the_key(line: Line) -> None:
    wrong = "lsk_" + "x" * 40
    device_id = line.tested()

    result = line.run("bless", device_id, api_key=wrong)

    message = one_line_error(result)
    assert "401" in message
    assert wrong not in result.stdout + result.stderr


def test_a_read_only_key_may_not_bless(line: Line, application: Application) -> None:
    device_id = line.tested()

    result = line.run("bless", device_id, api_key=factory_key(application, line.tenant, Scope.READ))

    assert "403" in one_line_error(result)
    assert line.device(device_id)["state"] == "under_test"


def test_another_organizations_factory_key_cannot_test_or_bless_our_unit(
    line: Line, application: Application, make_tenant: Callable[[], Tenant]
) -> None:
    device_id = line.tested()
    stranger = factory_key(application, make_tenant())

    tested = line.run("test", device_id, "--failed", api_key=stranger)
    blessed = line.run("bless", device_id, api_key=stranger)

    assert "404" in one_line_error(tested)
    assert "404" in one_line_error(blessed)
    assert line.device(device_id)["state"] == "under_test"


def test_an_unknown_device_is_a_one_line_404(line: Line) -> None:
    assert "404" in one_line_error(line.run("bless", "00000000-0000-4000-8000-000000000000"))


def test_commands_that_need_a_key_say_so_without_one(line: Line) -> None:
    result = CliRunner().invoke(cli, ["factory", "production-token"], env={"LINESIDE_SERVER": line.server})

    assert "LINESIDE_API_KEY" in one_line_error(result, EXIT_USAGE)


def test_usage_mistakes_exit_2(line: Line) -> None:
    assert line.run("test", "some-device").exit_code == EXIT_USAGE  # neither --passed nor --failed
    assert line.run("test", "some-device", "--passed", "--measurement", "novalue").exit_code == EXIT_USAGE
    assert line.run("bless", "some-device", server="ftp://example.com").exit_code == EXIT_USAGE
    assert line.run("simulate", "--count", "3").exit_code == EXIT_USAGE  # no --product, no token


def test_a_server_that_is_not_there_is_one_clear_line(line: Line) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    result = line.run("bless", "some-device", server=nowhere)

    assert (
        one_line_error(result)
        == f"Error: Cannot connect to {nowhere}: is the server running (and is --server right)?"
    )


# The simulated line


def test_simulate_runs_every_dut_through_the_line_with_the_yield_the_seed_decides(line: Line) -> None:
    plan = LinePlan(count=24, fixtures=4, fail_rate=0.3, seed=7, enrollment_token="")
    expected_failures = sum(not unit.passes for unit in plan_units(plan))

    report = line.json(
        "simulate", "--product", line.product_id, "--count", "24", "--fixtures", "4",
        "--fail-rate", "0.3", "--seed", "7",
    )  # fmt: skip

    assert report["errors"] == 0, report["error_messages"]
    assert (report["blessed"], report["failed"]) == (24 - expected_failures, expected_failures)
    assert 0 < expected_failures < 24
    assert report["cycles_per_second"] > 0
    assert set(report["latency_ms"]) == {"enroll", "test", "bless", "cycle"}
    tokens = line.json("enrollment-token", "list")
    assert all(t["revoked_at"] for t in tokens if t["name"].startswith("simulate")), "throwaway revoked"


def test_simulate_prints_yield_throughput_and_latency_per_step(line: Line) -> None:
    token = line.enrollment_token()

    printed = line.ok("simulate", "--enrollment-token", token, "--count", "5", "--fixtures", "2")

    assert "yield:" in printed
    assert "DUT cycles/s" in printed
    for step in ("enroll", "test", "bless"):
        assert any(row.startswith(step) for row in printed.splitlines())


def test_simulate_with_a_revoked_token_stops_the_line_and_exits_1(line: Line) -> None:
    created = line.json("enrollment-token", "create", "--product", line.product_id)
    line.ok("enrollment-token", "revoke", created["id"])

    result = line.run("simulate", "--enrollment-token", created["token"], "--count", "50", "--fixtures", "2")

    assert result.exit_code == EXIT_REFUSED
    assert "Traceback" not in result.stderr
    assert "DUTs hit an unexpected error" in result.stderr


# Through a real process


def lineside(line: Line, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LINESIDE_SERVER": line.server, "LINESIDE_API_KEY": line.factory_key}
    return subprocess.run(
        [sys.executable, "-m", "lineside", "factory", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_exit_codes_reach_a_line_script_through_a_real_process(line: Line, tmp_path: Path) -> None:
    good, bad = line.tested(), line.tested("--failed")

    green = lineside(line, "bless", good, cwd=tmp_path)
    red = lineside(line, "bless", bad, cwd=tmp_path)
    unreachable = lineside(line, "bless", good, "--server", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)

    codes = (green.returncode, red.returncode, unreachable.returncode)
    assert codes == (0, EXIT_NO, EXIT_REFUSED), green.stderr + red.stderr + unreachable.stderr
    assert green.stdout.startswith("green") and red.stdout.startswith("red")
    assert "Traceback" not in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1
