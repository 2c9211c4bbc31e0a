"""What a wrong setting, a database that is not there, an unusable path or a taken port
look like: one line on stderr naming what is wrong, and a documented exit status."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EX_USAGE, EX_UNAVAILABLE, EX_IOERR, EX_CONFIG = 2, 69, 74, 78


def lineside(tmp_path: Path, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINESIDE_")},
        "LINESIDE_DATABASE_URL": f"sqlite:///{tmp_path / 'lineside.db'}",
        "LINESIDE_DATA_DIR": str(tmp_path / "data"),
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-m", "lineside", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LINESIDE_PORT", "eighty"),
        ("LINESIDE_PORT", "70000"),
        ("LINESIDE_WORKERS", "0"),
        ("LINESIDE_LOG_FORMAT", "xml"),
        ("LINESIDE_TRUSTED_PROXIES", "not-an-address"),
        ("LINESIDE_MQTT_ENABLED", "maybe"),
        ("LINESIDE_CLAIM_WINDOW_SECONDS", "-1"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it_and_exit_78(tmp_path: Path, variable: str, value: str) -> None:
    result = lineside(tmp_path, "org", "list", **{variable: value})
    assert result.returncode == EX_CONFIG
    line = one_line(result)
    assert line.startswith(f"Error: {variable}: ")
    assert value in line


def test_a_database_that_does_not_answer_is_one_line_and_exit_69(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+psycopg://nobody@127.0.0.1:{port}/lineside"

    for command in (["org", "list"], ["db", "upgrade"], ["serve", "--port", "1"]):
        result = lineside(tmp_path, *command, LINESIDE_DATABASE_URL=url)
        assert result.returncode == EX_UNAVAILABLE, command
        assert "LINESIDE_DATABASE_URL" in one_line(result)


def test_a_database_path_that_cannot_be_made_is_one_line_and_exit_74(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = lineside(tmp_path, "org", "list", LINESIDE_DATABASE_URL=f"sqlite:///{blocker}/lineside.db")
    assert result.returncode == EX_IOERR
    assert str(blocker) in one_line(result)


def test_a_taken_http_port_is_one_line_and_nothing_claims_a_server_started(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = lineside(tmp_path, "serve", "--port", str(port), LINESIDE_MQTT_ENABLED="0")
    assert result.returncode == 1
    assert "Lineside on" not in result.stdout
    line = one_line(result)
    assert str(port) in line and "LINESIDE_PORT" in line


def test_a_wrong_flag_is_usage_and_exit_2(tmp_path: Path) -> None:
    result = lineside(tmp_path, "org", "create")
    assert result.returncode == EX_USAGE
    assert "Missing argument 'NAME'" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("devices", "simulate", "--count", "1", "--product", "p"),
        ("factory", "simulate", "--count", "1", "--product", "p"),
    ],
    ids=["devices simulate", "factory simulate"],
)
def test_a_server_that_is_not_running_is_one_line_asking_whether_it_runs(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    with socket.socket() as closed:  # a port nothing listens on once this block ends
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    result = lineside(tmp_path, *command, "--server", nowhere, LINESIDE_API_KEY="lsk_anything")
    assert result.returncode == 1
    assert (
        one_line(result)
        == f"Error: Cannot connect to {nowhere}: is the server running (and is --server right)?"
    )
