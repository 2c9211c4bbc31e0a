"""``lineside demo`` as a user runs it: a real process, its own server, broker and receiver.

The demo makes its own SQLite database in a temporary directory (that is its point: nothing
else installed), so it runs once here rather than once per backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import httpx
from click.testing import CliRunner

from lineside.entrypoints.cli.main import cli

DEVICES = 12
DEADLINE_SECONDS = 120


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineside", "demo", *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        env={**os.environ, "LINESIDE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
        check=False,
    )


def test_the_demo_tells_the_whole_story_and_its_numbers_add_up() -> None:
    # LINESIDE_DATABASE_URL above points nowhere: the demo must not use the configured one.
    done = run_demo("--devices", str(DEVICES), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[9/9] webhooks delivered" in done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    funnel = report["funnel"]
    made, sold = funnel["defined"]["thermostat"], funnel["defined"]["plug"]
    assert made + sold == DEVICES
    assert funnel["tested"]["thermostat"] == made
    blessed, failed = funnel["blessed"]["thermostat"], report["factory"]["failed"]
    assert blessed + failed == made and blessed >= 1 and failed >= 1, "some units fail test, not all"
    assert funnel["activated"] == {"thermostat": blessed, "plug": sold}
    claimed = funnel["claimed"]["plug"]
    assert claimed == sold // 2 and report["unclaimed"] == 1
    assert report["mqtt"]["connected"] == blessed + sold and report["mqtt"]["failed"] == 0
    assert report["mqtt"]["published"] == blessed + sold
    assert report["firmware"]["updated"] == blessed
    hooks = report["webhooks"]
    expected = {
        "device.tested": made,
        "device.blessed": blessed,
        "device.failed": failed,
        "device.activated": blessed + sold,
        "device.claimed": claimed,
        "device.unclaimed": 1,
    }
    assert all(hooks.get(kind, 0) >= n for kind, n in expected.items()), (hooks, expected)
    assert report["data_dir"] is None


def test_the_demo_keeps_its_data_when_asked_and_prints_a_readable_report() -> None:
    done = run_demo("--devices", "4", "--keep")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    kept = next(line for line in lines if line.startswith("data kept in"))
    directory = kept.split(maxsplit=3)[-1]
    try:
        assert os.path.exists(os.path.join(directory, "lineside.db"))
        flash_files = os.listdir(os.path.join(directory, "flash"))
        assert flash_files and all(name.endswith(".json") for name in flash_files)
    finally:
        subprocess.run(["rm", "-rf", directory], check=True)
    assert any(line.startswith("  activated") for line in lines)
    assert any(line.startswith("factory yield") for line in lines)


def test_too_few_devices_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["demo", "--devices", "1"])
    assert result.exit_code == 2
    assert "--devices" in result.stderr


def test_the_demo_can_stay_up_for_a_person_to_look_around_the_console() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "lineside", "demo", "--devices", "4", "--json", "--stay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "LINESIDE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    ) as demo:
        try:
            console = _report_of(demo)["console"]
            base = console["url"].split("/console/")[0]
            with httpx.Client(base_url=base) as http:
                account = {"email": console["email"], "password": console["password"]}
                http.cookies.set(
                    "lineside_session", http.post("/api/v1/auth/token", json=account).json()["access_token"]
                )
                page = http.get(console["url"])
            assert page.status_code == 200
            assert "Demo Thermostat" in page.text and "your role: <strong>admin</strong>" in page.text
        finally:
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(timeout=60) == 0


def _report_of(demo: subprocess.Popen[str]) -> dict[str, Any]:
    """The JSON report, printed whole before the demo starts waiting."""
    assert demo.stdout is not None
    decoder, text = json.JSONDecoder(), ""
    while True:
        line = demo.stdout.readline()
        assert line, "the demo ended before its report"
        text += line
        try:
            report: dict[str, Any] = decoder.raw_decode(text)[0]
            return report
        except ValueError:
            continue
